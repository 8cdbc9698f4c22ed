"""Functional unlearning metrics: membership features, MIA-efficacy, loss-threshold MIA AUC, accuracy, Avg Gap.

Every function here has a stateful :class:`~torchmetrics.Metric` twin in :mod:`lightning_unlearn.metrics.mia`
(except :func:`split_accuracy` and :func:`avg_gap`); both share the private ``_*_update`` / ``_*_compute``
helpers defined in this module, so a metric accumulated over batches (or over DDP ranks) gives the same number as
the function called once on all the data.

References:
    - L. Song and P. Mittal, "Systematic Evaluation of Privacy Risks of Machine Learning Models",
      USENIX Security 2021 (arXiv:2003.10595): entropy / confidence / modified-entropy membership signals.
    - J. Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023 (arXiv:2304.04934), and
      C. Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in Both Image
      Classification and Generation", ICLR 2024 (arXiv:2310.12508): MIA-efficacy and the Avg Gap protocol.
    - S. Yeom et al., "Privacy Risk in Machine Learning: Analyzing the Connection to Overfitting", IEEE CSF 2018
      (arXiv:1709.01604): the loss-threshold membership attack.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from lightning_unlearn._errors import check_choice
from lightning_unlearn.metrics.gap import SALUN_GAP_KEYS, avg_gap
from lightning_unlearn.metrics.roc import _auroc_compute

__all__ = [
    "DEFAULT_MIA_FEATURES",
    "SALUN_GAP_KEYS",
    "MIAAttack",
    "MIASplit",
    "MembershipFeature",
    "avg_gap",
    "loss_mia_auc",
    "membership_features",
    "mia_efficacy",
    "split_accuracy",
]

#: Tolerance on ``|sum(row) - 1|`` (and on values outside ``[0, 1]``) when checking probability inputs.
PROBS_ATOL = 1e-3

# --------------------------------------------------------------------------------------------------------------
# membership features
# --------------------------------------------------------------------------------------------------------------

MembershipFeature = Literal["entropy", "confidence", "modified_entropy", "correctness"]

#: Features used by :func:`mia_efficacy` / :class:`MIAEfficacy` unless ``kind`` is given.
DEFAULT_MIA_FEATURES: tuple[MembershipFeature, ...] = ("entropy", "confidence")

_LOG_FLOOR = 1e-30  # as in Song & Mittal's reference code (``_log_value(probs, small_value=1e-30)``)


def _entropy_feature(probs: Tensor, targets: Tensor) -> Tensor:
    """Shannon entropy ``-sum_i p_i log p_i`` (natural log, ``0 log 0 = 0``)."""
    return -torch.special.xlogy(probs, probs).sum(dim=-1)


def _confidence_feature(probs: Tensor, targets: Tensor) -> Tensor:
    """Probability assigned to the true class, ``p_y``."""
    return probs.gather(1, targets.unsqueeze(1)).squeeze(1)


def _modified_entropy_feature(probs: Tensor, targets: Tensor) -> Tensor:
    """Song & Mittal's modified entropy ``-(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``."""
    neg_log_p = -torch.log(probs.clamp_min(_LOG_FLOOR))
    neg_log_1mp = -torch.log((1.0 - probs).clamp_min(_LOG_FLOOR))
    is_true = torch.zeros_like(probs, dtype=torch.bool).scatter_(1, targets.unsqueeze(1), True)
    weights = torch.where(is_true, 1.0 - probs, probs)
    logs = torch.where(is_true, neg_log_p, neg_log_1mp)
    return (weights * logs).sum(dim=-1)


def _correctness_feature(probs: Tensor, targets: Tensor) -> Tensor:
    """``1`` where ``argmax(p) == y`` else ``0``."""
    return (probs.argmax(dim=-1) == targets).to(probs.dtype)


_MEMBERSHIP_FEATURES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "entropy": _entropy_feature,
    "confidence": _confidence_feature,
    "modified_entropy": _modified_entropy_feature,
    "correctness": _correctness_feature,
}


def _resolve_kinds(kind: MembershipFeature | Sequence[MembershipFeature]) -> tuple[str, ...]:
    """Validate ``kind`` (one feature name or a sequence of them) and return it as a tuple."""
    kinds = (kind,) if isinstance(kind, str) else kind
    if not isinstance(kinds, Sequence):
        raise ValueError(f"`kind` should be one of {sorted(_MEMBERSHIP_FEATURES)} or a sequence of them, got {kind!r}.")
    kinds = tuple(kinds)
    if not kinds:
        raise ValueError(
            f"`kind` should name at least one feature from {sorted(_MEMBERSHIP_FEATURES)}, got an empty sequence."
        )
    for k in kinds:
        check_choice("kind", k, _MEMBERSHIP_FEATURES)
    return kinds


def _check_probs_targets(
    probs: Tensor, targets: Tensor, probs_name: str = "probs", targets_name: str = "targets"
) -> None:
    """Check that ``probs`` is an ``[N, C]`` probability matrix and ``targets`` are ``N`` class indices.

    ``probs_name`` / ``targets_name`` are the argument names used in error messages.
    """
    if not isinstance(probs, Tensor):
        raise TypeError(f"`{probs_name}` should be a torch.Tensor of shape [N, C], got {type(probs).__name__}.")
    if not isinstance(targets, Tensor):
        raise TypeError(f"`{targets_name}` should be a torch.Tensor of shape [N], got {type(targets).__name__}.")
    if probs.ndim != 2:
        raise ValueError(f"`{probs_name}` should be 2-D with shape [N, C], got shape {tuple(probs.shape)}.")
    if not probs.is_floating_point():
        raise ValueError(f"`{probs_name}` should be a floating-point tensor of probabilities, got dtype {probs.dtype}.")
    n, c = probs.shape
    if c == 0:
        raise ValueError(f"`{probs_name}` should have at least one class column, got shape {tuple(probs.shape)}.")
    if targets.ndim != 1 or targets.shape[0] != n:
        raise ValueError(
            f"`{targets_name}` should be 1-D with {n} entries to match `{probs_name}` of shape {tuple(probs.shape)}, "
            f"got shape {tuple(targets.shape)}."
        )
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"`{targets_name}` should be an integer tensor of class indices, got dtype {targets.dtype}.")
    if n == 0:
        return
    if not torch.isfinite(probs).all():
        raise ValueError(
            f"`{probs_name}` contains NaN or infinite values; pass probabilities, e.g. `logits.softmax(dim=-1)`."
        )
    lo, hi = probs.min().item(), probs.max().item()
    if lo < -PROBS_ATOL or hi > 1.0 + PROBS_ATOL:
        raise ValueError(
            f"`{probs_name}` should lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]. "
            "Did you pass logits? Apply `logits.softmax(dim=-1)` first."
        )
    row_err = (probs.double().sum(dim=-1) - 1.0).abs()
    worst = int(row_err.argmax())
    if row_err[worst] > PROBS_ATOL:
        raise ValueError(
            f"Rows of `{probs_name}` should sum to 1 (tolerance {PROBS_ATOL:g}), but row {worst} sums to "
            f"{probs[worst].double().sum().item():.6g}. Did you pass logits? Apply `logits.softmax(dim=-1)` first."
        )
    t_lo, t_hi = targets.min().item(), targets.max().item()
    if t_lo < 0 or t_hi >= c:
        raise ValueError(
            f"`{targets_name}` should be class indices in [0, {c - 1}] for `{probs_name}` with {c} columns, "
            f"got values in [{t_lo}, {t_hi}]."
        )


def _membership_features_update(
    probs: Tensor, targets: Tensor, kinds: Sequence[str], probs_name: str = "probs", targets_name: str = "targets"
) -> Tensor:
    """Validate inputs and compute the ``[N, len(kinds)]`` float64 feature matrix (``kinds`` already resolved)."""
    _check_probs_targets(probs, targets, probs_name, targets_name)
    p = probs.detach().to(torch.float64).clamp(0.0, 1.0)
    t = targets.detach().long()
    if p.shape[0] == 0:
        return p.new_zeros((0, len(kinds)))
    return torch.stack([_MEMBERSHIP_FEATURES[k](p, t) for k in kinds], dim=1)


def membership_features(
    probs: Tensor,
    targets: Tensor,
    kind: MembershipFeature | Sequence[MembershipFeature] = DEFAULT_MIA_FEATURES,
) -> Tensor:
    r"""Per-sample membership-inference signals of a classifier's predictive distribution.

    For a probability vector :math:`p = F(x) \in \Delta^{C-1}` and label :math:`y`:

    .. math::
        \text{entropy} &= -\sum_i p_i \log p_i \\
        \text{confidence} &= p_y \\
        \text{modified\_entropy} &= -(1 - p_y)\log p_y - \sum_{i \neq y} p_i \log(1 - p_i) \\
        \text{correctness} &= \mathbb{1}[\arg\max_i p_i = y]

    Modified entropy is from Song & Mittal, "Systematic Evaluation of Privacy Risks of Machine Learning Models"
    (USENIX Security 2021, arXiv:2003.10595); like their reference code, logarithms are floored at
    :math:`\log 10^{-30}`. Entropy uses the natural logarithm with :math:`0 \log 0 = 0`.

    Args:
        probs: predicted class probabilities, shape ``[N, C]``; rows must sum to 1 (tolerance ``1e-3``).
            Values within the tolerance outside ``[0, 1]`` are clamped.
        targets: true class indices, integer tensor of shape ``[N]`` with values in ``[0, C)``.
        kind: one of ``"entropy"``, ``"confidence"``, ``"modified_entropy"``, ``"correctness"``, or a sequence of
            them whose columns are concatenated in the given order. Default ``("entropy", "confidence")``.

    Returns:
        A float64 tensor of shape ``[N, F]``, ``F`` = number of kinds.

    Raises:
        ValueError: If ``kind`` is unknown or empty, ``probs`` is not a 2-D floating tensor of probabilities, or
            ``targets`` has the wrong shape, dtype or range.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics import membership_features
        >>> probs = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
        >>> targets = torch.tensor([0, 1])
        >>> membership_features(probs, targets, kind=["confidence", "correctness"])
        tensor([[0.5000, 1.0000],
                [0.1000, 0.0000]], dtype=torch.float64)
        >>> membership_features(probs, targets, kind="entropy")
        tensor([[0.6931],
                [0.3251]], dtype=torch.float64)

    """
    return _membership_features_update(probs, targets, _resolve_kinds(kind))


# --------------------------------------------------------------------------------------------------------------
# MIA-efficacy
# --------------------------------------------------------------------------------------------------------------

MIAAttack = Literal["logistic", "svc", "salun_svc"]
MIASplit = Literal["retain", "test", "forget"]


def _make_logistic() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def _make_svc() -> Any:
    from sklearn.svm import SVC

    return SVC(C=3.0, gamma="auto", kernel="rbf")  # SalUn's SVC_MIA


@dataclass(frozen=True)
class _AttackSpec:
    """One MIA-efficacy attack: the classifier, whether features are standardised, how rows are chosen, defaults."""

    make: Callable[[], Any]
    standardize: bool
    sampling: Literal["balanced", "salun"]
    kind: tuple[str, ...]
    max_samples_per_side: int | None


#: MIA-efficacy attacks. ``"logistic"`` / ``"svc"``: standardised features, seeded balanced subsample of at most
#: ``max_samples_per_side`` rows per side. ``"salun_svc"``: SalUn's ``SVC_MIA`` exactly (raw confidence feature,
#: ``SVC(C=3, gamma="auto", kernel="rbf")``, the first ``|test|`` retain rows against every test row).
_MIA_ATTACKS: dict[str, _AttackSpec] = {
    "logistic": _AttackSpec(_make_logistic, True, "balanced", DEFAULT_MIA_FEATURES, 5000),
    "svc": _AttackSpec(_make_svc, True, "balanced", DEFAULT_MIA_FEATURES, 5000),
    "salun_svc": _AttackSpec(_make_svc, False, "salun", ("confidence",), None),
}

#: Splits of :class:`MIAEfficacy`; the value is the membership label used to train the attack (``None``: not used).
_MIA_SPLITS: dict[str, int | None] = {"retain": 1, "test": 0, "forget": None}


def _resolve_mia_args(
    kind: MembershipFeature | Sequence[MembershipFeature] | None, attack: str, max_samples_per_side: int | None, seed: int
) -> tuple[tuple[str, ...], int | None]:
    """Validate the hyper-parameters shared by :func:`mia_efficacy` and :class:`MIAEfficacy`; fill the attack's
    defaults. Returns ``(kinds, max_samples_per_side)``."""
    check_choice("attack", attack, _MIA_ATTACKS)
    spec = _MIA_ATTACKS[attack]
    kinds = spec.kind if kind is None else _resolve_kinds(kind)
    if max_samples_per_side is None:
        max_samples_per_side = spec.max_samples_per_side
    elif spec.sampling == "salun":
        raise ValueError(
            f"`max_samples_per_side` should be None with attack={attack!r} (SalUn's SVC_MIA fits on the first |test| "
            f"retain samples and every test sample, without a cap), got {max_samples_per_side!r}."
        )
    else:
        if isinstance(max_samples_per_side, bool) or not isinstance(max_samples_per_side, int):
            raise TypeError(
                f"`max_samples_per_side` should be an int or None, got {type(max_samples_per_side).__name__} "
                f"{max_samples_per_side!r}."
            )
        if max_samples_per_side < 1:
            raise ValueError(f"`max_samples_per_side` should be >= 1, got {max_samples_per_side!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` should be an int, got {type(seed).__name__} {seed!r}.")
    return kinds, max_samples_per_side


def _check_split(split: str) -> None:
    check_choice("split", split, _MIA_SPLITS)


def _canonical_order(features: Tensor) -> Tensor:
    """Sort rows lexicographically (first column most significant) so results do not depend on sample order."""
    if features.shape[0] < 2:
        return features
    order = np.lexsort(features.cpu().numpy().T[::-1])
    return features[torch.from_numpy(order).to(features.device)]


def _subsample(features: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """Keep ``n`` rows drawn without replacement (order preserved); draws from ``generator`` only if needed."""
    if features.shape[0] <= n:
        return features
    idx = torch.randperm(features.shape[0], generator=generator)[:n].sort().values
    return features[idx.to(features.device)]


def _mia_efficacy_compute(
    retain_features: Tensor,
    test_features: Tensor,
    forget_features: Tensor,
    attack: str,
    max_samples_per_side: int | None,
    seed: int,
    owner: str,
) -> float:
    """Fit the attack on retain (member) vs test (non-member) features, return % of forget called non-member.

    Procedure (shared by the functional and the Metric class), for ``"logistic"`` / ``"svc"``:

    1. each of ``retain``/``test`` is sorted lexicographically by feature values (order/rank invariance);
    2. ``n = min(|retain|, |test|, max_samples_per_side)``; a side with more than ``n`` rows keeps the rows at
       ``sort(randperm(len, generator)[:n])``, with one ``torch.Generator().manual_seed(seed)`` drawn first for
       retain, then for test (a side that already has ``n`` rows consumes no draws);
    3. ``sklearn.preprocessing.StandardScaler`` is fit on the ``2n`` training rows, then the attack on the scaled
       rows with labels ``1`` (retain) and ``0`` (test);
    4. the result is ``100 * mean(attack.predict(scaler.transform(forget)) == 0)``.

    For ``"salun_svc"`` (SalUn's ``SVC_MIA``): the attack is fit on the first ``min(|retain|, |test|)`` retain rows
    *in the given order* (label 1) and every test row (label 0), unscaled; the result is
    ``100 * (1 - mean(attack.predict(forget)))``.
    """
    for split, feats in (("retain", retain_features), ("test", test_features), ("forget", forget_features)):
        if feats.shape[0] == 0:
            raise ValueError(f"{owner} needs samples from all three splits; got 0 {split!r} samples.")
    spec = _MIA_ATTACKS[attack]
    if spec.sampling == "salun":
        members = retain_features[: test_features.shape[0]]
        nonmembers = test_features
    else:
        retain_features = _canonical_order(retain_features)
        test_features = _canonical_order(test_features)
        n = min(retain_features.shape[0], test_features.shape[0], max_samples_per_side)
        generator = torch.Generator().manual_seed(seed)
        members = _subsample(retain_features, n, generator)
        nonmembers = _subsample(test_features, n, generator)

    x_train = torch.cat([members, nonmembers]).cpu().numpy()
    y_train = np.concatenate(
        [np.full(members.shape[0], _MIA_SPLITS["retain"]), np.full(nonmembers.shape[0], _MIA_SPLITS["test"])]
    )
    x_forget = forget_features.cpu().numpy()
    if spec.standardize:
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x_train)
        x_train, x_forget = scaler.transform(x_train), scaler.transform(x_forget)
    pred = spec.make().fit(x_train, y_train).predict(x_forget)
    if spec.sampling == "salun":
        return 100.0 * float(1.0 - pred.mean())  # SVC_fit_predict's ``1 - clf.predict(X_target_test).mean()``
    return 100.0 * float(np.mean(pred == _MIA_SPLITS["test"]))


def mia_efficacy(
    retain_probs: Tensor,
    retain_targets: Tensor,
    test_probs: Tensor,
    test_targets: Tensor,
    forget_probs: Tensor,
    forget_targets: Tensor,
    *,
    kind: MembershipFeature | Sequence[MembershipFeature] | None = None,
    attack: MIAAttack = "logistic",
    max_samples_per_side: int | None = None,
    seed: int = 0,
) -> float:
    r"""MIA-efficacy: percentage of forget samples a membership attack calls *non-members*.

    Protocol of Jia et al., "Model Sparsity Can Simplify Machine Unlearning" (NeurIPS 2023, arXiv:2304.04934) and
    Fan et al., "SalUn" (ICLR 2024, arXiv:2310.12508): an attack classifier :math:`\mathcal{A}` is trained on
    membership features (see :func:`membership_features`) of retain samples (members, label 1) against test samples
    (non-members, label 0) and applied to the forget set :math:`D_f`:

    .. math::
        \text{MIA-efficacy} = 100 \cdot \frac{TN}{|D_f|}
        = \frac{100}{|D_f|} \sum_{x \in D_f} \mathbb{1}[\mathcal{A}(x) = 0]

    Higher means the forget set looks *less* like training data, i.e. more forgotten. Note that the retrain
    oracle is not at 100: compare with it (e.g. via :func:`avg_gap`).

    Two protocols, chosen by ``attack``:

    - ``"salun_svc"`` reproduces SalUn's ``SVC_MIA`` (``Classification/evaluation/SVC_MIA.py`` and
      ``main_forget.py`` of github.com/OPTML-Group/Unlearn-Saliency) *exactly*, so the number is comparable with
      SalUn's published MIA-Efficacy and Avg Gap: the feature is the true-class confidence :math:`p_y` (the
      ``"confidence"`` entry SalUn reports), **not** standardised; ``SVC(C=3, gamma="auto", kernel="rbf")`` is fit
      on the first ``min(|retain|, |test|)`` retain samples *in the order given* (SalUn's
      ``Subset(retain, range(len(test)))``) against every test sample; the result is
      ``100 * (1 - mean(predict(forget)))``. Pass the splits in dataset order (an unshuffled loader) to select the
      same retain samples as SalUn. ``max_samples_per_side`` must stay ``None``; ``seed`` is not used.
    - ``"logistic"`` (``LogisticRegression(max_iter=1000)``, default) and ``"svc"`` (SalUn's SVC): features are
      standardised (``StandardScaler`` fit on the training rows), the two sides are balanced by subsampling the
      larger one with a seeded generator, capped at ``max_samples_per_side`` rows per side (default 5000), and rows
      are sorted by feature value before subsampling so the result does not depend on sample order. Standardising
      changes the SVC's RBF kernel (``gamma="auto"`` = 1 / n_features), so ``"svc"`` can differ from SalUn's number
      by tens of points; use ``"salun_svc"`` to compare with published numbers.

    Features are computed in float64 and then rounded to ``torch.get_default_dtype()`` (normally float32), the
    dtype in which the :class:`~lightning_unlearn.metrics.MIAEfficacy` twin stores them (for ``"confidence"``
    of float32 probabilities, that is the probability itself, as in SalUn).

    Args:
        retain_probs: predicted probabilities on retain samples, ``[N_r, C]``.
        retain_targets: labels of the retain samples, ``[N_r]``.
        test_probs: predicted probabilities on held-out test samples, ``[N_t, C]``.
        test_targets: labels of the test samples, ``[N_t]``.
        forget_probs: predicted probabilities on forget samples, ``[N_f, C]``.
        forget_targets: labels of the forget samples, ``[N_f]``.
        kind: membership feature(s), see :func:`membership_features`. ``None`` (default): the attack's own,
            ``("entropy", "confidence")`` for ``"logistic"``/``"svc"``, ``"confidence"`` for ``"salun_svc"``.
        attack: ``"logistic"``, ``"svc"`` or ``"salun_svc"`` (see above).
        max_samples_per_side: cap on attack training rows per side for ``"logistic"``/``"svc"``; ``None`` = 5000.
            Must be ``None`` for ``"salun_svc"``.
        seed: seed of the ``torch.Generator`` used for subsampling (``"logistic"``/``"svc"`` only).

    Returns:
        MIA-efficacy in percent, a ``float`` in ``[0, 100]``.

    Raises:
        ValueError: On an unknown ``kind``/``attack``, invalid probabilities or targets, a non-positive
            ``max_samples_per_side`` (or any with ``"salun_svc"``), or an empty split.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics import mia_efficacy
        >>> y = torch.tensor([0, 1])
        >>> retain = torch.tensor([[0.9, 0.1], [0.1, 0.9]])  # confident: looks like training data
        >>> test = torch.tensor([[0.6, 0.4], [0.4, 0.6]])
        >>> forget = torch.tensor([[0.95, 0.05], [0.5, 0.5]])  # first still memorised, second forgotten
        >>> mia_efficacy(retain, y, test, y, forget, y)
        50.0
        >>> mia_efficacy(retain, y, test, y, forget, y, attack="salun_svc")
        50.0

    """
    kinds, max_samples_per_side = _resolve_mia_args(kind, attack, max_samples_per_side, seed)
    feats = []
    for name, probs, targets in (
        ("retain", retain_probs, retain_targets),
        ("test", test_probs, test_targets),
        ("forget", forget_probs, forget_targets),
    ):
        feats.append(
            _membership_features_update(probs, targets, kinds, f"{name}_probs", f"{name}_targets").to(
                torch.get_default_dtype()  # the storage dtype of the MIAEfficacy twin, for identical results
            )
        )
    return _mia_efficacy_compute(*feats, attack, max_samples_per_side, seed, owner="mia_efficacy")


# --------------------------------------------------------------------------------------------------------------
# loss-threshold MIA AUC
# --------------------------------------------------------------------------------------------------------------


#: Tolerance below 0 accepted for losses (a cross-entropy can round to a tiny negative number).
LOSS_ATOL = 1e-4


def _check_losses(losses: Tensor, name: str) -> None:
    """Check that ``losses`` is a 1-D floating tensor of finite, non-negative per-sample losses."""
    if not isinstance(losses, Tensor):
        raise TypeError(f"`{name}` should be a torch.Tensor of shape [N], got {type(losses).__name__}.")
    if losses.ndim != 1:
        raise ValueError(f"`{name}` should be 1-D per-sample losses of shape [N], got shape {tuple(losses.shape)}.")
    if not losses.is_floating_point():
        raise ValueError(f"`{name}` should be a floating-point tensor, got dtype {losses.dtype}.")
    if not torch.isfinite(losses).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    if losses.numel() and losses.min().item() < -LOSS_ATOL:
        raise ValueError(
            f"`{name}` should hold losses (>= 0), got a minimum of {losses.min().item():.4g}. "
            "Did you pass log-likelihoods (negative losses)? Negate them."
        )


def _loss_mia_auc_compute(member_losses: Tensor, nonmember_losses: Tensor, owner: str) -> float:
    """AUC of score ``-loss`` with members as the positive class (the package's one AUROC, :mod:`.roc`)."""
    return _auroc_compute(-member_losses, -nonmember_losses, owner, noun="loss")


def loss_mia_auc(member_losses: Tensor, nonmember_losses: Tensor) -> float:
    r"""AUC of the loss-threshold membership attack (Yeom et al., IEEE CSF 2018, arXiv:1709.01604).

    The attack scores each sample by :math:`s(x) = -\ell(x)` (training members tend to have lower loss). With
    members :math:`M` (for unlearning: the forget set) and non-members :math:`H` (a held-out set), the AUC of
    the attack is the Mann-Whitney statistic, ties counting one half:

    .. math::
        \text{AUC} = \frac{1}{|M||H|} \sum_{m \in M} \sum_{h \in H}
        \left( \mathbb{1}[\ell_m < \ell_h] + \tfrac12 \mathbb{1}[\ell_m = \ell_h] \right)

    computed by :func:`~lightning_unlearn.metrics.auroc` (torchmetrics' ROC; equal to
    ``sklearn.metrics.roc_auc_score``). ``0.5`` means the attack cannot
    tell forget samples from unseen ones, which is the goal of unlearning; values above ``0.5`` mean the forget
    set is still recognisably "trained on", values below ``0.5`` mean it is *over*-forgotten (higher loss than
    unseen data), which itself leaks membership.

    Losses are rounded to ``torch.get_default_dtype()`` (normally float32) first, as the
    :class:`~lightning_unlearn.metrics.LossMIAAUC` twin stores them.

    Args:
        member_losses: per-sample losses of the members (forget set), 1-D float tensor, ``>= 0``.
        nonmember_losses: per-sample losses of the non-members (held-out set), 1-D float tensor, ``>= 0``.

    Returns:
        The AUC, a ``float`` in ``[0, 1]``.

    Raises:
        ValueError: If an input is not a 1-D float tensor of finite values, holds a negative value (below
            ``-1e-4``: log-likelihoods passed instead of losses would silently flip the AUC), or either side is
            empty.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics import loss_mia_auc
        >>> loss_mia_auc(torch.tensor([0.1, 0.2, 0.9]), torch.tensor([0.2, 1.0]))
        0.75

    """
    _check_losses(member_losses, "member_losses")
    _check_losses(nonmember_losses, "nonmember_losses")
    dtype = torch.get_default_dtype()  # the storage dtype of the LossMIAAUC twin, for identical results
    return _loss_mia_auc_compute(member_losses.to(dtype), nonmember_losses.to(dtype), owner="loss_mia_auc")


# --------------------------------------------------------------------------------------------------------------
# accuracy on a split
# --------------------------------------------------------------------------------------------------------------


def split_accuracy(logits_or_probs: Tensor, targets: Tensor) -> float:
    r"""Top-1 accuracy in percent on one split (forget, retain or test).

    .. math::
        \text{Acc} = \frac{100}{N} \sum_{n=1}^{N} \mathbb{1}[\arg\max_c z_{n,c} = y_n]

    Used for SalUn's (Fan et al., ICLR 2024, arXiv:2310.12508) ``UA = 100 - Acc(D_f)``, ``RA = Acc(D_r)`` and
    ``TA = Acc(D_test)``. Logits and probabilities give the same result (softmax keeps the argmax).

    Args:
        logits_or_probs: scores of shape ``[N, C]``.
        targets: class indices of shape ``[N]`` in ``[0, C)``.

    Returns:
        Accuracy in percent, a ``float`` in ``[0, 100]``.

    Raises:
        ValueError: If shapes or dtypes are wrong, targets are out of range, or ``N == 0``.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics import split_accuracy
        >>> logits = torch.tensor([[2.0, -1.0], [0.5, 1.5], [3.0, 0.0], [0.0, 1.0]])
        >>> split_accuracy(logits, torch.tensor([0, 1, 1, 1]))
        75.0

    """
    if not isinstance(logits_or_probs, Tensor):
        raise TypeError(
            f"`logits_or_probs` should be a torch.Tensor of shape [N, C], got {type(logits_or_probs).__name__}."
        )
    if not isinstance(targets, Tensor):
        raise TypeError(f"`targets` should be a torch.Tensor of shape [N], got {type(targets).__name__}.")
    if logits_or_probs.ndim != 2:
        raise ValueError(
            f"`logits_or_probs` should be 2-D with shape [N, C], got shape {tuple(logits_or_probs.shape)}."
        )
    n, c = logits_or_probs.shape
    if targets.ndim != 1 or targets.shape[0] != n:
        raise ValueError(
            f"`targets` should be 1-D with {n} entries to match `logits_or_probs` of shape "
            f"{tuple(logits_or_probs.shape)}, got shape {tuple(targets.shape)}."
        )
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"`targets` should be an integer tensor of class indices, got dtype {targets.dtype}.")
    if n == 0:
        raise ValueError("`logits_or_probs` should contain at least one sample, got N=0.")
    t_lo, t_hi = targets.min().item(), targets.max().item()
    if t_lo < 0 or t_hi >= c:
        raise ValueError(
            f"`targets` should be class indices in [0, {c - 1}] for {c} classes, got values in [{t_lo}, {t_hi}]."
        )
    correct = (logits_or_probs.detach().argmax(dim=-1) == targets.to(logits_or_probs.device)).sum().item()
    return 100.0 * correct / n
