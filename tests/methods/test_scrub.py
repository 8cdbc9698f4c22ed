"""SCRUB: max-steps −w·T²·KL_f(teacher ‖ student) [epoch < max_epochs], min-steps γ·CE_r + α·T²·KL_r(teacher ‖ student);
alternating (the paper's) or combined in one step (the earlier variant)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import entropy as scipy_kl

from lightning_unlearn.methods import METHODS, SCRUB

from ._toy import batch, context, perturbed, pretrained, setup


def _kl(teacher, student, x, temperature) -> float:
    """mean KL(p_T ‖ p_S) at the temperature, with scipy."""
    with torch.no_grad():
        p_t = torch.softmax(teacher(x).double() / temperature, -1).numpy()
        p_s = torch.softmax(student(x).double() / temperature, -1).numpy()
    return float(np.mean(scipy_kl(p_t, p_s, axis=-1)))


def _scrub(**kwargs):
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    method = SCRUB(**kwargs)
    setup(method, model)
    perturbed(model, 0.3)  # the student has moved away from the teacher
    return method, model, forget, retain


def test_registered():
    assert METHODS.get("scrub") is SCRUB
    assert SCRUB.needs_reference and SCRUB.uses_forget


def test_defaults_follow_the_scrub_repository():
    m = SCRUB()
    assert (m.temperature, m.gamma, m.alpha, m.max_epochs, m.forget_weight) == (4.0, 0.99, 0.001, 2, 1.0)
    assert m.schedule == "alternating"


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_loss_during_max_steps(temperature):
    method, model, forget, retain = _scrub(
        temperature=temperature, gamma=0.9, alpha=0.5, forget_weight=1.5, max_epochs=2, schedule="combined"
    )
    out = method.loss(context(method, model, forget, retain, epoch=1))
    t2 = temperature**2
    kl_f = t2 * _kl(method.reference, model, forget[0], temperature)
    kl_r = t2 * _kl(method.reference, model, retain[0], temperature)
    ce_r = float(F.cross_entropy(model(retain[0]), retain[1]).detach())
    assert float(out.parts["forget_loss"]) == pytest.approx(-kl_f, rel=1e-4)
    assert float(out.parts["retain_loss"]) == pytest.approx(0.9 * ce_r + 0.5 * kl_r, rel=1e-4)
    assert float(out.loss.detach()) == pytest.approx(-1.5 * kl_f + 0.9 * ce_r + 0.5 * kl_r, rel=1e-4)
    assert kl_f > 0


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_alternating_schedule_takes_max_steps_then_min_steps(temperature):
    method, model, forget, retain = _scrub(temperature=temperature, gamma=0.9, alpha=0.5, forget_weight=1.5, max_epochs=2)
    t2 = temperature**2
    kl_f = t2 * _kl(method.reference, model, forget[0], temperature)
    kl_r = t2 * _kl(method.reference, model, retain[0], temperature)
    ce_r = float(F.cross_entropy(model(retain[0]), retain[1]).detach())
    # a step with a forget batch in the first max_epochs epochs: the max-step only (its retain batch is not used)
    out = method.loss(context(method, model, forget, retain, epoch=1))
    assert set(out.parts) == {"forget_loss", "loss"}
    assert float(out.loss.detach()) == pytest.approx(-1.5 * kl_f, rel=1e-4)
    # a step without a forget batch (mode="max_size", the forget set exhausted): a min-step
    out = method.loss(context(method, model, None, retain, epoch=1))
    assert set(out.parts) == {"retain_loss", "loss"}
    assert float(out.loss.detach()) == pytest.approx(0.9 * ce_r + 0.5 * kl_r, rel=1e-4)
    # after max_epochs every step is a min-step, the forget batch unused
    out = method.loss(context(method, model, forget, retain, epoch=2))
    assert set(out.parts) == {"retain_loss", "loss"}
    assert float(out.loss.detach()) == pytest.approx(0.9 * ce_r + 0.5 * kl_r, rel=1e-4)


@pytest.mark.parametrize("schedule", ["alternating", "combined"])
def test_max_steps_stop_after_max_epochs(schedule):
    method, model, forget, retain = _scrub(max_epochs=2, schedule=schedule)
    for epoch, has_max_step in [(0, True), (1, True), (2, False), (5, False)]:
        out = method.loss(context(method, model, forget, retain, epoch=epoch))
        assert ("forget_loss" in out.parts) == has_max_step, epoch
    out = method.loss(context(method, model, forget, retain, epoch=2))
    torch.testing.assert_close(out.loss, out.parts["retain_loss"])


def test_max_epochs_zero_never_takes_a_max_step():
    method, model, forget, retain = _scrub(max_epochs=0)
    assert "forget_loss" not in method.loss(context(method, model, forget, retain, epoch=0)).parts


def test_forget_term_is_zero_while_the_student_is_the_teacher():
    model, forget = pretrained(), batch(seed=1, label=3)
    method = SCRUB()
    setup(method, model)
    out = method.loss(context(method, model, forget, None))
    torch.testing.assert_close(out.loss, torch.tensor(0.0), atol=1e-6, rtol=0)


def test_retain_batch_missing():
    method, model, forget, _ = _scrub()
    assert "retain_loss" not in method.loss(context(method, model, forget, None)).parts


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"temperature": 0}, ValueError, "`temperature` should be > 0, got 0"),
        ({"gamma": -0.1}, ValueError, "`gamma` should be >= 0, got -0.1"),
        ({"alpha": -1}, ValueError, "`alpha` should be >= 0, got -1"),
        ({"alpha": "0.1"}, TypeError, "`alpha` should be a number, got str '0.1'"),
        ({"max_epochs": -1}, ValueError, "`max_epochs` should be >= 0, got -1"),
        ({"schedule": "sgda"}, ValueError, "`schedule` should be one of"),
        ({"forget_weight": -2}, ValueError, "`forget_weight` should be >= 0, got -2"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        SCRUB(**kwargs)
