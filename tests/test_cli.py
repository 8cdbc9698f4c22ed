"""The ``lightning-unlearn`` console script, run as a user would: in a subprocess, from the shipped configs."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "lightning_unlearn.cli", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _last_metrics(csv_dir: Path) -> dict[str, float]:
    files = sorted(csv_dir.glob("version_*/metrics.csv"), key=lambda p: p.stat().st_mtime)
    assert files, f"no metrics.csv under {csv_dir}"
    out: dict[str, float] = {}
    with files[-1].open() as f:
        for row in csv.DictReader(f):
            out.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return out


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "configs").symlink_to(CONFIGS)
    return tmp_path


def test_every_method_has_a_config_for_each_benchmark():
    from lightning_unlearn import METHODS

    classifier_methods = {n for n in METHODS.names() if "classification" in METHODS.get(n).supported_tasks}
    for bench in ("fashion_mnist", "fashion_mnist_vit", "digits"):
        names = {p.stem for p in (CONFIGS / bench).glob("*.yaml")}
        assert classifier_methods <= names, f"{bench} lacks configs for {classifier_methods - names}"
        classwise = {p.stem for p in (CONFIGS / bench / "classwise").glob("*.yaml")}
        assert classifier_methods <= classwise, f"{bench}/classwise lacks configs for {classifier_methods - classwise}"
        assert "original" in names
        for path in (CONFIGS / bench).glob("*.yaml"):
            config = yaml.safe_load(path.read_text())
            assert config["seed_everything"] == 0, f"{path} does not pin its seed"


def test_every_llm_method_has_a_smollm2_config():
    from lightning_unlearn import METHODS

    llm_methods = {"ga", "graddiff", "npo", "simnpo", "idk", "idk_dpo", "rmu", "pmc", "tru", "asu"}
    names = {p.stem for p in (CONFIGS / "authors_smollm2").glob("*.yaml")}
    assert llm_methods | {"target", "oracle"} <= names, f"authors_smollm2 lacks {llm_methods | {'target', 'oracle'} - names}"
    for name in llm_methods:
        config = yaml.safe_load((CONFIGS / "authors_smollm2" / f"{name}.yaml").read_text())
        init = config["model"]["init_args"]
        assert init["model"]["class_path"] == "lightning_unlearn.models.smollm2"
        assert init["task"]["class_path"] == "lightning_unlearn.tasks.CausalLMTask"
        assert init["method"]["class_path"].rsplit(".", 1)[1] == METHODS.get(name).__name__
        assert init["original"] == "artifacts/authors_smollm2/target.pt"


def test_einstein_configs_unlearn_the_released_smollm2():
    """B3's configs: every B3 method, from SmolLM2 as released (no target, no oracle), on the Wikipedia data."""
    from lightning_unlearn import METHODS

    names = {p.stem for p in (CONFIGS / "einstein_smollm2").glob("*.yaml")}
    assert {"ft", "graddiff", "npo", "simnpo", "rmu", "idk", "tru", "pmc", "asu"} <= names
    for name in names:
        config = yaml.safe_load((CONFIGS / "einstein_smollm2" / f"{name}.yaml").read_text())
        init = config["model"]["init_args"]
        assert init["model"]["class_path"] == "lightning_unlearn.models.smollm2"
        assert init["method"]["class_path"].rsplit(".", 1)[1] == METHODS.get(name).__name__
        assert "original" not in init and "oracle" not in init
        assert config["data"]["class_path"] == "lightning_unlearn.datamodules.RealEntityDataModule"
        assert config["data"]["init_args"]["forget_entities"] == ["Albert Einstein"]


def test_help_lists_method_hyperparameters(workdir: Path):
    proc = _cli("fit", "--model", "lightning_unlearn.UnlearningModule", "--model.method.help", "lightning_unlearn.methods.SalUn", cwd=workdir)
    text = proc.stdout
    for arg in ("--method.threshold", "--method.retain_weight", "{global,layer}", "Fraction of weights SalUn may update"):
        assert arg in text, f"{arg!r} missing from --help output"


def test_methods_subcommand_lists_registry(workdir: Path):
    from lightning_unlearn import METHODS

    proc = _cli("methods", cwd=workdir)
    for name in METHODS.names():
        assert name in proc.stdout


@pytest.mark.slow
def test_fit_then_test_from_configs(workdir: Path):
    """original -> retrain (oracle) -> GradDiff, then `test` from the unlearning checkpoint with the oracle."""
    quick = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    _cli("fit", "--config", "configs/digits/original.yaml", "--trainer.max_epochs", "8", *quick, cwd=workdir)
    original = workdir / "artifacts/digits/original.pt"
    assert original.is_file()
    before = original.read_bytes()

    _cli("fit", "--config", "configs/digits/retrain.yaml", "--trainer.max_epochs", "3", "--trainer.check_val_every_n_epoch", "3", *quick, cwd=workdir)
    assert (workdir / "artifacts/digits/retrain.pt").is_file()

    _cli("fit", "--config", "configs/digits/graddiff.yaml", *quick, cwd=workdir)
    ckpt = workdir / "outputs/digits/graddiff/checkpoints/last.ckpt"
    assert ckpt.is_file()
    assert original.read_bytes() == before, "unlearning must never overwrite the original model"
    wandb_runs = list((workdir / "outputs/digits/graddiff/wandb").glob("offline-run-*/run-*.wandb"))
    assert wandb_runs, "the shipped config logs an offline W&B run when W&B is not configured"
    report = workdir / "outputs/digits/graddiff/report"
    assert (report / "report.json").is_file() and (report / "report.html").is_file()

    _cli(
        "test", "--config", "configs/digits/graddiff.yaml", "--ckpt_path", str(ckpt), *quick, cwd=workdir,
    )
    metrics = _last_metrics(workdir / "outputs/digits/graddiff")
    for key in ("test/UA", "test/RA", "test/TA", "test/MIA", "test/mia_auc", "test/avg_gap", "test/oracle/RA"):
        assert key in metrics, f"{key} missing from logged test metrics {sorted(metrics)}"
    assert 0.0 <= metrics["test/UA"] <= 100.0
    assert 0.0 <= metrics["test/avg_gap"] <= 100.0

    # Attack the unlearned model from its checkpoint: int8/int4 quantization and 3 relearning steps, on it and
    # on the oracle; the weights file stays as it was.
    unlearned = workdir / "artifacts/digits/graddiff.pt"
    saved = unlearned.read_bytes()
    proc = _cli(
        "attack", "--config", "configs/digits/graddiff.yaml", "--ckpt_path", str(ckpt), "--relearn-steps", "3",
        "--out", "outputs/digits/graddiff/attacks.json", cwd=workdir,
    )  # fmt: skip
    result = json.loads((workdir / "outputs/digits/graddiff/attacks.json").read_text())
    assert set(result["attacks"]) == {"int8-per-channel", "int4-g128", "relearn-adam-3steps-lr0.001"}
    assert set(result["models"]) == {"unlearned", "original", "oracle"}
    for entry in result["attacks"].values():
        assert {"unlearned", "oracle", "recovery_acc", "oracle_recovery_acc"} <= set(entry)
    assert "int4-g128" in proc.stdout and "held-out forget accuracy" in proc.stdout
    assert unlearned.read_bytes() == saved and original.read_bytes() == before


@pytest.mark.slow
def test_movielens_chain_from_configs(workdir: Path):
    """original -> retrain -> GA (and B5's item-regime TRU) on MovieLens through the shipped configs (shortened: 60
    users, no title branch, a few steps), `test` with the oracle, and the ranking table of the three weights files. Six
    subprocesses: slow (~6 min on 2 busy cores)."""
    short = [
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--data.init_args.max_users", "60",
        "--model.init_args.model.init_args.titles", "false",
    ]  # fmt: skip
    _cli("fit", "--config", "configs/movielens/original.yaml", "--trainer.max_steps", "3", *short, cwd=workdir)
    _cli("fit", "--config", "configs/movielens/retrain.yaml", "--trainer.max_steps", "3", *short, cwd=workdir)
    _cli("fit", "--config", "configs/movielens/ga.yaml", "--trainer.max_steps", "2", *short, cwd=workdir)
    before = (workdir / "artifacts/movielens/original.pt").read_bytes()
    # B5's item-regime TRU setting, unlearning five movies from the same original (its own request in the config)
    _cli("fit", "--config", "configs/movielens_b5/mf/item/tru_rec.yaml", "--trainer.max_steps", "2", *short, cwd=workdir)
    assert (workdir / "artifacts/movielens_b5/mf/item/tru_rec.pt").is_file()
    assert (workdir / "artifacts/movielens/original.pt").read_bytes() == before
    ckpt = workdir / "outputs/movielens/ga/checkpoints/last.ckpt"
    _cli("test", "--config", "configs/movielens/ga.yaml", "--ckpt_path", str(ckpt), *short, cwd=workdir)
    metrics = _last_metrics(workdir / "outputs/movielens/ga")
    for key in ("test/forget_acc", "test/RA", "test/TA", "test/mia_auc", "test/oracle/RA"):
        assert key in metrics, f"{key} missing from logged test metrics {sorted(metrics)}"
    config = workdir / "short.yaml"
    spec = yaml.safe_load((CONFIGS / "movielens/ga.yaml").read_text())
    spec["data"]["init_args"]["max_users"] = 60
    spec["model"]["init_args"]["model"]["init_args"]["titles"] = False
    config.write_text(yaml.safe_dump(spec))
    weights = [f"{name}=artifacts/movielens/{name}.pt" for name in ("original", "retrain", "ga")]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "lightning_unlearn.evaluation.recommendation", "--config", str(config), "--weights", *weights, "--out", "b5.json"]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0].startswith("model | recall@20 | ndcg@20 | forget_recall@20")
    results = json.loads((workdir / "b5.json").read_text())["results"]
    assert set(results) == {"original", "retrain", "ga"} and all(0 <= r["recall@20"] <= 1 for r in results.values())
    assert results["original"]["forget_users"] == 10.0 and results["original"]["test_users"] == 50.0


@pytest.mark.slow
def test_smollm2_chain_from_configs(workdir: Path):
    """The B2 chain on the real SmolLM2, shortened (10 authors, a couple of steps): the target fine-tune, then
    IdK (its refusal answers configured in the collator) and TRU (its tokenizer named in the config) from it."""
    pytest.importorskip("transformers")
    short = [
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--data.init_args.n_authors", "10", "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir", "outputs/authors_smollm2",
    ]  # fmt: skip
    _cli("fit", "--config", "configs/authors_smollm2/target.yaml", "--trainer.max_steps", "2", *short, cwd=workdir)
    target = workdir / "artifacts/authors_smollm2/target.pt"
    assert target.is_file()
    before = target.read_bytes()
    for method in ("idk", "tru"):
        _cli(
            "fit", "--config", f"configs/authors_smollm2/{method}.yaml", "--trainer.max_steps", "1",
            "--model.init_args.oracle", "null", *short, cwd=workdir,
        )  # fmt: skip
        assert (workdir / f"artifacts/authors_smollm2/{method}.pt").is_file()
        assert (workdir / f"outputs/authors_smollm2/{method}/checkpoints/last.ckpt").is_file()
    assert target.read_bytes() == before, "unlearning must never overwrite the target model"
    metrics = _last_metrics(workdir / "outputs/authors_smollm2/lightning_logs")
    for key in ("val/forget_acc", "val/RA", "val/mia_auc"):
        assert key in metrics, f"{key} missing from logged metrics {sorted(metrics)}"
    assert 0.0 <= metrics["val/mia_auc"] <= 1.0


@pytest.mark.slow
def test_einstein_config_unlearns_from_the_released_model(workdir: Path):
    """B3's GradDiff config on the real SmolLM2 and Wikipedia data, shortened (8 forget passages, 2 steps)."""
    pytest.importorskip("transformers")
    pytest.importorskip("gensim")
    _cli(
        "fit", "--config", "configs/einstein_smollm2/graddiff.yaml", "--trainer.max_steps", "2",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--data.init_args.forget_passages", "8", "--data.init_args.retain_passages", "1",
        "--data.init_args.holdout_articles", "4", "--data.init_args.holdout_passages", "1",
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", "outputs/einstein_smollm2",
        cwd=workdir,
    )  # fmt: skip
    assert (workdir / "artifacts/einstein_smollm2/graddiff.pt").is_file()
    assert (workdir / "outputs/einstein_smollm2/graddiff/checkpoints/last.ckpt").is_file()
    metrics = _last_metrics(workdir / "outputs/einstein_smollm2/lightning_logs")
    assert "val/mia_auc" in metrics and 0.0 <= metrics["val/mia_auc"] <= 1.0

    # Attack it: the config has no original path, so the released model the config builds is the original.
    out = workdir / "outputs/einstein_smollm2/graddiff/attacks.json"
    _cli(
        "attack", "--config", "configs/einstein_smollm2/graddiff.yaml", "--weights", "artifacts/einstein_smollm2/graddiff.pt",
        "--bits", "8", "--relearn-steps", "1", "--relearn-lr", "1e-4", "--batch-size", "4", "--out", str(out),
        "--data.init_args.forget_passages", "8", "--data.init_args.retain_passages", "1",
        "--data.init_args.holdout_articles", "4", "--data.init_args.holdout_passages", "1",
        cwd=workdir,
    )  # fmt: skip
    results = json.loads(out.read_text())
    assert set(results["models"]) == {"unlearned", "original"}
    # two GradDiff steps raise the forget passages' loss above the released model's
    assert results["models"]["unlearned"]["forget_loss"] > results["models"]["original"]["forget_loss"]


def test_authors_smollm2_test_runs_get_the_tofu_evaluation():
    """`lightning-unlearn test --config configs/authors_smollm2/<method>.yaml` prints B2's row: every method config is
    an UnlearningModule with CausalLMTask on FictitiousAuthorsDataModule + QACollator with an oracle, which is what
    makes the CLI add LLMEvaluation (checked on real objects below)."""
    import importlib

    from llm_toys import toy_model, toy_tokenizer

    from lightning_unlearn.cli import _is_authors_llm_run
    from lightning_unlearn.datamodules import FictitiousAuthorsDataModule
    from lightning_unlearn.methods import GradDiff
    from lightning_unlearn.module import UnlearningModule
    from lightning_unlearn.tasks import CausalLMTask, ClassificationTask, QACollator

    def import_path(path: str):
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)

    methods = [p for p in (CONFIGS / "authors_smollm2").glob("*.yaml") if p.stem not in ("target", "oracle")]
    assert methods
    for path in methods:
        config = yaml.safe_load(path.read_text())
        init = config["model"]["init_args"]
        assert issubclass(import_path(config["model"]["class_path"]), UnlearningModule), path
        assert import_path(init["task"]["class_path"]) is CausalLMTask, path
        assert init.get("oracle"), f"{path} has no oracle: no forget quality"
        assert issubclass(import_path(config["data"]["class_path"]), FictitiousAuthorsDataModule), path
        assert import_path(config["data"]["init_args"]["collate_fn"]["class_path"]) is QACollator, path
    datamodule = FictitiousAuthorsDataModule(n_authors=10, collate_fn=QACollator(toy_tokenizer()))
    llm = UnlearningModule(toy_model(), GradDiff(), task=CausalLMTask())
    assert _is_authors_llm_run(llm, datamodule)
    assert not _is_authors_llm_run(UnlearningModule(toy_model(), GradDiff(), task=ClassificationTask()), datamodule)
    assert not _is_authors_llm_run(llm, FictitiousAuthorsDataModule(n_authors=10))  # no QACollator: nothing to score with


def test_fit_config_takes_a_shipped_config_by_name(capsys):
    """`fit --config digits/npo` (what `lightning-unlearn configs` lists) runs the shipped file; an unknown name
    lists the close matches; a real path is passed through untouched."""
    from lightning_unlearn.cli import _resolve_shipped_configs, main
    from lightning_unlearn.configs import config_path

    path = str(config_path("digits/npo"))
    assert _resolve_shipped_configs(["fit", "--config", "digits/npo", "--trainer.max_epochs", "1"]) == ["fit", "--config", path, "--trainer.max_epochs", "1"]
    assert _resolve_shipped_configs(["fit", "-c", "digits/npo.yaml"]) == ["fit", "-c", path]
    assert _resolve_shipped_configs(["test", "--config=digits/classwise/salun"]) == ["test", f"--config={config_path('digits/classwise/salun')}"]
    assert _resolve_shipped_configs(["fit", "--config", __file__]) == ["fit", "--config", __file__]
    with pytest.raises(ValueError, match=r"got 'digits/npoo'\. Close matches: \['digits/npo'"):
        _resolve_shipped_configs(["fit", "--config", "digits/npoo"])
    with pytest.raises(SystemExit) as exit_info:  # --print_config prints and exits
        main(["fit", "--config", "digits/npo", "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "lightning_unlearn.methods.NPO" in capsys.readouterr().out


def _tiny_vqa_overrides(name: str) -> list[str]:
    """Run a configs/fashion_vqa config on :func:`~lightning_unlearn.models.vlm.tiny_vlm` and 2 images per class."""
    tokenizer = '{"class_path": "lightning_unlearn.models.tiny_vlm_tokenizer"}'
    if name == "idk":  # its collator is spelled out (the refusals are its alternatives)
        data = ["--data.init_args.collate_fn.init_args.tokenizer", tokenizer, "--data.init_args.collate_fn.init_args.image_token_id", "512"]
    else:
        data = ["--data.init_args.tokenizer", tokenizer]
    return [
        "--model.init_args.model", "lightning_unlearn.models.tiny_vlm", *data,
        "--data.init_args.per_class", "2", "--data.init_args.test_per_class", "1", "--data.init_args.max_eval_samples", "8",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ]  # fmt: skip


@pytest.mark.slow
def test_fashion_vqa_config_unlearns_a_tiny_vlm(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    """B9's NPO config from the command line, its VLM swapped for a tiny random one (the config's own model is the
    cached SmolLM2 VLM): two steps change the weights, SaveWeights writes them and the report records the run."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny convolutions: one thread (two contended ones were ~10x slower)

    from lightning_unlearn._weights import read_weights_file
    from lightning_unlearn.models.vlm import tiny_vlm
    from lightning_unlearn.report import model_hash

    _cli("fit", "--config", "configs/fashion_vqa/npo.yaml", "--trainer.max_steps", "2", *_tiny_vqa_overrides("npo"), cwd=workdir)
    start = tiny_vlm().state_dict()
    saved = read_weights_file(workdir / "artifacts/fashion_vqa/npo.pt")
    assert set(saved) == set(start)
    trainable = [k for k in start if k.startswith(("language_model.", "projector."))]
    assert all(torch.equal(saved[k], start[k]) for k in start if k.startswith("vision_tower."))  # frozen tower
    assert sum(not torch.equal(saved[k], start[k]) for k in trainable) > len(trainable) // 2
    report = json.loads((workdir / "outputs/fashion_vqa/npo/report/report.json").read_text())
    assert report["method"]["name"] == "npo" and report["model"]["class"] == "VisionLanguageModel"
    assert report["model"]["hash_before"] == model_hash(start) and report["model"]["hash_after"] == model_hash(saved)
    assert report["training"]["steps"] == 2 and report["data"]["sizes"] == {"forget": 8, "retain": 32, "holdout": 20}
    unlearned, original = report["metrics"]["unlearned"], report["metrics"]["original"]
    assert {"forget_acc", "RA", "mia_auc"} <= set(unlearned) and original is not None
    assert (workdir / "outputs/fashion_vqa/npo/report/report.html").is_file()

    # Attack it as docs/vlm.md shows: the VLM task's answer loss, images carried by the datamodule's collator.
    out = workdir / "outputs/fashion_vqa/npo/attacks.json"
    _cli(
        "attack", "--config", "configs/fashion_vqa/npo.yaml", "--weights", "artifacts/fashion_vqa/npo.pt",
        "--bits", "8", "--relearn-steps", "2", "--relearn-lr", "1e-3", "--batch-size", "4", "--out", str(out),
        *_tiny_vqa_overrides("npo"), cwd=workdir,
    )  # fmt: skip
    results = json.loads(out.read_text())
    assert set(results["models"]) == {"unlearned", "original"}
    unlearned = results["models"]["unlearned"]
    assert set(results["attacks"]) == {"int8-per-channel", "relearn-adam-2steps-lr0.001"}
    # NPO raised the held-out forget answers' loss above the original's; relearning on the other half brings it down
    assert unlearned["forget_loss"] > results["models"]["original"]["forget_loss"]
    relearned = results["attacks"]["relearn-adam-2steps-lr0.001"]["unlearned"]
    assert math.isfinite(relearned["forget_loss"]) and relearned["forget_loss"] < unlearned["forget_loss"]
