"""The report tests' toy problem (blobs and MLP from ``tests/toys.py``): original and oracle weight files, one report run."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import toys
from torch.utils.data import TensorDataset
from toys import FORGET_CLASS, blobs, fit_plain, mlp

from lightning_unlearn import ForgetRetainDataModule, UnlearningModule
from lightning_unlearn.methods import GradDiff
from lightning_unlearn.report import UnlearningReport


def make_trainer(**kwargs: Any) -> pl.Trainer:
    """The tests' quiet CPU Trainer, without validation batches."""
    return toys.make_trainer(**{"limit_val_batches": 0, **kwargs})


def make_datamodule(data: dict[str, TensorDataset], **request: Any) -> ForgetRetainDataModule:
    request = request or {"forget_class": FORGET_CLASS}
    return ForgetRetainDataModule(data["train"], data["test"], holdout_fraction=0.5, batch_size=32, **request)


@pytest.fixture(scope="session")
def data() -> dict[str, TensorDataset]:
    return {"train": blobs(100, seed=1), "test": blobs(50, seed=2)}


@pytest.fixture(scope="session")
def weights(data: dict[str, TensorDataset], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``original.pt`` (trained on everything) and ``oracle.pt`` (trained on the retain classes only)."""
    folder = tmp_path_factory.mktemp("weights")
    x, y = data["train"].tensors
    keep = y != FORGET_CLASS
    paths = {"original": folder / "original.pt", "oracle": folder / "oracle.pt"}
    torch.save(fit_plain(mlp(0), x, y).state_dict(), paths["original"])
    torch.save(fit_plain(mlp(1), x[keep], y[keep]).state_dict(), paths["oracle"])
    return paths


def unlearn(
    data,
    weights,
    dirpath: Path,
    callback: UnlearningReport | None = None,
    callbacks_extra: list | None = None,
    ckpt_path: str | None = None,
    **trainer_kwargs: Any,
) -> dict[str, Any]:
    """Unlearn the forget class with GradDiff and write a report to ``dirpath``."""
    dm = make_datamodule(data)
    module = UnlearningModule(
        mlp(),
        GradDiff(retain_weight=2.0),
        original=str(weights["original"]),
        oracle=str(weights["oracle"]),
        optimizer=functools.partial(torch.optim.Adam, lr=3e-3),
    )
    callback = callback or UnlearningReport(dirpath=dirpath)
    trainer_kwargs.setdefault("max_epochs", 3)
    extra = callbacks_extra or []
    trainer = make_trainer(callbacks=[callback, *extra], enable_checkpointing=bool(extra), **trainer_kwargs)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return {"dir": Path(dirpath), "callback": callback, "module": module, "datamodule": dm, "trainer": trainer}


@pytest.fixture(scope="session")
def run(data, weights, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One unlearning run with a report; tests read it and must not modify its folder (copy it first)."""
    result = unlearn(data, weights, tmp_path_factory.mktemp("run"))
    result["json"] = json.loads((result["dir"] / "report.json").read_text())
    return result
