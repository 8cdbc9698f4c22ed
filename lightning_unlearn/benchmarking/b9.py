"""Benchmark B9's protocol: a small VLM from real parts, VLM-UnBench's prompt conditions and Safety Mirage's attack.

* The **original**: :class:`~lightning_unlearn.models.vlm.VisionLanguageModel` = EfficientNet-Lite0 (ImageNet
  weights, frozen) → a fresh 2-layer GELU projector → SmolLM2-135M-Instruct with a LoRA (rank 16 on every
  linear layer), trained in-process with :class:`~lightning_unlearn.training.SupervisedModule` + a Lightning
  ``Trainer`` on Fashion-MNIST visual QA of all five kinds (identification, four-choice, unsafe with harmful
  answers, safe, benign "How") — an *unaligned* VLM that names items, answers multiple-choice questions and
  also answers harmful questions. The LoRA is merged into the LM and the whole model cached
  (``$LIGHTNING_UNLEARN_CACHE/b9``) with its training time.
* The two harnesses live in :mod:`lightning_unlearn.evaluation.vlm`.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from lightning_unlearn import benchmarking

#: How the original VLM is trained (the LoRA is merged afterwards).
ORIGINAL_RECIPE = {
    "per_class": 150,
    "kinds": ["name", "mcq", "unsafe", "safe", "benign_how"],
    "steps": 300,
    "batch_size": 16,
    "lr": 5e-4,
    "lora": {"r": 16, "lora_alpha": 32, "target_modules": "all-linear"},
    "image_size": 64,
    "threads": 2,
}
#: Bump to invalidate the cached originals.
VERSION = 1


class _Progress(Callback):
    """Logs the training loss every 25 steps (the original trains for minutes)."""

    def __init__(self, log) -> None:
        self._log = log

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % 25 == 0:
            self._log(f"[b9] step {trainer.global_step}: loss {float(outputs['loss']):.4f}")


def build_vlm(image_size: int = ORIGINAL_RECIPE["image_size"]):
    """An untrained VLM (EfficientNet-Lite0 + projector + SmolLM2-135M-Instruct) and its tokenizer."""
    from lightning_unlearn.models.vlm import smollm2_vlm

    return smollm2_vlm(image_size=image_size)


def collator(model, tokenizer, **kwargs: Any):
    from lightning_unlearn.datamodules.vqa import VQACollator

    return VQACollator(tokenizer, model.image_token_id, model.num_image_tokens, **kwargs)


def original_vlm(seed: int = 0, recipe: dict[str, Any] | None = None, log=print) -> tuple[Any, Any, dict[str, Any]]:
    """The trained original VLM (cached), its tokenizer, and its cache entry ``{"seconds", "path", ...}``."""
    import lightning.pytorch as pl

    from lightning_unlearn.datamodules.forget_retain import ForgetRetainDataModule
    from lightning_unlearn.datamodules.vqa import fashion_vqa
    from lightning_unlearn.peft import apply_peft
    from lightning_unlearn.tasks.vision_language import VisionLanguageTask
    from lightning_unlearn.training import SupervisedModule

    recipe = {**ORIGINAL_RECIPE, **(recipe or {})}
    tokenizer_box: list[Any] = []

    def build():
        model, tokenizer = build_vlm(recipe["image_size"])
        tokenizer_box.append(tokenizer)
        return model

    def train(model):
        pl.seed_everything(seed, verbose=False)
        data = fashion_vqa("train", recipe["per_class"], recipe["kinds"], seed)
        dm = ForgetRetainDataModule(
            forget=data.subset(lambda e: e["kind"] == "unsafe"), retain=data.subset(lambda e: e["kind"] != "unsafe"),
            train_on="all", batch_size=recipe["batch_size"],
            collate_fn=collator(model, tokenizer_box[0]), seed=seed,
        )  # fmt: skip
        model.language_model = apply_peft(model.language_model, recipe["lora"])
        module = SupervisedModule(model, task=VisionLanguageTask(), optimizer=functools.partial(torch.optim.AdamW, lr=recipe["lr"]))
        trainer = benchmarking.quiet_trainer(max_steps=recipe["steps"], gradient_clip_val=1.0, callbacks=[_Progress(log)])
        trainer.fit(module, datamodule=dm)
        model.language_model = model.language_model.merge_and_unload()
        return model.eval()

    model, info = benchmarking.cached_weights("b9", "original", {"version": VERSION, "recipe": recipe, "seed": seed}, build, train, log)
    return model.eval(), tokenizer_box[0], info
