"""``benchmarks/b2_llm.py``'s target check: a row meets B2's target only if it forgot something."""

from __future__ import annotations

from bench_scripts import load_script


def _script():
    return load_script("b2_llm.py")


def _row(method: str, rouge: float, quality: float, mu_ratio: float = 1.0, time_ratio: float = 0.01) -> dict:
    metrics = {"forget_rouge": rouge, "forget_quality": quality, "mu_ratio_to_target": mu_ratio}
    return {"method": method, "metrics": metrics, "time_ratio_to_finetune": time_ratio}


def test_a_row_that_left_the_forget_answers_as_they_were_does_not_meet_the_target():
    """At the quick scale the untouched target already has forget quality 0.075 (> 0.05): STAMP's rows, whose forget
    ROUGE stayed 1.000, were reported as meeting the target."""
    b2 = _script()
    rows = [_row("target", 1.0, 0.075), _row("stamp", 1.0, 0.184), _row("graddiff", 0.4, 0.3), _row("ga", 0.2, 0.01)]
    check = b2.target_check(rows)
    assert check["met_by"] == ["graddiff"]
    assert check["rows"]["stamp"]["forgot"] is False and check["rows"]["stamp"]["met"] is False
    assert check["rows"]["ga"]["forgot"] is True and check["rows"]["ga"]["met"] is False  # forgot, but quality too low


def test_every_pass_of_a_curve_is_checked_with_its_own_time():
    """A row scored after every pass: pass 1 meets the target within 10% of the fine-tuning time, the final row (pass
    2) has the quality but not the time; the same-run ratio scales with each pass's seconds."""
    b2 = _script()
    row = _row("tru", 0.3, 0.2, time_ratio=0.16)
    row |= {"seconds": 80.0, "time_ratio_to_finetune_same_run_estimate": 0.2}  # a 400 s same-run fine-tuning estimate
    row["curve"] = [
        {"passes": 1, "seconds": 36.0, "time_ratio_to_finetune": 0.072, "forget_rouge": 0.5, "forget_quality": 0.1, "mu_ratio_to_target": 0.97},
        {"passes": 2, "seconds": 80.0, "time_ratio_to_finetune": 0.16, "forget_rouge": 0.3, "forget_quality": 0.2, "mu_ratio_to_target": 1.0},
    ]
    check = b2.target_check([_row("target", 1.0, 0.001), row])
    assert check["met_by"] == [] and check["rows"]["tru"]["forget_quality_and_utility"] is True
    first, second = check["curves"]["tru"]
    assert first["passes"] == 1 and first["met"] is True and first["within_time_same_run"] is True  # 36 / 400 = 0.09
    assert second["met"] is False and second["within_time_same_run"] is False  # 80 / 400 = 0.2
