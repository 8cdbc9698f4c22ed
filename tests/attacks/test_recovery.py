"""recovery = (attacked − unlearned) / (before − unlearned); NaN when nothing was forgotten."""

from __future__ import annotations

import doctest
import importlib
import math

import pytest
import torch

from lightning_unlearn.attacks.recovery import recovery

# By path: a package that re-exports the function `recovery` shadows the module's name as an attribute.
recovery_module = importlib.import_module("lightning_unlearn.attacks.recovery")


@pytest.mark.parametrize(
    ("before", "unlearned", "attacked", "expected"),
    [
        (90.0, 10.0, 10.0, 0.0),  # nothing recovered
        (90.0, 10.0, 90.0, 1.0),  # fully back
        (90.0, 10.0, 50.0, 0.5),
        (90.0, 10.0, 130.0, 1.5),  # overshoot
        (90.0, 10.0, 0.0, -0.125),  # the attack forgot even more
        (1.0, 3.0, 2.5, 0.25),  # a loss: unlearning raised it, the attack lowered it by a quarter of the gap
        (1, 0, 1, 1.0),  # ints
    ],
)
def test_hand_cases(before, unlearned, attacked, expected):
    value = recovery(before, unlearned, attacked)
    assert isinstance(value, float)
    assert value == pytest.approx(expected)


def test_nothing_forgotten_is_nan():
    assert math.isnan(recovery(0.8, 0.8, 0.9))
    assert math.isnan(recovery(0.8, 0.8 + 1e-9, 0.9))
    assert math.isnan(recovery(0.8, 0.75, 0.9, tolerance=0.1))
    assert recovery(0.8, 0.75, 0.775) == pytest.approx(0.5)  # the default tolerance is 1e-6


def test_tensors_broadcast_with_nan_where_nothing_was_forgotten():
    before = torch.tensor([0.9, 0.9, 0.5])
    value = recovery(before, torch.tensor([0.1, 0.9, 0.1]), torch.tensor([0.5, 0.2, 0.7]))
    assert isinstance(value, torch.Tensor) and value.dtype == torch.float32
    torch.testing.assert_close(value, torch.tensor([0.5, math.nan, 1.5]), equal_nan=True)
    # a scalar mixed with tensors, and integer tensors (promoted to the default float dtype)
    torch.testing.assert_close(recovery(1.0, torch.zeros(3), torch.tensor([0.0, 0.5, 1.0])), torch.tensor([0.0, 0.5, 1.0]))
    out = recovery(torch.tensor([4, 4]), torch.tensor([0, 4]), torch.tensor([1, 1]))
    assert out.dtype == torch.get_default_dtype()
    torch.testing.assert_close(out, torch.tensor([0.25, math.nan]), equal_nan=True)
    # float64 stays float64, and no division by zero warnings or infinities appear
    out = recovery(torch.tensor([2.0], dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64), 3.0)
    assert out.dtype == torch.float64 and torch.isnan(out).all()


def test_docstring_example():
    result = doctest.testmod(recovery_module, extraglobs={"torch": torch}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 4 and result.failed == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"before": "0.9"}, TypeError, "`before` should be a number or a tensor, got str '0.9'"),
        ({"unlearned": None}, TypeError, "`unlearned` should be a number or a tensor, got NoneType None"),
        ({"attacked": True}, TypeError, "`attacked` should be a number or a tensor, got bool True"),
        ({"tolerance": 0}, ValueError, "`tolerance` should be > 0, got 0"),
        ({"tolerance": -1.0}, ValueError, "`tolerance` should be > 0, got -1.0"),
    ],
)
def test_errors(kwargs, error, match):
    args = {"before": 0.9, "unlearned": 0.1, "attacked": 0.5, **kwargs}
    with pytest.raises(error, match=match):
        recovery(**args)
