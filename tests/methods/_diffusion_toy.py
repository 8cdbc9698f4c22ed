"""A tiny text-conditioned diffusers UNet and captioned toy images for the diffusion-method tests."""

from __future__ import annotations

import torch

from lightning_unlearn import ForgetRetainDataModule
from lightning_unlearn.datamodules.diffusion import CaptionedImages
from lightning_unlearn.models.diffusion import concept_unet
from lightning_unlearn.tasks.diffusion import DiffusionTask

DIM, LENGTH, CLASSES = 16, 4, 3


def tiny_unet(seed: int = 0):
    torch.manual_seed(seed)
    return concept_unet(sample_size=8, block_out_channels=(8, 16), cross_attention_dim=DIM, attention_head_dim=4, norm_num_groups=4)


def prompt_table() -> torch.Tensor:
    """``[CLASSES + 1, LENGTH, DIM]`` fixed prompt states; the last row is the empty prompt."""
    return torch.randn(CLASSES + 1, LENGTH, DIM, generator=torch.Generator().manual_seed(1))


def encode(prompts: list[str]) -> torch.Tensor:
    """Toy prompt encoder: ``""`` → the empty prompt, ``"concept <k>"`` → class k's states."""
    table = prompt_table()
    return torch.stack([table[-1] if p == "" else table[int(p.split()[-1])] for p in prompts])


def task(**kwargs) -> DiffusionTask:
    return DiffusionTask(num_train_timesteps=100, prompt_encoder=encode, **kwargs)


def images(n: int = 24) -> CaptionedImages:
    g = torch.Generator().manual_seed(2)
    targets = torch.arange(n) % CLASSES
    x = torch.tanh(torch.randn(n, 1, 8, 8, generator=g) + targets.view(-1, 1, 1, 1).float() - 1)
    table = prompt_table()
    return CaptionedImages(x, targets, table[:CLASSES].unsqueeze(1), table[-1])


def datamodule(**kwargs) -> ForgetRetainDataModule:
    kwargs.setdefault("batch_size", 4)
    return ForgetRetainDataModule(images(), forget_class=0, retain_batch_size=4, seed=0, **kwargs)
