"""Did it forget? Forget / retain loss and accuracy before and after unlearning, a one-line summary, a warning
when the forget set barely moved, and the stop criterion.

:class:`ForgetMonitor` is shared by the ``Unlearn`` callback and ``UnlearningModule``. It evaluates the model on
the *whole* forget set and on an evenly spaced subset of the retain set (``max_samples``), in eval mode and
without gradients. Under DDP every rank evaluates the same samples with the same weights, so every rank reaches
the same numbers and the same stop decision without communication.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from torch.utils.data import DataLoader, Subset

from lightning_unlearn._errors import check_int
from lightning_unlearn.tasks.base import evaluating

#: A forget metric "barely moved" when forget accuracy fell by less than this many points ...
MIN_ACC_DROP = 5.0
#: ... and the forget loss rose by less than this fraction of its starting value.
MIN_LOSS_RISE = 0.10


@dataclass(frozen=True)
class SplitScore:
    """Mean per-sample loss and accuracy (percent) of a model on one split."""

    loss: float
    acc: float
    samples: int


def evenly_spaced(loader: DataLoader, max_samples: int | None) -> DataLoader:
    """``loader``'s dataset (unshuffled) restricted to at most ``max_samples`` evenly spaced samples."""
    dataset = loader.dataset
    n = len(dataset)  # type: ignore[arg-type]
    if max_samples is not None and n > max_samples:
        step = n / max_samples
        dataset = Subset(dataset, [int(i * step) for i in range(max_samples)])
    return DataLoader(dataset, batch_size=loader.batch_size or 64, shuffle=False, collate_fn=loader.collate_fn)


@torch.no_grad()
def score(model: nn.Module, task: Any, loader: DataLoader, device: torch.device | None = None, precision: Any = None) -> SplitScore:
    """Mean per-sample task loss and accuracy (``task.correct``, percent) of ``model`` over ``loader``.

    ``precision``: a Lightning precision plugin (the Trainer's); its ``convert_input`` converts the batches and
    the forwards run in its ``forward_context()``, as in a validation step (``None``: as they are).
    """
    from lightning.fabric.utilities.apply_func import move_data_to_device

    loss_sum, correct_sum, count = 0.0, 0.0, 0
    context = precision.forward_context if precision is not None else contextlib.nullcontext
    with evaluating(model):
        for batch in loader:
            if device is not None:
                batch = move_data_to_device(batch, device)
            if precision is not None:
                batch = precision.convert_input(batch)
            with context():
                outputs = task.forward(model, batch)
            losses = task.per_sample_loss(outputs, batch).float()
            loss_sum += float(losses.sum())
            correct_sum += float(task.correct(outputs, batch).float().sum())
            count += int(losses.numel())
    if count == 0:
        return SplitScore(math.nan, math.nan, 0)
    return SplitScore(loss_sum / count, 100.0 * correct_sum / count, count)


class ForgetMonitor:
    """Measures forgetting before and after unlearning and decides when to stop.

    Args:
        task: The task whose ``per_sample_loss`` / ``correct`` score the model.
        forget: Loader of the forget set (evaluated in full, unshuffled).
        retain: Loader of the retain set (``None``: forget only); at most ``max_samples`` evenly spaced samples.
        stop_at_forget_acc: Stop once forget accuracy (percent) is at or below this.
        stop_at_forget_loss: Stop once the mean forget loss is at or above this.
        check_every_n_steps: How often (in optimizer steps) the stop criterion evaluates the forget set.
        max_samples: Retain samples scored before and after.
        name: What is unlearning, for the summary line (e.g. ``"Unlearn(GradDiff)"``).
    """

    def __init__(
        self,
        task: Any,
        forget: DataLoader,
        retain: DataLoader | None = None,
        *,
        stop_at_forget_acc: float | None = None,
        stop_at_forget_loss: float | None = None,
        check_every_n_steps: int = 10,
        max_samples: int = 2048,
        name: str = "unlearning",
    ) -> None:
        check_stop_arguments(stop_at_forget_acc, stop_at_forget_loss, check_every_n_steps)
        self.task = task
        self.forget = evenly_spaced(forget, None)
        self.retain = evenly_spaced(retain, max_samples) if retain is not None else None
        self.stop_at_forget_acc = stop_at_forget_acc
        self.stop_at_forget_loss = stop_at_forget_loss
        self.check_every_n_steps = check_every_n_steps
        self.name = name
        self.before: dict[str, SplitScore] = {}
        self.after: dict[str, SplitScore] = {}
        self.stop_reason: str | None = None
        #: The Trainer's precision plugin (set by ``engine.precision.follow_precision``): the scoring passes convert
        #: their batches and run their forwards with it, like the module's own steps.
        self.precision: Any = None

    @property
    def has_criterion(self) -> bool:
        return self.stop_at_forget_acc is not None or self.stop_at_forget_loss is not None

    def measure(self, model: nn.Module, device: torch.device | None = None) -> dict[str, SplitScore]:
        out = {"forget": score(model, self.task, self.forget, device, self.precision)}
        if self.retain is not None:
            out["retain"] = score(model, self.task, self.retain, device, self.precision)
        return out

    def start(self, model: nn.Module, device: torch.device | None = None) -> None:
        self.before = self.measure(model, device)
        self.after = {}
        self.stop_reason = None

    def should_stop(self, model: nn.Module, step: int, device: torch.device | None = None) -> bool:
        """Evaluate the forget set every ``check_every_n_steps`` steps; ``True`` once the criterion is met."""
        if not self.has_criterion or step % self.check_every_n_steps != 0:
            return False
        forget = score(model, self.task, self.forget, device, self.precision)
        if self.stop_at_forget_acc is not None and forget.acc <= self.stop_at_forget_acc:
            self.stop_reason = f"forget accuracy {forget.acc:.1f}% <= stop_at_forget_acc={self.stop_at_forget_acc:g} at step {step}"
        elif self.stop_at_forget_loss is not None and forget.loss >= self.stop_at_forget_loss:
            self.stop_reason = f"forget loss {forget.loss:.4f} >= stop_at_forget_loss={self.stop_at_forget_loss:g} at step {step}"
        return self.stop_reason is not None

    def finish(self, model: nn.Module, steps: int, device: torch.device | None = None) -> dict[str, float]:
        """Measure again, print the one-line summary, warn when the forget set barely moved; returns flat metrics."""
        self.after = self.measure(model, device)
        metrics = self.metrics()
        rank_zero_info(self.summary(steps))
        if self.before and not self.forgot():
            rank_zero_warn(
                f"{self.name}: the forget set barely moved after {steps} steps (forget accuracy "
                f"{self.before['forget'].acc:.1f}% -> {self.after['forget'].acc:.1f}%, loss "
                f"{self.before['forget'].loss:.4f} -> {self.after['forget'].loss:.4f}). The model may not have forgotten: "
                "run more steps (`max_steps`/`epochs`), raise the learning rate or `forget_weight`, or stop on a target "
                "with `stop_at_forget_acc`."
            )
        return metrics

    def forgot(self) -> bool:
        """Whether forget accuracy fell by at least ``MIN_ACC_DROP`` points (or ends at most ``MIN_ACC_DROP`` percent:
        nothing is left to fall) or the forget loss rose by ``MIN_LOSS_RISE``."""
        before, after = self.before["forget"], self.after["forget"]
        acc_drop = before.acc - after.acc
        loss_rise = after.loss - before.loss
        return acc_drop >= MIN_ACC_DROP or after.acc <= MIN_ACC_DROP or loss_rise >= MIN_LOSS_RISE * max(abs(before.loss), 1e-3)

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for when, scores in (("before", self.before), ("after", self.after)):
            for split, s in scores.items():
                out[f"{when}/{split}_loss"] = s.loss
                out[f"{when}/{split}_acc"] = s.acc
        return out

    def summary(self, steps: int) -> str:
        parts = []
        for split in ("forget", "retain"):
            if split in self.before and split in self.after:
                b, a = self.before[split], self.after[split]
                parts.append(f"{split} acc {b.acc:.1f}% -> {a.acc:.1f}%, loss {b.loss:.3f} -> {a.loss:.3f}")
        stop = f"; stopped: {self.stop_reason}" if self.stop_reason else ""
        return f"{self.name}: {steps} steps; " + "; ".join(parts) + stop


def check_stop_arguments(stop_at_forget_acc: float | None, stop_at_forget_loss: float | None, check_every_n_steps: int) -> None:
    """Validate the stop criterion's arguments (shared by the callback and the module)."""
    if stop_at_forget_acc is not None:
        if isinstance(stop_at_forget_acc, bool) or not isinstance(stop_at_forget_acc, (int, float)) or not 0 <= stop_at_forget_acc <= 100:
            raise ValueError(f"`stop_at_forget_acc` should be a percentage in [0, 100] or None, got {stop_at_forget_acc!r}.")
    if stop_at_forget_loss is not None:
        if isinstance(stop_at_forget_loss, bool) or not isinstance(stop_at_forget_loss, (int, float)) or not math.isfinite(stop_at_forget_loss):
            raise ValueError(f"`stop_at_forget_loss` should be a finite number or None, got {stop_at_forget_loss!r}.")
    check_int("check_every_n_steps", check_every_n_steps)
