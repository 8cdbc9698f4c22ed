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

from lightning_unlearn import benchmarking

#: The UNet B4 erases from (arguments of :func:`~lightning_unlearn.models.diffusion.concept_unet`).
UNET = {"sample_size": 16, "block_out_channels": [32, 64], "layers_per_block": 1, "attention_head_dim": 8}
#: How the original is trained.
ORIGINAL_RECIPE = {"steps": 250, "batch_size": 64, "lr": 3e-3, "uncond_prob": 0.1, "threads": 1}
#: How the judge is trained.
JUDGE_RECIPE = {"epochs": 1, "batch_size": 128, "lr": 1e-3}
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
    return benchmarking.cached_weights("b4", kind, {"version": VERSION, **config}, build, train, log)


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
        trainer = benchmarking.quiet_trainer(max_steps=recipe["steps"], gradient_clip_val=1.0, callbacks=[benchmarking.LossProgress("b4", log)])
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

    model, info = _cached("judge", {"recipe": JUDGE_RECIPE, "size": UNET["sample_size"], "seed": seed, "threads": 1}, build, train, log)
    model.eval()
    test = load_captioned_fashion_mnist("test", UNET["sample_size"])
    with torch.no_grad():
        right = sum(int((model(x).argmax(1) == y).sum()) for x, y in zip(test.images.split(500), test.targets.split(500)))
    info["test_acc"] = right / len(test)
    return model, info


@torch.no_grad()
def concept_accuracy(
    unet, judge_model, concepts: list[int], templates, per_prompt: int, steps: int, guidance: float, seed: int,
    images: dict[int, torch.Tensor] | None = None,
) -> dict[int, float]:  # fmt: skip
    """The judge's accuracy (fraction classified as the prompted concept) on ``per_prompt`` generations per caption;
    ``images`` (if given) receives each concept's generations, in ``[0, 1]``."""
    from lightning_unlearn.models.diffusion import ConceptDiffusionPipeline, captions

    pipe = ConceptDiffusionPipeline(unet)
    out: dict[int, float] = {}
    for concept in concepts:
        prompts = captions(concept, templates)
        generated = pipe(prompts, num_images=per_prompt, num_inference_steps=steps, guidance_scale=guidance, generator=torch.Generator().manual_seed(seed + concept))
        out[concept] = judged_share(judge_model, generated, concept)
        if images is not None:
            images[concept] = generated
    return out


@torch.no_grad()
def judged_share(judge_model: torch.nn.Module, images: torch.Tensor, concept: int) -> float:
    """The share of ``images`` (in ``[0, 1]``) the judge classifies as ``concept``."""
    return float((judge_model(images * 2 - 1).argmax(1) == concept).float().mean())


class JudgeFeatures(torch.nn.Module):
    """The judge's penultimate features of images in ``[0, 1]``: the feature extractor of B4's Fréchet distance
    (torchmetrics' FID with a custom ``feature`` module; ``num_features`` tells it the width)."""

    def __init__(self, judge_model: torch.nn.Module) -> None:
        super().__init__()
        self.judge = judge_model
        self.num_features = int(judge_model.head.in_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.judge.penultimate(self.judge.features(images.float() * 2 - 1))


#: Real test images per concept that B4's Fréchet distance compares generations with.
FID_REAL_PER_CONCEPT = 100
#: The optimised-prompt attack (:func:`~lightning_unlearn.attacks.prompt_embedding_attack`): Adam steps on the
#: embedding, its lr, images per step, and how many real test images of the erased concept the attacker holds.
ATTACK = {"steps": 50, "lr": 1e-2, "batch_size": 16, "images": 64}


def attack_accuracy(unet, judge_model, per_prompt: int, steps: int = 10, guidance: float = 3.0, seed: int = 0,
                    images: torch.Tensor | None = None) -> dict[str, float]:  # fmt: skip
    """The erased concept's accuracy under an optimised prompt: the embedding of its first training caption optimised
    to denoise ``images`` of it in ``[−1, 1]`` (default: :func:`attack_images`), then ``4 × per_prompt`` generations
    from it judged; and the attack's final denoising loss."""
    from lightning_unlearn.attacks import prompt_embedding_attack
    from lightning_unlearn.models.diffusion import ConceptDiffusionPipeline, captions, prompt_embeddings

    target = attack_images() if images is None else images
    init = prompt_embeddings([captions(FORGET_CLASS)[0]])
    embeds, losses = prompt_embedding_attack(
        unet, _task(), target, init, steps=ATTACK["steps"], lr=ATTACK["lr"], batch_size=ATTACK["batch_size"], seed=seed
    )
    generated = ConceptDiffusionPipeline(unet)(
        prompt_embeds=embeds, num_images=4 * per_prompt, num_inference_steps=steps, guidance_scale=guidance,
        generator=torch.Generator().manual_seed(seed + 300),
    )  # fmt: skip
    return {"attack_acc": 100 * judged_share(judge_model, generated, FORGET_CLASS), "attack_loss": losses[-1]}


def attack_images() -> torch.Tensor:
    """The attacker's images of the erased concept: :data:`ATTACK` ``["images"]`` real test images, in ``[−1, 1]``."""
    return real_images([FORGET_CLASS], ATTACK["images"]) * 2 - 1


@torch.no_grad()
def judge_fid(judge_model: torch.nn.Module, generated: torch.Tensor, real: torch.Tensor) -> float:
    """Fréchet distance between ``generated`` and ``real`` images (both ``[N, 1, H, W]`` in ``[0, 1]``) in the
    judge's feature space: torchmetrics' ``FrechetInceptionDistance`` with :class:`JudgeFeatures` as its feature
    extractor (not Inception: 16×16 grey images are far from ImageNet's, and the judge is what B4 trusts)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=JudgeFeatures(judge_model).eval(), normalize=True)
    fid.update(real, real=True)
    fid.update(generated, real=False)
    return float(fid.compute())


def real_images(concepts: list[int], per_concept: int = FID_REAL_PER_CONCEPT) -> torch.Tensor:
    """The first ``per_concept`` Fashion-MNIST test images of each concept, 16×16 in ``[0, 1]``."""
    from lightning_unlearn.datamodules.diffusion import load_captioned_fashion_mnist

    test = load_captioned_fashion_mnist("test", UNET["sample_size"])
    picked = [torch.nonzero(test.targets == c).flatten()[:per_concept] for c in concepts]
    return (test.images[torch.cat(picked)] + 1) / 2


def write_results(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    return benchmarking.write_json(path, {"command": benchmarking.command_line(), "commit": benchmarking.git_commit(), **payload})


#: The methods B4 runs, in table order (each has ``configs/fashion_mnist_diffusion/<name>.yaml``).
METHODS = ("esd", "salun_diffusion", "spare", "razor_diffusion")
#: The concept B4 erases ("sneaker").
FORGET_CLASS = 7


def method_settings(name: str) -> dict[str, Any]:
    """``{"class_path", "init_args", "lr", "max_steps", "batch_size", "retain_batch_size"}`` of a shipped config."""
    from lightning_unlearn import configs

    config = configs.load_config(f"fashion_mnist_diffusion/{name}")
    model = config["model"]["init_args"]
    data = config["data"]["init_args"]
    return {
        "class_path": model["method"]["class_path"],
        "init_args": dict(model["method"].get("init_args") or {}),
        "lr": float(model["optimizer"]["init_args"]["lr"]),
        "max_steps": int(config["trainer"]["max_steps"]),
        "batch_size": int(data["batch_size"]),
        "retain_batch_size": int(data["retain_batch_size"]),
    }


def unlearn(name: str, original_state: dict[str, Any], seed: int, max_steps: int | None = None, log=print,
            memory: dict[str, float] | None = None) -> tuple[Any, float]:  # fmt: skip
    """Unlearn the original with method ``name`` (its config's settings) through ``UnlearningModule`` + ``Trainer``;
    returns the unlearned UNet and the seconds it took (setup, e.g. saliency, included). ``memory`` (if given)
    receives the process's peak RSS during the fit and its RSS when the fit started (MB,
    :class:`~lightning_unlearn.benchmarking.PeakRSS`)."""
    import lightning.pytorch as pl

    from lightning_unlearn.configs import instantiate
    from lightning_unlearn.datamodules.diffusion import FashionMNISTConceptDataModule
    from lightning_unlearn.module import UnlearningModule

    settings = method_settings(name)
    method = instantiate(settings, seed=seed)
    pl.seed_everything(seed, verbose=False)
    dm = FashionMNISTConceptDataModule(
        forget_class=FORGET_CLASS, batch_size=settings["batch_size"], retain_batch_size=settings["retain_batch_size"], seed=seed,
        eval_batch_size=64, max_eval_samples=256,
    )  # fmt: skip
    unet = build_unet()
    unet.load_state_dict(original_state)
    task = _task()
    task.reseed(seed)
    module = UnlearningModule(unet, method, task=task, optimizer=functools.partial(torch.optim.AdamW, lr=settings["lr"]), monitor=False)
    steps = max_steps or settings["max_steps"]
    with benchmarking.PeakRSS() as rss:
        start_mb = rss.peak / 2**20
        start = time.perf_counter()
        benchmarking.quiet_trainer(max_steps=steps, max_epochs=1).fit(module, datamodule=dm)
        seconds = time.perf_counter() - start
    if memory is not None:
        memory.update({"peak_rss_mb": rss.mb, "start_rss_mb": start_mb})
    log(f"[b4] {name} seed={seed}: {steps} steps in {seconds:.1f}s")
    return module.model, seconds


def evaluate(unet, judge_model, per_prompt: int, steps: int = 10, guidance: float = 3.0, seed: int = 0,
             real: torch.Tensor | None = None) -> dict[str, float]:  # fmt: skip
    """The judge's accuracy on generations: the erased concept under its training captions and under held-out
    paraphrases, and the mean over the other nine concepts (one training caption each); and the Fréchet distance
    (:func:`judge_fid`) of the other concepts' generations to ``real`` images of them (default :func:`real_images`)."""
    from lightning_unlearn.models.diffusion import CONCEPTS, PARAPHRASE_TEMPLATES, TRAIN_TEMPLATES

    forget = concept_accuracy(unet, judge_model, [FORGET_CLASS], TRAIN_TEMPLATES, per_prompt, steps, guidance, seed)
    para = concept_accuracy(unet, judge_model, [FORGET_CLASS], PARAPHRASE_TEMPLATES, per_prompt, steps, guidance, seed + 100)
    others = [c for c in range(len(CONCEPTS)) if c != FORGET_CLASS]
    generated: dict[int, torch.Tensor] = {}
    other = concept_accuracy(unet, judge_model, others, TRAIN_TEMPLATES[:1], per_prompt, steps, guidance, seed + 200, images=generated)
    return {
        "forget_acc": 100 * forget[FORGET_CLASS],
        "paraphrase_acc": 100 * para[FORGET_CLASS],
        "other_acc": 100 * sum(other.values()) / len(other),
        "other_fid": judge_fid(judge_model, torch.cat([generated[c] for c in others]), real_images(others) if real is None else real),
    }


def run(methods=METHODS, seeds=(0,), quick: bool = False, log=print) -> dict[str, Any]:
    """B4: for every seed, unlearn the cached original with every method and score generations with the judge.

    One original (seed 0) is trained and cached; seeds vary the unlearning (data order, noise draws, LoRA init) and
    the generation noise. ``quick``: 20 unlearning steps and 4 images per prompt (else the configs' steps and 8).
    """
    original, info = original_unet(0, log=log)
    judge_model, judge_info = judge(0, log=log)
    state = {k: v.clone() for k, v in original.state_dict().items()}
    per_prompt = 4 if quick else 8
    real = real_images([c for c in range(10) if c != FORGET_CLASS])  # loaded once for every model and seed
    target = attack_images()

    def scores(unet, seed: int) -> dict[str, float]:
        return {**evaluate(unet, judge_model, per_prompt, seed=seed, real=real), **attack_accuracy(unet, judge_model, per_prompt, seed=seed, images=target)}

    rows: list[dict[str, Any]] = []
    for seed in seeds:
        base = scores(original, seed)
        rows.append({"method": "original", "seed": seed, "seconds": info["seconds"], **base})
        log(f"[b4] original seed={seed}: {base}")
        for name in methods:
            memory: dict[str, float] = {}
            unet, seconds = unlearn(name, state, seed, max_steps=20 if quick else None, log=log, memory=memory)
            measured = scores(unet, seed)
            rows.append({"method": name, "seed": seed, "seconds": seconds, "time_ratio": seconds / info["seconds"], **memory, **measured})
            log(f"[b4] {name} seed={seed}: {measured}")
    return {"original": info, "judge": judge_info, "per_prompt": per_prompt, "attack": ATTACK, "fid_real_per_concept": FID_REAL_PER_CONCEPT, "rows": rows}


def table(result: dict[str, Any]) -> str:
    """Markdown table, mean ± std over seeds per method."""
    rows = result["rows"]
    names = list(dict.fromkeys(r["method"] for r in rows))
    body = []
    for name in names:
        mine = [r for r in rows if r["method"] == name]
        cells = [name, str(len(mine))]
        for key in ("forget_acc", "paraphrase_acc", "attack_acc", "other_acc", "other_fid"):
            values = [r[key] for r in mine if key in r]  # results from before the FID column have none
            cells.append(benchmarking.fmt_pm(*benchmarking.mean_std(values), digits=1) if values else "—")
        cells.append(f"{benchmarking.mean_std([r['seconds'] for r in mine])[0]:.0f}")
        ratio = [r["time_ratio"] for r in mine if "time_ratio" in r]
        cells.append(benchmarking.fmt_pm(*benchmarking.mean_std(ratio), digits=3) if ratio else "1 (training)")
        peak = [r["peak_rss_mb"] - r["start_rss_mb"] for r in mine if "peak_rss_mb" in r]
        cells.append(f"{benchmarking.mean_std(peak)[0]:.0f}" if peak else "—")
        body.append(cells)
    header = [
        "method", "seeds", "erased concept acc % (↓)", "paraphrases acc % (↓)", "optimised-prompt attack acc % (↓)", "other concepts acc % (↑)",
        "other concepts FID (judge features, ↓)", "seconds", "time / original's training", "peak RSS during the fit − at its start (MB)",
    ]  # fmt: skip
    return benchmarking.markdown_table(header, body)


def merge_results(paths) -> dict[str, Any]:
    """One result from the JSON files of several runs (e.g. one seed each, run side by side): their rows together."""
    results = [json.loads(Path(p).read_text()) for p in paths]
    rows = [row for result in results for row in result["rows"]]
    return {**{k: v for k, v in results[0].items() if k not in ("rows", "command")}, "rows": rows, "merged": [str(p) for p in paths]}
