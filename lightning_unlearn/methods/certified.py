"""Certified-style unlearning: noisy, clipped fine-tuning on the retain set."""

from __future__ import annotations

import torch
from torch import nn

from lightning_unlearn._errors import check_positive
from lightning_unlearn.methods.base import _RETAIN_LOSSES, RetainLoss, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask


@torch.no_grad()
def clip_and_noise(params: list[nn.Parameter], max_norm: float, noise_std: float, generator: torch.Generator) -> float:
    """Clip the gradients of ``params`` to a joint l2 norm of at most ``max_norm``, then add ``N(0, noise_std²)``
    to every entry (drawn on the CPU from ``generator``, so runs repeat on any device). Returns the norm before
    clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))
    scale = min(1.0, max_norm / (norm + 1e-12))
    for g in grads:
        g.mul_(scale)
        if noise_std > 0:
            g.add_(torch.randn(g.shape, generator=generator).to(g) * noise_std)
    return norm


@register_method(name="certified")
class Certified(UnlearningMethod):
    """Certified-style unlearning: fine-tune on D_r with every step's gradient clipped and noised.

    The "Certified" method of the hybrid quantum–classical study (Crivoi et al., "Machine Unlearning for Hybrid
    Quantum-Classical Networks", ICPR 2026, arXiv 2512.19253; σ = 0.05, clip 1.0, 5 epochs), after the noisy
    fine-tuning of certified-removal / DP-style unlearning (Guo, Goldstein, Hannun, van der Maaten, "Certified Data
    Removal from Machine Learning Models", ICML 2020, arXiv 1911.03030; Neel, Roth, Sharifi-Malvajerdi,
    "Descent-to-Delete", ALT 2021, arXiv 2007.02923). Objective ``L = retain_weight·CE(θ; D_r)`` (the forget batch is
    never used); before each optimizer step the gradient of all trainable parameters is clipped to joint l2 norm
    ``max_grad_norm`` and ``N(0, σ²)`` noise is added to every entry (:func:`clip_and_noise`), then the parameter
    mask applies.

    Our choices (the study's exact recipe is not published): the clipping is of the *batch* gradient (not per
    sample as in DP-SGD), and σ is the noise's absolute standard deviation per entry (with the study's clip 1.0 the
    same as a noise multiplier σ relative to the clip norm). No privacy accounting is done: the name is the study's,
    no certificate is computed.

    Args:
        noise_std: σ, standard deviation of the Gaussian noise added to each gradient entry (0.05).
        max_grad_norm: Clip norm of the joint gradient (1.0).
        forget_weight: Unused (the method never uses the forget batch); accepted like every method's.
        retain_weight: Weight of the retain loss.
        retain_loss: ``"nll"`` (cross-entropy on D_r) or ``"kl"`` (distil the original on D_r).
        mask: Optional parameter mask.
        seed: Seed of the noise.
    """

    uses_forget = False
    retain_losses = {k: v for k, v in _RETAIN_LOSSES.items() if k != "none"}

    def __init__(
        self,
        noise_std: float = 0.05,
        max_grad_norm: float = 1.0,
        forget_weight: float = 0.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("noise_std", noise_std, allow_zero=True)
        check_positive("max_grad_norm", max_grad_norm)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.noise_std = float(noise_std)
        self.max_grad_norm = float(max_grad_norm)
        # the noise generator's state, checkpointed so a resumed run continues the same noise
        self.add_state("noise_rng", torch.Generator().manual_seed(self.seed).get_state())

    def before_optimizer_step(self, model: nn.Module) -> None:
        generator = torch.Generator()
        generator.set_state(self.noise_rng.cpu())
        params = [p for p in model.parameters() if p.requires_grad] + self.parameters()
        clip_and_noise(params, self.max_grad_norm, self.noise_std, generator)
        self.noise_rng = generator.get_state()
        super().before_optimizer_step(model)
