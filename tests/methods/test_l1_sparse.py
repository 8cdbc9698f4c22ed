"""l1-sparse: L = CE(θ; D_r) + γ_t·‖θ‖₁ with γ_t = γ·(1 − epoch/max_epochs)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.methods import METHODS, L1Sparse

from ._toy import batch, context, pretrained


def _l1(model) -> torch.Tensor:
    return sum(p.abs().sum() for p in model.parameters())


def test_registered():
    assert METHODS.get("l1_sparse") is L1Sparse
    assert not L1Sparse.uses_forget and not L1Sparse.needs_reference


def test_loss_against_the_closed_form():
    model, retain = pretrained(), batch(seed=2)
    method = L1Sparse(l1_weight=1e-3, retain_weight=0.5)
    out = method.loss(context(method, model, batch(label=3), retain, epoch=1, max_epochs=4))
    ce = F.cross_entropy(model(retain[0]), retain[1])
    reg = 1e-3 * (1 - 1 / 4) * _l1(model)
    torch.testing.assert_close(out.parts["regularizer"], reg.detach())
    torch.testing.assert_close(out.loss, 0.5 * ce + reg)
    assert "forget_loss" not in out.parts


def test_l1_weight_decays_linearly():
    method = L1Sparse(l1_weight=0.01)
    model = pretrained()
    weights = [method.current_l1_weight(context(method, model, epoch=e, max_epochs=5)) for e in range(5)]
    assert weights == pytest.approx([0.01, 0.008, 0.006, 0.004, 0.002])
    assert method.current_l1_weight(context(method, model, epoch=5, max_epochs=5)) == 0.0
    assert method.current_l1_weight(context(method, model, epoch=3, max_epochs=None)) == 0.01  # unknown length: no decay


def test_constant_schedule():
    method = L1Sparse(l1_weight=0.01, schedule="constant")
    assert method.current_l1_weight(context(method, pretrained(), epoch=4, max_epochs=5)) == 0.01


def test_no_regularizer_once_the_weight_reaches_zero():
    model, retain = pretrained(), batch(seed=2)
    for method, ctx_kwargs in [(L1Sparse(l1_weight=0.0), {}), (L1Sparse(), {"epoch": 3, "max_epochs": 3})]:
        out = method.loss(context(method, model, None, retain, **ctx_kwargs))
        assert "regularizer" not in out.parts
        torch.testing.assert_close(out.loss, F.cross_entropy(model(retain[0]), retain[1]))


def test_frozen_parameters_are_not_penalised():
    model, retain = pretrained(), batch(seed=2)
    model.body.requires_grad_(False)
    method = L1Sparse(l1_weight=1.0, schedule="constant")
    out = method.loss(context(method, model, None, retain))
    torch.testing.assert_close(out.parts["regularizer"], _l1(model.head).detach())


def test_the_forget_batch_is_never_used():
    model, retain = pretrained(), batch(seed=2)
    x, y = batch(label=3)
    x[:] = float("nan")
    method = L1Sparse()
    assert torch.isfinite(method.loss(context(method, model, (x, y), retain)).loss)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"l1_weight": -1e-4}, "`l1_weight` should be >= 0, got -0.0001"),
        ({"schedule": "cosine"}, r"`schedule` should be one of \['constant', 'linear'\], got 'cosine'"),
        ({"retain_weight": -1}, "`retain_weight` should be >= 0, got -1"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L1Sparse(**kwargs)
