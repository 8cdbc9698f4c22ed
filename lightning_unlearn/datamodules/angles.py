"""Few-feature data for quantum circuits: Iris, and scikit-learn digits and Fashion-MNIST reduced by PCA, scaled to
rotation angles.

The preprocessing of the hybrid quantum-classical unlearning study (C. Crivoi et al., "Machine Unlearning for Hybrid
Quantum-Classical Neural Networks", ICPR 2026, arXiv 2512.19253): a 4-qubit circuit angle-encodes 4 features per
sample. Iris has exactly 4; digits (64 pixels) and Fashion-MNIST (784) are reduced by PCA. Every statistic (the PCA
and the min/max of each feature) is fitted on the training split only; test features are transformed with it and
clipped to the same range, so nothing about the test split leaks into the inputs.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from lightning_unlearn._errors import check_choice, check_int, check_positive
from lightning_unlearn.datamodules.forget_retain import ForgetRetainDataModule
from lightning_unlearn.datamodules.vision import LabeledTensorDataset, load_digits_dataset, load_fashion_mnist

__all__ = ["ANGLE_DATASETS", "AngleFeaturesDataModule", "load_angle_features"]

ANGLE_DATASETS = {
    "iris": "scikit-learn's Iris (150 samples, 4 features, 3 classes), split train/test stratified",
    "digits": "scikit-learn's 8×8 digits (1,797 samples, 10 classes), PCA of the 64 pixels",
    "fashion_mnist": "Fashion-MNIST (60k train / 10k test, 10 classes), PCA of the 784 pixels",
}
_CLASSES = {"iris": 3, "digits": 10, "fashion_mnist": 10}


def _raw(dataset: str, test_fraction: float, split_seed: int, train_limit: int | None, test_limit: int | None, root: str | None):
    """``(x_train, y_train, x_test, y_test)`` as flat float64 numpy arrays, before any fitted transform."""
    if dataset == "iris":
        from sklearn.datasets import load_iris
        from sklearn.model_selection import train_test_split

        data = load_iris()
        idx = np.arange(len(data.target))
        train_idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=split_seed, stratify=data.target)
        train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
        x, y = data.data.astype(np.float64), data.target.astype(np.int64)
        out = [x[train_idx], y[train_idx], x[test_idx], y[test_idx]]
    else:
        if dataset == "digits":
            train, test = load_digits_dataset("train", test_fraction, split_seed), load_digits_dataset("test", test_fraction, split_seed)
        else:
            train, test = load_fashion_mnist("train", root, limit=train_limit), load_fashion_mnist("test", root, limit=test_limit)
        out = [
            train.tensors[0].flatten(1).double().numpy(), train.targets.numpy(),
            test.tensors[0].flatten(1).double().numpy(), test.targets.numpy(),
        ]  # fmt: skip
    if train_limit is not None:
        out[0], out[1] = out[0][:train_limit], out[1][:train_limit]
    if test_limit is not None:
        out[2], out[3] = out[2][:test_limit], out[3][:test_limit]
    return out


@functools.lru_cache(maxsize=16)
def _features(
    dataset: str, n_features: int, angle_range: float, test_fraction: float, split_seed: int,
    train_limit: int | None, test_limit: int | None, root: str | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    x_train, y_train, x_test, y_test = _raw(dataset, test_fraction, split_seed, train_limit, test_limit, root)
    if x_train.shape[1] < n_features:
        raise ValueError(f"`n_features` should be at most {x_train.shape[1]} for dataset {dataset!r}, got {n_features}.")
    if x_train.shape[1] > n_features:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=n_features, random_state=0).fit(x_train)  # the training split only
        x_train, x_test = pca.transform(x_train), pca.transform(x_test)
    low, high = x_train.min(0), x_train.max(0)
    span = np.where(high > low, high - low, 1.0)

    def scale(x: np.ndarray) -> np.ndarray:
        return (np.clip((x - low) / span, 0.0, 1.0) * angle_range).astype(np.float32)

    arrays = (scale(x_train), y_train.astype(np.int64), scale(x_test), y_test.astype(np.int64))
    for a in arrays:
        a.setflags(write=False)
    return arrays


def load_angle_features(
    dataset: str = "iris",
    split: str = "train",
    n_features: int = 4,
    angle_range: float = math.pi,
    test_fraction: float = 0.25,
    split_seed: int = 0,
    train_limit: int | None = None,
    test_limit: int | None = None,
    root: str | None = None,
) -> LabeledTensorDataset:
    """``n_features`` features per sample in ``[0, angle_range]`` and their labels, for angle encoding.

    Iris keeps its 4 measurements; digits and Fashion-MNIST are reduced to ``n_features`` principal components. The
    PCA (when needed) and then a per-feature min-max scaling to ``[0, angle_range]`` are fitted on the training split
    (after ``train_limit``) only; test features use the same transform and are clipped to the range.

    Args:
        dataset: ``"iris"``, ``"digits"`` or ``"fashion_mnist"``.
        split: ``"train"`` or ``"test"``.
        n_features: Features kept (= qubits of the circuit).
        angle_range: Upper end of the scaled range (default π).
        test_fraction: Iris and digits: fraction of the samples in the (stratified, seeded) test split.
        split_seed: Iris and digits: seed of the train/test split.
        train_limit: Keep the first ``train_limit`` training samples (Fashion-MNIST's 60,000 are many for a simulator).
        test_limit: Keep the first ``test_limit`` test samples.
        root: Fashion-MNIST folder (see :func:`~lightning_unlearn.datamodules.load_fashion_mnist`).

    Returns:
        A :class:`~lightning_unlearn.datamodules.LabeledTensorDataset` of ``float32 [N, n_features]`` and labels.
    """
    check_choice("dataset", dataset, ANGLE_DATASETS)
    check_choice("split", split, ("train", "test"))
    check_int("n_features", n_features, minimum=1)
    check_positive("angle_range", angle_range)
    check_int("train_limit", train_limit, minimum=2, optional=True)
    check_int("test_limit", test_limit, minimum=1, optional=True)
    x_train, y_train, x_test, y_test = _features(
        dataset, n_features, float(angle_range), float(test_fraction), split_seed, train_limit, test_limit, root
    )
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    return LabeledTensorDataset(torch.from_numpy(x.copy()), torch.from_numpy(y.copy()))


class AngleFeaturesDataModule(ForgetRetainDataModule):
    """Iris, digits or Fashion-MNIST as ``n_features`` angles per sample, with a deletion request (benchmark B6).

    The features come from :func:`load_angle_features` (PCA and scaling fitted on the training split only); the
    deletion request, loaders and evaluation splits are :class:`ForgetRetainDataModule`'s, e.g.
    ``AngleFeaturesDataModule("iris", forget_fraction=0.02)`` (the study's random 2%) or ``forget_class=0``.

    Args:
        dataset: ``"iris"``, ``"digits"`` or ``"fashion_mnist"``.
        n_features: Features per sample (= qubits).
        angle_range: Features are scaled to ``[0, angle_range]``.
        test_fraction: Iris / digits: test fraction of the stratified split.
        split_seed: Iris / digits: seed of the train/test split.
        train_limit: Use the first ``train_limit`` training samples.
        test_limit: Use the first ``test_limit`` test samples.
        root: Fashion-MNIST folder.
        **kwargs: Everything :class:`ForgetRetainDataModule` takes (the request, batch sizes, mode, seed...).
    """

    def __init__(
        self,
        dataset: str = "iris",
        n_features: int = 4,
        angle_range: float = math.pi,
        test_fraction: float = 0.25,
        split_seed: int = 0,
        train_limit: int | None = None,
        test_limit: int | None = None,
        root: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_choice("dataset", dataset, ANGLE_DATASETS)
        kwargs.setdefault("num_classes", _CLASSES[dataset])
        args = dict(
            dataset=dataset, n_features=n_features, angle_range=angle_range, test_fraction=test_fraction,
            split_seed=split_seed, train_limit=train_limit, test_limit=test_limit, root=root,
        )  # fmt: skip
        super().__init__(load_angle_features(split="train", **args), load_angle_features(split="test", **args), **kwargs)
