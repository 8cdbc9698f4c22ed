"""ADV-UNIFORM: uniform outputs on the forget samples and on FGSM perturbations of them."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_unlearn._errors import check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask


def uniform_kl(logits: Tensor) -> Tensor:
    """Per sample ``KL(u ‖ p_θ) = −log C − (1/C)·Σ_c log p_θ(c | x)``, ``u`` the uniform distribution (0 exactly at a
    uniform output)."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    return -math.log(log_p.shape[-1]) - log_p.mean(-1)


def fgsm_toward_uniform(ctx: StepContext, epsilon: float) -> Tensor:
    """FGSM inputs ``x' = x − ε·sign(∇_x Σ KL(u ‖ p_θ(x)))``: one signed-gradient step that moves the forget inputs
    toward a uniform output of the current model (the inputs must be floating point; nothing else changes)."""
    x = ctx.task.inputs(ctx.forget)
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"ADV-UNIFORM perturbs the inputs with FGSM: they should be a floating-point tensor, got {type(x).__name__}.")
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = uniform_kl(ctx.task.forward(ctx.model, ctx.task.with_inputs(ctx.forget, x))).sum()
        (grad,) = torch.autograd.grad(loss, x)
    return (x - epsilon * grad.sign()).detach()


@register_method(name="adv_uniform")
class AdvUniform(UnlearningMethod):
    """ADV-UNIFORM: push the outputs on D_f, and on FGSM-perturbed D_f, to the uniform distribution; CE on D_r.

    The "ADV-UNIFORM" method of the hybrid quantum–classical study (Crivoi et al., "Machine Unlearning for Hybrid
    Quantum-Classical Networks", ICPR 2026, arXiv 2512.19253: "FGSM ε = 0.1 on input angles pushed to uniform
    outputs"), after the fast gradient sign method (Goodfellow, Shlens, Szegedy, "Explaining and Harnessing
    Adversarial Examples", ICLR 2015, arXiv 1412.6572). Each step perturbs the forget inputs by one FGSM step of size
    ε toward a uniform output (:func:`fgsm_toward_uniform`) and minimises
    ``L = forget_weight·½·[KL(u ‖ p_θ(x_f)) + KL(u ‖ p_θ(x'_f))] + retain_weight·CE(θ; D_r)`` (:func:`uniform_kl`).

    Our choices (the study's recipe is not published): the perturbation descends ``KL(u ‖ p_θ)`` (toward uniform, so
    the model is also made uniform on the neighbourhood of each forget sample, not only on the point), and the
    clean and perturbed forget samples weigh equally. On images ε is in input units (the B1 images are in [0, 1]).

    Args:
        epsilon: ε, the FGSM step size on the inputs (0.1).
        forget_weight: Weight of the uniform-output term.
        retain_weight: Weight of the retain loss.
        retain_loss: ``"nll"`` (CE on D_r), ``"kl"`` (KL to the original on D_r) or ``"none"``.
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    supported_tasks = ("classification",)

    def __init__(
        self,
        epsilon: float = 0.1,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("epsilon", epsilon, allow_zero=True)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.epsilon = float(epsilon)

    def forget_loss(self, ctx: StepContext) -> Tensor:
        perturbed = ctx.task.with_inputs(ctx.forget, fgsm_toward_uniform(ctx, self.epsilon))
        clean = uniform_kl(ctx.outputs("forget")).mean()
        adversarial = uniform_kl(ctx.task.forward(ctx.model, perturbed)).mean()
        return 0.5 * (clean + adversarial)
