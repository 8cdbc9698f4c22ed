"""IdK-DPO: L_f = -(2/β)·mean logσ(β·[(log π_θ − log π_θ₀)(y_idk) − (log π_θ − log π_θ₀)(y_forget)]), sequence sums."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from llm_toys import toy_model

from lightning_unlearn.methods import METHODS, IdKDPO, dpo_loss
from lightning_unlearn.tasks import ClassificationTask

from ._llm import FORGET, RETAIN, TASK, collator, ctx, fit, grads, hand_nll, idk_collator, idk_log_likelihoods, memorised_model


def _perturbed(model, scale: float = 0.02):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def _win_lose(model, batch):
    """Per sample, the SUM of the answer tokens' log-probabilities of the refusal (win) and the true answer (lose)."""
    win = -hand_nll(model, batch, prefix="idk_", reduction="sum")
    lose = -hand_nll(model, batch, reduction="sum")
    return win, lose


def test_registered():
    assert METHODS.get("idk_dpo") is IdKDPO
    assert IdKDPO.needs_reference and IdKDPO.uses_forget and IdKDPO.supported_tasks == ("causal_lm", "vision_language")
    method = IdKDPO()
    assert (method.beta, method.alternative, method.forget_weight, method.retain_weight) == (0.1, "idk", 1.0, 1.0)


@pytest.mark.parametrize("beta", [0.1, 1.0, 5.0])
def test_dpo_loss_closed_form(beta):
    g = torch.Generator().manual_seed(0)
    r_w, r_l = torch.randn(16, generator=g) * 3, torch.randn(16, generator=g) * 3
    expected = -(2.0 / beta) * F.logsigmoid(beta * (r_w - r_l)).mean()
    torch.testing.assert_close(dpo_loss(r_w, r_l, beta), expected)
    torch.testing.assert_close(dpo_loss(r_w, r_w, beta), torch.tensor(2 / beta * math.log(2)))
    # preferring the refusal more (r_w up) or the true answer less (r_l down) lowers the loss
    assert dpo_loss(r_w + 1, r_l, beta) < dpo_loss(r_w, r_l, beta) and dpo_loss(r_w, r_l - 1, beta) < dpo_loss(r_w, r_l, beta)


def test_loss_on_a_tiny_llama_against_the_closed_form():
    model, forget, retain = memorised_model(steps=30), idk_collator()(FORGET), collator()(RETAIN)
    method = IdKDPO(beta=0.5, forget_weight=2.0, retain_weight=0.5)
    method.setup(model, TASK)
    _perturbed(model)
    out = method.loss(ctx(method, model, forget, retain))
    win, lose = _win_lose(model, forget)
    with torch.no_grad():
        win_0, lose_0 = _win_lose(method.reference, forget)
    expected_f = -(2.0 / 0.5) * F.logsigmoid(0.5 * ((win - win_0) - (lose - lose_0))).mean()
    logits_r = model(input_ids=retain["input_ids"], attention_mask=retain["attention_mask"]).logits
    expected_r = TASK.per_sample_loss(logits_r, retain).mean()
    assert abs(float(expected_f) - 2 / 0.5 * math.log(2)) > 1e-3  # the model moved away from the reference
    torch.testing.assert_close(out.parts["forget_loss"], expected_f.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, 2.0 * expected_f + 0.5 * expected_r, rtol=1e-5, atol=1e-5)


def test_at_the_reference_the_loss_is_2_log2_over_beta_and_the_gradient_prefers_the_refusal():
    # σ(0) = 1/2: the first step is gradient descent on -mean(log π(y_w) − log π(y_l)), for every β
    model, forget = memorised_model(steps=30), idk_collator()(FORGET)
    method = IdKDPO(beta=3.0, retain_loss="none")
    method.setup(model, TASK)
    out = method.loss(ctx(method, model, forget))
    torch.testing.assert_close(out.loss, torch.tensor(2 / 3.0 * math.log(2)))
    dpo = grads(out.loss, model)
    win, lose = _win_lose(model, forget)
    for a, b in zip(dpo, grads(-(win - lose).mean(), model)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_the_reference_stays_frozen_and_a_refusal_is_needed():
    model, forget = memorised_model(steps=30), idk_collator()(FORGET)
    method = IdKDPO(retain_loss="none")
    with pytest.raises(RuntimeError, match="needs a reference model"):
        method.loss(ctx(method, model, forget))
    method.setup(model, TASK)
    method.loss(ctx(method, model, forget)).loss.backward()
    assert all(p.grad is None for p in method.reference.parameters())
    with pytest.raises(KeyError, match=r"QACollator\(tokenizer, alternatives=\{'idk': IdkAnswers\(\)\}\)"):
        method.loss(ctx(method, model, collator()(FORGET)))
    with pytest.raises(TypeError, match="IdKDPO unlearns causal language models"):
        IdKDPO().setup(toy_model(), ClassificationTask())


def test_unlearning_module_and_trainer():
    method = IdKDPO(beta=0.1)
    model, collate = memorised_model(steps=30), idk_collator()
    forget = collate(FORGET)
    before, idk_before = idk_log_likelihoods(model, forget)
    losses = fit(model, method, steps=4, collate=collate)  # checks: 4 steps, finite losses
    first_retain = collate(RETAIN[:2])  # min_size: one step per epoch, on the first retain batch
    with torch.no_grad():
        retain_ce = float(TASK.per_sample_loss(TASK.forward(method.reference, first_retain), first_retain).mean())
    assert losses[0] == pytest.approx(20 * math.log(2) + retain_ce, rel=1e-5)  # step 1 starts at θ = θ₀
    after, idk_after = idk_log_likelihoods(model, forget)
    assert after < before
    assert idk_after > idk_before


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"beta": 0}, ValueError, "`beta` should be > 0, got 0"),
        ({"beta": "0.1"}, TypeError, "`beta` should be a number, got str '0.1'"),
        ({"alternative": ""}, ValueError, "`alternative` should be the name of the alternative answers"),
        ({"forget_weight": -0.1}, ValueError, "`forget_weight` should be >= 0"),
        ({"retain_loss": "mse"}, ValueError, r"`retain_loss` should be one of \['kl', 'nll', 'none'\], got 'mse'"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        IdKDPO(**kwargs)
