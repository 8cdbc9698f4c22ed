"""The optimised-prompt attack on a diffusion model: it lowers the denoising loss of the concept's images by moving
only the prompt embedding, and leaves the model exactly as it was."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("diffusers")

from lightning_unlearn.attacks import prompt_embedding_attack  # noqa: E402
from lightning_unlearn.models.diffusion import concept_unet  # noqa: E402
from lightning_unlearn.tasks import DiffusionTask  # noqa: E402


def _setup():
    torch.manual_seed(0)
    unet = concept_unet(sample_size=8, block_out_channels=[16, 32], layers_per_block=1, attention_head_dim=4, cross_attention_dim=24)
    images = torch.rand(12, 1, 8, 8) * 2 - 1
    init = torch.randn(1, 5, 24)
    return unet, DiffusionTask(num_train_timesteps=100), images, init


def _loss(unet, task, images, embeds) -> float:
    """The denoising loss at fixed timesteps and noise (the same draw for every embedding compared)."""
    generator = torch.Generator().manual_seed(123)
    t = torch.randint(0, 100, (images.shape[0],), generator=generator)
    noise = torch.randn(images.shape, generator=generator)
    with torch.no_grad():
        pred = unet(task.scheduler.add_noise(images, noise, t), t, encoder_hidden_states=embeds.expand(images.shape[0], -1, -1)).sample
    return float(F.mse_loss(pred, noise))


def test_the_attack_moves_only_the_embedding_and_lowers_the_concepts_denoising_loss():
    unet, task, images, init = _setup()
    unet.train()
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    flags = [p.requires_grad for p in unet.parameters()]
    embeds, losses = prompt_embedding_attack(unet, task, images, init, steps=40, lr=0.1, batch_size=12, seed=0)
    assert embeds.shape == init.shape and not embeds.requires_grad and len(losses) == 40
    assert float((embeds - init).abs().max()) > 0.1
    assert _loss(unet, task, images, embeds) < 0.9 * _loss(unet, task, images, init)
    for key, value in unet.state_dict().items():  # the model is the attacker's target, never its variable
        assert torch.equal(value, before[key]), key
    assert [p.requires_grad for p in unet.parameters()] == flags and unet.training
    again, _ = prompt_embedding_attack(unet, task, images, init, steps=40, lr=0.1, batch_size=12, seed=0)
    torch.testing.assert_close(again, embeds, rtol=0, atol=0)  # seeded


def test_the_attack_names_bad_inputs():
    unet, task, images, init = _setup()
    with pytest.raises(ValueError, match=r"`init_embeds` should be one prompt's \[1, L, D\] embedding, got shape \(2, 5, 24\)"):
        prompt_embedding_attack(unet, task, images, init.expand(2, -1, -1), steps=1)
    with pytest.raises(ValueError, match=r"`images` should be a non-empty \[N, C, H, W\] batch, got shape \(12, 64\)"):
        prompt_embedding_attack(unet, task, images.flatten(1), init, steps=1)
    with pytest.raises(ValueError, match="`steps`"):
        prompt_embedding_attack(unet, task, images, init, steps=0)
