"""The classifier unlearning evaluation: accuracy on every split, membership inference and the gap to the oracle.

:class:`UnlearningEvaluator` is an ``nn.Module`` of torchmetrics states, so it follows the model's
device and reduces across DDP ranks. Both entry points (``UnlearningModule`` and the
``UnlearningEvaluation`` callback) feed it batches from the named evaluation loaders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from lightning_unlearn.metrics import LossMIAAUC, MIAAttack, MIAEfficacy, avg_gap
from lightning_unlearn.tasks.base import Task

#: Split name -> the B1 metric name of its accuracy (UA is derived from the forget accuracy).
_ACC_KEYS = {"forget": "forget_acc", "retain": "RA", "test": "TA", "holdout": "holdout_acc"}


class UnlearningEvaluator(nn.Module):
    """Accumulates per-split predictions and computes the B1 metrics.

    Metrics (percent unless noted): ``forget_acc``; ``UA`` = 100 − forget accuracy; ``RA`` (retain);
    ``TA`` (test); ``MIA`` = MIA-efficacy (attack trained on retain vs test, applied to forget;
    share of forget samples called non-members, SalUn's protocol); ``mia_auc`` = loss-threshold
    MIA AUC of forget (members) vs holdout (or test) samples, 0.5 meaning indistinguishable.

    Args:
        task: The task whose ``correct``/``per_sample_loss`` primitives score predictions.
        mia_attack: Attack model of MIA-efficacy, ``"logistic"`` or ``"svc"``.
        seed: Seed of the attack's class balancing.
        distributed: Reduce the states over the DDP ranks in ``compute`` (each rank fed its own shard, as in
            ``Trainer.validate``/``test``). ``False``: this process's samples only, with no collective call, for a
            process that evaluates whole loaders on its own (:func:`~lightning_unlearn.evaluate`): safe on one rank
            of a DDP job, where a collective would wait for ranks that never call it.
    """

    def __init__(self, task: Task, mia_attack: MIAAttack = "logistic", seed: int = 0, distributed: bool = True) -> None:
        super().__init__()
        self.task = task
        sync = {"sync_on_compute": bool(distributed)}
        self.accuracy = nn.ModuleDict({split: MeanMetric(**sync) for split in _ACC_KEYS})
        self.mia = MIAEfficacy(attack=mia_attack, seed=seed, **sync)
        self.loss_auc = LossMIAAUC(**sync)
        self._seen: set[str] = set()
        self._expected: tuple[str, ...] = ()

    @torch.no_grad()
    def update(self, split: str, outputs: Tensor, batch: Any, keep: int | None = None) -> None:
        """Add a batch of ``split``; ``keep``: score only its first ``keep`` samples (the rest are a
        ``DistributedSampler``'s padding repeats, see :mod:`~lightning_unlearn.evaluation.padding`)."""
        if split not in _ACC_KEYS:
            raise ValueError(f"`split` should be one of {list(_ACC_KEYS)}, got {split!r}.")
        rows = slice(None) if keep is None else slice(0, keep)
        correct = self.task.correct(outputs, batch).float()[rows]
        self.accuracy[split].update(correct)
        self._seen.add(split)
        if split in ("forget", "retain", "test") and hasattr(self.task, "probabilities"):
            self.mia.update(self.task.probabilities(outputs)[rows], self.task.targets(batch)[rows], split)
        losses = self.task.per_sample_loss(outputs, batch)[rows]
        if split == "forget":
            self.loss_auc.update(losses, True)
        elif split == "holdout" or (split == "test" and "holdout" not in self._expected):
            self.loss_auc.update(losses, False)

    def expect(self, splits: Sequence[str]) -> None:
        """Declare which splits will be fed (decides whether test stands in for the holdout)."""
        self._expected = tuple(splits)

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for split, key in _ACC_KEYS.items():
            if split in self._seen:
                out[key] = 100.0 * float(self.accuracy[split].compute())
        if "forget_acc" in out:
            out["UA"] = 100.0 - out["forget_acc"]
        if {"forget", "retain", "test"} <= self._seen and hasattr(self.task, "probabilities"):
            out["MIA"] = float(self.mia.compute())
        if "forget" in self._seen and ({"holdout", "test"} & self._seen):
            out["mia_auc"] = float(self.loss_auc.compute())
        return out

    def membership_losses(self) -> tuple[Tensor, Tensor]:
        """This process's per-sample losses behind ``mia_auc``: ``(forget, non-members)`` on the CPU (the
        non-members are the holdout split, or the test split when no holdout is expected)."""
        return _local_cat(self.loss_auc.member_losses), _local_cat(self.loss_auc.nonmember_losses)

    def reset(self) -> None:
        for metric in self.accuracy.values():
            metric.reset()
        self.mia.reset()
        self.loss_auc.reset()
        self._seen = set()


def _local_cat(state: list[Tensor] | Tensor) -> Tensor:
    """A metric's list state (or an already concatenated tensor) as one CPU tensor; empty if never updated."""
    if isinstance(state, Tensor):
        return state.detach().cpu()
    return torch.cat(state).detach().cpu() if state else torch.zeros(0)


def with_gap(metrics: dict[str, float], oracle: dict[str, float] | None) -> dict[str, float]:
    """Add ``avg_gap`` (mean |metric − oracle| over UA, RA, TA, MIA) when the oracle's metrics are known."""
    if not oracle:
        return metrics
    keys = [k for k in ("UA", "RA", "TA", "MIA") if k in metrics and k in oracle]
    if keys:
        metrics = {**metrics, "avg_gap": avg_gap(metrics, oracle, keys=keys)}
    return metrics
