"""MPU: unlearning on a client that never sees the server's weights (multiple perturbed copies).

"MPU" (arXiv 2602.23798; basis: the authors' code, github.com/Tristan0318/MPU, ``src/trainer/pum_utils.py``). The
server holds θ; the data owner holds the forget set. Per round the server

1. draws, per parameter tensor ``l``, ``z_k ~ N(0, σ_l²)`` with ``σ_l = κ·RMS(θ_l)`` for ``k = 1..m`` (m ≥ 2),
   centres them, ``ε⁰_k = sqrt(m/(m−1))·(z_k − mean_k z)``, and scales ``ε_k = α_k·ε⁰_k`` — so that
   ``Σ_k ε_k/α_k = 0``;
2. optionally applies a function-preserving reparameterisation ``T_k``: a random permutation of every Llama-style
   FFN's hidden units (rows of ``gate_proj``/``up_proj``, columns of ``down_proj``) and, given the head size, a random
   orthogonal ``S_g`` per KV head of every attention block (``W_Q, W_K, W_V ← Sᵀ·`` per head, ``W_O ← ·S``), made
   of independent 2-D rotations of the planes ``(i, i + d_h/2)`` so that it commutes with RoPE;
3. sends the copies ``θ_k = T_k(θ + ε_k)``; the client runs any of the library's unlearning methods on its forget
   set on each copy and returns only the updates ``Δ'_k``;
4. maps them back, ``Δ_k = T_k⁻¹(Δ'_k)``, and aggregates harmonically, ``Δ = Σ_k Δ_k/α_k / Σ_k 1/α_k`` (float32
   or wider accumulation), ``θ ← θ + Δ``.

Implemented here: steps 1–4, both reparameterisations (the attention rotation is opt-in: ``head_dim``). Unlike the
permutation, a rotation does not commute with Adam's per-coordinate step, so a client using Adam returns a slightly
different (rotated-basis) update — part of the degradation the paper measures.
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
_ATTENTION = re.compile(r"^(?P<prefix>.*\.self_attn)\.(?P<part>q_proj|k_proj|v_proj|o_proj)\.(?P<kind>weight|bias)$")


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


def attention_rotations(state: Mapping[str, Tensor], head_dim: int, generator: torch.Generator) -> dict[str, Tensor]:
    """Random orthogonal ``S_g`` ``[n_kv_heads, d_h, d_h]`` for every Llama-style attention block
    (``<prefix>.self_attn.{q,k,v,o}_proj``): per KV head, independent 2-D rotations by uniform angles of the planes
    ``(i, i + d_h/2)`` — the pairs Hugging Face's RoPE (``rotate_half``) rotates, so ``S_g`` commutes with RoPE."""
    check_int("head_dim", head_dim, minimum=2)
    if head_dim % 2:
        raise ValueError(f"`head_dim` should be even (RoPE rotates pairs of dimensions), got {head_dim}.")
    half = head_dim // 2
    out = {}
    for key, value in state.items():
        match = _ATTENTION.match(key)
        if not (match and match["part"] == "k_proj" and match["kind"] == "weight"):
            continue
        if value.shape[0] % head_dim:
            raise ValueError(f"`head_dim`={head_dim} does not divide the {value.shape[0]} rows of {key}.")
        angles = torch.rand(value.shape[0] // head_dim, half, generator=generator, dtype=torch.float64) * (2 * math.pi)
        cos, sin = angles.cos(), angles.sin()
        rotation = torch.zeros(len(angles), head_dim, head_dim, dtype=torch.float64)
        i = torch.arange(half)
        rotation[:, i, i] = cos
        rotation[:, i + half, i + half] = cos
        rotation[:, i, i + half] = -sin
        rotation[:, i + half, i] = sin
        out[match["prefix"]] = rotation
    return out


def rotate_attention(state: Mapping[str, Tensor], rotations: Mapping[str, Tensor], *, inverse: bool = False) -> State:
    """``T(state)`` (or ``T⁻¹``) of :func:`attention_rotations`: every query head ``h`` of KV group ``g`` and that
    KV head get ``W ← S_gᵀ W`` (and their biases ``b ← S_gᵀ b``), the output projection's columns of head ``h``
    ``W_O,h ← W_O,h S_g``; ``q·k`` and ``W_O v`` are unchanged. Linear, so it applies to updates as well."""
    out = dict(state)
    for key, value in state.items():
        match = _ATTENTION.match(key)
        if not match or match["prefix"] not in rotations:
            continue
        rotation = rotations[match["prefix"]]  # [n_kv, d, d]
        n_kv, d = rotation.shape[0], rotation.shape[-1]
        if inverse:
            rotation = rotation.transpose(-1, -2)
        if match["part"] == "o_proj":  # columns: [out, n_heads·d]
            if match["kind"] == "bias":
                continue  # the output bias is added after the heads are summed
            heads = value.double().reshape(value.shape[0], -1, d)
            group = rotation.repeat_interleave(heads.shape[1] // n_kv, dim=0)  # query head h uses KV head h // n_rep
            out[key] = torch.einsum("ohd,hde->ohe", heads, group).reshape(value.shape).to(value.dtype)
            continue
        heads = value.double().reshape(-1, d, *value.shape[1:])  # rows: [n_heads·d, in] or [n_heads·d]
        group = rotation.repeat_interleave(heads.shape[0] // n_kv, dim=0)
        rotated = torch.einsum("hed,hd...->he...", group.transpose(-1, -2), heads)
        out[key] = rotated.reshape(value.shape).to(value.dtype)
    return out


def reparameterize_state(state: Mapping[str, Tensor], transform: Mapping[str, Tensor], *, inverse: bool = False) -> State:
    """Apply (or invert) a copy's reparameterisation: the FFN permutations and attention rotations in ``transform``
    (keyed by the ``...mlp`` / ``...self_attn`` prefixes they act on)."""
    return rotate_attention(permute_ffn(state, transform, inverse=inverse), transform, inverse=inverse)


def harmonic_aggregate(updates: Sequence[Mapping[str, Tensor]], alphas: Sequence[float]) -> State:
    """``Σ_k Δ_k/α_k / Σ_k 1/α_k`` per entry, accumulated in float64."""
    alphas = check_alphas(alphas, len(updates))
    norm = sum(1.0 / a for a in alphas)
    return {k: (sum(u[k].double() / a for u, a in zip(updates, alphas)) / norm).to(updates[0][k].dtype) for k in updates[0]}


def perturbed_copies(
    state: Mapping[str, Tensor],
    m: int,
    kappa: float,
    alphas: Sequence[float],
    *,
    seed: int = 0,
    reparameterize: bool = True,
    head_dim: int | None = None,
) -> tuple[list[State], list[dict[str, Tensor]]]:
    """The ``m`` copies ``T_k(θ + ε_k)`` to send, and the transforms to invert their updates with
    (:func:`reparameterize_state`). ``reparameterize``: FFN permutations, plus attention rotations when ``head_dim``
    (the attention head size) is given."""
    generator = torch.Generator().manual_seed(seed)
    noise = perturbations(state, m, kappa, alphas, generator)
    copies, transforms = [], []
    for eps in noise:
        noisy = {k: v + eps[k] if k in eps else v.clone() for k, v in state.items()}
        t = ffn_permutations(state, generator) if reparameterize else {}
        if reparameterize and head_dim is not None:
            t.update(attention_rotations(state, head_dim, generator))
        copies.append(reparameterize_state(noisy, t))
        transforms.append(t)
    return copies, transforms


def mpu_round(
    state: Mapping[str, Tensor],
    client: Callable[[State], State],
    *,
    m: int = 2,
    kappa: float = 0.1,
    alphas: Sequence[float] | None = None,
    seed: int = 0,
    reparameterize: bool = True,
    head_dim: int | None = None,
) -> State:
    """One MPU round: ``client(copy) -> update`` is called on each perturbed copy (through Flower in
    :mod:`lightning_unlearn.federated.apps`, or directly); returns ``θ + Δ``. ``alphas`` defaults to all ones;
    ``head_dim`` (the LM's attention head size) adds the attention rotations to the reparameterisation."""
    alphas = check_alphas(alphas if alphas is not None else [1.0] * m, m)
    copies, transforms = perturbed_copies(state, m, kappa, alphas, seed=seed, reparameterize=reparameterize, head_dim=head_dim)
    updates = [reparameterize_state(client(c), t, inverse=True) for c, t in zip(copies, transforms)]
    delta = harmonic_aggregate(updates, alphas)
    return {k: v + delta[k] if k in delta else v.clone() for k, v in state.items()}
