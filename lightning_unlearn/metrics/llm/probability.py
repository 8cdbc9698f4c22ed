"""TOFU's likelihood metrics: answer probability, truth ratio, forget quality and model utility."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from lightning_unlearn._errors import check_choice, check_int
from lightning_unlearn.metrics.llm._checks import _as_1d_float, _check_float_tensor, _check_log_likelihood, _check_mask

__all__ = ["TruthRatio", "answer_probability", "forget_quality", "model_utility", "truth_ratio", "truth_ratio_score"]


def answer_probability(log_likelihood_sum: Tensor, answer_length: Tensor | int) -> Tensor:
    r"""TOFU's length-normalised answer probability :math:`P(a \mid q)^{1/|a|}` (Maini et al., arXiv:2401.06121).

    .. math::
        P(a \mid q)^{1/|a|} = \exp\!\Big(\frac{1}{|a|} \sum_{t=1}^{|a|} \log p_\theta(a_t \mid q, a_{<t})\Big)

    i.e. ``exp`` of the mean token log-likelihood of the answer (the geometric mean of its token probabilities).
    TOFU reports its mean over the forget and retain sets. (On its "real authors" / "world facts" sets TOFU
    instead normalises by the probabilities of the perturbed answers; that ratio is not computed here.)

    Args:
        log_likelihood_sum: summed token log-likelihood :math:`\log P(a \mid q)` per answer, float ``[N]``, ``<= 0``.
        answer_length: number of answer tokens :math:`|a|`, an int tensor ``[N]`` (or a Python ``int`` used for
            every answer), all ``>= 1``.

    Returns:
        A float64 tensor of shape ``[N]`` with values in ``(0, 1]``.

    Raises:
        ValueError: On wrong shapes, non-finite or positive log-likelihoods, or lengths ``< 1``.

    Example:
        >>> import math, torch
        >>> from lightning_unlearn.metrics.llm import answer_probability
        >>> answer_probability(torch.tensor([2 * math.log(0.5), math.log(0.9)]), torch.tensor([2, 1]))
        tensor([0.5000, 0.9000], dtype=torch.float64)

    """
    ll = _check_float_tensor(log_likelihood_sum, "log_likelihood_sum", "[N]", 1)
    _check_log_likelihood(ll, "log_likelihood_sum")
    if isinstance(answer_length, int) and not isinstance(answer_length, bool):
        check_int("answer_length", answer_length, minimum=1)
        length = torch.full(ll.shape, answer_length, dtype=torch.float64)
    elif isinstance(answer_length, Tensor):
        if answer_length.shape != ll.shape:
            raise ValueError(
                f"`answer_length` should have the shape of `log_likelihood_sum` {tuple(ll.shape)}, "
                f"got {tuple(answer_length.shape)}."
            )
        if answer_length.dtype == torch.bool or answer_length.is_complex():
            raise ValueError(f"`answer_length` should hold token counts, got dtype {answer_length.dtype}.")
        length = answer_length.detach().to(torch.float64).cpu()
        if length.numel() and not bool(((length >= 1) & (length == length.round())).all()):
            raise ValueError(
                f"`answer_length` should hold whole token counts >= 1, got values in "
                f"[{length.min().item():.4g}, {length.max().item():.4g}]."
            )
    else:
        raise TypeError(f"`answer_length` should be a torch.Tensor of shape [N] or an int, got {type(answer_length).__name__}.")
    return torch.exp(ll.detach().to(torch.float64).cpu() / length)


def _truth_ratio_update(
    paraphrased_ll_mean: Tensor, perturbed_ll_mean: Tensor, perturbed_mask: Tensor | None, perturbed_mean: str
) -> Tensor:
    """Validate the inputs of :func:`truth_ratio` and return the per-question ratios (float64 ``[N]``, CPU)."""
    para = _check_float_tensor(paraphrased_ll_mean, "paraphrased_ll_mean", "[N]", 1)
    pert = _check_float_tensor(perturbed_ll_mean, "perturbed_ll_mean", "[N, K]", 2)
    if pert.shape[0] != para.shape[0] or pert.shape[1] == 0:
        raise ValueError(
            f"`perturbed_ll_mean` should have shape [N, K] with N = {para.shape[0]} (the length of "
            f"`paraphrased_ll_mean`) and K >= 1, got shape {tuple(pert.shape)}."
        )
    valid = _check_mask(perturbed_mask, pert, "perturbed_ll_mean", "perturbed_mask")
    _check_log_likelihood(para, "paraphrased_ll_mean")
    _check_log_likelihood(pert, "perturbed_ll_mean", valid)
    para = para.detach().to(torch.float64).cpu()
    pert = pert.detach().to(torch.float64).cpu()
    valid = valid.cpu()
    count = valid.sum(dim=1).to(torch.float64)
    if perturbed_mean == "arithmetic":
        log_mean = torch.logsumexp(pert.masked_fill(~valid, -math.inf), dim=1) - count.log()
    else:
        log_mean = pert.masked_fill(~valid, 0.0).sum(dim=1) / count
    return torch.exp(log_mean - para)


def truth_ratio(
    paraphrased_ll_mean: Tensor,
    perturbed_ll_mean: Tensor,
    perturbed_mask: Tensor | None = None,
    *,
    perturbed_mean: Literal["arithmetic", "geometric"] = "arithmetic",
) -> Tensor:
    r"""TOFU's truth ratio :math:`R` per question (Maini et al., arXiv:2401.06121, Sec. 2.2.1).

    With :math:`\tilde a` a paraphrase of the correct answer, :math:`\hat a_1, \dots, \hat a_K` perturbed (false)
    answers and :math:`\bar\ell(a) = \frac{1}{|a|}\log P(a \mid q)` the per-token mean log-likelihood:

    .. math::
        R = \frac{\frac{1}{K}\sum_{k=1}^{K} P(\hat a_k \mid q)^{1/|\hat a_k|}}{P(\tilde a \mid q)^{1/|\tilde a|}}
          = \exp\!\Big(\operatorname{logsumexp}_k \bar\ell(\hat a_k) - \log K - \bar\ell(\tilde a)\Big)

    computed in log space (``perturbed_mean="arithmetic"``, the paper's formula). ``perturbed_mean="geometric"``
    averages the *log*-likelihoods instead, :math:`R = \exp(\frac1K\sum_k \bar\ell(\hat a_k) - \bar\ell(\tilde a))`,
    which is what TOFU's and open-unlearning's evaluation code compute (they average the per-answer losses).

    :math:`R < 1` means the model prefers the (paraphrased) truth over the false answers. Reporting conventions
    (see :func:`truth_ratio_score`): TOFU reports :math:`\operatorname{mean}\max(0, 1 - R)` on the retain, real-author
    and world-fact sets (higher = better knowledge, part of :func:`model_utility`), and
    :math:`\operatorname{mean}\min(R, 1/R)` on the forget set; forget quality (:func:`forget_quality`) compares the
    raw distribution of :math:`R` on the forget set with the retrain oracle's.

    Args:
        paraphrased_ll_mean: mean token log-likelihood of the paraphrased correct answer, float ``[N]``, ``<= 0``.
        perturbed_ll_mean: mean token log-likelihood of each perturbed answer, float ``[N, K]``, ``<= 0`` where
            unmasked.
        perturbed_mask: optional bool (or 0/1) ``[N, K]`` marking which perturbed answers exist, for questions
            with fewer than ``K``; masked entries are ignored. Every row needs at least one.
        perturbed_mean: ``"arithmetic"`` (paper, default) or ``"geometric"`` (TOFU / open-unlearning code).

    Returns:
        A float64 tensor of shape ``[N]`` with positive values.

    Raises:
        ValueError: On wrong shapes, non-finite or positive log-likelihoods, an empty mask row, or an unknown
            ``perturbed_mean``.

    Example:
        >>> import math, torch
        >>> from lightning_unlearn.metrics.llm import truth_ratio
        >>> para = torch.tensor([math.log(0.8)])
        >>> pert = torch.tensor([[math.log(0.2), math.log(0.4)]])
        >>> truth_ratio(para, pert)  # (0.2 + 0.4) / 2 / 0.8
        tensor([0.3750], dtype=torch.float64)

    """
    check_choice("perturbed_mean", perturbed_mean, ("arithmetic", "geometric"))
    return _truth_ratio_update(paraphrased_ll_mean, perturbed_ll_mean, perturbed_mask, perturbed_mean)


def _truth_ratio_score_compute(ratios: Tensor, split: str) -> Tensor:
    """TOFU's summary of positive truth ratios: mean ``max(0, 1 - R)`` (retain) or mean ``min(R, 1/R)`` (forget)."""
    if split == "retain":
        return (1.0 - ratios).clamp_min(0.0).mean()
    return torch.minimum(ratios, 1.0 / ratios).mean()


def truth_ratio_score(ratios: Tensor, split: Literal["forget", "retain"]) -> float:
    r"""TOFU's summary of truth ratios :math:`R` (from :func:`truth_ratio`) over a set of questions.

    - ``split="retain"`` (also for TOFU's real-author and world-fact sets):
      :math:`\frac1N\sum_n \max(0, 1 - R_n)`, higher = the model prefers true answers; one of the inputs of
      :func:`model_utility`.
    - ``split="forget"``: :math:`\frac1N\sum_n \min(R_n, 1/R_n)`, higher = true and false answers are
      equally likely.

    As in TOFU's evaluation code (Maini et al., arXiv:2401.06121). Forget *quality* uses the raw distribution
    of :math:`R` instead, see :func:`forget_quality`.

    Args:
        ratios: truth ratios, 1-D, positive.
        split: ``"retain"`` or ``"forget"``.

    Returns:
        A ``float`` in ``[0, 1]``.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics.llm import truth_ratio_score
        >>> truth_ratio_score(torch.tensor([0.25, 2.0]), "retain")  # (0.75 + 0) / 2
        0.375
        >>> truth_ratio_score(torch.tensor([0.25, 2.0]), "forget")  # (0.25 + 0.5) / 2
        0.375

    """
    check_choice("split", split, ("forget", "retain"))
    r = _as_1d_float(ratios, "ratios")
    if r.min().item() <= 0:
        raise ValueError(f"`ratios` should be positive truth ratios, got a minimum of {r.min().item():.4g}.")
    return float(_truth_ratio_score_compute(r, split))


def forget_quality(unlearned_truth_ratios: Tensor | Sequence[float], oracle_truth_ratios: Tensor | Sequence[float]) -> float:
    r"""TOFU's forget quality: the two-sided KS-test p-value between forget-set truth-ratio distributions.

    Maini et al., "TOFU" (arXiv:2401.06121), Sec. 2.5: compute the truth ratio :math:`R` (:func:`truth_ratio`) of
    every forget-set question under the unlearned model and under the oracle retrained without the forget set,
    then run the two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``, ``alternative="two-sided"``,
    ``method="auto"``). A high p-value (TOFU uses ``>= 0.05``) means the two distributions cannot be told apart,
    i.e. the model forgot like the oracle; near 0 means it did not.

    The KS statistic depends only on the ordering of the values, so the p-value is the same for :math:`R` and
    :math:`1/R` (TOFU's code stores the inverse ratio), or for :math:`\log R`, as long as both sides use the same.

    Args:
        unlearned_truth_ratios: truth ratios of the forget questions under the unlearned model, 1-D.
        oracle_truth_ratios: truth ratios of the same (or equally many) questions under the oracle, 1-D.

    Returns:
        The p-value, a ``float`` in ``[0, 1]``.

    Raises:
        ValueError: If an input is empty, not 1-D or not finite.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics.llm import forget_quality
        >>> forget_quality(torch.tensor([0.2, 0.5, 0.9]), torch.tensor([0.2, 0.5, 0.9]))
        1.0

    """
    from scipy.stats import ks_2samp

    a = _as_1d_float(unlearned_truth_ratios, "unlearned_truth_ratios")
    b = _as_1d_float(oracle_truth_ratios, "oracle_truth_ratios")
    return float(ks_2samp(a.numpy(), b.numpy(), alternative="two-sided").pvalue)


def model_utility(scores: Mapping[str, float | Tensor]) -> float:
    r"""TOFU's model utility: the harmonic mean of utility scores (Maini et al., arXiv:2401.06121, Sec. 2.5).

    .. math::
        \text{MU} = \frac{m}{\sum_{i=1}^{m} 1 / s_i}

    In TOFU the :math:`m = 9` scores are answer probability, ROUGE-L recall and truth-ratio score
    (:func:`truth_ratio_score` with ``split="retain"``) on each of the retain, real-author and world-fact sets;
    pass whichever scores your benchmark uses. The harmonic mean is dominated by the worst score, so one
    collapsed ability pulls the utility down. If any score is exactly 0 the utility is 0 (the limit of the
    formula, and what TOFU's ``scipy.stats.hmean`` gives). Scores must be finite and non-negative.

    Args:
        scores: mapping from score name to a non-negative number (``float``, ``int`` or one-element tensor).

    Returns:
        The harmonic mean, a ``float``.

    Raises:
        TypeError: If ``scores`` is not a mapping or a value is not a number.
        ValueError: If ``scores`` is empty or a value is negative or not finite.

    Example:
        >>> from lightning_unlearn.metrics.llm import model_utility
        >>> model_utility({"retain_rouge": 0.5, "retain_prob": 1.0})  # 2 / (2 + 1)
        0.6666666666666666
        >>> model_utility({"retain_rouge": 0.0, "retain_prob": 1.0})
        0.0

    """
    if not isinstance(scores, Mapping):
        raise TypeError(f"`scores` should be a mapping of score name to number, got {type(scores).__name__}.")
    if not scores:
        raise ValueError("`scores` should contain at least one score, got an empty mapping.")
    values = []
    for key, value in scores.items():
        if isinstance(value, Tensor):
            if value.numel() != 1 or value.dtype == torch.bool or value.is_complex():
                raise TypeError(f"`scores[{key!r}]` should be a number, got a tensor of shape {tuple(value.shape)}.")
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"`scores[{key!r}]` should be a number, got {type(value).__name__} {value!r}.")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"`scores[{key!r}]` should be a finite number >= 0, got {value!r}.")
        values.append(float(value))
    if any(v == 0.0 for v in values):
        return 0.0
    return len(values) / math.fsum(1.0 / v for v in values)


#: What :class:`TruthRatio` returns: every ratio, or TOFU's summary of the forget or retain set.
_TRUTH_RATIO_REDUCTIONS = ("none", "forget", "retain")


class TruthRatio(Metric):
    r"""TOFU's truth ratio :math:`R` (Maini et al., arXiv:2401.06121), accumulated over batches of questions; the
    twin of :func:`truth_ratio` (and, reduced, of :func:`truth_ratio_score`).

    .. math::
        R = \frac{\frac{1}{K}\sum_{k=1}^{K} P(\hat a_k \mid q)^{1/|\hat a_k|}}{P(\tilde a \mid q)^{1/|\tilde a|}}

    (``perturbed_mean="arithmetic"``; ``"geometric"`` averages the log-likelihoods, as TOFU's code does; see
    :func:`truth_ratio`). ``reduction="none"`` returns every question's :math:`R`: the input of
    :func:`forget_quality` (KS test against the oracle's ratios). ``"retain"`` returns
    :math:`\operatorname{mean}\max(0, 1 - R)`, ``"forget"`` :math:`\operatorname{mean}\min(R, 1/R)`.

    As input to ``update`` the metric accepts:

    - ``paraphrased_ll_mean`` (:class:`~torch.Tensor`): mean token log-likelihood of the paraphrased answer, ``(N,)``
    - ``perturbed_ll_mean`` (:class:`~torch.Tensor`): mean token log-likelihood of each perturbed answer, ``(N, K)``
    - ``perturbed_mask`` (:class:`~torch.Tensor`, optional): bool ``(N, K)``, which perturbed answers exist

    As output of ``compute`` the metric returns a float64 tensor: the ``(N_total,)`` ratios in update order
    (``reduction="none"``) or a scalar in ``[0, 1]``. States are the per-question ratios, reduced with
    ``dist_reduce_fx="cat"`` (under DDP: every rank's questions, rank by rank). ``forward`` returns the batch's value.

    Args:
        perturbed_mean: ``"arithmetic"`` (paper, default) or ``"geometric"`` (TOFU / open-unlearning code).
        reduction: ``"none"`` (default), ``"forget"`` or ``"retain"``.
        kwargs: Additional keyword arguments, see :ref:`Metric kwargs` for more info.

    Raises:
        ValueError: On an unknown ``perturbed_mean``/``reduction``, invalid inputs (see :func:`truth_ratio`), or
            ``compute`` before any question.

    Example:
        >>> import math, torch
        >>> from lightning_unlearn.metrics.llm import TruthRatio
        >>> metric = TruthRatio(reduction="retain")
        >>> metric.update(torch.tensor([math.log(0.8)]), torch.tensor([[math.log(0.2), math.log(0.4)]]))
        >>> metric.update(torch.tensor([math.log(0.5)]), torch.tensor([[math.log(0.5), math.log(0.5)]]))
        >>> metric.compute()  # (max(0, 1 - 0.375) + max(0, 1 - 1)) / 2
        tensor(0.3125, dtype=torch.float64)

    """

    is_differentiable: bool = False
    higher_is_better: bool | None = None  # "retain"/"forget": higher is better; "none" returns ratios
    full_state_update: bool = False

    ratios: list[Tensor] | Tensor

    def __init__(
        self,
        perturbed_mean: Literal["arithmetic", "geometric"] = "arithmetic",
        reduction: Literal["none", "forget", "retain"] = "none",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.perturbed_mean = check_choice("perturbed_mean", perturbed_mean, ("arithmetic", "geometric"))
        self.reduction = check_choice("reduction", reduction, _TRUTH_RATIO_REDUCTIONS)
        self.add_state("ratios", default=[], dist_reduce_fx="cat")

    def update(
        self, paraphrased_ll_mean: Tensor, perturbed_ll_mean: Tensor, perturbed_mask: Tensor | None = None
    ) -> None:
        """Add the truth ratios of a batch of questions."""
        ratios = _truth_ratio_update(paraphrased_ll_mean, perturbed_ll_mean, perturbed_mask, self.perturbed_mean)
        self.ratios.append(ratios.to(self.device))

    def compute(self) -> Tensor:
        """Every ratio (``reduction="none"``) or TOFU's forget/retain summary."""
        if isinstance(self.ratios, list) and not self.ratios:
            raise ValueError(f"{type(self).__name__} needs at least one question; got 0.")
        ratios = dim_zero_cat(self.ratios).to(torch.float64)
        if self.reduction == "none":
            return ratios
        return _truth_ratio_score_compute(ratios, self.reduction)
