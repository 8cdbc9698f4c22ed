"""SimNPO: L_f = -(2/β)·mean logσ(β·(NLL_avg − δ)) = (2/β)·mean softplus(−β·(NLL_avg − δ)), on a tiny Llama."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from llm_toys import qa_batch

from lightning_unlearn.methods import METHODS, GradientAscent, SimNPO, simnpo_loss

from ._llm import FORGET, RETAIN, collator, ctx, fit, grads, hand_nll, log_likelihood, memorised_model


def test_registered_and_reference_free():
    assert METHODS.get("simnpo") is SimNPO
    assert not SimNPO.needs_reference and SimNPO.uses_forget
    assert SimNPO.supported_tasks == ("causal_lm", "vision_language")
    method = SimNPO()
    assert (method.beta, method.delta, method.forget_weight, method.retain_weight) == (4.5, 0.0, 0.125, 1.0)
    assert method.retain_loss_kind == "nll"


@pytest.mark.parametrize(("beta", "delta"), [(4.5, 0.0), (1.0, 0.5), (0.1, -1.0)])
def test_simnpo_loss_closed_form(beta, delta):
    g = torch.Generator().manual_seed(0)
    nll_avg = torch.rand(16, generator=g) * 4
    expected = -(2.0 / beta) * F.logsigmoid(beta * (nll_avg - delta)).mean()
    torch.testing.assert_close(simnpo_loss(nll_avg, beta, delta), expected)
    # the same in terms of the mean token log-prob, δ inside the β product (the code's convention)
    avg_log_prob = -nll_avg
    by_log_prob = -(2.0 / beta) * F.logsigmoid(-beta * avg_log_prob - beta * delta).mean()
    torch.testing.assert_close(simnpo_loss(nll_avg, beta, delta), by_log_prob)


def test_simnpo_loss_is_bounded_below_and_decreasing_in_the_nll():
    nll = torch.tensor([0.0, 1.0, 5.0, 50.0, 1e4])
    values = [float(simnpo_loss(n[None], 4.5)) for n in nll]
    assert values[0] == pytest.approx(2 / 4.5 * math.log(2))  # at NLL = δ = 0: (2/β)·log 2
    assert all(a > b for a, b in zip(values, values[1:4])) and values[-1] == pytest.approx(0.0, abs=1e-12)
    assert min(values) >= 0.0


def test_forget_loss_on_a_tiny_llama_against_the_closed_form():
    model, forget, retain = memorised_model(steps=30), qa_batch(FORGET), qa_batch(RETAIN)
    method = SimNPO(beta=2.0, delta=0.3, forget_weight=0.5, retain_weight=2.0)
    out = method.loss(ctx(method, model, forget, retain))
    nll = hand_nll(model, forget)
    expected_f = -(2.0 / 2.0) * F.logsigmoid(2.0 * (nll - 0.3)).mean()
    expected_r = hand_nll(model, retain).mean()
    torch.testing.assert_close(out.parts["forget_loss"], expected_f.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.parts["retain_loss"], expected_r.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, 0.5 * expected_f + 2.0 * expected_r, rtol=1e-5, atol=1e-6)


def test_gradient_is_a_sigmoid_weighted_gradient_ascent():
    # ∇L_f = -(2/B)·Σ_i σ(-β·(NLL_i − δ))·∇NLL_i: gradient ascent on each sample's mean NLL, each sample
    # weighted by how likely its answer still is
    model, forget = memorised_model(steps=30), qa_batch(FORGET)
    beta, delta = 1.5, 0.2
    method = SimNPO(beta=beta, delta=delta, forget_weight=1.0, retain_loss="none")
    simnpo = grads(method.loss(ctx(method, model, forget)).loss, model)
    nll = hand_nll(model, forget)
    weights = 2 * torch.sigmoid(-beta * (nll.detach() - delta)) / len(nll)
    weighted_ga = grads(-(weights * nll).sum(), model)
    for a, b in zip(simnpo, weighted_ga):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    # as β → 0 every weight tends to 2·σ(0) = 1: the gradient of gradient ascent on the mean NLL
    ga, near_zero = GradientAscent(), SimNPO(beta=1e-5, retain_loss="none", forget_weight=1.0)
    ga_grads = grads(ga.loss(ctx(ga, model, forget)).loss, model)
    limit = grads(near_zero.loss(ctx(near_zero, model, forget)).loss, model)
    for a, b in zip(limit, ga_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    assert not all(torch.allclose(a, b, rtol=1e-3) for a, b in zip(simnpo, ga_grads))


def test_gradient_steps_lower_the_forget_likelihood():
    model, forget = memorised_model(steps=30), qa_batch(FORGET)
    method = SimNPO(retain_loss="none", forget_weight=1.0)
    before = log_likelihood(model, forget)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for _ in range(3):
        loss = method.loss(ctx(method, model, forget)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert log_likelihood(model, forget) < before - 0.1


def test_unlearning_module_and_trainer():
    model = memorised_model(steps=30)
    collate = collator()
    before = log_likelihood(model, collate(FORGET))
    losses = fit(model, SimNPO(beta=2.5), steps=4, collate=collate)  # checks: 4 steps, finite losses
    assert len(losses) == 4
    assert log_likelihood(model, collate(FORGET)) < before


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"beta": 0}, ValueError, "`beta` should be > 0, got 0"),
        ({"beta": -4.5}, ValueError, "`beta` should be > 0, got -4.5"),
        ({"beta": "4.5"}, TypeError, "`beta` should be a number, got str '4.5'"),
        ({"delta": "0"}, TypeError, "`delta` should be a number, got str '0'"),
        ({"delta": float("nan")}, ValueError, "`delta` should be finite, got nan"),
        ({"forget_weight": -1}, ValueError, "`forget_weight` should be >= 0"),
        ({"retain_loss": "ce"}, ValueError, r"`retain_loss` should be one of \['kl', 'nll', 'none'\], got 'ce'"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        SimNPO(**kwargs)
