"""CF-k: catastrophically forget by fine-tuning only the last k layers on the retain set."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from lightning_unlearn.methods.base import _RETAIN_LOSSES, RetainLoss, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import LastLayersMask, ParameterMask, check_last_layers_arguments
from lightning_unlearn.tasks.base import Task


@register_method(name="cf_k")
class CFk(UnlearningMethod):
    """CF-k ("catastrophic forgetting-k"): fine-tune the last ``k`` layers on D_r, the rest frozen.

    Goel, Prabhu, Sanyal, Lim, Torr, Kumaraguru, "Towards Adversarial Evaluation of Machine Unlearning" (earlier
    "Evaluating Inexact Unlearning Requires Revisiting Forgetting"), arXiv 2201.06640; one of the eleven methods of
    the hybrid quantum–classical study (Crivoi et al., arXiv 2512.19253). Objective ``L = retain_weight·CE(θ; D_r)``,
    only the parameters of the last ``k`` layers (:func:`~lightning_unlearn.methods.masks.last_layers`: modules
    owning trainable parameters, in registration order) change; the forget batch is never used. The layers are
    selected with :class:`~lightning_unlearn.methods.masks.LastLayersMask`, which the method builds itself.

    Args:
        k: Number of last layers to fine-tune (1: the classifier head).
        forget_weight: Unused (CF-k never uses the forget batch); accepted like every method's.
        retain_weight: Weight of the retain loss.
        retain_loss: ``"nll"`` (cross-entropy on D_r, the paper's) or ``"kl"`` (distil the original on D_r).
        mask: Must be ``None``: the method's mask is the last ``k`` layers.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    uses_forget = False
    supported_tasks = ("classification",)
    retain_losses = {k: v for k, v in _RETAIN_LOSSES.items() if k != "none"}  # the retain term is CF-k's only term

    def __init__(
        self,
        k: int = 1,
        forget_weight: float = 0.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_last_layers_arguments(k, mask, "CF-k trains")
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=None, seed=seed)
        self.k = int(k)

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        self.set_masks(LastLayersMask(self.k).build(model, task))
