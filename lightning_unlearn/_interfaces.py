"""The small interfaces that the report and the attacks read from a run, so that they depend on these few
attributes instead of on :class:`~lightning_unlearn.UnlearningModule` (duck typing, checked with ``isinstance``
on a ``runtime_checkable`` :class:`typing.Protocol`).

``UnlearningModule`` satisfies all of them; any LightningModule that has the attributes gets the same treatment
(e.g. a user's own module unlearning with the :class:`~lightning_unlearn.Unlearn` callback).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from torch import nn

from lightning_unlearn.tasks.base import Task

__all__ = ["MethodInfo", "UnlearningRun", "WeightFiles", "method_of", "weight_file"]


@runtime_checkable
class MethodInfo(Protocol):
    """What a report records of an unlearning method: its registered ``name`` and its ``hparams()``."""

    name: str

    def hparams(self) -> Mapping[str, Any]: ...


@runtime_checkable
class WeightFiles(Protocol):
    """Where the weights to compare against are: ``original`` (the model before unlearning) and ``oracle_path``
    (the model retrained without the forget set), files of ``torch.save(state_dict)``, or ``None``."""

    original: str | os.PathLike | None
    oracle_path: str | os.PathLike | None


@runtime_checkable
class UnlearningRun(WeightFiles, Protocol):
    """Everything the report and the attacks read from the LightningModule of an unlearning run: the ``model``
    being unlearned, its ``task``, the ``method``, and the :class:`WeightFiles`."""

    model: nn.Module
    task: Task
    method: MethodInfo


def weight_file(module: Any, name: str) -> str | os.PathLike | None:
    """``module.<name>`` (``"original"`` or ``"oracle_path"``) when ``module`` is a :class:`WeightFiles` and the
    value names a file, else ``None``."""
    value = getattr(module, name, None) if isinstance(module, WeightFiles) else None
    return value if isinstance(value, (str, os.PathLike)) else None


def method_of(module: Any, callbacks: Iterable[Any] = ()) -> MethodInfo | None:
    """The unlearning method of a run: ``module.method``, else the ``method`` of the first callback that has one
    (the :class:`~lightning_unlearn.Unlearn` callback on a user's module), else ``None``."""
    for owner in (module, *callbacks):
        method = getattr(owner, "method", None)
        if isinstance(method, MethodInfo):
            return method
    return None
