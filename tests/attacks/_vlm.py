"""A tiny vision-language unlearning problem shared by the attack tests on VLMs (built once per process).

A tiny random :class:`~lightning_unlearn.models.vlm.VisionLanguageModel` (EfficientNet-Lite0 → projector → tiny
Llama) fine-tuned on Fashion-MNIST identification questions (3 images per class), then unlearned with NPO on the
images of classes 7 and 8 (sneaker, bag) through :class:`~lightning_unlearn.UnlearningModule`.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import lightning.pytorch as pl
import torch
from toys import make_trainer

from lightning_unlearn import UnlearningModule
from lightning_unlearn.datamodules.vqa import FashionVQADataModule
from lightning_unlearn.methods import NPO
from lightning_unlearn.models.vlm import tiny_vlm, tiny_vlm_tokenizer
from lightning_unlearn.tasks import VisionLanguageTask
from lightning_unlearn.training import SupervisedModule

FORGET_CLASSES = (7, 8)


def datamodule(train_on: str) -> FashionVQADataModule:
    return FashionVQADataModule(
        tokenizer=tiny_vlm_tokenizer(), forget_classes=FORGET_CLASSES, kinds=("name",), per_class=3, test_per_class=1,
        batch_size=10, retain_batch_size=10, train_on=train_on, seed=0,
    )  # fmt: skip


@functools.cache
def vlm_problem() -> dict[str, Any]:
    """``{"original", "unlearned", "datamodule"}``: the fine-tuned VLM and its NPO-unlearned copy (both in eval mode)."""
    pl.seed_everything(0, verbose=False)
    original = tiny_vlm(seed=0)
    make_trainer(max_epochs=25, limit_val_batches=0).fit(
        SupervisedModule(original, task=VisionLanguageTask(), optimizer=functools.partial(torch.optim.AdamW, lr=3e-3, weight_decay=0.0)),
        datamodule=datamodule("all"),
    )
    unlearned = copy.deepcopy(original)
    module = UnlearningModule(
        unlearned, NPO(beta=0.1), task=VisionLanguageTask(), optimizer=functools.partial(torch.optim.AdamW, lr=2e-3, weight_decay=0.0),
        monitor=False,
    )  # fmt: skip
    make_trainer(max_steps=4, limit_val_batches=0).fit(module, datamodule=datamodule("forget_retain"))
    return {"original": original.eval(), "unlearned": unlearned.eval(), "datamodule": datamodule("forget_retain")}
