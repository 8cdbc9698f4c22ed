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
