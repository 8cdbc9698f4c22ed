"""SSD (and LFSSD, ASSD): the dampening factor, the importances and the one-shot edit against their closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.methods import METHODS, SSD, RegexMask, adaptive_alpha, dampening_factor
from lightning_unlearn.methods.one_shot import diagonal_importance
from lightning_unlearn.tasks import ClassificationTask

from ._toy import batch, context, pretrained, snapshot, unlearn_class


def test_registered():
    assert METHODS.get("ssd") is SSD
    assert SSD.uses_forget and not SSD.needs_reference and SSD().retain_loss_kind == "none"


def test_dampening_factor_closed_form():
    forget = torch.tensor([0.0, 1.0, 5.0, 20.0, 3.0])
    full = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0])
    # selected where []_f > α·[]_D (α = 2): entries 2, 3 and 4 ([]_D = 0); β = min(λ·[]_D/[]_f, 1)
    assert dampening_factor(forget, full, alpha=2.0, dampening=1.0).tolist() == pytest.approx([1.0, 1.0, 0.2, 0.05, 0.0])
    assert dampening_factor(forget, full, alpha=2.0, dampening=10.0).tolist() == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.0])
    assert dampening_factor(forget, full, alpha=100.0, dampening=1.0).tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_adaptive_alpha_is_the_percentile_of_the_ratios():
    forget = {"a": torch.tensor([1.0, 2.0, 3.0, 0.0]), "b": torch.tensor([[8.0, 1.0]])}
    full = {"a": torch.tensor([1.0, 1.0, 1.0, 0.0]), "b": torch.tensor([[2.0, 0.0]])}  # 0/0 and 1/0 are left out
    q = 100 - math.log(1 + 100 * 10 / 1000)  # |D_f| = 10 of |D| = 1000
    assert adaptive_alpha(forget, full, 10, 1000) == pytest.approx(float(np.percentile([1.0, 2.0, 3.0, 4.0], q)))
    with pytest.raises(ValueError, match="no parameter with a finite importance ratio"):
        adaptive_alpha({"a": torch.zeros(2)}, {"a": torch.zeros(2)}, 1, 2)


def test_importances_against_autograd():
    model, (x, y) = pretrained(), batch(n=16, seed=3)
    task = ClassificationTask()
    fisher, batches, samples = diagonal_importance(model, task, [(x[:8], y[:8]), (x[8:], y[8:])])
    assert (batches, samples) == (2, 16)
    manual = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for xb, yb in [(x[:8], y[:8]), (x[8:], y[8:])]:
        grads = torch.autograd.grad(F.cross_entropy(model(xb), yb), list(model.parameters()))
        for (n, _), g in zip(model.named_parameters(), grads):
            manual[n] += g.pow(2) / 2
    for name in manual:
        torch.testing.assert_close(fisher[name], manual[name])
    loss_free, _, _ = diagonal_importance(model, task, [(x, y)], kind="loss_free")
    grads = torch.autograd.grad(model(x).pow(2).sum(-1).mean(), list(model.parameters()))
    for (name, _), g in zip(model.named_parameters(), grads):
        torch.testing.assert_close(loss_free[name], g.abs())


def test_the_edit_multiplies_each_weight_by_its_factor_once_at_the_first_step():
    model, forget, retain = pretrained(), batch(n=16, seed=1, label=3), batch(n=48, seed=2)
    method = SSD(alpha=2.0, dampening=0.5)
    method.setup(model, ClassificationTask(), [forget], [retain])
    before = snapshot(model)
    assert not method.edited  # setup only keeps the loaders
    imp_f, imp_d, _ = method.importances(model, ClassificationTask())
    # []_D is taken on D_r
    imp_r, _, _ = diagonal_importance(model, ClassificationTask(), [retain])
    torch.testing.assert_close(imp_d["head.weight"], imp_r["head.weight"])
    out = method.loss(context(method, model, forget, retain))
    assert method.edited and out.loss.item() == 0.0 and out.loss.requires_grad
    dampened = 0
    for name, value in before.items():
        factor = dampening_factor(imp_f[name], imp_d[name], 2.0, 0.5)
        torch.testing.assert_close(model.state_dict()[name], value * factor)
        dampened += int((factor < 1).sum())
    assert dampened == method.edit_stats["dampened"] > 0
    edited = snapshot(model)
    method.loss(context(method, model, forget, retain, global_step=1))  # no second edit
    assert all(torch.equal(edited[k], v) for k, v in snapshot(model).items())
    # a checkpoint keeps `edited`: a resumed run does not edit again
    fresh = SSD()
    fresh.load_state_dict(method.state_dict())
    assert fresh.edited and fresh.edit_stats == method.edit_stats


def test_a_mask_limits_the_edit():
    model, forget, retain = pretrained(), batch(n=16, seed=1, label=3), batch(n=48, seed=2)
    method = SSD(alpha=1.5, mask=RegexMask(r"^head\."))
    method.setup(model, ClassificationTask(), [forget], [retain])
    before = snapshot(model)
    method.loss(context(method, model, forget, retain))
    after = snapshot(model)
    assert torch.equal(after["body.0.weight"], before["body.0.weight"]) and torch.equal(after["body.0.bias"], before["body.0.bias"])
    assert not torch.equal(after["head.weight"], before["head.weight"])


@pytest.mark.parametrize(
    ("kwargs", "max_forget_acc"),
    [({}, 0.0), ({"importance": "loss_free"}, 0.0)],  # the papers' α = 10, λ = 1
    ids=["ssd", "lfssd"],
)
def test_forgets_a_blob_class(kwargs, max_forget_acc):
    forget_acc, retain_acc = unlearn_class(SSD(**kwargs), steps=1)
    assert forget_acc <= max_forget_acc and retain_acc >= 0.9


def test_assd_picks_alpha_from_the_data():
    method = SSD(selection="adaptive", alpha=123.0)
    model = pretrained()
    unlearn_class(method, steps=1, model=model)
    # a forget class of 60 of 240 samples: the 100 − ln(26) ≈ 96.7th percentile of the ratios, λ = 1
    forget, full, sizes = method.importances(pretrained(), ClassificationTask())
    assert sizes["forget_samples"] == 60 and sizes["retain_samples"] == 180
    assert method.edit_stats["alpha"] == pytest.approx(adaptive_alpha(forget, full, 60, 240))
    assert method.edit_stats["dampening"] == 1.0
    # ASSD targets small sets of erroneous entries: on a whole class (25% of D) it dampens ~3% of the weights
    assert 0 < method.edit_stats["dampened"] < 0.05 * method.edit_stats["total"]


def test_errors():
    with pytest.raises(ValueError, match=r"`alpha` should be > 0, got 0"):
        SSD(alpha=0)
    with pytest.raises(ValueError, match=r"`importance` should be one of \['fisher', 'loss_free'\], got 'l1'"):
        SSD(importance="l1")
    with pytest.raises(ValueError, match=r"`selection` should be one of \['adaptive', 'fixed'\], got 'auto'"):
        SSD(selection="auto")
    with pytest.raises(ValueError, match=r"`forget_weight` should be > 0, got 0"):
        SSD(forget_weight=0)
    with pytest.raises(ValueError, match=r"`retain_loss` should be one of \['kl', 'nll', 'none'\], got 'ce'"):
        SSD(retain_loss="ce")
    with pytest.raises(ValueError, match="pass the retain loader to `setup`"):
        SSD().setup(pretrained(), ClassificationTask(), [batch()], None)
