"""The report's image view for text-to-image diffusion models: generations for the erased and the kept concepts'
prompts before (original), after (unlearned) and for the oracle, as PNG grids embedded in ``report.json`` and
``report.html`` (one row per prompt, the same seeded noise for every model, so the grids differ only by the model).

Pixel-space denoisers (a ``DiffusionTask`` without a VAE, e.g. this library's MiniLM-conditioned UNet) are sampled
with :class:`~lightning_unlearn.models.diffusion.ConceptDiffusionPipeline` (DDIM + classifier-free guidance) and the
task's own prompt encoder; a latent model (``DiffusionTask.from_pipeline``) is refused: decode with your pipeline.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["check_image_prompts", "image_grid", "png_data_uri"]

#: Side (pixels) a generated image is enlarged to at least, by whole-pixel repetition, so a 16×16 image is visible.
MIN_SIDE = 64


def check_image_prompts(image_prompts: Any) -> dict[str, list[str]] | None:
    """``{group: [prompt, ...]}`` (e.g. ``{"erased": [...], "kept": [...]}``) as given, or ``None``; names what is wrong."""
    if image_prompts is None:
        return None
    if not isinstance(image_prompts, Mapping) or not image_prompts:
        raise TypeError(f"`image_prompts` should be a non-empty dict {{group: [prompt, ...]}} or None, got {image_prompts!r}.")
    out: dict[str, list[str]] = {}
    for group, prompts in image_prompts.items():
        if not isinstance(group, str) or not group:
            raise TypeError(f"`image_prompts` keys should be non-empty strings (group names), got {group!r}.")
        if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not prompts or not all(isinstance(p, str) and p for p in prompts):
            raise TypeError(f"`image_prompts[{group!r}]` should be a non-empty list of non-empty prompt strings, got {prompts!r}.")
        out[group] = list(prompts)
    return out


@torch.no_grad()
def image_grid(model: nn.Module, task: Any, prompts: Sequence[str], per_prompt: int, steps: int, guidance: float, seed: int) -> Tensor:
    """``[C, H·P, W·n]`` in ``[0, 1]``: ``per_prompt`` generations of each prompt (a row each) by ``model``, each image
    enlarged by whole-pixel repetition to at least :data:`MIN_SIDE` pixels on its shorter side (a 16×16 image is
    otherwise too small to see)."""
    from lightning_unlearn.models.diffusion import ConceptDiffusionPipeline

    pipe = ConceptDiffusionPipeline(model, num_train_timesteps=task.num_train_timesteps, beta_schedule=task.beta_schedule, encode=task.encode_prompts)
    images = pipe(list(prompts), num_images=per_prompt, num_inference_steps=steps, guidance_scale=guidance, generator=torch.Generator().manual_seed(seed))
    images = images.detach().float().cpu()
    scale = max(1, -(-MIN_SIDE // min(images.shape[2:])))
    images = images.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
    _, c, h, w = images.shape
    rows = images.view(len(prompts), per_prompt, c, h, w).permute(2, 0, 3, 1, 4)  # C, P, H, n, W
    return rows.reshape(c, len(prompts) * h, per_prompt * w)


def png_data_uri(grid: Tensor) -> str:
    """A ``[C, H, W]`` image in ``[0, 1]`` (1 or 3 channels) as a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    pixels = (grid.clamp(0, 1) * 255).round().to(torch.uint8)
    array = pixels[0].numpy() if pixels.shape[0] == 1 else pixels.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
