"""NegGrad+: L = β·CE(θ; D_r) − (1 − β)·CE(θ; D_f)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.methods import METHODS, NegGradPlus

from ._toy import batch, context, perturbed, pretrained


def test_registered():
    assert METHODS.get("neggrad_plus") is NegGradPlus
    assert NegGradPlus.uses_forget and not NegGradPlus.needs_reference


@pytest.mark.parametrize("beta", [0.5, 0.9, 1.0])
def test_loss_is_the_convex_combination(beta):
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    perturbed(model, 0.5)
    method = NegGradPlus(beta=beta)
    out = method.loss(context(method, model, forget, retain))
    ce_f = F.cross_entropy(model(forget[0]), forget[1])
    ce_r = F.cross_entropy(model(retain[0]), retain[1])
    torch.testing.assert_close(out.loss, beta * ce_r - (1 - beta) * ce_f)
    torch.testing.assert_close(out.parts["forget_loss"], -(1 - beta) * ce_f.detach())
    torch.testing.assert_close(out.parts["retain_loss"], beta * ce_r.detach())


def test_extra_weights_multiply():
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    perturbed(model, 0.5)
    method = NegGradPlus(beta=0.8, forget_weight=2.0, retain_weight=0.5)
    out = method.loss(context(method, model, forget, retain))
    ce_f = F.cross_entropy(model(forget[0]), forget[1])
    ce_r = F.cross_entropy(model(retain[0]), retain[1])
    torch.testing.assert_close(out.loss, 0.5 * 0.8 * ce_r - 2.0 * 0.2 * ce_f)


@pytest.mark.parametrize(("beta", "error"), [(0.0, ValueError), (1.5, ValueError), ("0.5", TypeError)])
def test_beta_errors(beta, error):
    with pytest.raises(error, match="`beta` should"):
        NegGradPlus(beta=beta)
