"""The shipped configs: the source of benchmark B1's settings, their class paths, and `lightning-unlearn configs`.

The last test builds a wheel, installs it into a fresh virtual environment and runs a shipped config from there
(``@pytest.mark.slow``: it installs torch and the dependencies from the machine's package index).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from lightning_unlearn import METHODS, configs
from lightning_unlearn.benchmarking import b1

REPO = Path(__file__).resolve().parents[1]
B1_BENCHES = ("digits", "fashion_mnist", "fashion_mnist_vit")


def _class_paths(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["class_path"]] if isinstance(node.get("class_path"), str) else []
        return found + [p for value in node.values() for p in _class_paths(value)]
    if isinstance(node, list):
        return [p for value in node for p in _class_paths(value)]
    return []


def _resolve(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_the_package_ships_the_repository_configs():
    assert configs.CONFIG_DIR.resolve() == (REPO / "configs").resolve()
    on_disk = sorted(p.relative_to(REPO / "configs").with_suffix("").as_posix() for p in (REPO / "configs").rglob("*.yaml"))
    assert configs.list_configs() == on_disk
    assert {"digits", "fashion_mnist", "fashion_mnist_vit", "authors_smollm2", "einstein_smollm2", "sweeps"} <= set(
        configs.benchmarks()
    )


@pytest.mark.parametrize("name", configs.list_configs())
def test_every_class_path_resolves(name: str):
    config = configs.load_config(name)
    for class_path in _class_paths(config):
        assert callable(_resolve(class_path)), f"configs/{name}.yaml: {class_path} is not importable"


def _method_configs() -> list[str]:
    return [
        n
        for n in configs.list_configs()
        if not n.startswith("sweeps/") and "method" in configs.load_config(n)["model"]["init_args"]
    ]


@pytest.mark.parametrize("name", _method_configs())
def test_a_method_config_names_the_registered_class_of_its_file_name(name: str):
    """``<bench>/[classwise/]<method>[+<variant>].yaml`` unlearns with ``METHODS.get(<method>)``."""
    method = configs.load_config(name)["model"]["init_args"]["method"]
    registered = METHODS.get(b1.method_name(name.rsplit("/", 1)[1]))
    assert _resolve(method["class_path"]) is registered
    accepted = inspect.signature(registered).parameters
    assert set(method.get("init_args") or {}) <= set(accepted), (
        f"configs/{name}.yaml passes arguments {registered.__name__} does not take"
    )


def test_every_classifier_method_has_b1_configs_in_both_scenarios():
    classifier = [m for m in METHODS.names() if m != "retrain" and "classification" in METHODS.get(m).supported_tasks]
    for scale in ("quick", "full", "full_vit"):
        for scenario in b1.SCENARIOS:
            for method in classifier:
                hp, source = b1.resolve_hparams(scale, scenario, method)
                assert (REPO / source).is_file()
                assert hp["lr"] > 0 and hp["epochs"] >= 1 and hp["batch_size"] >= 1


@pytest.mark.parametrize("bench", B1_BENCHES)
def test_b1_chains_are_consistent(bench: str):
    """What configs/generate.py used to guarantee: each file's outputs are named after it, every method unlearns the
    folder's original against its scenario's oracle, with the same model, seed and deletion request."""
    original = configs.load_config(f"{bench}/original")
    model = original["model"]["init_args"]["model"]
    for folder, request in (("", {"forget_fraction": 0.1}), ("classwise/", {"forget_class": 0})):
        names = [
            n
            for n in configs.list_configs(bench)
            if n.startswith(f"{bench}/{folder}") and n.count("/") == folder.count("/") + 1 and n != f"{bench}/original"
        ]
        assert f"{bench}/{folder}retrain" in names
        for name in names:
            run = name.split("/", 1)[1]
            config = configs.load_config(name)
            trainer, init = config["trainer"], config["model"]["init_args"]
            assert config["seed_everything"] == 0
            assert trainer["default_root_dir"] == f"outputs/{bench}/{run}"
            saves = [c["init_args"]["path"] for c in trainer["callbacks"] if c["class_path"] == "lightning_unlearn.SaveWeights"]
            assert saves == [f"artifacts/{bench}/{run}.pt"], name
            assert [logger["init_args"].get("name") for logger in trainer["logger"]] == [run.replace("/", "-"), run]
            assert init["model"] == model, f"{name} builds another model than {bench}/original"
            data = config["data"]["init_args"]
            assert {k: data[k] for k in request} == request and not set(data) & (
                {"forget_fraction", "forget_class"} - set(request)
            )
            assert data["seed"] == 0 and data["train_on"] == "forget_retain"
            if run.endswith("retrain"):
                continue
            assert init["original"] == f"artifacts/{bench}/original.pt"
            assert init["oracle"] == f"artifacts/{bench}/{folder}retrain.pt"
            reports = [
                c["init_args"]["dirpath"] for c in trainer["callbacks"] if c["class_path"] == "lightning_unlearn.UnlearningReport"
            ]
            assert reports == [f"outputs/{bench}/{run}/report"]


@pytest.mark.parametrize("scale", ["quick", "full", "full_vit"])
def test_b1_protocol_agrees_with_the_configs(scale: str):
    """The oracle trains with the original's recipe; the benchmark's architecture is the configs' model."""
    folder = b1.CONFIG_FOLDERS[scale]
    for scenario in b1.SCENARIOS:
        retrain = configs.load_config(b1.config_name(scale, scenario, "retrain"))
        recipe = {
            "epochs": retrain["trainer"]["max_epochs"],
            "lr": retrain["model"]["init_args"]["optimizer"]["init_args"]["lr"],
            "batch_size": retrain["data"]["init_args"]["batch_size"],
        }
        assert recipe == b1.train_recipe(scale)
    spec = configs.load_config(f"{folder}/original")["model"]["init_args"]["model"]
    cls = _resolve(spec["class_path"])
    assert cls.__name__ == b1.model_class(scale)
    defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items() if p.default is not inspect.Parameter.empty}
    assert {**defaults, **spec.get("init_args", {})} == {**defaults, **b1.SCALES[scale]["model"]}


def test_b1_reads_its_settings_from_the_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Editing a config changes what the benchmark runs: the YAML is the source, not a copy."""
    shutil.copytree(REPO / "configs" / "digits", tmp_path / "digits")
    path = tmp_path / "digits" / "classwise" / "npo.yaml"
    config = yaml.safe_load(path.read_text())
    config["model"]["init_args"]["optimizer"]["init_args"]["lr"] = 0.123
    config["model"]["init_args"]["method"]["init_args"] = {"beta": 0.7}
    config["trainer"]["max_epochs"] = 4
    config["data"]["init_args"]["retain_batch_size"] = 48
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setattr(configs, "CONFIG_DIR", tmp_path)
    hp, source = b1.resolve_hparams("quick", "class", "npo")
    assert source == "configs/digits/classwise/npo.yaml"
    assert hp == {
        "lr": 0.123,
        "epochs": 4,
        "max_steps": -1,
        "mode": "min_size",
        "schedule": "constant",
        "method": {"beta": 0.7},
        "batch_size": 32,
        "retain_batch_size": 48,
    }
    assert b1.resolve_hparams("quick", "random", "npo")[0]["lr"] == 1e-4  # the untouched file


def test_b1_rows_include_the_variant_configs():
    rows = b1.default_methods("quick")
    assert "stake_the_points+retain" in rows and "retrain" not in rows
    hp, _ = b1.resolve_hparams("quick", "random", "stake_the_points+retain")
    assert hp["method"]["retain_loss"] == "nll"


def test_b1_settings_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(
        ValueError, match=r"B1 has no settings for 'npo\+nope' at scale 'quick', scenario 'random': configs/digits/npo\+nope.yaml"
    ):
        b1.resolve_hparams("quick", "random", "npo+nope")
    with pytest.raises(ValueError, match=r"`scale` should be one of \['full', 'full_vit', 'quick', 'quick_vit'\], got 'huge'"):
        b1.resolve_hparams("huge", "random", "npo")
    with pytest.raises(ValueError, match=r"`scenario` should be one of \['class', 'random'\], got 'classwise'"):
        b1.resolve_hparams("quick", "classwise", "npo")
    config = configs.load_config("digits/npo")
    config["model"]["init_args"]["optimizer"] = {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}}
    with pytest.raises(
        ValueError, match=r"x.yaml: the benchmark unlearns with `torch.optim.Adam`, got optimizer 'torch.optim.SGD'"
    ):
        b1.settings_from_config(config, "x.yaml")
    with pytest.raises(ValueError, match=r"x.yaml should be an unlearning config .* missing 'model'"):
        b1.settings_from_config({"trainer": {}}, "x.yaml")
    shutil.copytree(REPO / "configs" / "digits", tmp_path / "digits")
    path = tmp_path / "digits" / "npo.yaml"
    path.write_text(path.read_text().replace("lightning_unlearn.methods.NPO", "lightning_unlearn.methods.GradDiff"))
    monkeypatch.setattr(configs, "CONFIG_DIR", tmp_path)
    with pytest.raises(
        ValueError,
        match=r"configs/digits/npo.yaml: the method should be lightning_unlearn.methods.NPO \(registered as 'npo'\), got 'lightning_unlearn.methods.GradDiff'",
    ):
        b1.resolve_hparams("quick", "random", "npo")


def test_instantiate_builds_a_class_spec_with_overrides_and_names_a_bad_one():
    spec = {"class_path": "lightning_unlearn.methods.NPO", "init_args": {"beta": 0.3, "seed": 1}}
    method = configs.instantiate(spec, seed=5)
    assert type(method) is METHODS.get("npo") and method.beta == 0.3 and method.seed == 5
    assert spec["init_args"]["seed"] == 1  # the spec is left as it was
    assert configs.instantiate({"class_path": "lightning_unlearn.methods.GradientAscent"}).seed == 0
    with pytest.raises(ValueError, match=r"dotted `class_path` such as 'lightning_unlearn.methods.NPO', got \{'init_args'"):
        configs.instantiate({"init_args": {}})
    with pytest.raises(ValueError, match=r"'lightning_unlearn.methods.Nope' does not name an importable class"):
        configs.instantiate({"class_path": "lightning_unlearn.methods.Nope"})


def test_resolve_class_takes_dotted_paths_and_bare_names_in_the_search_modules():
    from lightning.pytorch.callbacks import ModelCheckpoint

    assert configs.resolve_class("lightning_unlearn.methods.NPO") is METHODS.get("npo")
    assert configs.resolve_class("ModelCheckpoint", search=("lightning.pytorch.callbacks", "lightning_unlearn")) is ModelCheckpoint
    assert configs.resolve_class("SaveWeights", search=("lightning.pytorch.callbacks", "lightning_unlearn")).__name__ == "SaveWeights"
    with pytest.raises(ValueError, match=r"`class_path` 'Nope' does not name an importable class"):
        configs.resolve_class("Nope", search=("lightning.pytorch.callbacks",))
    with pytest.raises(ValueError, match=r"dotted path such as 'lightning_unlearn.methods.NPO', got 'NPO'"):
        configs.resolve_class("NPO")


def test_config_lookup_errors(tmp_path: Path):
    assert (
        configs.config_path("digits/npo")
        == configs.config_path("configs/digits/npo.yaml")
        == (REPO / "configs/digits/npo.yaml").resolve()
    )
    own = tmp_path / "mine.yaml"
    own.write_text("seed_everything: 1\n")
    assert configs.config_path(str(own)) == own.resolve() and configs.load_config(str(own)) == {"seed_everything": 1}
    with pytest.raises(
        ValueError, match=r"`name` should be a shipped config .* got 'digits/npoo'\. Close matches: \['digits/npo'"
    ):
        configs.config_path("digits/npoo")
    with pytest.raises(TypeError, match=r"`name` should be a config name such as 'digits/npo' or a path to a YAML file, got 3"):
        configs.config_path(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`prefix` should be one of the config folders \[.*'digits/classwise'.*\], got 'digit'"):
        configs.list_configs("digit")
    assert configs.list_configs("digits/classwise") == [n for n in configs.list_configs() if n.startswith("digits/classwise/")]
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ValueError, match=r"should hold a mapping, got list"):
        configs.load_config(str(tmp_path / "list.yaml"))


def test_configs_subcommand(capsys: pytest.CaptureFixture[str]):
    from lightning_unlearn.cli import main

    main(["configs"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"# {configs.CONFIG_DIR}" and lines[1:] == configs.list_configs()
    main(["configs", "list", "digits/classwise"])
    assert capsys.readouterr().out.splitlines()[1:] == configs.list_configs("digits/classwise")
    main(["configs", "path", "digits/npo"])
    assert capsys.readouterr().out.strip() == str(configs.config_path("digits/npo"))
    main(["configs", "show", "digits/npo"])
    assert capsys.readouterr().out == (REPO / "configs/digits/npo.yaml").read_text()
    with pytest.raises(SystemExit) as exit_info:
        main(["configs", "path", "digits/npoo"])
    assert exit_info.value.code == 2
    assert "`name` should be a shipped config" in capsys.readouterr().err


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_an_installed_wheel_lists_and_runs_the_shipped_configs():
    """Build the wheel, install it into a fresh venv (torch and the dependencies from the configured package index,
    torch pinned first so that pip does not pull a CUDA build), and run shipped digits configs from there."""
    # not pytest's tmp_path: concurrent pytest sessions of the same user prune its base folder (keeping the 3 newest)
    with tempfile.TemporaryDirectory(prefix="lightning-unlearn-wheel-") as folder:
        _installed_wheel_run(Path(folder))


def _installed_wheel_run(tmp_path: Path) -> None:
    start = time.perf_counter()
    # nothing of this checkout may leak in: with PYTHONPATH on it, pip would take the build's egg-info for an install
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", PYTHONWARNINGS="ignore")
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)])
    (wheel,) = wheels.glob("lightning_unlearn-*.whl")
    venv = tmp_path / "fresh"
    _run([sys.executable, "-m", "venv", str(venv)], env=env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, "torch==2.13.0"], env=env)
    _run([*pip, f"{wheel}[wandb,report]"], env=env)  # the shipped configs log to W&B (offline here) and write a report
    installed = time.perf_counter() - start
    cli = str(venv / "bin" / "lightning-unlearn")
    work = tmp_path / "work"
    work.mkdir()

    listing = _run([cli, "configs"], cwd=work, env=env).stdout.splitlines()
    root = Path(listing[0].removeprefix("# "))
    assert root.is_relative_to(venv), f"the configs should come from the installed wheel, not {root}"
    assert {"digits/original", "digits/npo", "digits/classwise/npo", "fashion_mnist/salun", "sweeps/digits_npo_grid"} <= set(
        listing[1:]
    )
    original = _run([cli, "configs", "path", "digits/original"], cwd=work, env=env).stdout.strip()
    assert Path(original).is_file() and Path(original).is_relative_to(venv)

    quick = [
        "--trainer.max_epochs=1",
        "--trainer.max_steps=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    _run([cli, "fit", "--config", original, *quick], cwd=work, env=env)
    assert (work / "artifacts/digits/original.pt").is_file()
    npo = _run([cli, "configs", "path", "digits/npo"], cwd=work, env=env).stdout.strip()
    _run([cli, "fit", "--config", npo, *quick, "--model.init_args.oracle=null"], cwd=work, env=env)
    assert (work / "artifacts/digits/npo.pt").is_file() and (work / "outputs/digits/npo/checkpoints/last.ckpt").is_file()
    report = json.loads((work / "outputs/digits/npo/report/report.json").read_text())
    assert report["method"]["name"] == "npo" and report["training"]
    print(f"wheel built and installed with its dependencies in {installed:.0f} s; whole test {time.perf_counter() - start:.0f} s")


def test_unlearning_settings_of_an_adamw_config():
    from lightning_unlearn.benchmarking import unlearning_settings

    config = configs.load_config("authors_smollm2/npo")
    optimizer = config["model"]["init_args"]["optimizer"]["init_args"]
    hp = unlearning_settings(config, optimizer="torch.optim.AdamW")
    assert hp["lr"] == optimizer["lr"] and hp["weight_decay"] == optimizer["weight_decay"]
    assert hp["retain_batch_size"] == config["data"]["init_args"]["retain_batch_size"]
    config["model"]["init_args"]["lr_scheduler"] = {"class_path": "torch.optim.lr_scheduler.LinearLR"}
    with pytest.raises(ValueError, match=r"npo.yaml: the benchmark runs at a constant learning rate, got lr_scheduler"):
        unlearning_settings(config, "npo.yaml")


def test_movielens_chain_is_consistent():
    """B5's configs (phase 1): every run unlearns the same request on the same model, writes outputs named after its
    file, and the methods start from the original with the retrained oracle beside them."""
    original = configs.load_config("movielens/original")
    model = original["model"]["init_args"]["model"]
    request = original["data"]["init_args"]["forget_users"]
    names = configs.list_configs("movielens")
    assert {"movielens/original", "movielens/retrain", "movielens/ga", "movielens/graddiff"} <= set(names)
    recipe = {k: original[k] for k in ("seed_everything",)} | {"epochs": original["trainer"]["max_epochs"]}
    for name in names:
        run = name.split("/", 1)[1]
        config = configs.load_config(name)
        trainer, init, data = config["trainer"], config["model"]["init_args"], config["data"]["init_args"]
        assert config["seed_everything"] == 0 and data["seed"] == 0 and data["forget_users"] == request
        assert init["model"] == model and init["task"]["class_path"] == "lightning_unlearn.tasks.RecommendationTask"
        assert trainer["default_root_dir"] == f"outputs/movielens/{run}"
        saves = [c["init_args"]["path"] for c in trainer["callbacks"] if c["class_path"] == "lightning_unlearn.SaveWeights"]
        assert saves == [f"artifacts/movielens/{run}.pt"]
        if run == "original":
            assert data["train_on"] == "all"
            continue
        assert data["train_on"] == "forget_retain"
        if run == "retrain":  # the oracle: the original's recipe on the retain set
            assert {"seed_everything": config["seed_everything"], "epochs": trainer["max_epochs"]} == recipe
            assert init["optimizer"] == original["model"]["init_args"]["optimizer"]
            assert data["batch_size"] == original["data"]["init_args"]["batch_size"]
            continue
        assert init["original"] == "artifacts/movielens/original.pt" and init["oracle"] == "artifacts/movielens/retrain.pt"


def test_movielens_b5_configs_unlearn_their_backbones_original_with_their_regimes_request():
    """B5's settings (configs/movielens_b5/<backbone>/[<regime>/]<method>.yaml): each unlearns its backbone's original
    (same model as its original.yaml), writes outputs named after its file, deletes the kind of request its regime
    names, and has an oracle only where the phase-1 oracle deleted the same request (users 1-10)."""
    from lightning_unlearn.benchmarking import b5

    source = {"mf": "movielens", "lightgcn": "movielens_lightgcn"}
    request = {"user": "forget_users", "item": "forget_items", "interaction": "forget_indices"}
    names = configs.list_configs("movielens_b5")
    assert len(names) == 10
    for name in names:
        parts = name.split("/")
        backbone, method, regime = parts[1], parts[-1], parts[2] if len(parts) == 4 else "user"
        assert backbone in b5.BACKBONES and regime in b5.REGIMES and method in b5.METHOD_ROWS
        config, original = configs.load_config(name), configs.load_config(f"{source[backbone]}/original")
        init, data = config["model"]["init_args"], config["data"]["init_args"]
        assert init["model"] == original["model"]["init_args"]["model"]
        assert init["original"] == f"artifacts/{source[backbone]}/original.pt"
        assert (init.get("oracle") == f"artifacts/{source[backbone]}/retrain.pt") == (regime == "user")
        assert config["trainer"]["default_root_dir"] == f"outputs/{name.rsplit('/', 1)[0]}/{method}"
        assert [k for k in request.values() if k in data] == [request[regime]]
        assert b5.method_settings(backbone, method, regime)["config"] == f"configs/{name}.yaml"


# ---------------------------------------------------------------------------------------------- B9: fashion_vqa
VQA_FOLDER = "fashion_vqa"


def _tiny_vqa_args(name: str) -> list[str]:
    """Swap the config's cached SmolLM2 VLM for :func:`~lightning_unlearn.models.vlm.tiny_vlm` and shrink the data."""
    tokenizer = '{"class_path": "lightning_unlearn.models.tiny_vlm_tokenizer"}'
    run = name.rsplit("/", 1)[1]
    if "collate_fn" in configs.load_config(name)["data"]["init_args"]:  # idk, idk_dpo: the refusals are its alternatives
        data = ["--data.init_args.collate_fn.init_args.tokenizer", tokenizer, "--data.init_args.collate_fn.init_args.image_token_id", "512"]
    else:
        data = ["--data.init_args.tokenizer", tokenizer]
    method = ["--model.init_args.method.init_args.layer", "1"] if run.startswith("rmu") else []  # the tiny LM has 2 layers
    return [
        "--model.init_args.model", "lightning_unlearn.models.tiny_vlm", *data, *method,
        "--data.init_args.per_class", "2", "--data.init_args.test_per_class", "1", "--data.init_args.max_eval_samples", "8",
    ]  # fmt: skip


def test_fashion_vqa_configs_unlearn_the_same_vlm_and_request():
    """Every B9 config unlearns the cached VLM (``fashion_vlm``, the original as built) with VisionLanguageTask on the
    same Fashion-MNIST VQA data, forgetting sneakers and bags (classes 7, 8) or, for Safety Mirage's NPO, the unsafe
    examples; outputs are named after the file."""
    names = configs.list_configs(VQA_FOLDER)
    assert {f"{VQA_FOLDER}/{m}" for m in ("graddiff", "npo", "rmu", "idk", "npo+safety", "rmu+safety", "simnpo", "idk_dpo", "asu")} <= set(names)
    for name in names:
        run = name.rsplit("/", 1)[1]
        config = configs.load_config(name)
        init, data, trainer = config["model"]["init_args"], config["data"]["init_args"], config["trainer"]
        assert config["seed_everything"] == 0 and data["seed"] == 0
        assert init["model"] == {"class_path": "lightning_unlearn.models.fashion_vlm", "init_args": {"seed": 0}}
        assert init["task"]["class_path"] == "lightning_unlearn.tasks.VisionLanguageTask"
        assert "original" not in init and init["optimizer"]["class_path"] == "torch.optim.AdamW"
        assert config["data"]["class_path"] == "lightning_unlearn.datamodules.FashionVQADataModule"
        assert data["train_on"] == "forget_retain" and data["per_class"] == 40
        if run == "npo+safety":
            assert init["method"]["init_args"] == {"beta": 0.9, "likelihood": "mean", "retain_loss": "npo_nll"}
        if run.endswith("+safety"):
            assert data["forget"] == "unsafe" and "forget_classes" not in data
        else:
            assert data["forget"] == "classes" and data["forget_classes"] == [7, 8]
        assert trainer["default_root_dir"] == f"outputs/{name}"
        paths = {c["class_path"]: c["init_args"] for c in trainer["callbacks"]}
        assert paths["lightning_unlearn.SaveWeights"] == {"path": f"artifacts/{name}.pt"}
        assert paths["lightning_unlearn.UnlearningReport"] == {"dirpath": f"outputs/{name}/report"}
    idk = configs.load_config(f"{VQA_FOLDER}/idk")["data"]["init_args"]["collate_fn"]["init_args"]
    assert idk["image_token_id"] == 16 and set(idk["alternatives"]) == {"idk"}  # SmolLM2's <empty_output>


@pytest.mark.parametrize("run", ["graddiff", "rmu", "idk", "npo+safety", "rmu+safety", "simnpo", "idk_dpo", "asu"])
def test_a_fashion_vqa_config_fits_a_tiny_vlm(run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """One step of each B9 config (``npo`` runs from the command line in tests/test_cli.py) on a tiny random VLM:
    the config's method, task and data build and move the language model's weights."""
    import torch

    from lightning_unlearn.cli import UnlearnCLI

    name = f"{VQA_FOLDER}/{run}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["lightning-unlearn"])
    quiet = ["--trainer.max_steps", "1", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    cli = UnlearnCLI(args=["--config", str(configs.config_path(name)), *_tiny_vqa_args(name), *quiet], run=False)
    network = cli.model.model
    before = {k: v.clone() for k, v in network.language_model.state_dict().items()}
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 1
    changed = [k for k, v in network.language_model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, f"{name}: one step changed no weight of the language model"
    assert (tmp_path / f"artifacts/{name}.pt").is_file() and (tmp_path / f"outputs/{name}/report/report.json").is_file()
    if run.endswith("+safety"):
        assert {e["kind"] for e in cli.datamodule.forget_set.examples} == {"unsafe"}
