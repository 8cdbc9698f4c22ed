"""Membership-inference metrics for machine unlearning as :class:`torchmetrics.Metric` classes.

- :class:`MIAEfficacy`: SVC/logistic membership attack trained on retain vs test, applied to the forget set
  (Jia et al., NeurIPS 2023, arXiv:2304.04934; Fan et al., "SalUn", ICLR 2024, arXiv:2310.12508).
- :class:`LossMIAAUC`: AUC of the loss-threshold attack of Yeom et al. (IEEE CSF 2018, arXiv:1709.01604).

Both keep per-sample values in flat (1-D) list states reduced with ``dist_reduce_fx="cat"``, so under DDP every rank
computes the metric on the union of all ranks' samples; the results do not depend on how samples were split into
batches or ranks (MIA-efficacy sorts each split by feature value before its seeded subsampling). States are stored
in the metric's dtype (``torch.get_default_dtype()``, normally float32; change it with ``set_dtype``); the
functional twins round to the default dtype the same way, so both give identical numbers.

Both need samples of several kinds (splits, members and non-members) before they can be computed, so a
per-batch value does not exist: ``forward`` (``metric(...)``) only updates the state and returns ``None``.
Call :meth:`~torchmetrics.Metric.update` per batch and :meth:`~torchmetrics.Metric.compute` at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from lightning_unlearn.metrics.functional import (
    _MIA_SPLITS,
    MembershipFeature,
    MIAAttack,
    MIASplit,
    _check_losses,
    _check_split,
    _loss_mia_auc_compute,
    _membership_features_update,
    _mia_efficacy_compute,
    _resolve_mia_args,
)

__all__ = ["LossMIAAUC", "MIAEfficacy"]


def _cat_or_empty(state: list[Tensor] | Tensor, empty: Tensor) -> Tensor:
    """``dim_zero_cat`` that returns ``empty`` for a list state that never received an update."""
    if isinstance(state, Tensor) or len(state) > 0:
        return dim_zero_cat(state)
    return empty


def _split_by_membership(values: Tensor, is_member: bool | Tensor, values_name: str) -> tuple[Tensor, Tensor]:
    """``(members, non-members)`` of 1-D ``values``; ``is_member`` is a bool for the batch or a 0/1 mask per value."""
    if isinstance(is_member, (bool, np.bool_)):
        empty = values[:0]
        return (values, empty) if is_member else (empty, values)
    if not isinstance(is_member, Tensor):
        raise ValueError(
            f"`is_member` should be a bool or a boolean tensor of shape {tuple(values.shape)}, "
            f"got {type(is_member).__name__}."
        )
    if is_member.shape != values.shape:
        raise ValueError(
            f"`is_member` should have the same shape as `{values_name}` {tuple(values.shape)}, "
            f"got {tuple(is_member.shape)}."
        )
    if is_member.dtype != torch.bool:
        if is_member.is_floating_point() or is_member.is_complex():
            raise ValueError(f"`is_member` should be a boolean or 0/1 integer tensor, got dtype {is_member.dtype}.")
        if not ((is_member == 0) | (is_member == 1)).all():
            raise ValueError(
                f"`is_member` should contain only 0 and 1, got values {sorted(is_member.unique().tolist())}."
            )
        is_member = is_member.bool()
    is_member = is_member.to(values.device)
    return values[is_member], values[~is_member]


class _UpdateOnlyForward(Metric):
    """Base for metrics without a per-batch value: ``forward`` updates the state and returns ``None``."""

    def forward(self, *args: Any, **kwargs: Any) -> None:
        """Update the state with a batch; returns ``None`` because this metric has no per-batch value."""
        self.update(*args, **kwargs)


class MIAEfficacy(_UpdateOnlyForward):
    r"""MIA-efficacy: percentage of forget samples that a membership attack predicts as *non-members*.

    Protocol of Jia et al., "Model Sparsity Can Simplify Machine Unlearning" (NeurIPS 2023, arXiv:2304.04934) and
    Fan et al., "SalUn" (ICLR 2024, arXiv:2310.12508). An attack classifier :math:`\mathcal{A}` is fit on
    membership features of retain samples (members, label 1) vs test samples (non-members, label 0), then

    .. math::
        \text{MIA-efficacy} = 100 \cdot \frac{TN}{|D_f|}
        = \frac{100}{|D_f|} \sum_{x \in D_f} \mathbb{1}[\mathcal{A}(x) = 0]

    Higher = the forget set looks more like unseen data. See :func:`~lightning_unlearn.metrics.mia_efficacy` for
    the exact procedures; this class gives the same number as that function called on all samples at once (in the
    order of the ``update`` calls). ``attack="salun_svc"`` is SalUn's ``SVC_MIA`` exactly (raw confidence, the first
    ``|test|`` retain samples in update order vs every test sample): the number to compare with SalUn's published
    MIA-Efficacy. Its choice of retain samples depends on their order, so it is exact in one process fed by an
    unshuffled loader; under DDP the gathered order differs (rank by rank), and so may the chosen retain samples.

    As input to ``update`` the metric accepts:

    - ``probs`` (:class:`~torch.Tensor`): predicted class probabilities, shape ``(N, C)``, rows summing to 1
      (apply ``logits.softmax(dim=-1)`` first)
    - ``targets`` (:class:`~torch.Tensor`): integer class labels, shape ``(N,)``
    - ``split`` (:class:`str`): ``"retain"``, ``"test"`` or ``"forget"``

    As output of ``compute`` the metric returns:

    - ``mia_efficacy`` (:class:`~torch.Tensor`): a scalar tensor in ``[0, 100]``

    ``forward`` only updates (there is no per-batch value) and returns ``None``.

    Args:
        kind: membership feature(s), see :func:`~lightning_unlearn.metrics.membership_features`. ``None``
            (default): ``("entropy", "confidence")`` for ``"logistic"``/``"svc"``, ``"confidence"`` for
            ``"salun_svc"``.
        attack: ``"logistic"`` (``LogisticRegression(max_iter=1000)`` on standardised features), ``"svc"``
            (``SVC(C=3, gamma="auto", kernel="rbf")`` on standardised features) or ``"salun_svc"`` (SalUn's
            ``SVC_MIA`` exactly; see :func:`~lightning_unlearn.metrics.mia_efficacy`).
        max_samples_per_side: cap on attack training rows per side (``None``: 5000); must be ``None`` for
            ``"salun_svc"``.
        seed: seed for the subsampling generator (not used by ``"salun_svc"``).
        kwargs: Additional keyword arguments, see :ref:`Metric kwargs` for more info.

    Raises:
        ValueError: On an unknown ``kind``, ``attack`` or ``split``; invalid ``probs``/``targets`` in ``update``;
            or, in ``compute``, a split without samples.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics import MIAEfficacy
        >>> y = torch.tensor([0, 1])
        >>> metric = MIAEfficacy()
        >>> metric.update(torch.tensor([[0.9, 0.1], [0.1, 0.9]]), y, split="retain")
        >>> metric.update(torch.tensor([[0.6, 0.4], [0.4, 0.6]]), y, split="test")
        >>> metric.update(torch.tensor([[0.95, 0.05], [0.5, 0.5]]), y, split="forget")
        >>> metric.compute()
        tensor(50.)

    """

    is_differentiable: bool = False
    higher_is_better: bool = True
    full_state_update: bool = False
    plot_lower_bound: float = 0.0
    plot_upper_bound: float = 100.0

    retain_features: list[Tensor] | Tensor
    test_features: list[Tensor] | Tensor
    forget_features: list[Tensor] | Tensor

    def __init__(
        self,
        kind: MembershipFeature | Sequence[MembershipFeature] | None = None,
        attack: MIAAttack = "logistic",
        max_samples_per_side: int | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kind, max_samples_per_side = _resolve_mia_args(kind, attack, max_samples_per_side, seed)
        self.attack = attack
        self.max_samples_per_side = max_samples_per_side
        self.seed = seed
        for split in _MIA_SPLITS:
            self.add_state(f"{split}_features", default=[], dist_reduce_fx="cat")

    def update(self, probs: Tensor, targets: Tensor, split: MIASplit) -> None:
        """Add a batch of predicted probabilities and labels from ``split``."""
        _check_split(split)
        features = _membership_features_update(probs, targets, self.kind)
        # flat states in the metric's dtype: DDP gathers need equal ndim/dtype on every rank, and torchmetrics
        # substitutes a 1-D ``torch.tensor([], dtype=self.dtype)`` for a rank that saw no samples of a split
        getattr(self, f"{split}_features").append(features.to(self.dtype).flatten())

    def compute(self) -> Tensor:
        """Fit the attack on retain vs test and return the percentage of forget samples called non-members."""
        empty = torch.zeros(0, dtype=self.dtype, device=self.device)
        retain, test, forget = (
            _cat_or_empty(getattr(self, f"{s}_features"), empty).reshape(-1, len(self.kind)) for s in _MIA_SPLITS
        )
        value = _mia_efficacy_compute(
            retain, test, forget, self.attack, self.max_samples_per_side, self.seed, owner=type(self).__name__
        )
        return torch.tensor(value, dtype=torch.get_default_dtype(), device=self.device)


class LossMIAAUC(_UpdateOnlyForward):
    r"""AUC of the loss-threshold membership attack (Yeom et al., IEEE CSF 2018, arXiv:1709.01604).

    Scores each sample by :math:`-\ell(x)` and computes the AUC of members (for unlearning: the forget set)
    against non-members (a held-out set), ties counting one half:

    .. math::
        \text{AUC} = \frac{1}{|M||H|} \sum_{m \in M} \sum_{h \in H}
        \left( \mathbb{1}[\ell_m < \ell_h] + \tfrac12 \mathbb{1}[\ell_m = \ell_h] \right)

    The goal of unlearning is ``0.5`` (forget samples indistinguishable from unseen ones). ``higher_is_better``
    is ``False`` because values above ``0.5`` (still memorised) are the usual failure, but values below ``0.5``
    (forget samples have *higher* loss than unseen data) also leak membership; report ``|AUC - 0.5|`` when a
    "lower is better" number is needed.

    As input to ``update`` the metric accepts:

    - ``losses`` (:class:`~torch.Tensor`): per-sample losses, float tensor of shape ``(N,)``, ``>= 0``
      (e.g. ``F.cross_entropy(logits, y, reduction="none")``; negative values are refused, since log-likelihoods
      passed by mistake would flip the AUC)
    - ``is_member`` (:class:`bool` or :class:`~torch.Tensor`): ``True`` if the whole batch are members, ``False``
      if non-members, or a boolean (or 0/1 integer) tensor of shape ``(N,)`` per sample

    As output of ``compute`` the metric returns:

    - ``auc`` (:class:`~torch.Tensor`): a scalar tensor in ``[0, 1]``

    ``forward`` only updates (there is no per-batch value) and returns ``None``.

    Args:
        kwargs: Additional keyword arguments, see :ref:`Metric kwargs` for more info.

    Raises:
        ValueError: If ``losses`` is not a 1-D float tensor of finite values ``>= 0``, ``is_member`` has the wrong type,
            shape or values, or, in ``compute``, there are no members or no non-members.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics import LossMIAAUC
        >>> metric = LossMIAAUC()
        >>> metric.update(torch.tensor([0.1, 0.2, 0.9]), is_member=True)
        >>> metric.update(torch.tensor([0.2, 1.0]), is_member=False)
        >>> metric.compute()
        tensor(0.7500)

    """

    is_differentiable: bool = False
    higher_is_better: bool = False
    full_state_update: bool = False
    plot_lower_bound: float = 0.0
    plot_upper_bound: float = 1.0

    member_losses: list[Tensor] | Tensor
    nonmember_losses: list[Tensor] | Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("member_losses", default=[], dist_reduce_fx="cat")
        self.add_state("nonmember_losses", default=[], dist_reduce_fx="cat")

    def update(self, losses: Tensor, is_member: bool | Tensor) -> None:
        """Add per-sample ``losses``; ``is_member`` marks the whole batch or each sample as member/non-member."""
        _check_losses(losses, "losses")
        members, nonmembers = _split_by_membership(losses.detach().to(self.dtype), is_member, "losses")
        self.member_losses.append(members)
        self.nonmember_losses.append(nonmembers)

    def compute(self) -> Tensor:
        """Return the AUC of members vs non-members with score ``-loss``."""
        empty = torch.zeros(0, dtype=self.dtype, device=self.device)
        value = _loss_mia_auc_compute(
            _cat_or_empty(self.member_losses, empty),
            _cat_or_empty(self.nonmember_losses, empty),
            owner=type(self).__name__,
        )
        return torch.tensor(value, dtype=torch.get_default_dtype(), device=self.device)
