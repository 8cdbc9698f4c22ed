"""``lightning-unlearn sweep``: hyperparameter sweeps in W&B's sweep format, with or without a W&B server.

    lightning-unlearn sweep configs/sweeps/digits_npo_grid.yaml
    lightning-unlearn sweep configs/sweeps/digits_salun_bayes.yaml --count 8 --local --out outputs/sweeps/salun

A sweep file is a W&B sweep config (``method``, ``metric``, ``parameters``, optional
``early_terminate``, ``name``, ``project``, ``entity``, ``description``) plus these keys of ours:

``base_config`` (required)
    The ``lightning-unlearn`` config every trial starts from. Like every path in a sweep file (and
    in the configs themselves, e.g. ``artifacts/digits/original.pt``) it is relative to the
    **current directory**: run sweeps from the repository root.
``overrides``
    Fixed CLI overrides applied to every trial, ``{dotted.key: value}``, e.g.
    ``{model.init_args.oracle: artifacts/digits/retrain.pt}`` so that ``test/avg_gap`` is logged.
``subcommands``
    What each trial runs, in order, on one Trainer: a list out of ``fit``, ``validate``, ``test``
    (default ``[fit, test]``). The metric is read from ``trainer.callback_metrics`` afterwards.
``count``
    How many trials to run (``--count`` wins). Needed for ``random`` and ``bayes``; a ``grid`` runs
    every combination when it is not given.
``seed``
    Seed of the local search engine's suggestions (``random``, ``bayes``); unseeded when absent.

Parameter names are dotted LightningCLI keys (``model.init_args.optimizer.init_args.lr``,
``trainer.max_epochs``, ``model.init_args.method.init_args.forget_weight``); each trial runs the
CLI with ``--<name>=<value>`` after ``--config <base_config>`` and the overrides.

Where the sweep runs: with W&B online (:func:`~lightning_unlearn.tracking.resolve_mode` says
``"online"``: an API key or ``wandb login``, and ``WANDB_MODE`` not offline/disabled) the W&B
service drives it (``wandb.sweep`` + ``wandb.agent``); otherwise W&B's open-source engine
(the ``sweeps`` package) suggests the trials here, and finished trials' metrics are fed back so that
``bayes`` works. ``--local``/``--service`` force one or the other.

Each trial is a LightningCLI run in this process, logged as a W&B run (offline without a server)
named ``trial-NN`` in the group ``<sweep id>``, with everything it writes (``config.yaml``,
``wandb/``, and the outputs of its callbacks: every ``dirpath`` such as checkpoints and reports,
``SaveWeights`` files) under ``<out>/trial-NN/``. ``<out>`` (default
``outputs/sweeps/<name>/<sweep id>``) also receives ``sweep_results.json``, rewritten after every
trial, with the sweep config, every trial's parameters, metrics and seconds, and the best trial.

``early_terminate`` (``hyperband``) in the local engine is checked at the end of every training
epoch against the metric's values logged so far in ``fit``: use a ``val/...`` metric with it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import random
import sys
import time
import uuid
import warnings
from argparse import ArgumentError
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

from lightning_unlearn._errors import missing_extra
from lightning_unlearn.privacy import redact_config

SearchMethod = Literal["grid", "random", "bayes"]
Goal = Literal["minimize", "maximize"]
Engine = Literal["auto", "local", "service"]

#: The search methods: what each one does.
SEARCH_METHODS: dict[str, str] = {
    "grid": "every combination of the parameters' values, in order",
    "random": "independent draws from the parameters' distributions",
    "bayes": "Gaussian-process Bayesian optimisation of the metric, fed with the finished trials",
}
#: The metric goals and how the best trial is picked.
GOALS: dict[str, str] = {"minimize": "lowest value is best", "maximize": "highest value is best"}
#: What a trial may run, in the order given by ``subcommands``.
SUBCOMMANDS: dict[str, str] = {"fit": "Trainer.fit", "validate": "Trainer.validate", "test": "Trainer.test"}
#: Where the trials are suggested.
ENGINES: dict[str, str] = {
    "auto": "the W&B service when W&B is online, else the local engine",
    "local": "W&B's open-source `sweeps` engine in this process, no server",
    "service": "the W&B service (wandb.sweep + wandb.agent)",
}

#: Keys of W&B's sweep config schema (sweeps/config/schema.json) that a sweep file may use.
_WANDB_KEYS = ("method", "metric", "parameters", "early_terminate", "name", "description", "project", "entity")
#: Keys of ours, removed before the config goes to W&B or the engine.
_OUR_KEYS = ("base_config", "overrides", "subcommands", "count", "seed")
_DEFAULT_PROJECT = "lightning-unlearn"
_RESULTS_FILE = "sweep_results.json"


def _import_sweeps() -> Any:
    if "sweeps" in sys.modules:  # no catch_warnings again: it would re-show every warning once more
        return sys.modules["sweeps"]
    try:
        with warnings.catch_warnings():  # sweeps 0.2 declares pydantic-v1 config keys
            warnings.simplefilter("ignore")
            import sweeps
    except ImportError as err:
        raise missing_extra("sweeps", "wandb") from err
    return sweeps


# --------------------------------------------------------------------------- the sweep file
@dataclass
class SweepSpec:
    """A parsed sweep file: the W&B part and ours. Build it with :func:`load_sweep`."""

    path: Path
    wandb_config: dict[str, Any]
    base_config: Path
    overrides: dict[str, Any]
    subcommands: list[str]
    count: int | None
    seed: int | None

    @property
    def name(self) -> str:
        return str(self.wandb_config.get("name") or self.path.stem)

    @property
    def method(self) -> str:
        return self.wandb_config["method"]

    @property
    def metric(self) -> str:
        return self.wandb_config["metric"]["name"]

    @property
    def goal(self) -> str:
        return self.wandb_config["metric"].get("goal", "minimize")

    @property
    def parameters(self) -> list[str]:
        return list(self.wandb_config["parameters"])

    @property
    def project(self) -> str:
        return self.wandb_config.get("project") or _DEFAULT_PROJECT

    @property
    def entity(self) -> str | None:
        return self.wandb_config.get("entity")


def _check_count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` should be a positive integer, got {value!r}.")
    return value


def load_sweep(path: str | os.PathLike) -> SweepSpec:
    """Read and validate a sweep file (see the module docstring for its keys)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Sweep file {str(path)!r} not found.")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"The sweep file {str(path)!r} should hold a mapping, got {type(raw).__name__}.")
    unknown = sorted(set(raw) - set(_WANDB_KEYS) - set(_OUR_KEYS))
    if unknown:
        raise ValueError(f"Unknown key(s) {unknown} in {str(path)!r}; a sweep file takes {list(_WANDB_KEYS + _OUR_KEYS)}.")
    if "base_config" not in raw:
        raise ValueError(
            f"The sweep file {str(path)!r} has no `base_config` (the lightning-unlearn config every trial starts from)."
        )
    base_config = Path(str(raw["base_config"]))
    if not base_config.is_file():
        raise FileNotFoundError(
            f"`base_config` {str(base_config)!r} not found; paths in a sweep file are relative to the current directory ({os.getcwd()})."
        )
    method = raw.get("method")
    if method not in SEARCH_METHODS:
        raise ValueError(f"`method` should be one of {list(SEARCH_METHODS)}, got {method!r}.")
    metric = raw.get("metric")
    if not isinstance(metric, dict) or not metric.get("name"):
        raise ValueError(
            f"`metric` should be a mapping with a `name` (and a `goal`), e.g. {{name: test/avg_gap, goal: minimize}}; got {metric!r}."
        )
    if metric.get("goal", "minimize") not in GOALS:
        raise ValueError(f"`metric.goal` should be one of {list(GOALS)}, got {metric.get('goal')!r}.")
    parameters = raw.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise ValueError(
            f"`parameters` should be a non-empty mapping of dotted CLI keys to W&B parameter specs, got {parameters!r}."
        )
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ValueError(f"`overrides` should be a mapping of dotted CLI keys to values, got {overrides!r}.")
    subcommands = raw.get("subcommands", ["fit", "test"])
    if isinstance(subcommands, str):
        subcommands = [subcommands]
    if not isinstance(subcommands, list) or not subcommands or any(s not in SUBCOMMANDS for s in subcommands):
        raise ValueError(f"`subcommands` should be a non-empty list out of {list(SUBCOMMANDS)}, got {subcommands!r}.")
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` should be an integer, got {seed!r}.")

    wandb_config = {k: raw[k] for k in _WANDB_KEYS if k in raw}
    violations = _import_sweeps().schema_violations_from_proposed_config(wandb_config)
    if violations:
        raise ValueError(f"The sweep file {str(path)!r} does not follow W&B's sweep format:\n  " + "\n  ".join(violations))
    return SweepSpec(
        path=path,
        wandb_config=wandb_config,
        base_config=base_config,
        overrides=dict(overrides),
        subcommands=list(subcommands),
        count=_check_count("count", raw.get("count")),
        seed=seed,
    )


def _grid_size(parameters: dict[str, Any]) -> int | None:
    """Number of grid points, or ``None`` when a parameter is not a plain list/constant/integer range."""
    size = 1
    for spec in parameters.values():
        if "values" in spec:
            size *= len(spec["values"])
        elif "value" in spec:
            continue
        elif spec.get("distribution") == "int_uniform":
            size *= int(spec["max"]) - int(spec["min"]) + 1
        else:
            return None
    return size


# --------------------------------------------------------------------------- trials
@dataclass
class Trial:
    """One trial of a sweep and what came of it (a row of ``sweep_results.json``)."""

    id: str
    params: dict[str, Any]
    state: Literal["pending", "finished", "failed"] = "pending"
    metric: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    dir: str = ""
    wandb_run: str | None = None
    stopped_early: bool = False
    error: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def _native(value: Any) -> Any:
    """numpy scalars (the engine's suggestions) -> Python numbers, recursively."""
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_native(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _cli_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(_native(value))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _resolve_class(class_path: str) -> type | None:
    """A callback's class from its config ``class_path`` (bare names as LightningCLI resolves them), ``None`` if unknown."""
    from lightning_unlearn.configs import resolve_class

    try:
        return resolve_class(class_path, search=("lightning.pytorch.callbacks", "lightning_unlearn"))
    except ValueError:
        return None


def _trial_callbacks(base_config: Path, trial_dir: Path) -> list[dict[str, Any]] | None:
    """The base config's callbacks with their outputs moved into ``trial_dir``, or ``None`` if nothing moved.

    A callback's ``dirpath`` (Lightning's name for an output folder: ``ModelCheckpoint``,
    ``UnlearningReport``) becomes ``<trial>/<its last folder>``, and ``SaveWeights``' ``path``
    ``<trial>/<file name>``, so that trials never overwrite each other's files or the base run's.
    """
    from lightning_unlearn.training import SaveWeights

    config = yaml.safe_load(base_config.read_text()) or {}
    callbacks = (config.get("trainer") or {}).get("callbacks")
    if not callbacks:
        return None
    callbacks = [callbacks] if isinstance(callbacks, dict) else list(callbacks)
    moved = False
    for callback in callbacks:
        init_args = callback.get("init_args") if isinstance(callback, dict) else None
        if not isinstance(init_args, dict):
            continue
        if init_args.get("dirpath"):
            init_args["dirpath"] = str(trial_dir / Path(str(init_args["dirpath"])).name)
            moved = True
        cls = _resolve_class(str(callback.get("class_path", "")))
        if cls is not None and issubclass(cls, SaveWeights) and init_args.get("path"):
            init_args["path"] = str(trial_dir / Path(str(init_args["path"])).name)
            moved = True
    return callbacks if moved else None


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Keep Lightning's per-run INFO lines (devices, seed, tips) out of the sweep's output."""
    loggers = [
        logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class _HyperbandCallback(Callback):
    """The local engine's ``early_terminate``: after each training epoch, ask ``sweeps.stop_runs`` about this trial."""

    def __init__(self, engine_config: dict[str, Any], metric: str, finished: list[Any]) -> None:
        self.engine_config = engine_config
        self.metric = metric
        self.finished = finished
        self.history: list[dict[str, float]] = []
        self.stopped = False

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            return
        self.history.append({self.metric: float(value)})
        sweeps = _import_sweeps()
        current = sweeps.SweepRun(name="__current__", state=sweeps.RunState.running, sampledHistory=list(self.history))
        to_stop = sweeps.stop_runs(self.engine_config, [*self.finished, current], validate=True)
        if any(run.name == current.name for run in to_stop):
            trainer.should_stop = True
            self.stopped = True


class TrialRunner:
    """Runs trials as in-process LightningCLI runs: build from the base config, then ``fit``/``test``.

    Args:
        spec: The sweep.
        sweep_id: Group of the trials' W&B runs.
        out: Folder of the sweep; each trial writes under ``out/<trial id>``.
    """

    def __init__(self, spec: SweepSpec, sweep_id: str, out: Path) -> None:
        self.spec = spec
        self.sweep_id = sweep_id
        self.out = out
        self._warned: set[tuple[type, str]] = set()

    @contextlib.contextmanager
    def _warnings_once(self) -> Iterator[None]:
        """Show each distinct warning once per sweep, not once per trial."""
        with warnings.catch_warnings(record=True) as caught:
            yield
        for item in caught:
            key = (item.category, str(item.message))
            if key not in self._warned:
                self._warned.add(key)
                warnings.showwarning(item.message, item.category, item.filename, item.lineno)

    def args(self, trial: Trial) -> list[str]:
        """The CLI arguments of ``trial`` (base config, then the sweep's settings, overrides, parameters)."""
        trial_dir = self.out / trial.id
        logger_init = {
            "project": self.spec.project,
            "name": trial.id,
            "group": self.sweep_id,
            "save_dir": str(trial_dir),
            "mode": "auto",
        }
        if self.spec.entity:
            logger_init["entity"] = self.spec.entity
        logger = {"class_path": "lightning_unlearn.tracking.UnlearnWandbLogger", "init_args": logger_init}
        args = [
            "--config", str(self.spec.base_config),
            f"--trainer.logger={json.dumps(logger)}",
            f"--trainer.default_root_dir={trial_dir}",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
        ]  # fmt: skip
        callbacks = _trial_callbacks(self.spec.base_config, trial_dir)
        if callbacks is not None:
            args.append(f"--trainer.callbacks={json.dumps(callbacks)}")
        args += [f"--{key}={_cli_value(value)}" for key, value in self.spec.overrides.items()]
        args += [f"--{key}={_cli_value(value)}" for key, value in trial.params.items()]
        return args

    def run(self, trial: Trial, callbacks: tuple[Callback, ...] = ()) -> Trial:
        """Run ``trial`` and fill in its state, metrics and seconds.

        Raises when the trial cannot be built from the config (bad key or value, missing file) or
        when it finishes without logging the sweep's metric. An exception while training or testing
        (e.g. a diverging loss) marks the trial ``failed`` and is recorded, so that the sweep goes on.
        """
        with self._warnings_once():
            return self._run(trial, callbacks)

    def _run(self, trial: Trial, callbacks: tuple[Callback, ...]) -> Trial:
        from lightning_unlearn.cli import UnlearnCLI
        from lightning_unlearn.tracking import LoggerSaveConfigCallback, UnlearnWandbLogger

        trial.dir = str(self.out / trial.id)
        args = self.args(trial)
        start = time.perf_counter()
        try:
            cli = UnlearnCLI(
                args=args, run=False, parser_kwargs={"exit_on_error": False}, save_config_callback=LoggerSaveConfigCallback
            )
        except ArgumentError as err:
            raise ValueError(f"{trial.id}: the LightningCLI rejected the trial's arguments: {err}\nArguments: {args}") from err
        trainer = cli.trainer
        trainer.callbacks.extend(callbacks)
        exit_code = 1
        try:
            for subcommand in self.spec.subcommands:
                kwargs = {} if subcommand == "fit" else {"verbose": False}
                getattr(trainer, subcommand)(cli.model, datamodule=cli.datamodule, **kwargs)
                trial.metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})
            exit_code = 0
            trial.state = "finished"
        except Exception as err:  # noqa: BLE001 -- recorded in the results; the sweep goes on
            trial.state = "failed"
            trial.error = f"{type(err).__name__}: {err}"
        finally:
            trial.seconds = round(time.perf_counter() - start, 2)
            for logger in trainer.loggers:
                if isinstance(logger, UnlearnWandbLogger):
                    trial.wandb_run = logger.run_dir
                    logger.finish(exit_code=exit_code)
        if trial.state == "finished":
            if self.spec.metric not in trial.metrics:
                hint = ""
                if self.spec.metric.endswith("avg_gap"):
                    hint = " `avg_gap` is logged only with oracle weights: add `model.init_args.oracle: <retrain.pt>` to `overrides`."
                raise ValueError(
                    f"{trial.id} never logged the metric {self.spec.metric!r}; it logged {sorted(trial.metrics)}.{hint}"
                )
            trial.metric = trial.metrics[self.spec.metric]
        return trial


# --------------------------------------------------------------------------- engines
class _EngineRandom:
    """The search engine's own `random`/`numpy` state: trials re-seed the global generators
    (``seed_everything``), which would otherwise make every random suggestion the same."""

    def __init__(self, seed: int | None) -> None:
        outer = random.getstate(), np.random.get_state()
        random.seed(seed)
        np.random.seed(seed)
        self._state = random.getstate(), np.random.get_state()
        random.setstate(outer[0])
        np.random.set_state(outer[1])

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        outer = random.getstate(), np.random.get_state()
        random.setstate(self._state[0])
        np.random.set_state(self._state[1])
        try:
            yield
        finally:
            self._state = random.getstate(), np.random.get_state()
            random.setstate(outer[0])
            np.random.set_state(outer[1])


def _engine_run(trial: Trial, config: dict[str, Any]) -> Any:
    """``trial`` as the engine's ``SweepRun``: its suggested config, state, final metrics and per-epoch history."""
    sweeps = _import_sweeps()
    state = sweeps.RunState.finished if trial.state == "finished" else sweeps.RunState.failed
    summary = {k: v for k, v in trial.metrics.items() if math.isfinite(v)}
    # By alias: sweeps 0.2 declares `allow_population_by_field_name`, which pydantic 2 ignores, so
    # `summary_metrics=`/`history=` would be dropped without a word.
    return sweeps.SweepRun(name=trial.id, config=config, state=state, summaryMetrics=summary, sampledHistory=list(trial.history))


def _run_local(spec: SweepSpec, runner: TrialRunner, count: int | None, on_trial: Any) -> list[Trial]:
    sweeps = _import_sweeps()
    rng = _EngineRandom(spec.seed)
    finished: list[Any] = []
    trials: list[Trial] = []
    while count is None or len(trials) < count:
        with rng.active():
            suggestion = sweeps.next_run(spec.wandb_config, finished, validate=True)
        if suggestion is None:  # a grid is exhausted
            break
        trial = Trial(id=f"trial-{len(trials):02d}", params={k: _native(v["value"]) for k, v in suggestion.config.items()})
        callbacks: tuple[Callback, ...] = ()
        if "early_terminate" in spec.wandb_config:
            callbacks = (_HyperbandCallback(spec.wandb_config, spec.metric, finished),)
        runner.run(trial, callbacks)
        if callbacks:
            trial.history = callbacks[0].history
            trial.stopped_early = callbacks[0].stopped
        trials.append(trial)
        finished.append(_engine_run(trial, suggestion.config))
        on_trial(trials)
    return trials


def _run_service(spec: SweepSpec, sweep_id: str, runner: TrialRunner, count: int | None, on_trial: Any) -> list[Trial]:
    from lightning_unlearn.tracking import _import_wandb

    wandb = _import_wandb()
    trials: list[Trial] = []
    errors: list[BaseException] = []

    def trial_fn() -> None:
        trial = Trial(id=f"trial-{len(trials):02d}", params={})
        trial_dir = runner.out / trial.id
        trial_dir.mkdir(parents=True, exist_ok=True)
        run = wandb.init(group=sweep_id, name=trial.id, dir=str(trial_dir))
        try:
            trial.params = {k: _native(run.config[k]) for k in spec.parameters if k in run.config}
            runner.run(trial)  # its UnlearnWandbLogger reuses the agent's run (a warning run_sweep filters out)
        except BaseException as err:
            errors.append(err)
            run.finish(exit_code=1)
            raise
        trials.append(trial)
        run.finish(exit_code=0 if trial.state == "finished" else 1)
        on_trial(trials)

    wandb.agent(sweep_id, function=trial_fn, count=count, project=spec.project, entity=spec.entity)
    if errors and not trials:
        raise errors[0]
    return trials


# --------------------------------------------------------------------------- results
def best_trial(trials: list[Trial], goal: str) -> Trial | None:
    """The finished trial with the best finite metric for ``goal`` (``None`` if there is none)."""
    scored = [t for t in trials if t.state == "finished" and _finite(t.metric)]
    if not scored:
        return None
    return (min if goal == "minimize" else max)(scored, key=lambda t: t.metric)


def _short(key: str) -> str:
    """``model.init_args.optimizer.init_args.lr`` -> ``model.optimizer.lr`` (also a valid CLI key)."""
    return ".".join(part for part in key.split(".") if part != "init_args")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(trials: list[Trial], spec: SweepSpec) -> str:
    """A Markdown table of the trials, best first (failed trials last)."""
    sign = 1.0 if spec.goal == "minimize" else -1.0
    ordered = sorted(trials, key=lambda t: (not _finite(t.metric), sign * t.metric if _finite(t.metric) else 0.0))
    header = ["trial", *(_short(k) for k in spec.parameters), spec.metric, "seconds"]
    rows = []
    for t in ordered:
        result = _fmt(t.metric) if t.state == "finished" else "failed"
        if t.stopped_early:
            result += " (stopped early)"
        rows.append([t.id, *(_fmt(t.params.get(k, "")) for k in spec.parameters), result, f"{t.seconds:.1f}"])
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |" for row in [header, *rows]]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _results(spec: SweepSpec, sweep_id: str, engine: str, trials: list[Trial]) -> dict[str, Any]:
    """``sweep_results.json``'s content; a deletion request among the overrides or parameters is redacted
    (:func:`~lightning_unlearn.privacy.redact_config`)."""
    best = best_trial(trials, spec.goal)
    return redact_config({
        "sweep_id": sweep_id,
        "engine": engine,
        "sweep_file": str(spec.path),
        "sweep_config": spec.wandb_config,
        "base_config": str(spec.base_config),
        "overrides": spec.overrides,
        "subcommands": spec.subcommands,
        "metric": {"name": spec.metric, "goal": spec.goal},
        "trials": [_native(asdict(t)) for t in trials],
        "best_trial": best.id if best else None,
        "best": _native(asdict(best)) if best else None,
    })


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    def clean(value: Any) -> Any:  # strict JSON: non-finite numbers become null
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    path.write_text(json.dumps(clean(payload), indent=2) + "\n")


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    """Set environment variables that are not set yet, for the duration of the block."""
    added = [k for k in values if k not in os.environ]
    for key in added:
        os.environ[key] = values[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def run_sweep(
    sweep_file: str | os.PathLike,
    count: int | None = None,
    engine: Engine = "auto",
    out: str | os.PathLike | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run a sweep and return what it writes to ``sweep_results.json``.

    Args:
        sweep_file: The sweep file (W&B format plus ``base_config``, ``overrides``, ``subcommands``,
            ``count``, ``seed``).
        count: Number of trials; overrides the file's ``count``.
        engine: ``"auto"``, ``"local"`` or ``"service"`` (see :data:`ENGINES`).
        out: Folder of the sweep's files (default ``outputs/sweeps/<name>/<sweep id>``); it must
            not hold the results of another sweep.
        quiet: No progress bar and no per-trial lines; the final table is still printed.
    """
    from tqdm.auto import tqdm

    from lightning_unlearn.tracking import resolve_mode

    if engine not in ENGINES:
        raise ValueError(f"`engine` should be one of {list(ENGINES)}, got {engine!r}.")
    spec = load_sweep(sweep_file)
    count = _check_count("count", count) or spec.count
    if count is None and spec.method != "grid":
        raise ValueError(
            f"A {spec.method!r} sweep never runs out of suggestions: give `count:` in {str(spec.path)!r} or --count N."
        )
    wandb_mode = resolve_mode("auto")
    if engine == "auto":
        engine = "service" if wandb_mode == "online" else "local"
    elif engine == "service" and wandb_mode != "online":
        raise ValueError(
            f"--service needs W&B online, but the W&B mode here is {wandb_mode!r}: set WANDB_API_KEY or run "
            "`wandb login` (and unset WANDB_MODE), or run the sweep with the local engine (--local)."
        )
    if engine == "service":
        from lightning_unlearn.tracking import _import_wandb

        sweep_id = _import_wandb().sweep(sweep=spec.wandb_config, project=spec.project, entity=spec.entity)
    else:
        sweep_id = uuid.uuid4().hex[:8]
    out_dir = Path(out) if out is not None else Path("outputs") / "sweeps" / spec.name / sweep_id
    results_path = out_dir / _RESULTS_FILE
    if results_path.exists():
        raise FileExistsError(f"{results_path} already holds a sweep's results; choose another --out or delete it.")
    out_dir.mkdir(parents=True, exist_ok=True)

    total = count if count is not None else (_grid_size(spec.wandb_config["parameters"]) if spec.method == "grid" else None)
    bar = tqdm(total=total, desc=f"sweep {sweep_id}", unit="trial", disable=quiet, dynamic_ncols=True)

    def on_trial(trials: list[Trial]) -> None:
        _write_json(results_path, _results(spec, sweep_id, engine, trials))
        trial = trials[-1]
        best = best_trial(trials, spec.goal)
        bar.update(1)
        bar.set_postfix_str(f"best {best.id}: {best.metric:.4g}" if best else "no finished trial yet")
        if not quiet:
            params = ", ".join(f"{_short(k)}={_fmt(v)}" for k, v in trial.params.items())
            result = f"{spec.metric}={_fmt(trial.metric)}" if trial.state == "finished" else f"failed: {trial.error}"
            bar.write(f"{trial.id}  {params}  ->  {result}  ({trial.seconds:.1f} s)")

    runner = TrialRunner(spec, sweep_id, out_dir)
    # One set of warning filters for the whole sweep: changing filters inside the loop would show
    # every warning again in every trial.
    with _env(WANDB_SILENT="true"), _quiet_lightning(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")  # we pass args on purpose
        warnings.filterwarnings("ignore", message=".*wandb run already in progress.*")  # service: the agent's run
        warnings.filterwarnings("ignore", module="sklearn")  # the bayes engine's GP fit (convergence notes)
        try:
            if engine == "service":
                trials = _run_service(spec, sweep_id, runner, count, on_trial)
            else:
                trials = _run_local(spec, runner, count, on_trial)
        finally:
            bar.close()

    results = _results(spec, sweep_id, engine, trials)
    _write_json(results_path, results)
    print(f"\nSweep {sweep_id} ({spec.method}, {engine} engine, {len(trials)} trials), {spec.metric} ({spec.goal}):\n")
    print(format_table(trials, spec))
    best = best_trial(trials, spec.goal)
    if best is None:
        errors = [f"{t.id}: {t.error}" for t in trials if t.error]
        raise RuntimeError(f"No trial of sweep {sweep_id} finished with a finite {spec.metric!r}. " + "; ".join(errors[:3]))
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
    print(f"\nBest: {best.id} with {spec.metric}={_fmt(best.metric)} ({params})")
    print(f"Results: {results_path}")
    return results


def main(argv: list[str] | None = None) -> None:
    """``lightning-unlearn sweep SWEEP.yaml [--count N] [--local | --service] [--out DIR] [--quiet]``."""
    parser = argparse.ArgumentParser(
        prog="lightning-unlearn sweep",
        description="Run a hyperparameter sweep (W&B sweep format plus `base_config`, `overrides`, `subcommands`, "
        "`count`, `seed`); paths in the sweep file are relative to the current directory.",
    )
    parser.add_argument("sweep_file", help="the sweep YAML file")
    parser.add_argument("--count", type=int, default=None, help="number of trials (overrides the file's `count`)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--local", dest="engine", action="store_const", const="local", help="use the local engine, no W&B server")
    where.add_argument("--service", dest="engine", action="store_const", const="service", help="use the W&B sweep service")
    parser.add_argument("--out", default=None, help="folder of the results and trials (default outputs/sweeps/<name>/<sweep id>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-trial lines")
    args = parser.parse_args(argv)
    run_sweep(args.sweep_file, count=args.count, engine=args.engine or "auto", out=args.out, quiet=args.quiet)


if __name__ == "__main__":
    main()
