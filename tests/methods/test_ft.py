"""FT: L = α·CE(θ; D_r) (or α·KL to the original on D_r); the forget set is never used."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.methods import METHODS, FineTune, RegexMask

from ._toy import batch, context, perturbed, pretrained, setup


def _nan_forget():
    x, y = batch(label=3)
    x[:] = float("nan")
    return x, y


def test_registered():
    assert METHODS.get("ft") is FineTune
    assert not FineTune.uses_forget and not FineTune.needs_reference


def test_loss_is_retain_cross_entropy():
    model, retain = pretrained(), batch(seed=2)
    perturbed(model, 0.5)
    method = FineTune(retain_weight=0.25)
    out = method.loss(context(method, model, _nan_forget(), retain))  # NaN forget data: never looked at
    torch.testing.assert_close(out.loss, 0.25 * F.cross_entropy(model(retain[0]), retain[1]))
    assert set(out.parts) == {"retain_loss", "loss"}
    assert method.forget_weight == 0.0


def test_kl_retain_loss_distils_the_original():
    model, retain = pretrained(), batch(seed=2)
    method = FineTune(retain_loss="kl")
    setup(method, model)
    with torch.no_grad():
        log_q = torch.log_softmax(method.reference(retain[0]), -1)
    perturbed(model, 0.3)
    out = method.loss(context(method, model, None, retain))
    expected = (log_q.exp() * (log_q - torch.log_softmax(model(retain[0]), -1))).sum(-1).mean()
    torch.testing.assert_close(out.loss, expected)


def test_no_retain_batch():
    method = FineTune()
    with pytest.raises(ValueError, match="Method 'ft' produced no loss term for this batch"):
        method.loss(context(method, pretrained(), batch(label=3), None))


def test_mask_is_passed_to_the_base():
    mask = RegexMask("head")
    assert FineTune(mask=mask).mask is mask


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"retain_loss": "none"}, r"`retain_loss` should be one of \['kl', 'nll'\], got 'none'"),  # FT has no other term
        ({"retain_loss": "ce"}, r"`retain_loss` should be one of \['kl', 'nll'\], got 'ce'"),
        ({"retain_weight": -1}, "`retain_weight` should be >= 0, got -1"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FineTune(**kwargs)
