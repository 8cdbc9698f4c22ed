"""Helpers for benchmark scripts: provenance, JSON output, markdown tables and a quiet Trainer.

The scripts under ``benchmarks/`` import these from the installed package (no ``sys.path`` edits)::

    from lightning_unlearn import benchmarking

    benchmarking.quiet_lightning()
    trainer = benchmarking.quiet_trainer(max_epochs=1)
    benchmarking.write_json("results/run.json", {"command": benchmarking.command_line(), ...})

:mod:`lightning_unlearn.benchmarking.b1` holds benchmark B1's protocol (its scales, the cached original and
oracle, one unlearning run from a shipped config), shared by the B1 scripts;
:mod:`lightning_unlearn.benchmarking.b2` benchmark B2's (the fictitious authors: the cached target and oracle, one
unlearning run with the settings of ``configs/authors_smollm2``), shared by ``b2_llm.py``, ``b2_attacks.py`` and
``b3_entity.py``; :mod:`lightning_unlearn.benchmarking.b3` benchmark B3's settings (``configs/einstein_smollm2``)
and data.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import shlex
import statistics
import sys
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from lightning_unlearn._provenance import git_commit, git_dirty

__all__ = [
    "LossProgress",
    "PeakRSS",
    "cached_weights",
    "column_stats",
    "command_line",
    "config_hash",
    "fmt_pm",
    "git_commit",
    "git_dirty",
    "markdown_table",
    "mean_std",
    "merge_hparams",
    "quiet_lightning",
    "quiet_trainer",
    "release_memory",
    "train_and_save",
    "unlearning_settings",
    "versions",
    "write_json",
]


def command_line() -> str:
    """The exact command line this process was started with (re-runnable from the repository root)."""
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def versions(*extra: str) -> dict[str, str | None]:
    """The library's :func:`lightning_unlearn._provenance.versions` plus scikit-learn and ``extra`` modules."""
    from lightning_unlearn._provenance import versions as library_versions

    return library_versions("sklearn", *extra)


def merge_hparams(hp: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of ``hp`` with ``override`` applied; the ``"method"`` kwargs dicts are merged, not replaced."""
    out = copy.deepcopy(hp)
    override = copy.deepcopy(override or {})
    out["method"] = {**out.get("method", {}), **override.pop("method", {})}
    out.update(override)
    return out


def unlearning_settings(config: dict[str, Any], name: str = "config", optimizer: str | None = None) -> dict[str, Any]:
    """The settings of an unlearning run from its LightningCLI config (e.g. a shipped one,
    :func:`lightning_unlearn.configs.load_config`), flat, as the benchmark scripts run them:

    ``lr`` (and ``weight_decay`` when the config sets it) of ``model.init_args.optimizer``; ``epochs`` and
    ``max_steps`` of the ``trainer`` (defaults 1 and -1); ``mode`` (default ``"min_size"``), ``batch_size`` and
    ``retain_batch_size`` (when set) of ``data.init_args``; ``schedule`` (``"constant"``: a config with an
    ``lr_scheduler`` is refused); ``method``: the method's ``init_args``. ``optimizer``, when given, is the
    optimizer class path the config must use. ``name`` names the config in errors.
    """
    try:
        trainer, model, data = config.get("trainer") or {}, config["model"]["init_args"], config["data"]["init_args"]
        method, optim = model["method"], model["optimizer"]
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{name} should be an unlearning config with model.init_args.method/optimizer and data.init_args; missing {err}."
        ) from None
    if optimizer is not None and optim.get("class_path") != optimizer:
        raise ValueError(f"{name}: the benchmark unlearns with `{optimizer}`, got optimizer {optim.get('class_path')!r}.")
    if model.get("lr_scheduler") is not None:
        raise ValueError(f"{name}: the benchmark runs at a constant learning rate, got lr_scheduler {model['lr_scheduler']!r}.")
    hp: dict[str, Any] = {
        "lr": optim["init_args"]["lr"],
        "epochs": trainer.get("max_epochs", 1),
        "max_steps": trainer.get("max_steps", -1),
        "mode": data.get("mode", "min_size"),
        "schedule": "constant",
        "method": dict(method.get("init_args") or {}),
        "batch_size": data["batch_size"],
    }
    if "weight_decay" in optim["init_args"]:
        hp["weight_decay"] = optim["init_args"]["weight_decay"]
    if data.get("retain_batch_size") is not None:
        hp["retain_batch_size"] = data["retain_batch_size"]
    return hp


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able config (the cache key of trained models)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def quiet_lightning() -> None:
    """Silence Lightning's info lines and the usual CPU/worker warnings (they would drown the progress lines)."""
    import lightning.pytorch  # noqa: F401  (importing it sets its loggers to INFO; override afterwards)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*The number of training batches.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def quiet_trainer(**kwargs: Any):
    """A CPU Trainer with no logger, checkpointing, progress bar, model summary or validation loop."""
    import lightning.pytorch as pl

    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    defaults.update(kwargs)
    return pl.Trainer(**defaults)


def train_and_save(model, datamodule, lr: float, epochs: int, path: str | os.PathLike) -> float:
    """Train ``model`` as benchmarks train their originals and oracles (``SupervisedModule``: cross-entropy, Adam at a
    constant ``lr``, ``epochs`` on ``datamodule``, a :func:`quiet_trainer`), then save its state dict to ``path``
    atomically (``.tmp`` then rename). Returns the training seconds (wrapping the model in its module and the fit)."""
    import functools
    import time

    import torch

    from lightning_unlearn import SupervisedModule

    start = time.perf_counter()
    module = SupervisedModule(model, optimizer=functools.partial(torch.optim.Adam, lr=lr))
    quiet_trainer(max_epochs=epochs).fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - start
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, path)
    return seconds


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically (``.tmp`` then rename) as indented JSON; NaN/inf are refused."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, allow_nan=False, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and *sample* standard deviation (ddof=1; 0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def column_stats(rows: Sequence[dict[str, Any]], columns: Iterable[tuple[str, str, int]]) -> dict[str, dict[str, Any]]:
    """Per column ``(header, dotted path, digits)``, each row's value at the path (NaN where missing or not a number)
    and the :func:`mean_std` of the values that are numbers: ``{header: {"values", "mean", "std"}}`` (a seeds table)."""
    out = {}
    for header, path, _ in columns:
        values = []
        for row in rows:
            value: Any = row
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            values.append(float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan)
        mean, std = mean_std([v for v in values if not math.isnan(v)])
        out[header] = {"values": values, "mean": mean, "std": std}
    return out


def fmt_pm(mean: float, std: float, digits: int = 2, show_std: bool = True) -> str:
    """``"mean ± std"`` with ``digits`` decimals (``"–"`` for a missing or NaN mean)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if not show_std:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    rows = [list(map(str, r)) for r in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def cached_weights(bench: str, kind: str, config: dict[str, Any], build, train, log=print) -> tuple[Any, dict[str, Any]]:
    """A benchmark's trained model ``kind`` for ``config``: loaded from ``$LIGHTNING_UNLEARN_CACHE/<bench>`` when there,
    else built (``build() -> model``), trained (``train(model) -> None``, with ``config["threads"]`` torch threads when
    given) and stored atomically with its training time. Returns ``(model, {"seconds", "path", "cached", ...})``."""
    import time

    import torch

    from lightning_unlearn._cache import cache_folder

    key = config_hash({"kind": kind, **config})
    folder = cache_folder(bench)
    weights, meta = folder / f"{kind}-{key}.pt", folder / f"{kind}-{key}.json"
    model = build()
    if weights.is_file() and meta.is_file():
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return model, {**json.loads(meta.read_text()), "path": str(weights), "cached": True}
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(int(config.get("threads", threads)))
    try:
        trained = train(model)
    finally:
        torch.set_num_threads(threads)
    model = model if trained is None else trained
    seconds = time.perf_counter() - start
    tmp = weights.with_suffix(f".tmp{os.getpid()}")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, weights)
    info = {"config": config, "seconds": seconds, "threads": int(config.get("threads", threads)), "trained_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(meta, info)
    log(f"[{bench}] trained {kind} in {seconds:.1f}s -> {weights}")
    return model, {**info, "path": str(weights), "cached": False}


class LossProgress(Callback):
    """Logs ``[<bench>] step N: loss L`` every ``every`` training steps (originals that train for minutes)."""

    def __init__(self, bench: str, log=print, every: int = 25) -> None:
        self._bench, self._log, self._every = bench, log, every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self._every == 0:
            self._log(f"[{self._bench}] step {trainer.global_step}: loss {float(outputs['loss']):.4f}")


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so that the next block's
    peak RSS is not inflated by memory an earlier row freed but the allocator kept."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """Peak resident set size of this process during a ``with`` block (psutil, sampled every 50 ms).

    Process-wide: it includes whatever the process already holds when the block starts (the tokenizer, cached
    data, memory the allocator kept); :func:`release_memory` is called first to keep that small.

    Falls back to ``resource.getrusage`` (the process's lifetime peak, not the block's) without psutil.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _rss(self) -> int:
        return self._proc.memory_info().rss

    def __enter__(self) -> PeakRSS:
        release_memory()
        try:
            import psutil

            self._proc = psutil.Process()
            self.peak = self._rss()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        except ImportError:
            self._proc = None
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: Any) -> None:
        if self._proc is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self._rss())
        else:
            import resource

            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    @property
    def mb(self) -> float:
        return self.peak / 2**20
