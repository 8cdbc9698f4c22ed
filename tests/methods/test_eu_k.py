"""EU-k: re-initialise the last k layers (at the first step) and train only them on D_r."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.methods import METHODS, EUk, RegexMask, reinitialize_layers
from lightning_unlearn.tasks import ClassificationTask

from ._toy import batch, blobs, context, mlp, pretrained, snapshot, train_steps


def test_registered():
    assert METHODS.get("eu_k") is EUk
    assert not EUk.uses_forget and not EUk.needs_reference


def test_reinitialize_layers_redraws_with_reset_parameters_under_the_seed():
    model = pretrained()
    names = reinitialize_layers(model, 1, seed=3)
    assert names == ["head"]
    fresh = mlp()
    torch.manual_seed(3)
    fresh.head.reset_parameters()
    torch.testing.assert_close(model.head.weight, fresh.head.weight)
    torch.testing.assert_close(model.body[0].weight, pretrained().body[0].weight)
    state = torch.random.get_rng_state()
    reinitialize_layers(model, 1, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left as it was


def test_first_step_reinitialises_then_trains_on_retain_ce():
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    method = EUk(k=1, seed=5)
    method.setup(model, ClassificationTask(), [forget], [retain])
    assert not method.reinitialized and torch.equal(model.head.weight, pretrained().head.weight)  # setup leaves it
    out = method.loss(context(method, model, forget, retain))
    assert method.reinitialized
    expected = pretrained()
    reinitialize_layers(expected, 1, seed=5)
    torch.testing.assert_close(model.head.weight, expected.head.weight)
    torch.testing.assert_close(out.loss, F.cross_entropy(model(retain[0]), retain[1]))
    head = model.head.weight.detach().clone()
    method.loss(context(method, model, forget, retain))
    assert torch.equal(model.head.weight, head)  # only once


def test_only_the_last_layer_moves_and_the_class_is_forgotten():
    model, forget = pretrained(), batch(seed=1, label=3)
    x, y = blobs().tensors
    keep = y != 3
    method = EUk(k=1)
    method.setup(model, ClassificationTask(), [forget], [(x[keep], y[keep])])
    before = snapshot(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    train_steps(method, model, optimizer, forget, (x[keep], y[keep]), 60)
    assert torch.equal(model.body[0].weight, before["body.0.weight"]) and torch.equal(model.body[0].bias, before["body.0.bias"])
    with torch.no_grad():
        pred = model(x).argmax(-1)
    assert float((pred[~keep] == 3).float().mean()) == 0.0  # a head retrained without class 3 never predicts it
    assert float((pred[keep] == y[keep]).float().mean()) >= 0.9


@pytest.mark.parametrize(("kwargs", "match"), [({"k": 0}, "`k` should be an int >= 1, got 0"), ({"mask": RegexMask("head")}, "`mask` should be None")])
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EUk(**kwargs)
