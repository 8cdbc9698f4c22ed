"""GA: L = -γ·CE(θ; D_f) (+ an optional α-weighted retain term)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.methods import METHODS, GradientAscent, RegexMask

from ._toy import batch, context, pretrained


def test_registered():
    assert METHODS.get("ga") is GradientAscent
    assert GradientAscent.uses_forget and not GradientAscent.needs_reference


def test_loss_is_negated_forget_cross_entropy():
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    method = GradientAscent(forget_weight=0.7)
    out = method.loss(context(method, model, forget, retain))
    ce_f = F.cross_entropy(model(forget[0]), forget[1])
    torch.testing.assert_close(out.loss, -0.7 * ce_f)
    torch.testing.assert_close(out.parts["forget_loss"], -ce_f.detach())
    assert "retain_loss" not in out.parts  # plain GA: retain_weight defaults to 0


def test_gradient_is_the_ascent_direction():
    model, forget = pretrained(), batch(seed=1, label=3)
    method = GradientAscent()
    method.loss(context(method, model, forget, None)).loss.backward()
    ga = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(forget[0]), forget[1]).backward()
    for g, descent in zip(ga, (p.grad for p in model.parameters())):
        torch.testing.assert_close(g, -descent)


def test_optional_retain_term():
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    method = GradientAscent(retain_weight=0.5)
    out = method.loss(context(method, model, forget, retain))
    expected = -F.cross_entropy(model(forget[0]), forget[1]) + 0.5 * F.cross_entropy(model(retain[0]), retain[1])
    torch.testing.assert_close(out.loss, expected)


def test_mask_is_passed_to_the_base():
    mask = RegexMask("head")
    assert GradientAscent(mask=mask).mask is mask


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"forget_weight": -1.0}, "`forget_weight` should be >= 0, got -1.0"),
        ({"retain_weight": -1.0}, "`retain_weight` should be >= 0, got -1.0"),
        ({"retain_loss": "ce"}, r"`retain_loss` should be one of \['kl', 'nll', 'none'\], got 'ce'"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradientAscent(**kwargs)
