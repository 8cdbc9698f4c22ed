"""B3 over seeds: ``merge_seeds`` / ``seed_table`` of :mod:`lightning_unlearn.benchmarking.b3` (``b3_entity.py --merge``)."""

from __future__ import annotations

import json
import math

import pytest
from bench_scripts import load_script

from lightning_unlearn.benchmarking import b3


def _row(name: str, forget: float, worst: float, passes: bool = False) -> dict:
    checks = {"forget_acc": passes, "retain_ratio": passes, "attack_recovery": worst <= 0.25}
    check = {"passes": passes, "checks": checks, "worst_recovery": worst, "attacks_complete": True}
    base = {"forget_acc": forget, "forget_acc_heldout": forget, "general_acc": 0.8, "ppl_holdout": 28.0}
    return {"row": name, "base": base, "retain_ratio": 0.6, "target_check": check, "unlearning": {"seconds": 40.0, "hparams": {"lr": 1e-4}}}


def _payload(seed: int, rows: list[dict]) -> dict:
    return {"benchmark": "B3", "config": {"seed": seed, "data": {"forget_passages": 24}}, "rows": rows}


def test_merge_means_counts_and_reruns():
    pretrained = {"row": "pretrained", "base": {"forget_acc": 1.0, "forget_acc_heldout": 1.0, "general_acc": 1.0, "ppl_holdout": 28.2}}
    crashed = {"row": "tru", "error": "RuntimeError: boom"}
    merged = b3.merge_seeds([
        _payload(0, [pretrained, _row("asu", 0.2, 0.25), _row("pmc", 0.3, 0.6), crashed]),
        _payload(1, [pretrained, _row("asu", 0.4, 0.5)]),
        _payload(0, [_row("pmc", 0.1, 0.2)]),  # a rerun of seed 0's pmc row replaces it
    ])  # fmt: skip
    assert merged["seeds"] == [0, 1] and list(merged["rows"]) == ["pretrained", "asu", "pmc"]  # the crashed row is left out
    asu = merged["rows"]["asu"]
    assert asu["columns"]["forget acc"]["values"] == [0.2, 0.4] and asu["columns"]["forget acc"]["mean"] == pytest.approx(0.3)
    assert asu["attack_criterion"] == 1 and asu["met_target"] == 0
    assert merged["rows"]["pmc"]["columns"]["worst recovery"]["values"] == [0.2] and merged["rows"]["pmc"]["attack_criterion"] == 1
    pre = merged["rows"]["pretrained"]
    assert pre["checked"] == 0 and math.isnan(pre["columns"]["worst recovery"]["mean"])  # nothing to attack
    table = b3.seed_table(merged)
    assert "| asu | 0.30 ± 0.14 |" in table and table.splitlines()[3].endswith("| 1/2 | 0/2 |")
    assert table.splitlines()[2].endswith("| – | – |")  # the pretrained row


def test_a_seed_without_every_attack_is_not_counted_and_settings_must_agree():
    no_attacks = _row("asu", 0.4, math.nan)
    no_attacks["target_check"]["attacks_complete"] = False  # a --no-attacks run
    merged = b3.merge_seeds([_payload(0, [_row("asu", 0.2, 0.25)]), _payload(1, [no_attacks])])
    assert merged["rows"]["asu"]["checked"] == 1 and merged["rows"]["asu"]["attack_criterion"] == 1
    assert b3.seed_table(merged).rstrip().endswith("| 1/1 | 0/1 |")
    reordered = _row("asu", 0.1, 0.2)
    reordered["unlearning"]["hparams"] = {"lr": 1e-4, "epochs": 1}
    first = _row("asu", 0.2, 0.25)
    first["unlearning"]["hparams"] = {"epochs": 1, "lr": 1e-4}  # the same settings, keys in another order
    assert b3.merge_seeds([_payload(0, [first]), _payload(1, [reordered])])["rows"]["asu"]["seeds"] == [0, 1]
    other_lr = _row("asu", 0.1, 0.2)
    other_lr["unlearning"]["hparams"] = {"lr": 2e-5}
    with pytest.raises(ValueError, match="row 'asu' should have one setting over the seeds"):
        b3.merge_seeds([_payload(0, [_row("asu", 0.2, 0.25)]), _payload(1, [other_lr])])
    other_data = _payload(1, [_row("asu", 0.1, 0.2)])
    other_data["config"]["data"] = {"forget_passages": 12}
    with pytest.raises(ValueError, match="should share their data settings"):
        b3.merge_seeds([_payload(0, [_row("asu", 0.2, 0.25)]), other_data])


def test_script_merge_writes_json_and_table(tmp_path):
    paths = []
    for seed, forget in ((0, 0.2), (1, 0.4)):
        path = tmp_path / f"b3_s{seed}.json"
        path.write_text(json.dumps(_payload(seed, [_row("asu", forget, 0.25)])))
        paths.append(str(path))
    merged = load_script("b3_entity.py").main(["--merge", *paths, "--out", str(tmp_path / "seeds")])
    assert merged["sources"] == paths
    assert json.loads((tmp_path / "seeds.json").read_text())["rows"]["asu"]["attack_criterion"] == 2
    assert "| asu | 0.30 ± 0.14 |" in (tmp_path / "seeds.md").read_text()
