"""Evaluating an unlearned model.

* :mod:`~lightning_unlearn.evaluation.classification` — :class:`UnlearningEvaluator`: accuracy on every
  split, MIA-efficacy, loss-threshold MIA AUC (torchmetrics states, DDP-reduced) and :func:`with_gap`
  (Avg Gap to the oracle); what ``UnlearningModule``'s ``validate``/``test`` report.
* :mod:`~lightning_unlearn.evaluation.llm` — :class:`TofuEvaluator`: the TOFU-style scores of a causal LM
  (Maini et al., "TOFU: A Task of Fictitious Unlearning for LLMs", arXiv 2401.06121): forget / retain
  ROUGE-L, answer probability, truth ratio, forget quality against the oracle, model utility, MIA AUCs and
  gibberish rate — benchmark B2's row, also printed by ``lightning-unlearn test`` through the
  :class:`~lightning_unlearn.callbacks.LLMEvaluation` callback.

``transformers`` is only needed when the LLM evaluator generates answers; importing this package is cheap.
"""

from lightning_unlearn.evaluation.classification import UnlearningEvaluator, _local_cat, with_gap  # noqa: F401  (_local_cat: the old import path)
from lightning_unlearn.evaluation.llm import (
    TOFU_COLUMNS,
    TofuEvaluator,
    format_tofu_row,
    known_probes,
    perturbed_answers,
    retain_subset,
    score_answers,
)

__all__ = [
    "TOFU_COLUMNS",
    "TofuEvaluator",
    "UnlearningEvaluator",
    "format_tofu_row",
    "known_probes",
    "perturbed_answers",
    "retain_subset",
    "score_answers",
    "with_gap",
]
