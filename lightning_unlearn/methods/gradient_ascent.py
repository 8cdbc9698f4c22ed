"""GA: gradient ascent on the forget set."""

from __future__ import annotations

from torch import Tensor

from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask


@register_method(name="ga")
class GradientAscent(UnlearningMethod):
    """Gradient ascent ("GA", also "NegGrad"): maximise the loss on the forget set.

    Thudi et al., "Unrolling SGD: Understanding Factors Influencing Machine Unlearning", EuroS&P 2022
    (arXiv 2109.13398); Jang et al., "Knowledge Unlearning for Mitigating Privacy Risks in Language
    Models", ACL 2023 (arXiv 2210.01504). Objective ``L = -forget_weight * CE(θ; D_f)``; unbounded
    below, so it collapses the model if run too long — that is the point of the baseline.

    Args:
        forget_weight: Weight of the (negated) forget loss.
        retain_weight: Weight of an optional retain term (0 by default: plain GA).
        retain_loss: Retain objective when ``retain_weight > 0``.
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    def __init__(
        self,
        forget_weight: float = 1.0,
        retain_weight: float = 0.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)

    def forget_loss(self, ctx: StepContext) -> Tensor:
        return -ctx.loss("forget").mean()
