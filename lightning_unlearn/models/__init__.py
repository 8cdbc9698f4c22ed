"""Small plain-torch models used by the benchmarks and tests (no torchvision, no timm)."""

from lightning_unlearn.models.cnn import MLP, SmallCNN

__all__ = ["MLP", "SmallCNN"]
