"""FT: fine-tune on the retain set only, relying on catastrophic forgetting."""

from __future__ import annotations

from lightning_unlearn.methods.base import _RETAIN_LOSSES, RetainLoss, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask


@register_method(name="ft")
class FineTune(UnlearningMethod):
    """Fine-tuning on the retain set ("FT"), the simplest approximate unlearning baseline.

    Golatkar, Achille, Soatto, "Eternal Sunshine of the Spotless Net: Selective Forgetting in Deep
    Networks", CVPR 2020, arXiv 1911.04933 (the *Fine-tune* baseline); used as "FT" in
    Jia et al., NeurIPS 2023 (arXiv 2304.04934) and SalUn (arXiv 2310.12508).
    Objective: ``L = retain_weight * CE(θ; D_r)``; the forget batch is never used.

    Args:
        forget_weight: Unused (FT never uses the forget batch); accepted like every method's.
        retain_weight: Weight of the retain loss.
        retain_loss: ``"nll"`` (cross-entropy on retain data) or ``"kl"`` (distil the original on retain data).
        mask: Optional parameter mask.
        seed: Unused (FT draws nothing at random); accepted like every method's.
    """

    uses_forget = False
    retain_losses = {k: v for k, v in _RETAIN_LOSSES.items() if k != "none"}  # the retain term is FT's only term

    def __init__(
        self,
        forget_weight: float = 0.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
