"""``UnlearningReport`` under two-process CPU DDP (``ddp_spawn``, gloo): every rank evaluates, rank 0 alone writes."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from toys import ddp_trainer, mlp

from lightning_unlearn import UnlearningModule
from lightning_unlearn.methods import GradDiff
from lightning_unlearn.report import UnlearningReport, model_hash, validate_report

from .conftest import make_datamodule


class RankReport(UnlearningReport):
    """Notes, per rank, whether this process holds the written report (module level, so it pickles)."""

    def __init__(self, folder: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.folder = folder

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_fit_end(trainer, pl_module)
        record = {"wrote": self.report is not None, "hash": model_hash(pl_module.model)}
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


@pytest.mark.slow
def test_report_under_ddp_spawn(data, weights, tmp_path):
    module = UnlearningModule(
        mlp(),
        GradDiff(),
        original=str(weights["original"]),
        oracle=str(weights["oracle"]),
        optimizer=functools.partial(torch.optim.Adam, lr=3e-3),
    )
    trainer = ddp_trainer(max_epochs=2, limit_val_batches=0, callbacks=[RankReport(tmp_path, dirpath=tmp_path / "report")])
    trainer.fit(module, datamodule=make_datamodule(data))

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["wrote"] for r in ranks] == [True, False]
    report = validate_report(json.loads((tmp_path / "report" / "report.json").read_text()))
    assert (tmp_path / "report" / "report.html").is_file()
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["report.html", "report.json"]
    assert report["training"]["world_size"] == 2 and report["training"]["strategy"] == "DDPStrategy"
    assert report["model"]["hash_after"] == ranks[0]["hash"] == ranks[1]["hash"] != report["model"]["hash_before"]
    assert set(report["mia_roc"]["curves"]) == {"unlearned", "original", "oracle"}
    assert report["metrics"]["original"]["forget_acc"] > 95
