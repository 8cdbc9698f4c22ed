"""Run robustness attacks on an unlearned model and measure how much of the forgetting they undo.

Each attack (weight quantization, relearning) is applied to a *copy* of the unlearned model and, as a
baseline, to a copy of the oracle (the model retrained without the forget set), and the forget / retain /
test metrics are measured again. The forget set is split once into a part the relearning attacker may
fine-tune on and a held-out part that every forget metric here is computed on, so that all attacks and the
unattacked models are compared on the same samples.

Recovery is the fraction of the forgotten gap an attack regains (:func:`~lightning_unlearn.attacks.recovery`):
``(attacked - unlearned) / (original - unlearned)`` for the held-out forget accuracy, and the same for the
held-out forget loss. It needs the original model (before unlearning); without it only the raw metrics are
reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

from lightning_unlearn._errors import check_fraction
from lightning_unlearn.attacks.quantization import QuantizationAttack
from lightning_unlearn.attacks.recovery import recovery
from lightning_unlearn.attacks.relearning import RelearningAttack, split_forget
from lightning_unlearn.callbacks.evaluation import run_evaluation
from lightning_unlearn.tasks.base import Task
from lightning_unlearn.tasks.classification import ClassificationTask

Attack = QuantizationAttack | RelearningAttack

def default_attacks() -> list[Attack]:
    """int8 per-channel and int4 group-wise (128) round-to-nearest quantization, and 10 relearning steps."""
    return [QuantizationAttack(bits=8), QuantizationAttack(bits=4, group_size=128), RelearningAttack(steps=10)]


def attack_name(attack: Attack) -> str:
    """The attack's short label, e.g. ``"int4-g128"`` or ``"relearn-adam-10steps-lr0.001"``."""
    return attack.name


def _apply(attack: Attack, model: nn.Module, task: Task, relearn: Dataset, like: DataLoader | None, seed: int) -> nn.Module:
    if isinstance(attack, RelearningAttack):
        # the attack's own batch size, the datamodule's collate function, a seeded shuffle
        sampler = RandomSampler(relearn, generator=torch.Generator().manual_seed(seed))
        loader = DataLoader(relearn, batch_size=attack.batch_size, sampler=sampler, collate_fn=getattr(like, "collate_fn", None))
        return attack(model, task, loader)
    return attack(model)


def _loader(dataset: Dataset, like: DataLoader | None, batch_size: int) -> DataLoader:
    """An unshuffled loader of ``dataset`` that collates like the datamodule's own loaders."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=getattr(like, "collate_fn", None))


def measure(model: nn.Module, task: Task, loaders: Mapping[str, DataLoader], device: torch.device | str | None = None) -> dict[str, float]:
    """Held-out forget accuracy (%) and mean per-sample loss, retain and test accuracy (%), for one model."""
    evaluator = run_evaluation(model, dict(loaders), task=task, device=device)
    metrics = evaluator.compute()
    forget_losses, _ = evaluator.membership_losses()
    return {
        "forget_acc": metrics["forget_acc"],
        "forget_loss": float(forget_losses.float().mean()),
        "RA": metrics.get("RA", math.nan),
        "TA": metrics.get("TA", math.nan),
    }


def run_attacks(
    unlearned: nn.Module,
    task: Task | None,
    forget: Dataset,
    *,
    retain: DataLoader | None = None,
    test: DataLoader | None = None,
    original: nn.Module | None = None,
    oracle: nn.Module | None = None,
    attacks: Sequence[Attack] | None = None,
    relearn_fraction: float = 0.5,
    batch_size: int = 64,
    collate_like: DataLoader | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Attack ``unlearned`` (and ``oracle``, the baseline) and measure recovery against ``original``.

    Args:
        unlearned: The unlearned network (never modified: every attack works on a copy).
        task: What the network is (its ``forward``, ``per_sample_loss`` and ``correct``); ``None`` = classification.
        forget: The forget set; split by :func:`split_forget` into the relearning attacker's part and the
            held-out part that the forget metrics are computed on.
        retain: Retain evaluation data (``RA``).
        test: Test data (``TA``), if any.
        original: The model before unlearning (needed for recovery).
        oracle: The model retrained without the forget set (the same attacks on it are the baseline).
        attacks: Default :func:`default_attacks`.
        relearn_fraction: Fraction of the forget set given to the relearning attacker.
        batch_size: Batch size of the evaluation loader of the held-out forget part (relearning uses the
            attack's own ``batch_size``).
        collate_like: A loader whose ``collate_fn`` the loaders built here use (e.g. the datamodule's).
        seed: Seed of the forget split.

    Returns:
        ``{"split": {...}, "models": {"unlearned": m, "original": m, "oracle": m}, "attacks": {name: {"unlearned": m,
        "oracle": m, "recovery_acc": r, "recovery_loss": r, "oracle_recovery_acc": r, "oracle_recovery_loss": r}}}``
        where ``m`` are the metrics of :func:`measure` and ``r`` fractions of the forgotten gap regained (NaN when
        nothing was forgotten or without ``original``). A quantization attack's entry also holds its ``"coverage"``
        (the share of the unlearned model's weight-matrix elements it quantized,
        :attr:`~lightning_unlearn.attacks.quantization.QuantizationSummary.coverage`) and ``"skipped_matrices"``
        (how many weight matrices it left in full precision).
    """
    check_fraction("relearn_fraction", relearn_fraction, inclusive_high=False)
    task = task if task is not None else ClassificationTask()
    attacks = default_attacks() if attacks is None else list(attacks)
    for attack in attacks:
        if not isinstance(attack, (QuantizationAttack, RelearningAttack)):
            raise TypeError(f"`attacks` should hold QuantizationAttack or RelearningAttack objects, got {type(attack).__name__}.")
    relearn_part, heldout = split_forget(forget, relearn_fraction=relearn_fraction, seed=seed)
    loaders = {"forget": _loader(heldout, collate_like, batch_size)}
    if retain is not None:
        loaders["retain"] = retain
    if test is not None:
        loaders["test"] = test

    models = {"unlearned": unlearned, "original": original, "oracle": oracle}
    base = {name: measure(model, task, loaders) for name, model in models.items() if model is not None}
    out: dict[str, Any] = {
        "split": {"relearn": len(relearn_part), "heldout": len(heldout), "relearn_fraction": relearn_fraction, "seed": seed},
        "models": base,
        "attacks": {},
    }
    for attack in attacks:
        name = attack_name(attack)
        entry: dict[str, Any] = {}
        for who in ("unlearned", "oracle"):
            model = models[who]
            if model is None:
                continue
            attacked = _apply(attack, model, task, relearn_part, collate_like, seed)
            if who == "unlearned" and isinstance(attack, QuantizationAttack) and attack.summary is not None:
                entry["coverage"] = attack.summary.coverage
                entry["skipped_matrices"] = len(attack.summary.skipped)
            entry[who] = measure(attacked, task, loaders)
            del attacked
            prefix = "" if who == "unlearned" else "oracle_"
            for metric, key in (("forget_acc", "recovery_acc"), ("forget_loss", "recovery_loss")):
                if "original" in base:
                    entry[prefix + key] = float(recovery(base["original"][metric], base[who][metric], entry[who][metric]))
                else:
                    entry[prefix + key] = math.nan
        out["attacks"][name] = entry
    return out


def flat_result(result: Mapping[str, Any], name: str) -> dict[str, float]:
    """One attack's entry of :func:`run_attacks` as a flat ``{metric: number}`` mapping (for loggers and the report)."""
    entry = result["attacks"][name]
    flat: dict[str, float] = {}
    for key, value in entry.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}/{k}": float(v) for k, v in value.items()})
        else:
            flat[key] = float(value)
    return flat

