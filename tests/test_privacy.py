"""Issue 13: the deletion request must not leak what it deletes.

* the fingerprint is keyed (HMAC-SHA256): enumerating small requests with SHA-256 does not recover it,
  it changes with the key, and :func:`verify_request` accepts the right request and rejects a wrong one
  or a wrong key;
* descriptions never hold the seed (or the indices) of a request;
* requests can be given by reference (``forget_indices_file``/``forget_ids_file``);
* every artifact a real CLI run writes (``config.yaml``, ``hparams.yaml``, checkpoints, the report, the
  W&B offline run, the saved weights) is searched for the forgotten indices, with a search shown to
  find them where they are.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import stat
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from leak_search import leaks, leaks_in_bytes

from lightning_unlearn.datamodules import ForgetRetainDataModule, LabeledTensorDataset, resolve_request
from lightning_unlearn.privacy import (
    KEY_ENV,
    KEY_FILE_ENV,
    legacy_fingerprint,
    read_request_file,
    redact_config,
    request_fingerprint,
    request_key,
    verify_request,
)

KEY_A = "data-controller-key-A-0123456789"
KEY_B = "data-controller-key-B-9876543210"
#: Forgotten indices with distinctive digit strings (the digits training split has 1,347 samples).
SECRET = (1042, 1187, 1337)


def _dataset(n: int) -> LabeledTensorDataset:
    return LabeledTensorDataset(torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n) % 4)


@pytest.fixture()
def key_a(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.setenv(KEY_ENV, KEY_A)
    return KEY_A


# ------------------------------------------------------------------------------------------ searching artifacts
def test_the_search_finds_the_indices_where_they_are(tmp_path: Path):
    """The artifact search can fail: it finds the indices in YAML, JSON, a pickled list, a tensor and an
    int64 array, and in the config and hparams as the code before issue 13 wrote them."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {"init_args": {"forget_indices": list(SECRET)}}}))
    (tmp_path / "report.json").write_text(json.dumps({"request": {"indices": list(SECRET)}}))
    (tmp_path / "wandb-config.txt").write_bytes(b'\x12\x05value\x1a[1042, 1187, 1337]')
    torch.save({"datamodule_hyper_parameters": {"forget_indices": list(SECRET)}}, tmp_path / "list.ckpt")
    torch.save({"state": torch.tensor(SECRET)}, tmp_path / "tensor.pt")
    np.asarray(SECRET, dtype=np.int64).tofile(tmp_path / "array.bin")
    for path in sorted(tmp_path.iterdir()):
        assert leaks(path, SECRET), f"the search misses the indices in {path.name}"
    (tmp_path / "clean.yaml").write_text("forget_indices: '<redacted: 3 indices>'\nsizes: [1042, 7, 1337]\nlr: 0.1187\n")
    assert leaks(tmp_path / "clean.yaml", SECRET) == []


# ------------------------------------------------------------------------------------------ keyed fingerprint
def test_small_requests_are_not_recovered_by_enumerating_sha256(key_a):
    """Every 1- and 2-index request over 400 samples, hashed as the unkeyed fingerprint was (and as plain
    SHA-256 of the indices), never gives the request's fingerprint; before issue 13 the enumeration found it."""
    n = 400
    for request in ([137], [58, 301]):
        digest = resolve_request(_dataset(n), forget_indices=request).fingerprint.rsplit(":", 1)[-1]
        prefix = f"n={n};".encode()
        recovered = None
        for size in (1, 2):
            for guess in itertools.combinations(range(n), size):
                raw = np.asarray(guess, dtype=np.int64).tobytes()
                if digest in (hashlib.sha256(prefix + raw).hexdigest(), hashlib.sha256(raw).hexdigest()):
                    recovered = list(guess)
                    break
            if recovered:
                break
        assert recovered is None, f"the fingerprint of {request} gave the request away by enumeration: {recovered}"


def test_the_fingerprint_is_keyed_stable_and_names_its_key(key_a, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    req = resolve_request(_dataset(50), forget_indices=[3, 7])
    with_a = req.fingerprint
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{8}:[0-9a-f]{64}", with_a)
    assert with_a == resolve_request(_dataset(50), forget_indices=[7, 3, 3]).fingerprint  # stable, order-free
    assert with_a != resolve_request(_dataset(50), forget_indices=[3, 8]).fingerprint
    assert with_a != resolve_request(_dataset(51), forget_indices=[3, 7]).fingerprint  # the dataset size counts
    assert with_a != legacy_fingerprint([3, 7], 50) and legacy_fingerprint([3, 7], 50) not in with_a

    monkeypatch.setenv(KEY_ENV, KEY_B)
    with_b = req.fingerprint
    assert with_b.split(":")[1] != with_a.split(":")[1] and with_b.split(":")[2] != with_a.split(":")[2]

    key_file = tmp_path / "request.key"
    key_file.write_text(KEY_A + "\n")
    key_file.chmod(0o600)
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    assert req.fingerprint == with_a  # the same secret from a key file
    assert request_fingerprint([3, 7], 50, key=KEY_B) == with_b  # an explicit key wins


def test_without_a_key_a_private_key_file_is_generated_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    key_path = tmp_path / "cache" / "lightning_unlearn" / "request.key"
    with pytest.warns(UserWarning, match=r"No request key was set .*generated one in .*request\.key.* \(mode 0600\)"):
        first = resolve_request(_dataset(20), forget_indices=[1]).fingerprint
    assert key_path.is_file() and stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert len(key_path.read_text().strip()) == 64  # 32 random bytes, hex
    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        assert resolve_request(_dataset(20), forget_indices=[1]).fingerprint == first  # the same key ...
    assert not [w for w in later if "request key" in str(w.message)]  # ... and no new warning
    assert request_key() == key_path.read_bytes().strip()


def test_bad_keys_are_errors_that_name_their_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(ValueError, match=rf"environment variable {KEY_ENV} should be at least 16 bytes long .*got 5"):
        request_key()
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "missing.key"))
    with pytest.raises(FileNotFoundError, match=rf"`{KEY_FILE_ENV}` should name an existing key file, got '.*missing.key'"):
        request_key()
    readable = tmp_path / "readable.key"
    readable.write_text(KEY_A)
    readable.chmod(0o644)
    with pytest.warns(UserWarning, match=r"can be read by other users \(mode 0o644\); `chmod 600"):
        request_key(key_file=readable)
    with pytest.raises(ValueError, match=r"Give the request key as `key` or `key_file`, not both"):
        request_key(key=KEY_A, key_file=readable)


# ------------------------------------------------------------------------------------------ descriptions
def test_descriptions_hold_neither_the_seed_nor_the_indices():
    fraction = resolve_request(_dataset(200), forget_fraction=0.1, seed=48213)
    assert fraction.description == "random 10.0% of the training set"
    assert "48213" not in fraction.description and "seed" not in fraction.description
    indices = resolve_request(_dataset(2000), forget_indices=list(SECRET))
    assert indices.description == "3 indices" and not leaks_in_bytes(indices.description.encode(), SECRET)
    assert resolve_request(_dataset(20), forget_class=2).description == "class 2"  # a class is not a person's data


# ------------------------------------------------------------------------------------------ verification
def test_verify_request_accepts_the_right_request_and_rejects_a_wrong_one_or_key(key_a, tmp_path: Path):
    dm = ForgetRetainDataModule(_dataset(2000), forget_indices=list(SECRET))
    report = {"request": {"fingerprint": dm.request.fingerprint, "dataset_size": 2000}}
    request_file = tmp_path / "forget.txt"
    request_file.write_text("# ticket 4711\n1337\n1042, 1187\n")

    for request in (list(SECRET), [1337, 1042, 1187], request_file, dm.request):
        result = verify_request(report, request)
        assert result and result.matches and "matches: 3 indices over 2000 samples" in result.reason
    wrong = verify_request(report, [1042, 1187, 1336])
    assert not wrong and wrong.reason.startswith("does not match")
    assert not verify_request(report, [1042, 1187])
    other_key = verify_request(report, list(SECRET), key=KEY_B)
    assert not other_key and "fingerprinted with another key" in other_key.reason
    other_size = ForgetRetainDataModule(_dataset(1999), forget_indices=list(SECRET)).request
    assert "over 1999 samples, the report's over 2000" in verify_request(report, other_size).reason

    legacy = {"request": {"fingerprint": legacy_fingerprint(SECRET, 2000), "dataset_size": 2000}}
    assert verify_request(legacy, list(SECRET)).reason == "legacy unkeyed SHA-256 fingerprint matches"
    explicit = {"request": {"fingerprint": None, "dataset_size": None}}
    assert not verify_request(explicit, list(SECRET))


def test_verify_request_command(key_a, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from lightning_unlearn.cli import main

    dm = ForgetRetainDataModule(_dataset(2000), forget_indices=list(SECRET))
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.json").write_text(json.dumps({"request": {"fingerprint": dm.request.fingerprint, "dataset_size": 2000}}))
    (tmp_path / "right.json").write_text(json.dumps(list(SECRET)))
    np.save(tmp_path / "wrong.npy", np.asarray([1, 2, 3]))
    key_b = tmp_path / "b.key"
    key_b.write_text(KEY_B)
    key_b.chmod(0o600)
    runs = [(["--request", str(tmp_path / "right.json")], 0, "MATCH: matches"), (["--request", str(tmp_path / "wrong.npy")], 1, "NO MATCH: does not match")]
    runs.append((["--request", str(tmp_path / "right.json"), "--key-file", str(key_b)], 1, "NO MATCH: the report was fingerprinted with another key"))
    for args, code, printed in runs:
        with pytest.raises(SystemExit) as exit_info:
            main(["verify-request", "--report", str(tmp_path), *args])
        assert exit_info.value.code == code and capsys.readouterr().out.startswith(printed)
    with pytest.raises(SystemExit) as exit_info:
        main(["verify-request", "--report", str(tmp_path), "--request", str(tmp_path / "none.txt")])
    assert exit_info.value.code == 2
    assert "`request` should name an existing file of the request, got '" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ requests by reference
def test_requests_by_reference_read_text_json_and_npy(key_a, tmp_path: Path):
    inline = ForgetRetainDataModule(_dataset(2000), forget_indices=list(SECRET)).request
    (tmp_path / "r.txt").write_text("# deletion ticket 12\n1337 1042\n\n1187,  # last one\n")
    (tmp_path / "r.json").write_text("[1187, 1042, 1337]")
    np.save(tmp_path / "r.npy", np.asarray(SECRET, dtype=np.int32))
    for name in ("r.txt", "r.json", "r.npy"):
        dm = ForgetRetainDataModule(_dataset(2000), forget_indices_file=str(tmp_path / name))
        assert dm.request == inline and dm.request.fingerprint == inline.fingerprint

    ids = [f"user-{i}" for i in range(30)]
    (tmp_path / "ids.txt").write_text("user-4\n  user-17  \n# user-1\n")
    by_ids = ForgetRetainDataModule(_dataset(30), forget_ids_file=str(tmp_path / "ids.txt"), sample_ids=ids)
    assert by_ids.request.indices == (4, 17) and by_ids.request.kind == "forget_ids"


@pytest.mark.parametrize(
    ("content", "kwargs", "error", "message"),
    [
        (None, {"forget_indices": [1]}, ValueError, r"Give `forget_indices` or `forget_indices_file`, not both"),
        ("1 2 x3\n", {}, ValueError, r"`forget_indices_file` '.*req.txt' should hold integer indices; line 1 has 'x3'"),
        ("# nothing\n", {}, ValueError, r"`forget_indices_file` '.*req.txt' holds no indices; the request would be empty"),
        ("missing", {}, FileNotFoundError, r"`forget_indices_file` should name an existing file of the request, got '.*nope.txt'"),
    ],
)
def test_bad_request_files_are_errors_that_name_the_argument(tmp_path: Path, content, kwargs, error, message):
    path = tmp_path / ("nope.txt" if content == "missing" else "req.txt")
    if content not in (None, "missing"):
        path.write_text(content)
    elif content is None:
        path.write_text("1\n")
    with pytest.raises(error, match=message):
        ForgetRetainDataModule(_dataset(20), forget_indices_file=str(path), **kwargs)


def test_json_and_npy_request_files_must_be_lists(tmp_path: Path):
    (tmp_path / "r.json").write_text('{"indices": [1]}')
    with pytest.raises(ValueError, match=r"`forget_indices_file` '.*r.json' should hold a JSON list, got a dict"):
        read_request_file(tmp_path / "r.json")
    np.save(tmp_path / "r.npy", np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"should hold a 1-D array, got shape \(2, 2\)"):
        read_request_file(tmp_path / "r.npy")


# ------------------------------------------------------------------------------------------ redaction
def test_redact_config_replaces_indices_ids_and_the_seed_of_a_fraction(key_a):
    request = resolve_request(_dataset(2000), forget_indices=list(SECRET))
    config = {
        "seed_everything": 0,
        "data": {"init_args": {"forget_indices": list(SECRET), "retain_indices": None, "seed": 5, "forget_class": None}},
        "other": [{"forget_fraction": 0.1, "seed": 7}, {"forget_class": 3, "seed": 7}],
        "data.init_args.forget_ids": ["alice", "bob"],
        "data/retain_indices": [1, 2],
    }
    out = redact_config(config, request)
    marker = out["data"]["init_args"]["forget_indices"]
    assert re.fullmatch(r"<redacted: 3 indices, fingerprint hmac-sha256:[0-9a-f]{8}:[0-9a-f]{12}…>", marker)
    assert marker.split("fingerprint ")[1][:-2] in request.fingerprint
    assert out["data"]["init_args"]["seed"] == 5 and out["data"]["init_args"]["retain_indices"] is None
    assert out["other"] == [{"forget_fraction": 0.1, "seed": "<redacted: seed of forget_fraction>"}, {"forget_class": 3, "seed": 7}]
    assert out["data.init_args.forget_ids"].startswith("<redacted: 2 sample ids")
    assert out["data/retain_indices"] == "<redacted: 2 retain indices>"
    assert out["seed_everything"] == 0 and config["data"]["init_args"]["forget_indices"] == list(SECRET)  # a copy
    assert redact_config(out, request) == out  # idempotent


def test_checkpoints_hold_the_keyed_fingerprint_and_resume_only_with_its_key(key_a, monkeypatch: pytest.MonkeyPatch):
    dm = ForgetRetainDataModule(_dataset(2000), forget_indices=list(SECRET))
    state = dm.state_dict()
    assert state["fingerprint"] == dm.request.fingerprint and state["fingerprint"].startswith("hmac-sha256:")
    ForgetRetainDataModule(_dataset(2000), forget_indices=list(SECRET)).load_state_dict(state)
    with pytest.raises(ValueError, match="made for a different deletion request"):
        ForgetRetainDataModule(_dataset(2000), forget_indices=[1, 2]).load_state_dict(state)
    # A checkpoint of the unkeyed fingerprint (before issue 13) still resumes the same request, and only it.
    ForgetRetainDataModule(_dataset(2000), forget_indices=list(SECRET)).load_state_dict({"fingerprint": legacy_fingerprint(SECRET, 2000)})
    with pytest.raises(ValueError, match="made for a different deletion request"):
        dm.load_state_dict({"fingerprint": legacy_fingerprint([1, 2], 2000)})
    monkeypatch.setenv(KEY_ENV, KEY_B)
    with pytest.raises(ValueError, match=rf"fingerprinted with another request key \(key id [0-9a-f]{{8}}; .*set {KEY_ENV}"):
        ForgetRetainDataModule(_dataset(2000), forget_indices=list(SECRET)).load_state_dict(state)


class _SavingDataModule(ForgetRetainDataModule):
    """A user's datamodule that saves its hyperparameters (so they reach hparams.yaml and checkpoints)."""

    def __init__(self, forget_indices: list[int] | None = None, forget_fraction: float | None = None, seed: int = 0) -> None:
        n = 1400
        x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
        super().__init__(LabeledTensorDataset(x, torch.arange(n) % 2), _dataset(40), forget_indices=forget_indices,
                         forget_fraction=forget_fraction, seed=seed, batch_size=64)  # fmt: skip
        self.save_hyperparameters()


def test_saved_hyperparameters_of_a_datamodule_are_redacted(key_a, tmp_path: Path):
    """``save_hyperparameters`` of a ForgetRetainDataModule subclass: hparams, hparams.yaml and the checkpoint's
    ``datamodule_hyper_parameters`` hold a marker, not the indices (nor the seed of a fraction)."""
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from lightning_unlearn import SupervisedModule

    fraction = _SavingDataModule(forget_fraction=0.1, seed=31337)
    assert fraction.hparams["seed"] == "<redacted: seed of forget_fraction>" and fraction.hparams["forget_fraction"] == 0.1

    dm = _SavingDataModule(forget_indices=list(SECRET))
    dm.train_on = "all"
    assert dm.hparams["forget_indices"].startswith("<redacted: 3 indices, fingerprint hmac-sha256:")
    module = SupervisedModule(torch.nn.Linear(4, 2))
    trainer = pl.Trainer(
        default_root_dir=tmp_path, logger=CSVLogger(tmp_path, name="run"), max_epochs=1, limit_train_batches=1, limit_val_batches=0,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    checkpoint = torch.load(tmp_path / "model.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["datamodule_hyper_parameters"]["forget_indices"] == dm.hparams["forget_indices"]
    (hparams_yaml,) = tmp_path.glob("run/version_*/hparams.yaml")
    assert "<redacted: 3 indices" in hparams_yaml.read_text()
    found = [leak for path in sorted(tmp_path.rglob("*")) if path.is_file() for leak in leaks(path, SECRET)]
    assert found == []


# ------------------------------------------------------------------------------------------ a real CLI run
_TRAINER = {
    "accelerator": "cpu",
    "max_epochs": 1,
    "limit_train_batches": 2,
    "num_sanity_val_steps": 0,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "log_every_n_steps": 1,
}
_NETWORK = {"class_path": "lightning_unlearn.models.SmallCNN", "init_args": {"image_size": 8, "width": 8, "hidden": 16}}


def _loggers(name: str) -> list[dict[str, Any]]:
    return [
        {"class_path": "lightning_unlearn.tracking.UnlearnWandbLogger",
         "init_args": {"project": "privacy", "name": name, "save_dir": f"outputs/{name}", "mode": "offline"}},
        {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "outputs", "name": name}},
    ]  # fmt: skip


def _run_cli(*args: str, cwd: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1",
           "WANDB_DIR": str(cwd / "wandb_dir"), KEY_ENV: KEY_A}  # fmt: skip
    env.pop(KEY_FILE_ENV, None)
    env.pop("WANDB_API_KEY", None)
    cmd = [sys.executable, "-m", "lightning_unlearn.cli", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.mark.slow
def test_no_artifact_of_a_cli_run_holds_the_forgotten_indices(key_a, tmp_path: Path):
    """Two real `lightning-unlearn fit` runs with W&B offline, CSV logs, checkpoints, weights and the report: the
    original trained with the request by reference (``forget_indices_file``), then GA unlearning with the indices
    inline in the user's config. No file either run wrote holds the indices; the report verifies against the
    request file with the key, and not with another key."""
    pytest.importorskip("wandb")
    request_file = tmp_path / "request.txt"
    request_file.write_text("\n".join(map(str, SECRET)) + "\n")
    original = {
        "seed_everything": 0,
        "trainer": {**_TRAINER, "default_root_dir": "outputs/original", "logger": _loggers("original"),
                    "callbacks": [{"class_path": "lightning_unlearn.SaveWeights", "init_args": {"path": "artifacts/original.pt"}},
                                  {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": "outputs/original/checkpoints", "save_last": True}}]},
        "model": {"class_path": "lightning_unlearn.SupervisedModule", "init_args": {"model": _NETWORK}},
        "data": {"class_path": "lightning_unlearn.DigitsDataModule",
                 "init_args": {"forget_indices_file": "request.txt", "train_on": "all", "batch_size": 64}},
    }  # fmt: skip
    unlearn = {
        "seed_everything": 0,
        "trainer": {**_TRAINER, "default_root_dir": "outputs/ga", "logger": _loggers("ga"),
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": "outputs/ga/checkpoints", "save_last": True}},
                                  {"class_path": "lightning_unlearn.SaveWeights", "init_args": {"path": "artifacts/ga.pt"}},
                                  {"class_path": "lightning_unlearn.UnlearningReport", "init_args": {"dirpath": "outputs/ga/report"}}]},
        "model": {"class_path": "lightning_unlearn.UnlearningModule",
                  "init_args": {"model": _NETWORK, "method": {"class_path": "lightning_unlearn.methods.GradientAscent"},
                                "original": "artifacts/original.pt", "monitor": False}},
        "data": {"class_path": "lightning_unlearn.DigitsDataModule",
                 "init_args": {"forget_indices": list(SECRET), "train_on": "forget_retain", "batch_size": 32, "max_eval_samples": 200}},
    }  # fmt: skip
    (tmp_path / "original.yaml").write_text(yaml.safe_dump(original, sort_keys=False))
    (tmp_path / "unlearn.yaml").write_text(yaml.safe_dump(unlearn, sort_keys=False))
    _run_cli("fit", "--config", "original.yaml", cwd=tmp_path)
    _run_cli("fit", "--config", "unlearn.yaml", cwd=tmp_path)

    # The user's own files hold the request (so the search would find it anywhere it leaked) ...
    users = {tmp_path / "unlearn.yaml", request_file}
    assert all(leaks(path, SECRET) for path in users)
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink() and p not in users)
    kinds = {p.name for p in written}
    assert {"config.yaml", "hparams.yaml", "last.ckpt", "report.json", "report.html", "original.pt", "ga.pt"} <= kinds, kinds
    assert any(p.suffix == ".wandb" for p in written) and any(p.parent.name == "files" for p in written)
    # ... and nothing the runs wrote does.
    found = [leak for path in written for leak in leaks(path, SECRET)]
    assert found == [], "the forgotten indices leaked into:\n" + "\n".join(found)

    config_by_reference = (tmp_path / "outputs/original/config.yaml").read_text()
    assert "forget_indices_file: request.txt" in config_by_reference and "redacted" not in config_by_reference
    config_inline = yaml.safe_load((tmp_path / "outputs/ga/config.yaml").read_text())
    marker = config_inline["data"]["init_args"]["forget_indices"]
    assert marker.startswith("<redacted: 3 indices, fingerprint hmac-sha256:"), marker

    report = json.loads((tmp_path / "outputs/ga/report/report.json").read_text())
    assert report["request"]["description"] == "3 indices" and report["request"]["fingerprint"].startswith("hmac-sha256:")
    from test_tracking import wandb_records

    (run_file,) = sorted((tmp_path / "outputs/ga").glob("wandb/offline-run-*/run-*.wandb"))
    logged = wandb_records(run_file)["config"]
    assert logged["data"]["init_args"]["forget_indices"] == marker
    assert logged["request/fingerprint"] == report["request"]["fingerprint"]
    assert marker.split("fingerprint ")[1][:-2] in logged["request/fingerprint"]
    assert verify_request(tmp_path / "outputs/ga/report", request_file)
    assert not verify_request(tmp_path / "outputs/ga/report", request_file, key=KEY_B)
    from lightning_unlearn.report import ReportValidationError, validate_report

    validate_report(report)
    unkeyed = {**report, "request": {**report["request"], "fingerprint": legacy_fingerprint(SECRET, 1347)}}
    with pytest.raises(ReportValidationError):
        validate_report(unkeyed)  # a new report may not carry an unkeyed hash
    validate_report({**unkeyed, "schema_version": "1.0"})  # a report written before issue 13 still validates
