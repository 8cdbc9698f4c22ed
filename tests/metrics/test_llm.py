"""Tests for the TOFU-style LLM-unlearning metrics in :mod:`lightning_unlearn.metrics.llm`."""

from __future__ import annotations

import ast
import math
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import hmean, ks_2samp
from sklearn.metrics import roc_auc_score
from torchmetrics.functional.text.rouge import rouge_score

import lightning_unlearn.metrics as metrics_pkg
from lightning_unlearn.metrics import llm
from lightning_unlearn.metrics.llm import (
    answer_probability,
    forget_quality,
    gibberish_rate,
    is_gibberish,
    mia_auc,
    mia_loss,
    mia_min_k,
    mia_min_k_plus_plus,
    mia_zlib,
    model_utility,
    rouge_l_recall,
    truth_ratio,
    truth_ratio_score,
    vocab_log_prob_stats,
)

L = math.log


def _log_probs(n: int = 6, t: int = 9, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return -torch.rand(n, t, generator=gen, dtype=torch.float64).mul(6)


def _ragged_mask(n: int = 6, t: int = 9, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (n,), generator=gen)
    return torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)


# ----------------------------------------------------------------------------------------------------------------
# package
# ----------------------------------------------------------------------------------------------------------------


def test_exported_from_package_and_no_heavy_imports():
    for name in llm.__all__:
        assert getattr(metrics_pkg, name) is getattr(llm, name)
        assert name in metrics_pkg.__all__
    tree = ast.parse(Path(llm.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "transformers" not in imported and "nltk" not in imported
    assert imported <= {"__future__", "collections", "typing", "math", "re", "string", "zlib", "torch",
                        "lightning_unlearn", "scipy", "sklearn"}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# ROUGE-L recall
# ----------------------------------------------------------------------------------------------------------------


def test_rouge_l_recall_hand_examples():
    got = rouge_l_recall(
        ["the cat on mat", "The CAT sat, on the mat!", "", "mat on the cat", "a b c"],
        ["the cat sat on the mat", "the cat sat on the mat", "the cat", "the cat sat on the mat", ""],
    )
    # LCS 4 of 6; identical after normalisation; empty prediction; "the cat" (or "on the") 2 of 6; empty reference
    assert got.dtype == torch.float64 and got.shape == (5,)
    torch.testing.assert_close(got, torch.tensor([4 / 6, 1.0, 0.0, 2 / 6, 0.0], dtype=torch.float64))
    # recall, not precision: extra predicted words do not lower it
    assert rouge_l_recall(["well the cat sat down on the big mat today"], ["the cat sat on the mat"]).item() == 1.0


def test_rouge_l_recall_matches_torchmetrics_rouge_l():
    rng = np.random.default_rng(0)
    vocab = ["the", "a", "cat", "Mat", "sat", "on", "42", "is", "Dog's", "x-ray", "blue,", "run."]
    preds, refs = [], []
    for _ in range(40):
        preds.append(" ".join(rng.choice(vocab, size=rng.integers(0, 12))))
        refs.append(" ".join(rng.choice(vocab, size=rng.integers(1, 12))))
    got = rouge_l_recall(preds, refs)
    expected = [rouge_score(p, r, rouge_keys="rougeL")["rougeL_recall"].item() for p, r in zip(preds, refs)]
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), atol=1e-6, rtol=0)
    assert len(set(expected)) > 5  # the examples are not degenerate


def test_rouge_l_recall_errors():
    with pytest.raises(ValueError, match=re.escape("should have the same length, got 2 and 1")):
        rouge_l_recall(["a", "b"], ["a"])
    with pytest.raises(TypeError, match=re.escape("`predictions` should be a sequence of strings, got str")):
        rouge_l_recall("a cat", "a cat")
    with pytest.raises(TypeError, match=re.escape("`references[1]` should be a str, got int")):
        rouge_l_recall(["a", "b"], ["a", 3])


# ----------------------------------------------------------------------------------------------------------------
# answer probability, truth ratio, forget quality, model utility
# ----------------------------------------------------------------------------------------------------------------


def test_answer_probability_is_geometric_mean_token_probability():
    token_probs = [[0.5, 0.5], [0.9], [0.2, 0.4, 0.8]]
    ll_sum = torch.tensor([sum(L(p) for p in row) for row in token_probs])
    lengths = torch.tensor([len(row) for row in token_probs])
    expected = torch.tensor([math.prod(row) ** (1 / len(row)) for row in token_probs], dtype=torch.float64)
    torch.testing.assert_close(answer_probability(ll_sum, lengths), expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(
        answer_probability(torch.tensor([L(0.25)]), 2), torch.tensor([0.5], dtype=torch.float64), rtol=1e-6, atol=0
    )


@pytest.mark.parametrize(
    ("ll", "length", "error", "match"),
    [
        (torch.tensor([0.5]), 1, ValueError, "Did you pass a loss (negative log-likelihood)? Negate it."),
        (torch.tensor([-1.0]), 0, ValueError, "`answer_length` should be an int >= 1, got 0."),
        (torch.tensor([-1.0, -2.0]), torch.tensor([1, 0]), ValueError, "whole token counts >= 1"),
        (torch.tensor([-1.0]), torch.tensor([1, 2]), ValueError, "`answer_length` should have the shape"),
        (torch.tensor([[-1.0]]), 1, ValueError, "`log_likelihood_sum` should be 1-D with shape [N]"),
        (torch.tensor([float("nan")]), 1, ValueError, "`log_likelihood_sum` contains NaN or infinite"),
        ([-1.0], 1, TypeError, "`log_likelihood_sum` should be a torch.Tensor"),
        (torch.tensor([-1.0]), 1.5, TypeError, "`answer_length` should be a torch.Tensor of shape [N] or an int"),
    ],
)
def test_answer_probability_errors(ll, length, error, match):
    with pytest.raises(error, match=re.escape(match)):
        answer_probability(ll, length)


def test_truth_ratio_closed_form():
    para = torch.tensor([L(0.8), L(0.5)])
    pert = torch.tensor([[L(0.2), L(0.4)], [L(0.5), L(0.25)]])
    torch.testing.assert_close(
        truth_ratio(para, pert), torch.tensor([0.3 / 0.8, 0.375 / 0.5], dtype=torch.float64), rtol=1e-6, atol=0
    )
    geo = truth_ratio(para, pert, perturbed_mean="geometric")
    expected = torch.tensor([math.sqrt(0.2 * 0.4) / 0.8, math.sqrt(0.5 * 0.25) / 0.5], dtype=torch.float64)
    torch.testing.assert_close(geo, expected, rtol=1e-6, atol=0)
    assert bool((geo <= truth_ratio(para, pert) + 1e-12).all())  # AM-GM


def test_truth_ratio_is_stable_in_log_space():
    # probabilities exp(-800) underflow to 0 in float64; the log-space ratio is still exact
    para = torch.tensor([-800.0], dtype=torch.float64)
    pert = torch.tensor([[-800.0, -800.0 + L(3.0)]], dtype=torch.float64)
    torch.testing.assert_close(truth_ratio(para, pert), torch.tensor([2.0], dtype=torch.float64))


def test_truth_ratio_mask_ignores_missing_perturbed_answers():
    para = torch.tensor([L(0.8), L(0.5)])
    pert = torch.tensor([[L(0.2), L(0.4), float("nan")], [L(0.5), 3.0, float("-inf")]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    for mean in ("arithmetic", "geometric"):
        got = truth_ratio(para, pert, mask, perturbed_mean=mean)
        ref = torch.cat(
            [truth_ratio(para[:1], pert[:1, :2], perturbed_mean=mean), truth_ratio(para[1:], pert[1:, :1], perturbed_mean=mean)]
        )
        torch.testing.assert_close(got, ref)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(perturbed_ll_mean=torch.zeros(3, 2) - 1), ValueError, "with N = 2 (the length of `paraphrased_ll_mean`)"),
        (dict(perturbed_ll_mean=torch.zeros(2, 0)), ValueError, "and K >= 1, got shape (2, 0)"),
        (dict(perturbed_ll_mean=torch.zeros(2) - 1), ValueError, "`perturbed_ll_mean` should be 2-D with shape [N, K]"),
        (dict(paraphrased_ll_mean=torch.tensor([-1.0, 2.0])), ValueError, "`paraphrased_ll_mean` should hold log-likelihoods"),
        (dict(perturbed_mask=torch.tensor([[True, True], [False, False]])), ValueError, "row 1 has none"),
        (dict(perturbed_mask=torch.ones(2, 3, dtype=torch.bool)), ValueError, "`perturbed_mask` should have the shape"),
        (dict(perturbed_mask=torch.full((2, 2), 0.5)), ValueError, "`perturbed_mask` should be a bool tensor"),
        (dict(perturbed_mean="harmonic"), ValueError, "`perturbed_mean` should be one of ['arithmetic', 'geometric']"),
    ],
)
def test_truth_ratio_errors(kwargs, error, match):
    args = dict(paraphrased_ll_mean=torch.tensor([-1.0, -2.0]), perturbed_ll_mean=torch.full((2, 2), -1.5))
    args.update(kwargs)
    with pytest.raises(error, match=re.escape(match)):
        truth_ratio(**args)


def test_truth_ratio_score_conventions():
    r = torch.tensor([0.25, 2.0, 1.0, 0.5])
    assert truth_ratio_score(r, "retain") == pytest.approx((0.75 + 0.0 + 0.0 + 0.5) / 4)
    assert truth_ratio_score(r, "forget") == pytest.approx((0.25 + 0.5 + 1.0 + 0.5) / 4)
    with pytest.raises(ValueError, match=re.escape("`split` should be one of ['forget', 'retain'], got 'test'.")):
        truth_ratio_score(r, "test")
    with pytest.raises(ValueError, match=re.escape("`ratios` should be positive truth ratios")):
        truth_ratio_score(torch.tensor([0.0, 1.0]), "retain")


def test_forget_quality_is_scipy_ks_2samp_p_value():
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(0, 1, 40), rng.lognormal(0.3, 1, 37)
    expected = ks_2samp(a, b).pvalue
    assert forget_quality(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-12)
    assert forget_quality(list(a), b) == pytest.approx(expected, rel=1e-12)
    # rank-based: the same for 1/R (TOFU's code stores the inverse ratio) and log R
    assert forget_quality(1 / a, 1 / b) == pytest.approx(expected, rel=1e-12)
    assert forget_quality(np.log(a), np.log(b)) == pytest.approx(expected, rel=1e-12)
    assert forget_quality(torch.tensor(a), torch.tensor(a)) == 1.0
    far = forget_quality(torch.linspace(0.01, 0.2, 50), torch.linspace(1.0, 3.0, 50))
    assert far < 1e-20 and isinstance(far, float)


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (torch.tensor([]), torch.tensor([1.0]), "`unlearned_truth_ratios` should not be empty."),
        (torch.tensor([1.0]), torch.ones(2, 2), "`oracle_truth_ratios` should be 1-D, got shape (2, 2)."),
        (torch.tensor([1.0, float("inf")]), torch.tensor([1.0]), "`unlearned_truth_ratios` contains NaN or infinite"),
    ],
)
def test_forget_quality_errors(a, b, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        forget_quality(a, b)


def test_model_utility_harmonic_mean_and_zero_rule():
    scores = {"retain_rouge": 0.5, "retain_prob": 0.25, "retain_truth_ratio": 1.0}
    assert model_utility(scores) == pytest.approx(3 / (2 + 4 + 1))
    assert model_utility(scores) == pytest.approx(hmean(list(scores.values())))
    assert model_utility({"only": 0.7}) == pytest.approx(0.7)
    assert model_utility({"a": torch.tensor(0.5), "b": 0.5}) == pytest.approx(0.5)
    assert model_utility({**scores, "world_facts_rouge": 0.0}) == 0.0
    assert model_utility({"a": 0, "b": 1}) == 0.0


@pytest.mark.parametrize(
    ("scores", "error", "match"),
    [
        ({}, ValueError, "`scores` should contain at least one score, got an empty mapping."),
        ({"a": -0.1}, ValueError, "`scores['a']` should be a finite number >= 0, got -0.1."),
        ({"a": float("nan")}, ValueError, "`scores['a']` should be a finite number >= 0, got nan."),
        ({"a": "0.5"}, TypeError, "`scores['a']` should be a number, got str '0.5'."),
        ({"a": torch.ones(2)}, TypeError, "`scores['a']` should be a number, got a tensor of shape (2,)."),
        ([0.5, 0.5], TypeError, "`scores` should be a mapping of score name to number, got list."),
    ],
)
def test_model_utility_errors(scores, error, match):
    with pytest.raises(error, match=re.escape(match)):
        model_utility(scores)


# ----------------------------------------------------------------------------------------------------------------
# membership-inference scores
# ----------------------------------------------------------------------------------------------------------------


def test_mia_loss_is_mean_token_log_prob():
    lp = _log_probs()
    mask = _ragged_mask()
    expected = torch.tensor([lp[i][mask[i]].mean().item() for i in range(lp.shape[0])], dtype=torch.float64)
    torch.testing.assert_close(mia_loss(lp, mask), expected)
    torch.testing.assert_close(mia_loss(lp), lp.mean(dim=1))
    torch.testing.assert_close(mia_loss(lp.float(), mask.long()), expected, rtol=1e-6, atol=1e-6)


def test_mia_zlib_uses_compressed_length():
    texts = ["a" * 200, "The quick brown fox jumps over the lazy dog, 1962."]
    zlen = [len(zlib.compress(t.encode("utf-8"))) for t in texts]
    assert zlen[0] < len(texts[0]) / 4 and zlen[1] > 40  # repetitive text compresses, the other does not
    lp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -2.0, -3.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    got = mia_zlib(lp, texts, mask)
    torch.testing.assert_close(got, torch.tensor([-2.0 / zlen[0], -1.5 / zlen[1]], dtype=torch.float64))
    got_sum = mia_zlib(lp, texts, mask, reduction="sum")
    torch.testing.assert_close(got_sum, torch.tensor([-6.0 / zlen[0], -3.0 / zlen[1]], dtype=torch.float64))
    # non-ASCII text: bytes, not characters, are compressed
    assert mia_zlib(lp[:1], ["é" * 3]).item() == pytest.approx(-2.0 / len(zlib.compress("é".encode() * 3)))


def test_mia_min_k_picks_the_lowest_tokens():
    lp = torch.tensor([[-0.1, -5.0, -0.2, -3.0, -0.3, -0.05, -0.4, -0.6, -0.7, -2.0]])
    assert mia_min_k(lp, k=0.2).item() == pytest.approx((-5.0 - 3.0) / 2)  # int(0.2 * 10) = 2 lowest
    assert mia_min_k(lp, k=0.3).item() == pytest.approx((-5.0 - 3.0 - 2.0) / 3)
    assert mia_min_k(lp, k=0.05).item() == pytest.approx(-5.0)  # max(1, int(0.5)) = 1 token
    torch.testing.assert_close(mia_min_k(lp, k=1.0), mia_loss(lp))
    # a masked position is never picked, however low
    mask = torch.ones_like(lp, dtype=torch.bool)
    mask[0, 1] = False
    assert mia_min_k(lp, mask, k=0.1).item() == pytest.approx(-3.0)


def test_mia_min_k_matches_sorting_reference():
    lp, mask = _log_probs(n=8, t=13), _ragged_mask(n=8, t=13)
    for k in (0.1, 0.2, 0.5, 0.9, 1.0):
        ref = []
        for i in range(lp.shape[0]):
            vals = sorted(lp[i][mask[i]].tolist())
            n_keep = max(1, int(len(vals) * k))
            ref.append(float(np.mean(vals[:n_keep])))
        torch.testing.assert_close(mia_min_k(lp, mask, k=k), torch.tensor(ref, dtype=torch.float64))


def _brute_force_stats(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mu = sum p log p and sigma = sqrt(E[log^2 p] - mu^2) by explicit loops (Zhang et al.'s formula)."""
    n, t, _ = logits.shape
    mu, sigma = torch.zeros(n, t, dtype=torch.float64), torch.zeros(n, t, dtype=torch.float64)
    for i in range(n):
        for j in range(t):
            z = [v for v in logits[i, j].tolist() if v != -math.inf]
            top = max(z)
            log_norm = top + math.log(sum(math.exp(v - top) for v in z))
            logp = [v - log_norm for v in z]
            m = sum(math.exp(lv) * lv for lv in logp)
            second = sum(math.exp(lv) * lv * lv for lv in logp)
            mu[i, j], sigma[i, j] = m, math.sqrt(max(second - m * m, 0.0))
    return mu, sigma


def test_vocab_log_prob_stats_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 7, generator=gen, dtype=torch.float64) * 3
    logits[1, 2, :3] = -math.inf  # zero-probability tokens contribute nothing
    mu, sigma = vocab_log_prob_stats(logits)
    ref_mu, ref_sigma = _brute_force_stats(logits)
    torch.testing.assert_close(mu, ref_mu)
    torch.testing.assert_close(sigma, ref_sigma)
    # float32 and half inputs
    mu32, sigma32 = vocab_log_prob_stats(logits.float().nan_to_num(neginf=-1e4))
    assert mu32.dtype == torch.float32
    torch.testing.assert_close(mu32.double(), ref_mu, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sigma32.double(), ref_sigma, rtol=1e-4, atol=1e-4)
    assert vocab_log_prob_stats(logits.nan_to_num(neginf=-1e4).bfloat16())[0].dtype == torch.float32
    # uniform: mu = -log V, sigma = 0
    mu_u, sigma_u = vocab_log_prob_stats(torch.zeros(1, 1, 5))
    assert mu_u.item() == pytest.approx(-math.log(5)) and sigma_u.item() == pytest.approx(0.0, abs=1e-6)


def test_mia_min_k_plus_plus_hand_computation():
    # one token: z = (log p - mu) / sigma
    lp, mu, sigma = torch.tensor([[-1.0]]), torch.tensor([[-2.0]]), torch.tensor([[0.5]])
    assert mia_min_k_plus_plus(lp, mu, sigma).item() == pytest.approx(2.0)
    # several tokens: the lowest k of the standardised scores, not of the raw log-probs
    lp = torch.tensor([[-1.0, -4.0, -2.0, -0.5, -3.0]])
    mu = torch.tensor([[-2.0, -3.0, -2.0, -1.0, -1.0]])
    sigma = torch.tensor([[0.5, 2.0, 1.0, 0.25, 4.0]])
    z = [2.0, -0.5, 0.0, 2.0, -0.5]  # raw lowest two are positions 1 and 4 too, but the values differ
    assert mia_min_k_plus_plus(lp, mu, sigma, k=0.4).item() == pytest.approx(-0.5)
    assert mia_min_k_plus_plus(lp, mu, sigma, k=0.6).item() == pytest.approx((-0.5 - 0.5 + 0.0) / 3)
    assert mia_min_k_plus_plus(lp, mu, sigma, k=1.0).item() == pytest.approx(sum(z) / 5)
    # zero spread (uniform next-token distribution): z is its limit 0
    assert mia_min_k_plus_plus(torch.tensor([[-L(5)]]), torch.tensor([[-L(5)]]), torch.tensor([[0.0]])).item() == 0.0


def test_mia_min_k_plus_plus_from_logits_matches_brute_force():
    gen = torch.Generator().manual_seed(3)
    n, t, v = 4, 11, 6
    logits = torch.randn(n, t, v, generator=gen, dtype=torch.float64) * 2
    targets = torch.randint(0, v, (n, t), generator=gen)
    mask = _ragged_mask(n, t, seed=4)
    lp = logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    mu, sigma = vocab_log_prob_stats(logits)
    got = mia_min_k_plus_plus(lp, mu, sigma, mask, k=0.3)
    ref_mu, ref_sigma = _brute_force_stats(logits)
    ref = []
    for i in range(n):
        z = sorted(((lp[i, j] - ref_mu[i, j]) / ref_sigma[i, j]).item() for j in range(t) if mask[i, j])
        ref.append(float(np.mean(z[: max(1, int(len(z) * 0.3))])))
    torch.testing.assert_close(got, torch.tensor(ref, dtype=torch.float64))


def test_masked_positions_never_change_any_score():
    lp, mask = _log_probs(), _ragged_mask()
    gen = torch.Generator().manual_seed(7)
    mu = -torch.rand(lp.shape, generator=gen, dtype=torch.float64) * 3
    sigma = torch.rand(lp.shape, generator=gen, dtype=torch.float64) + 0.1
    texts = [f"sample {i}" for i in range(lp.shape[0])]

    def all_scores(lp_, mu_, sigma_):
        return [
            mia_loss(lp_, mask),
            mia_zlib(lp_, texts, mask),
            mia_min_k(lp_, mask, k=0.2),
            mia_min_k(lp_, mask, k=0.5),
            mia_min_k_plus_plus(lp_, mu_, sigma_, mask, k=0.2),
        ]

    base = all_scores(lp, mu, sigma)
    for fill in (float("nan"), float("-inf"), 5.0, -1e6):
        lp2, mu2, sigma2 = lp.clone(), mu.clone(), sigma.clone()
        lp2[~mask], mu2[~mask], sigma2[~mask] = fill, fill, fill
        for a, b in zip(base, all_scores(lp2, mu2, sigma2)):
            torch.testing.assert_close(a, b)
    # and the scores equal those on the unpadded rows alone
    for i in range(lp.shape[0]):
        row = lp[i][mask[i]].unsqueeze(0)
        torch.testing.assert_close(mia_loss(row)[0], base[0][i])
        torch.testing.assert_close(mia_min_k(row, k=0.5)[0], base[3][i])


def test_mia_auc_matches_sklearn_and_extremes():
    assert mia_auc(torch.tensor([-0.1, -0.2, -0.3]), torch.tensor([-1.0, -2.0])) == 1.0
    assert mia_auc(torch.tensor([-1.0, -2.0]), torch.tensor([-0.1, -0.2, -0.3])) == 0.0
    assert mia_auc(torch.full((5,), -1.0), torch.full((7,), -1.0)) == 0.5
    scores = torch.tensor([-0.5, -1.5, -0.2, -3.0, -1.0, -0.7])
    assert mia_auc(scores, scores) == 0.5
    rng = np.random.default_rng(0)
    m, h = rng.normal(0.5, 1, 30), rng.normal(0, 1, 25)
    expected = roc_auc_score(np.r_[np.ones(30), np.zeros(25)], np.r_[m, h])
    assert mia_auc(torch.from_numpy(m), list(h)) == pytest.approx(expected)
    # consistent with the loss-threshold AUC when the score is the negated loss
    assert mia_auc(torch.from_numpy(-m), torch.from_numpy(-h)) == pytest.approx(
        metrics_pkg.loss_mia_auc(torch.from_numpy(m), torch.from_numpy(h)), abs=1e-6
    )


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: mia_loss(torch.tensor([-1.0, -2.0])), ValueError, "`token_log_probs` should be 2-D with shape [N, T]"),
        (lambda: mia_loss(torch.tensor([[-1, -2]])), ValueError, "`token_log_probs` should be a floating-point tensor"),
        (lambda: mia_loss([[-1.0]]), TypeError, "`token_log_probs` should be a torch.Tensor of shape [N, T], got list."),
        (lambda: mia_loss(torch.tensor([[1.0, -2.0]])), ValueError, "Did you pass a loss (negative log-likelihood)?"),
        (lambda: mia_loss(torch.tensor([[float("nan"), -2.0]])), ValueError, "NaN or infinite values at unmasked"),
        (
            lambda: mia_loss(torch.tensor([[-1.0, -2.0]]), torch.tensor([[True]])),
            ValueError,
            "`mask` should have the shape of `token_log_probs` (1, 2), got (1, 1).",
        ),
        (lambda: mia_loss(torch.tensor([[-1.0], [-2.0]]), torch.tensor([[True], [False]])), ValueError, "row 1 has none"),
        (lambda: mia_loss(torch.tensor([[-1.0]]), torch.tensor([[2]])), ValueError, "only 0/1 integers"),
        (lambda: mia_min_k(torch.tensor([[-1.0]]), k=0.0), ValueError, "`k` should lie in (0, 1], got 0.0."),
        (lambda: mia_min_k(torch.tensor([[-1.0]]), k=1.5), ValueError, "`k` should lie in (0, 1], got 1.5."),
        (lambda: mia_zlib(torch.tensor([[-1.0]]), ["a", "b"]), ValueError, "`texts` should have 1 entries, got 2."),
        (lambda: mia_zlib(torch.tensor([[-1.0]]), [""]), ValueError, "`texts[0]` is empty"),
        (lambda: mia_zlib(torch.tensor([[-1.0]]), ["a"], reduction="max"), ValueError, "`reduction` should be one of"),
        (
            lambda: mia_min_k_plus_plus(torch.tensor([[-1.0]]), torch.tensor([[-1.0]]), torch.tensor([[-0.5]])),
            ValueError,
            "`sigma` should be >= 0 (a standard deviation), got a minimum of -0.5.",
        ),
        (
            lambda: mia_min_k_plus_plus(torch.tensor([[-1.0]]), torch.tensor([-1.0]), torch.tensor([[0.5]])),
            ValueError,
            "`mu` should be 2-D with shape [N, T]",
        ),
        (
            lambda: mia_min_k_plus_plus(torch.tensor([[-1.0]]), torch.zeros(1, 2), torch.ones(1, 2)),
            ValueError,
            "`mu` should have the shape of `token_log_probs` (1, 1), got (1, 2).",
        ),
        (lambda: vocab_log_prob_stats(torch.zeros(2, 3)), ValueError, "`logits` should be 3-D with shape [N, T, V]"),
        (lambda: vocab_log_prob_stats(torch.zeros(1, 2, 0)), ValueError, "non-empty vocabulary dimension"),
        (lambda: mia_auc(torch.tensor([]), torch.tensor([0.1])), ValueError, "`member_scores` should not be empty."),
        (lambda: mia_auc([0.1], [float("nan")]), ValueError, "`nonmember_scores` contains NaN or infinite"),
    ],
)
def test_mia_errors(call, error, match):
    with pytest.raises(error, match=re.escape(match)):
        call()


# ----------------------------------------------------------------------------------------------------------------
# gibberish
# ----------------------------------------------------------------------------------------------------------------

FLUENT = [
    "The author was born in Paris in 1962.",
    "Her first novel, 'The Silent River', won the Hugo Award in 1994.",
    "He worked at NASA and the BBC before writing full-time.",
    "Yes.",
    "1962",
    "June 5th, 1962 - $30,000",
    "I'm not sure, but I think she wrote three books about rhythm and strength.",
    "Very very very good.",
    "José García moved to Zürich; his café is well-known.",
]

GIBBERISH = [
    "",
    "   \n\t ",
    "Paris Paris Paris",
    "the the the the",
    "She was born in in in in Paris.",
    "the book is the book is the book is",
    "I don't know. I don't know. I don't know. I don't know.",
    "hahahahahaha",
    "xqzt vbnm kkkk qwrtp",
    "!!!??? ### @@@ %%%",
    "aaaaaa bbbbbbb cccccc",
    "sdfghjklqwrtpzx bcdfgh is",  # 1 word in 3
]


@pytest.mark.parametrize("text", FLUENT)
def test_fluent_text_is_not_gibberish(text):
    assert not is_gibberish(text)


@pytest.mark.parametrize("text", GIBBERISH)
def test_degenerate_text_is_gibberish(text):
    assert is_gibberish(text)


def test_gibberish_rate_is_the_fraction_flagged():
    assert gibberish_rate(FLUENT) == 0.0
    assert gibberish_rate(GIBBERISH) == 1.0
    assert gibberish_rate(FLUENT[:3] + GIBBERISH[:1]) == 0.25
    # the word-ratio threshold is configurable
    mixed = "Paris xqzt vbnm"  # 1 word in 3
    assert is_gibberish(mixed) and not is_gibberish(mixed, min_word_ratio=0.3)
    assert gibberish_rate([mixed], min_word_ratio=0.0) == 0.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: gibberish_rate([]), ValueError, "`texts` should contain at least one generation"),
        (lambda: gibberish_rate("abc"), TypeError, "`texts` should be a sequence of strings, got str."),
        (lambda: gibberish_rate(["a", None]), TypeError, "`texts[1]` should be a str, got NoneType."),
        (lambda: gibberish_rate(["a"], min_word_ratio=1.5), ValueError, "`min_word_ratio` should lie in [0, 1]"),
        (lambda: is_gibberish(3), TypeError, "`text` should be a str, got int."),
    ],
)
def test_gibberish_errors(call, error, match):
    with pytest.raises(error, match=re.escape(match)):
        call()


# ------------------------------------------------------------------------------------------------ text_perplexity
def test_text_perplexity_matches_the_models_own_loss_and_ignores_padding():
    from llm_toys import SENTENCES, toy_model, toy_tokenizer

    from lightning_unlearn.metrics.llm import text_perplexity

    tok, model = toy_tokenizer(), toy_model(seed=3).train()
    texts = ["The quick brown fox.", SENTENCES[2], "Where was Elara Voss born?", SENTENCES[0]]
    lengths = {len(tok(t)["input_ids"]) for t in texts}
    assert len(lengths) == len(texts) and max(lengths) < 64  # different lengths, none truncated: batches are padded

    def reference(prefix: list[int]) -> float:
        nll, count = 0.0, 0
        with torch.no_grad():
            for text in texts:
                ids = torch.tensor([prefix + tok(text)["input_ids"]])
                loss = model.eval()(input_ids=ids, labels=ids).loss  # mean NLL of tokens 2..n
                nll += float(loss) * (ids.shape[1] - 1)
                count += ids.shape[1] - 1
        model.train()
        return math.exp(nll / count)

    expected = reference([])
    assert text_perplexity(model, tok, texts, max_length=64, batch_size=1) == pytest.approx(expected, rel=1e-5)
    assert text_perplexity(model, tok, texts, max_length=64, batch_size=3) == pytest.approx(expected, rel=1e-5)
    assert model.training  # restored
    with_prefix = reference([tok.bos_token_id])  # one more scored token per text
    assert text_perplexity(model, tok, texts, max_length=64, batch_size=4, prefix_token_id=tok.bos_token_id) == pytest.approx(
        with_prefix, rel=1e-5
    )
    # a random model over ~320 tokens is near-uniform: perplexity in the hundreds, not 1
    assert 50 < expected < 2000


def test_text_perplexity_rejects_bad_input():
    from llm_toys import toy_model, toy_tokenizer

    from lightning_unlearn.metrics.llm import text_perplexity

    tok, model = toy_tokenizer(), toy_model()
    with pytest.raises(ValueError, match="got an empty sequence"):
        text_perplexity(model, tok, [])
    with pytest.raises(ValueError, match=r"texts\[1\] are blank"):
        text_perplexity(model, tok, ["ok", "  "])
    with pytest.raises(ValueError, match="`prefix_token_id`"):
        text_perplexity(model, tok, ["a text"], prefix_token_id=-1)
    with pytest.raises(ValueError, match="`max_length`"):
        text_perplexity(model, tok, ["a text"], max_length=1)
