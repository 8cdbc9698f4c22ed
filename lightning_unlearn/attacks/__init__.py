"""Attacks that test whether forgotten knowledge is really gone.

* :class:`QuantizationAttack` — round-to-nearest int8 / int4 weight quantization of a copy
  (arXiv 2410.16454), :func:`fake_quantize`, :func:`quantize_model`.
* :class:`RelearningAttack` — a few fine-tuning steps on part of the forget set (arXiv 2406.13356,
  2410.08827), :func:`split_forget`; :func:`recovery` = the fraction of the forgotten gap regained.
* :class:`MultiTurnProbe` — self-correction, dialogue-conditioned, paraphrased and translated questions to
  an unlearned causal LM, plus a rigidity probe (arXiv 2603.00823; protocol reconstructed);
  :class:`ImageConversations` runs it on a vision-language model (each conversation keeps its image).
* LiRA / U-LiRA per-example membership inference with shadow models for classifiers (arXiv 2112.03570,
  2403.01218): :func:`train_shadows` (with :class:`SupervisedFit` / :class:`MethodUnlearn`), :func:`lira`,
  :func:`ulira`, :func:`leave_one_out`, :func:`lira_scores`, :func:`logit_confidence`, :func:`attack_roc`.
* :func:`prompt_embedding_attack` — an optimised prompt embedding that tries to bring an erased concept back to a
  text-to-image diffusion model (UnlearnDiffAtk-style, arXiv 2310.11868; continuous variant).
* :func:`run_attacks` / :class:`RobustnessAttacks` (a callback) / ``lightning-unlearn attack`` run the
  quantization and relearning attacks on an unlearned model and on the oracle, and report the recovery.

Every attack works on a *copy* of the model: the unlearned model is never modified. Names are
imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "prompt_embedding_attack": "diffusion",
    "QuantizationAttack": "quantization",
    "QuantizationSummary": "quantization",
    "fake_quantize": "quantization",
    "quantize_model": "quantization",
    "RelearningAttack": "relearning",
    "split_forget": "relearning",
    "recovery": "recovery",
    "run_attacks": "suite",
    "default_attacks": "suite",
    "RobustnessAttacks": "callback",
    "attack_module": "callback",
    "MultiTurnProbe": "multiturn",
    "ImageConversations": "multiturn",
    "PROBE_KINDS": "multiturn",
    "single_turn": "multiturn",
    "self_correction": "multiturn",
    "dialogue_conditioned": "multiturn",
    "benign_follow_up": "multiturn",
    "context_examples": "multiturn",
    "leaks_value": "multiturn",
    "is_refusal": "multiturn",
    "refusal_rate": "multiturn",
    "REFUSAL_PATTERNS": "multiturn",
    "logit_confidence": "lira",
    "model_stats": "lira",
    "lira_scores": "lira",
    "attack_roc": "lira",
    "ShadowStats": "lira",
    "train_shadows": "lira",
    "lira": "lira",
    "ulira": "lira",
    "leave_one_out": "lira",
    "SupervisedFit": "lira",
    "MethodUnlearn": "lira",
    "LANGUAGES": "translations",
    "QUESTION_TRANSLATIONS": "translations",
    "translate_question": "translations",
    "translated_question": "translations",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"lightning_unlearn.attacks.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lightning_unlearn.attacks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
