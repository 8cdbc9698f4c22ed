"""Tasks: per model family, the primitives unlearning methods are written against."""

from lightning_unlearn.tasks.base import Task, capture_features
from lightning_unlearn.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask", "Task", "capture_features"]
