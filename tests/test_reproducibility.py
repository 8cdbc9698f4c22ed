"""Shipped configs pin their seeds: rerunning one reproduces the numbers recorded beside it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECORD = json.loads((CONFIGS / "digits" / "results.json").read_text())


@pytest.fixture(scope="module")
def record_results():
    sys.path.insert(0, str(CONFIGS))
    try:
        import record_results as module  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    return module


def test_every_digits_method_has_recorded_numbers():
    from lightning_unlearn import METHODS

    classifier_methods = {n for n in METHODS.names() if "classification" in METHODS.get(n).supported_tasks}
    assert classifier_methods - {"retrain"} <= set(RECORD["results"])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, record_results):
    """The config chain's first two steps, once: the original and the oracle."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        path = tmp_path_factory.mktemp("repro")
        record_results.run_config("digits", "original", path)
        record_results.run_config("digits", "retrain", path)
        yield path


@pytest.mark.slow
@pytest.mark.parametrize("name", ["npo", "salun", "stake_the_points"])
def test_rerunning_a_config_reproduces_its_recorded_numbers(name: str, workspace: Path, monkeypatch, record_results):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    got = record_results.run_config("digits", name, workspace)
    want = RECORD["results"][name]
    assert set(want) <= set(got)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=RECORD["tolerance"]), f"{name} {key}: rerun {got[key]:.3f} vs recorded {value:.3f}"
