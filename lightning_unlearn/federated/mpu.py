"""MPU: unlearning on a client that never sees the server's weights (multiple perturbed copies).

"MPU" (arXiv 2602.23798; basis: the authors' code, github.com/Tristan0318/MPU, ``src/trainer/pum_utils.py``). The
server holds θ; the data owner holds the forget set. Per round the server

1. draws, per parameter tensor ``l``, ``z_k ~ N(0, σ_l²)`` with ``σ_l = κ·RMS(θ_l)`` for ``k = 1..m`` (m ≥ 2),
   centres them, ``ε⁰_k = sqrt(m/(m−1))·(z_k − mean_k z)``, and scales ``ε_k = α_k·ε⁰_k`` — so that
   ``Σ_k ε_k/α_k = 0``;
2. optionally applies a function-preserving reparameterisation ``T_k`` (here: a random permutation of every
   Llama-style FFN's hidden units — rows of ``gate_proj``/``up_proj``, columns of ``down_proj``);
3. sends the copies ``θ_k = T_k(θ + ε_k)``; the client runs any of the library's unlearning methods on its forget
   set on each copy and returns only the updates ``Δ'_k``;
4. maps them back, ``Δ_k = T_k⁻¹(Δ'_k)``, and aggregates harmonically, ``Δ = Σ_k Δ_k/α_k / Σ_k 1/α_k`` (float32
   or wider accumulation), ``θ ← θ + Δ``.

Implemented here: steps 1–4 with the FFN permutation; the attention-head rotations of the paper are not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from lightning_unlearn._errors import check_int, check_positive
from lightning_unlearn.federated.weights import State

_FFN = re.compile(r"^(?P<prefix>.*\.mlp)\.(?P<part>gate_proj|up_proj|down_proj)\.weight$")


def check_alphas(alphas: Sequence[float], m: int) -> list[float]:
    check_int("m", m, minimum=2)
    alphas = [float(a) for a in alphas]
    if len(alphas) != m or any(a <= 0 for a in alphas):
        raise ValueError(f"`alphas` should hold m={m} positive scales (one per copy), got {alphas}.")
    return alphas


def perturbations(state: Mapping[str, Tensor], m: int, kappa: float, alphas: Sequence[float], generator: torch.Generator) -> list[State]:
    """The ``m`` noise draws ``ε_k`` (floating-point entries only), centred so that ``Σ_k ε_k/α_k = 0``."""
    check_positive("kappa", kappa, allow_zero=True)
    alphas = check_alphas(alphas, m)
    out: list[State] = [{} for _ in range(m)]
    for key, value in state.items():
        if not value.is_floating_point():
            continue
        sigma = kappa * float(value.double().pow(2).mean().sqrt())
        z = torch.randn((m, *value.shape), generator=generator, dtype=torch.float64) * sigma
        eps0 = math.sqrt(m / (m - 1)) * (z - z.mean(dim=0, keepdim=True))
        for k in range(m):
            out[k][key] = (alphas[k] * eps0[k]).to(value.dtype)
    return out


def ffn_permutations(state: Mapping[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
    """A random permutation of the hidden units of every Llama-style FFN (``<prefix>.mlp.{gate,up,down}_proj``)."""
    perms = {}
    for key, value in state.items():
        match = _FFN.match(key)
        if match and match["part"] == "up_proj":
            perms[match["prefix"]] = torch.randperm(value.shape[0], generator=generator)
    return perms


def permute_ffn(state: Mapping[str, Tensor], perms: Mapping[str, Tensor], *, inverse: bool = False) -> State:
    """``T(state)`` (or ``T⁻¹``): permute the FFN hidden units; a linear map, so it applies to updates as well."""
    out = dict(state)
    for key, value in state.items():
        match = _FFN.match(key)
        if not match or match["prefix"] not in perms:
            continue
        perm = perms[match["prefix"]]
        if inverse:
            perm = torch.argsort(perm)
        out[key] = value[:, perm] if match["part"] == "down_proj" else value[perm]
    return out


def harmonic_aggregate(updates: Sequence[Mapping[str, Tensor]], alphas: Sequence[float]) -> State:
    """``Σ_k Δ_k/α_k / Σ_k 1/α_k`` per entry, accumulated in float64."""
    alphas = check_alphas(alphas, len(updates))
    norm = sum(1.0 / a for a in alphas)
    return {k: (sum(u[k].double() / a for u, a in zip(updates, alphas)) / norm).to(updates[0][k].dtype) for k in updates[0]}


def perturbed_copies(
    state: Mapping[str, Tensor], m: int, kappa: float, alphas: Sequence[float], *, seed: int = 0, reparameterize: bool = True
) -> tuple[list[State], list[dict[str, Tensor]]]:
    """The ``m`` copies ``T_k(θ + ε_k)`` to send, and the permutations to invert their updates with."""
    generator = torch.Generator().manual_seed(seed)
    noise = perturbations(state, m, kappa, alphas, generator)
    copies, perms = [], []
    for eps in noise:
        noisy = {k: v + eps[k] if k in eps else v.clone() for k, v in state.items()}
        p = ffn_permutations(state, generator) if reparameterize else {}
        copies.append(permute_ffn(noisy, p))
        perms.append(p)
    return copies, perms


def mpu_round(
    state: Mapping[str, Tensor],
    client: Callable[[State], State],
    *,
    m: int = 2,
    kappa: float = 0.1,
    alphas: Sequence[float] | None = None,
    seed: int = 0,
    reparameterize: bool = True,
) -> State:
    """One MPU round: ``client(copy) -> update`` is called on each perturbed copy (through Flower in
    :mod:`lightning_unlearn.federated.apps`, or directly); returns ``θ + Δ``. ``alphas`` defaults to all ones."""
    alphas = check_alphas(alphas if alphas is not None else [1.0] * m, m)
    copies, perms = perturbed_copies(state, m, kappa, alphas, seed=seed, reparameterize=reparameterize)
    updates = [permute_ffn(client(c), p, inverse=True) for c, p in zip(copies, perms)]
    delta = harmonic_aggregate(updates, alphas)
    return {k: v + delta[k] if k in delta else v.clone() for k, v in state.items()}
