"""The federated benchmark's network: an MLP whose latent code is split into a causal and a non-causal part."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class FederatedNet(nn.Module):
    """A small MLP with FOUL's five parts, used by every B8 method (so all share one architecture).

    The parts follow FOUL (arXiv 2603.13795, §3): a shallow ``extractor`` θ_E, a ``causal`` encoder θ_K and a
    ``noncausal`` encoder θ_V on the extractor's features, a ``decoder`` θ_D reconstructing those features from
    ``(z_K, z_V)``, and a ``classifier`` θ_C on the concatenation ``[z_K, z_V]``. Trained with plain
    cross-entropy it is an ordinary MLP; FOUL's Phase I adds its learning-to-unlearn losses
    (:mod:`lightning_unlearn.federated.foul`).

    Args:
        in_features: Flattened input size (784 for 28×28 images).
        hidden: Width of the extractor's features.
        latent: Width of each of ``z_K`` and ``z_V``.
        num_classes: Number of classes.
    """

    def __init__(self, in_features: int = 784, hidden: int = 128, latent: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        self.extractor = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU())
        self.causal = nn.Sequential(nn.Linear(hidden, latent), nn.ReLU())
        self.noncausal = nn.Sequential(nn.Linear(hidden, latent), nn.ReLU())
        self.decoder = nn.Linear(2 * latent, hidden)
        self.classifier = nn.Linear(2 * latent, num_classes)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(h, z_K, z_V)``: the extractor's features and the two latent codes."""
        h = self.extractor(x)
        return h, self.causal(h), self.noncausal(h)

    def forward(self, x: Tensor) -> Tensor:
        _, z_k, z_v = self.encode(x)
        return self.classifier(torch.cat([z_k, z_v], dim=1))
