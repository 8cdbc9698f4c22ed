"""The ``Unlearn`` callback (and the report) on a user's own LightningModule that fine-tunes a vision-language model.

The user's module knows nothing of this library but its VLM: it calls a tiny
:class:`~lightning_unlearn.models.vlm.VisionLanguageModel` (EfficientNet-Lite0 → projector → tiny Llama) on
Fashion-MNIST visual QA batches (``pixel_values`` beside the tokens) and returns the language model's own loss.
Adding ``Unlearn(NPO(), ..., task=VisionLanguageTask(), schedule="after_training")`` makes it forget the
questions about two classes' images after its training; :class:`~lightning_unlearn.UnlearningReport` records the
run.
"""

from __future__ import annotations

import functools
import json

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader
from toys import make_trainer

from lightning_unlearn import Unlearn, UnlearningReport
from lightning_unlearn.datamodules.vqa import CLASS_NAMES, FashionVQADataModule
from lightning_unlearn.methods import NPO
from lightning_unlearn.models.vlm import tiny_vlm, tiny_vlm_tokenizer
from lightning_unlearn.tasks import VisionLanguageTask
from lightning_unlearn.tasks.vision_language import generate_vlm_answers

pytest.importorskip("transformers")

SEED, FORGET_CLASSES = 0, (7, 8)


class UserVLMFineTuner(pl.LightningModule):
    """What a user writes to fine-tune a VLM: the language model's own loss from ``labels``, AdamW."""

    def __init__(self, model: torch.nn.Module, lr: float = 3e-3) -> None:
        super().__init__()
        self.model, self.lr = model, lr

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values).logits

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"], labels=batch["labels"]
        )
        return out.loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.lr, weight_decay=0.0)


@torch.no_grad()
def answer_nll(module: torch.nn.Module, loader: DataLoader) -> float:
    """Mean answer-token NLL given image + question, as the task computes it (images passed)."""
    task, was_training = VisionLanguageTask(), module.training
    module.eval()
    losses = [task.per_sample_loss(task.forward(module, batch), batch) for batch in loader]
    module.train(was_training)
    return float(torch.cat(losses).mean())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The user's fine-tuning on every class (identification questions, 3 images per class), then the NPO phase."""
    pl.seed_everything(SEED, verbose=False)
    dm = FashionVQADataModule(
        tokenizer=tiny_vlm_tokenizer(), forget_classes=FORGET_CLASSES, kinds=("name",), per_class=3, test_per_class=1,
        batch_size=10, train_on="all", seed=SEED,
    )  # fmt: skip
    forget = DataLoader(dm.forget_set, batch_size=6, shuffle=True, collate_fn=dm.collate_fn)
    retain = DataLoader(dm.retain_set, batch_size=6, shuffle=True, collate_fn=dm.collate_fn)
    evaluate = {name: DataLoader(getattr(dm, f"{name}_set"), batch_size=32, collate_fn=dm.collate_fn) for name in ("forget", "retain")}
    unlearn = Unlearn(
        NPO(beta=0.1), forget=forget, retain=retain, task=VisionLanguageTask(), schedule="after_training", epochs=4,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.0), progress_bar=False,
    )  # fmt: skip
    report = UnlearningReport(dirpath=tmp_path_factory.mktemp("vlm_report"), evaluate_original=False)
    probe = _Probe(evaluate, [dm.forget_set[i] for i in range(len(dm.forget_set))], dm.collate_fn)
    module = UserVLMFineTuner(tiny_vlm(seed=SEED))
    make_trainer(max_epochs=40, callbacks=[unlearn, probe, report]).fit(module, datamodule=dm)
    return {"unlearn": unlearn, "probe": probe, "report": report, "dm": dm}


class _Probe(pl.Callback):
    """Answer NLLs and greedy forget answers at the last training epoch's end (before the phase) and at fit end."""

    def __init__(self, loaders: dict[str, DataLoader], forget_examples: list, collator) -> None:
        self.loaders, self.examples, self.collator = loaders, forget_examples, collator
        self.before: dict = {}
        self.after: dict = {}

    def _measure(self, pl_module: pl.LightningModule) -> dict:
        out = {name: answer_nll(pl_module, loader) for name, loader in self.loaders.items()}
        out["answers"] = generate_vlm_answers(pl_module.model, self.collator, self.examples, max_new_tokens=8)
        return out

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == trainer.max_epochs - 1:
            self.before = self._measure(pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.after = self._measure(pl_module)


def test_after_training_npo_phase_forgets_the_classes_the_user_fine_tuned_on(run):
    before, after, unlearn = run["probe"].before, run["probe"].after, run["unlearn"]
    names = [CLASS_NAMES[c] for c in FORGET_CLASSES]
    # the user's fine-tuning learnt the forget classes' answers: most greedy answers name the pictured item
    assert sum(any(n in a for n in names) for a in before["answers"]) >= len(before["answers"]) // 2, before["answers"]
    assert before["forget"] < 1.0 and before["retain"] < 1.0, before
    assert unlearn.phase_done and unlearn.steps == 4  # 6 forget examples, batches of 6, four passes
    # Measured (seed 0, 25 epochs, before the tiny tokenizer saw the name-answered four-choice questions): forget NLL
    # 0.50 -> 0.76, retain 0.50 -> 0.63; the forget images are now called shirts. The
    # retained classes' answers share the "It is a ..." template with the forgotten ones, so they lose some too, less.
    assert after["forget"] > before["forget"] + 0.15, (before, after)
    assert after["retain"] - before["retain"] < 0.75 * (after["forget"] - before["forget"]), (before, after)
    assert not any(n in a for n in names for a in after["answers"]), after["answers"]
    # the callback's own before/after measurement (images passed) agrees with the independent one
    summary = unlearn.summary
    assert summary["before/forget_loss"] == pytest.approx(before["forget"], rel=0.05, abs=0.02)
    assert summary["after/forget_loss"] == pytest.approx(after["forget"], rel=0.05, abs=0.02)


def test_the_report_records_the_vlm_unlearning_run(run):
    report = json.loads(run["report"].json_path.read_text())
    assert report["method"]["name"] == "npo" and report["method"]["class"] == "NPO"
    assert report["model"]["class"] == "VisionLanguageModel"  # the user's module's `model`, as SaveWeights saves it
    assert report["model"]["hash_before"] != report["model"]["hash_after"]
    assert report["data"]["sizes"]["forget"] == len(run["dm"].forget_set) == 6
    unlearned = report["metrics"]["unlearned"]
    assert set(report["data"]["eval_splits"]) == {"forget", "retain", "holdout"}
    # scored with the Unlearn callback's VisionLanguageTask (the user's module has no task; a classification task
    # would find no "inputs" in these batches): exact-answer accuracy and the loss-threshold MIA, images passed
    assert 0.0 <= unlearned["forget_acc"] <= 100.0 and unlearned["UA"] == pytest.approx(100.0 - unlearned["forget_acc"])
    assert 0.0 <= unlearned["mia_auc"] <= 1.0 and report["mia_roc"]["members"] == "forget"
    assert len(report["loss_curve"]["step"]) == 40 * 3  # the user's 40 epochs of 3 batches, logged by the report
    assert run["report"].html_path.is_file()


def test_interleaved_npo_keeps_the_forget_classes_unlearnt_while_the_user_trains_on_everything(run):
    """The default schedule: the user's own steps (every class, forget ones included) with NPO's forget term added
    (weight 0.1) on every third step from epoch 10 on; at the end the forget answers are far less likely than the retained ones."""
    dm = run["dm"]
    pl.seed_everything(SEED, verbose=False)
    forget = DataLoader(dm.forget_set, batch_size=6, shuffle=True, collate_fn=dm.collate_fn)
    unlearn = Unlearn(NPO(beta=0.1, forget_weight=0.1), forget=forget, task=VisionLanguageTask(), start_epoch=10, every_n_steps=3, progress_bar=False)
    module = UserVLMFineTuner(tiny_vlm(seed=SEED))
    make_trainer(max_epochs=20, callbacks=[unlearn]).fit(module, datamodule=dm)
    loaders = {name: DataLoader(getattr(dm, f"{name}_set"), batch_size=32, collate_fn=dm.collate_fn) for name in ("forget", "retain")}
    nll = {name: answer_nll(module, loader) for name, loader in loaders.items()}
    assert unlearn.steps == 10  # every third of the 3 user batches per epoch, epochs 10..19
    # measured (seed 0): forget 1.69, retain 0.83 (the fixture's 25 epochs without a forget term: both 0.50)
    assert nll["forget"] > nll["retain"] + 0.5, nll
    assert unlearn.summary["after/forget_loss"] == pytest.approx(nll["forget"], rel=0.05, abs=0.02)
