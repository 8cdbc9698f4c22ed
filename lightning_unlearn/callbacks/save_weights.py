"""Callbacks that write the trained network's weights when fit ends: :class:`SaveWeights`, and
:class:`SaveMergedWeights` for LoRA runs."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from lightning_unlearn._weights import check_not_protected, network_of, save_weights
from lightning_unlearn.peft import merged_model


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


class SaveMergedWeights(SaveWeights):
    """:class:`SaveWeights` for LoRA runs: writes the plain network with the adapter merged
    (:func:`~lightning_unlearn.peft.merged_model`).

    The file holds the original architecture's ``state_dict`` (no peft key names), so it loads
    without ``peft`` (e.g. as ``original`` of another run). For a model without adapters it writes
    what :class:`SaveWeights` writes.

    Args:
        path: Output ``.pt`` file (parent folders are created).
    """

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            model = merged_model(network_of(pl_module))
            save_weights(model, self.path, protected=(getattr(pl_module, "original", None),))
