"""The callback tests' own piece of the toy problem (the blobs, MLP and Trainer are in ``tests/toys.py``).

The user's classifier (:class:`UserClassifier`) stands for an existing LightningModule that knows
nothing about unlearning; class 0 is the forget set.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from toys import mlp


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
