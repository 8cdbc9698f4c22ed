"""Benchmark B4's protocol: erase a concept from a text-conditioned diffusers UNet trained on Fashion-MNIST.

* The **original**: :func:`~lightning_unlearn.models.diffusion.concept_unet` (16×16, blocks (32, 64)) trained
  in-process with DDPM's ε-loss (:class:`~lightning_unlearn.tasks.DiffusionTask`, cosine schedule, 10% empty
  prompts for classifier-free guidance) through ``SupervisedModule`` + a Lightning ``Trainer``, cached on disk
  (``$LIGHTNING_UNLEARN_CACHE/b4``) with its training time.
* The **judge**: B1's :class:`~lightning_unlearn.models.SmallCNN` trained on real 16×16 Fashion-MNIST (cached).
* **Unlearning**: each method's ``configs/fashion_mnist_diffusion/<method>.yaml`` settings, run through
  ``UnlearningModule`` + ``Trainer`` on :class:`~lightning_unlearn.datamodules.FashionMNISTConceptDataModule`.
* **Metrics** on DDIM generations (:class:`~lightning_unlearn.models.diffusion.ConceptDiffusionPipeline`): the
  judge's accuracy on the erased concept's training captions and held-out paraphrases (lower is better), on the
  other concepts (must hold), time as a fraction of the original's training time, peak memory (RSS).
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from lightning_unlearn import benchmarking
from lightning_unlearn._cache import cache_folder

#: The UNet B4 erases from (arguments of :func:`~lightning_unlearn.models.diffusion.concept_unet`).
UNET = {"sample_size": 16, "block_out_channels": [32, 64], "layers_per_block": 1, "attention_head_dim": 8}
#: How the original is trained.
ORIGINAL_RECIPE = {"steps": 300, "batch_size": 64, "lr": 2e-3, "uncond_prob": 0.1, "threads": 2}
#: How the judge is trained.
JUDGE_RECIPE = {"epochs": 2, "batch_size": 128, "lr": 1e-3}
#: Bump to invalidate the cached originals and judges.
VERSION = 1


def _task():
    from lightning_unlearn.models.diffusion import prompt_embeddings
    from lightning_unlearn.tasks.diffusion import DiffusionTask

    return DiffusionTask(prompt_encoder=prompt_embeddings)


def build_unet(**overrides: Any):
    from lightning_unlearn.models.diffusion import concept_unet

    return concept_unet(**{**UNET, **overrides})


def _cached(kind: str, config: dict[str, Any], build, train, log=print) -> tuple[Any, dict[str, Any]]:
    """Load ``kind``'s weights for ``config`` from the cache, or train them (``train(model) -> None``) and store them."""
    key = benchmarking.config_hash({"kind": kind, "version": VERSION, **config})
    folder = cache_folder("b4")
    weights, meta = folder / f"{kind}-{key}.pt", folder / f"{kind}-{key}.json"
    model = build()
    if weights.is_file() and meta.is_file():
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return model, {**json.loads(meta.read_text()), "path": str(weights), "cached": True}
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(int(config.get("threads", threads)))
    try:
        train(model)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    tmp = weights.with_suffix(f".tmp{os.getpid()}")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, weights)
    info = {"config": config, "seconds": seconds, "threads": int(config.get("threads", threads)), "trained_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    benchmarking.write_json(meta, info)
    log(f"[b4] trained {kind} in {seconds:.1f}s -> {weights}")
    return model, {**info, "path": str(weights), "cached": False}


class _Progress(Callback):
    """Logs the training loss every 25 steps (the original trains for minutes)."""

    def __init__(self, log) -> None:
        self.log = log

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % 25 == 0:
            self.log(f"[b4] step {trainer.global_step}: loss {float(outputs['loss']):.4f}")


def original_unet(seed: int = 0, recipe: dict[str, Any] | None = None, log=print) -> tuple[Any, dict[str, Any]]:
    """The trained original UNet (cached) and its cache entry ``{"seconds", "path", ...}``."""
    import lightning.pytorch as pl

    from lightning_unlearn.datamodules.diffusion import FashionMNISTConceptDataModule
    from lightning_unlearn.training import SupervisedModule

    recipe = {**ORIGINAL_RECIPE, **(recipe or {})}

    def train(model) -> None:
        pl.seed_everything(seed, verbose=False)
        dm = FashionMNISTConceptDataModule(
            forget_class=0, train_on="all", batch_size=recipe["batch_size"], uncond_prob=recipe["uncond_prob"], seed=seed
        )
        module = SupervisedModule(model, task=_task(), optimizer=functools.partial(torch.optim.AdamW, lr=recipe["lr"]))
        trainer = benchmarking.quiet_trainer(max_steps=recipe["steps"], gradient_clip_val=1.0, callbacks=[_Progress(log)])
        trainer.fit(module, datamodule=dm)

    return _cached("original", {"unet": UNET, "recipe": recipe, "seed": seed}, build_unet, train, log)


def judge(seed: int = 0, log=print) -> tuple[Any, dict[str, Any]]:
    """SmallCNN trained on real 16×16 Fashion-MNIST in ``[−1, 1]`` (cached) and its test accuracy."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_unlearn.datamodules.diffusion import load_captioned_fashion_mnist
    from lightning_unlearn.models.cnn import SmallCNN
    from lightning_unlearn.training import SupervisedModule

    def build():
        return SmallCNN(image_size=UNET["sample_size"])

    def train(model) -> None:
        pl.seed_everything(seed, verbose=False)
        data = load_captioned_fashion_mnist("train", UNET["sample_size"])
        loader = DataLoader(TensorDataset(data.images, data.targets), batch_size=JUDGE_RECIPE["batch_size"], shuffle=True)
        module = SupervisedModule(model, optimizer=functools.partial(torch.optim.Adam, lr=JUDGE_RECIPE["lr"]))
        benchmarking.quiet_trainer(max_epochs=JUDGE_RECIPE["epochs"]).fit(module, loader)

    model, info = _cached("judge", {"recipe": JUDGE_RECIPE, "size": UNET["sample_size"], "seed": seed, "threads": 2}, build, train, log)
    model.eval()
    if "test_acc" not in info:
        test = load_captioned_fashion_mnist("test", UNET["sample_size"])
        with torch.no_grad():
            info["test_acc"] = float((model(test.images).argmax(1) == test.targets).float().mean())
    return model, info


@torch.no_grad()
def concept_accuracy(
    unet, judge_model, concepts: list[int], templates, per_prompt: int, steps: int, guidance: float, seed: int
) -> dict[int, float]:
    """The judge's accuracy (fraction classified as the prompted concept) on ``per_prompt`` generations per caption."""
    from lightning_unlearn.models.diffusion import ConceptDiffusionPipeline, captions

    pipe = ConceptDiffusionPipeline(unet)
    out: dict[int, float] = {}
    for concept in concepts:
        prompts = captions(concept, templates)
        images = pipe(prompts, num_images=per_prompt, num_inference_steps=steps, guidance_scale=guidance, generator=torch.Generator().manual_seed(seed + concept))
        out[concept] = float((judge_model(images * 2 - 1).argmax(1) == concept).float().mean())
    return out


def _run_name() -> str:
    return Path(__file__).stem


def write_results(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    return benchmarking.write_json(path, {"command": benchmarking.command_line(), "commit": benchmarking.git_commit(), **payload})
