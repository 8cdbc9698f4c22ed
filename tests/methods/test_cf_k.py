"""CF-k: fine-tune only the last k layers on D_r (L = CE(θ; D_r)); the other layers stay bit-identical."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_unlearn.methods import METHODS, CFk, RegexMask
from lightning_unlearn.tasks import ClassificationTask

from ._toy import batch, context, pretrained, snapshot, train_steps


def test_registered():
    assert METHODS.get("cf_k") is CFk
    assert not CFk.uses_forget and not CFk.needs_reference


def test_loss_is_the_retain_ce():
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    method = CFk(k=1, retain_weight=2.0)
    method.setup(model, ClassificationTask(), [forget], [retain])
    out = method.loss(context(method, model, forget, retain))
    torch.testing.assert_close(out.loss, 2.0 * F.cross_entropy(model(retain[0]), retain[1]))
    assert set(out.parts) == {"retain_loss", "loss"}


@pytest.mark.parametrize(("k", "trained"), [(1, {"head.weight", "head.bias"}), (2, {"head.weight", "head.bias", "body.0.weight", "body.0.bias"})])
def test_only_the_last_k_layers_move(k, trained):
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    assert {n for n, _ in model.named_parameters()} >= trained
    method = CFk(k=k)
    method.setup(model, ClassificationTask(), [forget], [retain])
    assert set(method.masks) == trained
    before = snapshot(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    train_steps(method, model, optimizer, forget, batch(n=32, seed=3), 5)
    for name, value in before.items():
        assert torch.equal(model.state_dict()[name], value) == (name not in trained), name


def test_k_larger_than_the_model_is_an_error():
    method = CFk(k=3)
    with pytest.raises(ValueError, match=r"`k`=3 is more than the model's 2 layers with trainable parameters: \['body.0', 'head'\]"):
        method.setup(pretrained(), ClassificationTask(), None, None)


def test_last_layers_skip_frozen_and_parameter_free_modules():
    from lightning_unlearn.methods import LastLayersMask, last_layers

    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.Linear(3, 2))
    model[2].requires_grad_(False)
    assert [n for n, _ in last_layers(model, 2)] == ["0", "3"]
    assert set(LastLayersMask(1).build(model, ClassificationTask())) == {"3.weight", "3.bias"}


@pytest.mark.parametrize(("kwargs", "match"), [({"k": 0}, "`k` should be an int >= 1, got 0"), ({"mask": RegexMask("head")}, "`mask` should be None")])
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CFk(**kwargs)
