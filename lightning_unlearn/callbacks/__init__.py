"""Callbacks: unlearning inside an existing Trainer, and evaluating what was forgotten."""

from lightning_unlearn.callbacks.evaluation import UnlearningEvaluation, evaluate
from lightning_unlearn.callbacks.unlearn import Schedule, Unlearn
from lightning_unlearn.training import SaveWeights

__all__ = ["SaveWeights", "Schedule", "Unlearn", "UnlearningEvaluation", "evaluate"]
