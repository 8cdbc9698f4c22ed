"""Fixtures of the callback tests (the toy problem itself lives in ``_toy.py``)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from ._toy import FORGET_CLASS, UserClassifier, accuracy, blobs


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
    x, y = data["train"].tensors  # type: ignore[attr-defined]
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        F.cross_entropy(module(x), y).backward()
        optimizer.step()
    assert accuracy(module, data["forget"]) > 95 and accuracy(module, data["retain"]) > 95
    return copy.deepcopy(module.state_dict())


@pytest.fixture
def user_module(pretrained: dict[str, torch.Tensor]) -> UserClassifier:
    module = UserClassifier()
    module.load_state_dict(pretrained)
    return module
