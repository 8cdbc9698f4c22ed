"""Certified: CE on D_r, every step's gradient clipped to a joint norm C and noised with N(0, σ²)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_unlearn.methods import METHODS, Certified, clip_and_noise
from lightning_unlearn.tasks import ClassificationTask

from ._toy import batch, context, perturbed, pretrained


def test_registered():
    assert METHODS.get("certified") is Certified
    assert not Certified.uses_forget


def _params_with_grads(*grads):
    params = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    return params


def test_clip_and_noise_closed_form():
    g1, g2 = torch.tensor([3.0, 0.0]), torch.tensor([[0.0], [4.0]])  # joint norm 5
    params = _params_with_grads(g1, g2)
    norm = clip_and_noise(params, max_norm=1.0, noise_std=0.0, generator=torch.Generator().manual_seed(0))
    assert norm == pytest.approx(5.0)
    torch.testing.assert_close(params[0].grad, g1 / 5)
    torch.testing.assert_close(params[1].grad, g2 / 5)
    # below the clip norm: untouched; the noise is N(0, σ²) from the generator, in order of the parameters
    params = _params_with_grads(g1, g2)
    clip_and_noise(params, max_norm=10.0, noise_std=0.5, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    torch.testing.assert_close(params[0].grad, g1 + 0.5 * torch.randn(2, generator=gen))
    torch.testing.assert_close(params[1].grad, g2 + 0.5 * torch.randn((2, 1), generator=gen))


def test_noise_statistics():
    params = _params_with_grads(torch.zeros(20000))
    clip_and_noise(params, max_norm=1.0, noise_std=0.05, generator=torch.Generator().manual_seed(0))
    assert float(params[0].grad.std()) == pytest.approx(0.05, rel=0.03)


def test_loss_and_step_hook():
    model, retain = pretrained(), batch(n=32, seed=2)
    perturbed(model, 0.5)
    method = Certified(noise_std=0.1, max_grad_norm=0.01, seed=4)
    method.setup(model, ClassificationTask(), None, [retain])
    out = method.loss(context(method, model, None, retain))
    torch.testing.assert_close(out.loss, F.cross_entropy(model(retain[0]), retain[1]))
    out.loss.backward()
    raw = [p.grad.clone() for p in model.parameters()]
    method.before_optimizer_step(model)
    expected = _params_with_grads(*raw)
    clip_and_noise(expected, 0.01, 0.1, torch.Generator().manual_seed(4))
    for p, e in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, e.grad)
    # the next step continues the generator (checkpointed as state), it does not repeat the noise
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    method.before_optimizer_step(model)
    again = _params_with_grads(*[torch.zeros_like(p) for p in model.parameters()])
    gen = torch.Generator().manual_seed(4)
    clip_and_noise(_params_with_grads(*[torch.zeros_like(p) for p in model.parameters()]), 1.0, 0.1, gen)
    clip_and_noise(again, 1.0, 0.1, gen)
    for p, e in zip(model.parameters(), again):
        torch.testing.assert_close(p.grad, e.grad)
    assert "state/noise_rng" in method.state_dict()


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"noise_std": -1.0}, "`noise_std` should be >= 0, got -1.0"), ({"max_grad_norm": 0}, "`max_grad_norm` should be > 0, got 0")]
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Certified(**kwargs)
