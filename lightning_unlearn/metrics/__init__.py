"""Unlearning metrics: membership inference (MIA-efficacy, loss-threshold AUC), split accuracy, Avg Gap,
output and weight distances to the oracle or a random model (JS divergence, ZRF, activation distance, per-layer
distances: :mod:`lightning_unlearn.metrics.divergence`),
feature-structure agreement and TOFU-style LLM metrics (:mod:`lightning_unlearn.metrics.llm`).

Functional forms of the classification metrics live in :mod:`lightning_unlearn.metrics.functional`; their stateful,
DDP-ready :class:`torchmetrics.Metric` classes in :mod:`lightning_unlearn.metrics.mia`. Every ROC AUC in the package
is :func:`auroc` / :func:`roc_curve` (:mod:`lightning_unlearn.metrics.roc`, torchmetrics' binary ROC).
"""

from lightning_unlearn.metrics.divergence import (
    activation_distance,
    feature_distance,
    js_divergence,
    output_probabilities,
    weight_distance,
    zrf,
    zrf_score,
)
from lightning_unlearn.metrics.functional import (
    DEFAULT_MIA_FEATURES,
    MembershipFeature,
    MIAAttack,
    MIASplit,
    loss_mia_auc,
    membership_features,
    mia_efficacy,
    split_accuracy,
)
from lightning_unlearn.metrics.gap import SALUN_GAP_KEYS, avg_gap
from lightning_unlearn.metrics.llm import (
    MembershipAUC,
    ROUGELRecall,
    TruthRatio,
    answer_probability,
    forget_quality,
    gibberish_rate,
    is_gibberish,
    mia_auc,
    mia_loss,
    mia_min_k,
    mia_min_k_plus_plus,
    mia_zlib,
    model_utility,
    rouge_l_recall,
    text_perplexity,
    truth_ratio,
    truth_ratio_score,
    vocab_log_prob_stats,
)
from lightning_unlearn.metrics.mia import LossMIAAUC, MIAEfficacy
from lightning_unlearn.metrics.roc import auroc, roc_curve
from lightning_unlearn.metrics.structure import (
    class_similarity_agreement,
    collect_features,
    knn_overlap,
    structure_agreement,
    structure_scores,
    structure_subset,
)

__all__ = [
    "DEFAULT_MIA_FEATURES",
    "SALUN_GAP_KEYS",
    "LossMIAAUC",
    "MIAAttack",
    "MIAEfficacy",
    "MIASplit",
    "MembershipAUC",
    "MembershipFeature",
    "ROUGELRecall",
    "TruthRatio",
    "activation_distance",
    "answer_probability",
    "auroc",
    "avg_gap",
    "class_similarity_agreement",
    "collect_features",
    "feature_distance",
    "forget_quality",
    "gibberish_rate",
    "is_gibberish",
    "js_divergence",
    "knn_overlap",
    "loss_mia_auc",
    "membership_features",
    "mia_auc",
    "mia_efficacy",
    "mia_loss",
    "mia_min_k",
    "mia_min_k_plus_plus",
    "mia_zlib",
    "model_utility",
    "output_probabilities",
    "roc_curve",
    "rouge_l_recall",
    "text_perplexity",
    "split_accuracy",
    "structure_agreement",
    "structure_scores",
    "structure_subset",
    "truth_ratio",
    "truth_ratio_score",
    "vocab_log_prob_stats",
    "weight_distance",
    "zrf",
    "zrf_score",
]
