"""MPU's data-owner side: tied weights travel once, the model choices, and SmolLM2's reparameterisation."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.federated import mpu_lm
from lightning_unlearn.federated.mpu import mpu_round, perturbed_copies, reparameterize_state

pytest.importorskip("transformers")


def _tied():
    """A tiny Llama whose output head is tied to its input embeddings (as SmolLM2's), 2 KV heads for 4 query heads."""
    from lightning_unlearn.models.llm import tiny_llama

    return tiny_llama(64, hidden_size=32, num_layers=2, num_heads=4, num_key_value_heads=2, tie_word_embeddings=True, seed=0)


def test_model_state_sends_a_tied_weight_once_and_loads_back():
    model = _tied()
    assert mpu_lm.tied_aliases(model) == {"lm_head.weight"}
    state = mpu_lm.model_state(model)
    assert "lm_head.weight" not in state and "model.embed_tokens.weight" in state
    assert set(state) == set(model.state_dict()) - {"lm_head.weight"}
    changed = {k: v + 1.0 for k, v in state.items()}
    mpu_lm.load_model_state(model, changed)
    torch.testing.assert_close(model.lm_head.weight, changed["model.embed_tokens.weight"])  # still tied, one value
    # clones: changing the model does not change a state taken before
    assert not torch.equal(state["model.norm.weight"], model.model.norm.weight)


def test_load_model_state_names_what_does_not_fit():
    model = _tied()
    state = mpu_lm.model_state(model)
    with pytest.raises(ValueError, match=r"missing \['model.norm.weight'\]"):
        mpu_lm.load_model_state(model, {k: v for k, v in state.items() if k != "model.norm.weight"})
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        mpu_lm.load_model_state(model, {**state, "extra": torch.zeros(1)})


def test_a_linear_update_on_a_tied_model_comes_back_noise_free():
    """The copy the client loads is the copy the server perturbed (one noise draw for the tied pair), so a linear
    client update Δ'(θ') = c·θ' cancels the noise exactly, rotations and permutations included."""
    model = _tied()
    state = mpu_lm.model_state(model)

    def client(copy):
        mpu_lm.load_model_state(model, copy)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.1)
        return mpu_lm.update(copy, mpu_lm.model_state(model))

    new = mpu_round(state, client, m=2, kappa=0.1, seed=2, head_dim=mpu_lm.head_dim(model))
    for k, v in state.items():
        torch.testing.assert_close(new[k], 1.1 * v, atol=1e-6, rtol=1e-5)


def test_head_dim_and_model_names():
    assert mpu_lm.head_dim(_tied()) == 8
    with pytest.raises(ValueError, match=r"`model` should be one of \['tiny', 'smollm2'\], got 'gpt2'"):
        mpu_lm.build_lm(None, model="gpt2")


@pytest.mark.slow
def test_smollm2_copies_keep_its_function_and_tie():
    """On SmolLM2-135M-Instruct (GQA: 9 query heads on 3 KV heads of size 64, tied embeddings) a reparameterised copy
    without noise computes the same logits; the tied output head is sent once."""
    tokenizer, forget, _ = mpu_lm.authors_setup(2, 1, 0, model="smollm2")
    model = mpu_lm.build_lm(tokenizer, model="smollm2").eval()
    assert mpu_lm.head_dim(model) == 64 and mpu_lm.tied_aliases(model) == {"lm_head.weight"}
    state = mpu_lm.model_state(model)
    ids = tokenizer(forget[0]["question"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = model(ids).logits
    copies, transforms = perturbed_copies(state, 2, kappa=0.0, alphas=[1.0, 1.0], seed=0, head_dim=64)
    key = "model.layers.3.self_attn.k_proj.weight"
    assert not torch.allclose(copies[0][key], state[key])
    mpu_lm.load_model_state(model, copies[0])
    with torch.no_grad():
        after = model(ids).logits
    torch.testing.assert_close(after, before, atol=2e-3, rtol=1e-3)
    back = reparameterize_state(copies[0], transforms[0], inverse=True)
    torch.testing.assert_close(back[key], state[key], atol=1e-6, rtol=1e-5)
