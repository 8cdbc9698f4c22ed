"""LCA: label-complement augmentation of the forget set."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask


def complement_kl(logits: Tensor, targets: Tensor) -> Tensor:
    """Per sample ``KL(q ‖ p_θ)`` with ``q`` uniform over the ``C − 1`` classes other than the label:
    ``−log(C − 1) − (1/(C − 1))·Σ_{c ≠ y} log p_θ(c | x)`` (0 exactly when the model spreads its mass evenly over the
    other classes and gives the label none)."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    classes = log_p.shape[-1]
    if classes < 2:
        raise ValueError(f"Label-complement targets need at least 2 classes, got logits of shape {tuple(logits.shape)}.")
    others = log_p.sum(-1) - log_p.gather(-1, targets[:, None]).squeeze(-1)
    return -math.log(classes - 1) - others / (classes - 1)


@register_method(name="lca")
class LCA(UnlearningMethod):
    """LCA: train every forget sample toward its complementary labels, plus CE on D_r.

    The label-complement augmentation of the hybrid quantum–classical study (Crivoi et al., "Machine Unlearning for
    Hybrid Quantum-Classical Networks", ICPR 2026, arXiv 2512.19253). Each forget sample ``(x, y)`` is augmented into
    the ``C − 1`` pairs ``(x, c)``, ``c ≠ y``, with equal weights; their mean cross-entropy is, up to the constant
    ``log(C − 1)``, ``KL(q ‖ p_θ(·|x))`` with ``q`` uniform over the other classes (:func:`complement_kl`), which is
    what is minimised: ``L = forget_weight·KL_comp(θ; D_f) + retain_weight·CE(θ; D_r)``.

    Our choice (the study's recipe is not published): all complementary labels at once, with equal weight (rather than
    one sampled complementary label per visit, which has the same expectation and more variance).

    Args:
        forget_weight: Weight of the complement term on D_f.
        retain_weight: Weight of the retain loss.
        retain_loss: ``"nll"`` (CE on D_r), ``"kl"`` (KL to the original on D_r) or ``"none"``.
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

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
        return complement_kl(ctx.outputs("forget"), ctx.task.targets(ctx.forget)).mean()
