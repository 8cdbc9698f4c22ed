"""The ``Unlearn`` callback on a user's own LightningModule that fine-tunes a ``transformers`` causal LM.

The user's module knows nothing of this library: it calls the Hugging Face model with ``labels`` and
returns HF's own loss. Adding ``Unlearn(..., task=CausalLMTask())`` to its ``Trainer`` makes it forget
the fictitious authors of a :class:`FictitiousAuthorsDataModule`'s forget split, as a phase after the
fine-tuning or interleaved with further fine-tuning on the retained authors.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader
from toys import make_trainer

from lightning_unlearn import Unlearn
from lightning_unlearn.datamodules import FictitiousAuthorsDataModule
from lightning_unlearn.methods import NPO, GradDiff
from lightning_unlearn.models.llm import tiny_llama, train_tokenizer
from lightning_unlearn.tasks import CausalLMTask, QACollator

pytest.importorskip("transformers")

N_AUTHORS, FACTS, SEED = 10, 3, 0


class UserLMFineTuner(pl.LightningModule):
    """What a user writes to fine-tune a causal LM: the model's own loss from ``labels``, AdamW."""

    def __init__(self, model: torch.nn.Module, lr: float = 3e-3) -> None:
        super().__init__()
        self.model, self.lr = model, lr

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        self.log("train_loss", out.loss)
        return out.loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=0.0)


class AnswerNLL(Callback):
    """Mean answer-token NLL of each split's QA pairs, at the end of every training epoch and at fit end."""

    def __init__(self, loaders: dict[str, DataLoader]) -> None:
        self.loaders = loaders
        self.epochs: list[dict[str, float]] = []
        self.at_fit_end: dict[str, float] = {}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs.append(answer_nll(pl_module, self.loaders))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.at_fit_end = answer_nll(pl_module, self.loaders)


@torch.no_grad()
def answer_nll(module: torch.nn.Module, loaders: dict[str, DataLoader]) -> dict[str, float]:
    task, was_training = CausalLMTask(), module.training
    module.eval()
    out = {}
    for split, loader in loaders.items():
        losses = [task.per_sample_loss(task.forward(module, batch), batch) for batch in loader]
        out[split] = float(torch.cat(losses).mean())
    module.train(was_training)
    return out


@pytest.fixture(scope="module")
def authors() -> dict[str, Any]:
    """Fictitious-author data, a byte-level BPE tokenizer trained on its texts, and the user's loaders."""
    plain = FictitiousAuthorsDataModule(N_AUTHORS, seed=SEED, facts_per_author=FACTS, forget_fraction=0.2, holdout_fraction=0.1)
    texts = [t for e in plain.examples for t in (e["question"], e["answer"])]
    tokenizer = train_tokenizer(texts, vocab_size=400)
    collator = QACollator(tokenizer, max_length=48)

    def datamodule(train_on: str) -> FictitiousAuthorsDataModule:
        return FictitiousAuthorsDataModule(
            N_AUTHORS, seed=SEED, facts_per_author=FACTS, forget_fraction=0.2, holdout_fraction=0.1,
            collate_fn=collator, batch_size=8, train_on=train_on,
        )  # fmt: skip

    dm = datamodule("all")
    loaders = {split: DataLoader(getattr(dm, f"{split}_set"), batch_size=32, collate_fn=collator) for split in ("forget", "retain")}
    return {"tokenizer": tokenizer, "collator": collator, "datamodule": datamodule, "loaders": loaders, "dm": dm}


def new_model(tokenizer: Any) -> torch.nn.Module:
    """A tiny random Llama, in train mode as a user's model would be."""
    return tiny_llama(
        len(tokenizer), hidden_size=48, num_layers=2, num_heads=4, seed=SEED,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    ).train()  # fmt: skip


def unlearn_callback(method: Any, authors: dict[str, Any], schedule: str, **kwargs: Any) -> Unlearn:
    dm = authors["dm"]
    forget = DataLoader(dm.forget_set, batch_size=6, shuffle=True, collate_fn=authors["collator"])
    retain = DataLoader(dm.retain_set, batch_size=6, shuffle=True, collate_fn=authors["collator"]) if schedule != "interleaved" else None
    return Unlearn(method, forget=forget, retain=retain, task=CausalLMTask(), schedule=schedule, progress_bar=False, **kwargs)


@pytest.fixture(scope="module")
def fine_tuned(authors: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The user's module fine-tuned on every training author (forget ones included), without the callback."""
    pl.seed_everything(SEED, verbose=False)
    module = UserLMFineTuner(new_model(authors["tokenizer"]))
    make_trainer(max_epochs=30).fit(module, datamodule=authors["datamodule"]("all"))
    nll = answer_nll(module, authors["loaders"])
    assert nll["forget"] < 0.5 and nll["retain"] < 0.5, nll  # both splits memorised
    return copy.deepcopy(module.state_dict())


def test_after_training_phase_forgets_the_authors_the_user_fine_tuned_on(authors):
    """The user's own fine-tuning run, plus ``Unlearn(schedule="after_training")``: the forget authors'
    answers become unlikely at the end of fit, the retained authors' stay likely."""
    pl.seed_everything(SEED, verbose=False)
    module = UserLMFineTuner(new_model(authors["tokenizer"]))
    unlearn = unlearn_callback(
        GradDiff(), authors, "after_training", epochs=6, optimizer=functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.0)
    )
    probe = AnswerNLL(authors["loaders"])
    make_trainer(max_epochs=30, callbacks=[unlearn, probe]).fit(module, datamodule=authors["datamodule"]("all"))

    before, after = probe.epochs[-1], probe.at_fit_end  # the last epoch end precedes the phase
    assert before["forget"] < 0.5 and before["retain"] < 0.5, before
    assert unlearn.phase_done and unlearn.steps == 6 * 1  # 6 forget pairs in one batch of 6, six passes
    assert after["forget"] > before["forget"] + 3.0, (before, after)  # answer probability down by > e^3 per token
    # The retained authors share the answers' sentence templates, so they lose a little too, far less.
    assert after["retain"] - before["retain"] < 0.25 * (after["forget"] - before["forget"]), (before, after)
    assert after["retain"] < 1.0, after  # a uniform guess over the vocabulary is ln(400) = 6 nats
    assert "training_step" not in vars(module)  # the user's module is left as it was


def test_interleaved_forgets_while_the_user_keeps_fine_tuning_on_the_retained_authors(authors, fine_tuned):
    """A deletion request arriving after fine-tuning: the user continues training on the retained authors
    only; with ``Unlearn`` (NPO, interleaved) the forget authors' NLL rises far more than without it."""

    def run(callbacks: list[Callback]) -> dict[str, float]:
        pl.seed_everything(SEED, verbose=False)
        module = UserLMFineTuner(new_model(authors["tokenizer"]), lr=1e-3)
        module.load_state_dict(fine_tuned)
        make_trainer(max_epochs=4, callbacks=callbacks).fit(module, datamodule=authors["datamodule"]("retain"))
        return answer_nll(module, authors["loaders"])

    plain = run([])
    unlearn = unlearn_callback(NPO(beta=0.1), authors, "interleaved")
    forgotten = run([unlearn])

    assert unlearn.steps > 0
    assert plain["forget"] < 1.0, plain  # fine-tuning on the others alone forgets little
    assert forgotten["forget"] > plain["forget"] + 3.0, (plain, forgotten)
    assert forgotten["retain"] - plain["retain"] < 0.25 * (forgotten["forget"] - plain["forget"]), (plain, forgotten)
    assert forgotten["retain"] < 1.0, forgotten  # the retained authors are still known
