"""B2's curve against passes: the weights kept after every pass, and their scores (``pass_curve`` in b2_llm.py)."""

from __future__ import annotations

import pytest
import torch
from bench_scripts import load_script

from lightning_unlearn.benchmarking import b2

SCALE, SEED = "quick", 0


def _script():
    return load_script("b2_llm.py")


def test_pmc_long_and_tru_are_scored_after_every_pass():
    assert {"pmc+long", "tru", "tru+template"} <= set(b2.ROW_CURVES) and b2.VARIANTS == ("pmc+long", "tru+template", "tru+fast")


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


def _payload(seed: int, fq: float, mu: float, same_run: float, curve: list[tuple[float, float]] | None = None) -> dict:
    row = {
        "method": "pmc+long",
        "metrics": {"forget_rouge": 0.5, "forget_quality": fq, "mu_ratio_to_target": mu, "gk_acc": 0.5, "mia_loss": 0.6, "gibberish": 0.0},
        "time_ratio_to_finetune_same_run_estimate": same_run,
        "seconds": same_run * 100.0,  # its run's same-run fine-tuning estimate: 100 s
        "budget": {"steps": 6},
    }
    if curve:
        row["curve"] = [
            {"passes": k + 1, "seconds": 10.0 * (k + 1), "forget_quality": q, "mu_ratio_to_target": m, "forget_rouge": 0.5, "mia_loss": 0.6}
            for k, (q, m) in enumerate(curve)
        ]
    crashed = {"method": "tru", "error": "RuntimeError: boom"}
    check = {"forget_quality_and_utility": fq >= 0.05 and mu >= 0.95, "within_time_same_run": same_run <= 0.1}
    curve_checks = [
        {"passes": pt["passes"], "forget_quality_and_utility": pt["forget_quality"] >= 0.05 and pt["mu_ratio_to_target"] >= 0.95, "within_time_same_run": pt["seconds"] / 100.0 <= 0.1}
        for pt in row.get("curve", [])
    ]
    return {
        "scale": "full",
        "config": {"seed": seed, "finetune_calibration": {"estimate_seconds": 100.0}},
        "rows": [row, crashed],
        "target_check": {"rows": {"pmc+long": check}, "curves": {"pmc+long": curve_checks}},  # as b2_llm.py's target_check writes it
    }


def test_merge_seeds_means_stds_target_counts_and_curves(tmp_path):
    merged = b2.merge_seeds([
        _payload(0, 0.2, 0.97, 0.08, [(0.01, 1.0), (0.2, 0.97)]),
        _payload(1, 0.01, 0.99, 0.08, [(0.001, 1.0), (0.01, 0.99)]),
        _payload(2, 0.3, 0.90, 0.05, [(0.06, 0.98), (0.3, 0.90)]),
    ])  # fmt: skip
    assert merged["seeds"] == [0, 1, 2] and list(merged["rows"]) == ["pmc+long"]  # a crashed row is left out
    entry = merged["rows"]["pmc+long"]
    fq = entry["columns"]["forget quality"]
    assert fq["values"] == [0.2, 0.01, 0.3] and fq["mean"] == pytest.approx(0.17) and fq["std"] == pytest.approx(0.147309199)
    assert entry["met_target"] == 1  # seed 0 only: seed 1's quality and seed 2's utility fall short
    first = entry["curve"][0]
    assert first["passes"] == 1 and first["n"] == 3 and first["forget_quality"][0] == pytest.approx(0.071 / 3)
    assert first["time_ratio_same_run"] == (pytest.approx(0.1), 0.0)  # 10 s of a 100 s same-run fine-tuning
    assert first["met_target"] == 1 and entry["curve"][1]["met_target"] == 0  # seed 2's first pass; pass 2 is over time
    table = b2.seed_table(merged)
    assert "| pmc+long | 0.500 ± 0.000 | 0.170 ± 0.147 | 0.95 ± 0.05 |" in table and table.rstrip().endswith("1/3 |")
    curves = b2.curve_table(merged)
    assert "| pmc+long | 2 | 3 | 0.170 ± 0.147 |" in curves and "| 0.100 ± 0.000 | 1/3 |" in curves
    plot = b2.plot_curves(merged, tmp_path / "curve.png")
    assert plot is None or plot.stat().st_size > 0
    # a rerun of a row (same seed, same data) replaces it; other rows stay
    rerun = _payload(1, 0.4, 0.99, 0.08)
    rerun["rows"] = [{**rerun["rows"][0], "method": "tru"}]
    rerun["target_check"] = {"rows": {"tru": rerun["target_check"]["rows"]["pmc+long"]}}
    combined = b2.merge_seeds([_payload(0, 0.2, 0.97, 0.08), _payload(1, 0.01, 0.99, 0.08), rerun])
    assert combined["seeds"] == [0, 1] and combined["rows"]["tru"]["columns"]["forget quality"]["values"] == [0.4]
    assert combined["rows"]["pmc+long"]["columns"]["forget quality"]["values"] == [0.2, 0.01]
    other = _payload(0, 0.1, 1, 0.1)
    other["config"]["data_fingerprint"] = "another split"
    with pytest.raises(ValueError, match="should share their data"):
        b2.merge_seeds([_payload(0, 0.1, 1, 0.1), other])


def test_a_rerun_row_s_curve_is_timed_against_its_own_run():
    """A row rerun in another process has its own same-run fine-tuning estimate (here 200 s, the first run's 100 s):
    its passes are timed against 200 s; a pass without a check is left out of the count, not failed."""
    first = _payload(0, 0.2, 0.97, 0.08, [(0.01, 1.0), (0.2, 0.97)])
    rerun = _payload(0, 0.3, 0.97, 0.1, [(0.06, 0.99), (0.3, 0.97)])
    rerun["rows"][0]["seconds"] = 20.0  # 20 s = 0.1 of its run's 200 s estimate (the config still says 100 s)
    rerun["target_check"]["curves"]["pmc+long"] = rerun["target_check"]["curves"]["pmc+long"][:1]  # pass 2 unchecked
    merged = b2.merge_seeds([first, rerun])
    curve = merged["rows"]["pmc+long"]["curve"]
    assert curve[0]["time_ratio_same_run"][0] == pytest.approx(0.05) and curve[1]["time_ratio_same_run"][0] == pytest.approx(0.1)
    assert (curve[0]["checked"], curve[1]["checked"]) == (1, 0)
    assert "| pmc+long | 2 | 1 |" in b2.curve_table(merged) and b2.curve_table(merged).rstrip().endswith("| – |")


def test_older_curves_are_retimed_from_the_run_start():
    payload = _payload(0, 0.2, 0.97, 0.08, [(0.01, 1.0), (0.2, 0.97)])
    row = payload["rows"][0]
    row |= {"seconds": 25.0, "time_ratio_to_finetune": 0.25, "budget": {"steps": 6, "setup_seconds": 5.0}}
    for pt in row["curve"]:
        pt["time_ratio_to_finetune"] = pt["seconds"] / 100.0  # timed from the start of training (no "clock")
    b2.curves_from_run_start(payload)
    assert [pt["seconds"] for pt in row["curve"]] == [15.0, 25.0] and row["curve"][1]["time_ratio_to_finetune"] == pytest.approx(0.25)
    b2.curves_from_run_start(payload)  # idempotent
    assert [pt["seconds"] for pt in row["curve"]] == [15.0, 25.0]
