"""The Trainer's precision for what Lightning does not convert itself.

``Trainer(precision=...)`` converts the LightningModule's parameters (``"bf16-true"``, ``"16-true"``,
``"64-true"``: ``precision_plugin.convert_module`` when the strategy is set up) and the batches of the Trainer's
own loaders (``precision_plugin.convert_input``), and runs the training, validation and test steps inside
``precision_plugin.forward_context()`` (autocast for ``"bf16-mixed"`` / ``"16-mixed"``). Three things the
package brings into a fit go around that path:

* the ``Unlearn`` callback's own forget and retain batches (the interleaved schedule's forget term and the
  phases' batches): :func:`to_module` moves them to the module's device and converts them;
* a method's frozen modules, above all the reference θ₀ (NPO, SCRUB, a KL retain term), which the method builds
  in ``setup`` from the still float32 model, *before* the strategy converts the module; and the method's own
  modules in a user's module (which are not submodules of it), and ``UnlearningModule``'s oracle:
  :func:`follow_precision` / :func:`convert_module` convert them with the same plugin;
* the :class:`~lightning_unlearn.engine.ForgetMonitor`'s scoring passes, outside any step: it is handed the
  plugin (:func:`follow_precision`) and converts its batches and runs its forwards in ``forward_context()``.

Everything goes through the plugin, never a hand-picked dtype, so every precision Lightning has (and a custom
plugin) applies to all of it as it applies to the module.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import nn

from lightning_unlearn.methods.base import UnlearningMethod


def precision_plugin(pl_module: nn.Module) -> Any:
    """The precision plugin of the Trainer ``pl_module`` is attached to; ``None`` outside a Trainer."""
    trainer = getattr(pl_module, "_trainer", None)
    return getattr(trainer, "precision_plugin", None)


def to_module(batch: Any, pl_module: pl.LightningModule) -> Any:
    """``batch`` on ``pl_module``'s device and in its Trainer's input precision (``precision_plugin.convert_input``),
    as the Trainer prepares the batches of its own loaders."""
    batch = move_data_to_device(batch, pl_module.device)
    plugin = precision_plugin(pl_module)
    return batch if plugin is None else plugin.convert_input(batch)


def convert_module(trainer: pl.Trainer, module: nn.Module) -> nn.Module:
    """``module`` converted by ``trainer``'s precision plugin, as the strategy converts the LightningModule
    (a no-op for ``"32-true"`` and the mixed precisions, whose weights stay float32)."""
    return trainer.precision_plugin.convert_module(module)


def follow_precision(trainer: pl.Trainer, method: UnlearningMethod, monitor: Any = None) -> None:
    """Make the method's modules (its reference, masks' frozen modules, its own trainable modules) follow the
    module's precision, and hand the precision plugin to ``monitor``. Call it once the strategy converted the
    module (``on_fit_start``): ``method.setup`` runs before, on the float32 module."""
    for module in method.declared_modules().values():
        convert_module(trainer, module)
    if monitor is not None:
        monitor.precision = trainer.precision_plugin
