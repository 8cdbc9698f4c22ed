"""Per-sample membership-inference scores for LLMs (higher = more likely a member) and their ROC AUC."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from lightning_unlearn._errors import check_choice, check_fraction
from lightning_unlearn.metrics.llm._checks import (
    _as_1d_float,
    _check_finite,
    _check_float_tensor,
    _check_texts,
    _check_token_inputs,
)
from lightning_unlearn.metrics.mia import _cat_or_empty, _split_by_membership, _UpdateOnlyForward
from lightning_unlearn.metrics.roc import _auroc_compute

__all__ = [
    "MembershipAUC",
    "mia_auc",
    "mia_loss",
    "mia_min_k",
    "mia_min_k_plus_plus",
    "mia_zlib",
    "vocab_log_prob_stats",
]


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


def _drop_last_token(valid: Tensor, include_last_token: bool) -> Tensor:
    """``valid`` without the last unmasked position of each row, unless ``include_last_token``."""
    if not isinstance(include_last_token, bool):
        raise TypeError(
            f"`include_last_token` should be a bool, got {type(include_last_token).__name__} {include_last_token!r}."
        )
    if include_last_token or valid.shape[0] == 0:
        return valid
    n_valid = valid.sum(dim=1)
    short = (n_valid < 2).nonzero()
    if short.numel():
        row = int(short[0])
        raise ValueError(
            f"With `include_last_token=False` (open-unlearning's convention: the final answer token, EOS, is not "
            f"scored) every row needs at least 2 unmasked positions; row {row} has {int(n_valid[row])}. "
            "Pass `include_last_token=True` to score it."
        )
    is_last = valid & (valid.long().cumsum(dim=1) == n_valid.unsqueeze(1))
    return valid & ~is_last


def mia_min_k(
    token_log_probs: Tensor, mask: Tensor | None = None, *, k: float = 0.2, include_last_token: bool = False
) -> Tensor:
    r"""Min-K% Prob score (Shi et al., "Detecting Pretraining Data from Large Language Models", arXiv:2310.16789).

    The mean log-probability of the :math:`k`-fraction of least likely tokens (higher = member):

    .. math::
        s(x) = \frac{1}{|\text{Min-}k(x)|}\sum_{t \in \text{Min-}k(x)} \log p_\theta(x_t \mid x_{<t})

    where :math:`\text{Min-}k(x)` holds the ``max(1, int(k * n))`` unmasked positions with the lowest
    log-probabilities, ``n`` = number of scored positions (as the reference and open-unlearning code). With
    ``k=1`` and ``include_last_token=True`` it is :func:`mia_loss`. (Shi et al.'s code returns the negation, a
    non-membership score.)

    Which tokens are scored: the unmasked positions, **except the last one of each row** unless
    ``include_last_token=True``. That is open-unlearning's convention (``tokenwise_logprobs`` in
    ``src/evals/metrics/utils.py`` drops the final labelled token, "-1 to ignore eos prediction", for Min-K% and
    Min-K%++, while its LOSS and zlib attacks score every answer token): with an answer mask that covers the
    closing EOS (as :meth:`CausalLMTask.answer_mask <lightning_unlearn.tasks.CausalLMTask.answer_mask>` does),
    the default leaves the EOS out. Counting the EOS changes the scores and the AUC noticeably (issue 12 measured
    0.340 vs 0.402 Min-K% AUC on SmolLM2 between the two conventions).

    Args:
        token_log_probs: log-probability of each actual token, float ``[N, T]``, ``<= 0`` where unmasked.
        mask: bool or 0/1 ``[N, T]``; ``None`` scores every position.
        k: fraction of tokens kept, in ``(0, 1]``; default ``0.2``.
        include_last_token: also score the last unmasked position of each row. ``False`` (default,
            open-unlearning) needs at least 2 unmasked positions per row; pass ``True`` if the mask already
            excludes the EOS, or to score it.

    Returns:
        A float64 tensor ``[N]``.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics.llm import mia_min_k
        >>> lp = torch.tensor([[-0.1, -5.0, -0.2, -3.0, -0.3]])
        >>> mia_min_k(lp, k=0.5)  # the last token (-0.3) is not scored; the two lowest of four: (-5 - 3) / 2
        tensor([-4.], dtype=torch.float64)
        >>> mia_min_k(lp, k=0.4, include_last_token=True)  # all five; int(0.4 * 5) = 2 lowest
        tensor([-4.], dtype=torch.float64)

    """
    check_fraction("k", k)
    lp, valid = _check_token_inputs(token_log_probs, mask)
    return _lowest_k_mean(lp, _drop_last_token(valid, include_last_token), k)


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
    include_last_token: bool = False,
) -> Tensor:
    r"""Min-K%++ score (J. Zhang et al., "Min-K%++: Improved Baseline for Detecting Pre-Training Data from Large
    Language Models", arXiv:2404.02936). Higher = member.

    Each token's log-probability is standardised by the statistics of :math:`\log p(z)` under the model's own
    next-token distribution at that position (see :func:`vocab_log_prob_stats`),

    .. math::
        z_t = \frac{\log p_\theta(x_t \mid x_{<t}) - \mu_t}{\sigma_t},

    and the score is the mean of the ``max(1, int(k * n))`` lowest :math:`z_t` over the scored positions, as in
    :func:`mia_min_k`: by default every unmasked position but the last of each row (open-unlearning's convention,
    which leaves out the answer's EOS; see :func:`mia_min_k`). Where :math:`\sigma_t \le` ``eps`` the
    distribution's log-probabilities are (numerically) constant on its support, so :math:`\log p(x_t) = \mu_t`
    and :math:`z_t` is set to its limit 0.

    Args:
        token_log_probs: log-probability of each actual token, float ``[N, T]``, ``<= 0`` where unmasked.
        mu: :math:`\mu_t`, float ``[N, T]`` (finite where unmasked).
        sigma: :math:`\sigma_t`, float ``[N, T]``, ``>= 0`` where unmasked.
        mask: bool or 0/1 ``[N, T]``; ``None`` scores every position.
        k: fraction of tokens kept, in ``(0, 1]``; default ``0.2``.
        eps: threshold below which :math:`\sigma_t` counts as zero.
        include_last_token: also score the last unmasked position of each row (see :func:`mia_min_k`).

    Returns:
        A float64 tensor ``[N]``.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics.llm import mia_min_k_plus_plus
        >>> lp, mu, sigma = torch.tensor([[-1.0, -0.1]]), torch.tensor([[-2.0, -0.5]]), torch.tensor([[0.5, 1.0]])
        >>> mia_min_k_plus_plus(lp, mu, sigma)  # the last token is not scored: (-1 - -2) / 0.5
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
    return _lowest_k_mean(z, _drop_last_token(valid, include_last_token), k)


def mia_auc(member_scores: Tensor | Sequence[float], nonmember_scores: Tensor | Sequence[float]) -> float:
    r"""ROC AUC of a membership score with members as the positive class.

    .. math::
        \text{AUC} = \frac{1}{|M||H|} \sum_{m \in M} \sum_{h \in H}
        \left( \mathbb{1}[s_m > s_h] + \tfrac12 \mathbb{1}[s_m = s_h] \right)

    For LLM unlearning the members are the forget set and the non-members a holdout set never trained on
    (TOFU / open-unlearning's MIA suite); scores are any of the ``mia_*`` functions here (higher = member).
    ``0.5`` = the attack cannot tell forget from holdout (the ideal after unlearning, and the oracle's expected
    value); near ``1`` = the forget set is still recognised; well below ``0.5`` = over-forgetting, which leaks
    membership too. Ties count one half. Computed by the package's one AUROC,
    :func:`lightning_unlearn.metrics.auroc` (torchmetrics' ROC; equal to ``sklearn.metrics.roc_auc_score``);
    :class:`MembershipAUC` is the accumulating twin.

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
    members = _as_1d_float(member_scores, "member_scores")
    nonmembers = _as_1d_float(nonmember_scores, "nonmember_scores")
    return _auroc_compute(members, nonmembers, owner="mia_auc")


class MembershipAUC(_UpdateOnlyForward):
    r"""ROC AUC of a membership score (higher = member) of members (the forget set) against non-members (a holdout
    set), accumulated over batches; the twin of :func:`mia_auc`.

    .. math::
        \text{AUC} = \frac{1}{|M||H|} \sum_{m \in M} \sum_{h \in H}
        \left( \mathbb{1}[s_m > s_h] + \tfrac12 \mathbb{1}[s_m = s_h] \right)

    Use it with any per-sample score of this module (:func:`mia_loss`, :func:`mia_zlib`, :func:`mia_min_k`,
    :func:`mia_min_k_plus_plus`). ``0.5`` is the goal of unlearning; ``higher_is_better`` is ``False`` because values
    above ``0.5`` (still recognised) are the usual failure, but values well below ``0.5`` leak membership too.

    As input to ``update`` the metric accepts:

    - ``scores`` (:class:`~torch.Tensor`): per-sample membership scores, float tensor of shape ``(N,)``
    - ``is_member`` (:class:`bool` or :class:`~torch.Tensor`): ``True``/``False`` for the whole batch, or a boolean
      (or 0/1 integer) tensor of shape ``(N,)`` per sample

    As output of ``compute`` the metric returns ``auc`` (:class:`~torch.Tensor`), a scalar in ``[0, 1]``.
    ``forward`` only updates (an AUC needs both sides) and returns ``None``.

    States are the scores of each side (in the metric's dtype, normally float32), reduced with
    ``dist_reduce_fx="cat"`` so under DDP the AUC is over all ranks' samples; the result does not depend on batching.
    The AUC is the package's one AUROC (:func:`lightning_unlearn.metrics.auroc`, torchmetrics' ROC).

    Args:
        kwargs: Additional keyword arguments, see :ref:`Metric kwargs` for more info.

    Raises:
        ValueError: If ``scores`` is not a 1-D float tensor of finite values, ``is_member`` has the wrong type, shape
            or values, or, in ``compute``, there are no members or no non-members.

    Example:
        >>> import torch
        >>> from lightning_unlearn.metrics.llm import MembershipAUC
        >>> metric = MembershipAUC()
        >>> metric.update(torch.tensor([-0.1, -0.2, -0.9]), is_member=True)
        >>> metric.update(torch.tensor([-0.2, -1.0]), is_member=False)
        >>> metric.compute()
        tensor(0.7500)

    """

    is_differentiable: bool = False
    higher_is_better: bool = False
    full_state_update: bool = False
    plot_lower_bound: float = 0.0
    plot_upper_bound: float = 1.0

    member_scores: list[Tensor] | Tensor
    nonmember_scores: list[Tensor] | Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("member_scores", default=[], dist_reduce_fx="cat")
        self.add_state("nonmember_scores", default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, is_member: bool | Tensor) -> None:
        """Add per-sample ``scores``; ``is_member`` marks the whole batch or each sample as member/non-member."""
        _check_float_tensor(scores, "scores", "[N]", 1)
        _check_finite(scores, "scores")
        members, nonmembers = _split_by_membership(scores.detach().to(self.dtype), is_member, "scores")
        self.member_scores.append(members)
        self.nonmember_scores.append(nonmembers)

    def compute(self) -> Tensor:
        """Return the AUC of members vs non-members."""
        empty = torch.zeros(0, dtype=self.dtype, device=self.device)
        value = _auroc_compute(
            _cat_or_empty(self.member_scores, empty), _cat_or_empty(self.nonmember_scores, empty), type(self).__name__
        )
        return torch.tensor(value, dtype=torch.get_default_dtype(), device=self.device)
