"""lightning_unlearn: machine unlearning as a plug-in for PyTorch Lightning.

Three ways in: the :class:`Unlearn` callback on an existing Trainer, the :class:`UnlearningModule`
trained with a :class:`ForgetRetainDataModule`, and the ``lightning-unlearn`` CLI.
Attributes are imported lazily so that ``import lightning_unlearn`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "UnlearningModule": "lightning_unlearn.module",
    "Unlearn": "lightning_unlearn.callbacks.unlearn",
    "UnlearningEvaluation": "lightning_unlearn.callbacks.evaluation",
    "evaluate": "lightning_unlearn.callbacks.evaluation",
    "ForgetRetainDataModule": "lightning_unlearn.datamodules.forget_retain",
    "FashionMNISTDataModule": "lightning_unlearn.datamodules.vision",
    "DigitsDataModule": "lightning_unlearn.datamodules.vision",
    "AngleFeaturesDataModule": "lightning_unlearn.datamodules.angles",
    "DeletionRequest": "lightning_unlearn.datamodules.request",
    "ResumableDataLoader": "lightning_unlearn.datamodules.loaders",
    "verify_request": "lightning_unlearn.privacy",
    "UnlearningMethod": "lightning_unlearn.methods.base",
    "METHODS": "lightning_unlearn.methods",
    "register_method": "lightning_unlearn.methods.base",
    "ClassificationTask": "lightning_unlearn.tasks.classification",
    "RecommendationTask": "lightning_unlearn.tasks.recommendation",
    "RecommendationDataModule": "lightning_unlearn.datamodules.recommendation",
    "Task": "lightning_unlearn.tasks.base",
    "SupervisedModule": "lightning_unlearn.training",
    "SaveWeights": "lightning_unlearn.callbacks.save_weights",
    "SaveMergedWeights": "lightning_unlearn.callbacks.save_weights",
    "UnlearningReport": "lightning_unlearn.report.callback",
    "ContinualUnlearner": "lightning_unlearn.continual.svd_lora",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lightning_unlearn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
