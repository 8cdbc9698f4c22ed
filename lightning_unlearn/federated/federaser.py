"""FedEraser: unlearn a client by replaying the remaining clients' stored updates, calibrated.

Liu, Ma, Yang, Wang, Liu, "FedEraser: Enabling Efficient Client-Level Data Removal from Federated Learning
Models", IEEE/ACM IWQoS 2021 (arXiv 2111.08096). During training the server keeps every client's update
``U_i^t = w_i^t − w^t`` at every ``interval``-th round. To remove client ``f`` it rebuilds the global model from the
initial weights, one *calibration round* per kept round: the remaining clients train briefly from the rebuilt model
``ŵ^t`` (``calibration_ratio`` of the original local epochs), giving ``Û_i^t``, and the server applies

    ``Ũ_i^t = ‖U_i^t‖ · Û_i^t / ‖Û_i^t‖``  (per layer),   ``ŵ^{t+1} = ŵ^t + Σ_{i≠f} p_i Ũ_i^t``

(the stored update's length, the calibration update's direction), with ``p_i`` the remaining clients' data shares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from lightning_unlearn.federated.weights import State, add, weighted_mean


def calibrate(old_update: Mapping[str, Tensor], new_update: Mapping[str, Tensor], eps: float = 1e-12) -> State:
    """FedEraser's calibration per entry (layer): ``‖old‖ · new / ‖new‖`` (zero where ``new`` is zero)."""
    out = {}
    for k, new in new_update.items():
        old_norm = torch.linalg.vector_norm(old_update[k].double())
        new_norm = torch.linalg.vector_norm(new.double())
        scale = old_norm / new_norm if new_norm > eps else torch.zeros((), dtype=torch.float64)
        out[k] = (new.double() * scale).to(new.dtype)
    return out


def calibrated_step(
    rebuilt: Mapping[str, Tensor],
    old_updates: Sequence[Mapping[str, Tensor]],
    new_updates: Sequence[Mapping[str, Tensor]],
    weights: Sequence[float],
) -> State:
    """One FedEraser round: ``ŵ + Σ_i p_i · calibrate(U_i, Û_i)`` over the remaining clients."""
    if not (len(old_updates) == len(new_updates) == len(weights)):
        raise ValueError(
            f"`old_updates`, `new_updates` and `weights` should have one entry per remaining client, got "
            f"{len(old_updates)}, {len(new_updates)} and {len(weights)}."
        )
    calibrated = [calibrate(o, n) for o, n in zip(old_updates, new_updates)]
    return add(dict(rebuilt), weighted_mean(calibrated, weights))
