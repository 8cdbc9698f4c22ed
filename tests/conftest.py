"""Session-wide test settings."""

from __future__ import annotations

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    # Tiny tensors run fastest on one thread, and a busy 2-core machine does not slow them down
    # (two contended OpenMP threads made tiny steps ~10x slower here).
    torch.set_num_threads(1)
