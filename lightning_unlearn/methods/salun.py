"""SalUn: random labeling restricted to the salient weights."""

from __future__ import annotations

from torch import Tensor

from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import MaskScope, ParameterMask, SaliencyMask
from lightning_unlearn.methods.random_label import random_label_loss


@register_method(name="salun")
class SalUn(UnlearningMethod):
    """SalUn: saliency-masked random labeling.

    Fan, Liu, Zhang, Wei, Wong, Liu, "SalUn: Empowering Machine Unlearning via Gradient-based Weight
    Saliency in Both Image Classification and Generation", ICLR 2024, arXiv 2310.12508.

    1. Saliency mask ``m = 1[|∇_θ L_f(θ₀; D_f)| in the top `threshold` fraction]`` (global ranking),
       built once from the original weights (:class:`~lightning_unlearn.methods.masks.SaliencyMask`).
    2. Random labeling on D_f plus α·CE on D_r, updating only masked entries:
       ``θ ← θ − η·m ⊙ ∇_θ [CE(θ; x_f, ỹ) + α·CE(θ; D_r)]``.

    Args:
        threshold: Fraction of weights SalUn may update (paper default 0.5).
        scope: ``"global"`` (paper) or ``"layer"`` ranking for the mask.
        forget_weight: Weight of the random-label loss.
        retain_weight: α, weight of the retain loss.
        retain_loss: ``"nll"``, ``"kl"`` or ``"none"``.
        mask: ``None`` (default): SalUn's own ``SaliencyMask(threshold, scope)``. A mask given here replaces it,
            e.g. ``SaliencyMask(threshold=0.5, max_batches=20)`` to cap the batches used for the saliency.
        seed: Seed of the random labels.
    """

    #: Class labels / class probabilities: not defined for causal LMs.
    supported_tasks = ("classification",)

    def __init__(
        self,
        threshold: float = 0.5,
        scope: MaskScope = "global",
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            forget_weight=forget_weight,
            retain_weight=retain_weight,
            retain_loss=retain_loss,
            mask=SaliencyMask(threshold=threshold, scope=scope) if mask is None else mask,
            seed=seed,
        )
        self.threshold = threshold
        self.scope = scope

    def forget_loss(self, ctx: StepContext) -> Tensor:
        return random_label_loss(ctx, self.seed)
