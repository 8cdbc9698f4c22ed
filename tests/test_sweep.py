"""``lightning-unlearn sweep``: W&B-format sweeps run by the local engine, offline, end to end from the CLI.

Trials use the digits configs with the quick original/oracle of ``test_tracking.digits_workspace``
(3 and 1 epochs); each trial unlearns for one epoch.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("wandb")
pytest.importorskip("sweeps")

from test_tracking import CONFIGS, REPO, digits_workspace, offline_runs, run_cli, wandb_records  # noqa: E402

LR = "model.init_args.optimizer.init_args.lr"
FORGET_WEIGHT = "model.init_args.method.init_args.forget_weight"
ORACLE = {"model.init_args.oracle": "artifacts/digits/retrain.pt"}


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return digits_workspace(tmp_path_factory)


def write_sweep(folder: Path, name: str, **spec: Any) -> Path:
    """A sweep file: NPO on digits, 2 x 2 grid over lr and forget weight, scored by test/avg_gap; ``spec`` overrides."""
    config: dict[str, Any] = {
        "method": "grid",
        "metric": {"name": "test/avg_gap", "goal": "minimize"},
        "parameters": {LR: {"values": [1e-4, 1e-3]}, FORGET_WEIGHT: {"values": [0.5, 1.0]}},
        "base_config": "configs/digits/npo.yaml",
        "overrides": dict(ORACLE),
    }
    config.update(spec)
    config = {k: v for k, v in config.items() if v is not None}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def check_trials_are_grouped_wandb_runs(results: dict[str, Any]) -> None:
    """Every trial is a finished offline W&B run in the sweep's group, named after the trial, with its parameters."""
    for trial in results["trials"]:
        (run_file,) = offline_runs(Path(trial["dir"]))
        assert Path(trial["wandb_run"]) == run_file.parent
        record = wandb_records(run_file)
        assert record["run"].run_group == results["sweep_id"]
        assert record["run"].display_name == trial["id"]
        assert record["exit_code"] == 0
        assert record["summary"][results["metric"]["name"]] == pytest.approx(trial["metric"], rel=1e-6)
        config = record["config"]
        assert config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == pytest.approx(trial["params"][LR])


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_grid_sweep_from_the_cli(workspace: Path, tmp_path: Path):
    sweep = write_sweep(workspace, "grid_npo")
    out = tmp_path / "grid"
    proc = run_cli("sweep", sweep.name, "--out", str(out), cwd=workspace)

    results = json.loads((out / "sweep_results.json").read_text())
    trials = results["trials"]
    assert results["engine"] == "local" and results["metric"] == {"name": "test/avg_gap", "goal": "minimize"}
    assert results["sweep_config"]["method"] == "grid" and "base_config" not in results["sweep_config"]
    assert [t["id"] for t in trials] == ["trial-00", "trial-01", "trial-02", "trial-03"]
    grid = {(t["params"][LR], t["params"][FORGET_WEIGHT]) for t in trials}
    assert grid == set(itertools.product([1e-4, 1e-3], [0.5, 1.0]))
    for t in trials:
        assert t["state"] == "finished" and t["seconds"] > 0
        assert 0.0 <= t["metric"] <= 100.0 and t["metrics"]["test/avg_gap"] == t["metric"]
        assert "test/UA" in t["metrics"] and "val/avg_gap" in t["metrics"]
        trial_dir = Path(t["dir"])
        assert (trial_dir / "config.yaml").is_file()
        assert (trial_dir / "npo.pt").is_file() and (trial_dir / "checkpoints" / "last.ckpt").is_file()
        assert (trial_dir / "report" / "report.json").is_file()
    assert len({t["metric"] for t in trials}) > 1, "the parameters should reach the trials"
    best = min(trials, key=lambda t: t["metric"])
    assert results["best_trial"] == best["id"] and results["best"]["metric"] == best["metric"]
    assert not (workspace / "artifacts/digits/npo.pt").exists(), "trials write under --out, not to the base config's paths"
    assert not (workspace / "outputs/digits/npo").exists()
    check_trials_are_grouped_wandb_runs(results)

    table = proc.stdout
    assert "| trial " in table and "| model.optimizer.lr " in table and "test/avg_gap" in table
    rows = [line for line in table.splitlines() if line.startswith("| trial-")]
    assert rows[0].startswith(f"| {best['id']} ") and len(rows) == 4  # best first
    assert f"Best: {best['id']}" in table


@pytest.mark.slow
def test_bayes_sweep_maximizes_and_feeds_back_results(workspace: Path, tmp_path: Path):
    sweep = write_sweep(
        workspace, "bayes_npo",
        method="bayes",
        metric={"name": "test/UA", "goal": "maximize"},
        parameters={LR: {"distribution": "log_uniform_values", "min": 1e-5, "max": 3e-3}, "trainer.max_epochs": {"distribution": "int_uniform", "min": 1, "max": 2}},
        overrides={"model.init_args.oracle": None},  # test/UA needs no oracle
        seed=0,
    )  # fmt: skip
    out = tmp_path / "bayes"
    run_cli("sweep", sweep.name, "--count", "3", "--local", "--quiet", "--out", str(out), cwd=workspace)

    results = json.loads((out / "sweep_results.json").read_text())
    trials = results["trials"]
    assert len(trials) == 3 and all(t["state"] == "finished" for t in trials)
    assert len({t["params"][LR] for t in trials}) == 3, "each suggestion should differ"
    for t in trials:
        assert 1e-5 <= t["params"][LR] <= 3e-3 and t["params"]["trainer.max_epochs"] in (1, 2)
        assert "test/avg_gap" not in t["metrics"]
        config = yaml.safe_load((Path(t["dir"]) / "config.yaml").read_text())
        assert config["trainer"]["max_epochs"] == t["params"]["trainer.max_epochs"]
    best = max(trials, key=lambda t: t["metric"])
    assert results["best_trial"] == best["id"]
    check_trials_are_grouped_wandb_runs(results)


# --------------------------------------------------------------------------- shipped sweeps
@pytest.mark.parametrize("path", sorted((CONFIGS / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_sweeps_are_valid(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Each shipped sweep loads, names its oracle, and its first suggestion parses with the LightningCLI."""
    from lightning_unlearn.cli import UnlearnCLI
    from lightning_unlearn.sweep import Trial, TrialRunner, _import_sweeps, load_sweep

    monkeypatch.chdir(REPO)
    spec = load_sweep(path.relative_to(REPO))
    assert spec.metric == "test/avg_gap" and "model.init_args.oracle" in spec.overrides
    assert spec.count is not None or spec.method == "grid"
    suggestion = _import_sweeps().next_run(spec.wandb_config, [], validate=True)
    trial = Trial(id="trial-00", params={k: v["value"] for k, v in suggestion.config.items()})
    stdout = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stdout(stdout):
        UnlearnCLI(
            args=[*TrialRunner(spec, "check", tmp_path).args(trial), "--print_config"],
            run=False,
            parser_kwargs={"exit_on_error": False},
        )
    assert exit_info.value.code == 0
    config = yaml.safe_load(stdout.getvalue())
    assert config["model"]["init_args"]["oracle"] == spec.overrides["model.init_args.oracle"]
    assert config["trainer"]["logger"]["init_args"]["group"] == "check"


# --------------------------------------------------------------------------- errors
@pytest.fixture()
def in_workspace(workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """In-process sweeps: cwd in the digits workspace, W&B offline and quiet."""
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return workspace


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ({"base_config": None}, ValueError, r"has no `base_config`"),
        (
            {"base_config": "configs/digits/nope.yaml"},
            FileNotFoundError,
            r"`base_config` 'configs/digits/nope.yaml' not found; paths .* relative to the current directory",
        ),
        ({"method": "hyperband"}, ValueError, r"`method` should be one of \['grid', 'random', 'bayes'\], got 'hyperband'"),
        ({"metric": {"goal": "minimize"}}, ValueError, r"`metric` should be a mapping with a `name`"),
        (
            {"metric": {"name": "test/avg_gap", "goal": "lowest"}},
            ValueError,
            r"`metric.goal` should be one of \['minimize', 'maximize'\], got 'lowest'",
        ),
        (
            {"subcommands": ["fit", "predict"]},
            ValueError,
            r"`subcommands` should be a non-empty list out of \['fit', 'validate', 'test'\]",
        ),
        ({"trials": 3}, ValueError, r"Unknown key\(s\) \['trials'\]"),
        ({"count": 0}, ValueError, r"`count` should be a positive integer, got 0"),
        ({"parameters": {LR: {"values": 0.1}}}, ValueError, r"does not follow W&B's sweep format"),
        ({"method": "random"}, ValueError, r"A 'random' sweep never runs out of suggestions: give `count:`"),
    ],
)
def test_bad_sweep_files_raise(in_workspace: Path, tmp_path: Path, spec, error, match):
    from lightning_unlearn.sweep import main

    sweep = write_sweep(tmp_path, "bad", **spec)
    with pytest.raises(error, match=match):
        main([str(sweep), "--out", str(tmp_path / "out"), "--quiet"])


def test_missing_sweep_file_raises(in_workspace: Path):
    from lightning_unlearn.sweep import main

    with pytest.raises(FileNotFoundError, match=r"Sweep file 'nope.yaml' not found"):
        main(["nope.yaml"])


def test_bad_parameter_key_names_the_option(in_workspace: Path, tmp_path: Path):
    from lightning_unlearn.sweep import run_sweep

    sweep = write_sweep(tmp_path, "typo", parameters={"model.init_args.method.init_args.forget_weigth": {"values": [1.0]}})
    with pytest.raises(
        ValueError, match=r"trial-00: the LightningCLI rejected the trial's arguments(.|\n)*'forget_weigth' is not accepted"
    ):
        run_sweep(sweep, out=tmp_path / "out", quiet=True)


def test_metric_never_logged_lists_the_logged_metrics(in_workspace: Path, tmp_path: Path):
    from lightning_unlearn.sweep import run_sweep

    no_oracle = {"model.init_args.oracle": None, "trainer.limit_train_batches": 1}
    sweep = write_sweep(tmp_path, "no_oracle", overrides=no_oracle, parameters={LR: {"values": [1e-4]}})
    with pytest.raises(
        ValueError,
        match=r"trial-00 never logged the metric 'test/avg_gap'; it logged \[.*'test/UA'.*\]\. .*add `model.init_args.oracle",
    ):
        run_sweep(sweep, out=tmp_path / "out", quiet=True)


def test_service_engine_needs_wandb_online(in_workspace: Path, tmp_path: Path):
    from lightning_unlearn.sweep import main

    sweep = write_sweep(tmp_path, "service")
    with pytest.raises(ValueError, match=r"--service needs W&B online, but the W&B mode here is 'offline'"):
        main([str(sweep), "--service"])


def test_out_folder_of_another_sweep_is_refused(in_workspace: Path, tmp_path: Path):
    from lightning_unlearn.sweep import run_sweep

    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep_results.json").write_text("{}")
    with pytest.raises(FileExistsError, match=r"already holds a sweep's results"):
        run_sweep(write_sweep(tmp_path, "again"), out=out, quiet=True)


# --------------------------------------------------------------------------- engine pieces
def test_engine_random_state_survives_trials_that_reseed():
    """Trials call seed_everything; the engine's suggestions must still differ, and a seed must reproduce them."""
    from lightning_unlearn.sweep import _EngineRandom

    def draws(seed: int) -> list[float]:
        engine, out = _EngineRandom(seed), []
        for _ in range(3):
            with engine.active():
                out.append(random.random() + np.random.rand())
            random.seed(0)  # what a trial's seed_everything does
            np.random.seed(0)
        return out

    first = draws(7)
    assert len(set(first)) == 3 and first == draws(7) and first != draws(8)
    random.seed(123)
    expected = random.random()
    random.seed(123)
    with _EngineRandom(1).active():
        random.random()
    assert random.random() == expected, "the caller's random state is left as it was"


def test_hyperband_stops_a_trial_behind_the_finished_ones():
    from lightning_unlearn.sweep import _HyperbandCallback, _import_sweeps

    sweeps = _import_sweeps()
    config = {
        "method": "grid",
        "metric": {"name": "val/avg_gap", "goal": "minimize"},
        "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 2},
        "parameters": {"a": {"values": [1, 2]}},
    }
    finished = [
        sweeps.SweepRun(
            name=f"t{i}", state=sweeps.RunState.finished, sampledHistory=[{"val/avg_gap": 5.0 + i}, {"val/avg_gap": 4.0 + i}]
        )
        for i in range(4)
    ]

    def epochs(values: list[float]) -> tuple[SimpleNamespace, _HyperbandCallback]:
        callback = _HyperbandCallback(config, "val/avg_gap", finished)
        trainer = SimpleNamespace(callback_metrics={}, should_stop=False)
        for value in values:
            trainer.callback_metrics = {"val/avg_gap": torch.tensor(value)}
            callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
        return trainer, callback

    trainer, callback = epochs([9.0, 9.0])  # worse than every finished trial at epoch 2
    assert trainer.should_stop and callback.stopped and len(callback.history) == 2
    trainer, callback = epochs([5.0, 3.0])  # the best so far
    assert not trainer.should_stop and not callback.stopped


def test_finished_trials_reach_the_engine_with_their_metrics():
    """What bayes and hyperband read: the summary metric and the per-epoch history of each finished trial."""
    from lightning_unlearn.sweep import Trial, _engine_run

    trial = Trial(
        id="trial-00", params={"a": 1}, state="finished", metric=2.5, metrics={"test/avg_gap": 2.5, "val/x": float("nan")}
    )
    trial.history = [{"val/avg_gap": 3.0}, {"val/avg_gap": 2.0}]
    run = _engine_run(trial, {"a": {"value": 1}})
    assert run.summary_metric("test/avg_gap") == 2.5 and "val/x" not in run.summary_metrics
    assert run.metric_history("val/avg_gap") == [3.0, 2.0]
    assert run.state == "finished" and run.config == {"a": {"value": 1}}
    assert _engine_run(Trial(id="trial-01", params={}, state="failed"), {}).state == "failed"


def test_local_hyperband_stops_a_diverging_trial(in_workspace: Path, tmp_path: Path):
    """`early_terminate` in the local engine: a trial far behind the others at epoch 2 is stopped before epoch 3."""
    from lightning_unlearn.sweep import run_sweep

    sweep = write_sweep(
        tmp_path, "hyperband",
        metric={"name": "val/avg_gap", "goal": "minimize"},
        early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2},
        parameters={LR: {"values": [1e-5, 1e-4, 0.05]}},
        overrides={**ORACLE, "trainer.max_epochs": 3},
    )  # fmt: skip
    results = run_sweep(sweep, out=tmp_path / "out", quiet=True)
    trials = {t["params"][LR]: t for t in results["trials"]}
    assert [len(trials[lr]["history"]) for lr in (1e-5, 1e-4)] == [3, 3]
    assert not trials[1e-5]["stopped_early"] and not trials[1e-4]["stopped_early"]
    diverging = trials[0.05]
    assert diverging["stopped_early"] and len(diverging["history"]) == 2 and diverging["state"] == "finished"


def test_service_engine_with_a_fake_agent(in_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The W&B-service path, with `wandb.sweep`/`wandb.agent` replaced by fakes that hand out parameters as W&B does
    (in the config of the run the trial opens); the trials log into those runs."""
    import wandb

    import lightning_unlearn.tracking as tracking
    from lightning_unlearn.sweep import run_sweep

    monkeypatch.setattr(tracking, "resolve_mode", lambda mode="auto": "online" if mode == "auto" else mode)
    registered: dict[str, Any] = {}
    suggestions = [{LR: 1e-4, FORGET_WEIGHT: 0.5}, {LR: 1e-3, FORGET_WEIGHT: 1.0}]
    real_init = wandb.init

    def fake_sweep(sweep: dict, project: str | None = None, entity: str | None = None) -> str:
        registered.update(sweep=sweep, project=project, entity=entity)
        return "fake1234"

    def fake_agent(
        sweep_id: str, function: Any, count: int | None = None, project: str | None = None, entity: str | None = None
    ) -> None:
        assert (sweep_id, count, project) == ("fake1234", 2, "lightning-unlearn")
        for params in suggestions[:count]:
            monkeypatch.setattr(wandb, "init", lambda params=params, **kwargs: real_init(config=params, **kwargs))
            function()
        monkeypatch.setattr(wandb, "init", real_init)

    monkeypatch.setattr(wandb, "sweep", fake_sweep)
    monkeypatch.setattr(wandb, "agent", fake_agent)
    sweep = write_sweep(tmp_path, "service", overrides={**ORACLE, "trainer.limit_train_batches": 1})
    results = run_sweep(sweep, count=2, engine="service", out=tmp_path / "out", quiet=True)

    assert (
        registered["sweep"]["method"] == "grid"
        and "base_config" not in registered["sweep"]
        and "overrides" not in registered["sweep"]
    )
    assert results["engine"] == "service" and results["sweep_id"] == "fake1234"
    assert [t["params"] for t in results["trials"]] == suggestions
    assert all(t["state"] == "finished" for t in results["trials"])
    check_trials_are_grouped_wandb_runs(results)
