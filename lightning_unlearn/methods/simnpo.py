"""SimNPO: reference-free, length-normalised negative preference optimisation."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

from lightning_unlearn._errors import check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask


def simnpo_loss(nll_avg: Tensor, beta: float, delta: float = 0.0) -> Tensor:
    """``-(2/β)·mean logσ(β·(NLL_avg − δ))``, written as ``(2/β)·softplus(−β·(NLL_avg − δ))`` for stability.

    ``nll_avg`` is the per-sample *mean* answer-token NLL, i.e. ``−log π_θ(y|x)/|y|``, so the loss
    equals ``-(2/β)·logσ(−(β/|y|)·log π_θ(y|x) − β·δ)``: it decreases as the forget likelihood falls.
    """
    return (2.0 / beta) * F.softplus(-beta * (nll_avg - delta)).mean()


@register_method(name="simnpo")
class SimNPO(UnlearningMethod):
    """SimNPO: Simple Negative Preference Optimization (no reference model).

    Fan, Liu, Lin, Jia, Zhang, Mei, Liu, "Simplicity Prevails: Rethinking Negative Preference
    Optimization for LLM Unlearning", arXiv 2410.07163. NPO with the reference log-likelihood
    replaced by a length normalisation and a margin:

    ``L_f = -(2/β)·E_{D_f} logσ(−(β/|y|)·log π_θ(y|x) − β·δ) = -(2/β)·E logσ(β·(NLL_avg − δ))``

    with ``NLL_avg`` the mean NLL over the answer's |y| tokens (the task's ``per_sample_loss``).
    The paper writes the margin outside the β product (``− γ``); as in the authors' and
    open-unlearning's code, δ is inside it here (δ = γ/β in the paper's notation). Minimising
    ``L_f`` raises the forget NLL (lowers its likelihood) with a weight ``σ(−β·(NLL_avg − δ))``
    that fades once the answer is unlikely, so, like NPO, it is bounded below (by 0).
    Defaults are open-unlearning's TOFU settings.

    Args:
        beta: β, the inverse temperature (default 4.5).
        delta: δ, the margin on the mean NLL (the paper's γ/β; default 0).
        forget_weight: γ (open-unlearning's ``gamma``), weight of the SimNPO term (default 0.125).
        retain_weight: α, weight of the retain term (default 1).
        retain_loss: ``"nll"`` (CE on D_r), ``"kl"`` or ``"none"``.
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    supported_tasks = ("causal_lm", "vision_language")

    def __init__(
        self,
        beta: float = 4.5,
        delta: float = 0.0,
        forget_weight: float = 0.125,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("beta", beta)
        if isinstance(delta, bool) or not isinstance(delta, (int, float)):
            raise TypeError(f"`delta` should be a number, got {type(delta).__name__} {delta!r}.")
        if not math.isfinite(delta):
            raise ValueError(f"`delta` should be finite, got {delta!r}.")
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.beta = float(beta)
        self.delta = float(delta)

    def forget_loss(self, ctx: StepContext) -> Tensor:
        return simnpo_loss(ctx.loss("forget"), self.beta, self.delta)
