"""B8's bookkeeping: time-to-forget, the ratios to the oracle, and the shipped settings."""

from __future__ import annotations

import pytest

from lightning_unlearn.benchmarking import b8


def test_time_to_forget_is_the_first_round_within_tolerance():
    assert b8.time_to_forget([80.0, 60.0, 51.5, 50.0], oracle=50.0, tolerance=2.0) == 2
    assert b8.time_to_forget([50.5], oracle=50.0) == 0
    assert b8.time_to_forget([90.0, 80.0], oracle=50.0) is None


def _record(row: str, seed: int, forget: float, seconds: float, nbytes: int, ttf: int | None = None) -> dict:
    return {
        "scheme": "iid", "seed": seed, "row": row, "test_acc": 80.0, "forget_acc": forget, "retain_acc": 85.0,
        "mia": 50.0, "seconds": seconds, "bytes": nbytes, "rounds": 3, "time_to_forget": ttf,
    }


def test_summary_ratios_are_per_seed_against_the_oracle():
    records = [
        _record("retrain", 0, 70.0, 10.0, 1000, 3), _record("pga", 0, 74.0, 2.0, 400, 1),
        _record("retrain", 1, 72.0, 20.0, 1000, 3), _record("pga", 1, 70.0, 2.0, 200, None),
    ]
    summary = b8.summarize(records)["iid"]
    assert summary["pga"]["time_ratio"][0] == pytest.approx((0.2 + 0.1) / 2)
    assert summary["pga"]["comm_ratio"][0] == pytest.approx(0.3)
    assert summary["pga"]["forget_gap"][0] == pytest.approx(3.0)
    assert summary["pga"]["time_to_forget"] == (1.0, 0.0)  # the seed that never got there is left out
    assert summary["pga"]["reached"][0] == 0.5 and summary["pga"]["n"] == (2.0, 0.0)
    assert summary["retrain"]["comm_ratio"] == (1.0, 0.0)
    table = b8.markdown(b8.summarize(records))
    assert "| pga |" in table and "| retrain |" in table
    assert "1.0 ± 0.0 (1/2)" in table and "3.0 ± 0.0 (2/2)" in table


@pytest.mark.parametrize("scale", b8.SCALES)
def test_shipped_settings_name_every_method(scale: str):
    settings = b8.load_settings(scale)
    assert set(settings["methods"]) == {"federaser", "pga", "foul"}
    assert settings["federation"]["num_clients"] == 10
    assert len(settings["seeds"]) >= 3
    # MPU: the tiny Llama for --quick, SmolLM2 for the full run (the split)
    assert settings["mpu"]["model"] == {"quick": "tiny", "full": "smollm2"}[scale]
    with pytest.raises(ValueError, match="scale"):
        b8.load_settings("huge")
