"""GradDiff: gradient ascent on the forget set plus descent on the retain set."""

from __future__ import annotations

from torch import Tensor

from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask


@register_method(name="graddiff")
class GradDiff(UnlearningMethod):
    """Gradient difference ("GradDiff", "NegGrad+"): ascend on D_f, descend on D_r.

    Liu, Liu, Stone, "Continual Learning and Private Unlearning", CoLLAs 2022 (arXiv 2203.12817);
    the TOFU baseline (Maini et al., arXiv 2401.06121). Objective
    ``L = -γ·CE(θ; D_f) + α·L_r(θ; D_r)`` with γ = ``forget_weight``, α = ``retain_weight``.

    Args:
        forget_weight: γ, weight of the negated forget loss.
        retain_weight: α, weight of the retain loss.
        retain_loss: ``"nll"`` (CE on retain) or ``"kl"`` (KL to the original on retain).
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    def __init__(
        self,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)

    def forget_loss(self, ctx: StepContext) -> Tensor:
        return -ctx.loss("forget").mean()
