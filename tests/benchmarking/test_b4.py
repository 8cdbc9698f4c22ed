"""B4's protocol pieces that need no trained model: the configs' settings build every method; the table's maths."""

from __future__ import annotations

import importlib

import pytest

from lightning_unlearn.benchmarking import b4


@pytest.mark.parametrize("name", b4.METHODS)
def test_every_b4_method_builds_from_its_config(name):
    settings = b4.method_settings(name)
    module, _, cls = settings["class_path"].rpartition(".")
    method = getattr(importlib.import_module(module), cls)(**settings["init_args"])
    assert method.name == name and "diffusion" in method.supported_tasks
    assert settings["lr"] > 0 and settings["max_steps"] > 0


def test_table_reports_mean_and_std_over_seeds():
    rows = [
        {"method": "original", "seed": 0, "seconds": 100.0, "forget_acc": 80.0, "paraphrase_acc": 70.0, "other_acc": 60.0},
        {"method": "esd", "seed": 0, "seconds": 10.0, "time_ratio": 0.1, "forget_acc": 10.0, "paraphrase_acc": 20.0, "other_acc": 50.0},
        {"method": "esd", "seed": 1, "seconds": 30.0, "time_ratio": 0.3, "forget_acc": 30.0, "paraphrase_acc": 20.0, "other_acc": 70.0},
    ]
    text = b4.table({"rows": rows})
    esd = next(line for line in text.splitlines() if line.startswith("| esd"))
    assert "| 2 |" in esd and "20.0 ± 14.1" in esd and "60.0 ± 14.1" in esd and "| 20 |" in esd
    assert "1 (training)" in text
