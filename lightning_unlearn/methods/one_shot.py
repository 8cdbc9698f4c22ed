"""Shared parts of the one-shot (retrain-free) methods: SSD and its variants, influence unlearning.

A one-shot method edits the weights once, in closed form, from statistics of the forget and retain data, and then
has nothing left to train. It fits the engine like this:

* :meth:`~lightning_unlearn.methods.UnlearningMethod.prepare` only keeps the forget and retain loaders;
* the **edit happens at the first step** (the first call of the method's ``forget_loss``), on the weights the model
  has then: with the ``Unlearn`` callback's ``"after_training"`` schedule that is the model the user's training
  produced, not the one ``setup`` saw. Whether the edit was made is method state (``edited``), saved in checkpoints,
  so a resumed run never edits twice;
* every step returns :func:`zero_loss` (exactly 0, with zero gradients), plus the method's optional retain term
  (``retain_loss="nll"``: fine-tune on D_r after the edit). Without a retain term the optimizer steps leave the
  weights as the edit left them for optimizers without weight decay (Adam, SGD); the shipped configs run one step
  (``max_steps: 1``).

The statistics are gathered in eval mode, over whole loaders (or their first ``max_batches`` batches), and averaged
over DDP ranks, so that every rank makes the same edit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
import torch.distributed as dist
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn

from lightning_unlearn.methods.base import StepContext
from lightning_unlearn.tasks.base import Task, evaluating

__all__ = [
    "ImportanceKind",
    "IMPORTANCES",
    "all_ranks_sum",
    "apply_edit",
    "diagonal_importance",
    "edit_once",
    "require_loaders",
    "trainable_params",
    "zero_loss",
]

ImportanceKind = Literal["fisher", "loss_free"]
IMPORTANCES: dict[str, str] = {
    "fisher": "diagonal Fisher: the squared gradient of the batch's mean task loss, averaged over batches (SSD)",
    "loss_free": "the absolute gradient of the batch's mean squared l2 norm of the outputs, averaged over batches "
    "(LFSSD: no labels)",
}


def trainable_params(model: nn.Module) -> dict[str, Tensor]:
    """``{name: parameter}`` of every parameter that requires a gradient."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def zero_loss(ctx: StepContext) -> Tensor:
    """An exact 0 that depends on every trainable parameter (so backward runs and every gradient is 0)."""
    params = [p for p in ctx.model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("The model has no trainable parameters (every parameter has requires_grad=False).")
    return torch.stack([p.sum() for p in params]).sum() * 0.0


def all_ranks_sum(values: list[Tensor]) -> bool:
    """Sum each tensor over the DDP ranks in place; returns whether there were several ranks (a no-op in one)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for value in values:
            dist.all_reduce(value)
        return True
    return False


def require_loaders(what: str, loaders: tuple[Iterable | None, Iterable | None]) -> tuple[Iterable, Iterable]:
    """``(forget_loader, retain_loader)``, both required: ``what`` says who needs them (e.g. "IU needs the forget and
    retain data"), named in the error when one is missing (``setup`` was not given it, or was not called)."""
    forget_loader, retain_loader = loaders
    if forget_loader is None or retain_loader is None:
        missing = "forget" if forget_loader is None else "retain"
        raise ValueError(f"{what}; pass the {missing} loader to `setup`.")
    return forget_loader, retain_loader


def edit_once(method: Any, ctx: StepContext) -> Tensor:
    """The forget term of a one-shot method: its ``edit(model, task)`` at the first step (recorded in its ``edited``
    state, so a resumed run never edits twice), then :func:`zero_loss`."""
    if not method.edited:
        method.edit(ctx.model, ctx.task)
        method.edited = True
    return zero_loss(ctx)


def _objective(kind: str, task: Task) -> Callable[[nn.Module, Any], Tensor]:
    if kind == "fisher":
        return lambda model, batch: task.per_sample_loss(task.forward(model, batch), batch).mean()
    return lambda model, batch: task.forward(model, batch).float().pow(2).sum(-1).mean()


def diagonal_importance(
    model: nn.Module,
    task: Task,
    loader: Iterable[Any],
    kind: ImportanceKind = "fisher",
    max_batches: int | None = None,
) -> tuple[dict[str, Tensor], int, int]:
    """Per-parameter importances ``[]_D`` over ``loader`` and the numbers of batches and samples used.

    ``"fisher"`` (Foster et al.'s SSD, after Kirkpatrick et al.'s EWC): for each batch ``b``, the squared gradient of
    the batch's mean loss, ``(∇_θ L_b)²``, averaged over the batches (so it depends on the batch size, as the
    authors' code does). ``"loss_free"`` (LFSSD): ``|∇_θ mean_{x∈b} ‖f(x)‖²₂|`` averaged over the batches, with
    ``f(x)`` the logits. Computed in eval mode; under DDP the per-rank sums are added before dividing.
    """
    params = trainable_params(model)
    if not params:
        raise ValueError("The model has no trainable parameters (every parameter has requires_grad=False).")
    device = next(iter(params.values())).device
    importance = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    objective = _objective(kind, task)
    batches = samples = 0
    with evaluating(model):
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            batch = move_data_to_device(batch, device)
            with torch.enable_grad():
                grads = torch.autograd.grad(objective(model, batch), list(params.values()), allow_unused=True)
            for name, grad in zip(params, grads):
                if grad is not None:
                    importance[name] += grad.float().pow(2) if kind == "fisher" else grad.float().abs()
            batches += 1
            samples += task.batch_size(batch)
    counts = torch.tensor([float(batches), float(samples)], device=device)
    all_ranks_sum([*importance.values(), counts])
    batches, samples = int(counts[0]), int(counts[1])
    if batches:
        for value in importance.values():
            value.div_(batches)
    return importance, batches, samples


@torch.no_grad()
def apply_edit(model: nn.Module, new_values: dict[str, Tensor], masks: dict[str, Tensor] | None) -> None:
    """Write ``new_values`` into the model's parameters, only where the method's parameter ``masks`` allow (``None``:
    everywhere; a parameter absent from ``masks`` is frozen and keeps its value)."""
    params = dict(model.named_parameters())
    for name, value in new_values.items():
        param = params[name]
        value = value.to(device=param.device, dtype=param.dtype)
        if masks is None:
            param.copy_(value)
        elif name in masks:
            param.copy_(torch.where(masks[name].to(param.device) != 0, value, param))
