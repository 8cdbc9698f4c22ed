"""Bad Teacher: KL to a random teacher on D_f + KL to the original on D_r, against the closed form."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.methods import METHODS, BadTeacher, random_teacher
from lightning_unlearn.metrics import zrf
from lightning_unlearn.tasks import ClassificationTask

from ._toy import batch, blobs, context, perturbed, pretrained, setup, snapshot, unlearn_class


def _kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, t: float) -> torch.Tensor:
    # KL(p_T ‖ p_S) summed over classes, averaged over samples
    return F.kl_div(F.log_softmax(student_logits / t, -1), F.softmax(teacher_logits / t, -1), reduction="batchmean")


def test_registered():
    assert METHODS.get("bad_teacher") is BadTeacher
    assert BadTeacher.needs_reference and BadTeacher().retain_loss_kind == "kl"


def test_random_teacher_is_seeded_frozen_and_leaves_the_global_rng_alone():
    model = pretrained()
    state = torch.random.get_rng_state()
    a, b, c = random_teacher(model, 0), random_teacher(model, 0), random_teacher(model, 1)
    assert torch.equal(torch.random.get_rng_state(), state)
    for key, value in snapshot(a).items():
        assert torch.equal(value, snapshot(b)[key]) and not torch.equal(value, snapshot(c)[key])
        assert not torch.equal(value, snapshot(model)[key])
    assert not a.training and not any(p.requires_grad for p in a.parameters())


def test_loss_against_the_closed_form():
    model = pretrained()
    forget, retain = batch(seed=1, label=3), batch(seed=2)
    method = BadTeacher(temperature=2.0, forget_weight=0.7, retain_weight=0.3)
    setup(method, model, forget)
    perturbed(model)  # the student has moved away from the original: the retain KL is not 0
    out = method.loss(context(method, model, forget, retain))
    with torch.no_grad():
        bad = method.incompetent_teacher(forget[0])
        good = method.reference(retain[0])
    expected_f = _kl(bad, model(forget[0]), 2.0)
    expected_r = _kl(good, model(retain[0]), 2.0)
    torch.testing.assert_close(out.parts["forget_loss"], expected_f.detach())
    torch.testing.assert_close(out.parts["retain_loss"], expected_r.detach())
    torch.testing.assert_close(out.loss, 0.7 * expected_f + 0.3 * expected_r)


def test_retain_kl_is_zero_at_the_start():
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    method = BadTeacher()
    setup(method, model, forget)
    out = method.loss(context(method, model, forget, retain))
    assert out.parts["retain_loss"].item() == pytest.approx(0.0, abs=1e-6)
    assert out.parts["forget_loss"].item() > 0.1


def test_forgets_a_blob_class_by_answering_like_the_random_teacher():
    model, method = pretrained(), BadTeacher()
    x, y = blobs().tensors
    forget = [(x[y == 3], y[y == 3])]
    method.setup(model, ClassificationTask(), forget, forget)
    zrf_before = zrf(model, forget, random_model=method.incompetent_teacher)
    forget_acc, retain_acc = unlearn_class(method, steps=40, model=model)
    zrf_after = zrf(model, forget, random_model=method.incompetent_teacher)
    with torch.no_grad():
        confidence = torch.softmax(model(x[y == 3]), -1)[:, 3].mean()
    # the student answers D_f like the (near-uniform) random teacher: ZRF near 1, the true class no longer confident;
    # its argmax then falls anywhere (the forget accuracy is not pushed to 0)
    assert zrf_after > 0.95 > zrf_before and confidence < 0.5 and retain_acc >= 0.9


def test_errors():
    class Bare(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(8, 4))

        def forward(self, x):
            return x @ self.w

    with pytest.raises(ValueError, match=r"The random \(incompetent\) model cannot be built: Retrain cannot re-initialise 1"):
        random_teacher(Bare(), 0)
    with pytest.raises(ValueError, match=r"`temperature` should be > 0, got 0"):
        BadTeacher(temperature=0)
    with pytest.raises(ValueError, match=r"`retain_loss` should be one of \['kl', 'none'\], got 'nll'"):
        BadTeacher(retain_loss="nll")
    with pytest.raises(RuntimeError, match="no incompetent teacher; call `setup` first"):
        BadTeacher().forget_loss(context(BadTeacher(), pretrained(), batch()))
    with pytest.raises(TypeError, match="unlearns classifiers"):
        BadTeacher().check_task(type("LM", (), {"kind": "causal_lm"})())
    assert ClassificationTask().kind == "classification"
