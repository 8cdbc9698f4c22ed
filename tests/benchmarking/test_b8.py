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


def test_requests_from_the_settings_and_the_methods_they_allow():
    settings = b8.load_settings("quick")
    assert b8.request_of(settings, 0).kind == "client"  # the shipped default
    assert b8.methods_for(b8.request_of(settings, 0)) == b8.METHODS
    settings["federation"]["request"] = "class"
    request = b8.request_of(settings, 1)
    assert (request.kind, request.client, request.forget_class, request.seed) == ("class", 0, "largest", 1)
    assert b8.methods_for(request) == ("retrain", "federaser", "pga")  # FOUL is client-level only
    with pytest.raises(ValueError, match=r"`methods` should not include 'foul' for request='class': FOUL's Phase II removes a client's"):
        b8.methods_for(request, ["retrain", "foul"])
    with pytest.raises(ValueError, match="should include 'retrain'"):
        b8.methods_for(request, ["pga"])
    settings["federation"].update(request="samples", forget_fraction=1.5)
    with pytest.raises(ValueError, match=r"`forget_fraction` should be a number in \(0, 1\) for request='samples', got 1.5"):
        b8.request_of(settings, 0)


def test_a_class_request_scores_the_forgotten_class_against_the_oracle():
    records = [
        {**_record("retrain", 0, 70.0, 10.0, 1000, 3), "class_acc": 60.0},
        {**_record("pga", 0, 40.0, 2.0, 400, None), "class_acc": 45.0},
    ]
    summary = b8.summarize(records)["iid"]
    assert summary["pga"]["class_gap"][0] == pytest.approx(15.0) and summary["pga"]["class_acc"][0] == 45.0
    table = b8.markdown(b8.summarize(records))
    assert "test acc on the forgotten class" in table and "| 45.00 ± 0.00 | 15.00 ± 0.00 |" in table
    assert "forgotten class" not in b8.markdown(b8.summarize([_record("retrain", 0, 70.0, 10.0, 1000, 3)]))


def _mpu_record(method: str, seed: int, kappa: float, forget_nll: float, b2: bool, rouge: float = 0.5) -> dict:
    record = {"seed": seed, "method": method, "kappa": kappa, "m": 1 if kappa == 0 else 2, "forget_nll": forget_nll,
              "retain_nll": 1.0, "bytes": 1000, "seconds": 1.0}
    if b2:
        record.update(dict.fromkeys(b8.MPU_B2_KEYS, 0.25), forget_rouge=rouge)
    return record


def test_mpu_table_compares_each_noise_level_with_the_noise_free_run():
    records = [_mpu_record("ga", s, 0.0, 2.0, False) for s in (0, 1)] + [_mpu_record("ga", s, 0.1, 1.0 + s, False) for s in (0, 1)]
    table = b8.mpu_markdown(records)
    assert "| ga | 0.1 | 2 | 1.500 ± 0.707 |" in table
    assert "-25.00 ± 35.36" in table  # (1 − 2)/2 and (2 − 2)/2 → −50% and 0%
    assert "B2's metrics" not in table  # none recorded
    records = [_mpu_record("ga", 0, 0.0, 2.0, True, rouge=0.2), _mpu_record("ga", 0, 0.1, 1.0, True, rouge=0.5)]
    table = b8.mpu_markdown(records)
    assert "B2's metrics" in table
    assert "| ga | 0.1 | 0.500 ± 0.000 |" in table and "0.300 ± 0.000" in table  # forget ROUGE and its change
