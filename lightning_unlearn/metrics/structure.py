"""Structure metrics: does the unlearned model keep the semantic geometry of the retained data?

Accuracy says whether retained samples are still classified correctly; it does not say whether
the feature space around them kept its shape — which neighbours are close, which classes are
similar. Stake the Points (arXiv 2603.12915) argues that unlearning should preserve that structure.
These metrics compare two models' features of the *same* samples (typically the unlearned model
against the oracle retrained without the forget set, on retained samples):

* :func:`knn_overlap` — the mean fraction of each sample's ``k`` nearest neighbours (cosine) that
  both feature spaces share (1 = identical neighbourhoods, ≈ k/N for unrelated spaces);
* :func:`class_similarity_agreement` — the Pearson correlation between the two models' class-centroid
  cosine-similarity matrices (off-diagonal entries): whether the same classes are close to each other.

Both are invariant to rotations and scalings of the feature space, so models of different widths or
architectures can be compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from lightning_unlearn.tasks.base import Task, capture_features, evaluating


def _check_pair(a: Tensor, b: Tensor) -> None:
    if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"features should be [N, D_a] and [N, D_b] for the same N samples, got {tuple(a.shape)} and {tuple(b.shape)}.")


def knn_sets(features: Tensor, k: int) -> Tensor:
    """Indices ``[N, k]`` of each row's ``k`` nearest other rows by cosine similarity."""
    if not 1 <= k < features.shape[0]:
        raise ValueError(f"`k` should be in [1, N-1] = [1, {features.shape[0] - 1}], got {k}.")
    z = F.normalize(features.double(), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(float("-inf"))
    return sim.topk(k, dim=1).indices


def knn_overlap(features_a: Tensor, features_b: Tensor, k: int = 10) -> float:
    """Mean ``|kNN_a(i) ∩ kNN_b(i)| / k`` over the samples (cosine neighbours, self excluded), in ``[0, 1]``."""
    _check_pair(features_a, features_b)
    na, nb = knn_sets(features_a, k), knn_sets(features_b, k)
    n = features_a.shape[0]
    hits = torch.zeros(n, n, dtype=torch.bool)
    hits.scatter_(1, na, True)
    shared = hits.gather(1, nb).sum(1)
    return float(shared.double().mean() / k)


def class_similarity(features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(S, classes)``: cosine similarities ``[C, C]`` between the mean normalised feature of each present class."""
    classes = labels.unique(sorted=True)
    z = F.normalize(features.double(), dim=1)
    centroids = F.normalize(torch.stack([z[labels == c].mean(0) for c in classes]), dim=1)
    return centroids @ centroids.T, classes


def class_similarity_agreement(features_a: Tensor, features_b: Tensor, labels: Tensor) -> float:
    """Pearson correlation of the off-diagonal class-similarity entries of two feature spaces (needs ≥ 3 classes)."""
    _check_pair(features_a, features_b)
    if labels.shape[0] != features_a.shape[0]:
        raise ValueError(f"`labels` should have one entry per sample ({features_a.shape[0]}), got {labels.shape[0]}.")
    sa, classes = class_similarity(features_a, labels)
    sb, _ = class_similarity(features_b, labels)
    if len(classes) < 3:
        raise ValueError(f"class_similarity_agreement needs at least 3 classes among the samples, got {len(classes)}.")
    off = ~torch.eye(len(classes), dtype=torch.bool)
    a, b = sa[off], sb[off]
    a, b = a - a.mean(), b - b.mean()
    denom = a.norm() * b.norm()
    return float((a @ b) / denom) if denom > 0 else float("nan")


@torch.no_grad()
def collect_features(model: nn.Module, loader: Iterable, layer: str, task: Task | None = None) -> tuple[Tensor, Tensor]:
    """``(features [N, D], labels [N])`` of ``model`` at submodule ``layer`` over ``loader`` (eval mode)."""
    from lightning_unlearn.tasks import ClassificationTask

    task = task or ClassificationTask()
    feats, labels = [], []
    with evaluating(model) as device, capture_features(model, layer) as store:
        for batch in loader:
            batch = move_data_to_device(batch, device)
            task.forward(model, batch)
            feats.append(store["out"].flatten(1).float().cpu())
            labels.append(task.targets(batch).cpu())
    if not feats:
        raise ValueError("`loader` yielded no batches.")
    return torch.cat(feats), torch.cat(labels)


def structure_subset(dataset: Any, samples: int = 2000, seed: int = 0, batch_size: int = 500, collate_fn: Any = None) -> DataLoader:
    """A loader over a fixed seeded random subset of ``samples`` items of ``dataset``, in index order.

    The subset the unlearning report and benchmark B1 compare structure on (seed ``s`` always picks the
    same samples, so reruns and different methods are compared on the same points).
    """
    n = min(samples, len(dataset))
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].sort().values.tolist()
    return DataLoader(Subset(dataset, idx), batch_size=batch_size, shuffle=False, collate_fn=collate_fn)


def structure_scores(features: Tensor, reference_features: Tensor, labels: Tensor, k: int = 10) -> dict[str, float | None]:
    """``{"knn_overlap", "class_sim_corr"}`` from features already collected (``None`` where undefined:
    fewer than 3 classes among the samples)."""
    out: dict[str, float | None] = {"knn_overlap": knn_overlap(features, reference_features, k=min(k, len(labels) - 1))}
    out["class_sim_corr"] = class_similarity_agreement(features, reference_features, labels) if labels.unique().numel() >= 3 else None
    return out


def structure_agreement(
    model: nn.Module, reference: nn.Module, loader: Iterable, layer: str = "penultimate", k: int = 10, task: Task | None = None
) -> dict[str, float]:
    """``{"knn_overlap", "class_sim_corr"}`` of ``model`` against ``reference`` on the samples of ``loader``.

    Args:
        model: The model to judge (e.g. the unlearned one).
        reference: The model whose structure is the target (e.g. the oracle).
        loader: Samples to compare on (e.g. a fixed subset of the retain set); iterated twice, same order.
        layer: Feature point in both models (``model.named_modules()`` name).
        k: Neighbours for :func:`knn_overlap`.
    """
    fa, labels = collect_features(model, loader, layer, task)
    fb, labels_b = collect_features(reference, loader, layer, task)
    if not torch.equal(labels, labels_b):
        raise ValueError("`loader` must yield the same samples in the same order on every pass (use shuffle=False).")
    return structure_scores(fa, fb, labels, k)  # type: ignore[return-value]
