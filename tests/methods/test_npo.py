"""NPO: L_f = (2/β)·mean softplus(β·(log π_θ − log π_θ₀)) = −(2/β)·mean logσ(−β·Δ)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from llm_toys import qa_batch

from lightning_unlearn.methods import METHODS, NPO, GradientAscent, npo_loss

from ._llm import FORGET, RETAIN, TASK, ctx, grads, hand_nll, memorised_model
from ._toy import batch, context, perturbed, pretrained, setup


def _log_p(model, data):
    x, y = data
    return torch.log_softmax(model(x), -1).gather(-1, y[:, None]).squeeze(-1)


def test_registered():
    assert METHODS.get("npo") is NPO
    assert NPO.needs_reference and NPO.uses_forget


@pytest.mark.parametrize("beta", [0.1, 1.0, 4.5])
def test_npo_loss_closed_form(beta):
    g = torch.Generator().manual_seed(0)
    log_p, log_p_ref = -torch.rand(32, generator=g) * 5, -torch.rand(32, generator=g) * 5
    expected = -(2.0 / beta) * F.logsigmoid(-beta * (log_p - log_p_ref)).mean()
    torch.testing.assert_close(npo_loss(log_p, log_p_ref, beta), expected)
    by_hand = (2.0 / beta) * torch.log1p(torch.exp(beta * (log_p - log_p_ref))).mean()
    torch.testing.assert_close(npo_loss(log_p, log_p_ref, beta), by_hand)


def test_npo_loss_at_the_reference_is_2_log2_over_beta():
    log_p = -torch.rand(8)
    torch.testing.assert_close(npo_loss(log_p, log_p, 0.1), torch.tensor(20 * math.log(2)))


def test_npo_loss_is_bounded_below_where_ga_is_not():
    log_p_ref = torch.zeros(4)
    for log_p in (torch.full((4,), -10.0), torch.full((4,), -1e4)):
        value = float(npo_loss(log_p, log_p_ref, 0.1))
        assert 0.0 <= value < 20 * math.log(2)
    assert float(npo_loss(torch.full((4,), -1e4), log_p_ref, 0.1)) == pytest.approx(0.0, abs=1e-6)


def test_forget_loss_against_the_closed_form():
    model, forget = pretrained(), batch(seed=1, label=3)
    method = NPO(beta=0.5, forget_weight=2.0)
    setup(method, model)
    perturbed(model, 0.3)
    out = method.loss(context(method, model, forget, None))
    delta = _log_p(model, forget) - _log_p(method.reference, forget)
    expected = (2.0 / 0.5) * F.softplus(0.5 * delta).mean()
    torch.testing.assert_close(out.parts["forget_loss"], expected.detach())
    torch.testing.assert_close(out.loss, 2.0 * expected)


def test_retain_term():
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    method = NPO(beta=0.1, retain_weight=0.5)
    setup(method, model)
    out = method.loss(context(method, model, forget, retain))
    expected = 20 * math.log(2) + 0.5 * F.cross_entropy(model(retain[0]), retain[1])
    torch.testing.assert_close(out.loss, expected)


def _grads(loss, model):
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def test_gradient_tends_to_gradient_ascent_as_beta_goes_to_zero():
    model, forget = pretrained(), batch(seed=1, label=3)
    ga = GradientAscent()
    npo = NPO(beta=1e-4)
    setup(npo, model)
    perturbed(model, 0.3)  # Δ ≠ 0, so only the limit β → 0 makes the gradients agree
    ga_grads = _grads(ga.loss(context(ga, model, forget, None)).loss, model)
    npo_grads = _grads(npo.loss(context(npo, model, forget, None)).loss, model)
    for a, b in zip(npo_grads, ga_grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)
    far = NPO(beta=5.0)
    far.reference = npo.reference
    far_grads = _grads(far.loss(context(far, model, forget, None)).loss, model)
    assert not all(torch.allclose(a, b, rtol=1e-3, atol=1e-6) for a, b in zip(far_grads, ga_grads))


def test_gradient_equals_gradient_ascent_at_the_reference():
    # σ(0) = 1/2, so the first NPO step is exactly a GA step for every β
    model, forget = pretrained(), batch(seed=1, label=3)
    ga, npo = GradientAscent(), NPO(beta=3.0)
    setup(npo, model)
    ga_grads = _grads(ga.loss(context(ga, model, forget, None)).loss, model)
    npo_grads = _grads(npo.loss(context(npo, model, forget, None)).loss, model)
    for a, b in zip(npo_grads, ga_grads):
        torch.testing.assert_close(a, b)


def test_needs_the_reference():
    method = NPO()
    with pytest.raises(RuntimeError, match="needs a reference model"):
        method.loss(context(method, pretrained(), batch(label=3), None))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"beta": 0}, ValueError, "`beta` should be > 0, got 0"),
        ({"beta": -0.1}, ValueError, "`beta` should be > 0, got -0.1"),
        ({"beta": "0.1"}, TypeError, "`beta` should be a number, got str '0.1'"),
        ({"forget_weight": -1}, ValueError, "`forget_weight` should be >= 0"),
        ({"retain_loss": "NLL"}, ValueError, r"`retain_loss` should be one of \['kl', 'nll', 'none', 'npo_nll'\], got 'NLL'"),
        ({"likelihood": "token"}, ValueError, r"`likelihood` should be one of \['mean', 'sum'\], got 'token'"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        NPO(**kwargs)


# ---------------------------------------------------------------------------------------------------- Safety Mirage's variant


def _llm_npo(**kwargs):
    """A tiny Llama that nearly knows the toy facts, NPO set up on it (reference θ₀), then moved a little (Δ ≠ 0)."""
    model = memorised_model(steps=30)
    method = NPO(**kwargs)
    method.setup(model, TASK)
    perturbed(model, 0.02)
    return model, method


def test_mean_likelihood_against_the_closed_form():
    model, method = _llm_npo(beta=0.9, likelihood="mean", retain_loss="none")
    forget = qa_batch(FORGET)
    out = method.loss(ctx(method, model, forget))
    # Δ from each answer's mean token log-probability: −NLL_θ + NLL_θ₀ (the per-sample cross-entropies)
    delta = -hand_nll(model, forget) + hand_nll(method.reference, forget)
    expected = (2.0 / 0.9) * F.softplus(0.9 * delta).mean()
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-6)
    # the default sums the answer's token log-probabilities instead: another Δ, another loss
    summed = -hand_nll(model, forget, reduction="sum") + hand_nll(method.reference, forget, reduction="sum")
    assert not torch.allclose(delta, summed)
    sum_method = NPO(beta=0.9, retain_loss="none")
    sum_method.reference = method.reference
    sum_out = sum_method.loss(ctx(sum_method, model, forget))
    torch.testing.assert_close(sum_out.loss, (2.0 / 0.9) * F.softplus(0.9 * summed).mean(), rtol=1e-5, atol=1e-6)


def test_npo_nll_retain_term_against_the_closed_form():
    model, method = _llm_npo(beta=0.9, likelihood="mean", retain_loss="npo_nll", retain_weight=0.5, forget_weight=2.0)
    forget, retain = qa_batch(FORGET), qa_batch(RETAIN)
    out = method.loss(ctx(method, model, forget, retain))
    nll_f, nll_r = hand_nll(model, forget), hand_nll(model, retain)
    expected_f = (2.0 / 0.9) * F.softplus(0.9 * (-nll_f + hand_nll(method.reference, forget))).mean()
    # Safety Mirage: retain NLL − NPO loss on the retain answers (their +(2/β)·mean logσ(β·(CE_θ − CE_θ₀)))
    delta_r = -nll_r + hand_nll(method.reference, retain)
    expected_r = nll_r.mean() - (2.0 / 0.9) * F.softplus(0.9 * delta_r).mean()
    torch.testing.assert_close(
        expected_r, nll_r.mean() + (2.0 / 0.9) * F.logsigmoid(0.9 * (nll_r - hand_nll(method.reference, retain))).mean()
    )
    torch.testing.assert_close(out.parts["forget_loss"], expected_f.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.parts["retain_loss"], expected_r.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, 2.0 * expected_f + 0.5 * expected_r, rtol=1e-5, atol=1e-6)


def test_npo_nll_retain_gradient_at_the_reference_is_twice_the_nll_gradient():
    # at θ = θ₀, σ(0) = 1/2: ∇[−(2/β)·mean softplus(β·Δ_r)] = ∇ mean NLL_r, so the retain term's gradient is 2·∇NLL_r
    model = memorised_model(steps=30)
    method = NPO(beta=0.9, likelihood="mean", retain_loss="npo_nll", forget_weight=0.0)
    method.setup(model, TASK)
    forget, retain = qa_batch(FORGET), qa_batch(RETAIN)
    out = method.loss(ctx(method, model, forget, retain))
    torch.testing.assert_close(out.parts["retain_loss"], (hand_nll(model, retain).mean() - 2 / 0.9 * math.log(2)).detach())
    npo_grads = grads(out.loss, model)
    nll_grads = grads(2 * hand_nll(model, retain).mean(), model)
    for a, b in zip(npo_grads, nll_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_npo_nll_is_npo_only():
    assert "npo_nll" in NPO.retain_losses
    with pytest.raises(ValueError, match=r"`retain_loss` should be one of .*got 'npo_nll'"):
        GradientAscent(retain_loss="npo_nll")
