"""MPU's perturbations, reparameterisation and harmonic aggregation against their closed forms (tiny Llama)."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.federated.mpu import (
    attention_rotations,
    ffn_permutations,
    harmonic_aggregate,
    mpu_round,
    permute_ffn,
    perturbations,
    perturbed_copies,
    reparameterize_state,
    rotate_attention,
)

pytest.importorskip("transformers")


def _tiny():
    from lightning_unlearn.models.llm import tiny_llama

    return tiny_llama(64, hidden_size=16, num_layers=2, num_heads=2, seed=0)


def test_perturbations_cancel_under_the_harmonic_weights_and_scale_with_rms():
    state = {"w": torch.randn(200, 50, dtype=torch.float64) * 3.0, "step": torch.tensor(4)}
    alphas = [0.5, 1.0, 2.0]
    eps = perturbations(state, 3, kappa=0.1, alphas=alphas, generator=torch.Generator().manual_seed(0))
    assert "step" not in eps[0]  # integer entries are never perturbed
    total = sum(e["w"] / a for e, a in zip(eps, alphas))
    torch.testing.assert_close(total, torch.zeros_like(total), atol=1e-10, rtol=0)
    rms = float(state["w"].pow(2).mean().sqrt())
    # ε⁰ keeps the variance of z: std(ε_k) ≈ α_k·κ·RMS(θ)
    for e, a in zip(eps, alphas):
        assert float(e["w"].std()) == pytest.approx(a * 0.1 * rms, rel=0.05)


def test_ffn_permutation_preserves_the_function_and_inverts():
    model = _tiny()
    state = {k: v.clone() for k, v in model.state_dict().items()}  # load_state_dict below writes into the model's own
    perms = ffn_permutations(state, torch.Generator().manual_seed(1))
    assert len(perms) == 2
    permuted = permute_ffn(state, perms)
    assert not torch.equal(permuted["model.layers.0.mlp.up_proj.weight"], state["model.layers.0.mlp.up_proj.weight"])
    assert_same_function(model, state, permuted)
    back = permute_ffn(permuted, perms, inverse=True)
    for k in state:
        torch.testing.assert_close(back[k], state[k])


def logits(model, state, ids=None) -> torch.Tensor:
    """``model``'s logits with ``state`` loaded, on seeded token ids."""
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(0)) if ids is None else ids
    model.load_state_dict(state)
    with torch.no_grad():
        return model(ids).logits


def assert_same_function(model, state, transformed) -> None:
    torch.testing.assert_close(logits(model, transformed), logits(model, state), atol=1e-5, rtol=1e-5)


def _gqa():
    """4 query heads sharing 2 KV heads (grouped-query attention, as SmolLM2), head size 8, attention biases on."""
    from lightning_unlearn.models.llm import tiny_llama

    return tiny_llama(64, hidden_size=32, num_layers=2, num_heads=4, num_key_value_heads=2, attention_bias=True, seed=0)


def test_attention_rotations_are_orthogonal_rope_plane_rotations():
    state = _gqa().state_dict()
    rotations = attention_rotations(state, 8, torch.Generator().manual_seed(0))
    assert set(rotations) == {"model.layers.0.self_attn", "model.layers.1.self_attn"}
    s = rotations["model.layers.0.self_attn"]
    assert s.shape == (2, 8, 8)  # one per KV head
    torch.testing.assert_close(s @ s.transpose(-1, -2), torch.eye(8, dtype=torch.float64).expand(2, 8, 8))
    nonzero = (s[0].abs() > 0).nonzero().tolist()
    assert all(j in (i, (i + 4) % 8) for i, j in nonzero)  # only the RoPE planes (i, i + d/2) mix


def test_attention_rotation_preserves_the_function_and_inverts():
    model = _gqa()
    generator = torch.Generator().manual_seed(4)
    state = {k: torch.randn(v.shape, generator=generator) if k.endswith("bias") else v.clone() for k, v in model.state_dict().items()}
    for key in state:  # sharper attention than at initialisation, so that positions (RoPE) matter in the logits
        if key.endswith(("q_proj.weight", "k_proj.weight")):
            state[key] = state[key] * 20
    model.load_state_dict(state)  # and non-zero biases (initialised at 0), so that rotating them is checked too
    transform = {**ffn_permutations(state, torch.Generator().manual_seed(1)), **attention_rotations(state, 8, torch.Generator().manual_seed(2))}
    rotated = reparameterize_state(state, transform)
    for part in ("q_proj.weight", "q_proj.bias", "k_proj.weight", "v_proj.weight", "o_proj.weight"):
        key = f"model.layers.1.self_attn.{part}"
        assert not torch.allclose(rotated[key], state[key]), f"{key} unchanged"
    assert_same_function(model, state, rotated)
    back = reparameterize_state(rotated, transform, inverse=True)
    for k in state:
        torch.testing.assert_close(back[k], state[k])
    # a rotation that ignores RoPE's planes (a generic orthogonal S per KV head) does not preserve the function
    generic = {p: torch.linalg.qr(torch.randn(2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))[0] for p in transform if p.endswith("self_attn")}
    gap = (logits(model, rotate_attention(state, generic)) - logits(model, state)).abs().max()
    assert gap > 1e-3  # (the RoPE-plane rotation: < 1e-6)


def test_attention_rotation_errors_name_the_head_size():
    state = _gqa().state_dict()
    with pytest.raises(ValueError, match="`head_dim` should be even"):
        attention_rotations(state, 7, torch.Generator())
    with pytest.raises(ValueError, match=r"`head_dim`=12 does not divide the 16 rows of model.layers.0.self_attn.k_proj.weight"):
        attention_rotations(state, 12, torch.Generator())


def test_a_linear_client_update_comes_back_noise_free_with_rotations():
    state = _gqa().state_dict()
    copies, _ = perturbed_copies(state, 2, kappa=0.0, alphas=[1.0, 1.0], seed=0, head_dim=8)
    key = "model.layers.0.self_attn.k_proj.weight"
    assert not torch.allclose(copies[0][key], state[key])  # rotated even without noise
    new = mpu_round(state, lambda copy: {k: 0.1 * v for k, v in copy.items()}, m=2, kappa=0.1, seed=1, head_dim=8)
    for k, v in state.items():
        torch.testing.assert_close(new[k], 1.1 * v, atol=1e-6, rtol=1e-5)


def test_harmonic_aggregate_closed_form():
    out = harmonic_aggregate([{"w": torch.tensor([1.0])}, {"w": torch.tensor([4.0])}], [1.0, 2.0])
    # (1/1·1 + 1/2·4) / (1 + 1/2) = 3 / 1.5
    torch.testing.assert_close(out["w"], torch.tensor([2.0]))


def test_the_client_never_receives_the_true_weights():
    state = _tiny().state_dict()
    copies, _ = perturbed_copies(state, 3, kappa=0.05, alphas=[1.0, 1.0, 1.0], seed=0)
    for copy in copies:
        for k, v in state.items():
            if v.is_floating_point():
                assert not torch.allclose(copy[k], v), f"{k} was sent unperturbed"
    # the mean of the copies (undoing each permutation would need the server's secret) is still not θ exactly
    assert not torch.equal(copies[0]["model.embed_tokens.weight"], copies[1]["model.embed_tokens.weight"])


def test_a_linear_client_update_comes_back_noise_free():
    """For Δ'(θ') = c·θ' the noise cancels exactly: θ + Δ = (1 + c)·θ, whatever the copies and permutations."""
    state = _tiny().state_dict()
    new = mpu_round(state, lambda copy: {k: 0.1 * v for k, v in copy.items()}, m=3, kappa=0.1, alphas=[0.5, 1.0, 2.0], seed=3)
    for k, v in state.items():
        torch.testing.assert_close(new[k], 1.1 * v, atol=1e-6, rtol=1e-5)


def test_bad_alphas_are_named():
    with pytest.raises(ValueError, match="alphas"):
        mpu_round({"w": torch.ones(2)}, lambda c: c, m=2, alphas=[1.0])
    with pytest.raises(ValueError, match="`m`"):
        mpu_round({"w": torch.ones(2)}, lambda c: c, m=1)
