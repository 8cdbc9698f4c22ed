"""Real image data that installs offline: Fashion-MNIST (Debian package) and scikit-learn's digits."""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from lightning_unlearn._errors import check_choice
from lightning_unlearn.datamodules.forget_retain import ForgetRetainDataModule

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_MEAN, _STD = 0.2860, 0.3530


class LabeledTensorDataset(TensorDataset):
    """A ``TensorDataset`` of ``(image, label)`` with a ``targets`` attribute (fast class requests)."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        super().__init__(images, targets)
        self.targets = targets


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {magic:#x}).")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str) -> np.ndarray:
    """Decompressing the 60k images takes seconds; keep each file read once per process (read-only array)."""
    array = _read_idx(Path(path))
    array.setflags(write=False)
    return array


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None, limit: int | None = None) -> LabeledTensorDataset:
    """Fashion-MNIST (Xiao et al. 2017) from the IDX files of Debian's ``dataset-fashion-mnist``.

    Images are float32 ``[N, 1, 28, 28]`` standardised with the training mean/std; labels int64.
    ``limit`` keeps the first ``limit`` samples (for quick runs).
    """
    check_choice("split", split, _FILES)
    root = Path(root or os.environ.get("FASHION_MNIST_DIR", FASHION_MNIST_DIR))
    images_file, labels_file = (root / name for name in _FILES[split])
    if not images_file.exists() or not labels_file.exists():
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {root}. Install it with `apt-get install dataset-fashion-mnist` "
            "or point `root` (or $FASHION_MNIST_DIR) at a folder holding the four IDX .gz files."
        )
    images = _read_idx_cached(str(images_file))
    labels = _read_idx_cached(str(labels_file))
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = (torch.from_numpy(images.copy()).float().div_(255.0).sub_(_MEAN).div_(_STD)).unsqueeze(1)
    return LabeledTensorDataset(x, torch.from_numpy(labels.astype(np.int64)))


def load_digits_dataset(split: str = "train", test_fraction: float = 0.25, seed: int = 0) -> LabeledTensorDataset:
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes), split train/test.

    The split is stratified and seeded; images are float32 ``[N, 1, 8, 8]`` scaled to ``[0, 1]``.
    """
    check_choice("split", split, _FILES)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    idx = np.arange(len(data.target))
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=data.target)
    chosen = np.sort(train_idx if split == "train" else test_idx)
    x = torch.from_numpy(data.images[chosen].astype(np.float32) / 16.0).unsqueeze(1)
    return LabeledTensorDataset(x, torch.from_numpy(data.target[chosen].astype(np.int64)))


class FashionMNISTDataModule(ForgetRetainDataModule):
    """Fashion-MNIST (60k train / 10k test) with a deletion request, for benchmark B1.

    Args:
        root: Folder with the IDX ``.gz`` files (default: Debian's ``/usr/share/datasets/fashion-mnist``).
        train_limit: Use only the first ``train_limit`` training images (``None`` = all 60,000).
        **kwargs: Everything :class:`ForgetRetainDataModule` takes (the deletion request, batch sizes, mode, seed...).
    """

    def __init__(self, root: str | None = None, train_limit: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("num_classes", 10)
        super().__init__(load_fashion_mnist("train", root, limit=train_limit), load_fashion_mnist("test", root), **kwargs)


class DigitsDataModule(ForgetRetainDataModule):
    """scikit-learn digits (1,347 train / 450 test with the default split), for quick B1 runs.

    Args:
        test_fraction: Fraction of the 1,797 images used as the test split.
        split_seed: Seed of the stratified train/test split.
        **kwargs: Everything :class:`ForgetRetainDataModule` takes.
    """

    def __init__(self, test_fraction: float = 0.25, split_seed: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("num_classes", 10)
        super().__init__(
            load_digits_dataset("train", test_fraction, split_seed), load_digits_dataset("test", test_fraction, split_seed), **kwargs
        )
