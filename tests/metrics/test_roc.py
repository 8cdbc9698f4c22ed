"""Tests for the package's one ROC / AUROC (:mod:`lightning_unlearn.metrics.roc`) against scikit-learn."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from lightning_unlearn.metrics import auroc, roc_curve


def _labels_scores(members, nonmembers):
    m, h = np.asarray(members, dtype=np.float64), np.asarray(nonmembers, dtype=np.float64)
    return np.r_[np.ones(m.size), np.zeros(h.size)], np.r_[m, h]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_roc_curve_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    members = np.round(rng.normal(0.4, 1.0, 57), 1)  # rounding makes many ties, within and across sides
    nonmembers = np.round(rng.normal(0.0, 1.0, 43), 1)
    labels, scores = _labels_scores(members, nonmembers)
    assert auroc(torch.from_numpy(members), list(nonmembers)) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr, thresholds = roc_curve(torch.from_numpy(members), torch.from_numpy(nonmembers))
    want_fpr, want_tpr, want_thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr.numpy(), want_fpr, rtol=0, atol=1e-15)
    np.testing.assert_allclose(tpr.numpy(), want_tpr, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(thresholds.numpy()[1:], want_thr[1:])
    assert thresholds[0] == float("inf") and fpr.dtype == tpr.dtype == torch.float64


def test_auroc_keeps_large_scores_apart():
    # torchmetrics' binary_auroc squashes scores outside [0, 1] with a float32 sigmoid: 20 and 30 would tie
    members, nonmembers = [30.0, 40.0, -50.0], [20.0, 25.0]
    labels, scores = _labels_scores(members, nonmembers)
    assert auroc(members, nonmembers) == roc_auc_score(labels, scores) == pytest.approx(4 / 6)


def test_auroc_extremes_and_exact_fractions():
    assert auroc([3.0, 2.0], [1.0, 0.0]) == 1.0
    assert auroc([1.0, 0.0], [3.0, 2.0]) == 0.0
    assert auroc([1.0] * 5, [1.0] * 7) == 0.5
    # 1 / 3 of the pairs: exact in float64, not float32-rounded
    assert auroc([1.0], [0.0, 2.0, 3.0]) == pytest.approx(1 / 3, abs=1e-15)


def test_tpr_at_low_fpr_from_roc_curve():
    rng = np.random.default_rng(5)
    members, nonmembers = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 200)
    labels, scores = _labels_scores(members, nonmembers)
    fpr, tpr, _ = roc_curve(torch.from_numpy(members), torch.from_numpy(nonmembers))
    want_fpr, want_tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    for alpha in (0.01, 0.05, 0.1):  # 2, 10 and 20 false positives out of 200: exact boundaries
        assert tpr[fpr <= alpha].max().item() == want_tpr[want_fpr <= alpha].max()


@pytest.mark.parametrize(
    ("members", "nonmembers", "error", "match"),
    [
        ([], [0.1], ValueError, "auroc needs at least one member and one non-member score; got 0 member scores."),
        ([0.1], torch.tensor([]), ValueError, "got 0 non-member scores."),
        ([[0.1]], [0.1], ValueError, "`member_scores` should be 1-D, got shape (1, 1)."),
        ([0.1], [float("nan")], ValueError, "`nonmember_scores` contains NaN or infinite values."),
        (torch.tensor([True]), [0.1], ValueError, "`member_scores` should hold real numbers, got dtype torch.bool."),
        ("abc", [0.1], TypeError, "`member_scores` should be a 1-D tensor or sequence of numbers, got str."),
    ],
)
def test_auroc_errors(members, nonmembers, error, match):
    with pytest.raises(error, match=re.escape(match)):
        auroc(members, nonmembers)


def test_roc_curve_errors():
    with pytest.raises(ValueError, match=re.escape("roc_curve needs at least one member and one non-member score")):
        roc_curve([0.5], [])
