"""Plain supervised training of the *original* model and of the retrained *oracle*.

Benchmarks train both with the same recipe, the oracle on the retain split only
(``ForgetRetainDataModule(train_on="retain")``), the original on everything (``train_on="all"``).
:class:`~lightning_unlearn.callbacks.SaveWeights` (importable from here too) writes the trained weights.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from lightning_unlearn.callbacks.save_weights import SaveWeights  # re-exported: it lived here before callbacks/
from lightning_unlearn.tasks.base import Task
from lightning_unlearn.tasks.classification import ClassificationTask

__all__ = ["SaveWeights", "SupervisedModule"]


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
