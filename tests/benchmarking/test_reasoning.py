"""The reasoning-trace benchmark driver (``benchmarks/b2_reasoning.py``): settings, the quick run end to end."""

from __future__ import annotations

import json

import pytest

from lightning_unlearn.benchmarking import reasoning


def test_settings_merge_and_errors():
    hp = reasoning.settings("full", {"unlearn": {"graddiff": {"lr": 5e-4}}})
    assert hp["unlearn"]["graddiff"]["lr"] == 5e-4 and hp["unlearn"]["graddiff"]["epochs"] == reasoning.SETTINGS["full"]["unlearn"]["graddiff"]["epochs"]
    assert reasoning.SETTINGS["full"]["unlearn"]["graddiff"]["lr"] != 5e-4  # a copy
    with pytest.raises(ValueError, match=r"`scale` should be one of \['full', 'quick'\], got 'huge'"):
        reasoning.settings("huge")
    with pytest.raises(ValueError, match="should not hold the tuning seed"):
        reasoning.run("quick", [reasoning.TUNE_SEED], "unused")
    assert {name for name, _ in reasoning.tuning_grid(1).values()} == {"feature_replacement", "graddiff"}


def test_quick_run_writes_the_table(tmp_path):
    payload = reasoning.run("quick", [0], tmp_path, log=lambda *_: None)
    saved = json.loads((tmp_path / "b2_reasoning_quick.json").read_text())
    assert saved["seeds"] == [0] and set(saved["summary"]) == {"target", *reasoning.SETTINGS["quick"]["unlearn"]}
    (run,) = payload["runs"]
    for row in run["rows"].values():
        for key in reasoning.SCORE_KEYS:
            low, high = (0.0, float("inf")) if key.endswith("nll") else (0.0, 1.0)
            assert low <= row[key] <= high, (key, row[key])
        assert row["forget_cot_only_leak"] <= row["forget_cot_leak"]
        assert len(row["samples"]["forget"]) > 0
    assert run["forget_size"] == 2 and run["retain_size"] == 6
    assert 0 <= run["analyst"]["precision"] <= 1 and run["analyst"]["true_positives"] > 0
    md = (tmp_path / "b2_reasoning_quick.md").read_text()
    assert md.startswith("| row |") and "feature_replacement" in md and "Analyst span precision" in md


def test_analyst_study_scores_both_analysts():
    study = reasoning.analyst_study(seeds=(1,), n_authors=4, forget_fraction=0.25, log=lambda *_: None)
    assert set(study["summary"]) == {"retrieval", "value_matching"}
    (by_value,) = study["runs"]["value_matching"]
    assert by_value["recall"] == 1.0 and by_value["true_positives"] == 11 * 4  # one forget author, 11 traces, 4 fact spans each
    (by_retrieval,) = study["runs"]["retrieval"]
    assert by_retrieval["false_positives"] <= by_value["false_positives"]
