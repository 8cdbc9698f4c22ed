"""NPO: negative preference optimisation (classification and sequence forms)."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from lightning_unlearn._errors import check_choice, check_positive
from lightning_unlearn.methods.base import _RETAIN_LOSSES, StepContext, UnlearningMethod, register_method
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

    Safety Mirage's variant (Chen et al., "Safety Mirage: How Spurious Correlations Undermine VLM
    Safety Fine-Tuning and Can Be Mitigated by Machine Unlearning", ICLR 2026, arXiv 2503.11832; the
    authors' trainer) is ``likelihood="mean"`` (Δ from each answer's *mean* token log-probability, i.e.
    the per-sample cross-entropy, instead of the sum) with ``beta=0.9`` and ``retain_loss="npo_nll"``:
    an NPO-style preference on the retain batch, ``-(2/β)·mean softplus(β·[log π_θ(y_r|x_r) − log π_θ₀(y_r|x_r)])``
    (their ``+(2/β)·mean logσ(β·[CE_θ − CE_θ₀])`` with α_r = 1), plus the retain NLL (their LLaVA
    loss, w = 1). ``retain_weight`` scales the sum of both.

    Args:
        beta: β, the inverse temperature (paper default 0.1).
        likelihood: ``"sum"`` (the answer's summed log-probability, open-unlearning) or ``"mean"`` (per token,
            Safety Mirage's code).
        forget_weight: γ, weight of the NPO term.
        retain_weight: α, weight of the retain term.
        retain_loss: ``"nll"``, ``"kl"``, ``"npo_nll"`` (Safety Mirage's, above) or ``"none"``.
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    needs_reference = True
    retain_losses = {**_RETAIN_LOSSES, "npo_nll": "Safety Mirage's NPO-style preference on D_r plus the retain NLL"}

    def __init__(
        self,
        beta: float = 0.1,
        likelihood: Literal["sum", "mean"] = "sum",
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: Literal["nll", "kl", "npo_nll", "none"] = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("beta", beta)
        check_choice("likelihood", likelihood, ("sum", "mean"))
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)  # type: ignore[arg-type]
        self.beta = float(beta)
        self.likelihood = likelihood

    def _log_prob(self, ctx: StepContext, outputs: Tensor, batch) -> Tensor:
        if self.likelihood == "mean":
            return -ctx.task.per_sample_loss(outputs, batch)
        return ctx.task.log_likelihood(outputs, batch)

    def forget_loss(self, ctx: StepContext) -> Tensor:
        batch = ctx.batch("forget")
        log_prob = self._log_prob(ctx, ctx.outputs("forget"), batch)
        reference_log_prob = self._log_prob(ctx, ctx.reference_outputs("forget"), batch)
        return npo_loss(log_prob, reference_log_prob, self.beta)

    def retain_loss(self, ctx: StepContext) -> Tensor | None:
        if self.retain_loss_kind != "npo_nll" or not self.uses_retain or ctx.retain is None:
            return super().retain_loss(ctx)
        batch = ctx.batch("retain")
        log_prob = self._log_prob(ctx, ctx.outputs("retain"), batch)
        reference_log_prob = self._log_prob(ctx, ctx.reference_outputs("retain"), batch)
        return ctx.loss("retain").mean() - npo_loss(log_prob, reference_log_prob, self.beta)
