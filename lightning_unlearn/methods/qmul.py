"""Q-MUL-style remapping: relabel each forget sample with the most similar other class."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask


def most_similar_other_class(reference_logits: Tensor, targets: Tensor) -> Tensor:
    """Per sample, the class the original model ranks highest after the true one: ``argmax_{c ≠ y} p_θ₀(c | x)``."""
    logits = reference_logits.float().clone()
    logits.scatter_(-1, targets[:, None], float("-inf"))
    return logits.argmax(-1)


@register_method(name="qmul")
class QMUL(UnlearningMethod):
    """Q-MUL: fine-tune each forget sample toward the most similar other class, plus CE on D_r.

    The similar-class label remapping of the hybrid quantum–classical study (Crivoi et al., "Machine Unlearning for
    Hybrid Quantum-Classical Networks", ICPR 2026, arXiv 2512.19253, "Q-MUL: similar-class label remap"), after
    Q-MUL's remapping of forget samples to similar classes. Objective
    ``L = forget_weight·CE(θ; x_f, ỹ) + retain_weight·CE(θ; D_r)`` with ``ỹ = argmax_{c ≠ y} p_θ₀(c | x_f)``
    (:func:`most_similar_other_class`), the frozen original's runner-up class.

    Our choice (the study's recipe is not published): "most similar" is per sample, by the original model's own
    ranking of the other classes, so a forgotten sample goes where the model already places it second (random
    labelling, RL, draws ``ỹ`` uniformly instead).

    Args:
        forget_weight: Weight of the remapped-label CE on D_f.
        retain_weight: Weight of the retain loss.
        retain_loss: ``"nll"`` (CE on D_r), ``"kl"`` (KL to the original on D_r) or ``"none"``.
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    needs_reference = True
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
        with torch.no_grad():
            targets = most_similar_other_class(ctx.reference_outputs("forget"), ctx.task.targets(ctx.forget))
        return ctx.loss("forget", targets).mean()
