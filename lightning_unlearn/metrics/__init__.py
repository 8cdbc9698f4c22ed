"""Unlearning metrics: membership inference (MIA-efficacy, loss-threshold AUC), split accuracy, Avg Gap and
feature-structure agreement.

Functional forms live in :mod:`lightning_unlearn.metrics.functional`; stateful, DDP-ready
:class:`torchmetrics.Metric` classes in :mod:`lightning_unlearn.metrics.mia`.
"""

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
from lightning_unlearn.metrics.mia import LossMIAAUC, MIAEfficacy
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
    "MembershipFeature",
    "avg_gap",
    "class_similarity_agreement",
    "collect_features",
    "knn_overlap",
    "loss_mia_auc",
    "membership_features",
    "mia_efficacy",
    "split_accuracy",
    "structure_agreement",
    "structure_scores",
    "structure_subset",
]
