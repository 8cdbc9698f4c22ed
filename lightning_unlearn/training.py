"""Plain supervised training of the *original* model and of the retrained *oracle*.

Benchmarks train both with the same recipe, the oracle on the retain split only
(``ForgetRetainDataModule(train_on="retain")``), the original on everything (``train_on="all"``).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from typing_extensions import override

from lightning_unlearn._weights import check_not_protected, network_of, save_weights
from lightning_unlearn.tasks.base import Task
from lightning_unlearn.tasks.classification import ClassificationTask


class SupervisedModule(pl.LightningModule):
    """Train ``model`` on plain batches with the task's loss (no unlearning).

    Args:
        model: The network.
        task: What the model is (default: classification).
        optimizer: Optimizer factory (default ``torch.optim.Adam``).
    """

    def __init__(self, model: nn.Module, task: Task | None = None, optimizer: OptimizerCallable = torch.optim.Adam) -> None:
        super().__init__()
        self.model = model
        self.task = task if task is not None else ClassificationTask()
        self.optimizer_factory = optimizer

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.task.per_sample_loss(self.task.forward(self.model, batch), batch).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=self.task.batch_size(batch))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.model.parameters())


class SaveWeights(Callback):
    """Write the trained network's ``state_dict`` (``pl_module.model``) to ``path`` when fit ends.

    Refuses, already when fit starts, to overwrite the file the module loaded as its ``original`` model.

    Args:
        path: Output ``.pt`` file (parent folders are created).
    """

    def __init__(self, path: str) -> None:
        self.path = path

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":  # fail before training, not after it
            check_not_protected(self.path, (getattr(pl_module, "original", None),))

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            save_weights(network_of(pl_module), self.path, protected=(getattr(pl_module, "original", None),))
