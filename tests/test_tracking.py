"""W&B tracking: ``UnlearnWandbLogger`` (mode resolution, offline runs, one run per logger) and the CLI config in W&B.

Everything runs offline: W&B's server is never contacted. The offline runs are checked by reading
their ``run-<id>.wandb`` file (a LevelDB-style log of W&B protobuf records) with :func:`wandb_records`.

The helpers here (:func:`run_cli`, :func:`wandb_records`, :func:`digits_workspace`) are shared with
``test_sweep.py``.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

wandb = pytest.importorskip("wandb")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
QUICK = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


# --------------------------------------------------------------------------- shared helpers
def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m lightning_unlearn.cli ARGS`` in ``cwd``, offline; raises with the output on failure."""
    full_env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(cwd / "wandb_dir"),
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    full_env.pop("WANDB_API_KEY", None)
    cmd = [sys.executable, "-m", "lightning_unlearn.cli", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def wandb_records(run_file: Path, timeout: float = 10.0) -> dict[str, Any]:
    """The run record, config, summary and exit code of an offline ``run-<id>.wandb`` file.

    W&B's service process writes the file; right after ``finish()`` the last records may take a
    few milliseconds to land, so this waits up to ``timeout`` seconds for the exit record.
    """
    deadline = time.monotonic() + timeout
    while True:
        out = _read_wandb_records(run_file)
        if out["exit_code"] is not None or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def _read_wandb_records(run_file: Path) -> dict[str, Any]:
    """The file is a 7-byte header (``:W&B``, magic, version) followed by LevelDB log records in
    32 KiB blocks (``crc32 u32, length u16, type u8``; types full/first/middle/last), each payload a
    ``wandb.proto.wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", f"{run_file} is not a W&B transaction log"
    payloads, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:
            payloads.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            payloads.append(pending + chunk)
    out: dict[str, Any] = {"run": None, "config": {}, "summary": {}, "exit_code": None}
    for payload in payloads:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
            out["config"].update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            out["config"].update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "summary":
            out["summary"].update(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.summary.update}
            )
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    return out


def offline_runs(save_dir: Path) -> list[Path]:
    """The ``run-<id>.wandb`` files of the offline runs under ``<save_dir>/wandb/``."""
    return sorted(save_dir.glob("wandb/offline-run-*/run-*.wandb"))


def digits_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``configs`` linked in and a quick original (3 epochs) and oracle (1 epoch) for digits.

    Built once per test session (both test files call it; the second call finds the artifacts).
    """
    root = tmp_path_factory.getbasetemp() / "digits_workspace"
    artifacts = root / "artifacts" / "digits"
    if not (artifacts / "retrain.pt").is_file():
        root.mkdir(exist_ok=True)
        if not (root / "configs").exists():
            (root / "configs").symlink_to(CONFIGS)
        run_cli("fit", "--config", "configs/digits/original.yaml", "--trainer.max_epochs=3", *QUICK, cwd=root)
        run_cli(
            "fit", "--config", "configs/digits/retrain.yaml", "--trainer.max_epochs=1", "--trainer.check_val_every_n_epoch=1",
            *QUICK, cwd=root,
        )  # fmt: skip
    assert (artifacts / "original.pt").is_file() and (artifacts / "retrain.pt").is_file()
    return root


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return digits_workspace(tmp_path_factory)


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """W&B offline and quiet, stray files under tmp_path, and no earlier run left open."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    yield
    if wandb.run is not None:
        wandb.finish()


@pytest.fixture()
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No WANDB_* settings and an empty home: W&B is not configured. Returns the home folder."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


# --------------------------------------------------------------------------- mode resolution
def test_auto_mode_is_offline_without_credentials(no_credentials: Path):
    from lightning_unlearn.tracking import has_wandb_credentials, resolve_mode

    assert not has_wandb_credentials()
    assert resolve_mode("auto") == "offline"


def test_auto_mode_is_online_with_an_api_key(no_credentials: Path, monkeypatch: pytest.MonkeyPatch):
    from lightning_unlearn.tracking import resolve_mode

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"


@pytest.mark.parametrize(
    ("host", "base_url", "expected"),
    [
        ("api.wandb.ai", None, "online"),
        ("example.org", None, "offline"),
        ("wandb.example.org", "https://wandb.example.org", "online"),
    ],
)
def test_auto_mode_reads_the_netrc_entry_for_the_wandb_host(no_credentials: Path, monkeypatch, host, base_url, expected):
    from lightning_unlearn.tracking import resolve_mode

    netrc = no_credentials / ".netrc"
    netrc.write_text(f"machine {host}\n  login user\n  password {'k' * 40}\n")
    netrc.chmod(0o600)
    if base_url:
        monkeypatch.setenv("WANDB_BASE_URL", base_url)
    assert resolve_mode("auto") == expected


@pytest.mark.parametrize(
    ("env", "expected"), [("offline", "offline"), ("dryrun", "offline"), ("disabled", "disabled"), ("online", "online")]
)
def test_auto_mode_follows_wandb_mode_even_with_credentials(no_credentials: Path, monkeypatch, env, expected):
    from lightning_unlearn.tracking import resolve_mode

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", env)
    assert resolve_mode("auto") == expected


def test_explicit_mode_wins_over_the_environment(no_credentials: Path, monkeypatch: pytest.MonkeyPatch):
    from lightning_unlearn.tracking import resolve_mode

    monkeypatch.setenv("WANDB_MODE", "online")
    assert resolve_mode("offline") == "offline"
    assert resolve_mode("disabled") == "disabled"


def test_bad_modes_raise(no_credentials: Path, monkeypatch: pytest.MonkeyPatch):
    from lightning_unlearn.tracking import UnlearnWandbLogger, resolve_mode

    with pytest.raises(ValueError, match=r"`mode` should be one of \['auto', 'online', 'offline', 'disabled'\], got 'Offline'"):
        resolve_mode("Offline")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`mode` should be one of .*got 'local'"):
        UnlearnWandbLogger(mode="local")  # type: ignore[arg-type]
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(ValueError, match=r"WANDB_MODE should be one of .*got 'sometimes'"):
        resolve_mode("auto")


def test_logger_takes_mode_and_save_dir_not_offline_and_dir(offline):
    from lightning_unlearn.tracking import UnlearnWandbLogger

    with pytest.raises(ValueError, match=r"takes `mode='offline'` instead of `offline=True`"):
        UnlearnWandbLogger(offline=True)
    with pytest.raises(ValueError, match=r"takes `save_dir` instead of `dir`"):
        UnlearnWandbLogger(dir="somewhere")


def test_missing_wandb_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch):
    from lightning_unlearn.tracking import UnlearnWandbLogger

    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'lightning-unlearn\[wandb\]'"):
        UnlearnWandbLogger(mode="offline")


def test_import_lightning_unlearn_tracking_does_not_import_wandb():
    code = (
        "import sys, lightning_unlearn.tracking, lightning_unlearn.sweep; print('wandb' in sys.modules, 'sweeps' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.split() == ["False", "False"]


# --------------------------------------------------------------------------- runs
def test_each_logger_is_its_own_run_and_finish_closes_it(offline, tmp_path: Path):
    from lightning_unlearn.tracking import UnlearnWandbLogger

    first = UnlearnWandbLogger(save_dir=str(tmp_path / "a"), name="first", mode="offline")
    first.log_metrics({"x": 1.0}, step=0)
    first_id = first.experiment.id
    # A second logger in the same process (a sweep, a notebook) must not log into the first run.
    second = UnlearnWandbLogger(save_dir=str(tmp_path / "b"), name="second", group="g", mode="offline")
    second.log_metrics({"x": 2.0}, step=0)
    assert second.experiment.id != first_id
    second.finish()
    second.finish()  # a second call does nothing
    assert wandb.run is None

    (first_file,) = offline_runs(tmp_path / "a")
    assert first.run_dir == str(first_file.parent)
    (second_file,) = offline_runs(tmp_path / "b")
    first_run, second_run = wandb_records(first_file), wandb_records(second_file)
    assert first_run["exit_code"] == 0 and second_run["exit_code"] == 0
    assert (first_run["run"].display_name, second_run["run"].run_group) == ("first", "g")
    assert (first_run["summary"]["x"], second_run["summary"]["x"]) == (1.0, 2.0)
    assert first_run["run"].project == "lightning-unlearn"


def test_logger_reuses_a_run_it_did_not_start_and_leaves_it_open(offline, tmp_path: Path):
    from lightning_unlearn.tracking import UnlearnWandbLogger

    run = wandb.init(dir=str(tmp_path), mode="offline", project="mine")
    logger = UnlearnWandbLogger(save_dir=str(tmp_path), mode="offline")
    with pytest.warns(UserWarning, match="run already in progress"):
        assert logger.experiment is run
    logger.finish()
    assert wandb.run is run  # its owner finishes it
    run.finish()


def test_a_new_logger_writes_its_run_whatever_ran_before_in_the_process(offline, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Earlier runs in the process (a foreign one, one left open) in another working directory, then a
    fresh logger with a relative save_dir: its run is written under *its* save_dir.

    W&B's service process is started once, by the first run, in the working directory of that
    moment; a relative ``dir`` handed to it later used to be resolved against that directory, so the
    run file of a later run (e.g. ``fit`` from a config after ``chdir``) was never written.
    """
    from lightning_unlearn.tracking import UnlearnWandbLogger

    first_cwd, second_cwd = tmp_path / "first_cwd", tmp_path / "second_cwd"
    first_cwd.mkdir()
    second_cwd.mkdir()
    monkeypatch.chdir(first_cwd)
    foreign = wandb.init(dir=str(first_cwd / "foreign"), mode="offline", project="mine")  # a run of the user's own
    foreign.finish()
    earlier = UnlearnWandbLogger(save_dir="runs", name="earlier", mode="offline")
    earlier.log_metrics({"x": 1.0}, step=0)  # left open: the next logger finishes it

    monkeypatch.chdir(second_cwd)
    fresh = UnlearnWandbLogger(save_dir="runs", name="fresh", mode="offline")
    fresh.log_metrics({"x": 2.0}, step=0)
    assert fresh.experiment.id != earlier.experiment.id
    fresh.finish()
    assert wandb.run is None

    (fresh_file,) = offline_runs(second_cwd / "runs")
    assert fresh.run_dir == str(fresh_file.parent)
    assert fresh_file.stat().st_size > 0
    record = wandb_records(fresh_file)
    assert record["exit_code"] == 0 and record["run"].display_name == "fresh" and record["summary"]["x"] == 2.0
    (earlier_file,) = offline_runs(first_cwd / "runs")
    earlier_record = wandb_records(earlier_file)
    assert earlier_record["exit_code"] == 0 and earlier_record["summary"]["x"] == 1.0
    assert len(offline_runs(first_cwd / "foreign")) == 1
    # ... and nothing of the fresh run went to the first working directory.
    assert [p.name for p in (first_cwd / "runs").glob("wandb/offline-run-*")] == [earlier_file.parent.name]


def test_disabled_mode_writes_nothing(offline, tmp_path: Path):
    from lightning_unlearn.tracking import UnlearnWandbLogger

    logger = UnlearnWandbLogger(save_dir=str(tmp_path / "off"), mode="disabled")
    logger.log_metrics({"x": 1.0})
    logger.finish()
    assert logger.mode == "disabled" and logger.run_dir is None
    assert not offline_runs(tmp_path / "off")


def test_offline_run_from_a_config_in_process(workspace: Path, offline, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """`fit` from the shipped GA config with the W&B logger: metrics, the offline run, and the CLI config in W&B."""
    from lightning_unlearn.cli import UnlearnCLI
    from lightning_unlearn.tracking import LoggerSaveConfigCallback, UnlearnWandbLogger

    monkeypatch.chdir(workspace)
    save_dir = workspace / "outputs/digits/ga"  # the shipped config's W&B logger (mode "auto" -> offline here)
    cli = UnlearnCLI(
        args=["fit", "--config", "configs/digits/ga.yaml", "--trainer.callbacks=[]", "--trainer.limit_train_batches=2", *QUICK],
        save_config_callback=LoggerSaveConfigCallback,
    )  # fmt: skip
    logger = cli.trainer.loggers[0]
    assert isinstance(logger, UnlearnWandbLogger) and logger.mode == "offline"
    metrics = cli.trainer.callback_metrics
    for key in ("train/loss", "val/UA", "val/RA", "val/TA", "val/MIA"):
        assert key in metrics, f"{key} missing from {sorted(metrics)}"
    assert 0.0 <= float(metrics["val/UA"]) <= 100.0
    logger.finish()
    assert wandb.run is None

    runs = offline_runs(save_dir)
    assert runs, (
        f"no offline run under {save_dir}: {sorted(str(p) for p in workspace.rglob('*.wandb'))} {sorted(str(p) for p in tmp_path.rglob('*.wandb'))}"
    )
    run_file = max(runs, key=lambda p: p.stat().st_mtime)  # other tests may reuse this config
    assert run_file.stat().st_size > 0
    record = wandb_records(run_file)
    assert record["exit_code"] == 0
    assert (record["run"].project, record["run"].display_name, record["run"].run_group) == ("lightning-unlearn", "ga", "digits")
    config = record["config"]
    # The LightningCLI config, keyed as on the command line ...
    assert config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == pytest.approx(1e-4)
    assert config["model"]["init_args"]["method"]["class_path"] == "lightning_unlearn.methods.GradientAscent"
    assert config["trainer"]["max_epochs"] == 1 and config["seed_everything"] == 0
    # ... and what UnlearningModule.on_fit_start logs.
    assert config["original"] == "artifacts/digits/original.pt" and "request/fingerprint" in config
    assert record["summary"]["val/UA"] == pytest.approx(float(metrics["val/UA"]), abs=1e-4)
    assert (save_dir / "config.yaml").is_file()  # LightningCLI's config.yaml next to wandb/
    # The config's request is forget_fraction 0.1: its seed (which regenerates every index) is redacted in both.
    assert config["data"]["init_args"]["forget_fraction"] == 0.1
    assert config["data"]["init_args"]["seed"] == "<redacted: seed of forget_fraction>"
    saved = yaml.safe_load((save_dir / "config.yaml").read_text())
    assert saved["data"]["init_args"]["seed"] == "<redacted: seed of forget_fraction>"
    assert config["request/fingerprint"].startswith("hmac-sha256:")


@pytest.mark.slow
def test_offline_run_from_the_console_script(workspace: Path, tmp_path: Path):
    """`lightning-unlearn fit` with the logger (mode "auto": offline here) from the command line; the run is closed at exit."""
    save_dir = tmp_path / "ga_cli"
    run_cli(
        "fit", "--config", "configs/digits/ga.yaml",
        "--trainer.logger", "lightning_unlearn.tracking.UnlearnWandbLogger", "--trainer.logger.save_dir", str(save_dir),
        "--trainer.logger.tags=[digits, ga]", "--trainer.callbacks=[]", "--trainer.limit_train_batches=2", *QUICK,
        cwd=workspace,
    )  # fmt: skip
    (run_file,) = offline_runs(save_dir)
    record = wandb_records(run_file)
    assert record["exit_code"] == 0
    assert list(record["run"].tags) == ["digits", "ga"]
    assert "val/UA" in record["summary"]


@pytest.mark.slow
def test_a_crash_marks_the_run_failed(tmp_path: Path):
    """The exit hook finishes the logger's run with exit code 1 after an uncaught exception."""
    code = (
        "from lightning_unlearn.tracking import UnlearnWandbLogger\n"
        f"logger = UnlearnWandbLogger(save_dir={str(tmp_path)!r}, mode='offline')\n"
        "logger.log_metrics({'x': 1.0})\n"
        "raise RuntimeError('boom')\n"
    )
    env = {**os.environ, "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path / "wandb_dir")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "boom" in proc.stderr
    (run_file,) = offline_runs(tmp_path)
    record = wandb_records(run_file)
    assert record["exit_code"] == 1 and record["summary"]["x"] == 1.0
