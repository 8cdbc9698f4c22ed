"""Forget/retain data: deletion requests and the DataModules built from them."""

from lightning_unlearn.datamodules.forget_retain import EVAL_SPLITS, CombineMode, ForgetRetainDataModule, TrainOn
from lightning_unlearn.datamodules.request import DeletionRequest, dataset_targets, resolve_request
from lightning_unlearn.datamodules.vision import (
    FASHION_MNIST_CLASSES,
    DigitsDataModule,
    FashionMNISTDataModule,
    LabeledTensorDataset,
    load_digits_dataset,
    load_fashion_mnist,
)

__all__ = [
    "EVAL_SPLITS",
    "FASHION_MNIST_CLASSES",
    "CombineMode",
    "DeletionRequest",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "ForgetRetainDataModule",
    "LabeledTensorDataset",
    "TrainOn",
    "dataset_targets",
    "load_digits_dataset",
    "load_fashion_mnist",
    "resolve_request",
]
