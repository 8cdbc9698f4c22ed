"""Fixtures of the callback tests (the toy problem itself lives in ``tests/toys.py`` and ``_toy.py``)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import Dataset, Subset
from toys import FORGET_CLASS, accuracy, blobs, fit_plain

from ._toy import UserClassifier


@pytest.fixture(scope="session")
def data() -> dict[str, Dataset]:
    train, test = blobs(100, seed=1), blobs(50, seed=2)
    forget_idx = [i for i, y in enumerate(train.tensors[1].tolist()) if y == FORGET_CLASS]
    retain_idx = [i for i, y in enumerate(train.tensors[1].tolist()) if y != FORGET_CLASS]
    return {"train": train, "test": test, "forget": Subset(train, forget_idx), "retain": Subset(train, retain_idx)}


@pytest.fixture(scope="session")
def pretrained(data: dict[str, Dataset]) -> dict[str, torch.Tensor]:
    """State dict of a :class:`UserClassifier` trained on all training data (forget class included)."""
    module = UserClassifier()
    fit_plain(module, *data["train"].tensors)  # type: ignore[attr-defined]
    assert accuracy(module, data["forget"]) > 95 and accuracy(module, data["retain"]) > 95
    return copy.deepcopy(module.state_dict())


@pytest.fixture
def user_module(pretrained: dict[str, torch.Tensor]) -> UserClassifier:
    module = UserClassifier()
    module.load_state_dict(pretrained)
    return module
