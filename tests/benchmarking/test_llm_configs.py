"""Benchmarks B2 and B3 read their settings from the shipped configs (``configs/authors_smollm2``,
``configs/einstein_smollm2``): class paths are the registry's, the protocol agrees with the configs, editing a
YAML changes what the benchmark runs, and the benchmark scripts import only the package."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lightning_unlearn import METHODS, configs
from lightning_unlearn.benchmarking import b2, b3

REPO = Path(__file__).resolve().parents[2]
LLM_FOLDERS = (b2.CONFIG_FOLDER, b3.CONFIG_FOLDER)
B2_CHAIN = ("target", "oracle")


def _resolve(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _method_configs(folder: str) -> list[str]:
    return [n for n in configs.list_configs(folder) if n.rsplit("/", 1)[1] not in B2_CHAIN]


@pytest.mark.parametrize("name", [n for folder in LLM_FOLDERS for n in _method_configs(folder)])
def test_an_llm_config_names_the_registered_class_of_its_file_name(name: str):
    """``<folder>/<method>[+<variant>].yaml`` unlearns with ``METHODS.get(<method>)`` and passes only arguments it takes."""
    config = configs.load_config(name)
    method = config["model"]["init_args"]["method"]
    registered = METHODS.get(b2.method_name(name.rsplit("/", 1)[1]))
    assert _resolve(method["class_path"]) is registered
    assert set(method.get("init_args") or {}) <= set(inspect.signature(registered).parameters)
    assert config["model"]["init_args"]["task"]["class_path"] == "lightning_unlearn.tasks.CausalLMTask"


@pytest.mark.parametrize("folder", LLM_FOLDERS)
def test_llm_config_headers_name_the_benchmark_that_reads_them(folder: str):
    script = {"authors_smollm2": "benchmarks/b2_llm.py", "einstein_smollm2": "benchmarks/b3_entity.py"}[folder]
    for name in configs.list_configs(folder):
        text = configs.config_path(name).read_text()
        first = text.splitlines()[0]
        assert first.startswith(f"# {name.replace('/', ' / ')} -- ") and script in first, (name, first)
        assert "generate.py" not in text and "HPARAMS" not in text, name


@pytest.mark.parametrize("folder", LLM_FOLDERS)
def test_tru_takes_its_tokenizer_from_the_task(folder: str):
    init = configs.load_config(f"{folder}/tru")["model"]["init_args"]
    assert "tokenizer" not in (init["method"].get("init_args") or {})
    assert init["task"]["init_args"]["tokenizer"] == {"class_path": "lightning_unlearn.models.smollm2_tokenizer"}


@pytest.mark.parametrize("name", [n for folder in LLM_FOLDERS for n in configs.list_configs(folder)])
def test_the_cli_parses_every_llm_config(name: str, monkeypatch: pytest.MonkeyPatch):
    """What ``lightning-unlearn fit --config configs/<name>.yaml --print_config`` does (nothing is built)."""
    from lightning_unlearn.cli import UnlearnCLI

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", ["lightning-unlearn"])  # not pytest's arguments
    stdout = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stdout(stdout):
        UnlearnCLI(
            args=["--config", str(configs.config_path(name)), "--print_config"], run=False, parser_kwargs={"exit_on_error": False}
        )
    assert exit_info.value.code == 0
    printed = yaml.safe_load(stdout.getvalue())
    assert printed["model"]["init_args"]["task"]["class_path"] == "lightning_unlearn.tasks.CausalLMTask"


# ---------------------------------------------------------------------------------------------------------- B2


def test_every_b2_row_has_a_full_scale_config():
    rows = b2.default_methods("all")
    assert set(b2.LLM_METHODS) <= set(rows) and "pmc+long" in rows
    assert not set(b2.NOT_B2) & set(rows) and "feature_replacement" in b2.NOT_B2  # needs reasoning traces
    for row in rows:
        hp, source = b2.resolve_hparams("full", row)
        assert source == f"configs/authors_smollm2/{row}.yaml" and (REPO / source).is_file()
        assert hp["lr"] > 0 and hp["epochs"] >= 1 and hp["batch_size"] >= 1 and hp["weight_decay"] >= 0
    assert b2.resolve_hparams("full", "pmc+long")[0]["time_limit"] == b2.ROW_TIME_LIMITS["pmc+long"]
    assert "time_limit" not in b2.resolve_hparams("full", "pmc")[0]


def test_b2_full_scale_is_the_target_config():
    """The target's and the oracle's recipe, the data and the collator's max_length of the full scale are target.yaml's;
    oracle.yaml trains with the same recipe on the retain authors; every row unlearns that target against that oracle."""
    target = configs.load_config("authors_smollm2/target")
    scale = b2.SCALES["full"]
    data = target["data"]["init_args"]
    optimizer = target["model"]["init_args"]["optimizer"]
    assert optimizer["class_path"] == "torch.optim.AdamW"
    assert scale["train"] == {
        "epochs": target["trainer"]["max_epochs"],
        "lr": optimizer["init_args"]["lr"],
        "batch_size": data["batch_size"],
        "weight_decay": optimizer["init_args"]["weight_decay"],
        "replay_probes": False,
    }
    assert scale["data"] == {k: data[k] for k in scale["data"]}
    assert scale["max_length"] == data["collate_fn"]["init_args"]["max_length"]
    assert data["train_on"] == "all"
    oracle = configs.load_config("authors_smollm2/oracle")
    assert oracle["data"]["init_args"] == {**data, "train_on": "retain"}
    assert oracle["model"] == target["model"]
    assert oracle["trainer"]["max_epochs"] == target["trainer"]["max_epochs"]
    for name in _method_configs("authors_smollm2"):
        config = configs.load_config(name)
        init, run = config["model"]["init_args"], name.rsplit("/", 1)[1]
        assert init["model"] == target["model"]["init_args"]["model"], name
        assert init["original"] == "artifacts/authors_smollm2/target.pt"
        assert init["oracle"] == "artifacts/authors_smollm2/oracle.pt"
        unlearn = config["data"]["init_args"]
        same = ("train_on", "retain_batch_size", "collate_fn")
        assert {k: v for k, v in unlearn.items() if k not in same} == {k: v for k, v in data.items() if k not in same}, name
        assert unlearn["train_on"] == "forget_retain"
        assert unlearn["collate_fn"]["init_args"]["max_length"] == scale["max_length"]
        assert config["trainer"]["default_root_dir"] == f"outputs/authors_smollm2/{run}"
        callbacks = config["trainer"]["callbacks"]
        saves = [c["init_args"]["path"] for c in callbacks if c["class_path"] == "lightning_unlearn.SaveWeights"]
        assert saves == [f"artifacts/authors_smollm2/{run}.pt"]


def _edited_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str, name: str, edit) -> None:
    shutil.copytree(REPO / "configs" / folder, tmp_path / folder)
    path = tmp_path / folder / f"{name}.yaml"
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setattr(configs, "CONFIG_DIR", tmp_path)


def test_b2_reads_its_settings_from_the_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Editing a config changes what the benchmark runs: the YAML is the source, not a copy."""

    def edit(config):
        config["model"]["init_args"]["optimizer"]["init_args"] = {"lr": 0.123}
        config["model"]["init_args"]["method"]["init_args"] = {"beta": 0.7}
        config["trainer"]["max_epochs"] = 4
        config["data"]["init_args"]["retain_batch_size"] = 6

    _edited_copy(tmp_path, monkeypatch, "authors_smollm2", "npo", edit)
    hp, source = b2.resolve_hparams("full", "npo")
    assert source == "configs/authors_smollm2/npo.yaml"
    assert hp == {
        "lr": 0.123,
        "weight_decay": 0.01,  # AdamW's default when the config leaves it out
        "epochs": 4,
        "max_steps": -1,
        "batch_size": 8,
        "retain_batch_size": 6,
        "method": {"beta": 0.7},
    }
    assert b2.resolve_hparams("full", "graddiff")[0]["lr"] == 1e-4  # the untouched file


def test_b2_quick_scale_is_the_smoke_test_dict():
    hp, source = b2.resolve_hparams("quick", "rmu")
    assert source == "QUICK_HPARAMS['rmu']" and hp["method"] == {"layer": 1} and hp["lr"] == 1e-3
    assert b2.resolve_hparams("quick", "npo") == ({**b2.QUICK_DEFAULT_HP, "method": {}}, "QUICK_DEFAULT_HP")
    assert b2.resolve_hparams("quick", "pmc+long")[0]["time_limit"] == b2.ROW_TIME_LIMITS["pmc+long"] == 2.0


def test_b2_settings_errors():
    with pytest.raises(
        ValueError, match=r"B2 has no settings for 'npo\+nope' at full scale: configs/authors_smollm2/npo\+nope.yaml"
    ):
        b2.resolve_hparams("full", "npo+nope")
    with pytest.raises(ValueError, match=r"`scale` should be one of \['full', 'quick'\], got 'huge'"):
        b2.resolve_hparams("huge", "npo")
    config = configs.load_config("authors_smollm2/npo")
    config["model"]["init_args"]["optimizer"]["class_path"] = "torch.optim.Adam"
    with pytest.raises(
        ValueError, match=r"x.yaml: the benchmark unlearns with `torch.optim.AdamW`, got optimizer 'torch.optim.Adam'"
    ):
        b2.settings_from_config(config, "npo", "x.yaml")
    config = configs.load_config("authors_smollm2/npo")
    config["data"]["init_args"]["mode"] = "max_size"
    with pytest.raises(
        ValueError, match=r"x.yaml: the benchmark pairs forget and retain batches with mode 'min_size', got 'max_size'"
    ):
        b2.settings_from_config(config, "npo", "x.yaml")
    with pytest.raises(
        ValueError,
        match=r"x.yaml: the method should be lightning_unlearn.methods.GradDiff \(registered as 'graddiff'\), "
        r"got 'lightning_unlearn.methods.NPO'",
    ):
        b2.settings_from_config(configs.load_config("authors_smollm2/npo"), "graddiff", "x.yaml")


# ---------------------------------------------------------------------------------------------------------- B3


def test_every_b3_method_has_a_config():
    names = [n.rsplit("/", 1)[1] for n in configs.list_configs(b3.CONFIG_FOLDER)]
    assert {"ft", "graddiff", "npo", "simnpo", "rmu", "idk", "tru", "pmc", "asu"} <= set(names)
    for method in names:
        hp = b3.resolve_hparams(method)
        assert hp["lr"] == 1e-4 and hp["epochs"] == 1 and hp["batch_size"] == 8 and hp["retain_batch_size"] == 4
    assert b3.default_budget() == {"lr": 1e-4, "epochs": 1}
    hp = b3.resolve_hparams("pmc", {"lr": 2e-5, "epochs": 3})
    assert hp["method"] == {"max_new_tokens": 48, "num_samples": 8} and hp["lr"] == 2e-5 and hp["epochs"] == 3


def test_b3_data_is_the_configs():
    for name in configs.list_configs(b3.CONFIG_FOLDER):
        config = configs.load_config(name)
        data = config["data"]["init_args"]
        assert data["forget_entities"] == [b3.ENTITY]
        assert {k: data[k] for k in b3.DATA} == b3.DATA, name
        assert data["collate_fn"]["init_args"]["max_length"] == b3.MAX_LENGTH
        assert "original" not in config["model"]["init_args"] and "oracle" not in config["model"]["init_args"]


def test_b3_reads_its_settings_from_the_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def edit(config):
        config["model"]["init_args"]["method"]["init_args"] = {"max_target_length": 99}
        config["trainer"]["max_epochs"] = 2

    _edited_copy(tmp_path, monkeypatch, "einstein_smollm2", "tru", edit)
    hp = b3.resolve_hparams("tru", {"lr": 3e-5})
    assert hp["method"] == {"max_target_length": 99} and hp["epochs"] == 2 and hp["lr"] == 3e-5
    with pytest.raises(
        ValueError, match=r"B3 has no settings for 'ga': configs/einstein_smollm2/ga.yaml does not exist \(B3's configs: \["
    ):
        b3.resolve_hparams("ga")


# ---------------------------------------------------------------------------------------------------------- scripts


SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py"))


def test_every_benchmark_is_checked():
    assert len(SCRIPTS) >= 15 and {"b2_llm.py", "b5_recommendation.py", "b9_vlm.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_scripts_import_only_the_package(script: str):
    """Every ``benchmarks/*.py`` (the peers' scripts in ``benchmarks/peers/`` run in their own venvs) imports the
    installed package and libraries only: no ``sys.path`` edits, no other script or private helper module."""
    text = (REPO / "benchmarks" / script).read_text()
    assert "sys.path" not in text and "inspect.signature" not in text
    stems = "|".join(re.escape(name.removesuffix(".py")) for name in SCRIPTS)
    assert not re.search(rf"^\s*(import|from)\s+((?!__future__\b)_\w+|{stems})\b", text, re.M), script
    assert not (REPO / "benchmarks" / "_common.py").exists()
