"""EU-k: re-initialise the last k layers and retrain them on the retain set."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from lightning_unlearn.methods.base import _RETAIN_LOSSES, RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import LastLayersMask, ParameterMask, check_last_layers_arguments, last_layers
from lightning_unlearn.tasks.base import Task


@torch.no_grad()
def reinitialize_layers(model: nn.Module, k: int, seed: int) -> list[str]:
    """Re-draw the parameters of the model's last ``k`` layers (:func:`~lightning_unlearn.methods.masks.last_layers`)
    with the layer's own ``reset_parameters()`` under ``torch.manual_seed(seed)`` (the global RNG is restored
    afterwards). A layer without ``reset_parameters`` (e.g. a PennyLane ``TorchLayer``) has each of its parameters
    re-drawn from ``N(0, s²)``, ``s`` the standard deviation of its current values. Returns the layers' names."""
    layers = last_layers(model, k)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _, module in layers:
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                continue
            for param in module.parameters(recurse=False):
                scale = float(param.float().std()) if param.numel() > 1 else 1.0
                param.copy_(torch.randn(param.shape, dtype=torch.float32).mul(scale).to(param))
    return [name for name, _ in layers]


@register_method(name="eu_k")
class EUk(UnlearningMethod):
    """EU-k ("exact unlearning-k"): re-initialise the last ``k`` layers, then train only them on D_r.

    Goel, Prabhu, Sanyal, Lim, Torr, Kumaraguru, "Towards Adversarial Evaluation of Machine Unlearning" (earlier
    "Evaluating Inexact Unlearning Requires Revisiting Forgetting"), arXiv 2201.06640; one of the eleven methods of
    the hybrid quantum–classical study (Crivoi et al., arXiv 2512.19253). The first ``n − k`` layers are frozen at
    their trained values (the paper's assumption: they carry no forget-specific information); the last ``k`` are
    re-drawn (:func:`reinitialize_layers`) and retrained with ``L = retain_weight·CE(θ; D_r)``. The forget batch is
    never used.

    The re-initialisation happens at the first step (on the weights the model has then, as the one-shot methods'
    edits: with the ``Unlearn`` callback's ``"after_training"`` schedule, the trained model), recorded in the
    ``reinitialized`` state so a resumed run never re-draws twice.

    Args:
        k: Number of last layers to re-initialise and retrain (1: the classifier head).
        forget_weight: Unused (EU-k never uses the forget batch); accepted like every method's.
        retain_weight: Weight of the retain loss.
        retain_loss: ``"nll"`` (cross-entropy on D_r, the paper's) or ``"kl"`` (distil the original on D_r).
        mask: Must be ``None``: the method's mask is the last ``k`` layers.
        seed: Seed of the re-initialisation.
    """

    uses_forget = False
    supported_tasks = ("classification",)
    retain_losses = {k: v for k, v in _RETAIN_LOSSES.items() if k != "none"}  # the retain term is EU-k's only term

    def __init__(
        self,
        k: int = 1,
        forget_weight: float = 0.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_last_layers_arguments(k, mask, "EU-k retrains")
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=None, seed=seed)
        self.k = int(k)
        self.add_state("reinitialized", False)

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        self.set_masks(LastLayersMask(self.k).build(model, task))

    def retain_loss(self, ctx: StepContext) -> Tensor | None:
        if not self.reinitialized:  # before this step's forward pass, so the step trains the re-drawn layers
            reinitialize_layers(ctx.model, self.k, self.seed)
            self.reinitialized = True
        return super().retain_loss(ctx)
