"""Lightning callbacks: unlearning inside an existing Trainer, evaluating what was forgotten (classifiers and,
TOFU-style, causal LMs), and saving weights.

Imported lazily, so that importing one callback module (e.g. ``callbacks.save_weights``) does not import
the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "UnlearningEvaluation": "lightning_unlearn.callbacks.evaluation",
    "evaluate": "lightning_unlearn.callbacks.evaluation",
    "LLMEvaluation": "lightning_unlearn.callbacks.llm_evaluation",
    "GraphFromData": "lightning_unlearn.callbacks.graph",
    "Schedule": "lightning_unlearn.callbacks.unlearn",
    "Unlearn": "lightning_unlearn.callbacks.unlearn",
    "SaveWeights": "lightning_unlearn.callbacks.save_weights",
    "SaveMergedWeights": "lightning_unlearn.callbacks.save_weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
