"""GradDiff: L = -γ·CE(θ; D_f) + α·L_r(θ; D_r), with L_r = CE or KL(p_θ₀ ‖ p_θ)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.methods import METHODS, GradDiff

from ._toy import batch, context, perturbed, pretrained, setup


def test_registered():
    assert METHODS.get("graddiff") is GradDiff
    assert GradDiff.uses_forget and not GradDiff.needs_reference


@pytest.mark.parametrize(("gamma", "alpha"), [(1.0, 1.0), (0.5, 2.0)])
def test_loss_nll(gamma, alpha):
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    perturbed(model, 0.5)
    method = GradDiff(forget_weight=gamma, retain_weight=alpha)
    out = method.loss(context(method, model, forget, retain))
    ce_f = F.cross_entropy(model(forget[0]), forget[1])
    ce_r = F.cross_entropy(model(retain[0]), retain[1])
    torch.testing.assert_close(out.loss, -gamma * ce_f + alpha * ce_r)
    torch.testing.assert_close(out.parts["forget_loss"], -ce_f.detach())
    torch.testing.assert_close(out.parts["retain_loss"], ce_r.detach())


def test_loss_kl():
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    method = GradDiff(retain_loss="kl", retain_weight=3.0)
    setup(method, model)
    assert method.reference is not None  # KL needs the original even though GradDiff alone does not
    original_logits = method.reference(retain[0])
    perturbed(model, 0.3)
    out = method.loss(context(method, model, forget, retain))
    log_q = torch.log_softmax(original_logits, -1)
    kl = (log_q.exp() * (log_q - torch.log_softmax(model(retain[0]), -1))).sum(-1).mean()
    torch.testing.assert_close(out.loss, -F.cross_entropy(model(forget[0]), forget[1]) + 3.0 * kl)


def test_kl_is_zero_before_the_model_moves():
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    method = GradDiff(retain_loss="kl")
    setup(method, model)
    out = method.loss(context(method, model, forget, retain))
    torch.testing.assert_close(out.parts["retain_loss"], torch.tensor(0.0), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"forget_weight": -0.1}, ValueError, "`forget_weight` should be >= 0, got -0.1"),
        ({"retain_weight": -2}, ValueError, "`retain_weight` should be >= 0, got -2"),
        ({"retain_weight": None}, TypeError, "`retain_weight` should be a number, got NoneType None"),
        ({"retain_loss": "mse"}, ValueError, r"`retain_loss` should be one of \['kl', 'nll', 'none'\], got 'mse'"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        GradDiff(**kwargs)
