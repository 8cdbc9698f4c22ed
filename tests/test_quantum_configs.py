"""The hybrid quantum-classical configs (``configs/quantum_*``, benchmark B6): consistent chains, a config for every
classifier method, and the chain original -> oracle -> method run through ``lightning-unlearn fit`` as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_unlearn import METHODS, configs
from lightning_unlearn.benchmarking import b6

REPO = Path(__file__).resolve().parents[1]
BENCHES = ("quantum_iris", "quantum_digits", "quantum_fmnist")


@pytest.mark.parametrize("bench", BENCHES)
def test_quantum_chains_are_consistent(bench: str):
    """Every run of a folder builds the same hybrid model, names its outputs after its file, and unlearns the folder's
    original against its scenario's oracle with the study's request (random 2% or class 0)."""
    original = configs.load_config(f"{bench}/original")
    model = original["model"]["init_args"]["model"]
    assert model["class_path"] == "lightning_unlearn.models.HybridQuantumClassifier"
    assert original["data"]["class_path"] == "lightning_unlearn.AngleFeaturesDataModule"
    assert original["data"]["init_args"]["train_on"] == "all"
    for name in configs.list_configs(bench):
        run = name.split("/", 1)[1]
        if run == "original":
            continue
        config = configs.load_config(name)
        trainer, init, data = config["trainer"], config["model"]["init_args"], config["data"]["init_args"]
        assert init["model"] == model and trainer["default_root_dir"] == f"outputs/{bench}/{run}"
        saves = [c["init_args"]["path"] for c in trainer["callbacks"] if c["class_path"] == "lightning_unlearn.SaveWeights"]
        assert saves == [f"artifacts/{bench}/{run}.pt"]
        classwise = run.startswith("classwise/")
        request = {"forget_class": 0} if classwise else {"forget_fraction": 0.02}
        assert {k: data.get(k) for k in request} == request and data["train_on"] == "forget_retain"
        assert data["dataset"] == original["data"]["init_args"]["dataset"]
        if run.endswith("retrain"):
            assert trainer["max_epochs"] == original["trainer"]["max_epochs"]
            continue
        assert init["original"] == f"artifacts/{bench}/original.pt"
        assert init["oracle"] == f"artifacts/{bench}/{'classwise/' if classwise else ''}retrain.pt"


@pytest.mark.parametrize("dataset", sorted(b6.CONFIG_FOLDERS))
def test_every_classifier_method_has_configs_in_both_scenarios(dataset: str):
    classifier = [m for m in METHODS.names() if m != "retrain" and "classification" in METHODS.get(m).supported_tasks]
    for scenario in b6.SCENARIOS:
        for method in classifier:
            hp, source = b6.method_settings(dataset, scenario, method)
            assert source != "defaults", f"no configs/{b6.CONFIG_FOLDERS[dataset]} config for {method} ({scenario})"
            assert (REPO / source).is_file() and hp["lr"] > 0


def _cli(*args: str, cwd: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, "-m", "lightning_unlearn.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


@pytest.mark.slow
def test_quantum_iris_chain_from_configs(tmp_path: Path):
    """original (2 epochs) -> class-0 oracle (1 epoch) -> EU-k, each `lightning-unlearn fit --config ...`; the
    unlearning run writes its weights, checkpoint and report."""
    (tmp_path / "configs").symlink_to(REPO / "configs")
    quick = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    _cli("fit", "--config", "configs/quantum_iris/original.yaml", "--trainer.max_epochs", "2", *quick, cwd=tmp_path)
    assert (tmp_path / "artifacts/quantum_iris/original.pt").is_file()
    _cli("fit", "--config", "configs/quantum_iris/classwise/retrain.yaml", "--trainer.max_epochs", "1",
         "--trainer.check_val_every_n_epoch", "1", *quick, cwd=tmp_path)  # fmt: skip
    _cli("fit", "--config", "configs/quantum_iris/classwise/eu_k.yaml", "--trainer.max_epochs", "1", *quick, cwd=tmp_path)
    assert (tmp_path / "artifacts/quantum_iris/classwise/eu_k.pt").is_file()
    assert (tmp_path / "outputs/quantum_iris/classwise/eu_k/checkpoints/last.ckpt").is_file()
    report = json.loads((tmp_path / "outputs/quantum_iris/classwise/eu_k/report/report.json").read_text())
    assert "oracle" in json.dumps(report) and (tmp_path / "outputs/quantum_iris/classwise/eu_k/report/report.html").is_file()
