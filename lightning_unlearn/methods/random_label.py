"""RL: fine-tune the forget set towards random wrong labels."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask


def random_label_loss(ctx: StepContext, seed: int) -> Tensor:
    """Mean cross-entropy of the forget batch against labels drawn uniformly from the *other* classes.

    The labels are drawn from a generator seeded by ``(seed, global_step)``, so a run resumed from a
    checkpoint draws exactly the labels an uninterrupted run would.
    """
    if not ctx.task.supports_relabel:
        raise ValueError(f"Random labeling needs a task with labels; {type(ctx.task).__name__} has none.")
    generator = torch.Generator().manual_seed(seed * 1_000_003 + ctx.global_step)
    targets = ctx.task.relabel(ctx.outputs("forget"), ctx.batch("forget"), generator)
    return ctx.loss("forget", targets).mean()


@register_method(name="rl")
class RandomLabel(UnlearningMethod):
    """Random labeling ("RL"): train the forget samples towards uniformly random wrong labels.

    Golatkar, Achille, Soatto, CVPR 2020 (arXiv 1911.04933), as used by Hayase et al. and SalUn
    (Fan et al., ICLR 2024, arXiv 2310.12508, where it is SalUn's inner loss). Objective
    ``L = γ·CE(θ; x_f, ỹ) + α·CE(θ; D_r)`` with ỹ ~ Uniform(classes \\ {y}) redrawn every step.

    Args:
        forget_weight: γ, weight of the random-label loss on forget data.
        retain_weight: α, weight of the retain loss.
        retain_loss: ``"nll"``, ``"kl"`` or ``"none"``.
        mask: Optional parameter mask (SalUn is RL + a saliency mask).
        seed: Seed of the random labels.
    """

    #: Class labels / class probabilities: not defined for causal LMs.
    supported_tasks = ("classification",)

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
        return random_label_loss(ctx, self.seed)
