"""Real image data: Fashion-MNIST from the Debian IDX files and scikit-learn's digits."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_unlearn.datamodules import (
    FASHION_MNIST_CLASSES,
    DigitsDataModule,
    FashionMNISTDataModule,
    load_digits_dataset,
    load_fashion_mnist,
)
from lightning_unlearn.datamodules.vision import FASHION_MNIST_DIR

needs_fashion_mnist = pytest.mark.skipif(
    not (Path(FASHION_MNIST_DIR) / "train-images-idx3-ubyte.gz").exists(),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(scope="module")
def fashion_train():
    return load_fashion_mnist("train")


# ---------------------------------------------------------------------------------- Fashion-MNIST
@needs_fashion_mnist
def test_fashion_mnist_train_split(fashion_train):
    x, y = fashion_train.tensors
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (60000,) and y.dtype == torch.int64
    assert fashion_train.targets is y
    assert int(y.min()) == 0 and int(y.max()) == 9
    assert torch.bincount(y).tolist() == [6000] * 10
    # standardised with the training mean/std
    assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 1.0) < 0.01


@needs_fashion_mnist
def test_fashion_mnist_test_split_and_limit():
    test = load_fashion_mnist("test")
    x, y = test.tensors
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert torch.bincount(y).tolist() == [1000] * 10
    head = load_fashion_mnist("test", limit=25)
    assert head.tensors[0].shape == (25, 1, 28, 28)
    assert torch.equal(head.tensors[0], x[:25]) and torch.equal(head.targets, y[:25])
    assert len(FASHION_MNIST_CLASSES) == 10


def test_fashion_mnist_wrong_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Fashion-MNIST not found in .*apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", root=tmp_path / "nowhere")


def test_fashion_mnist_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_fashion_mnist("test")


def test_fashion_mnist_bad_split():
    with pytest.raises(ValueError, match=r"`split` should be one of \['test', 'train'\], got 'valid'"):
        load_fashion_mnist("valid")


def _write_idx(path: Path, array: np.ndarray, magic_type: int = 0x08) -> None:
    header = (magic_type << 8 | array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files(tmp_path):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([4, 0, 9]))
    ds = load_fashion_mnist("test", root=tmp_path)
    assert ds.tensors[0].shape == (3, 1, 28, 28)
    assert ds.targets.tolist() == [4, 0, 9]
    expected = (torch.from_numpy(images).float() / 255.0 - 0.2860) / 0.3530
    torch.testing.assert_close(ds.tensors[0][:, 0], expected)


def test_fashion_mnist_rejects_a_non_byte_idx_file(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((1, 2, 2)), magic_type=0x0D)  # float32 type code
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(1))
    with pytest.raises(ValueError, match="is not an unsigned-byte IDX file"):
        load_fashion_mnist("test", root=tmp_path)


@needs_fashion_mnist
def test_fashion_mnist_datamodule():
    dm = FashionMNISTDataModule(train_limit=600, forget_class=0, holdout_fraction=0.5)
    n_forget = int((load_fashion_mnist("train", limit=600).targets == 0).sum())
    assert dm.sizes() == {"forget": n_forget, "retain": 600 - n_forget, "test": 5000, "holdout": 5000}
    assert all(int(dm.forget_set[i][1]) == 0 for i in range(len(dm.forget_set)))
    with pytest.raises(ValueError, match=r"`forget_class` \[10\] does not exist"):
        FashionMNISTDataModule(train_limit=100, forget_class=10)


# ---------------------------------------------------------------------------------- digits
def test_digits_shapes_and_range():
    train, test = load_digits_dataset("train"), load_digits_dataset("test")
    assert train.tensors[0].shape == (1347, 1, 8, 8) and test.tensors[0].shape == (450, 1, 8, 8)
    assert train.tensors[0].dtype == torch.float32 and train.targets.dtype == torch.int64
    for ds in (train, test):
        assert 0.0 <= float(ds.tensors[0].min()) and float(ds.tensors[0].max()) <= 1.0
        assert sorted(ds.targets.unique().tolist()) == list(range(10))


def test_digits_split_is_stratified_and_a_partition():
    from sklearn.datasets import load_digits

    full = np.bincount(load_digits().target, minlength=10)
    train, test = load_digits_dataset("train"), load_digits_dataset("test")
    n_train = np.bincount(train.targets.numpy(), minlength=10)
    n_test = np.bincount(test.targets.numpy(), minlength=10)
    assert (n_train + n_test == full).all()
    # every class keeps its share in both splits, up to rounding
    assert np.abs(n_test - 0.25 * full).max() <= 1


def test_digits_split_is_seeded():
    a, b = load_digits_dataset("test", 0.25, seed=1), load_digits_dataset("test", 0.25, seed=1)
    c = load_digits_dataset("test", 0.25, seed=2)
    assert torch.equal(a.tensors[0], b.tensors[0])
    assert not torch.equal(a.tensors[0], c.tensors[0])
    assert len(load_digits_dataset("test", test_fraction=0.5)) == 899  # ceil(0.5 * 1797)


def test_digits_datamodule():
    dm = DigitsDataModule(forget_class=3, batch_size=16)
    sizes = dm.sizes()
    assert sizes["forget"] + sizes["retain"] == 1347 and sizes["test"] == 450
    assert all(int(dm.forget_set[i][1]) == 3 for i in range(len(dm.forget_set)))
    batch = next(iter(dm.forget_dataloader()))
    assert batch[0].shape == (16, 1, 8, 8)
    with pytest.raises(ValueError, match=r"`split` should be one of"):
        load_digits_dataset("val")
