"""Q-MUL: L_f = CE(θ; x_f, ỹ) with ỹ = argmax_{c ≠ y} p_θ₀(c | x_f), the original's runner-up class."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_unlearn.methods import METHODS, QMUL, most_similar_other_class

from ._toy import batch, context, perturbed, pretrained, setup, unlearn_class


def test_registered():
    assert METHODS.get("qmul") is QMUL
    assert QMUL.uses_forget and QMUL.needs_reference


def test_most_similar_other_class():
    logits = torch.tensor([[5.0, 1.0, 3.0], [0.0, 2.0, 9.0], [1.0, 1.0, 0.0]])
    targets = torch.tensor([0, 2, 2])
    # row 0: the true class 0 is top, runner-up 2; row 1: true 2, runner-up 1; row 2: true 2 (lowest), top 0 (tie: first)
    torch.testing.assert_close(most_similar_other_class(logits, targets), torch.tensor([2, 1, 0]))
    assert torch.equal(logits, torch.tensor([[5.0, 1.0, 3.0], [0.0, 2.0, 9.0], [1.0, 1.0, 0.0]]))  # not edited in place


def test_loss_uses_the_originals_ranking():
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    method = QMUL(forget_weight=1.5, retain_weight=0.5)
    setup(method, model)
    targets = most_similar_other_class(method.reference(forget[0]).detach(), forget[1])
    assert not bool((targets == forget[1]).any())
    perturbed(model, 0.5)  # the student moved; the targets still come from the frozen original
    out = method.loss(context(method, model, forget, retain))
    ce_f = F.cross_entropy(model(forget[0]), targets)
    ce_r = F.cross_entropy(model(retain[0]), retain[1])
    torch.testing.assert_close(out.loss, 1.5 * ce_f + 0.5 * ce_r)


def test_forgets_a_class_into_its_neighbour():
    forget_acc, retain_acc = unlearn_class(QMUL(), steps=30)
    assert forget_acc <= 0.2 and retain_acc >= 0.9
