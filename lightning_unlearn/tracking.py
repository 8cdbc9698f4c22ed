"""Weights & Biases tracking: :class:`UnlearnWandbLogger` and :class:`LoggerSaveConfigCallback`.

Use the logger from a config or the command line::

    lightning-unlearn fit --config configs/digits/npo.yaml \\
        --trainer.logger lightning_unlearn.tracking.UnlearnWandbLogger --trainer.logger.mode offline

``mode="auto"`` (the default) logs online when W&B is configured on this machine and offline
otherwise, so the same config works on a laptop without an account, in CI and on a cluster.
Offline runs are written to ``<save_dir>/wandb/offline-run-*``; upload them later with
``wandb sync <save_dir>/wandb/offline-run-*``. ``wandb`` is imported only when a logger is
created (``pip install 'lightning-unlearn[wandb]'``).
"""

from __future__ import annotations

import atexit
import netrc
import os
import sys
from typing import Any, Literal
from urllib.parse import urlparse

import yaml
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from typing_extensions import override

from lightning_unlearn._errors import missing_extra
from lightning_unlearn.privacy import redact_config

WandbMode = Literal["auto", "online", "offline", "disabled"]

#: The values of ``mode``: what each one does.
WANDB_MODES: dict[str, str] = {
    "auto": "the WANDB_MODE environment variable when set; else online when W&B credentials are configured, else offline",
    "online": "stream the run to the W&B server",
    "offline": "write the run to <save_dir>/wandb/offline-run-* (upload later with `wandb sync`)",
    "disabled": "no W&B run at all (logging calls do nothing)",
}

#: Values W&B accepts in the ``WANDB_MODE`` environment variable, and the mode each one means.
_WANDB_MODE_ENV: dict[str, str] = {
    "online": "online",
    "run": "online",
    "offline": "offline",
    "dryrun": "offline",
    "disabled": "disabled",
}

_DEFAULT_BASE_URL = "https://api.wandb.ai"

#: The W&B runs (by id) that an UnlearnWandbLogger started and that are not finished yet.
_OPEN_RUNS: dict[str, Any] = {}
_AT_EXIT: list[bool] = []  # whether _finish_open_runs is registered with atexit


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError as err:
        raise missing_extra("wandb", "wandb") from err
    return wandb


def _finish_open_runs() -> None:
    """At exit: finish the runs the loggers started, so that they are complete on disk when the process ends.

    (W&B's own exit hook hands unfinished runs to its service process, which may still be writing
    them after this process is gone.) An uncaught exception marks the runs failed.
    """
    error = getattr(sys, "last_value", None)  # set by Python for an uncaught exception
    exit_code = 0 if error is None else 255 if isinstance(error, KeyboardInterrupt) else 1
    for run_id, run in list(_OPEN_RUNS.items()):
        _OPEN_RUNS.pop(run_id, None)
        run.finish(exit_code=exit_code)


def _absolute_root_dir(save_dir: str | os.PathLike | None) -> str:
    """The folder a new W&B run is written under, as an absolute path resolved against the current directory.

    W&B resolves a relative ``dir`` in two processes: this one (``logs/debug.log``) and its service
    process (``wandb-core``: the ``run-<id>.wandb`` transaction log, ``files/``). The service is
    started once per process tree (by the first run, and inherited by child processes through
    ``WANDB_SERVICE``) and keeps the working directory it started in, so after a ``chdir`` (a
    notebook, a sweep, a test) a relative ``dir`` names two different folders and the service
    fails to write the run. ``None`` means what W&B picks in a fresh process: ``WANDB_DIR`` when set
    (read now; W&B itself ignores changes after its first run), else the current directory.
    """
    root = save_dir if save_dir is not None else os.environ.get("WANDB_DIR") or os.getcwd()
    return os.path.abspath(os.path.expanduser(os.fspath(root)))


def has_wandb_credentials() -> bool:
    """Whether W&B is configured here: ``WANDB_API_KEY`` is set, or the netrc file has an entry for the
    W&B host (``api.wandb.ai``, or the host of ``WANDB_BASE_URL``), as ``wandb login`` writes it.

    The netrc file is ``$NETRC`` when set, else ``~/.netrc``. Nothing is sent over the network.
    """
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or _DEFAULT_BASE_URL).hostname
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        entry = netrc.netrc(path).authenticators(host) if host else None
    except (OSError, netrc.NetrcParseError):
        return False
    return entry is not None and bool(entry[2])


def resolve_mode(mode: WandbMode = "auto") -> Literal["online", "offline", "disabled"]:
    """The W&B mode a run will use.

    An explicit ``"online"``/``"offline"``/``"disabled"`` is returned as given. ``"auto"`` follows the
    ``WANDB_MODE`` environment variable when it is set (``dryrun`` means offline, ``run`` online), and
    otherwise is ``"online"`` when :func:`has_wandb_credentials` and ``"offline"`` when not.

    >>> resolve_mode("disabled")
    'disabled'
    """
    if mode not in WANDB_MODES:
        raise ValueError(f"`mode` should be one of {list(WANDB_MODES)}, got {mode!r}.")
    if mode != "auto":
        return mode  # type: ignore[return-value]
    env = os.environ.get("WANDB_MODE")
    if env:
        if env.lower() not in _WANDB_MODE_ENV:
            raise ValueError(f"The environment variable WANDB_MODE should be one of {list(_WANDB_MODE_ENV)}, got {env!r}.")
        return _WANDB_MODE_ENV[env.lower()]  # type: ignore[return-value]
    return "online" if has_wandb_credentials() else "offline"


class UnlearnWandbLogger(WandbLogger):
    """Lightning's :class:`~lightning.pytorch.loggers.WandbLogger` with this project's defaults.

    * ``mode="auto"`` works with and without a W&B account (see :func:`resolve_mode`); an offline
      run is written to ``<save_dir>/wandb/offline-run-<time>-<id>/`` (``run-<id>.wandb`` holds the
      logged data) and can be uploaded later with ``wandb sync``.
    * One logger, one W&B run: a run that an earlier ``UnlearnWandbLogger`` of this process left
      open is finished before a new one starts (Lightning's logger would silently keep logging into
      it). :meth:`finish` closes the run explicitly; ``lightning-unlearn sweep`` calls it after each
      trial, and at process exit (the end of a ``lightning-unlearn fit``) the logger finishes its
      run and waits until it is written, marking it failed after an uncaught exception.
    * A run that was already open when the logger starts (``wandb.init()`` in your script, a
      ``wandb agent``) is reused and left for its owner to finish.
    * A relative ``save_dir`` is resolved against the working directory when the run starts, so
      several runs in one process (or its child processes) each land in their own ``save_dir``
      even after a ``chdir``.

    The ``LightningCLI`` config reaches the W&B run config through :class:`LoggerSaveConfigCallback`.
    Hyperparameters are logged with the deletion request redacted
    (:func:`~lightning_unlearn.privacy.redact_config`): a W&B run never holds forget indices or ids.

    Args:
        project: W&B project the run belongs to.
        name: Display name of the run (W&B picks one when ``None``).
        save_dir: Folder that receives ``wandb/`` with the run files (created when needed). Point it
            at the run's output folder (e.g. ``outputs/digits/npo``): LightningCLI also writes the
            run's ``config.yaml`` there.
        group: W&B group, e.g. the benchmark name or a sweep id, to compare related runs together.
        mode: ``"auto"``, ``"online"``, ``"offline"`` or ``"disabled"`` (see :data:`WANDB_MODES`).
        **kwargs: Passed on to Lightning's ``WandbLogger`` (``log_model``, ``prefix``,
            ``checkpoint_name``, ...) and from there to ``wandb.init`` (``entity``, ``tags``,
            ``notes``, ``job_type``, ...).
    """

    def __init__(
        self,
        project: str = "lightning-unlearn",
        name: str | None = None,
        save_dir: str = "outputs",
        group: str | None = None,
        mode: WandbMode = "auto",
        **kwargs: Any,
    ) -> None:
        _import_wandb()
        if mode not in WANDB_MODES:
            raise ValueError(f"`mode` should be one of {list(WANDB_MODES)}, got {mode!r}.")
        # LightningCLI passes every argument of the parent classes, so only set values are errors.
        if kwargs.pop("offline", False):
            raise ValueError("UnlearnWandbLogger takes `mode='offline'` instead of `offline=True`.")
        if kwargs.pop("dir", None) is not None:
            raise ValueError("UnlearnWandbLogger takes `save_dir` instead of `dir`.")
        self._mode = resolve_mode(mode)
        self._owns_run = False
        super().__init__(name=name, save_dir=save_dir, project=project, group=group, mode=self._mode, **kwargs)
        if self._wandb_init.get("anonymous") is None:  # wandb warns that the (deprecated) setting was passed at all
            self._wandb_init.pop("anonymous", None)

    @property
    def mode(self) -> str:
        """The W&B mode this logger's run uses (``"auto"`` already resolved)."""
        return self._mode

    @property
    def run_dir(self) -> str | None:
        """Folder of this logger's W&B run (``<save_dir>/wandb/offline-run-*`` offline); ``None`` before it starts or when disabled."""
        if self._experiment is None or self._mode == "disabled":
            return None
        files = getattr(self._experiment, "dir", None)
        return os.path.dirname(files) if files else None

    @property
    @override
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None:
            wandb = _import_wandb()
            stale = wandb.run
            if stale is not None and stale.id in _OPEN_RUNS:
                rank_zero_info(f"Finishing W&B run {stale.name!r} ({stale.id}), left open by an earlier UnlearnWandbLogger.")
                _OPEN_RUNS.pop(stale.id).finish()
            started_here = wandb.run is None
            if started_here and not (self._wandb_init.get("dir") is None and self._wandb_init.get("settings") is not None):
                # An absolute path, so that this run is written to *this* logger's save_dir whatever
                # directory W&B's service process (shared by all runs of this process) started in.
                # (With save_dir=None and explicit `settings`, their root_dir is left to W&B.)
                self._wandb_init["dir"] = _absolute_root_dir(self._wandb_init.get("dir"))
            experiment = super().experiment
            if started_here and getattr(experiment, "id", None):
                self._owns_run = True
                _OPEN_RUNS[experiment.id] = experiment
                if not _AT_EXIT:  # registered after W&B's own hook, so it runs before it
                    atexit.register(_finish_open_runs)
                    _AT_EXIT.append(True)
        return self._experiment

    @override
    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Any) -> None:
        """Lightning's ``log_hyperparams`` with forget indices, ids and the seed of ``forget_fraction`` redacted."""
        if isinstance(params, dict):
            params = redact_config(params)
        super().log_hyperparams(params)

    @rank_zero_only
    def finish(self, exit_code: int = 0) -> None:
        """Finish this logger's W&B run (``wandb.finish``), so that a later run in this process starts fresh.

        A run the logger did not start (see the class docstring) is left open. Calling it again, or
        before anything was logged, does nothing.

        Args:
            exit_code: Recorded with the run; non-zero marks it as failed.
        """
        if self._experiment is None or not self._owns_run:
            return
        _OPEN_RUNS.pop(self._experiment.id, None)
        self._owns_run = False
        self._experiment.finish(exit_code=exit_code)


class LoggerSaveConfigCallback(SaveConfigCallback):
    """LightningCLI's ``SaveConfigCallback`` that also logs the full config to every logger.

    Besides writing ``config.yaml`` to the log dir, it calls ``log_hyperparams`` with the parsed
    config (the same dict as ``config.yaml``: ``seed_everything``, ``trainer``, ``model``, ``data``,
    ...). W&B shows the nested keys dotted, exactly as the CLI spells them
    (``model.init_args.optimizer.init_args.lr``), which is also how sweeps name their parameters.

    The deletion request is redacted in both (:func:`~lightning_unlearn.privacy.redact_config`, with
    the datamodule's resolved request for the marker's count and keyed fingerprint):
    ``forget_indices``, ``forget_ids`` and ``retain_indices`` become ``"<redacted: ...>"`` and so does
    the datamodule's ``seed`` of a ``forget_fraction`` request. A redacted ``config.yaml`` cannot be run
    again as it is; give the request as ``forget_indices_file`` (a file the user keeps) and nothing
    needs redacting.

    Use it with ``LightningCLI(save_config_callback=LoggerSaveConfigCallback)``.
    """

    def _redacted(self, trainer: Trainer) -> tuple[dict[str, Any], bool]:
        """The config as ``config.yaml`` would hold it, with the request redacted; and whether anything was."""
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        redacted = redact_config(config, getattr(trainer.datamodule, "request", None))
        return redacted, redacted != config

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        redacted, changed = self._redacted(trainer)
        if not changed:
            super().setup(trainer, pl_module, stage)
            return
        parser = self.parser
        redacted.pop("config", None)  # the --config file names, as the parser's own save leaves them out
        self.parser = _RedactedConfigWriter(parser, redacted)  # type: ignore[assignment]
        try:
            super().setup(trainer, pl_module, stage)
        finally:
            self.parser = parser

    @override
    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        config, _ = self._redacted(trainer)
        config.pop("config", None)  # the --config file names; the values they held are all here
        for logger in trainer.loggers:
            logger.log_hyperparams(config)


class _RedactedConfigWriter:
    """Stands in for the CLI's parser while ``SaveConfigCallback.setup`` writes ``config.yaml``: it writes
    the redacted config (one file: ``multifile`` does not apply) and passes everything else through."""

    def __init__(self, parser: Any, redacted: dict[str, Any]) -> None:
        self._parser = parser
        self._redacted = redacted

    def save(self, cfg: Any, path: str, *, overwrite: bool = False, **kwargs: Any) -> None:
        fs = get_filesystem(path)
        if fs.exists(path) and not overwrite:
            raise ValueError(f"Refusing to overwrite {path}: `overwrite` is False.")
        header = (
            "# The deletion request is redacted in this file (lightning_unlearn.privacy.redact_config); to rerun it, give the\n"
            "# request again, preferably as forget_indices_file / forget_ids_file.\n"
        )
        with fs.open(path, "w") as f:
            f.write(header + yaml.safe_dump(self._redacted, sort_keys=False))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)
