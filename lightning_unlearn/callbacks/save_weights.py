"""Callbacks that write the trained network's weights when fit ends: :class:`SaveWeights`, and
:class:`SaveMergedWeights` for LoRA runs."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from lightning_unlearn._weights import check_not_protected, holds_weights_of, network_of, save_weights
from lightning_unlearn.peft import merged_model


class SaveWeights(Callback):
    """Write the trained network's ``state_dict`` (``pl_module.model``) to ``path`` when fit ends.

    Refuses, already when fit starts, to write over the model the fit starts from:

    * always, the files an :class:`~lightning_unlearn.UnlearningModule` loaded as its ``original`` or ``oracle``;
    * unless ``overwrite=True``, an existing file that holds exactly the network's weights as the fit starts (the
      module was loaded from it, e.g. with ``model.load_state_dict(torch.load(path))``; reading it stops at the
      first tensor that differs), or an existing file that is not a weights file at all.

    A file that holds other weights (the output of an earlier run, or of an earlier fit with this callback) is
    replaced. Not detectable: a file the module was loaded from whose weights were changed before the fit.

    Args:
        path: Output ``.pt`` file (parent folders are created).
        overwrite: Replace ``path`` even when it holds the weights the fit starts from or is not a weights file (the
            ``original``/``oracle`` files of an ``UnlearningModule`` are never replaced).
    """

    def __init__(self, path: str, overwrite: bool = False) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"`path` should be a file path (str or os.PathLike), got {type(path).__name__} {path!r}.")
        if not isinstance(overwrite, bool):
            raise TypeError(f"`overwrite` should be a bool, got {type(overwrite).__name__} {overwrite!r}.")
        self.path = path
        self.overwrite = overwrite
        self._written: tuple[int, int] | None = None  # (mtime_ns, size) of the file this callback wrote last
        self._before: tuple[int, int] | None = None  # ... of the file at `path` when the fit started

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":  # fail before training, not after it
            check_not_protected(self.path, (getattr(pl_module, "original", None),))
            self._check_target(pl_module)

    def _check_target(self, pl_module: pl.LightningModule) -> None:
        """Refuse a ``path`` that is the oracle, a folder, or (unless ``overwrite``) the weights the fit starts from
        or not a weights file."""
        path = Path(self.path)
        self._before = _stamp(path) if path.is_file() else None
        oracle = getattr(pl_module, "oracle_path", None)
        if oracle is not None and path.resolve() == Path(oracle).resolve():
            raise ValueError(
                f"Refusing to overwrite the oracle model at {str(path)!r} (the module's `oracle=`); choose another output path."
            )
        if path.is_dir():
            raise ValueError(
                f"`path` {str(path)!r} of {type(self).__name__} is a folder; give a file path such as {str(path / 'model.pt')!r}."
            )
        if self.overwrite or not path.is_file() or self._written == _stamp(path):
            return
        way_out = f"choose another output path, or pass `{type(self).__name__}({str(path)!r}, overwrite=True)` to replace it."
        try:
            same = holds_weights_of(path, network_of(pl_module))
        except ValueError as err:  # an existing file that is not (readable) weights
            raise ValueError(
                f"{type(self).__name__} refuses to overwrite {str(path)!r}: {err} To write there anyway, {way_out}"
            ) from None
        if same:
            raise ValueError(
                f"{type(self).__name__} refuses to overwrite {str(path)!r}: it holds exactly the weights this fit starts "
                "from (the module was loaded from it), so saving would replace the model you started from. To keep it, " + way_out
            )

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        path = Path(self.path)
        if stage == "fit" and path.is_file() and _stamp(path) != self._before:  # written by this fit: a later fit
            self._written = _stamp(path)  # of this callback may replace it

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
        overwrite: As in :class:`SaveWeights`.
    """

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            model = merged_model(network_of(pl_module))
            save_weights(model, self.path, protected=(getattr(pl_module, "original", None),))


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
