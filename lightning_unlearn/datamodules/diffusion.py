"""Captioned Fashion-MNIST for text-to-image diffusion: a concept (a class and all its captions) as the forget set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightning_unlearn._errors import check_fraction
from lightning_unlearn.datamodules.forget_retain import ForgetRetainDataModule

__all__ = ["CaptionedImages", "FashionMNISTConceptDataModule", "load_captioned_fashion_mnist"]


class CaptionedImages(Dataset):
    """``{"pixel_values", "encoder_hidden_states", "labels"}`` samples: an image with the prompt states of one of its
    class's captions (drawn at every access from the global RNG, which ``seed_everything`` seeds), replaced by the
    empty prompt's states with probability ``uncond_prob`` (classifier-free guidance training).

    Args:
        images: ``[N, C, H, W]`` in ``[−1, 1]``.
        targets: ``[N]`` class ids (the concept of each image; the ``targets`` attribute serves ``forget_class``).
        caption_states: ``[num_classes, num_templates, L, D]`` prompt states of every class's captions.
        null_states: ``[L, D]`` states of the empty prompt.
        uncond_prob: Probability of the empty prompt (0 for unlearning and evaluation).
    """

    def __init__(self, images: Tensor, targets: Tensor, caption_states: Tensor, null_states: Tensor, uncond_prob: float = 0.0) -> None:
        if images.shape[0] != targets.shape[0]:
            raise ValueError(f"`images` and `targets` should have one length, got {images.shape[0]} and {targets.shape[0]}.")
        if caption_states.dim() != 4 or caption_states.shape[0] <= int(targets.max()):
            raise ValueError(f"`caption_states` should be [num_classes, num_templates, L, D] covering every target, got {tuple(caption_states.shape)}.")
        if not 0.0 <= uncond_prob < 1.0:
            raise ValueError(f"`uncond_prob` should lie in [0, 1), got {uncond_prob!r}.")
        self.images, self.targets = images, targets
        self.caption_states, self.null_states = caption_states, null_states
        self.uncond_prob = float(uncond_prob)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        label = int(self.targets[index])
        template = int(torch.randint(self.caption_states.shape[1], ()))
        states = self.caption_states[label, template]
        if self.uncond_prob and float(torch.rand(())) < self.uncond_prob:
            states = self.null_states
        return {"pixel_values": self.images[index], "encoder_hidden_states": states, "labels": self.targets[index]}


def load_captioned_fashion_mnist(
    split: str = "train",
    size: int = 16,
    limit: int | None = None,
    templates: Sequence[str] | None = None,
    uncond_prob: float = 0.0,
    root: str | None = None,
) -> CaptionedImages:
    """Fashion-MNIST (Debian's IDX files) resized to ``size``×``size`` in ``[−1, 1]``, captioned with MiniLM states
    of :data:`~lightning_unlearn.models.diffusion.TRAIN_TEMPLATES` (or ``templates``)."""
    from lightning_unlearn.datamodules.vision import _MEAN, _STD, load_fashion_mnist
    from lightning_unlearn.models.diffusion import CONCEPTS, TRAIN_TEMPLATES, captions, prompt_embeddings, to_model_range

    data = load_fashion_mnist(split, root, limit=limit)
    images = to_model_range(data.tensors[0], _MEAN, _STD, size)
    templates = tuple(templates or TRAIN_TEMPLATES)
    states = prompt_embeddings([c for k in range(len(CONCEPTS)) for c in captions(k, templates)])
    states = states.view(len(CONCEPTS), len(templates), *states.shape[1:])
    return CaptionedImages(images, data.targets, states, prompt_embeddings([""])[0], uncond_prob)


class FashionMNISTConceptDataModule(ForgetRetainDataModule):
    """Captioned 16×16 Fashion-MNIST for benchmark B4: the forget set is one concept (``forget_class``: every image of
    the class, with its captions), the retain set the nine others.

    Args:
        size: Image side after resizing from 28.
        train_limit: Use only the first ``train_limit`` training images (``None``: all 60,000).
        uncond_prob: Probability of training on the empty prompt (0.1 to train the original for classifier-free
            guidance; 0 for unlearning).
        root: Folder with the IDX ``.gz`` files (default Debian's).
        **kwargs: Everything :class:`ForgetRetainDataModule` takes (``forget_class``, batch sizes, ``train_on``, seed...).
    """

    def __init__(self, size: int = 16, train_limit: int | None = None, uncond_prob: float = 0.0, root: str | None = None, **kwargs: Any) -> None:
        check_fraction("uncond_prob", uncond_prob, inclusive_low=True, inclusive_high=False)
        kwargs.setdefault("num_classes", 10)
        train = load_captioned_fashion_mnist("train", size, train_limit, uncond_prob=uncond_prob, root=root)
        test = load_captioned_fashion_mnist("test", size, limit=2000, root=root)
        super().__init__(train, test, **kwargs)
