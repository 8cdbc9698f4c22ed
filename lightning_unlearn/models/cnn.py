"""Plain-torch classifiers for the image benchmarks."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Two conv blocks and a linear head: the B1 model (~86% Fashion-MNIST after one epoch).

    Submodules are named ``features`` (the conv trunk), ``penultimate`` (the hidden linear layer
    and its activation) and ``head`` (the logits), so hooks and masks can address them.

    Args:
        in_channels: Image channels.
        num_classes: Number of classes.
        image_size: Height = width of the input images (28 for Fashion-MNIST, 8 for digits).
        width: Channels of the first conv layer (the second has twice as many).
        hidden: Units of the penultimate layer.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, width: int = 32, hidden: int = 128) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"`image_size` should be a multiple of 4 (two 2×2 poolings), got {image_size}.")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.penultimate = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * (image_size // 4) ** 2, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.penultimate(self.features(x)))


class MLP(nn.Module):
    """A multilayer perceptron on flattened inputs.

    Args:
        in_features: Input size after flattening.
        num_classes: Number of classes.
        hidden: Sizes of the hidden layers.
    """

    def __init__(self, in_features: int = 784, num_classes: int = 10, hidden: tuple[int, ...] = (256, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        size = in_features
        for h in hidden:
            layers += [nn.Linear(size, h), nn.ReLU()]
            size = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
