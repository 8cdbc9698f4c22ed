#!/usr/bin/env python
"""B4 side by side: peer implementations of SPARE (the authors' ``vision-unlearning==1.0.0``) and ESD
(``unlearn-diff==2.0.9``) beside this library's, on benchmark B4's diffusion UNet, in one process, scored by B4's
own evaluation.

For every seed, both start from the same cached original UNet (:func:`lightning_unlearn.benchmarking.b4.original_unet`,
seed 0, as B4 does) and run the same number of optimizer steps (``--steps``, default the configs' 40):

* **ours**: ``b4.unlearn(method, ...)`` — ``configs/fashion_mnist_diffusion/<method>.yaml`` through
  ``UnlearningModule`` + ``Trainer``.
* **peer SPARE** (``--method spare``, scratch venv ``venv_peer``):
  ``vision_unlearning.unlearner.fade.UnlearnerLoraDistillationSparsePerModule`` (SPARE / "FADE", sparse per module).
  Its ``train()`` loads a Stable Diffusion checkpoint, tokenizer, VAE and datasets from the hub, so this script sets
  the objects ``train()`` would build — ``_unet`` (our UNet), ``_noise_scheduler`` (B4's DDPM schedule), an identity
  VAE, an identity "text encoder" over precomputed MiniLM prompt states, an ``Accelerator``, the optimizer / constant
  lr scheduler / ``_lora_layers`` as ``train()`` builds them — then calls the peer's own ``_get_lora_config()`` (its
  saliency localisation and module selection), ``unet.add_adapter`` (as ``train()``), and the peer's
  ``_train_one_batch(forget, retain)`` once per step inside ``accelerator.accumulate``, on the batches of our
  forget/retain loaders (:class:`~lightning_unlearn.datamodules.FashionMNISTConceptDataModule`, built as
  ``b4.unlearn`` builds it). ``torch.cuda.synchronize`` / ``max_memory_allocated`` (called unconditionally in
  ``_train_one_batch``) are no-ops during the peer's steps only. Variants: ``as-is`` (the peer ranks every
  Linear/Conv module) and ``attention`` (its ranking restricted to the attention projections ours ranks).
* **peer ESD** (``--method esd``, scratch venv ``venv_esd``): ``mu.algorithms.esd.ESDTrainer.train()`` on an
  ``ldm``-like wrapper of our UNet (:class:`LdmLike`) with CompVis' ``DDIMSampler`` from the same package.

Every UNet (and the original, for reference) is scored by ``b4.evaluate`` + ``b4.attack_accuracy`` with B4's judge,
8 images per prompt (``--quick``: 4) and the seed as generation seed, exactly as ``b4.run`` scores them.

Setup: scratch venvs that reuse torch/diffusers/peft/lightning_unlearn from the project's ``.venv`` through a ``.pth``
file, so nothing is installed into ``.venv``. Run from the repository root::

    for V in venv_peer venv_esd; do
      python3 -m venv /work/scratch/$V
      SP=/work/scratch/$V/lib/python3.11/site-packages
      echo "import site; site.addsitedir('$PWD/.venv/lib/python3.11/site-packages')" > $SP/zz_project_env.pth
      .venv/bin/python benchmarks/peers/b4_peers.py --write-standins $SP   # placeholder modules, see STANDINS
    done
    /work/scratch/venv_peer/bin/pip install --no-deps vision-unlearning==1.0.0
    /work/scratch/venv_peer/bin/pip install --no-deps datasets dill multiprocess pyarrow pandas   # imported at module level
    /work/scratch/venv_esd/bin/pip install --no-deps unlearn-diff==2.0.9
    /work/scratch/venv_esd/bin/pip install --no-deps omegaconf antlr4-python3-runtime==4.9.3 einops pandas

Run::

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 /work/scratch/venv_peer/bin/python benchmarks/peers/b4_peers.py --seeds 0 1 2
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 /work/scratch/venv_esd/bin/python benchmarks/peers/b4_peers.py --method esd --seeds 0 1 2
    ... --steps 40 --quick      # 4 images per prompt instead of 8

Writes ``benchmarks/results/b4_peers.json`` (ESD: ``b4_peers_esd.json``; ``--out``) and a log next to it, and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import b4

PEER = "vision-unlearning==1.0.0"


# ---------------------------------------------------------------------------------------------- peer plumbing
class IdentityVAE:
    """Stands in for the peer's ``AutoencoderKL``: B4's UNet denoises 1×16×16 pixels in [−1, 1], no latents."""

    config = SimpleNamespace(scaling_factor=1.0)

    def encode(self, pixels: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(latent_dist=SimpleNamespace(sample=lambda: pixels))


class StatesEncoder:
    """Stands in for the peer's ``CLIPTextModel``: the batch's ``input_ids`` / ``forget_ids`` already hold the
    MiniLM prompt states ``[B, L, 384]`` that B4's UNet cross-attends to; returns them as ``(states,)``."""

    def __call__(self, states: torch.Tensor, return_dict: bool = False) -> tuple[torch.Tensor]:
        return (states,)


@contextlib.contextmanager
def no_cuda_calls():
    """``_train_one_batch`` calls ``torch.cuda.synchronize()`` / ``max_memory_allocated()`` for its peak-memory
    log; on a CPU-only torch the first raises. No-ops inside the block only."""
    saved = torch.cuda.synchronize, torch.cuda.max_memory_allocated
    torch.cuda.synchronize = lambda *a, **k: None
    torch.cuda.max_memory_allocated = lambda *a, **k: 0
    try:
        yield
    finally:
        torch.cuda.synchronize, torch.cuda.max_memory_allocated = saved


def peer_batch(batch: dict[str, torch.Tensor], overwrite: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """One of our datamodule's batches in the peer's format: ``pixel_values``, ``input_ids`` (here: prompt states)
    and, for forget batches, ``forget_ids`` (the states of the concept each sample is remapped to)."""
    out = {"pixel_values": batch["pixel_values"], "input_ids": batch["encoder_hidden_states"]}
    if overwrite is not None:
        out["forget_ids"] = overwrite
    return out


#: Peer variants: ``"as-is"`` lets the peer rank every Linear/Conv module of the UNet (its code's behaviour);
#: ``"attention"`` gives its selection only the attention projections that ours ranks (``target_modules``), by
#: filtering the saliency dict its own attribution method returns.
VARIANTS = {"as-is": PEER, "attention": f"{PEER}, candidates = attention projections"}


def attention_saliency(target_modules: list[str]):
    """The peer's ``ParameterAttributionMethodSaliency``, its result restricted to the weights of the modules whose
    names end with one of ``target_modules`` (our SPARE's candidates)."""
    from vision_unlearning.utils.parameter_attribution import ParameterAttributionMethodSaliency

    class AttentionOnly(ParameterAttributionMethodSaliency):
        suffixes: list[str]

        def attribute(self, **kwargs: Any) -> dict[str, torch.Tensor]:
            saliency = super().attribute(**kwargs)
            keep = tuple("." + t + ".weight" for t in self.suffixes)
            return {k: v for k, v in saliency.items() if k.endswith(keep)}

    return AttentionOnly(suffixes=list(target_modules))


def peer_spare(original_state: dict[str, Any], seed: int, steps: int, log, info: dict[str, Any], variant: str = "as-is") -> tuple[Any, float]:
    """Unlearn with the peer's ``UnlearnerLoraDistillationSparsePerModule`` for ``steps`` optimizer steps; returns
    the UNet (peft adapters injected, enabled) and the seconds from the saliency pass to the last step."""
    import accelerate
    import lightning.pytorch as pl
    from diffusers.optimization import get_scheduler
    from vision_unlearning.unlearner.fade import UnlearnerLoraDistillationSparsePerModule
    from vision_unlearning.utils.gradient_weighting import GradientWeightingMethodSimple
    from vision_unlearning.utils.parameter_attribution import ParameterAttributionMethodSaliency

    from lightning_unlearn.datamodules.diffusion import FashionMNISTConceptDataModule
    from lightning_unlearn.methods.spare import SPARE

    settings = b4.method_settings("spare")  # the library's config: the same hyper-parameters for the peer
    hp = settings["init_args"]
    if settings["batch_size"] != settings["retain_batch_size"]:
        raise ValueError("the peer trims forget and retain batches to one size; give them one batch size")
    pl.seed_everything(seed, verbose=False)  # what the peer's train() does first (transformers.set_seed: the same RNGs)
    dm = FashionMNISTConceptDataModule(
        forget_class=b4.FORGET_CLASS, batch_size=settings["batch_size"], retain_batch_size=settings["retain_batch_size"], seed=seed,
        eval_batch_size=64, max_eval_samples=256,
    )  # fmt: skip
    dm.setup("fit")
    unet = b4.build_unet()
    unet.load_state_dict(original_state)
    workdir = tempfile.mkdtemp(prefix="b4_peer_spare_")
    peer = UnlearnerLoraDistillationSparsePerModule(
        model_name_or_path="(not loaded: B4's cached original UNet is set as _unet)",
        dataset_forget_name="(not loaded: B4's forget loader)",
        dataset_retain_name="(not loaded: B4's retain loader)",
        gradient_weighting_method=GradientWeightingMethodSimple(forget_weight=hp["forget_weight"], retain_weight=hp["retain_weight"]),
        parameter_attribution_method=(
            ParameterAttributionMethodSaliency() if variant == "as-is" else attention_saliency(SPARE(**hp).target_modules)
        ),
        sparsity_inclusiveness=hp["module_fraction"],
        lora_r=hp["rank"],
        lora_alpha=int(hp["lora_alpha"]),
        learning_rate=settings["lr"],
        lr_scheduler_type="constant",
        lr_warmup_steps=0,
        max_grad_norm=5.0,  # its benchmark's value; see README: the clip receives no parameters in train() either
        per_device_train_batch_size=settings["batch_size"],
        gradient_accumulation_steps=1,
        max_train_steps=steps,
        mixed_precision="no",
        device="cpu",
        seed=seed,
        output_dir=workdir,
        attribution_overwrite_if_exists=True,
        report_to="none",
    )
    if float(peer.lora_alpha) != float(hp["lora_alpha"]):
        raise ValueError(f"the peer's lora_alpha is an int; {hp['lora_alpha']} does not fit")
    peer._pre_checks()
    accelerator = accelerate.Accelerator(cpu=True, mixed_precision="no", gradient_accumulation_steps=1)
    task = b4._task()
    peer._accelerator = accelerator
    peer._noise_scheduler = task.scheduler  # B4's DDPM schedule (cosine, T = 1000, ε-prediction)
    peer._vae, peer._text_encoder, peer._tokenizer = IdentityVAE(), StatesEncoder(), None
    unet.requires_grad_(False)  # as train() leaves the loaded UNet
    peer._unet = unet

    start = time.perf_counter()
    # Localisation: the peer's saliency over the forget batches it is given. Ours uses the first `max_batches` batches
    # of the unshuffled forget loader; the peer gets the same batches (its own loader would be the whole forget set).
    saliency_batches = []
    for i, batch in enumerate(dm.forget_dataloader(shuffle=False)):
        if hp.get("max_batches") is not None and i >= hp["max_batches"]:
            break
        saliency_batches.append(peer_batch(batch))
    peer._train_forget_dataloader = saliency_batches
    lora_config = peer._get_lora_config()
    unet.add_adapter(lora_config)
    info["selected"] = list(peer.target_modules)
    info["lora_init"] = str(lora_config.init_lora_weights)
    # As train(): `_lora_layers` is a filter over the trainable parameters, consumed by the optimizer it builds.
    peer._lora_layers = filter(lambda p: p.requires_grad, unet.parameters())
    peer._optimizer = torch.optim.AdamW(
        peer._lora_layers, lr=peer.learning_rate, betas=(peer.adam_beta1, peer.adam_beta2),
        weight_decay=peer.adam_weight_decay, eps=peer.adam_epsilon,
    )  # fmt: skip
    info["clip_params"] = len(list(peer._lora_layers))  # what `clip_grad_norm_(self._lora_layers, ...)` receives
    peer._lr_scheduler = get_scheduler(peer.lr_scheduler_type, optimizer=peer._optimizer, num_warmup_steps=0, num_training_steps=steps)
    peer._unet, peer._optimizer, peer._lr_scheduler = accelerator.prepare(peer._unet, peer._optimizer, peer._lr_scheduler)
    info["trainable"] = sum(p.numel() for p in unet.parameters() if p.requires_grad)
    losses = []
    peer._unet.train()
    with no_cuda_calls():
        for step, (forget, retain) in enumerate(zip(dm.forget_dataloader(), dm.retain_dataloader())):
            if step >= steps:
                break
            # Surrogate: our config has none, so ours remaps each forget sample to the retain batch's prompt (other
            # concepts, cycled); the peer's per-example overwrite captions (`json_metafile` + `overwrite_column`)
            # express the same mapping: forget_ids = the retain batch's prompt states.
            size = min(len(forget["pixel_values"]), len(retain["pixel_values"]))
            overwrite = retain["encoder_hidden_states"][torch.arange(size) % len(retain["pixel_values"])]
            f = {k: v[:size] for k, v in peer_batch(forget, overwrite).items()}
            r = {k: v[:size] for k, v in peer_batch(retain).items()}
            with accelerator.accumulate(peer._unet):
                loss_f, loss_r = peer._train_one_batch(f, r)
            losses.append((float(loss_f.detach()), float(loss_r.detach())))
    seconds = time.perf_counter() - start
    info["losses_first_last"] = [losses[0], losses[-1]] if losses else []
    info["steps"] = len(losses)
    log(f"[b4_peers] peer ({variant}) spare seed={seed}: {len(losses)} steps in {seconds:.1f}s; {len(info['selected'])} modules with LoRA "
        f"({info['trainable']} trainable); L_f {losses[0][0]:.4f} -> {losses[-1][0]:.4f}, L_r {losses[0][1]:.5f} -> {losses[-1][1]:.5f}")  # fmt: skip
    peer._unet.eval()
    shutil.rmtree(workdir, ignore_errors=True)  # the peer's attribution.pt
    return unet, seconds


# ---------------------------------------------------------------------------------------------- ESD (unlearn-diff)
ESD_PEER = "unlearn-diff==2.0.9"
#: unlearn-diff's ESD settings that have no counterpart in ours: its shipped defaults (train_config.yaml).
ESD_PEER_DEFAULTS = {"start_guidance": 0.1, "ddim_steps": 50}


class LdmLike(torch.nn.Module):
    """What unlearn-diff's ``ESDTrainer`` and CompVis ``DDIMSampler`` use of an ``ldm`` ``LatentDiffusion``, around
    B4's UNet: ``.model.diffusion_model`` (the UNet: parameter names ``diffusion_model.<diffusers name>``, which the
    trainer's ``train_method`` filters), ``apply_model(x, t, c)``, ``get_learned_conditioning(prompts)`` (MiniLM
    states), the DDPM buffers of B4's schedule, ``num_timesteps``, ``device``, ``parameterization``.

    The trainer and its ``sample_model`` hard-code 4 latent channels (``[B, 4, size/8, size/8]``); B4's UNet has 1.
    ``apply_model`` treats the 4 channels as 4 independent 1-channel images (the batch of 1 becomes 4 images, each
    with its own noise), and the trainer runs at ``image_size`` 128 so that latents are 16×16."""

    parameterization = "eps"

    def __init__(self, unet: torch.nn.Module, scheduler: Any, encode) -> None:
        super().__init__()
        self.model = torch.nn.Module()
        self.model.diffusion_model = unet
        alphas_cumprod = scheduler.alphas_cumprod.float()
        self.num_timesteps = int(alphas_cumprod.shape[0])
        self.register_buffer("betas", scheduler.betas.float())
        self.register_buffer("alphas_cumprod", alphas_cumprod)
        self.register_buffer("alphas_cumprod_prev", torch.cat([torch.ones(1), alphas_cumprod[:-1]]))
        self.register_buffer("sqrt_one_minus_alphas_cumprod", (1 - alphas_cumprod).sqrt())
        self._encode = encode
        self.calls = 0  # apply_model calls: shows how many DDIM steps the trainer's sampling really runs

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def get_learned_conditioning(self, prompts: list[str]) -> torch.Tensor:
        return self._encode(list(prompts))

    def apply_model(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        b, ch, h, w = x.shape
        eps = self.model.diffusion_model(
            x.reshape(b * ch, 1, h, w), t.reshape(-1).expand(b).repeat_interleave(ch), encoder_hidden_states=c.repeat_interleave(ch, 0)
        ).sample  # fmt: skip
        return eps.reshape(b, ch, h, w)


def import_esd_peer():
    """unlearn-diff's ``ESDTrainer`` and CompVis ``DDIMSampler``. Its helpers import
    ``pytorch_lightning.utilities.distributed.rank_zero_only`` (removed in Lightning 2): a one-name shim module is
    registered for it. ``DDIMSampler.register_buffer`` moves every buffer to CUDA: patched to keep it in place."""
    import sys
    import types

    if "pytorch_lightning.utilities.distributed" not in sys.modules:
        from pytorch_lightning.utilities import rank_zero_only

        shim = types.ModuleType("pytorch_lightning.utilities.distributed")
        shim.rank_zero_only = rank_zero_only
        sys.modules["pytorch_lightning.utilities.distributed"] = shim
    from mu.algorithms.esd.trainer import ESDTrainer
    from stable_diffusion.ldm.models.diffusion.ddim import DDIMSampler

    DDIMSampler.register_buffer = lambda self, name, value: setattr(self, name, value)
    return ESDTrainer, DDIMSampler


def peer_esd(original_state: dict[str, Any], seed: int, steps: int, log, info: dict[str, Any]) -> tuple[Any, float]:
    """Unlearn with unlearn-diff's ``ESDTrainer.train()`` for ``steps`` iterations; returns the UNet and the seconds
    of building the trainer + training."""
    import copy

    import lightning.pytorch as pl

    from lightning_unlearn.models.diffusion import captions, prompt_embeddings

    ESDTrainer, DDIMSampler = import_esd_peer()
    settings = b4.method_settings("esd")
    unet = b4.build_unet()
    unet.load_state_dict(original_state)
    frozen = copy.deepcopy(unet).requires_grad_(False).eval()
    scheduler = b4._task().scheduler
    model, model_orig = LdmLike(unet, scheduler, prompt_embeddings), LdmLike(frozen, scheduler, prompt_embeddings)
    config = {
        "train_method": settings["init_args"].get("parameters", "noxattn"),
        "negative_guidance": float(settings["init_args"].get("negative_guidance", 1.0)),
        "lr": settings["lr"],
        "iterations": steps,
        "image_size": 8 * b4.UNET["sample_size"],
        # every training caption of the erased concept, one drawn per iteration (its trainer reads "seperator")
        "prompt": ";".join(captions(b4.FORGET_CLASS)),
        "seperator": ";",
        **ESD_PEER_DEFAULTS,
    }
    info["peer_config"] = config
    pl.seed_everything(seed, verbose=False)  # python `random` (the prompt), torch (t and the start code)
    start = time.perf_counter()
    trainer = ESDTrainer(
        SimpleNamespace(models=(model, model_orig)), SimpleNamespace(samplers=(DDIMSampler(model), DDIMSampler(model_orig))),
        config, device="cpu", device_orig="cpu",
    )  # fmt: skip
    info["trainable"] = sum(p.numel() for group in trainer.optimizer.param_groups for p in group["params"])
    info["optimizer"] = type(trainer.optimizer).__name__
    trainer.train()
    seconds = time.perf_counter() - start
    # per iteration: the DDIM sampling of z (one call per step, cond and uncond batched) + 1 for ε_θ(z, t, c)
    info["apply_model_calls_per_iteration"] = model.calls / steps
    log(f"[b4_peers] peer esd seed={seed}: {steps} iterations in {seconds:.1f}s ({info['trainable']} trainable, {info['optimizer']}; "
        f"{info['apply_model_calls_per_iteration']:.1f} apply_model calls per iteration)")  # fmt: skip
    unet.eval()
    return unet, seconds


def our_spare_modules(unet) -> list[str]:
    """The modules our SPARE put LoRA on (peft layers in the unlearned UNet)."""
    return sorted({n.rsplit(".lora_A", 1)[0] for n, _ in unet.named_parameters() if ".lora_A." in n})


# ---------------------------------------------------------------------------------------------- scratch-venv stand-ins
_PLACEHOLDER = '''"""Placeholders for packages that a peer imports at module level for code paths benchmarks/peers/b4_peers.py never
runs (vision-unlearning: torchvision, lpips, piq, image_similarity_measures; unlearn-diff: torchvision, fire, timm).
Written by `b4_peers.py --write-standins`. Any name is a placeholder class; instantiating one fails loudly."""


class Placeholder:
    def __init__(self, *args, **kwargs):
        raise RuntimeError(f"stand-in: {type(self).__name__} is not available in this scratch venv")


def placeholder(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (Placeholder,), {})
'''
_GETATTR = "from _peer_standin import placeholder as __getattr__  # noqa: E402,F401\n"
_INTERPOLATION = '''

class InterpolationMode:
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"
'''
#: Stand-in modules (path under site-packages -> source). No ``.dist-info`` is written, so metadata-based checks
#: (torchmetrics', Lightning's ``RequirementCache`` for lpips/piq, diffusers') still see these packages as absent.
#: transformers looks torchvision up with ``find_spec`` and then imports ``torchvision.transforms.functional`` and
#: ``InterpolationMode``: the stand-in provides both.
STANDINS = {
    "_peer_standin.py": _PLACEHOLDER,
    "torchvision/__init__.py": '__version__ = "0.0.0+standin"\n'
    + "from torchvision import datasets, io, models, ops, transforms, utils  # noqa: E402,F401\n" + _GETATTR,
    **{f"torchvision/{m}.py": _GETATTR for m in ("datasets", "io", "models", "ops", "utils", "transforms/functional", "transforms/v2/functional")},
    "torchvision/transforms/__init__.py": "from torchvision.transforms import functional  # noqa: F401\n" + _GETATTR + _INTERPOLATION,
    "torchvision/transforms/v2/__init__.py": "from torchvision.transforms.v2 import functional  # noqa: F401\n" + _GETATTR,
    "lpips/__init__.py": "from lpips import lpips  # noqa: F401\n" + _GETATTR,
    "lpips/lpips.py": _GETATTR,
    "image_similarity_measures/__init__.py": _GETATTR,
    "image_similarity_measures/evaluate.py": _GETATTR,
    "piq.py": _GETATTR,
    "fire.py": _GETATTR,
    "timm.py": _GETATTR,
}


def write_standins(site_packages: str) -> None:
    """Write :data:`STANDINS` into a scratch venv's ``site-packages`` (refuses the project's ``.venv``)."""
    root = Path(site_packages).resolve()
    if ".venv" in root.parts or not root.is_dir():
        raise SystemExit(f"refusing to write stand-ins into {root} (a scratch venv's site-packages only)")
    for rel, text in STANDINS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(STANDINS)} stand-in files under {root}")


# ---------------------------------------------------------------------------------------------- table
COLUMNS = ("forget_acc", "paraphrase_acc", "attack_acc", "other_acc", "other_fid")


def table(rows: list[dict[str, Any]]) -> str:
    header = [
        "method", "implementation", "seeds", "erased concept acc % (↓)", "paraphrases acc % (↓)",
        "optimised-prompt attack acc % (↓)", "other concepts acc % (↑)", "other concepts FID (judge features, ↓)", "seconds",
    ]  # fmt: skip
    body = []
    for key in dict.fromkeys((r["method"], r["implementation"]) for r in rows):
        mine = [r for r in rows if (r["method"], r["implementation"]) == key]
        cells = [*key, str(len(mine))]
        cells += [benchmarking.fmt_pm(*benchmarking.mean_std([r[c] for r in mine]), digits=1) for c in COLUMNS]
        secs = [r["seconds"] for r in mine if r.get("seconds") is not None]
        cells.append(benchmarking.fmt_pm(*benchmarking.mean_std(secs), digits=0) if secs else "—")
        body.append(cells)
    return benchmarking.markdown_table(header, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps for both implementations (the config's: 40)")
    parser.add_argument("--quick", action="store_true", help="4 generated images per prompt instead of B4's 8")
    parser.add_argument("--no-original", action="store_true", help="do not score the original UNet")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="peer variants to run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--method", default="spare", choices=["spare", "esd"],
                        help="spare: vision-unlearning (venv_peer); esd: unlearn-diff (venv_esd)")
    parser.add_argument("--out", default=None, help="default benchmarks/results/b4_peers.json (esd: b4_peers_esd.json)")
    parser.add_argument("--write-standins", metavar="SITE_PACKAGES", default=None,
                        help="write the stand-in modules into a scratch venv's site-packages and exit")
    args = parser.parse_args()
    if args.write_standins:
        write_standins(args.write_standins)
        return
    torch.set_num_threads(args.threads)
    benchmarking.quiet_lightning()
    out = Path(args.out or f"benchmarks/results/b4_peers{'_esd' if args.method == 'esd' else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(out.with_suffix(".log"), "a")

    def log(*parts: Any) -> None:
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    log(f"[b4_peers] {time.strftime('%Y-%m-%d %H:%M:%S')} {benchmarking.command_line()}")
    original, original_info = b4.original_unet(0, log=log)
    judge_model, judge_info = b4.judge(0, log=log)
    state = {k: v.clone() for k, v in original.state_dict().items()}
    per_prompt = 4 if args.quick else 8
    real = b4.real_images([c for c in range(10) if c != b4.FORGET_CLASS])
    target = b4.attack_images()

    def scores(unet, seed: int) -> dict[str, float]:
        return {**b4.evaluate(unet, judge_model, per_prompt, seed=seed, real=real), **b4.attack_accuracy(unet, judge_model, per_prompt, seed=seed, images=target)}

    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        if not args.no_original:
            t = time.perf_counter()
            base = scores(original, seed)
            rows.append({"method": "original", "implementation": "—", "seed": seed, "seconds": None, **base})
            log(f"[b4_peers] original seed={seed}: {base} (scored in {time.perf_counter() - t:.0f}s)")

        memory: dict[str, float] = {}
        unet, seconds = b4.unlearn(args.method, state, seed, max_steps=args.steps, log=log, memory=memory)
        measured = scores(unet, seed)
        extra: dict[str, Any] = {}
        if args.method == "spare":
            extra = {"selected": our_spare_modules(unet), "trainable": sum(p.numel() for n, p in unet.named_parameters() if "lora_" in n)}
        rows.append({"method": args.method, "implementation": "lightning_unlearn", "seed": seed, "seconds": seconds, "steps": args.steps,
                     **extra, **memory, **measured})  # fmt: skip
        log(f"[b4_peers] ours {args.method} seed={seed}: {measured}")
        del unet

        for variant in args.variants if args.method == "spare" else ["as-is"]:
            info: dict[str, Any] = {}
            with benchmarking.PeakRSS() as rss:
                start_mb = rss.peak / 2**20
                if args.method == "spare":
                    unet, seconds = peer_spare(state, seed, args.steps, log, info, variant)
                else:
                    unet, seconds = peer_esd(state, seed, args.steps, log, info)
            measured = scores(unet, seed)
            label = VARIANTS[variant] if args.method == "spare" else ESD_PEER
            rows.append({"method": args.method, "implementation": label, "variant": variant, "seed": seed, "seconds": seconds,
                         "steps": args.steps, "peak_rss_mb": rss.mb, "start_rss_mb": start_mb, **info, **measured})  # fmt: skip
            log(f"[b4_peers] peer {args.method} ({variant}) seed={seed}: {measured}")
            del unet
        b4.write_results(out, payload(args, rows, per_prompt, original_info, judge_info, partial=True))

    b4.write_results(out, payload(args, rows, per_prompt, original_info, judge_info, partial=False))
    text = table(rows)
    log(text)
    log(f"[b4_peers] wrote {out}")


def payload(args, rows, per_prompt, original_info, judge_info, partial: bool) -> dict[str, Any]:
    from importlib.metadata import version

    peer = {"spare": ("vision-unlearning", PEER), "esd": ("unlearn-diff", ESD_PEER)}[args.method]
    return {
        "partial": partial, "method": args.method, "seeds": args.seeds, "steps": args.steps, "quick": args.quick,
        "per_prompt": per_prompt, "threads": args.threads, "variants": args.variants if args.method == "spare" else ["as-is"],
        "peer": peer[1], "peer_version": version(peer[0]), "python": sys.executable,
        "config": b4.method_settings(args.method), "attack": b4.ATTACK, "original": original_info, "judge": judge_info,
        "versions": benchmarking.versions("diffusers", "peft", "accelerate"), "rows": rows,
    }  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
