"""Independent numpy / scipy / sklearn reference implementations used by the metric tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import entropy as scipy_entropy
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC


def song_mittal_modified_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Transcription of ``_m_entr_comp`` from Song & Mittal's reference code (USENIX Security 2021)."""

    def _log_value(p: np.ndarray, small_value: float = 1e-30) -> np.ndarray:
        return -np.log(np.maximum(p, small_value))

    log_probs = _log_value(probs)
    reverse_probs = 1 - probs
    log_reverse_probs = _log_value(reverse_probs)
    modified_probs = np.copy(probs)
    modified_probs[range(labels.size), labels] = reverse_probs[range(labels.size), labels]
    modified_log_probs = np.copy(log_reverse_probs)
    modified_log_probs[range(labels.size), labels] = log_probs[range(labels.size), labels]
    return np.sum(np.multiply(modified_probs, modified_log_probs), axis=1)


def reference_features(probs: torch.Tensor, targets: torch.Tensor, kinds: Sequence[str]) -> np.ndarray:
    p = probs.double().numpy()
    y = targets.numpy()
    cols = []
    for k in kinds:
        if k == "entropy":
            cols.append(scipy_entropy(p, axis=1))
        elif k == "confidence":
            cols.append(p[np.arange(y.size), y])
        elif k == "modified_entropy":
            cols.append(song_mittal_modified_entropy(p, y))
        elif k == "correctness":
            cols.append((p.argmax(axis=1) == y).astype(np.float64))
        else:
            raise KeyError(k)
    return np.stack(cols, axis=1)


def make_attack(attack: str):
    if attack == "logistic":
        return LogisticRegression(max_iter=1000)
    return SVC(C=3, gamma="auto", kernel="rbf")


def reference_mia_efficacy(
    retain: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    forget: tuple[torch.Tensor, torch.Tensor],
    kinds: Sequence[str] = ("entropy", "confidence"),
    attack: str = "logistic",
    max_samples_per_side: int = 5000,
    seed: int = 0,
) -> float:
    """The documented procedure, written out with sklearn: sort, seeded balanced subsample, scale, fit, predict."""

    def feats(split):  # features rounded to float32, as the library stores them
        return reference_features(*split, kinds).astype(np.float32).astype(np.float64)

    fr, ft, ff = feats(retain), feats(test), feats(forget)
    fr = fr[np.lexsort(fr.T[::-1])]
    ft = ft[np.lexsort(ft.T[::-1])]
    n = min(len(fr), len(ft), max_samples_per_side)
    gen = torch.Generator().manual_seed(seed)
    if len(fr) > n:
        fr = fr[torch.randperm(len(fr), generator=gen)[:n].sort().values.numpy()]
    if len(ft) > n:
        ft = ft[torch.randperm(len(ft), generator=gen)[:n].sort().values.numpy()]
    x = np.concatenate([fr, ft])
    y = np.concatenate([np.ones(n), np.zeros(n)])
    scaler = StandardScaler().fit(x)
    clf = make_attack(attack).fit(scaler.transform(x), y)
    return 100.0 * float(np.mean(clf.predict(scaler.transform(ff)) == 0))


def random_split(
    n: int, num_classes: int, *, sharpness: float, true_boost: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random softmax outputs: ``true_boost`` added to the true-class logit, logits scaled by ``sharpness``."""
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(num_classes, (n,), generator=gen)
    logits = torch.randn(n, num_classes, generator=gen) * sharpness
    logits[torch.arange(n), targets] += true_boost
    return logits.softmax(dim=-1), targets


def member_like(n: int, seed: int, num_classes: int = 10):
    """Confident, almost always correct predictions (what a model outputs on its training data)."""
    return random_split(n, num_classes, sharpness=1.0, true_boost=8.0, seed=seed)


def nonmember_like(n: int, seed: int, num_classes: int = 10):
    """Diffuse predictions with a weak preference for the true class (unseen data)."""
    return random_split(n, num_classes, sharpness=0.5, true_boost=0.5, seed=seed)


def overlapping(n: int, seed: int, boost: float, num_classes: int = 10):
    """Moderately confident predictions; members and non-members overlap, so efficacy is strictly inside (0, 100)."""
    return random_split(n, num_classes, sharpness=1.0, true_boost=boost, seed=seed)
