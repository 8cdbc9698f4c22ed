"""LLM-unlearning metrics (TOFU-style): functions on CPU tensors and strings, and their :class:`torchmetrics.Metric` twins.

One module per topic:

- :mod:`~lightning_unlearn.metrics.llm.rouge`: :func:`rouge_l_recall` / :class:`ROUGELRecall`, TOFU's ROUGE-L recall
  of generated answers (P. Maini et al., "TOFU: A Task of Fictitious Unlearning for LLMs", arXiv:2401.06121), via
  torchmetrics' ROUGE.
- :mod:`~lightning_unlearn.metrics.llm.probability`: TOFU's likelihood metrics, :func:`answer_probability`,
  :func:`truth_ratio` / :class:`TruthRatio` (with the reporting summary :func:`truth_ratio_score`),
  :func:`forget_quality` (KS-test p-value against the retrain oracle) and :func:`model_utility` (harmonic mean).
- :mod:`~lightning_unlearn.metrics.llm.mia`: per-sample membership-inference scores, all oriented so that
  **higher = more likely a member**: :func:`mia_loss` (LOSS attack, Yeom et al., IEEE CSF 2018), :func:`mia_zlib`
  (zlib ratio, N. Carlini et al., "Extracting Training Data from Large Language Models", USENIX Security 2021),
  :func:`mia_min_k` (Min-K% Prob, W. Shi et al., "Detecting Pretraining Data from Large Language Models",
  arXiv:2310.16789) and :func:`mia_min_k_plus_plus` (Min-K%++, J. Zhang et al., arXiv:2404.02936, with
  :func:`vocab_log_prob_stats`); :func:`mia_auc` / :class:`MembershipAUC` turn member (forget) and non-member
  (holdout) scores into a ROC AUC.
- :mod:`~lightning_unlearn.metrics.llm.gibberish`: :func:`gibberish_rate` / :func:`is_gibberish`, an explicit,
  dictionary-free heuristic for degenerate generations.
- :mod:`~lightning_unlearn.metrics.llm.perplexity`: :func:`text_perplexity` of a causal LM on plain texts.

Conventions shared by the token-level functions:

- ``token_log_probs[n, t] = log p(x_t | x_<t)`` of the *actual* next token (natural log, ``<= 0``), shape
  ``[N, T]``; with Hugging Face causal LMs that is
  ``logits[:, :-1].log_softmax(-1).gather(-1, input_ids[:, 1:, None])[..., 0]``.
- ``mask[n, t]`` (bool, or 0/1 integers; ``None`` = every position counts) marks the positions that are scored,
  typically the answer tokens. Masked positions never change a score: they may hold any value, NaN and ``-inf``
  included. Every row needs at least one unmasked position.
- Per-sample outputs are float64 tensors of shape ``[N]``.

Nothing here imports ``transformers`` or downloads anything; :mod:`scipy` and :mod:`sklearn` are imported lazily.
"""

from lightning_unlearn.metrics.llm._checks import LOG_LIKELIHOOD_ATOL  # noqa: F401  (importable as before the split)
from lightning_unlearn.metrics.llm.gibberish import gibberish_rate, is_gibberish
from lightning_unlearn.metrics.llm.mia import (
    MembershipAUC,
    mia_auc,
    mia_loss,
    mia_min_k,
    mia_min_k_plus_plus,
    mia_zlib,
    vocab_log_prob_stats,
)
from lightning_unlearn.metrics.llm.perplexity import text_perplexity
from lightning_unlearn.metrics.llm.probability import (
    TruthRatio,
    answer_probability,
    forget_quality,
    model_utility,
    truth_ratio,
    truth_ratio_score,
)
from lightning_unlearn.metrics.llm.rouge import ROUGELRecall, lcs_length, rouge_l_recall  # noqa: F401  (lcs_length: importable as before)

__all__ = [
    "MembershipAUC",
    "ROUGELRecall",
    "TruthRatio",
    "answer_probability",
    "forget_quality",
    "gibberish_rate",
    "is_gibberish",
    "mia_auc",
    "mia_loss",
    "mia_min_k",
    "mia_min_k_plus_plus",
    "mia_zlib",
    "model_utility",
    "rouge_l_recall",
    "text_perplexity",
    "truth_ratio",
    "truth_ratio_score",
    "vocab_log_prob_stats",
]
