"""State-dict arithmetic shared by the federated methods (FedAvg's weighted mean, updates, norms)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

State = dict[str, Tensor]


def weighted_mean(states: Sequence[Mapping[str, Tensor]], weights: Sequence[float]) -> State:
    """``Σ_i w_i·state_i / Σ_i w_i`` per entry (FedAvg's aggregation, McMahan et al. 2017, arXiv 1602.05629)."""
    if not states or len(states) != len(weights):
        raise ValueError(f"`states` and `weights` should be non-empty and of equal length, got {len(states)} and {len(weights)}.")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError(f"`weights` should sum to > 0, got {list(weights)}.")
    return {k: sum(float(w) * s[k].double() for s, w in zip(states, weights)).div(total).to(states[0][k].dtype) for k in states[0]}


def difference(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> State:
    """``a − b`` per entry."""
    return {k: a[k] - b[k] for k in a}


def add(a: Mapping[str, Tensor], b: Mapping[str, Tensor], scale: float = 1.0) -> State:
    """``a + scale·b`` per entry (entries of ``a`` missing from ``b`` are kept)."""
    return {k: a[k] + scale * b[k] if k in b else a[k].clone() for k in a}


def flat(state: Mapping[str, Tensor], keys: Sequence[str] | None = None) -> Tensor:
    """The entries ``keys`` (default: all) concatenated into one float64 vector."""
    return torch.cat([state[k].reshape(-1).double() for k in (keys if keys is not None else list(state))])


def unflat(vector: Tensor, like: Mapping[str, Tensor], keys: Sequence[str]) -> State:
    """Cut ``vector`` back into the shapes and dtypes of ``like[keys]``."""
    out, start = {}, 0
    for k in keys:
        n = like[k].numel()
        out[k] = vector[start : start + n].reshape(like[k].shape).to(like[k].dtype)
        start += n
    return out


def distance(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """Euclidean distance between two states over all their entries."""
    return float(torch.linalg.vector_norm(flat(a) - flat(b)))
