"""Tests for the TOFU-style LLM-unlearning metrics in :mod:`lightning_unlearn.metrics.llm`."""

from __future__ import annotations

import ast
import importlib.util
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
    MembershipAUC,
    ROUGELRecall,
    TruthRatio,
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
    files = sorted(Path(llm.__file__).parent.glob("*.py"))
    assert {f.stem for f in files} >= {"rouge", "probability", "mia", "gibberish", "perplexity"}
    imported = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert "transformers" not in imported and "nltk" not in imported
    assert imported <= {"__future__", "collections", "typing", "math", "re", "string", "zlib", "torch", "importlib",
                        "lightning_unlearn", "scipy", "sklearn", "torchmetrics"}  # fmt: skip


def test_names_importable_before_the_split_still_are():
    # metrics/llm.py became a package; these imports are used by methods/pmc.py, attacks/ and benchmarks/
    from lightning_unlearn.metrics.llm import LOG_LIKELIHOOD_ATOL, lcs_length  # noqa: F401

    assert lcs_length("abcde", "ace") == 3 and LOG_LIKELIHOOD_ATOL == 1e-4


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
    with pytest.raises(TypeError, match=re.escape("`use_stemmer` should be a bool, got str 'yes'.")):
        rouge_l_recall(["a"], ["a"], use_stemmer="yes")


@pytest.mark.skipif(importlib.util.find_spec("nltk") is not None, reason="nltk is installed")
def test_rouge_l_recall_stemmer_needs_nltk():
    with pytest.raises(ModuleNotFoundError, match=re.escape("`use_stemmer=True` needs NLTK's Porter stemmer")):
        rouge_l_recall(["a"], ["a"], use_stemmer=True)
    with pytest.raises(ModuleNotFoundError, match=re.escape("pip install nltk")):
        ROUGELRecall(use_stemmer=True)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
def test_rouge_l_recall_metric_equals_functional_mean_over_batches_and_ranks():
    preds = ["the cat on mat", "a dog", "The CAT sat, on the mat!", "", "well the cat sat down", "x y z"]
    refs = ["The cat sat on the mat.", "no match", "the cat sat on the mat", "the cat", "the cat sat", "z y x"]
    want = rouge_l_recall(preds, refs).mean()
    metric = ROUGELRecall()
    assert ROUGELRecall.higher_is_better is True and ROUGELRecall.full_state_update is False
    batch_value = metric(preds[:2], refs[:2])  # forward returns the batch mean
    torch.testing.assert_close(batch_value, rouge_l_recall(preds[:2], refs[:2]).mean())
    metric.update(preds[2:5], refs[2:5])
    other = ROUGELRecall()
    other.update(preds[5:], refs[5:])
    metric.merge_state(other)  # what the DDP sum-reduction does
    torch.testing.assert_close(metric.compute(), want)
    with pytest.raises(ValueError, match=re.escape("ROUGELRecall needs at least one prediction/reference pair; got 0.")):
        ROUGELRecall().compute()


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


def _truth_ratio_inputs(n: int = 23, k: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    para = -torch.rand(n, generator=gen, dtype=torch.float64) * 3
    pert = -torch.rand(n, k, generator=gen, dtype=torch.float64) * 3
    mask = torch.rand(n, k, generator=gen) < 0.8
    mask[:, 0] = True
    return para, pert, mask


@pytest.mark.parametrize("perturbed_mean", ["arithmetic", "geometric"])
def test_truth_ratio_metric_equals_functional_and_feeds_forget_quality(perturbed_mean):
    para, pert, mask = _truth_ratio_inputs()
    want = truth_ratio(para, pert, mask, perturbed_mean=perturbed_mean)
    metrics = {r: TruthRatio(perturbed_mean=perturbed_mean, reduction=r) for r in ("none", "forget", "retain")}
    for metric in metrics.values():
        for start in (0, 7, 8, 20):  # uneven batches
            stop = {0: 7, 7: 8, 8: 20, 20: 23}[start]
            metric.update(para[start:stop], pert[start:stop], mask[start:stop])
    torch.testing.assert_close(metrics["none"].compute(), want)
    assert metrics["forget"].compute().item() == pytest.approx(truth_ratio_score(want, "forget"), abs=1e-12)
    assert metrics["retain"].compute().item() == pytest.approx(truth_ratio_score(want, "retain"), abs=1e-12)
    # the "none" output is forget quality's input: KS test against an oracle's ratios
    oracle = truth_ratio(*_truth_ratio_inputs(seed=1), perturbed_mean=perturbed_mean)
    expected = ks_2samp(want.numpy(), oracle.numpy()).pvalue
    assert forget_quality(metrics["none"].compute(), oracle) == pytest.approx(expected, rel=1e-12)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
def test_truth_ratio_metric_merge_state_and_errors():
    para, pert, mask = _truth_ratio_inputs()
    rank0, rank1 = TruthRatio(reduction="retain"), TruthRatio(reduction="retain")
    rank0.update(para[:10], pert[:10], mask[:10])
    rank1.update(para[10:], pert[10:], mask[10:])
    rank0.merge_state(rank1)  # what the DDP cat-reduction does
    assert rank0.compute().item() == pytest.approx(truth_ratio_score(truth_ratio(para, pert, mask), "retain"), abs=1e-12)
    with pytest.raises(ValueError, match=re.escape("`reduction` should be one of ['forget', 'none', 'retain'], got 'mean'.")):
        TruthRatio(reduction="mean")
    with pytest.raises(ValueError, match=re.escape("`perturbed_mean` should be one of ['arithmetic', 'geometric']")):
        TruthRatio(perturbed_mean="harmonic")
    with pytest.raises(ValueError, match=re.escape("TruthRatio needs at least one question; got 0.")):
        TruthRatio().compute()
    with pytest.raises(ValueError, match=re.escape("`paraphrased_ll_mean` should hold log-likelihoods")):
        TruthRatio().update(torch.tensor([1.0]), torch.tensor([[-1.0]]))


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
    assert mia_min_k(lp, include_last_token=True, k=0.2).item() == pytest.approx((-5.0 - 3.0) / 2)  # int(0.2 * 10) = 2 lowest
    assert mia_min_k(lp, include_last_token=True, k=0.3).item() == pytest.approx((-5.0 - 3.0 - 2.0) / 3)
    assert mia_min_k(lp, include_last_token=True, k=0.05).item() == pytest.approx(-5.0)  # max(1, int(0.5)) = 1 token
    torch.testing.assert_close(mia_min_k(lp, include_last_token=True, k=1.0), mia_loss(lp))
    # a masked position is never picked, however low
    mask = torch.ones_like(lp, dtype=torch.bool)
    mask[0, 1] = False
    assert mia_min_k(lp, mask, k=0.1, include_last_token=True).item() == pytest.approx(-3.0)


def _open_unlearning_positions(mask_row: torch.Tensor) -> list[int]:
    """Positions open-unlearning scores for Min-K% / Min-K%++: the labelled ones without the last (its
    ``tokenwise_logprobs`` takes ``(labels != IGNORE_INDEX).nonzero()[:-1]``, "-1 to ignore eos prediction")."""
    return mask_row.nonzero().flatten().tolist()[:-1]


@pytest.mark.parametrize("include_last_token", [True, False])
def test_mia_min_k_matches_sorting_reference(include_last_token):
    lp, mask = _log_probs(n=8, t=13), _ragged_mask(n=8, t=13)
    mask[:, :2] = True  # at least two answer tokens per row
    for k in (0.1, 0.2, 0.5, 0.9, 1.0):
        ref = []
        for i in range(lp.shape[0]):
            positions = mask[i].nonzero().flatten().tolist() if include_last_token else _open_unlearning_positions(mask[i])
            vals = sorted(lp[i, positions].tolist())
            n_keep = max(1, int(len(vals) * k))
            ref.append(float(np.mean(vals[:n_keep])))
        got = mia_min_k(lp, mask, k=k, include_last_token=include_last_token)
        torch.testing.assert_close(got, torch.tensor(ref, dtype=torch.float64))


def test_mia_min_k_leaves_out_the_final_answer_token_by_default():
    # regression (issue 12): the answer's EOS was scored; open-unlearning does not score it
    lp = torch.tensor([[-2.0, -1.0, -3.0, -9.0, 0.0], [-0.5, -4.0, -0.1, -0.2, -7.0]])
    mask = torch.tensor([[True, True, True, True, False], [True, True, True, True, True]])  # row 0: EOS at index 3
    torch.testing.assert_close(mia_min_k(lp, mask, k=0.4), torch.tensor([-3.0, -4.0], dtype=torch.float64))
    torch.testing.assert_close(
        mia_min_k(lp, mask, k=0.4, include_last_token=True), torch.tensor([-9.0, -5.5], dtype=torch.float64)
    )
    # a single scored token is refused, not silently dropped
    with pytest.raises(ValueError, match=re.escape("every row needs at least 2 unmasked positions; row 0 has 1")):
        mia_min_k(torch.tensor([[-1.0, -2.0]]), torch.tensor([[True, False]]))
    with pytest.raises(TypeError, match=re.escape("`include_last_token` should be a bool, got int 1.")):
        mia_min_k(lp, include_last_token=1)


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
    assert mia_min_k_plus_plus(lp, mu, sigma, include_last_token=True).item() == pytest.approx(2.0)
    # several tokens: the lowest k of the standardised scores, not of the raw log-probs
    lp = torch.tensor([[-1.0, -4.0, -2.0, -0.5, -3.0]])
    mu = torch.tensor([[-2.0, -3.0, -2.0, -1.0, -1.0]])
    sigma = torch.tensor([[0.5, 2.0, 1.0, 0.25, 4.0]])
    z = [2.0, -0.5, 0.0, 2.0, -0.5]  # raw lowest two are positions 1 and 4 too, but the values differ
    every = {"include_last_token": True}
    assert mia_min_k_plus_plus(lp, mu, sigma, k=0.4, **every).item() == pytest.approx(-0.5)
    assert mia_min_k_plus_plus(lp, mu, sigma, k=0.6, **every).item() == pytest.approx((-0.5 - 0.5 + 0.0) / 3)
    assert mia_min_k_plus_plus(lp, mu, sigma, k=1.0, **every).item() == pytest.approx(sum(z) / 5)
    # default: the last token (z = -0.5) is not scored
    assert mia_min_k_plus_plus(lp, mu, sigma, k=0.5).item() == pytest.approx((-0.5 + 0.0) / 2)
    # zero spread (uniform next-token distribution): z is its limit 0
    uniform = (torch.tensor([[-L(5)]]), torch.tensor([[-L(5)]]), torch.tensor([[0.0]]))
    assert mia_min_k_plus_plus(*uniform, **every).item() == 0.0


@pytest.mark.parametrize("include_last_token", [True, False])
def test_mia_min_k_plus_plus_from_logits_matches_brute_force(include_last_token):
    gen = torch.Generator().manual_seed(3)
    n, t, v = 4, 11, 6
    logits = torch.randn(n, t, v, generator=gen, dtype=torch.float64) * 2
    targets = torch.randint(0, v, (n, t), generator=gen)
    mask = _ragged_mask(n, t, seed=4)
    mask[:, :2] = True
    lp = logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    mu, sigma = vocab_log_prob_stats(logits)
    got = mia_min_k_plus_plus(lp, mu, sigma, mask, k=0.3, include_last_token=include_last_token)
    ref_mu, ref_sigma = _brute_force_stats(logits)
    ref = []
    for i in range(n):
        positions = mask[i].nonzero().flatten().tolist() if include_last_token else _open_unlearning_positions(mask[i])
        z = sorted(((lp[i, j] - ref_mu[i, j]) / ref_sigma[i, j]).item() for j in positions)
        ref.append(float(np.mean(z[: max(1, int(len(z) * 0.3))])))
    torch.testing.assert_close(got, torch.tensor(ref, dtype=torch.float64))


def test_masked_positions_never_change_any_score():
    lp, mask = _log_probs(), _ragged_mask()
    mask[:, :2] = True
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
        torch.testing.assert_close(mia_min_k(row[:, :-1], k=0.5, include_last_token=True)[0], base[3][i])


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
    loss_m, loss_h = torch.from_numpy(np.exp(m)), torch.from_numpy(np.exp(h))
    assert mia_auc(-loss_m, -loss_h) == pytest.approx(metrics_pkg.loss_mia_auc(loss_m, loss_h), abs=1e-6)


def test_membership_auc_metric_equals_mia_auc_and_sklearn():
    rng = np.random.default_rng(3)
    members, nonmembers = np.round(rng.normal(0.3, 1, 61), 1), np.round(rng.normal(0, 1, 47), 1)  # ties
    want = roc_auc_score(np.r_[np.ones(61), np.zeros(47)], np.r_[members, nonmembers])
    assert mia_auc(members, nonmembers) == pytest.approx(want, abs=1e-12)
    scores = torch.from_numpy(np.r_[members, nonmembers]).float()
    is_member = torch.cat([torch.ones(61, dtype=torch.bool), torch.zeros(47, dtype=torch.bool)])
    perm = torch.randperm(108, generator=torch.Generator().manual_seed(0))
    rank0, rank1 = MembershipAUC(), MembershipAUC()
    assert MembershipAUC.higher_is_better is False and MembershipAUC.full_state_update is False
    for chunk, m in zip(scores[perm][:50].split(17), is_member[perm][:50].split(17), strict=True):
        assert rank0(chunk, m) is None  # forward only updates
    rank1.update(scores[perm][50:], is_member[perm][50:].long())
    rank0.merge_state(rank1)  # what the DDP cat-reduction does
    assert rank0.compute().item() == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match=re.escape("MembershipAUC needs at least one member and one non-member score")):
        rank1.reset() or rank1.update(scores[:3], True) or rank1.compute()
    with pytest.raises(ValueError, match=re.escape("`is_member` should have the same shape as `scores` (3,), got (2,).")):
        MembershipAUC().update(scores[:3], is_member[:2])


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
