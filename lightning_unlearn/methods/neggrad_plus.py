"""NegGrad+: a convex combination of descent on D_r and ascent on D_f."""

from __future__ import annotations

from torch import Tensor

from lightning_unlearn._errors import check_fraction
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask


@register_method(name="neggrad_plus")
class NegGradPlus(UnlearningMethod):
    """NegGrad+: ``L = β·CE(θ; D_r) − (1 − β)·CE(θ; D_f)``.

    Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023,
    arXiv 2302.09880 (the NegGrad+ baseline, their eq. for "NegGrad+": ``α·L_r − (1 − α)·L_f``; here the weight is
    named ``beta``); one of the eleven methods of the hybrid quantum–classical study (Crivoi et al., arXiv 2512.19253).
    It is GradDiff with the two weights tied to sum to 1 (``forget_weight = 1 − β``, ``retain_weight = β``), so one
    argument trades forgetting against utility; the weights below multiply on top of that.

    Args:
        beta: β in ``(0, 1]``, the share of the retain term (the paper tunes it; the default 0.9 is our choice).
        forget_weight: Extra weight on the ``(1 − β)·(−CE_f)`` term (1).
        retain_weight: Extra weight on the ``β·L_r`` term (1).
        retain_loss: ``"nll"`` (CE on D_r, the paper's) or ``"kl"`` (KL to the original on D_r).
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    def __init__(
        self,
        beta: float = 0.9,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_fraction("beta", beta)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.beta = float(beta)

    def forget_loss(self, ctx: StepContext) -> Tensor:
        return -(1.0 - self.beta) * ctx.loss("forget").mean()

    def retain_loss(self, ctx: StepContext) -> Tensor | None:
        loss = super().retain_loss(ctx)
        return None if loss is None else self.beta * loss
