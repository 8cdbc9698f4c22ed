"""Session-wide test settings."""

from __future__ import annotations

import os

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    # Tiny tensors run fastest on one thread, and a busy 2-core machine does not slow them down
    # (two contended OpenMP threads made tiny steps ~10x slower here).
    torch.set_num_threads(1)
    # Request fingerprints are keyed (lightning_unlearn.privacy.request_key): a fixed test key, inherited by the
    # CLI subprocesses, so that tests neither create nor read a key file in the home folder. A key set by the
    # caller wins; tests of the key lookup itself change the environment with monkeypatch.
    os.environ.setdefault("LIGHTNING_UNLEARN_REQUEST_KEY", "lightning-unlearn-tests-not-a-secret")
