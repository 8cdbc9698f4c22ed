"""ROUGE-L recall as TOFU reports it, via torchmetrics' ROUGE (:func:`rouge_l_recall`, :class:`ROUGELRecall`)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_unlearn.metrics.llm._checks import _check_texts

__all__ = ["ROUGELRecall", "lcs_length", "rouge_l_recall"]


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence of two sequences (words, token ids), by dynamic programming:
    O(len(a) * len(b)) time, O(len(b)) memory. Used by PMC's token-id score (:mod:`lightning_unlearn.methods.pmc`)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _check_use_stemmer(use_stemmer: Any) -> None:
    """``use_stemmer`` must be a bool; ``True`` needs NLTK (torchmetrics' Porter stemmer), which is optional."""
    if not isinstance(use_stemmer, bool):
        raise TypeError(f"`use_stemmer` should be a bool, got {type(use_stemmer).__name__} {use_stemmer!r}.")
    if use_stemmer and importlib.util.find_spec("nltk") is None:
        raise ModuleNotFoundError(
            "`use_stemmer=True` needs NLTK's Porter stemmer (as TOFU's `rouge_score` uses); install it with "
            "`pip install nltk`, or pass `use_stemmer=False`."
        )


def _rouge_l_recall_update(
    predictions: Sequence[str], references: Sequence[str], use_stemmer: bool
) -> tuple[Tensor, int]:
    """Validate the texts; return the per-pair ROUGE-L recalls (float64 ``[N]``) and ``N``."""
    from torchmetrics.functional.text.rouge import rouge_score

    predictions = _check_texts(predictions, "predictions")
    references = _check_texts(references, "references")
    if len(predictions) != len(references):
        raise ValueError(
            f"`predictions` and `references` should have the same length, got {len(predictions)} and {len(references)}."
        )
    recalls = [
        float(rouge_score(pred, ref, rouge_keys="rougeL", use_stemmer=use_stemmer)["rougeL_recall"])
        for pred, ref in zip(predictions, references)
    ]
    return torch.tensor(recalls, dtype=torch.float64), len(recalls)


def _rouge_l_recall_compute(recall_sum: Tensor, total: Tensor | int) -> Tensor:
    """Mean recall over all pairs seen."""
    return recall_sum / total


def rouge_l_recall(
    predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = False
) -> Tensor:
    r"""ROUGE-L recall of each prediction against its reference, as TOFU reports it (Maini et al., arXiv:2401.06121).

    .. math::
        \text{ROUGE-L recall}(\hat y, y) = \frac{\text{LCS}(\hat y, y)}{|y|}

    where LCS is the longest common (not necessarily contiguous) subsequence of tokens and :math:`|y|` is the
    number of reference tokens. Computed per pair with torchmetrics'
    ``rouge_score(prediction, reference, rouge_keys="rougeL")["rougeL_recall"]``, whose tokenizer is that of Google's
    ``rouge_score`` package (which TOFU and open-unlearning call): the text is lowercased, every run of characters
    outside ``[a-z0-9]`` becomes a space, and the result is split on whitespace. An empty prediction or reference
    scores 0. This is sentence-level ROUGE-L, not ``rougeLsum``. torchmetrics returns float32 values, so the
    float64 output carries float32 rounding (``~1e-8``).

    TOFU / open-unlearning use ``RougeScorer(["rougeL"], use_stemmer=True)``: Porter stemming of tokens longer than
    3 characters, so "wrote"/"writes" or "novels"/"novel" match. That needs NLTK, an optional dependency, so the
    default here is ``use_stemmer=False``, which can only give *lower* recall than TOFU's on inflected words.
    Pass ``use_stemmer=True`` (with ``nltk`` installed) for TOFU's numbers.

    Args:
        predictions: generated answers, a sequence of ``N`` strings.
        references: ground-truth answers, a sequence of ``N`` strings.
        use_stemmer: Porter-stem tokens longer than 3 characters (TOFU's setting; needs ``nltk``).

    Returns:
        A float64 tensor of shape ``[N]`` with values in ``[0, 1]``.

    Raises:
        TypeError: If an input is not a sequence of strings, or ``use_stemmer`` is not a bool.
        ValueError: If the two sequences differ in length.
        ModuleNotFoundError: If ``use_stemmer=True`` and ``nltk`` is not installed.

    Example:
        >>> from lightning_unlearn.metrics.llm import rouge_l_recall
        >>> rouge_l_recall(["the cat on mat", "a dog"], ["The cat sat on the mat.", "no match"])
        tensor([0.6667, 0.0000], dtype=torch.float64)

    """
    _check_use_stemmer(use_stemmer)
    return _rouge_l_recall_update(predictions, references, use_stemmer)[0]


class ROUGELRecall(Metric):
    r"""Mean ROUGE-L recall of generated answers against references, as TOFU reports it (Maini et al.,
    arXiv:2401.06121); the accumulating twin of :func:`rouge_l_recall`.

    .. math::
        \text{ROUGE-L recall} = \frac{1}{N} \sum_{n=1}^{N} \frac{\text{LCS}(\hat y_n, y_n)}{|y_n|}

    As input to ``forward`` and ``update`` the metric accepts:

    - ``predictions`` (:class:`~collections.abc.Sequence` of :class:`str`): ``N`` generated answers
    - ``references`` (:class:`~collections.abc.Sequence` of :class:`str`): ``N`` ground-truth answers

    As output of ``forward`` (the batch's mean) and ``compute`` (the mean over every pair seen) the metric returns:

    - ``rouge_l_recall`` (:class:`~torch.Tensor`): a float64 scalar in ``[0, 1]``

    States are a sum and a count reduced with ``dist_reduce_fx="sum"``, so under DDP the mean is over all ranks'
    pairs. Tokenization and stemming as in :func:`rouge_l_recall`.

    Args:
        use_stemmer: Porter-stem tokens longer than 3 characters (TOFU's setting; needs ``nltk``).
        kwargs: Additional keyword arguments, see :ref:`Metric kwargs` for more info.

    Raises:
        TypeError: If ``use_stemmer`` is not a bool.
        ModuleNotFoundError: If ``use_stemmer=True`` and ``nltk`` is not installed.
        ValueError: In ``compute``, if no pair was seen.

    Example:
        >>> from lightning_unlearn.metrics.llm import ROUGELRecall
        >>> metric = ROUGELRecall()
        >>> metric.update(["the cat on mat"], ["The cat sat on the mat."])
        >>> metric.update(["a dog"], ["no match"])
        >>> metric.compute()  # (4/6 + 0) / 2
        tensor(0.3333, dtype=torch.float64)

    """

    is_differentiable: bool = False
    higher_is_better: bool = True
    full_state_update: bool = False
    plot_lower_bound: float = 0.0
    plot_upper_bound: float = 1.0

    recall_sum: Tensor
    total: Tensor

    def __init__(self, use_stemmer: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_use_stemmer(use_stemmer)
        self.use_stemmer = use_stemmer
        self.add_state("recall_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, predictions: Sequence[str], references: Sequence[str]) -> None:
        """Add a batch of generated answers and their references."""
        recalls, n = _rouge_l_recall_update(predictions, references, self.use_stemmer)
        self.recall_sum += recalls.sum().to(self.recall_sum.device)
        self.total += n

    def compute(self) -> Tensor:
        """Mean ROUGE-L recall over every pair seen."""
        if int(self.total) == 0:
            raise ValueError(f"{type(self).__name__} needs at least one prediction/reference pair; got 0.")
        return _rouge_l_recall_compute(self.recall_sum, self.total)
