"""Benchmark B6's protocol (:mod:`lightning_unlearn.benchmarking.b6`) and script (``benchmarks/b6_quantum.py``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from bench_scripts import load_script

from lightning_unlearn import METHODS
from lightning_unlearn.benchmarking import b6


def _script():
    return load_script("b6_quantum.py")


def test_uqi_closed_form():
    original = {"forget": 100.0, "retain": 96.0, "test": 94.0}
    assert b6.unlearning_quality_index(original, original) == 0.0
    # forget drop 80, retain drop 6, test drop 4: 80 - (6 + 4) / 2
    assert b6.unlearning_quality_index({"forget": 20.0, "retain": 90.0, "test": 90.0}, original) == 75.0


def test_study_metrics_on_hand_made_predictions():
    oracle_p = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    model_p = torch.tensor([[0.5, 0.5], [0.2, 0.8], [0.3, 0.7], [0.1, 0.9]])
    y = torch.tensor([0, 1, 0, 1])
    preds = {"forget": (model_p[:2], y[:2]), "retain": (model_p, y), "test": (model_p, y)}
    oracle = {"forget": (oracle_p[:2], y[:2]), "retain": (oracle_p, y), "test": (oracle_p, y)}
    original = {"forget": 100.0, "retain": 100.0, "test": 100.0}
    m = b6.study_metrics(preds, original, oracle)
    # argmax of [0.5, 0.5] is class 0 (torch picks the first maximum)
    assert m["acc_forget"] == 100.0 and m["acc_retain"] == 75.0 and m["acc_test"] == 75.0
    assert m["uqi"] == 0.0 - 0.5 * (25.0 + 25.0)
    kl = sum(float((q * (q / p).log()).sum()) for q, p in zip(oracle_p, model_p)) / 4
    assert m["kl_test"] == pytest.approx(kl, rel=1e-5) and m["kl_retain"] == pytest.approx(kl, rel=1e-5)
    assert 0 < m["js_test"] < math.log(2)
    assert m["agree_test"] == 75.0 and m["agree_forget"] == 100.0
    # forget confidences 0.5, 0.8 against test confidences 0.5, 0.8, 0.7, 0.9 (ties count one half)
    expected_auc = (0.5 + 0 + 0 + 0 + 1 + 0.5 + 1 + 0) / 8
    assert m["mia_auc"] == pytest.approx(expected_auc)


def test_methods_come_from_the_arguments():
    study, missing = b6.resolve_methods(None)
    assert set(study) | set(missing) == set(b6.STUDY_METHODS) and study == [m for m in b6.STUDY_METHODS if m in study]
    assert {"ga", "scrub"} <= set(study) and not set(missing) & set(METHODS.names())
    assert b6.resolve_methods(["ga", "nope"]) == (["ga"], ["nope"])
    everything, _ = b6.resolve_methods(["all"])
    assert "retrain" not in everything and "salun" in everything and "npo" in everything and "rmu" not in everything


def test_settings_come_from_the_shipped_configs():
    assert b6.train_recipe("iris") == {"epochs": 30, "lr": 0.01, "batch_size": 32}
    hp, source = b6.method_settings("iris", "class", "ga")
    assert source == "configs/quantum_iris/classwise/ga.yaml" and hp["lr"] == 0.01 and hp["mode"] == "max_size_cycle"
    hp, source = b6.method_settings("digits", "random", "salun")
    assert source == "configs/quantum_digits/salun.yaml" and hp["lr"] == 0.01
    hp, source = b6.method_settings("digits", "random", "a_method_without_configs")  # e.g. one registered by a user
    assert source == "defaults" and hp == b6.DEFAULT_HP
    with pytest.raises(ValueError, match=r"`scenario` should be one of \['class', 'random'\], got 'rand'"):
        b6.method_settings("iris", "rand", "ga")


def test_the_script_end_to_end_on_a_tiny_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two depths, one seed, GA, a one-epoch recipe: rows, summary, claims, tables, plot; the second run hits the cache."""
    monkeypatch.setattr(b6, "train_recipe", lambda dataset: {"epochs": 1, "lr": 0.01, "batch_size": 32})
    monkeypatch.setattr(b6, "method_settings", lambda d, s, m: ({**b6.DEFAULT_HP, "epochs": 1}, "defaults"))
    script = _script()
    out = tmp_path / "b6.json"
    args = ["--quick", "--layers", "1", "2", "--methods", "ga", "nope", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    payload = script.main(args)
    saved = json.loads(out.read_text())
    assert saved["config"]["methods"] == ["ga"] and saved["config"]["missing_methods"] == ["nope"]
    assert {(r["layers"], r["scenario"], r["method"]) for r in saved["rows"]} == {
        (d, s, m) for d in (1, 2) for s in ("random", "class") for m in ("original", "retrain", "ga")
    }
    original = next(r for r in saved["rows"] if r["method"] == "original")
    assert original["metrics"]["uqi"] == 0.0 and original["metrics"]["agree_test"] <= 100.0
    oracle = next(r for r in saved["rows"] if r["method"] == "retrain")
    assert oracle["metrics"]["kl_test"] == 0.0 and oracle["metrics"]["time_ratio"] == 1.0
    assert set(payload["claims"]) >= {"shallow_circuits_barely_memorise", "b6_target"}
    assert out.with_suffix(".png").stat().st_size > 1000 and "UQI against depth" in out.with_suffix(".md").read_text()
    script.main(args)
    saved = json.loads(out.read_text())
    assert len(list((tmp_path / "cache" / "b6").glob("*.pt"))) == 6  # 2 originals + 4 oracles, trained once
    merged = tmp_path / "merged.json"
    script.main(["--merge", str(out), "--out", str(merged), "--quiet"])
    assert json.loads(merged.read_text())["summary"] == saved["summary"]
