"""``UnlearningEvaluation``: measure forgetting on a user's own module at the end of fit."""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from typing_extensions import override

from lightning_unlearn._errors import check_choice
from lightning_unlearn.datamodules.forget_retain import EVAL_SPLITS
from lightning_unlearn.engine.precision import precision_plugin
from lightning_unlearn.evaluation import UnlearningEvaluator, with_gap
from lightning_unlearn.metrics import MIAAttack
from lightning_unlearn.tasks.base import Task, evaluating
from lightning_unlearn.tasks.classification import ClassificationTask

When = Literal["fit_end", "train_epoch_end"]
_WHEN = {"fit_end": "once, when fit ends", "train_epoch_end": "after every training epoch"}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loaders: dict[str, DataLoader],
    task: Task | None = None,
    oracle: dict[str, float] | None = None,
    mia_attack: MIAAttack = "logistic",
    device: torch.device | str | None = None,
    progress_bar: bool = False,
    precision: Any = None,
) -> dict[str, float]:
    """The unlearning metrics of ``model`` on named loaders (``forget``, ``retain``, ``test``, ``holdout``).

    Returns ``forget_acc``, ``UA``, ``RA``, ``TA``, ``MIA``, ``mia_auc`` (those the splits allow),
    plus ``avg_gap`` when the ``oracle``'s metrics are given. ``progress_bar`` shows one bar over
    all evaluation batches.

    It runs in this process only, on the whole loaders, without any collective call: under DDP it may be called on
    every rank (each gets the same numbers) or on one rank alone (e.g. ``if trainer.is_global_zero:``) after the fit.

    ``precision``: a Lightning precision plugin whose ``convert_input`` converts the batches and whose
    ``forward_context()`` wraps the forwards (e.g. ``trainer.precision_plugin`` for a ``"bf16-true"`` model);
    default: the plugin of the Trainer ``model`` is attached to, if any.
    """
    evaluator = run_evaluation(model, loaders, task, mia_attack, device, progress_bar, precision)
    return with_gap(evaluator.compute(), oracle)


@torch.no_grad()
def run_evaluation(
    model: nn.Module,
    loaders: dict[str, DataLoader],
    task: Task | None = None,
    mia_attack: MIAAttack = "logistic",
    device: torch.device | str | None = None,
    progress_bar: bool = False,
    precision: Any = None,
) -> UnlearningEvaluator:
    """One pass of ``model`` over the named loaders; returns the filled :class:`UnlearningEvaluator` (its
    ``compute()`` gives :func:`evaluate`'s metrics without ``avg_gap``, ``membership_losses()`` the losses
    behind ``mia_auc``); ``precision`` as in :func:`evaluate`."""
    unknown = sorted(set(loaders) - set(EVAL_SPLITS))
    if unknown:
        raise ValueError(f"`loaders` keys should be among {list(EVAL_SPLITS)}, got {unknown}.")
    task = task or ClassificationTask()
    device = device or next(model.parameters()).device
    # Every process scores the whole loaders itself: no reduction over DDP ranks (the numbers are exact in every
    # process, and a call on rank 0 alone after a DDP fit does not wait for the other ranks).
    evaluator = UnlearningEvaluator(task, mia_attack=mia_attack, distributed=False).to(device)
    evaluator.expect(list(loaders))
    precision = precision if precision is not None else precision_plugin(model)
    context = precision.forward_context if precision is not None else contextlib.nullcontext
    total = sum(len(loader) for loader in loaders.values() if hasattr(loader, "__len__"))
    with evaluating(model), tqdm(total=total, desc="evaluating", disable=not progress_bar, leave=False) as bar:
        for split in EVAL_SPLITS:
            if split in loaders:
                for batch in loaders[split]:
                    batch = move_data_to_device(batch, device)
                    if precision is not None:
                        batch = precision.convert_input(batch)
                    with context():
                        outputs = task.forward(model, batch)
                    evaluator.update(split, outputs, batch)
                    bar.update(1)
    return evaluator


class UnlearningEvaluation(Callback):
    """Evaluate the module being trained on forget / retain / test / holdout data and log the metrics.

    Args:
        forget: Forget data.
        retain: Retain data.
        test: Test data (non-members for MIA-efficacy).
        holdout: Extra non-member data for the loss-threshold MIA AUC (default: ``test``).
        task: What the model is (default: classification).
        oracle_metrics: The oracle's metrics, to log ``avg_gap``.
        when: ``"fit_end"`` or ``"train_epoch_end"``.
        batch_size: Evaluation batch size for datasets.
        mia_attack: ``"logistic"`` or ``"svc"``.
    """

    def __init__(
        self,
        forget: Dataset | DataLoader,
        retain: Dataset | DataLoader | None = None,
        test: Dataset | DataLoader | None = None,
        holdout: Dataset | DataLoader | None = None,
        task: Task | None = None,
        oracle_metrics: dict[str, float] | None = None,
        when: When = "fit_end",
        batch_size: int = 512,
        mia_attack: MIAAttack = "logistic",
    ) -> None:
        check_choice("when", when, _WHEN)
        given = {"forget": forget, "retain": retain, "test": test, "holdout": holdout}
        self.loaders = {
            k: v if isinstance(v, DataLoader) else DataLoader(v, batch_size=batch_size) for k, v in given.items() if v is not None
        }
        self.task = task
        self.oracle_metrics = oracle_metrics
        self.when = when
        self.mia_attack = mia_attack
        self.metrics: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []

    def _run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.metrics = evaluate(pl_module, self.loaders, self.task, self.oracle_metrics, self.mia_attack, pl_module.device)
        self.history.append({"epoch": trainer.current_epoch, **self.metrics})
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics({f"unlearn_eval/{k}": v for k, v in self.metrics.items()}, step=trainer.global_step)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.when == "train_epoch_end":
            self._run(trainer, pl_module)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.when == "fit_end":
            self._run(trainer, pl_module)
