"""JiT: zero-shot unlearning by smoothing the model (a local Lipschitz penalty) around the forget samples."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_unlearn._errors import check_int, check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask


def lipschitz_loss(outputs: Tensor, perturbed_outputs: Tensor, inputs: Tensor, perturbed_inputs: Tensor) -> Tensor:
    """JiT's local Lipschitz estimate, averaged over samples and perturbations.

    ``outputs`` ``[B, C]`` and ``inputs`` ``[B, ...]``; ``perturbed_outputs`` ``[N, B, C]`` and ``perturbed_inputs``
    ``[N, B, ...]`` for N perturbations. Returns ``mean_{n,i} ‖f(x_i) − f(x'_{n,i})‖₂ / ‖x_i − x'_{n,i}‖₂``.
    """
    out_norm = torch.linalg.vector_norm((outputs.unsqueeze(0) - perturbed_outputs).float(), dim=-1)
    in_norm = torch.linalg.vector_norm((inputs.unsqueeze(0) - perturbed_inputs).flatten(2).float(), dim=-1)
    return (out_norm / in_norm.clamp_min(torch.finfo(in_norm.dtype).tiny)).mean()


@register_method(name="jit")
class JiT(UnlearningMethod):
    """JiT ("just in time"): zero-shot unlearning through Lipschitz regularisation.

    Foster, Schoepf, Brintrup, "Zero-shot machine unlearning at scale via Lipschitz regularization" (also titled "An
    Information Theoretic Approach to Machine Unlearning"), arXiv 2402.01401. Only the forget samples are used, no
    retain data: the model is made smooth around each forget sample, so what it memorised about it (a sharp, confident
    output) is flattened towards what it predicts for the sample's neighbourhood. For a forget batch and N
    perturbations ``x' = clip(x + σ·ε, min x, max x)``, ``ε ~ N(0, I)`` (clipped to the range of the batch, as in the
    authors' code):

    ``L = mean_{n,i} ‖f_θ(x_i) − sg[f_θ(x'_{n,i})]‖₂ / ‖x_i − x'_{n,i}‖₂`` (:func:`lipschitz_loss`)

    on the logits, with the perturbed outputs computed by the current weights without gradient (the authors use a
    copy of the current weights). The noise is drawn from a generator seeded by ``(seed, global_step)``, so a resumed
    run draws what an uninterrupted one would. The authors sum over the batch; here it is a mean (scale the learning
    rate by the batch size to match). Their defaults: N = 10, σ = 0.1, SGD at lr 1e-3 for one epoch over D_f.

    Args:
        sigma: σ, the standard deviation of the input perturbation (the authors' "jit_weighting", 0.1).
        num_perturbations: N, perturbed copies per sample (10).
        forget_weight: Weight of the Lipschitz term.
        retain_weight: Weight of the optional retain term.
        retain_loss: ``"none"`` (the paper's: zero-shot, no retain data), ``"nll"`` or ``"kl"``.
        mask: Optional parameter mask.
        seed: Seed of the perturbations.
    """

    supported_tasks = ("classification",)

    def __init__(
        self,
        sigma: float = 0.1,
        num_perturbations: int = 10,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "none",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("sigma", sigma)
        check_int("num_perturbations", num_perturbations, minimum=1)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.sigma = float(sigma)
        self.num_perturbations = int(num_perturbations)

    def perturb(self, inputs: Tensor, global_step: int) -> Tensor:
        """``[N, B, ...]`` perturbed copies of ``inputs``, clipped to the batch's value range."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + global_step)
        noise = torch.randn((self.num_perturbations, *inputs.shape), generator=generator, dtype=torch.float32)
        perturbed = inputs.unsqueeze(0) + (self.sigma * noise).to(device=inputs.device, dtype=inputs.dtype)
        return perturbed.clamp(min=inputs.min(), max=inputs.max())

    def forget_loss(self, ctx: StepContext) -> Tensor:
        batch = ctx.batch("forget")
        inputs = ctx.task.inputs(batch)
        if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
            raise TypeError(f"JiT perturbs the inputs and needs a floating-point input tensor, got {type(inputs).__name__}.")
        perturbed = self.perturb(inputs, ctx.global_step)
        targets = ctx.task.targets(batch)
        with torch.no_grad():
            flat = perturbed.flatten(0, 1)
            outputs = ctx.task.forward(ctx.model, (flat, targets.repeat(self.num_perturbations)))
            perturbed_outputs = outputs.view(self.num_perturbations, len(targets), -1)
        return lipschitz_loss(ctx.outputs("forget"), perturbed_outputs, inputs, perturbed)
