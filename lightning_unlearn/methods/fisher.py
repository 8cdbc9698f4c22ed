"""Fisher forgetting: Gaussian noise scaled by the inverse Fisher information of the retain set."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn

from lightning_unlearn._errors import check_int, check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask, last_layers
from lightning_unlearn.methods.one_shot import all_ranks_sum, apply_edit, diagonal_importance, edit_once, require_loaders
from lightning_unlearn.tasks.base import Task

_ONE_SHOT_RETAIN = {
    "none": "no training after the edit (the paper's)",
    "nll": "fine-tune on D_r after the edit: the task's loss on the retain batch",
    "kl": "fine-tune on D_r after the edit: KL(p_reference || p_model) on the retain batch",
}


def fisher_noise_variance(
    fisher: Tensor, alpha: float, *, output_layer: bool, max_variance: float = 1e3, max_output_variance: float = 1e2
) -> Tensor:
    """Golatkar et al.'s per-entry noise variance from the diagonal Fisher ``F`` of one parameter tensor:
    ``v = α·min(1/(F + 1e-8), cap)`` (``cap`` = ``max_output_variance`` for the output layer, else ``max_variance``),
    averaged over each output unit's row (``dim=1``) for tensors of two or more dimensions, and ×10 for the output
    layer and for one-dimensional tensors (biases, norms), as in the authors' code."""
    var = (1.0 / (fisher.float() + 1e-8)).clamp(max=max_output_variance if output_layer else max_variance) * alpha
    if var.dim() > 1:
        var = var.mean(dim=1, keepdim=True).expand_as(var).clone()
    if output_layer or var.dim() == 1:
        var = var * 10.0
    return var


@torch.no_grad()
def forgotten_classes(task: Task, forget_loader: Iterable[Any], retain_loader: Iterable[Any], device: torch.device) -> list[int]:
    """The classes with forget samples and no retain sample (a class-wise request), summed over DDP ranks."""
    counts: dict[str, Tensor] = {}
    for split, loader in (("forget", forget_loader), ("retain", retain_loader)):
        labels = [task.targets(move_data_to_device(b, device)) for b in loader]
        size = int(max((int(y.max()) for y in labels if y.numel()), default=-1)) + 1
        counts[split] = torch.zeros(max(size, 1), device=device)
        for y in labels:
            counts[split].index_add_(0, y, torch.ones_like(y, dtype=counts[split].dtype))
    width = max(c.numel() for c in counts.values())
    forget = torch.nn.functional.pad(counts["forget"], (0, width - counts["forget"].numel()))
    retain = torch.nn.functional.pad(counts["retain"], (0, width - counts["retain"].numel()))
    all_ranks_sum([forget, retain])
    return [c for c in range(width) if forget[c] > 0 and retain[c] == 0]


@register_method(name="fisher")
class FisherForgetting(UnlearningMethod):
    """Fisher forgetting: a one-shot weight edit that adds noise where the retain set does not constrain the weights.

    Golatkar, Achille, Soatto, "Eternal Sunshine of the Spotless Net: Selective Forgetting in Deep Networks",
    CVPR 2020, arXiv 1911.04933 (the "Fisher" forgetting procedure); one of the eleven methods of the hybrid
    quantum–classical study (Crivoi et al., arXiv 2512.19253). With ``F`` the diagonal Fisher information on D_r,
    every weight becomes ``θ ← θ + sqrt(v)·ε``, ``ε ~ N(0, I)`` drawn with ``seed``, ``v`` from
    :func:`fisher_noise_variance` (``v ∝ α/F``, capped, row-averaged, ×10 on the output layer and on 1-D tensors, as
    in the authors' code). For a class-wise request (classes with forget samples and no retain sample,
    :func:`forgotten_classes`), the output layer's rows of those classes are set to 0 with a tiny variance (1e-4),
    as the authors' code does for class removal.

    Our choices (documented in docs/methods.md): ``F`` is the diagonal empirical Fisher of SSD's importances
    (:func:`~lightning_unlearn.methods.one_shot.diagonal_importance`: the squared gradient of each batch's mean loss,
    averaged over batches) rather than the authors' per-sample expected Fisher, so its scale depends on the batch
    size and ``alpha`` absorbs it; the output layer is the model's last layer
    (:func:`~lightning_unlearn.methods.masks.last_layers`), whose rows are the classes.
    The edit is made once, at the first step (see :mod:`lightning_unlearn.methods.one_shot`).

    Args:
        alpha: α, the noise scale (the authors' default 1e-6 for their per-sample Fisher; tune it).
        max_batches: Cap on the retain batches used for the Fisher (``None``: all).
        forget_weight: Must be > 0: the edit is made in the forget hook (its loss is 0).
        retain_weight: Weight of the optional retain term.
        retain_loss: ``"none"`` (the paper's: no training), or ``"nll"`` / ``"kl"`` to fine-tune on D_r after the edit.
        mask: Optional parameter mask: only its entries are perturbed.
        seed: Seed of the noise.
    """

    supported_tasks = ("classification",)
    retain_losses = _ONE_SHOT_RETAIN

    def __init__(
        self,
        alpha: float = 1e-6,
        max_batches: int | None = None,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "none",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("alpha", alpha)
        check_int("max_batches", max_batches, minimum=1, optional=True)
        check_positive("forget_weight", forget_weight)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.alpha = float(alpha)
        self.max_batches = max_batches
        self.add_state("edited", False)
        self.add_state("edit_stats", {})
        self._loaders: tuple[Iterable | None, Iterable | None] = (None, None)

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        self._loaders = require_loaders("Fisher forgetting needs the forget and retain data", (forget_loader, retain_loader))

    @torch.no_grad()
    def edit(self, model: nn.Module, task: Task) -> None:
        """Add the Fisher-scaled noise to the model's weights in place, where the mask allows."""
        forget_loader, retain_loader = require_loaders("Fisher forgetting needs the forget and retain data", self._loaders)
        fisher, batches, samples = diagonal_importance(model, task, retain_loader, "fisher", self.max_batches)
        device = next(iter(fisher.values())).device
        classes = forgotten_classes(task, forget_loader, retain_loader, device)
        (head_name, head), = last_layers(model, 1)
        head_params = {f"{head_name}.{n}" if head_name else n for n, _ in head.named_parameters(recurse=False)}
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        new: dict[str, Tensor] = {}
        for name, param in model.named_parameters():
            if name not in fisher:
                continue
            output_layer = name in head_params
            var = fisher_noise_variance(fisher[name], self.alpha, output_layer=output_layer)
            mean = param.detach().float().clone()
            if output_layer and classes and param.shape[0] > max(classes):
                mean[classes] = 0.0
                var[classes] = 1e-4
            noise = torch.randn(param.shape, generator=generator).to(var.device)
            new[name] = mean + var.sqrt() * noise
        apply_edit(model, new, self.masks)
        self.edit_stats = {"retain_batches": batches, "retain_samples": samples, "forgotten_classes": classes}

    def forget_loss(self, ctx: StepContext) -> Tensor:
        return edit_once(self, ctx)
