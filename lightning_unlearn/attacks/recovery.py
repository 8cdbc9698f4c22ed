"""Recovery: how much of what unlearning removed does an attack bring back?

One number per attack and metric, comparable across metrics and scales: the share of the *forgotten
gap* (the metric before unlearning minus the metric after it) that the attacked model regains.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_unlearn._errors import check_positive

__all__ = ["recovery"]


def _check_value(name: str, value: float | Tensor) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, Tensor)):
        raise TypeError(f"`{name}` should be a number or a tensor, got {type(value).__name__} {value!r}.")


def recovery(
    before: float | Tensor, unlearned: float | Tensor, attacked: float | Tensor, tolerance: float = 1e-6
) -> float | Tensor:
    r"""The fraction of the forgotten gap that an attack regains.

    .. math::
        \text{recovery} = \frac{m_\text{attacked} - m_\text{unlearned}}{m_\text{before} - m_\text{unlearned}}

    for a metric :math:`m` (e.g. forget accuracy, or an answer's probability) of the model before
    unlearning, the unlearned model and the attacked unlearned model. 0: the attack recovered nothing;
    1: the metric is fully back at its pre-unlearning value; above 1: the attack overshoots; below 0:
    the attack removed even more. The sign convention does not depend on the metric's direction (a
    loss works as well as an accuracy). Deeb and Roger (arXiv:2410.08827) report instead the attacked
    accuracy as a share of the accuracy before unlearning, :math:`m_\text{attacked} / m_\text{before}`,
    which does not subtract what the unlearned model still knows.

    When nothing was forgotten, :math:`|m_\text{before} - m_\text{unlearned}| <` ``tolerance``, the
    recovery is undefined and the result is NaN (rather than a division by almost zero).

    Args:
        before: The metric of the model before unlearning.
        unlearned: The metric of the unlearned model.
        attacked: The metric of the attacked copy of the unlearned model.
        tolerance: Gaps smaller than this (in the metric's units) count as nothing forgotten.

    Returns:
        A float when all three are Python numbers; otherwise a floating-point tensor of their
        broadcast shape, NaN where nothing was forgotten.

    Example:
        >>> recovery(before=90.0, unlearned=10.0, attacked=70.0)
        0.75
        >>> recovery(before=90.0, unlearned=10.0, attacked=5.0)
        -0.0625
        >>> recovery(before=90.0, unlearned=90.0, attacked=95.0)
        nan
        >>> recovery(torch.tensor([0.9, 0.9]), torch.tensor([0.1, 0.9]), torch.tensor([0.5, 0.9]))
        tensor([0.5000,    nan])
    """
    _check_value("before", before)
    _check_value("unlearned", unlearned)
    _check_value("attacked", attacked)
    check_positive("tolerance", tolerance)
    if not any(isinstance(v, Tensor) for v in (before, unlearned, attacked)):
        gap = before - unlearned
        return math.nan if abs(gap) < tolerance else (attacked - unlearned) / gap
    values = [torch.as_tensor(v) for v in (before, unlearned, attacked)]
    dtype = values[0].dtype
    for value in values[1:]:
        dtype = torch.promote_types(dtype, value.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    before_t, unlearned_t, attacked_t = (v.to(dtype) for v in values)
    gap = before_t - unlearned_t
    forgot = gap.abs() >= tolerance
    ratio = (attacked_t - unlearned_t) / torch.where(forgot, gap, torch.ones_like(gap))
    return torch.where(forgot, ratio, torch.full_like(ratio, math.nan))
