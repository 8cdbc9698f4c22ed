"""The toy problem of the callback tests: four Gaussian blobs, a tiny MLP and a user's own classifier.

The user's classifier (:class:`UserClassifier`) stands for an existing LightningModule that knows
nothing about unlearning; class 0 is the forget set.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

NUM_CLASSES = 4
DIM = 8
FORGET_CLASS = 0


def blobs(n_per_class: int, seed: int) -> TensorDataset:
    """Four well-separated Gaussian blobs in 8-D (the centres are fixed, ``seed`` draws the noise)."""
    centers = torch.randn(NUM_CLASSES, DIM, generator=torch.Generator().manual_seed(1234)) * 3
    targets = torch.arange(NUM_CLASSES).repeat_interleave(n_per_class)
    inputs = centers[targets] + torch.randn(len(targets), DIM, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(inputs, targets)


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(DIM, 32), nn.ReLU(), nn.Linear(32, NUM_CLASSES))


class UserClassifier(pl.LightningModule):
    """A user's existing classifier: its own ``forward``, ``training_step`` and ``configure_optimizers``."""

    def __init__(self, lr: float = 1e-2, dict_output: bool = False) -> None:
        super().__init__()
        self.net = mlp()
        self.lr = lr
        self.dict_output = dict_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("user_loss", loss)
        return {"loss": loss, "n": len(y)} if self.dict_output else loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


@torch.no_grad()
def accuracy(model: nn.Module, data: Dataset) -> float:
    x, y = next(iter(DataLoader(data, batch_size=len(data))))  # type: ignore[arg-type]
    was_training = model.training
    model.eval()
    acc = (model(x).argmax(-1) == y).float().mean().item() * 100
    model.train(was_training)
    return acc




def make_trainer(**kwargs: Any) -> pl.Trainer:
    options: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    options.update(kwargs)
    # Checkpointing only where the test passes its own ModelCheckpoint (never a default one in the cwd).
    options["enable_checkpointing"] = any(isinstance(c, ModelCheckpoint) for c in options.get("callbacks") or [])
    return pl.Trainer(**options)
