"""LCA: L_f = KL(q ‖ p_θ) with q uniform over the classes other than the label (label-complement augmentation)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.methods import LCA, METHODS, complement_kl

from ._toy import batch, context, perturbed, pretrained


def test_registered():
    assert METHODS.get("lca") is LCA
    assert LCA.uses_forget and not LCA.needs_reference


def test_complement_kl_closed_form():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    targets = torch.tensor([0, 3])
    log_p = torch.log_softmax(logits, -1)
    want = []
    for row, y in zip(log_p, targets):
        q = torch.full((4,), 1 / 3)
        q[y] = 0
        want.append(sum(float(q[c] * (math.log(q[c]) - row[c])) for c in range(4) if q[c] > 0))
    torch.testing.assert_close(complement_kl(logits, targets), torch.tensor(want))


def test_complement_kl_is_zero_at_the_complement_and_equals_the_mean_ce_of_the_augmented_pairs():
    big = 30.0
    logits = torch.tensor([[-big, 0.0, 0.0, 0.0]])  # all mass evenly on the other three classes
    assert float(complement_kl(logits, torch.tensor([0]))) == pytest.approx(0.0, abs=1e-6)
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1, 2, 3, 1])
    # the C−1 augmented pairs (x, c), c ≠ y, with equal weight: mean CE = KL + log(C−1)
    ce = torch.stack([torch.stack([F.cross_entropy(logits[i : i + 1], torch.tensor([c])) for c in range(4) if c != int(targets[i])]).mean() for i in range(5)])
    torch.testing.assert_close(complement_kl(logits, targets) + math.log(3), ce)


def test_loss():
    model, forget, retain = pretrained(), batch(seed=1, label=3), batch(seed=2)
    perturbed(model, 0.5)
    method = LCA(forget_weight=2.0, retain_weight=0.5)
    out = method.loss(context(method, model, forget, retain))
    want_f = complement_kl(model(forget[0]), forget[1]).mean()
    ce_r = F.cross_entropy(model(retain[0]), retain[1])
    torch.testing.assert_close(out.loss, 2.0 * want_f + 0.5 * ce_r)


def test_one_class_is_an_error():
    with pytest.raises(ValueError, match="at least 2 classes"):
        complement_kl(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long))
