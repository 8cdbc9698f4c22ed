"""Small plain-torch models used by the benchmarks and tests (pure torch.nn, nothing downloaded)."""

from lightning_unlearn.models.cnn import MLP, SmallCNN
from lightning_unlearn.models.vit import ViTClassifier

__all__ = ["MLP", "SmallCNN", "ViTClassifier"]
