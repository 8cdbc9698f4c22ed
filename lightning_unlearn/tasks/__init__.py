"""Tasks: per model family, the primitives unlearning methods are written against."""

from lightning_unlearn.tasks.base import Task, capture_features
from lightning_unlearn.tasks.causal_lm import CausalLMTask, Conversation, QACollator, check_conversation, generate_answers
from lightning_unlearn.tasks.classification import ClassificationTask
from lightning_unlearn.tasks.diffusion import DiffusionOutput, DiffusionTask
from lightning_unlearn.tasks.recommendation import RecommendationTask
from lightning_unlearn.tasks.vision_language import VisionLanguageTask, first_token_logits, generate_vlm_answers

__all__ = [
    "CausalLMTask",
    "ClassificationTask",
    "Conversation",
    "DiffusionOutput",
    "DiffusionTask",
    "QACollator",
    "RecommendationTask",
    "Task",
    "VisionLanguageTask",
    "capture_features",
    "check_conversation",
    "first_token_logits",
    "generate_answers",
    "generate_vlm_answers",
]
