"""An optimised-prompt attack on an unlearned text-to-image diffusion model: can a prompt bring the erased concept
back?

In the style of UnlearnDiffAtk (Zhang, Jia, Chen, Chen, Zhang, Liu, Ding, Liu, "To Generate or Not? Safety-Driven
Unlearned Diffusion Models Are Still Easy To Generate Unsafe Images ... For Now", ECCV 2024, arXiv 2310.11868), which
searches for a prompt under which the unlearned model denoises images of the erased concept as well as it can. This
is the continuous variant: the attacker optimises the **prompt embedding** (the UNet's ``encoder_hidden_states``)
directly, starting from the concept's own caption, to minimise the denoising loss
``E_{t, ε} ‖ε − ε_θ(√ᾱ_t x₀ + √(1−ᾱ_t) ε, t, c)‖²`` on images of the concept; the model's weights are frozen and
untouched. A stronger attacker than a user typing prompts (the embedding need not be any text's), a weaker one than
fine-tuning. Generating with the optimised embedding and asking a judge whether the concept is back gives the attack's
success rate.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_unlearn._errors import check_int, check_positive

__all__ = ["prompt_embedding_attack"]


def prompt_embedding_attack(
    unet: nn.Module,
    task: Any,
    images: Tensor,
    init_embeds: Tensor,
    *,
    steps: int = 50,
    lr: float = 1e-2,
    batch_size: int = 16,
    seed: int = 0,
) -> tuple[Tensor, list[float]]:
    """The prompt embedding that best lets ``unet`` denoise ``images`` of the erased concept, and the loss per step.

    Args:
        unet: The (unlearned) denoiser, called as ``unet(x_t, t, encoder_hidden_states=c).sample``. Its weights and
            ``requires_grad`` flags are restored as they were.
        task: Its :class:`~lightning_unlearn.tasks.DiffusionTask` (the noise schedule: ``task.scheduler``).
        images: ``[N, C, H, W]`` clean images of the concept in the UNet's input space (pixels in ``[−1, 1]``, or
            latents for a latent model).
        init_embeds: ``[1, L, D]`` the starting embedding (e.g. the concept's caption's).
        steps: Adam steps on the embedding.
        lr: Adam's learning rate.
        batch_size: Images (with a fresh timestep and noise each) per step.
        seed: Seed of the images, timesteps and noise drawn.

    Returns:
        ``(embeds [1, L, D], losses)``: the optimised embedding (detached) and the denoising loss of every step.
    """
    check_int("steps", steps, minimum=1)
    check_positive("lr", lr)
    check_int("batch_size", batch_size, minimum=1)
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"`images` should be a non-empty [N, C, H, W] batch, got shape {tuple(images.shape)}.")
    if init_embeds.dim() != 3 or init_embeds.shape[0] != 1:
        raise ValueError(f"`init_embeds` should be one prompt's [1, L, D] embedding, got shape {tuple(init_embeds.shape)}.")
    device = next(unet.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    scheduler = task.scheduler
    embeds = init_embeds.detach().clone().to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([embeds], lr=lr)
    flags = [p.requires_grad for p in unet.parameters()]
    was_training = unet.training
    unet.eval().requires_grad_(False)
    losses: list[float] = []
    try:
        for _ in range(steps):
            pick = torch.randint(images.shape[0], (batch_size,), generator=generator)
            x0 = images[pick].to(device)
            t = torch.randint(task.min_timestep, task.max_timestep, (batch_size,), generator=generator).to(device)
            noise = torch.randn(x0.shape, generator=generator).to(device)
            noisy = scheduler.add_noise(x0, noise, t)
            pred = unet(noisy, t, encoder_hidden_states=embeds.expand(batch_size, -1, -1)).sample
            loss = F.mse_loss(pred.float(), noise.float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        for p, flag in zip(unet.parameters(), flags):
            p.requires_grad_(flag)
        unet.train(was_training)
    return embeds.detach(), losses
