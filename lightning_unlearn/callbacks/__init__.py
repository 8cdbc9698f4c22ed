"""Callbacks: unlearning inside an existing Trainer, and evaluating what was forgotten (classifiers and, TOFU-style,
causal LMs)."""

from lightning_unlearn.callbacks.evaluation import UnlearningEvaluation, evaluate
from lightning_unlearn.callbacks.llm_evaluation import LLMEvaluation
from lightning_unlearn.callbacks.unlearn import Schedule, Unlearn
from lightning_unlearn.training import SaveWeights

__all__ = ["LLMEvaluation", "SaveWeights", "Schedule", "Unlearn", "UnlearningEvaluation", "evaluate"]
