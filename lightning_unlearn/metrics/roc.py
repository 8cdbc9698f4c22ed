"""The one ROC / AUROC of membership scores in lightning_unlearn, built on torchmetrics' binary ROC.

Every AUC in the package (:func:`~lightning_unlearn.metrics.loss_mia_auc`, :class:`~lightning_unlearn.metrics.LossMIAAUC`,
:func:`~lightning_unlearn.metrics.llm.mia_auc`, :class:`~lightning_unlearn.metrics.llm.MembershipAUC`) goes through
:func:`_auroc_compute` here, and LiRA's TPR-at-low-FPR can use :func:`roc_curve`. Members are the positive class and a
higher score means "more likely a member".

torchmetrics' :func:`~torchmetrics.functional.classification.binary_auroc` squashes scores outside ``[0, 1]`` with a
sigmoid, which in float32 turns large scores into ties (``sigmoid(20) == sigmoid(30) == 1``). The scores are therefore
replaced by their dense ranks scaled to ``[0, 1]`` first; that keeps their order and their ties exactly, so the curve
is that of the raw scores. torchmetrics returns the rates in float32; they are turned back into exact float64
fractions (``round(rate * count) / count``), and the AUC is the trapezoidal area under that curve in float64, so
results equal :func:`sklearn.metrics.roc_auc_score` / :func:`sklearn.metrics.roc_curve` (``drop_intermediate=False``)
to rounding (``~1e-15``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["auroc", "roc_curve"]


def _check_scores(scores: Any, name: str) -> Tensor:
    """Return ``scores`` (a tensor or a sequence of numbers) as a 1-D float64 CPU tensor of finite values."""
    if isinstance(scores, Tensor):
        t = scores.detach()
    else:
        try:
            t = torch.as_tensor(scores)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"`{name}` should be a 1-D tensor or sequence of numbers, got {type(scores).__name__}."
            ) from err
    if t.ndim != 1:
        raise ValueError(f"`{name}` should be 1-D, got shape {tuple(t.shape)}.")
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"`{name}` should hold real numbers, got dtype {t.dtype}.")
    t = t.to(torch.float64).cpu()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return t


def _ranked_inputs(member_scores: Tensor, nonmember_scores: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(preds, target, distinct)``: dense ranks scaled to ``[0, 1]``, 0/1 labels, the sorted distinct scores."""
    scores = torch.cat([member_scores, nonmember_scores])
    distinct, inverse = torch.unique(scores, sorted=True, return_inverse=True)
    preds = inverse.to(torch.float64) / max(distinct.numel() - 1, 1)
    target = torch.cat(
        [torch.ones(member_scores.numel(), dtype=torch.long), torch.zeros(nonmember_scores.numel(), dtype=torch.long)]
    )
    return preds, target, distinct


def _check_sides(member_scores: Tensor, nonmember_scores: Tensor, owner: str, noun: str) -> None:
    """Raise ``owner``'s (a function or class name) error when either side has no ``noun`` ("score", "loss")."""
    plural = "losses" if noun == "loss" else noun + "s"
    for side, t in (("member", member_scores), ("non-member", nonmember_scores)):
        if t.numel() == 0:
            raise ValueError(f"{owner} needs at least one member and one non-member {noun}; got 0 {side} {plural}.")


def _roc_compute(
    member_scores: Tensor, nonmember_scores: Tensor, owner: str, noun: str = "score"
) -> tuple[Tensor, Tensor, Tensor]:
    """``(fpr, tpr, thresholds)`` in float64 of 1-D ``member_scores`` (positives) vs ``nonmember_scores``."""
    from torchmetrics.functional.classification import binary_roc

    member_scores = member_scores.detach().to(torch.float64).cpu()
    nonmember_scores = nonmember_scores.detach().to(torch.float64).cpu()
    _check_sides(member_scores, nonmember_scores, owner, noun)
    preds, target, distinct = _ranked_inputs(member_scores, nonmember_scores)
    fpr32, tpr32, rank_thresholds = binary_roc(preds, target, validate_args=False)
    n_pos, n_neg = member_scores.numel(), nonmember_scores.numel()
    fpr = (fpr32.to(torch.float64) * n_neg).round() / n_neg  # exact k / n_neg: the counts are whole numbers
    tpr = (tpr32.to(torch.float64) * n_pos).round() / n_pos
    # torchmetrics prepends threshold 1.0 for the (0, 0) point; every later threshold is one of the scaled ranks
    ranks = (rank_thresholds[1:].to(torch.float64) * max(distinct.numel() - 1, 1)).round().long()
    thresholds = torch.cat([torch.tensor([torch.inf], dtype=torch.float64), distinct[ranks]])
    return fpr, tpr, thresholds


def _auroc_compute(member_scores: Tensor, nonmember_scores: Tensor, owner: str, noun: str = "score") -> float:
    """AUC of 1-D ``member_scores`` (positives) vs ``nonmember_scores``, ties counting one half (inputs checked)."""
    fpr, tpr, _ = _roc_compute(member_scores, nonmember_scores, owner, noun)
    return float(torch.trapezoid(tpr, fpr))


def auroc(member_scores: Tensor | Sequence[float], nonmember_scores: Tensor | Sequence[float]) -> float:
    r"""Area under the ROC curve of a membership score, members being the positive class.

    .. math::
        \text{AUC} = \frac{1}{|M||H|} \sum_{m \in M} \sum_{h \in H}
        \left( \mathbb{1}[s_m > s_h] + \tfrac12 \mathbb{1}[s_m = s_h] \right)

    (the Mann-Whitney statistic; equal to :func:`sklearn.metrics.roc_auc_score` with labels 1 for members): the
    trapezoidal area under :func:`roc_curve`, which comes from torchmetrics'
    :func:`~torchmetrics.functional.classification.binary_roc` (see the module docstring). ``0.5``: the score cannot
    tell members from non-members.

    Args:
        member_scores: scores of the members (positives), 1-D, finite, non-empty; higher = more likely a member.
        nonmember_scores: scores of the non-members, 1-D, finite, non-empty.

    Returns:
        The AUC, a ``float`` in ``[0, 1]``.

    Raises:
        TypeError: If an input is not a tensor or a sequence of numbers.
        ValueError: If an input is not 1-D, holds NaN/inf, or is empty.

    Example:
        >>> from lightning_unlearn.metrics import auroc
        >>> auroc([3.0, 2.0, 0.5], [1.0, 0.5])  # 4 of 6 pairs ordered, 1 tie: 4.5 / 6
        0.75

    """
    members = _check_scores(member_scores, "member_scores")
    nonmembers = _check_scores(nonmember_scores, "nonmember_scores")
    return _auroc_compute(members, nonmembers, owner="auroc")


def roc_curve(
    member_scores: Tensor | Sequence[float], nonmember_scores: Tensor | Sequence[float]
) -> tuple[Tensor, Tensor, Tensor]:
    r"""ROC curve of a membership score (members = positives), one point per distinct score.

    Like :func:`sklearn.metrics.roc_curve` with ``drop_intermediate=False``: point ``i`` calls "member" every sample
    with score ``>= thresholds[i]``; ``thresholds`` decrease and start at ``+inf`` (nothing called member, the point
    ``(0, 0)``), and the last point is ``(1, 1)``. Computed with torchmetrics'
    :func:`~torchmetrics.functional.classification.binary_roc` on the scores' ranks, so ties are handled exactly.
    The TPR at a false-positive rate :math:`\alpha` is then ``tpr[fpr <= alpha].max()``.

    Args:
        member_scores: scores of the members, 1-D, finite, non-empty.
        nonmember_scores: scores of the non-members, 1-D, finite, non-empty.

    Returns:
        ``(fpr, tpr, thresholds)``, float64 tensors of the same length (number of distinct scores + 1).

    Raises:
        TypeError: If an input is not a tensor or a sequence of numbers.
        ValueError: If an input is not 1-D, holds NaN/inf, or is empty.

    Example:
        >>> from lightning_unlearn.metrics import roc_curve
        >>> fpr, tpr, thresholds = roc_curve([3.0, 2.0], [1.0])
        >>> fpr.tolist(), tpr.tolist(), thresholds.tolist()
        ([0.0, 0.0, 0.0, 1.0], [0.0, 0.5, 1.0, 1.0], [inf, 3.0, 2.0, 1.0])

    """
    members = _check_scores(member_scores, "member_scores")
    nonmembers = _check_scores(nonmember_scores, "nonmember_scores")
    return _roc_compute(members, nonmembers, owner="roc_curve")
