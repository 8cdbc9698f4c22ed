"""AngleFeaturesDataModule / load_angle_features: 4 angles per sample, PCA and scaling fitted on the training split."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_unlearn import AngleFeaturesDataModule
from lightning_unlearn.datamodules import load_angle_features, load_digits_dataset


def test_iris_keeps_its_four_measurements_scaled_to_angles():
    train, test = load_angle_features("iris", "train"), load_angle_features("iris", "test")
    assert train.tensors[0].shape == (112, 4) and test.tensors[0].shape == (38, 4)
    assert train.tensors[0].dtype == torch.float32 and sorted(train.targets.unique().tolist()) == [0, 1, 2]
    x = train.tensors[0]
    # min-max on the training split: every feature spans exactly [0, pi] there; test values are clipped into it
    torch.testing.assert_close(x.min(0).values, torch.zeros(4))
    torch.testing.assert_close(x.max(0).values, torch.full((4,), math.pi))
    assert float(test.tensors[0].min()) >= 0.0 and float(test.tensors[0].max()) <= math.pi + 1e-6


def test_digits_pca_is_fitted_on_the_training_split_only():
    from sklearn.decomposition import PCA

    train = load_angle_features("digits", "train", n_features=4, angle_range=1.0)
    raw_train = load_digits_dataset("train").tensors[0].flatten(1).double().numpy()
    expected = PCA(n_components=4, random_state=0).fit_transform(raw_train)
    expected = (expected - expected.min(0)) / (expected.max(0) - expected.min(0))
    np.testing.assert_allclose(train.tensors[0].numpy(), expected, atol=1e-5)
    # the test split does not influence the training features
    other = load_angle_features("digits", "train", n_features=4, angle_range=1.0, test_limit=10)
    assert torch.equal(other.tensors[0], train.tensors[0])
    assert load_angle_features("digits", "test", test_limit=10).tensors[0].shape == (10, 4)


def test_the_studys_two_requests_on_iris():
    random = AngleFeaturesDataModule("iris", forget_fraction=0.02)
    assert random.sizes() == {"forget": 2, "retain": 110, "test": 38}
    whole_class = AngleFeaturesDataModule("iris", forget_class=0, batch_size=8)
    assert whole_class.sizes()["forget"] == 37
    assert all(int(y) == 0 for _, y in whole_class.forget_set)
    x, y = next(iter(whole_class.forget_dataloader()))
    assert x.shape == (8, 4) and bool((y == 0).all())
    with pytest.raises(ValueError, match=r"`forget_class`"):
        AngleFeaturesDataModule("iris", forget_class=3)  # Iris has 3 classes


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"`dataset` should be one of \['digits', 'fashion_mnist', 'iris'\], got 'mnist'"):
        AngleFeaturesDataModule("mnist", forget_class=0)
    with pytest.raises(ValueError, match=r"`n_features` should be at most 4 for dataset 'iris', got 5"):
        load_angle_features("iris", n_features=5)
    with pytest.raises(ValueError, match=r"`split` should be one of \['test', 'train'\], got 'val'"):
        load_angle_features("iris", "val")
    with pytest.raises(ValueError, match=r"`angle_range` should be > 0, got 0"):
        load_angle_features("iris", angle_range=0)
