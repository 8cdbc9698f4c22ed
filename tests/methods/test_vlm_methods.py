"""Every method that claims vision-language models runs on a tiny VLM; the others refuse it.

A method whose ``supported_tasks`` hold ``"vision_language"`` is picked up automatically: a few steps of
``UnlearningModule`` + ``Trainer`` with a :class:`~lightning_unlearn.datamodules.vqa.FashionVQADataModule` (real
Fashion-MNIST images, forget two classes) and a :class:`~lightning_unlearn.tasks.VisionLanguageTask` must give
finite losses, move the trainable weights and leave the frozen vision tower exactly as it was.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from toys import make_trainer
from vlm_toys import tiny_vlm, vqa_collator

from lightning_unlearn import UnlearningModule
from lightning_unlearn.datamodules.vqa import FashionVQADataModule
from lightning_unlearn.methods import METHODS, IdkAnswers
from lightning_unlearn.tasks import VisionLanguageTask

VLM_METHODS = [n for n in METHODS.names() if "vision_language" in METHODS.get(n).supported_tasks]
OTHER_METHODS = [n for n in METHODS.names() if n not in VLM_METHODS]
#: Settings for the tiny VLM (a 2-layer Llama) where a default does not suit it.
VLM_KWARGS: dict[str, dict[str, Any]] = {
    "rmu": {"layer": 0},
}
#: Methods whose batches need the IdK refusals as alternative answers.
NEEDS_IDK = {"idk", "idk_dpo"}
STEPS = 2


def test_the_llm_methods_claim_vision_language():
    assert {"ga", "graddiff", "npo", "simnpo", "rmu", "idk", "idk_dpo", "asu"} <= set(VLM_METHODS)
    assert {"pmc", "tru", "salun", "esd"} <= set(OTHER_METHODS)


def _datamodule(idk: bool) -> FashionVQADataModule:
    collator = vqa_collator(alternatives={"idk": IdkAnswers(seed=0)} if idk else None)
    return FashionVQADataModule(
        collate_fn=collator, forget_classes=(7, 8), kinds=("name",), per_class=2, test_per_class=1, batch_size=2, seed=0
    )


class _Losses(pl.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values.append(float(outputs["loss"]))


@pytest.mark.parametrize("name", VLM_METHODS)
def test_method_unlearns_a_vlm(name):
    model = tiny_vlm(seed=0).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method = METHODS.build(name, **VLM_KWARGS.get(name, {}))
    module = UnlearningModule(
        model, method, task=VisionLanguageTask(), optimizer=lambda p: torch.optim.Adam(p, lr=1e-2), monitor=False
    )
    recorder = _Losses()
    trainer = make_trainer(max_steps=STEPS, max_epochs=STEPS, limit_val_batches=0, callbacks=[recorder])
    trainer.fit(module, datamodule=_datamodule(name in NEEDS_IDK))
    losses = recorder.values
    assert trainer.global_step == STEPS and len(losses) == STEPS
    assert all(math.isfinite(v) for v in losses), losses
    after = model.state_dict()
    moved = [k for k in before if not k.startswith("vision_tower.") and not torch.equal(before[k], after[k])]
    assert moved, f"{name} changed no weight"
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("vision_tower.")), "the frozen tower changed"


@pytest.mark.parametrize("name", OTHER_METHODS)
def test_other_methods_refuse_a_vlm(name):
    try:
        method = METHODS.build(name)
    except (TypeError, ValueError) as err:  # a method with a required argument (none so far)
        pytest.fail(f"{name} cannot be built with its defaults: {err}")
    with pytest.raises(TypeError, match=r"got VisionLanguageTask"):
        method.setup(tiny_vlm(seed=0), VisionLanguageTask())
