"""Shared helpers of the LLM method tests: a tiny Llama that has memorised the toy QA facts, and a short unlearning run."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from llm_toys import QA, toy_model, toy_tokenizer
from torch.utils.data import DataLoader
from toys import make_trainer

from lightning_unlearn import UnlearningModule
from lightning_unlearn.methods import IdkAnswers, UnlearningMethod, alternative_batch
from lightning_unlearn.methods.base import StepContext
from lightning_unlearn.tasks import CausalLMTask, QACollator

FORGET, RETAIN = QA[:2], QA[2:]
TASK = CausalLMTask()


def collator(**kwargs: Any) -> QACollator:
    """The toy tokenizer's ``QACollator`` (``max_length=64``: no toy example is cut)."""
    return QACollator(toy_tokenizer(), max_length=64, **kwargs)


def idk_collator(seed: int = 0) -> QACollator:
    """A :func:`collator` that adds seeded refusals as the ``idk`` alternative answers."""
    return collator(alternatives={"idk": IdkAnswers(seed=seed)})


@functools.cache
def _memorised_state(steps: int) -> dict[str, torch.Tensor]:
    model, task = toy_model(seed=0), CausalLMTask()
    batch = collator()(QA)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = task.per_sample_loss(task.forward(model, batch), batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def memorised_model(steps: int = 60) -> Any:
    """A fresh tiny Llama (eval mode) fitted to every :data:`QA` pair by ``steps`` Adam steps.

    With the default 60 steps it answers every question correctly (greedy); 30 steps nearly memorise them.
    """
    model = toy_model(seed=0)
    model.load_state_dict(_memorised_state(steps))
    return model.eval()


def loader(examples: list[dict[str, str]], batch_size: int = 2, collate: Callable[..., Any] | None = None) -> DataLoader:
    return DataLoader(examples, batch_size=batch_size, shuffle=False, collate_fn=collate or collator())


def ctx(method: UnlearningMethod, model: torch.nn.Module, forget: Any, retain: Any = None) -> StepContext:
    """The ``StepContext`` of one step of ``method`` on a causal-LM batch (with the method's reference)."""
    return StepContext(model=model, task=TASK, forget=forget, retain=retain, reference=method.reference)


def hand_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor], prefix: str = "", reduction: str = "mean") -> torch.Tensor:
    """Per sample, the answer-token NLL (``reduction`` over tokens) by ``F.cross_entropy`` on shifted, masked positions.

    Reads ``batch[prefix + "input_ids"]``, ``..."attention_mask"`` and ``..."labels"`` (``prefix="idk_"``: the refusals).
    """
    labels = batch[f"{prefix}labels"]
    logits = model(input_ids=batch[f"{prefix}input_ids"], attention_mask=batch[f"{prefix}attention_mask"]).logits
    out = []
    for row in range(logits.shape[0]):
        keep = labels[row, 1:] != -100
        out.append(F.cross_entropy(logits[row, :-1][keep], labels[row, 1:][keep], reduction=reduction))
    return torch.stack(out)


@torch.no_grad()
def log_likelihood(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
    """Mean answer log-likelihood of ``batch`` (puts ``model`` in eval mode)."""
    return float(TASK.log_likelihood(TASK.forward(model.eval(), batch), batch).mean())


def idk_log_likelihoods(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    """:func:`log_likelihood` of the true answers and of the ``idk`` refusals of an :func:`idk_collator` batch."""
    return log_likelihood(model, batch), log_likelihood(model, alternative_batch(batch, "idk", TASK))


def forget_nll(model: torch.nn.Module) -> float:
    """Mean answer-token NLL of the forget answers."""
    task, batch = CausalLMTask(), collator()(FORGET)
    with torch.no_grad():
        return float(task.per_sample_loss(task.forward(model, batch), batch).mean())


def grads(loss: torch.Tensor, model: torch.nn.Module) -> list[torch.Tensor]:
    """The gradient of ``loss`` with respect to each parameter of ``model`` (clearing the old ones first)."""
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


class _Losses(pl.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.values.append(float(outputs["loss"]))


def _run(
    model: torch.nn.Module,
    method: UnlearningMethod,
    steps: int,
    lr: float,
    collate: Callable[..., Any] | None,
    task: CausalLMTask | None = None,
) -> tuple[pl.Trainer, list[float]]:
    """``steps`` Adam steps through ``UnlearningModule`` + ``Trainer`` on paired forget/retain batches (one per epoch)."""
    model.train()
    module = UnlearningModule(model, method, task=task or TASK, optimizer=lambda p: torch.optim.Adam(p, lr=lr))
    data = CombinedLoader({"forget": loader(FORGET, collate=collate), "retain": loader(RETAIN, collate=collate)}, mode="min_size")
    losses = _Losses()
    trainer = make_trainer(max_steps=steps, max_epochs=steps, limit_val_batches=0, callbacks=[losses])
    trainer.fit(module, train_dataloaders=data)
    return trainer, losses.values


def unlearn(
    model: torch.nn.Module, method: UnlearningMethod, steps: int = 3, lr: float = 1e-2, task: CausalLMTask | None = None
) -> list[float]:
    """``steps`` unlearning steps through ``UnlearningModule`` + ``Trainer`` on paired forget/retain batches (``task``:
    the default ``CausalLMTask()`` unless given, e.g. one holding a tokenizer)."""
    return _run(model, method, steps, lr, None, task)[1]


def fit(
    model: torch.nn.Module, method: UnlearningMethod, steps: int = 4, collate: Callable[..., Any] | None = None
) -> list[float]:
    """:func:`unlearn` (lr 1e-2, batches by ``collate``), checking that all ``steps`` ran with finite losses."""
    trainer, losses = _run(model, method, steps, 1e-2, collate)
    assert trainer.global_step == steps and all(math.isfinite(v) for v in losses)
    return losses
