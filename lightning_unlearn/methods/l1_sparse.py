"""l1-sparse: fine-tuning on D_r with a decaying l1 penalty that sparsifies the model."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lightning_unlearn._errors import check_choice, check_positive
from lightning_unlearn.methods.base import _RETAIN_LOSSES, RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask

L1Schedule = Literal["linear", "constant"]
_SCHEDULES = {"linear": "γ_t = γ·(1 − t/T), decaying to 0", "constant": "γ_t = γ"}


@register_method(name="l1_sparse")
class L1Sparse(UnlearningMethod):
    """The "l1-sparse" method: sparsity-aware fine-tuning.

    Jia, Liu, Ram, Yao, Liu, Liu, Sharma, Liu, "Model Sparsity Can Simplify Machine Unlearning",
    NeurIPS 2023, arXiv 2304.04934. Objective
    ``L = CE(θ; D_r) + γ_t·‖θ‖₁`` with γ_t decaying linearly from γ to 0 over the run (the
    authors' schedule), so the model is pushed towards sparsity early and recovers accuracy late.

    Args:
        l1_weight: γ, the initial l1 coefficient (the paper searches 1e-4 to 1e-3).
        schedule: ``"linear"`` decay (paper) or ``"constant"``.
        forget_weight: Unused (l1-sparse never uses the forget batch); accepted like every method's.
        retain_weight: Weight of the retain term.
        retain_loss: ``"nll"`` (cross-entropy on D_r, the paper's) or ``"kl"`` (KL to the original on D_r).
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    uses_forget = False
    retain_losses = {k: v for k, v in _RETAIN_LOSSES.items() if k != "none"}  # fine-tuning needs a retain term

    def __init__(
        self,
        l1_weight: float = 5e-4,
        schedule: L1Schedule = "linear",
        forget_weight: float = 0.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("l1_weight", l1_weight, allow_zero=True)
        check_choice("schedule", schedule, _SCHEDULES)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.l1_weight = float(l1_weight)
        self.schedule = schedule

    def current_l1_weight(self, ctx: StepContext) -> float:
        if self.schedule == "constant":
            return self.l1_weight
        return self.l1_weight * (1.0 - ctx.progress)

    def regularizer(self, ctx: StepContext) -> Tensor | None:
        weight = self.current_l1_weight(ctx)
        if weight == 0:
            return None
        return weight * torch.stack([p.abs().sum() for p in ctx.model.parameters() if p.requires_grad]).sum()
