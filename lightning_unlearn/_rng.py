"""The process's global random state (torch, CUDA, NumPy, Python) as checkpoint-safe values.

Checkpoints are read with ``torch.load(weights_only=True)``, which admits tensors and plain Python values but not
NumPy arrays, so NumPy's state is stored as a tensor. A run resumed from a checkpoint restores the state when its
first training batch starts (:class:`PendingRNG`): whatever consumed random numbers between loading the checkpoint
and that batch (a sanity check, creating data iterators) then changes nothing, and dropout masks and random
relabelling continue exactly as in the uninterrupted run.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def collect_rng_states() -> dict[str, Any]:
    """The global random states, as tensors and plain values."""
    version, state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(state), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`collect_rng_states` returned."""
    torch.set_rng_state(states["torch"])
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class PendingRNG:
    """Random states loaded from a checkpoint, applied once when training resumes (:meth:`apply`)."""

    def __init__(self) -> None:
        self._states: dict[str, Any] | None = None

    def load(self, states: dict[str, Any] | None) -> None:
        self._states = states

    def apply(self) -> None:
        if self._states is not None:
            set_rng_states(self._states)
            self._states = None
