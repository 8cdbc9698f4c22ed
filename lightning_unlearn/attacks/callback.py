"""``RobustnessAttacks``: attack the unlearned model when fit ends, log the recovery, add it to the report."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from typing_extensions import override

from lightning_unlearn._errors import check_fraction, check_int
from lightning_unlearn._interfaces import WeightFiles, weight_file
from lightning_unlearn._json import json_safe
from lightning_unlearn._weights import copy_with_weights, network_of
from lightning_unlearn.attacks.quantization import QuantizationAttack
from lightning_unlearn.attacks.relearning import RelearningAttack
from lightning_unlearn.attacks.suite import attack_name, default_attacks, flat_result, run_attacks

_DESCRIPTIONS = {
    QuantizationAttack: "weights rounded to {name} and back; forget metrics re-measured on the held-out forget part",
    RelearningAttack: "{name}: fine-tuned on part of the forget set, then re-measured on the held-out part",
}


class RobustnessAttacks(Callback):
    """Attack the unlearned model when ``fit`` ends: quantization and relearning, on it and on the oracle.

    Runs :func:`~lightning_unlearn.attacks.suite.run_attacks` on the module's network (``pl_module.model``
    when it exists) with the datamodule's forget set (split into the relearning attacker's part and a
    held-out part), its retain and test evaluation loaders, the original model (``UnlearningModule(original=...)``)
    and the oracle (``UnlearningModule(oracle=...)``). Every attack works on a copy; the unlearned weights are
    not touched. Results are logged to the trainer's loggers as ``attack/<name>/<metric>``, added to an
    :class:`~lightning_unlearn.UnlearningReport` in the same Trainer (its "Further attacks" section), kept in
    :attr:`results` and, with ``dirpath``, written to ``<dirpath>/attacks.json``. Only global rank 0 attacks
    (the copies are evaluated on that process alone).

    Place it *after* ``UnlearningReport`` in ``callbacks`` so that the report exists when the results are added.

    An ``UnlearningModule`` without an ``original`` path unlearns the network it was given (e.g. a pretrained
    model as released): the callback then copies that network (to CPU) when fit is set up, before any step or
    checkpoint restore, and uses the copy as the original.

    Args:
        attacks: Default: int8 per-channel and int4 (groups of 128) quantization and 10 relearning steps.
        relearn_fraction: Fraction of the forget set given to the relearning attacker.
        batch_size: Batch size of the loaders built for the held-out forget part and for relearning.
        dirpath: Folder for ``attacks.json`` (none written when ``None``).
        seed: Seed of the forget split.
    """

    def __init__(
        self,
        attacks: list[QuantizationAttack | RelearningAttack] | None = None,
        relearn_fraction: float = 0.5,
        batch_size: int = 64,
        dirpath: str | None = None,
        seed: int = 0,
    ) -> None:
        check_fraction("relearn_fraction", relearn_fraction, inclusive_high=False)
        check_int("batch_size", batch_size)
        self.attacks = default_attacks() if attacks is None else list(attacks)
        for attack in self.attacks:
            if not isinstance(attack, (QuantizationAttack, RelearningAttack)):
                raise TypeError(f"`attacks` should hold QuantizationAttack or RelearningAttack objects, got {type(attack).__name__}.")
        self.relearn_fraction = relearn_fraction
        self.batch_size = batch_size
        self.dirpath = dirpath
        self.seed = seed
        self.results: dict[str, Any] | None = None
        self._original: Any = None

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # setup runs before Lightning restores a checkpoint, so this is the network before any unlearning
        if stage == "fit" and isinstance(pl_module, WeightFiles) and weight_file(pl_module, "original") is None:
            self._original = copy.deepcopy(network_of(pl_module)).cpu()

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from lightning_unlearn.report.callback import UnlearningReport

        if getattr(trainer.datamodule, "forget_set", None) is None:
            rank_zero_warn("RobustnessAttacks needs a datamodule with a `forget_set` (a ForgetRetainDataModule); skipped.")
            return
        self.results = attack_module(
            pl_module,
            trainer.datamodule,
            self.attacks,
            relearn_fraction=self.relearn_fraction,
            batch_size=self.batch_size,
            seed=self.seed,
            original=self._original,
        )
        self._original = None
        report = next((cb for cb in trainer.callbacks if isinstance(cb, UnlearningReport)), None)
        for attack in self.attacks:
            name = attack_name(attack)
            flat = flat_result(self.results, name)
            for logger in trainer.loggers:
                logger.log_metrics({f"attack/{name}/{k}": v for k, v in flat.items() if math.isfinite(v)}, step=trainer.global_step)
            if report is not None:
                report.add_attack(name, flat, _DESCRIPTIONS[type(attack)].format(name=name))
            coverage = f" (quantized {flat['coverage']:.1%} of the weight matrices)" if "coverage" in flat else ""
            rank_zero_info(
                f"RobustnessAttacks: {name}{coverage} recovers {flat.get('recovery_acc', math.nan):.1%} of the forgotten accuracy."
            )
        if self.dirpath is not None:
            write_results(self.results, Path(self.dirpath) / "attacks.json")


def attack_module(
    pl_module: pl.LightningModule,
    datamodule: Any,
    attacks: list[QuantizationAttack | RelearningAttack] | None = None,
    *,
    relearn_fraction: float = 0.5,
    batch_size: int = 64,
    seed: int = 0,
    original: Any = None,
) -> dict[str, Any]:
    """:func:`~lightning_unlearn.attacks.suite.run_attacks` on a LightningModule and its forget/retain datamodule:
    the network is ``pl_module.model`` (or the module), the original and oracle come from the module's
    ``original`` / ``oracle_path`` files (:class:`~lightning_unlearn._interfaces.WeightFiles`, e.g.
    ``UnlearningModule``), the forget set, retain and test loaders from the datamodule. ``original`` (a network)
    stands in when the module has no ``original`` path: the network as it was before unlearning."""
    network = network_of(pl_module)
    device = next(network.parameters()).device
    oracle = None
    original = original.to(device) if original is not None else None
    original_path, oracle_path = weight_file(pl_module, "original"), weight_file(pl_module, "oracle_path")
    if original_path is not None:
        original = copy_with_weights(network, original_path, "original").to(device)
    if oracle_path is not None:
        oracle = copy_with_weights(network, oracle_path, "oracle").to(device)
    if original is None:
        rank_zero_warn("No original model (UnlearningModule(original=...) or `original`), so no recovery is computed; raw metrics only.")
    loaders = datamodule.eval_dataloaders()
    return run_attacks(
        network,
        getattr(pl_module, "task", None),
        datamodule.forget_set,
        retain=loaders.get("retain"),
        test=loaders.get("test"),
        original=original,
        oracle=oracle,
        attacks=attacks,
        relearn_fraction=relearn_fraction,
        batch_size=batch_size,
        collate_like=loaders.get("forget"),
        seed=seed,
    )


def write_results(results: dict[str, Any], path: Path) -> Path:
    """Write :func:`attack_module`'s results as strict JSON (NaN -> null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(results), indent=2))
    return path
