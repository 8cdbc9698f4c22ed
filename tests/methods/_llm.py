"""Shared helpers of the LLM method tests: a tiny Llama that has memorised the toy QA facts, and a short unlearning run."""

from __future__ import annotations

import functools
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from llm_toys import QA, toy_model, toy_tokenizer
from torch.utils.data import DataLoader

from lightning_unlearn import UnlearningModule
from lightning_unlearn.methods import UnlearningMethod
from lightning_unlearn.tasks import CausalLMTask, QACollator

FORGET, RETAIN = QA[:2], QA[2:]


@functools.cache
def _memorised_state() -> dict[str, torch.Tensor]:
    model, task = toy_model(seed=0), CausalLMTask()
    batch = QACollator(toy_tokenizer())(QA)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = task.per_sample_loss(task.forward(model, batch), batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {k: v.clone() for k, v in model.state_dict().items()}


def memorised_model() -> Any:
    """A fresh tiny Llama (eval mode) that answers every :data:`QA` question correctly (greedy)."""
    model = toy_model(seed=0)
    model.load_state_dict(_memorised_state())
    return model.eval()


def loader(examples: list[dict[str, str]], batch_size: int = 2) -> DataLoader:
    return DataLoader(examples, batch_size=batch_size, shuffle=False, collate_fn=QACollator(toy_tokenizer()))


def forget_nll(model: torch.nn.Module) -> float:
    """Mean answer-token NLL of the forget answers."""
    task, batch = CausalLMTask(), QACollator(toy_tokenizer())(FORGET)
    with torch.no_grad():
        return float(task.per_sample_loss(task.forward(model, batch), batch).mean())


class _Losses(pl.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.values.append(float(outputs["loss"]))


def unlearn(model: torch.nn.Module, method: UnlearningMethod, steps: int = 3, lr: float = 1e-2) -> list[float]:
    """``steps`` unlearning steps through ``UnlearningModule`` + ``Trainer`` on paired forget/retain batches."""
    model.train()
    module = UnlearningModule(model, method, task=CausalLMTask(), optimizer=lambda p: torch.optim.Adam(p, lr=lr))
    data = CombinedLoader({"forget": loader(FORGET), "retain": loader(RETAIN)}, mode="min_size")
    losses = _Losses()
    trainer = pl.Trainer(
        max_steps=steps,
        max_epochs=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        devices=1,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[losses],
    )
    trainer.fit(module, train_dataloaders=data)
    return losses.values
