"""Projected gradient ascent by the leaving client (Halimi et al. 2022).

Halimi, Kadhe, Rawat, Baracaldo, "Federated Unlearning: How to Efficiently Erase a Client in FL?", ICML 2022
workshop on updatable ML (arXiv 2207.05521). The client to erase, ``f``, starts from the average of the *other*
clients' models of the last round, ``w_ref = (w − p_f w_f) / (1 − p_f)`` (``w`` the global model, ``w_f`` its own
last local model, ``p_f`` its data share), and maximises its loss by gradient ascent, each step projected back onto
the ball ``{w : ‖w − w_ref‖ ≤ δ}``, stopping early once its own accuracy falls below a threshold. The radius ``δ`` is
a third of the mean distance from ``w_ref`` to randomly initialised models. A few FedAvg rounds of the remaining
clients then recover utility.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_fraction, check_positive
from lightning_unlearn.federated.weights import State, distance


def reference_state(global_state: Mapping[str, Tensor], client_state: Mapping[str, Tensor], share: float) -> State:
    """The other clients' average ``(w − p_f·w_f) / (1 − p_f)``, recovered from FedAvg's mean ``w``."""
    check_fraction("share", share, inclusive_high=False)
    return {k: ((global_state[k].double() - share * client_state[k].double()) / (1.0 - share)).to(global_state[k].dtype) for k in global_state}


def ball_radius(reference: Mapping[str, Tensor], random_states: Sequence[Mapping[str, Tensor]], fraction: float = 1 / 3) -> float:
    """``fraction`` × the mean distance from ``reference`` to randomly initialised models (Halimi et al.: a third)."""
    check_positive("fraction", fraction)
    if not random_states:
        raise ValueError("`random_states` should hold at least one randomly initialised state dict, got none.")
    return fraction * sum(distance(reference, r) for r in random_states) / len(random_states)


@torch.no_grad()
def project_to_ball(model: nn.Module, center: Mapping[str, Tensor], radius: float) -> float:
    """Project ``model``'s parameters (in place) onto ``{w : ‖w − center‖₂ ≤ radius}``; returns the distance before."""
    check_positive("radius", radius, allow_zero=True)
    params = dict(model.named_parameters())
    deltas = {k: p.detach().double() - center[k].double().to(p.device) for k, p in params.items()}
    norm = float(torch.sqrt(sum((d * d).sum() for d in deltas.values())))
    if norm > radius:
        scale = radius / norm
        for k, p in params.items():
            p.copy_((center[k].double().to(p.device) + scale * deltas[k]).to(p.dtype))
    return norm


def projection_hook(model: nn.Module, center: Mapping[str, Tensor], radius: float) -> Callable[[], None]:
    """A ``FabricStepper(after_step=...)`` hook that keeps ``model`` inside the ball after every ascent step."""

    def hook() -> None:
        project_to_ball(model, center, radius)

    return hook
