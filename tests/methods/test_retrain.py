"""Retrain: seeded re-initialisation, then L = α·CE(θ; D_r)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_unlearn.methods import METHODS, Retrain

from ._toy import batch, context, mlp, pretrained, setup, snapshot


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


def test_only_modules_with_reset_parameters_are_reset():
    class WithBuffer(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.full((2,), 7.0))
            self.lin = nn.Linear(2, 2)

    model = WithBuffer()
    before = model.lin.weight.detach().clone()
    setup(Retrain(), model)
    assert torch.equal(model.scale, torch.full((2,), 7.0))
    assert not torch.equal(model.lin.weight, before)


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
