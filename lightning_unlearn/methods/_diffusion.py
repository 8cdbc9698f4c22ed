"""Pieces shared by the diffusion concept-erasure methods (ESD, SalUn for diffusion, SPARE, RAZOR for diffusion).

All of them compare the denoiser's ε-prediction on a forget image's ``x_t`` under the concept's prompt with a
*target* prediction on the same ``x_t`` and ``t`` under another prompt (the empty prompt, a surrogate concept), made
by a frozen or detached model. :class:`~lightning_unlearn.tasks.DiffusionTask` keeps each batch's noise and
timestep on the batch, so those predictions line up sample by sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lightning_unlearn.methods.base import StepContext
from lightning_unlearn.tasks.base import Task


def prediction_under(model: nn.Module, task: Task, batch: dict, condition: Tensor) -> Tensor:
    """``sg[ε_model(x_t, t, condition)]`` on ``batch``'s own ``x_t`` and ``t`` (no gradient)."""
    with torch.no_grad():
        return task.predict(model, task.with_condition(batch, condition)).detach()  # type: ignore[attr-defined]


def encode_once(task: Task, prompts: Sequence[str] | None) -> Tensor | None:
    """The task's prompt states of ``prompts`` (``None`` stays ``None``), on the CPU."""
    if prompts is None:
        return None
    return task.encode_prompts(list(prompts)).detach().cpu()  # type: ignore[attr-defined]


def surrogate_condition(ctx: StepContext, surrogate: Tensor | None) -> Tensor:
    """The prompt states a forget sample is remapped to: the encoded ``surrogate`` prompt(s) (one per forget sample,
    cycled), or, without one, the retain batch's prompts (other concepts, cycled over the forget batch)."""
    size = ctx.task.batch_size(ctx.forget)
    if surrogate is None:
        if ctx.retain is None:
            raise ValueError(
                "Remapping the erased concept needs a surrogate: give `surrogate=` (a prompt) or train with retain "
                "batches, whose prompts (other concepts) are used."
            )
        source = ctx.task.condition(ctx.retain)  # type: ignore[attr-defined]
    else:
        source = surrogate
    index = torch.arange(size) % source.shape[0]
    return source[index.to(source.device)]
