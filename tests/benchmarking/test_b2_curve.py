"""B2's curve against passes: the weights kept after every pass, and their scores (``pass_curve`` in b2_llm.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from lightning_unlearn.benchmarking import b2

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "b2_llm.py"
SCALE, SEED = "quick", 0


def _script():
    spec = importlib.util.spec_from_file_location("b2_llm_script_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_pmc_long_is_scored_after_every_pass():
    assert "pmc+long" in b2.ROW_CURVES and b2.VARIANTS == ("pmc+long", "tru+template")


def test_snapshots_after_every_pass_and_their_curve(tmp_path):
    backbone = b2.Backbone(SCALE, SEED, tmp_path)
    hp = {**b2.resolve_hparams(SCALE, "graddiff")[0], "epochs": 2}
    model, _, info = b2.run_method("graddiff", hp, SCALE, SEED, backbone, None, None, snapshots=True)
    snaps = info["snapshots"]
    assert [s["epoch"] for s in snaps] == [1, 2] and 0 < snaps[0]["steps"] < snaps[1]["steps"] == info["steps"]
    assert 0 < snaps[0]["seconds"] < snaps[1]["seconds"]
    final = model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in snaps[1]["state"].items())  # the last snapshot is the final model
    assert any(not torch.equal(final[k], v) for k, v in snaps[0]["state"].items())  # the first is not
    script = _script()
    sets = b2.eval_sets(SCALE, SEED)
    oracle = script.evaluate(backbone.build().eval(), backbone, sets, [], SCALE)
    result = script.evaluate(model, backbone, sets, [], SCALE)
    row = {"method": "graddiff", "budget": {"steps": info["steps"]}, "metrics": {**result["metrics"], "forget_quality": 0.5}}
    curve = script.pass_curve(snaps, model, row, backbone, sets, [], SCALE, "paraphrase", oracle["forget_truth_ratios"], 0.5, 100.0, lambda *a: None)
    assert [p["passes"] for p in curve] == [1, 2] and curve[1]["forget_quality"] == 0.5  # the last point is the row
    first = script.evaluate(_with(backbone, snaps[0]["state"]), backbone, sets, [], SCALE)["metrics"]
    assert curve[0]["forget_rouge"] == pytest.approx(first["forget_rouge"]) and curve[0]["model_utility"] == pytest.approx(first["model_utility"])
    assert curve[0]["mu_ratio_to_target"] == pytest.approx(first["model_utility"] / 0.5)
    assert curve[0]["time_ratio_to_finetune"] == pytest.approx(snaps[0]["seconds"] / 100.0)


def _with(backbone, state):
    model = backbone.build()
    model.load_state_dict(state)
    return model.eval()
