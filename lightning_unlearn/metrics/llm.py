"""LLM-unlearning metrics (TOFU-style) as pure functions on CPU tensors and strings.

What is measured, and where it comes from:

- Answer quality and likelihood, from TOFU (P. Maini et al., "TOFU: A Task of Fictitious Unlearning for LLMs",
  arXiv:2401.06121): :func:`rouge_l_recall`, :func:`answer_probability`, :func:`truth_ratio` (with the reporting
  summary :func:`truth_ratio_score`), :func:`forget_quality` (KS-test p-value against the retrain oracle) and
  :func:`model_utility` (harmonic mean).
- Per-sample membership-inference scores for LLMs, all oriented so that **higher = more likely a member**:
  :func:`mia_loss` (LOSS attack, Yeom et al., IEEE CSF 2018), :func:`mia_zlib` (zlib ratio, N. Carlini et al.,
  "Extracting Training Data from Large Language Models", USENIX Security 2021), :func:`mia_min_k` (Min-K% Prob,
  W. Shi et al., "Detecting Pretraining Data from Large Language Models", arXiv:2310.16789) and
  :func:`mia_min_k_plus_plus` (Min-K%++, J. Zhang et al., arXiv:2404.02936, with :func:`vocab_log_prob_stats`);
  :func:`mia_auc` turns member (forget) and non-member (holdout) scores into a ROC AUC.
- :func:`gibberish_rate` / :func:`is_gibberish`: an explicit, dictionary-free heuristic for degenerate generations.

Conventions shared by the token-level functions:

- ``token_log_probs[n, t] = log p(x_t | x_<t)`` of the *actual* next token (natural log, ``<= 0``), shape
  ``[N, T]``; with Hugging Face causal LMs that is
  ``logits[:, :-1].log_softmax(-1).gather(-1, input_ids[:, 1:, None])[..., 0]``.
- ``mask[n, t]`` (bool, or 0/1 integers; ``None`` = every position counts) marks the positions that are scored,
  typically the answer tokens. Masked positions never change a score: they may hold any value, NaN and ``-inf``
  included. Every row needs at least one unmasked position.
- Per-sample outputs are float64 tensors of shape ``[N]``.

Nothing here imports ``transformers`` or downloads anything; :mod:`scipy` and :mod:`sklearn` are imported lazily.
"""

from __future__ import annotations

import math
import re
import string
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from lightning_unlearn._errors import check_choice, check_fraction, check_int

__all__ = [
    "answer_probability",
    "forget_quality",
    "gibberish_rate",
    "is_gibberish",
    "mia_auc",
    "mia_loss",
    "mia_min_k",
    "mia_min_k_plus_plus",
    "mia_zlib",
    "model_utility",
    "rouge_l_recall",
    "text_perplexity",
    "truth_ratio",
    "truth_ratio_score",
    "vocab_log_prob_stats",
]

#: Tolerance above 0 accepted for log-likelihoods (which are ``<= 0`` in exact arithmetic).
LOG_LIKELIHOOD_ATOL = 1e-4

# --------------------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------------------


def _check_float_tensor(x: Any, name: str, shape_doc: str, ndim: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` should be a torch.Tensor of shape {shape_doc}, got {type(x).__name__}.")
    if x.ndim != ndim:
        raise ValueError(f"`{name}` should be {ndim}-D with shape {shape_doc}, got shape {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise ValueError(f"`{name}` should be a floating-point tensor, got dtype {x.dtype}.")
    return x


def _check_finite(x: Tensor, name: str, valid: Tensor | None = None) -> None:
    bad = ~torch.isfinite(x)
    if valid is not None:
        bad &= valid
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"`{name}` contains NaN or infinite values at unmasked positions, first at index {where}.")


def _check_log_likelihood(x: Tensor, name: str, valid: Tensor | None = None) -> None:
    """Finite and ``<= LOG_LIKELIHOOD_ATOL`` where ``valid`` (all positions if ``None``)."""
    _check_finite(x, name, valid)
    vals = x if valid is None else x[valid]
    if vals.numel() and vals.max().item() > LOG_LIKELIHOOD_ATOL:
        raise ValueError(
            f"`{name}` should hold log-likelihoods (<= 0), got a maximum of {vals.max().item():.4g}. "
            "Did you pass a loss (negative log-likelihood)? Negate it."
        )


def _check_mask(mask: Any, like: Tensor, like_name: str, mask_name: str = "mask") -> Tensor:
    """Return ``mask`` as a bool tensor (all ``True`` if ``None``); every row must have an unmasked position."""
    if mask is None:
        valid = torch.ones(like.shape, dtype=torch.bool, device=like.device)
    else:
        if not isinstance(mask, Tensor):
            raise TypeError(
                f"`{mask_name}` should be a torch.Tensor of shape {tuple(like.shape)} or None, got {type(mask).__name__}."
            )
        if mask.shape != like.shape:
            raise ValueError(
                f"`{mask_name}` should have the shape of `{like_name}` {tuple(like.shape)}, got {tuple(mask.shape)}."
            )
        if mask.dtype == torch.bool:
            valid = mask
        elif not mask.is_floating_point() and not mask.is_complex() and bool(((mask == 0) | (mask == 1)).all()):
            valid = mask.bool()
        else:
            raise ValueError(f"`{mask_name}` should be a bool tensor or hold only 0/1 integers, got dtype {mask.dtype}.")
    if valid.ndim >= 1 and valid.shape[0] > 0:
        empty = ~valid.reshape(valid.shape[0], -1).any(dim=1)
        if bool(empty.any()):
            raise ValueError(
                f"Every row of `{mask_name}` needs at least one unmasked position; row {int(empty.nonzero()[0])} has none."
            )
    return valid


def _check_token_inputs(token_log_probs: Any, mask: Any) -> tuple[Tensor, Tensor]:
    """Validate ``[N, T]`` log-probs and mask; return float64 log-probs (masked entries zeroed) and the bool mask."""
    lp = _check_float_tensor(token_log_probs, "token_log_probs", "[N, T]", 2)
    valid = _check_mask(mask, lp, "token_log_probs")
    _check_log_likelihood(lp, "token_log_probs", valid)
    lp = torch.where(valid, lp.detach().to(torch.float64), torch.zeros((), dtype=torch.float64, device=lp.device))
    return lp, valid


def _as_1d_float(x: Any, name: str) -> Tensor:
    """A 1-D float64 CPU tensor from a tensor, array or sequence of numbers (finite, non-empty)."""
    if isinstance(x, Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"`{name}` should be a 1-D tensor or sequence of numbers, got {type(x).__name__}.") from err
    if t.ndim != 1:
        raise ValueError(f"`{name}` should be 1-D, got shape {tuple(t.shape)}.")
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"`{name}` should hold real numbers, got dtype {t.dtype}.")
    if t.numel() == 0:
        raise ValueError(f"`{name}` should not be empty.")
    t = t.to(torch.float64).cpu()
    _check_finite(t, name)
    return t


# --------------------------------------------------------------------------------------------------------------
# ROUGE-L recall
# --------------------------------------------------------------------------------------------------------------

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _rouge_tokens(text: str) -> list[str]:
    """Tokenize as Google's ``rouge_score`` (and torchmetrics) do by default: lowercase, non-alphanumerics -> space."""
    return [tok for tok in _NON_ALNUM.sub(" ", text.lower()).split() if tok]


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence of two sequences (words, token ids), by dynamic programming:
    O(len(a) * len(b)) time, O(len(b)) memory. Shared by :func:`rouge_l_recall` and PMC's token-id score."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _check_texts(texts: Any, name: str, n: int | None = None) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"`{name}` should be a sequence of strings, got {type(texts).__name__}.")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"`{name}[{i}]` should be a str, got {type(t).__name__}.")
    if n is not None and len(texts) != n:
        raise ValueError(f"`{name}` should have {n} entries, got {len(texts)}.")
    return list(texts)


def rouge_l_recall(predictions: Sequence[str], references: Sequence[str]) -> Tensor:
    r"""ROUGE-L recall of each prediction against its reference, as TOFU reports it (Maini et al., arXiv:2401.06121).

    .. math::
        \text{ROUGE-L recall}(\hat y, y) = \frac{\text{LCS}(\hat y, y)}{|y|}

    where LCS is the longest common (not necessarily contiguous) subsequence of tokens and :math:`|y|` is the
    number of reference tokens. Tokens follow the default of Google's ``rouge_score`` package and
    ``torchmetrics.functional.text.rouge.rouge_score(..., rouge_keys="rougeL")``: the text is lowercased, every run
    of characters outside ``[a-z0-9]`` becomes a space, and the result is split on whitespace. An empty prediction
    or reference scores 0. This is sentence-level ROUGE-L, not ``rougeLsum``.

    TOFU computes it with ``use_stemmer=True`` (Porter stemming of words longer than 3 characters); stemming needs
    NLTK and is not applied here, so inflected variants ("wrote" vs "writes") do not match.

    Args:
        predictions: generated answers, a sequence of ``N`` strings.
        references: ground-truth answers, a sequence of ``N`` strings.

    Returns:
        A float64 tensor of shape ``[N]`` with values in ``[0, 1]``.

    Raises:
        TypeError: If an input is not a sequence of strings.
        ValueError: If the two sequences differ in length.

    Example:
        >>> from lightning_unlearn.metrics.llm import rouge_l_recall
        >>> rouge_l_recall(["the cat on mat", "a dog"], ["The cat sat on the mat.", "no match"])
        tensor([0.6667, 0.0000], dtype=torch.float64)

    """
    predictions = _check_texts(predictions, "predictions")
    references = _check_texts(references, "references")
    if len(predictions) != len(references):
        raise ValueError(
            f"`predictions` and `references` should have the same length, got {len(predictions)} and {len(references)}."
        )
    scores = []
    for pred, ref in zip(predictions, references):
        ref_tokens = _rouge_tokens(ref)
        scores.append(lcs_length(_rouge_tokens(pred), ref_tokens) / len(ref_tokens) if ref_tokens else 0.0)
    return torch.tensor(scores, dtype=torch.float64)


# --------------------------------------------------------------------------------------------------------------
# answer probability, truth ratio, forget quality, model utility
# --------------------------------------------------------------------------------------------------------------


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
    if split == "retain":
        return float((1.0 - r).clamp_min(0.0).mean())
    return float(torch.minimum(r, 1.0 / r).mean())


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


# --------------------------------------------------------------------------------------------------------------
# membership-inference scores (higher = more likely a member)
# --------------------------------------------------------------------------------------------------------------


def mia_loss(token_log_probs: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""LOSS attack score: the mean token log-likelihood, :math:`-\text{NLL}_\text{avg}` (higher = member).

    .. math::
        s(x) = \frac{1}{|M|}\sum_{t \in M} \log p_\theta(x_t \mid x_{<t})

    over the unmasked positions :math:`M` (Yeom et al., IEEE CSF 2018; the LOSS baseline of Shi et al.,
    arXiv:2310.16789, and of TOFU / open-unlearning's MIA suite).

    Args:
        token_log_probs: log-probability of each actual token, float ``[N, T]``, ``<= 0`` where unmasked.
        mask: bool or 0/1 ``[N, T]``, ``True`` = scored; ``None`` scores every position.

    Returns:
        A float64 tensor ``[N]``.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics.llm import mia_loss
        >>> lp = torch.tensor([[-1.0, -3.0, -100.0]])
        >>> mia_loss(lp, torch.tensor([[True, True, False]]))
        tensor([-2.], dtype=torch.float64)

    """
    lp, valid = _check_token_inputs(token_log_probs, mask)
    return lp.sum(dim=1) / valid.sum(dim=1).to(torch.float64)


def mia_zlib(
    token_log_probs: Tensor,
    texts: Sequence[str],
    mask: Tensor | None = None,
    *,
    reduction: Literal["mean", "sum"] = "mean",
) -> Tensor:
    r"""zlib-ratio attack score (Carlini et al., "Extracting Training Data from Large Language Models", USENIX
    Security 2021): model log-likelihood calibrated by the text's zlib entropy (higher = member).

    .. math::
        s(x) = \frac{\frac{1}{|M|}\sum_{t \in M} \log p_\theta(x_t \mid x_{<t})}{\lvert\text{zlib}(x)\rvert}

    with :math:`\lvert\text{zlib}(x)\rvert` = ``len(zlib.compress(text.encode("utf-8")))`` (default compression
    level), the length in bytes of the compressed text. Carlini et al. define the ratio with the *log-perplexity*
    (mean NLL), as do the Min-K% and open-unlearning / MIMIR implementations: that is ``reduction="mean"``.
    ``reduction="sum"`` uses :math:`-\text{NLL}_\text{sum}` (total log-likelihood) in the numerator instead.

    Args:
        token_log_probs: log-probability of each actual token, float ``[N, T]``, ``<= 0`` where unmasked.
        texts: the ``N`` scored texts (the same text whose tokens are scored, e.g. the answer), non-empty.
        mask: bool or 0/1 ``[N, T]``; ``None`` scores every position.
        reduction: ``"mean"`` (default, paper) or ``"sum"`` over the scored tokens.

    Returns:
        A float64 tensor ``[N]``.

    Example:
        >>> import torch, zlib
        >>> from lightning_unlearn.metrics.llm import mia_zlib
        >>> len(zlib.compress(b"abc"))
        11
        >>> mia_zlib(torch.tensor([[-1.1, -2.2]]), ["abc"], reduction="sum")
        tensor([-0.3000], dtype=torch.float64)

    """
    check_choice("reduction", reduction, ("mean", "sum"))
    lp, valid = _check_token_inputs(token_log_probs, mask)
    texts = _check_texts(texts, "texts", lp.shape[0])
    for i, text in enumerate(texts):
        if not text:
            raise ValueError(f"`texts[{i}]` is empty; the zlib ratio needs the scored text.")
    ll = lp.sum(dim=1)
    if reduction == "mean":
        ll = ll / valid.sum(dim=1).to(torch.float64)
    zlib_len = torch.tensor([len(zlib.compress(t.encode("utf-8"))) for t in texts], dtype=torch.float64)
    return ll / zlib_len.to(ll.device)


def _lowest_k_mean(scores: Tensor, valid: Tensor, k: float) -> Tensor:
    """Per row, the mean of the ``max(1, int(k * n_valid))`` smallest unmasked values."""
    n_valid = valid.sum(dim=1)
    # max(1, int(k * n)) exactly as Shi et al.'s and open-unlearning's code compute it (Python float arithmetic)
    n_keep = torch.tensor([max(1, int(k * int(n))) for n in n_valid.tolist()], dtype=torch.long)
    ordered = scores.masked_fill(~valid, math.inf).sort(dim=1).values
    keep = torch.arange(scores.shape[1], device=scores.device).unsqueeze(0) < n_keep.to(scores.device).unsqueeze(1)
    return ordered.masked_fill(~keep, 0.0).sum(dim=1) / n_keep.to(torch.float64).to(scores.device)


def mia_min_k(token_log_probs: Tensor, mask: Tensor | None = None, *, k: float = 0.2) -> Tensor:
    r"""Min-K% Prob score (Shi et al., "Detecting Pretraining Data from Large Language Models", arXiv:2310.16789).

    The mean log-probability of the :math:`k`-fraction of least likely tokens (higher = member):

    .. math::
        s(x) = \frac{1}{|\text{Min-}k(x)|}\sum_{t \in \text{Min-}k(x)} \log p_\theta(x_t \mid x_{<t})

    where :math:`\text{Min-}k(x)` holds the ``max(1, int(k * n))`` unmasked positions with the lowest
    log-probabilities, ``n`` = number of unmasked positions (as the reference and open-unlearning code). ``k=1``
    gives :func:`mia_loss`. (Shi et al.'s code returns the negation, a non-membership score.)

    Args:
        token_log_probs: log-probability of each actual token, float ``[N, T]``, ``<= 0`` where unmasked.
        mask: bool or 0/1 ``[N, T]``; ``None`` scores every position.
        k: fraction of tokens kept, in ``(0, 1]``; default ``0.2``.

    Returns:
        A float64 tensor ``[N]``.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics.llm import mia_min_k
        >>> lp = torch.tensor([[-0.1, -5.0, -0.2, -3.0, -0.3]])
        >>> mia_min_k(lp, k=0.4)  # the two lowest: (-5 - 3) / 2
        tensor([-4.], dtype=torch.float64)

    """
    check_fraction("k", k)
    lp, valid = _check_token_inputs(token_log_probs, mask)
    return _lowest_k_mean(lp, valid, k)


def vocab_log_prob_stats(logits: Tensor) -> tuple[Tensor, Tensor]:
    r"""Mean and standard deviation of :math:`\log p(z)` under the next-token distribution, for Min-K%++.

    For each position with next-token distribution :math:`p = \operatorname{softmax}(\text{logits})`:

    .. math::
        \mu = \mathbb{E}_{z \sim p}[\log p(z)] = \sum_z p(z)\log p(z), \qquad
        \sigma = \sqrt{\mathbb{E}_{z \sim p}\big[(\log p(z) - \mu)^2\big]}

    (:math:`\mu` is the negative entropy). Computed as :math:`\sum_z p(z)(\log p(z) - \mu)^2`, which cannot go
    negative, rather than :math:`\mathbb{E}[\log^2 p] - \mu^2`; tokens with :math:`p(z) = 0` (``-inf`` logits)
    contribute nothing. Pass the logits *aligned with* ``token_log_probs``, i.e. the logits that predict each scored
    token (``logits[:, :-1]`` of a Hugging Face causal LM). Half-precision inputs are computed in float32. The
    ``[N, T, V]`` intermediate is materialised, so chunk over ``N`` for large vocabularies.

    Args:
        logits: next-token logits, float ``[N, T, V]``.

    Returns:
        ``(mu, sigma)``, each of shape ``[N, T]`` in the compute dtype (float32 for half inputs, else the input's).

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics.llm import vocab_log_prob_stats
        >>> mu, sigma = vocab_log_prob_stats(torch.zeros(1, 1, 4))  # uniform over 4 tokens
        >>> round(mu.item(), 4), sigma.item()
        (-1.3863, 0.0)

    """
    lg = _check_float_tensor(logits, "logits", "[N, T, V]", 3)
    if lg.shape[-1] == 0:
        raise ValueError(f"`logits` should have a non-empty vocabulary dimension, got shape {tuple(lg.shape)}.")
    lg = lg.detach()
    if lg.dtype in (torch.float16, torch.bfloat16):
        lg = lg.float()
    log_p = lg.log_softmax(dim=-1)
    p = log_p.exp()
    support = p > 0
    zero = torch.zeros((), dtype=log_p.dtype, device=log_p.device)
    mu = torch.where(support, p * log_p, zero).sum(dim=-1)
    centred = torch.where(support, log_p - mu.unsqueeze(-1), zero)
    sigma = (p * centred.square()).sum(dim=-1).sqrt()
    return mu, sigma


def mia_min_k_plus_plus(
    token_log_probs: Tensor,
    mu: Tensor,
    sigma: Tensor,
    mask: Tensor | None = None,
    *,
    k: float = 0.2,
    eps: float = 1e-8,
) -> Tensor:
    r"""Min-K%++ score (J. Zhang et al., "Min-K%++: Improved Baseline for Detecting Pre-Training Data from Large
    Language Models", arXiv:2404.02936). Higher = member.

    Each token's log-probability is standardised by the statistics of :math:`\log p(z)` under the model's own
    next-token distribution at that position (see :func:`vocab_log_prob_stats`),

    .. math::
        z_t = \frac{\log p_\theta(x_t \mid x_{<t}) - \mu_t}{\sigma_t},

    and the score is the mean of the ``max(1, int(k * n))`` lowest :math:`z_t` over the unmasked positions, as in
    :func:`mia_min_k`. Where :math:`\sigma_t \le` ``eps`` the distribution's log-probabilities are (numerically)
    constant on its support, so :math:`\log p(x_t) = \mu_t` and :math:`z_t` is set to its limit 0.

    Args:
        token_log_probs: log-probability of each actual token, float ``[N, T]``, ``<= 0`` where unmasked.
        mu: :math:`\mu_t`, float ``[N, T]`` (finite where unmasked).
        sigma: :math:`\sigma_t`, float ``[N, T]``, ``>= 0`` where unmasked.
        mask: bool or 0/1 ``[N, T]``; ``None`` scores every position.
        k: fraction of tokens kept, in ``(0, 1]``; default ``0.2``.
        eps: threshold below which :math:`\sigma_t` counts as zero.

    Returns:
        A float64 tensor ``[N]``.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics.llm import mia_min_k_plus_plus
        >>> lp, mu, sigma = torch.tensor([[-1.0]]), torch.tensor([[-2.0]]), torch.tensor([[0.5]])
        >>> mia_min_k_plus_plus(lp, mu, sigma)  # (-1 - -2) / 0.5
        tensor([2.], dtype=torch.float64)

    """
    check_fraction("k", k)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"`eps` should be a number >= 0, got {eps!r}.")
    lp, valid = _check_token_inputs(token_log_probs, mask)
    stats = []
    for name, x in (("mu", mu), ("sigma", sigma)):
        _check_float_tensor(x, name, "[N, T]", 2)
        if x.shape != lp.shape:
            raise ValueError(f"`{name}` should have the shape of `token_log_probs` {tuple(lp.shape)}, got {tuple(x.shape)}.")
        _check_finite(x, name, valid)
        stats.append(torch.where(valid, x.detach().to(torch.float64), torch.zeros((), dtype=torch.float64, device=lp.device)))
    mu64, sigma64 = stats
    if bool((sigma64 < 0).any()):
        raise ValueError(f"`sigma` should be >= 0 (a standard deviation), got a minimum of {sigma64.min().item():.4g}.")
    spread = sigma64 > eps
    safe_sigma = torch.where(spread, sigma64, torch.ones((), dtype=torch.float64, device=lp.device))
    z = torch.where(spread, (lp - mu64) / safe_sigma, 0.0)
    return _lowest_k_mean(z, valid, k)


def mia_auc(member_scores: Tensor | Sequence[float], nonmember_scores: Tensor | Sequence[float]) -> float:
    r"""ROC AUC of a membership score with members as the positive class (``sklearn.metrics.roc_auc_score``).

    For LLM unlearning the members are the forget set and the non-members a holdout set never trained on
    (TOFU / open-unlearning's MIA suite); scores are any of the ``mia_*`` functions here (higher = member).
    ``0.5`` = the attack cannot tell forget from holdout (the ideal after unlearning, and the oracle's expected
    value); near ``1`` = the forget set is still recognised; well below ``0.5`` = over-forgetting, which leaks
    membership too. Ties count one half.

    Args:
        member_scores: scores of the members (forget set), 1-D, finite, non-empty.
        nonmember_scores: scores of the non-members (holdout set), 1-D, finite, non-empty.

    Returns:
        The AUC, a ``float`` in ``[0, 1]``.

    Example:
        >>> from lightning_unlearn.metrics.llm import mia_auc
        >>> mia_auc([-0.1, -0.2, -0.9], [-0.2, -1.0])
        0.75

    """
    from sklearn.metrics import roc_auc_score

    members = _as_1d_float(member_scores, "member_scores")
    nonmembers = _as_1d_float(nonmember_scores, "nonmember_scores")
    labels = torch.cat([torch.ones(members.shape[0]), torch.zeros(nonmembers.shape[0])])
    return float(roc_auc_score(labels.numpy(), torch.cat([members, nonmembers]).numpy()))


# --------------------------------------------------------------------------------------------------------------
# gibberish
# --------------------------------------------------------------------------------------------------------------

_STRIP = string.punctuation + "“”‘’«»…—–"
_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")  # letters (Unicode), optionally joined by ' or -
_NUMBER = re.compile(r"[$€£#]?\d[\d.,:/%\-]*(?:st|nd|rd|th|s|am|pm)?", re.IGNORECASE)
_VOWEL = re.compile(r"[aeiouy]", re.IGNORECASE)
_CONSONANT_RUN = re.compile(r"[b-df-hj-np-tv-xz]{6,}", re.IGNORECASE)
_TRIPLE_LETTER = re.compile(r"([a-z])\1\1", re.IGNORECASE)
_LETTER_LOOP = re.compile(r"([a-z]{2,}?)\1{3,}", re.IGNORECASE)

#: Longest token counted as a dictionary-like word.
_MAX_WORD_LEN = 20
#: All-caps tokens up to this length count as words (acronyms: "BBC", "NASA").
_MAX_ACRONYM_LEN = 6
#: Longest n-gram checked for back-to-back loops.
_MAX_LOOP_NGRAM = 10


def _is_word(token: str) -> bool:
    """Dictionary-like alphabetic word (see :func:`is_gibberish`)."""
    if not _WORD.fullmatch(token):
        return False
    letters = re.sub(r"['’\-]", "", token)
    if token.isupper() and len(letters) <= _MAX_ACRONYM_LEN:
        return True
    return (
        len(letters) <= _MAX_WORD_LEN
        and _VOWEL.search(letters) is not None
        and _CONSONANT_RUN.search(letters) is None
        and _TRIPLE_LETTER.search(letters) is None
    )


def _has_loop(tokens: Sequence[str]) -> bool:
    """An n-gram repeated back to back: >= 3 copies for n >= 2, >= 4 copies for n = 1."""
    n_tok = len(tokens)
    for n in range(1, min(_MAX_LOOP_NGRAM, n_tok // 3) + 1):
        copies = 4 if n == 1 else 3
        for i in range(n_tok - copies * n + 1):
            gram = tokens[i : i + n]
            if all(tokens[i + c * n : i + (c + 1) * n] == gram for c in range(1, copies)):
                return True
    return False


def is_gibberish(text: str, *, min_word_ratio: float = 0.5) -> bool:
    r"""Whether one generation is gibberish, by an explicit heuristic for English text (used by
    :func:`gibberish_rate`).

    The text is split on whitespace; each token is lowercased and stripped of surrounding punctuation for the
    repetition checks. It is gibberish if any of these holds:

    1. **empty**: no letter or digit at all (empty, whitespace or punctuation only);
    2. **single token repeated**: at least 3 tokens, all identical (``"Paris Paris Paris"``);
    3. **loop**: some n-gram (``1 <= n <= 10``) occurs back to back at least 3 times (4 times for a single token),
       e.g. ``"the book is the book is the book is"``; or a letter group of length ``>= 2`` repeats 4+ times
       inside a token (``"hahahaha"``, ``"xyxyxyxy"``);
    4. **few words**: among tokens that are neither numbers (``"1962"``, ``"5th"``, ``"$30,000"``) nor empty after
       stripping punctuation, fewer than ``min_word_ratio`` are *dictionary-like words*: letters (accented ones
       included, optionally joined by ``'`` or ``-``), at most 20 letters, containing a vowel (``aeiouy``), with
       no run of 6+ consonants and no letter 3 times in a row; all-caps tokens of up to 6 letters count as
       acronyms. Texts made only of numbers (and punctuation) are not judged by this rule.

    No dictionary or language model is used, so this is a coarse screen for degenerate output (the collapse of
    over-unlearned models), not a fluency score.

    Args:
        text: one generation.
        min_word_ratio: the least fraction of dictionary-like words for a non-gibberish text, in ``[0, 1]``.

    Returns:
        ``True`` if the text is judged gibberish.

    Example:
        >>> from lightning_unlearn.metrics.llm import is_gibberish
        >>> is_gibberish("She was born in Paris in 1962."), is_gibberish("xqzt vbnm kkkk qwrtp")
        (False, True)

    """
    if not isinstance(text, str):
        raise TypeError(f"`text` should be a str, got {type(text).__name__}.")
    check_fraction("min_word_ratio", min_word_ratio, inclusive_low=True)
    raw = text.split()
    if not any(ch.isalnum() for ch in text):
        return True
    stripped = [tok.strip(_STRIP) for tok in raw]
    norm = [s.lower() if s else r for s, r in zip(stripped, raw)]
    if len(norm) >= 3 and len(set(norm)) == 1:
        return True
    if _has_loop(norm) or any(_LETTER_LOOP.search(tok) for tok in norm):
        return True
    judged = [s for s in stripped if s and not _NUMBER.fullmatch(s)]
    if not judged:
        return False
    return sum(_is_word(s) for s in judged) / len(judged) < min_word_ratio


def gibberish_rate(texts: Sequence[str], *, min_word_ratio: float = 0.5) -> float:
    r"""Fraction of generations judged gibberish by :func:`is_gibberish` (empty output, a single token repeated,
    n-gram loops, or too few dictionary-like words).

    Used to flag degenerate outputs of over-unlearned LLMs (e.g. gradient ascent collapsing into repeated tokens),
    next to TOFU-style metrics (Maini et al., arXiv:2401.06121).

    Args:
        texts: generations, a non-empty sequence of strings.
        min_word_ratio: see :func:`is_gibberish`; default ``0.5``.

    Returns:
        A ``float`` in ``[0, 1]``.

    Example:
        >>> from lightning_unlearn.metrics.llm import gibberish_rate
        >>> gibberish_rate(["The author wrote three novels.", "", "the the the the the"])
        0.6666666666666666

    """
    texts = _check_texts(texts, "texts")
    if not texts:
        raise ValueError("`texts` should contain at least one generation, got an empty sequence.")
    check_fraction("min_word_ratio", min_word_ratio, inclusive_low=True)
    return sum(is_gibberish(t, min_word_ratio=min_word_ratio) for t in texts) / len(texts)


# --------------------------------------------------------------------------------------------------------------
# perplexity
# --------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def text_perplexity(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int = 128,
    batch_size: int = 8,
    prefix_token_id: int | None = None,
) -> float:
    r"""Perplexity of a causal LM on plain texts: :math:`\exp` of the mean next-token NLL over every scored token.

    Each text is tokenized on its own with the tokenizer's own special tokens (no chat template),
    optionally preceded by ``prefix_token_id``, truncated to ``max_length`` tokens and scored from its
    second token on; padding is masked out. Token-weighted over all texts, as language-modelling
    perplexity is usually reported (MUSE reports it on held-out text to check utility after unlearning;
    Shi et al., "MUSE: Machine Unlearning Six-Way Evaluation for Language Models", 2024). The model is put
    in eval mode for the computation and restored afterwards.

    Args:
        model: A Hugging Face style causal LM (``model(input_ids=..., attention_mask=...).logits``).
        tokenizer: Its tokenizer (a pad token is not required).
        texts: Non-empty texts.
        max_length: Tokens kept per text, prefix included (at least 2).
        batch_size: Texts per forward pass.
        prefix_token_id: A token put before every text so that its first token is scored too: the
            document separator the model was pretrained with (SmolLM2: ``<|endoftext|>``, id 0; not
            its ``bos_token``, which opens a chat turn). ``None``: no prefix; the first token is context only.

    Returns:
        The perplexity, a ``float`` :math:`\geq 1`.
    """
    texts = _check_texts(texts, "texts")
    if not texts:
        raise ValueError("`texts` should be a non-empty sequence of strings, got an empty sequence.")
    blank = [i for i, t in enumerate(texts) if not t.strip()]
    if blank:
        raise ValueError(f"`texts` should be non-empty strings; texts{blank[:5]} are blank.")
    check_int("max_length", max_length, minimum=2)
    check_int("batch_size", batch_size, minimum=1)
    check_int("prefix_token_id", prefix_token_id, minimum=0, optional=True)
    prefix = [] if prefix_token_id is None else [prefix_token_id]
    encoded = [(prefix + list(tokenizer(text)["input_ids"]))[:max_length] for text in texts]
    short = [i for i, ids in enumerate(encoded) if len(ids) < 2]
    if short:
        raise ValueError(
            f"Every text should tokenize to at least 2 tokens (one to predict from, one to score); texts{short[:5]} "
            f"(e.g. {texts[short[0]]!r:.40}) do not. Pass `prefix_token_id` to score one-token texts."
        )
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    try:
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            width = max(len(ids) for ids in chunk)
            input_ids = torch.zeros(len(chunk), width, dtype=torch.long)
            mask = torch.zeros(len(chunk), width, dtype=torch.long)
            for row, ids in enumerate(chunk):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                mask[row, : len(ids)] = 1
            input_ids, mask = input_ids.to(device), mask.to(device)
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), input_ids[:, 1:], reduction="none")
            valid = mask[:, 1:].bool()
            total_nll += float(nll[valid].sum())
            total_tokens += int(valid.sum())
    finally:
        model.train(was_training)
    return math.exp(total_nll / total_tokens)
