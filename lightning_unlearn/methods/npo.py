"""NPO: negative preference optimisation (classification and sequence forms)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lightning_unlearn._errors import check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask


def npo_loss(log_prob: Tensor, reference_log_prob: Tensor, beta: float) -> Tensor:
    """``-(2/β)·mean logσ(-β·(log π_θ - log π_θ₀))``, written as ``(2/β)·softplus(β·Δ)`` for stability."""
    return (2.0 / beta) * F.softplus(beta * (log_prob - reference_log_prob)).mean()


@register_method(name="npo")
class NPO(UnlearningMethod):
    """Negative Preference Optimization.

    Zhang, Lin, Bai, Mei, "Negative Preference Optimization: From Catastrophic Collapse to Effective
    Unlearning", COLM 2024, arXiv 2404.05868. DPO with only a losing response:

    ``L_f = -(2/β)·E_{D_f} logσ(-β·[log π_θ(y|x) − log π_θ₀(y|x)])``

    where log π is the task's log-likelihood of the sample's target (for a classifier
    ``log p(y|x)``; for a causal LM the *sequence-sum* of answer-token log-probs, the
    open-unlearning convention). As β → 0 it tends to gradient ascent; its loss is bounded below,
    which is why it does not collapse the way GA does.

    Args:
        beta: β, the inverse temperature (paper default 0.1).
        forget_weight: γ, weight of the NPO term.
        retain_weight: α, weight of the retain term.
        retain_loss: ``"nll"``, ``"kl"`` or ``"none"``.
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    needs_reference = True

    def __init__(
        self,
        beta: float = 0.1,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("beta", beta)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.beta = float(beta)

    def forget_loss(self, ctx: StepContext) -> Tensor:
        batch = ctx.batch("forget")
        log_prob = ctx.task.log_likelihood(ctx.outputs("forget"), batch)
        reference_log_prob = ctx.task.log_likelihood(ctx.reference_outputs("forget"), batch)
        return npo_loss(log_prob, reference_log_prob, self.beta)
