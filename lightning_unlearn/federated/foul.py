"""FOUL: on-server federated unlearning (RECONSTRUCTED from shared/METHODS.md §12).

"FOUL" (arXiv 2603.13795, CVPR 2026). No public code was found; this file implements the method as the project's
notes specify it and chooses the defaults the notes do not give (documented in ``docs/federated.md``).

**Phase I (learning to unlearn, during federated training).** Every client trains
:class:`~lightning_unlearn.federated.model.FederatedNet` (extractor θ_E, causal encoder θ_K, non-causal encoder θ_V,
decoder θ_D, classifier θ_C) with

    ``L = CE(C([z_K, z_V]), y) + α_gtc·CE(C([z_K, 0]), y) + α_K·L_K + α_V·L_V + L_rec``

* ``L_K`` (:func:`prototype_loss`): pull same-class ``z_K`` to their class prototype (mean);
* ``L_V`` (:func:`variance_hinge`): ``(1/C) Σ_c mean_d max(0, 1 − sqrt(Var(z_V^c)_d + ε))``, push same-class ``z_V``
  apart up to unit spread;
* ``L_rec`` (:func:`reconstruction_loss`): ``MSE(D([z_K, z_V]), h) + β·KL(N(μ_V, σ_V²) ‖ N(0, 1))`` with ``μ_V, σ_V``
  the batch moments of ``z_V``.

Our choice (not in the notes): the classifier reads ``[z_K, z_V]`` and the *ground-truth-causal* term classifies from
``z_K`` alone (``z_V`` zeroed), so the class evidence every client shares is kept in θ_K and client-specific detail
may live in θ_V — which is what Phase II edits.

**Phase II (server only).** The server keeps each client's update of the θ_V entries from every training round,
as a gradient ``g_i^t = (w^t − w_i^t) / lr``. To remove client ``f`` it replays the rounds: with the remaining
clients' data shares ``Γ_i`` (the ``U ≪ d`` per-client scalars; our default — the notes do not say how Γ is
learned) it forms ``∇_FL = ∇_ΓR = Σ_{i≠f} Γ_i g_i``, ``∇_ΓF = g_f`` and steps θ_V along the closed form of
Theorem 1,

    ``∇_FOUL = ∇_FL + κ · ‖∇_FL‖ / ‖∇_ΓR − ∇_ΓF‖ · (∇_ΓR − ∇_ΓF)``,   ``θ_V ← θ_V − η·∇_FOUL``,

leaving θ_E, θ_K, θ_D, θ_C untouched. No client takes part: Phase II sends no message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_unlearn._errors import check_positive
from lightning_unlearn.federated.model import FederatedNet
from lightning_unlearn.federated.weights import State, flat, unflat
from lightning_unlearn.methods.base import LossOutput

#: Phase I defaults: our choice (the paper's values were not found; not tuned).
PHASE_ONE_DEFAULTS = {"alpha_v": 0.1, "alpha_k": 0.1, "alpha_gtc": 0.5, "beta_kl": 0.01}


def prototype_loss(z: Tensor, targets: Tensor) -> Tensor:
    """``mean_i ‖z_i − μ_{y_i}‖²`` with ``μ_c`` the batch mean of class ``c`` (pulls same-class codes together)."""
    classes, inverse = torch.unique(targets, return_inverse=True)
    sums = torch.zeros(classes.numel(), z.shape[1], dtype=z.dtype, device=z.device).index_add_(0, inverse, z)
    counts = torch.bincount(inverse, minlength=classes.numel()).to(z.dtype).unsqueeze(1)
    prototypes = sums / counts
    return (z - prototypes[inverse]).pow(2).sum(dim=1).mean()


def variance_hinge(z: Tensor, targets: Tensor, eps: float = 1e-4) -> Tensor:
    """``(1/C) Σ_c mean_d max(0, 1 − sqrt(Var(z^c)_d + eps))`` over the classes with ≥ 2 samples in the batch."""
    terms = []
    for c in torch.unique(targets):
        zc = z[targets == c]
        if zc.shape[0] >= 2:
            terms.append(F.relu(1.0 - torch.sqrt(zc.var(dim=0) + eps)).mean())
    if not terms:
        return z.sum() * 0.0
    return torch.stack(terms).mean()


def reconstruction_loss(h: Tensor, h_hat: Tensor, z_v: Tensor, beta_kl: float = 0.01, eps: float = 1e-6) -> Tensor:
    """``MSE(ĥ, h) + β·KL(N(μ, σ²) ‖ N(0, 1))`` summed over ``z_V``'s dimensions, ``μ, σ²`` its batch moments."""
    mu, var = z_v.mean(dim=0), z_v.var(dim=0, unbiased=False) + eps
    kl = 0.5 * (var + mu.pow(2) - 1.0 - torch.log(var)).sum()
    return F.mse_loss(h_hat, h.detach()) + beta_kl * kl


def phase_one_loss(
    model: FederatedNet,
    batch: Sequence[Tensor],
    *,
    alpha_v: float = PHASE_ONE_DEFAULTS["alpha_v"],
    alpha_k: float = PHASE_ONE_DEFAULTS["alpha_k"],
    alpha_gtc: float = PHASE_ONE_DEFAULTS["alpha_gtc"],
    beta_kl: float = PHASE_ONE_DEFAULTS["beta_kl"],
) -> LossOutput:
    """FOUL's Phase I objective on one ``(inputs, targets)`` batch, with its parts for logging."""
    x, y = batch[0], batch[1]
    h, z_k, z_v = model.encode(x)
    ce = F.cross_entropy(model.classifier(torch.cat([z_k, z_v], dim=1)), y)
    gtc = F.cross_entropy(model.classifier(torch.cat([z_k, torch.zeros_like(z_v)], dim=1)), y)
    l_k, l_v = prototype_loss(z_k, y), variance_hinge(z_v, y)
    rec = reconstruction_loss(h, model.decoder(torch.cat([z_k, z_v], dim=1)), z_v, beta_kl)
    loss = ce + alpha_gtc * gtc + alpha_k * l_k + alpha_v * l_v + rec
    parts = {"ce": ce, "gtc": gtc, "prototype": l_k, "variance": l_v, "reconstruction": rec}
    return LossOutput(loss=loss, parts={k: v.detach() for k, v in parts.items()})


def noncausal_keys(state: Mapping[str, Tensor]) -> list[str]:
    """The θ_V entries of a :class:`FederatedNet` state dict (the only ones Phase II changes)."""
    keys = [k for k in state if k.startswith("noncausal.")]
    if not keys:
        raise ValueError(f"The state dict has no 'noncausal.*' entries (not a FederatedNet?); its keys: {list(state)[:6]}...")
    return keys


def conflict_corrected_gradient(g_fl: Tensor, g_retain: Tensor, g_forget: Tensor, kappa: float = 1.0, eps: float = 1e-12) -> Tensor:
    """Theorem 1's closed form ``∇_FL + κ·‖∇_FL‖/‖∇_ΓR − ∇_ΓF‖·(∇_ΓR − ∇_ΓF)`` (``∇_FL`` where ``∇_ΓR = ∇_ΓF``)."""
    check_positive("kappa", kappa, allow_zero=True)
    diff = g_retain - g_forget
    norm = torch.linalg.vector_norm(diff)
    if norm <= eps:
        return g_fl.clone()
    return g_fl + kappa * torch.linalg.vector_norm(g_fl) / norm * diff


def client_gradients(global_state: Mapping[str, Tensor], client_states: Mapping[int, Mapping[str, Tensor]], lr: float) -> dict[int, Tensor]:
    """Each client's θ_V update of one round as a flat gradient ``(w − w_i) / lr`` (what the server stores)."""
    check_positive("lr", lr)
    keys = noncausal_keys(global_state)
    base = flat(global_state, keys)
    return {cid: (base - flat(s, keys)) / lr for cid, s in client_states.items()}


def phase_two(
    state: Mapping[str, Tensor],
    stored: Sequence[Mapping[int, Tensor]],
    shares: Mapping[int, float],
    leaving: int,
    *,
    kappa: float = 1.0,
    lr: float = 0.05,
) -> State:
    """Unlearn client ``leaving`` on the server from the stored per-round θ_V gradients; returns the new state.

    Args:
        state: The trained global model (a :class:`FederatedNet` state dict).
        stored: Per training round, ``{client id: flat θ_V gradient}`` (:func:`client_gradients`).
        shares: Every client's data share (the weights Γ; renormalised over the remaining clients).
        leaving: The client to remove.
        kappa: κ, the strength of the conflict correction.
        lr: η, the server's step size.
    """
    check_positive("lr", lr)
    if not stored:
        raise ValueError("`stored` should hold the client gradients of at least one training round, got none.")
    keys = noncausal_keys(state)
    theta = flat(state, keys)
    for round_grads in stored:
        if leaving not in round_grads:
            continue
        remaining = [c for c in round_grads if c != leaving]
        total = sum(shares[c] for c in remaining)
        g_r = sum(shares[c] / total * round_grads[c] for c in remaining)
        theta = theta - lr * conflict_corrected_gradient(g_r, g_r, round_grads[leaving], kappa)
    out = {k: v.clone() for k, v in state.items()}
    out.update(unflat(theta, state, keys))
    return out
