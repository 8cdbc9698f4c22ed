"""Avg Gap: distance of an unlearned model to the retrain-from-scratch oracle.

SalUn (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in Both Image
Classification and Generation", ICLR 2024, arXiv:2310.12508) and "Model Sparsity Can Simplify Machine Unlearning"
(Jia et al., NeurIPS 2023, arXiv:2304.04934) compare an approximate unlearning method against *Retrain*, a model
trained from scratch on the retain set only. Each method is summarised by

- ``UA``: unlearning accuracy, ``100 - accuracy on the forget set`` (percent),
- ``RA``: accuracy on the retain set (percent),
- ``TA``: accuracy on the test set (percent),
- ``MIA``: MIA-efficacy on the forget set (percent, see :func:`~lightning_unlearn.metrics.mia_efficacy`),

and the *Avg Gap* is the mean absolute difference of these numbers to the Retrain oracle's. Lower is better;
``0`` means indistinguishable from retraining on these four numbers.

This module holds only the functional form; there is no ``AvgGap`` ``Metric`` class because the gap combines the
results of several already reduced metrics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from torch import Tensor

__all__ = ["SALUN_GAP_KEYS", "avg_gap"]

#: The four numbers SalUn (Fan et al., ICLR 2024) averages the gap over.
SALUN_GAP_KEYS: tuple[str, ...] = ("UA", "RA", "TA", "MIA")


def _as_float(value: float | Tensor, name: str, key: str) -> float:
    """Turn a number or one-element tensor into a finite ``float``, naming ``name[key]`` on failure."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"`{name}[{key!r}]` should be a number or a one-element tensor, got a tensor of shape "
                f"{tuple(value.shape)}."
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"`{name}[{key!r}]` should be a number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}[{key!r}]` should be finite, got {value}.")
    return value


def avg_gap(
    metrics: Mapping[str, float | Tensor],
    oracle: Mapping[str, float | Tensor],
    keys: Sequence[str] = SALUN_GAP_KEYS,
) -> float:
    r"""Compute the *Avg Gap* of an unlearned model to the retrain oracle (Fan et al., ICLR 2024).

    .. math::
        \text{AvgGap} = \frac{1}{|K|} \sum_{k \in K} \left| m_k - m^{\text{oracle}}_k \right|

    with :math:`K` = ``keys``, by default ``("UA", "RA", "TA", "MIA")`` as in SalUn (arXiv:2310.12508, Tab. 3)
    and Jia et al. (NeurIPS 2023, arXiv:2304.04934). Lower is better.

    Args:
        metrics: the unlearned model's numbers, e.g. ``{"UA": 5.1, "RA": 99.0, "TA": 94.2, "MIA": 12.3}``.
            Values are floats or one-element tensors. Extra keys are ignored.
        oracle: the same numbers for the model retrained from scratch on the retain set.
        keys: which entries to average over (at least one).

    Returns:
        The mean absolute difference, a ``float`` in the units of the inputs (percentage points for SalUn's keys).

    Raises:
        ValueError: If ``keys`` is empty, a key is missing from ``metrics`` or ``oracle`` (all missing keys are
            listed), or a value is not a finite number.

    Example:
        >>> from lightning_unlearn.metrics import avg_gap
        >>> retrain = {"UA": 5.0, "RA": 100.0, "TA": 94.0, "MIA": 13.0}
        >>> unlearned = {"UA": 3.0, "RA": 99.0, "TA": 93.0, "MIA": 9.0}
        >>> avg_gap(unlearned, retrain)
        2.0
        >>> avg_gap(unlearned, retrain, keys=["UA", "MIA"])
        3.0

    """
    if isinstance(keys, str):
        raise ValueError(f"`keys` should be a sequence of metric names such as {list(SALUN_GAP_KEYS)}, got {keys!r}.")
    keys = list(keys)
    if not keys:
        raise ValueError(f"`keys` should name at least one metric, e.g. {list(SALUN_GAP_KEYS)}, got an empty sequence.")
    for name, mapping in (("metrics", metrics), ("oracle", oracle)):
        if not isinstance(mapping, Mapping):
            raise ValueError(f"`{name}` should be a mapping from metric name to value, got {type(mapping).__name__}.")
        missing = [k for k in keys if k not in mapping]
        if missing:
            raise ValueError(
                f"`{name}` is missing keys {missing}; `keys` asks for {keys}, `{name}` has {sorted(map(str, mapping))}."
            )
    gaps = [abs(_as_float(metrics[k], "metrics", k) - _as_float(oracle[k], "oracle", k)) for k in keys]
    return sum(gaps) / len(gaps)
