"""Retrain: seeded re-initialisation, then L = α·CE(θ; D_r)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from llm_toys import LM_FAMILIES, tiny_causal_lm
from torch import nn

from lightning_unlearn.methods import METHODS, Retrain
from lightning_unlearn.models import MLP, SmallCNN, ViTClassifier
from lightning_unlearn.tasks import CausalLMTask

from ._toy import batch, context, mlp, perturbed, pretrained, setup, snapshot


def test_registered():
    assert METHODS.get("retrain") is Retrain
    assert not Retrain.uses_forget and not Retrain.needs_reference


def test_reinitialisation_matches_a_seeded_reset():
    model = pretrained()
    setup(Retrain(seed=5), model)
    expected = mlp()
    torch.manual_seed(5)
    for module in expected.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    trained = snapshot(pretrained())
    for key, value in snapshot(model).items():
        assert torch.equal(value, expected.state_dict()[key]), key
        assert not torch.equal(value, trained[key]), key


def test_reinitialisation_is_seeded():
    a, b, c = pretrained(), pretrained(), pretrained()
    setup(Retrain(seed=0), a)
    setup(Retrain(seed=0), b)
    setup(Retrain(seed=1), c)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not any(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))


def test_reinitialisation_leaves_the_global_rng_alone():
    model = pretrained()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    setup(Retrain(seed=9), model)
    assert torch.equal(torch.rand(3), expected)


def test_a_parameter_nothing_reinitialises_is_an_error_and_the_model_is_left_unchanged():
    class WithScale(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.full((2,), 7.0))  # no reset_parameters() covers it
            self.lin = nn.Linear(2, 2)

    model = WithScale()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"cannot re-initialise 1 of the model's 3 parameters: \['scale'\] \(in \['WithScale'\]\)"):
        setup(Retrain(), model)
    for key, value in snapshot(model).items():
        assert torch.equal(value, before[key]), key
    setup(Retrain(reinitialize=False), model)  # plain fine-tuning keeps it, as documented


def _trained(model: nn.Module, seed: int = 1) -> nn.Module:
    """``model`` with every parameter moved off its initial value (as training would: biases off 0, norms off 1)."""
    return perturbed(model, scale=0.05, seed=seed)


def _unique_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("family", LM_FAMILIES)
def test_every_parameter_of_a_causal_lm_is_reinitialised_by_its_own_init(family):
    model = _trained(tiny_causal_lm(family))
    trained = _unique_parameters(model)
    Retrain(seed=0).setup(model, CausalLMTask())
    kept = [n for n, p in model.named_parameters() if torch.equal(p, trained[n])]
    assert kept == []
    # drawn the model's own way (its `_init_weights`, e.g. normal(0, 0.02) for every matrix, GPT-2's scaled c_proj),
    # not by PyTorch's default Linear init: each matrix's spread is that of a freshly built model's
    fresh = dict(tiny_causal_lm(family, seed=5).named_parameters())
    for name, p in model.named_parameters():
        if p.dim() == 2:
            assert abs(float(p.detach().std()) / float(fresh[name].detach().std()) - 1) < 0.15, name
    embeddings = model.get_input_embeddings().weight
    if model.config.tie_word_embeddings:
        assert model.get_output_embeddings().weight is embeddings


def test_gpt2_conv1d_and_norms_are_reinitialised():
    model = _trained(tiny_causal_lm("gpt2"))
    for module in model.modules():  # as `from_pretrained` leaves them: transformers' init skips what is marked
        module._is_hf_initialized = True
        for p in module.parameters(recurse=False):
            p._is_hf_initialized = True
    trained = _unique_parameters(model)
    Retrain(seed=0).setup(model, CausalLMTask())
    assert [n for n, p in model.named_parameters() if torch.equal(p, trained[n])] == []
    block = model.transformer.h[0]
    for conv in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
        assert type(conv).__name__ == "Conv1D" and torch.equal(conv.bias, torch.zeros_like(conv.bias))
    for norm in (block.ln_1, block.ln_2, model.transformer.ln_f):
        assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and torch.equal(norm.bias, torch.zeros_like(norm.bias))


def test_reinitialising_a_causal_lm_is_seeded():
    a, b, c = (_trained(tiny_causal_lm("gpt2")) for _ in range(3))
    for model, seed in ((a, 3), (b, 3), (c, 4)):
        Retrain(seed=seed).setup(model, CausalLMTask())
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.transformer.h[0].attn.c_attn.weight, c.transformer.h[0].attn.c_attn.weight)


@pytest.mark.parametrize(
    "build",
    [
        lambda: SmallCNN(in_channels=1, num_classes=3, image_size=8, width=4, hidden=8),
        lambda: MLP(in_features=16, num_classes=3, hidden=(8, 8)),
        lambda: ViTClassifier(image_size=8, patch_size=4, num_classes=3, hidden_size=16, num_layers=1, num_heads=2),
    ],
    ids=["SmallCNN", "MLP", "ViTClassifier"],
)
def test_every_parameter_of_the_package_classifiers_is_reinitialised(build):
    model = _trained(build())
    trained = _unique_parameters(model)
    setup(Retrain(seed=0), model)
    assert [n for n, p in model.named_parameters() if torch.equal(p, trained[n])] == []


def test_reinitialize_false_keeps_the_weights():
    model = pretrained()
    setup(Retrain(reinitialize=False), model)
    for key, value in snapshot(model).items():
        assert torch.equal(value, snapshot(pretrained())[key])


def test_loss_is_retain_cross_entropy_only():
    model, retain = pretrained(), batch(seed=2)
    x, y = batch(label=3)
    x[:] = float("nan")  # the forget batch is never used
    method = Retrain(retain_weight=2.0)
    out = method.loss(context(method, model, (x, y), retain))
    torch.testing.assert_close(out.loss, 2.0 * F.cross_entropy(model(retain[0]), retain[1]))
    assert set(out.parts) == {"retain_loss", "loss"}
    assert method.forget_loss(context(method, model, (x, y), retain)) is None


def test_constructor_errors():
    with pytest.raises(ValueError, match="`retain_weight` should be >= 0, got -1"):
        Retrain(retain_weight=-1)
    assert Retrain().hparams()["reinitialize"] is True
