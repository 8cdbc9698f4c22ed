"""Tests for the Avg Gap of SalUn (Fan et al., ICLR 2024)."""

from __future__ import annotations

import re

import pytest
import torch

from lightning_unlearn.metrics import SALUN_GAP_KEYS, avg_gap
from lightning_unlearn.metrics import functional as F

RETRAIN = {"UA": 5.0, "RA": 100.0, "TA": 94.0, "MIA": 13.0}


def test_avg_gap_is_mean_absolute_difference():
    unlearned = {"UA": 3.0, "RA": 99.0, "TA": 95.5, "MIA": 20.0}
    assert avg_gap(unlearned, RETRAIN) == pytest.approx((2.0 + 1.0 + 1.5 + 7.0) / 4)
    assert avg_gap(RETRAIN, RETRAIN) == 0.0
    assert avg_gap(unlearned, RETRAIN) == avg_gap(RETRAIN, unlearned)  # symmetric
    assert SALUN_GAP_KEYS == ("UA", "RA", "TA", "MIA")


def test_avg_gap_custom_keys_extra_entries_and_tensors():
    unlearned = {"UA": torch.tensor(1.0), "RA": 99.0, "TA": torch.tensor([90.0]), "MIA": 13.0, "time_s": 42.0}
    assert avg_gap(unlearned, RETRAIN, keys=["UA", "TA"]) == pytest.approx((4.0 + 4.0) / 2)
    assert avg_gap(unlearned, RETRAIN, keys=("MIA",)) == 0.0
    assert isinstance(avg_gap(unlearned, RETRAIN), float)


def test_avg_gap_is_reexported_by_functional():
    assert F.avg_gap is avg_gap


@pytest.mark.parametrize(
    ("metrics", "oracle", "keys", "match"),
    [
        (
            {"UA": 1.0, "RA": 2.0},
            RETRAIN,
            SALUN_GAP_KEYS,
            "`metrics` is missing keys ['TA', 'MIA']; `keys` asks for ['UA', 'RA', 'TA', 'MIA'], `metrics` has "
            "['RA', 'UA'].",
        ),
        (
            RETRAIN,
            {"UA": 1.0, "RA": 2.0, "TA": 3.0},
            SALUN_GAP_KEYS,
            "`oracle` is missing keys ['MIA']; `keys` asks for ['UA', 'RA', 'TA', 'MIA'], `oracle` has "
            "['RA', 'TA', 'UA'].",
        ),
        (RETRAIN, RETRAIN, ["UA", "FA"], "`metrics` is missing keys ['FA']"),
        (
            RETRAIN,
            RETRAIN,
            [],
            "`keys` should name at least one metric, e.g. ['UA', 'RA', 'TA', 'MIA'], got an empty sequence.",
        ),
        (
            RETRAIN,
            RETRAIN,
            "UA",
            "`keys` should be a sequence of metric names such as ['UA', 'RA', 'TA', 'MIA'], got 'UA'.",
        ),
        ([("UA", 1.0)], RETRAIN, ["UA"], "`metrics` should be a mapping from metric name to value, got list."),
        ({**RETRAIN, "UA": "5"}, RETRAIN, SALUN_GAP_KEYS, "`metrics['UA']` should be a number, got str '5'."),
        (RETRAIN, {**RETRAIN, "TA": float("nan")}, SALUN_GAP_KEYS, "`oracle['TA']` should be finite, got nan."),
        (
            {**RETRAIN, "RA": torch.ones(2)},
            RETRAIN,
            SALUN_GAP_KEYS,
            "`metrics['RA']` should be a number or a one-element tensor, got a tensor of shape (2,).",
        ),
    ],
)
def test_avg_gap_errors(metrics, oracle, keys, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        avg_gap(metrics, oracle, keys=keys)
