"""Tests for LiRA / U-LiRA (``lightning_unlearn.attacks.lira``): the maths against float64/scipy/sklearn references,
every error path, determinism, and the attacks on an over-fitted toy problem (members leak; retraining does not)."""

from __future__ import annotations

import doctest
import functools
import re

import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset
from toys import blobs, fit_plain

import lightning_unlearn.attacks.lira as lira_module
from lightning_unlearn.attacks.lira import (
    MethodUnlearn,
    ShadowStats,
    SupervisedFit,
    attack_roc,
    leave_one_out,
    lira,
    lira_scores,
    logit_confidence,
    model_stats,
    train_shadows,
    ulira,
)
from lightning_unlearn.methods import GradientAscent

# ------------------------------------------------------------------------------------------------------------------
# the toy: a small noisy dataset that a wide MLP memorises, so membership leaks through phi
# ------------------------------------------------------------------------------------------------------------------

TOY_DIM, TOY_CLASSES = 10, 4


def noisy_blobs(n: int, seed: int) -> TensorDataset:
    """Overlapping Gaussian blobs with 25% random labels (fixed centres; ``seed`` draws the samples)."""
    centers = torch.randn(TOY_CLASSES, TOY_DIM, generator=torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, TOY_CLASSES, (n,), generator=gen)
    x = centers[y] + torch.randn(n, TOY_DIM, generator=gen)
    noisy = torch.rand(n, generator=gen) < 0.25
    y = torch.where(noisy, torch.randint(0, TOY_CLASSES, (n,), generator=gen), y)
    return TensorDataset(x, y)


def make_mlp() -> nn.Module:
    """Initialised from the caller's RNG (``train_shadows`` seeds it per shadow)."""
    return nn.Sequential(nn.Linear(TOY_DIM, 64), nn.ReLU(), nn.Linear(64, TOY_CLASSES))


def full_batch(data) -> tuple[torch.Tensor, torch.Tensor]:
    return next(iter(DataLoader(data, batch_size=len(data))))


def overfit(model: nn.Module, data) -> nn.Module:
    return fit_plain(model, *full_batch(data), steps=200, lr=1e-2)


def keep_model(model: nn.Module, forget, retain) -> nn.Module:
    """An "unlearning" method that does nothing: the unlearned model is the original."""
    return model


def retrain(model: nn.Module, forget, retain) -> nn.Module:
    """Exact unlearning: a fresh model trained on the retain set with the same recipe."""
    return overfit(make_mlp(), retain)


@pytest.fixture(scope="module")
def pool() -> TensorDataset:
    return noisy_blobs(240, seed=1)


@pytest.fixture(scope="module")
def lira_shadows(pool) -> ShadowStats:
    return train_shadows(pool, make_mlp, overfit, n_shadows=16, seed=0)


# ------------------------------------------------------------------------------------------------------------------
# logit_confidence
# ------------------------------------------------------------------------------------------------------------------


def test_logit_confidence_matches_float64_reference():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 7, generator=gen) * 6
    targets = torch.randint(0, 7, (64,), generator=gen)
    probs = torch.softmax(logits.double(), dim=-1).numpy()
    p_y = probs[np.arange(64), targets.numpy()]
    want = np.log(p_y) - np.log1p(-p_y)
    got = logit_confidence(logits, targets)
    assert got.dtype == torch.float32 and got.shape == (64,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    assert logit_confidence(logits.double(), targets).dtype == torch.float64
    np.testing.assert_allclose(logit_confidence(logits.double(), targets).numpy(), want, rtol=1e-12, atol=1e-12)


def test_logit_confidence_is_stable_for_confident_logits():
    logits = torch.tensor([[100.0, 0.0, 0.0], [0.0, -100.0, 0.0], [30.0, 30.0, -5.0]])
    targets = torch.tensor([0, 1, 1])
    got = logit_confidence(logits, targets)
    # exact: z_y - log sum_{j != y} exp(z_j); float32 softmax would give p_y = 1 and phi = inf for the first row
    want = torch.tensor([100.0 - np.log(2.0), -100.0 - np.log(2.0), 30.0 - np.logaddexp(30.0, -5.0)])
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want.float())


@pytest.mark.parametrize(
    ("logits", "targets", "error", "match"),
    [
        ([[1.0, 2.0]], torch.tensor([0]), TypeError, "`logits` should be a torch.Tensor, got list."),
        (torch.zeros(2, 2), [0, 1], TypeError, "`targets` should be a torch.Tensor, got list."),
        (torch.zeros(3), torch.tensor([0]), ValueError, "`logits` should be 2-D with shape [N, C] and C >= 2, got shape (3,)."),
        (
            torch.zeros(3, 1),
            torch.tensor([0, 0, 0]),
            ValueError,
            "`logits` should be 2-D with shape [N, C] and C >= 2, got shape (3, 1).",
        ),
        (
            torch.zeros(2, 3, dtype=torch.long),
            torch.tensor([0, 1]),
            ValueError,
            "`logits` should be a floating-point tensor, got dtype torch.int64.",
        ),
        (torch.zeros(2, 3), torch.tensor([0, 1, 2]), ValueError, "`targets` should have shape (2,) to match `logits`, got (3,)."),
        (
            torch.zeros(2, 3),
            torch.tensor([0.0, 1.0]),
            ValueError,
            "`targets` should be an integer tensor of class indices, got dtype torch.float32.",
        ),
        (
            torch.zeros(2, 3),
            torch.tensor([0, 3]),
            ValueError,
            "`targets` should be class indices in [0, 2], got values in [0, 3].",
        ),
        (torch.tensor([[0.0, float("inf")]]), torch.tensor([0]), ValueError, "`logits` contains NaN or infinite values."),
    ],
)
def test_logit_confidence_errors(logits, targets, error, match):
    with pytest.raises(error, match=re.escape(match)):
        logit_confidence(logits, targets)


def test_model_stats_equals_direct_computation_and_restores_mode():
    data = noisy_blobs(50, seed=3)
    torch.manual_seed(0)
    model = make_mlp().train()
    x, y = full_batch(data)
    got = model_stats(model, data, batch_size=7)
    assert model.training
    torch.testing.assert_close(got, logit_confidence(model(x), y).detach())
    with pytest.raises(ValueError, match=re.escape("`batch_size` should be an int >= 1, got 0.")):
        model_stats(model, data, batch_size=0)


# ------------------------------------------------------------------------------------------------------------------
# lira_scores vs scipy
# ------------------------------------------------------------------------------------------------------------------


def _reference_scores(target, stats, in_mask, out_mask, variant, fixed_variance, min_std=1e-3):
    """Per-example Gaussians with numpy, densities and tails from scipy.stats.norm."""
    target, stats, in_mask, out_mask = (
        t.numpy().astype(np.float64 if t.is_floating_point() else bool) for t in (target, stats, in_mask, out_mask)
    )
    n = stats.shape[1]

    def fit(mask):
        values = [stats[mask[:, j], j] for j in range(n)]
        mu = np.array([v.mean() for v in values])
        if fixed_variance:
            pooled = sum(((v - m) ** 2).sum() for v, m in zip(values, mu)) / sum(len(v) - 1 for v in values)
            sd = np.full(n, np.sqrt(pooled))
        else:
            sd = np.array([v.std(ddof=1) for v in values])
        return mu, np.maximum(sd, min_std)

    mu_out, sd_out = fit(out_mask)
    if variant == "offline":
        return -norm.logsf(target, mu_out, sd_out)
    mu_in, sd_in = fit(in_mask)
    return norm.logpdf(target, mu_in, sd_in) - norm.logpdf(target, mu_out, sd_out)


def _synthetic(n_shadows=10, n_examples=30, seed=0):
    gen = torch.Generator().manual_seed(seed)
    rank = torch.rand(n_shadows, n_examples, generator=gen).argsort(0).argsort(0)
    in_mask = rank < n_shadows // 2
    stats = torch.randn(n_shadows, n_examples, generator=gen) * 2 + 3 * in_mask
    target = torch.randn(3, n_examples, generator=gen) * 2 + 1.5
    return target, stats, in_mask


@pytest.mark.parametrize("variant", ["online", "offline"])
@pytest.mark.parametrize("fixed_variance", [True, False])
@pytest.mark.parametrize("partial_out", [False, True])
def test_lira_scores_match_scipy(variant, fixed_variance, partial_out):
    target, stats, in_mask = _synthetic()
    out_mask = ~in_mask
    if partial_out:  # the last shadow is in neither mask for even examples: it must not count
        out_mask = out_mask.clone()
        out_mask[-1, ::2] = False
        in_mask = in_mask.clone()
        in_mask[-1, ::2] = False
    kwargs = {"variant": variant, "fixed_variance": fixed_variance}
    got = lira_scores(target, stats, in_mask, out_mask if partial_out else None, **kwargs)
    want = _reference_scores(target, stats, in_mask, out_mask, variant, fixed_variance)
    assert got.dtype == torch.float64 and got.shape == target.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)
    # one target at a time gives the same rows
    torch.testing.assert_close(lira_scores(target[1], stats, in_mask, out_mask if partial_out else None, **kwargs), got[1])


def test_lira_scores_doctest_values_and_direction():
    shadows = torch.tensor([[4.0, 1.0], [2.0, 0.0], [0.0, 3.0], [1.0, 5.0]])
    in_mask = torch.tensor([[True, False], [True, False], [False, True], [False, True]])
    # example 0: IN mean 3, OUT mean 0.5; a target phi of 3 looks IN (positive score), 0.5 looks OUT (negative)
    scores = lira_scores(torch.tensor([[3.0, 4.0], [0.5, 0.5]]), shadows, in_mask)
    assert scores[0, 0] > 0 and scores[0, 1] > 0 and scores[1, 0] < 0 and scores[1, 1] < 0
    offline = lira_scores(torch.tensor([3.0, 0.5]), shadows, in_mask, variant="offline")
    assert offline[0] > offline[1]


def test_lira_scores_floor_on_identical_shadows():
    stats = torch.ones(4, 3)
    in_mask = torch.tensor([[True] * 3, [True] * 3, [False] * 3, [False] * 3])
    for fixed in (True, False):
        scores = lira_scores(torch.full((3,), 1.0), stats, in_mask, fixed_variance=fixed, min_std=0.5)
        torch.testing.assert_close(scores, torch.zeros(3, dtype=torch.float64))  # same mean, same floored std


_STATS = torch.zeros(4, 3)
_IN = torch.tensor([[True] * 3, [True] * 3, [False] * 3, [False] * 3])


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (([0.0] * 3, _STATS, _IN), {}, TypeError, "`target_stats` should be a torch.Tensor, got list."),
        (
            (torch.zeros(2, 3, 4), _STATS, _IN),
            {},
            ValueError,
            "`target_stats` should have shape [N] or [T, N], got shape (2, 3, 4).",
        ),
        ((torch.zeros(3), torch.zeros(4), _IN), {}, ValueError, "`shadow_stats` should have shape [S, N], got shape (4,)."),
        (
            (torch.zeros(3, dtype=torch.long), _STATS, _IN),
            {},
            ValueError,
            "`target_stats` should be a floating-point tensor, got dtype torch.int64.",
        ),
        (
            (torch.zeros(3), torch.full((4, 3), float("nan")), _IN),
            {},
            ValueError,
            "`shadow_stats` contains NaN or infinite values.",
        ),
        (
            (torch.zeros(3), torch.zeros(4, 2), _IN),
            {},
            ValueError,
            "`shadow_stats` should have one column per example of `target_stats` (3), got shape (4, 2).",
        ),
        ((torch.zeros(3), _STATS, _IN.long()), {}, ValueError, "`in_mask` should be a boolean tensor, got dtype torch.int64."),
        ((torch.zeros(3), _STATS, "all"), {}, TypeError, "`in_mask` should be a boolean torch.Tensor, got str."),
        (
            (torch.zeros(3), _STATS, _IN[:, :2]),
            {},
            ValueError,
            "`in_mask` should have the shape of `shadow_stats` (4, 3), got (4, 2).",
        ),
        (
            (torch.zeros(3), _STATS, _IN, _IN),
            {},
            ValueError,
            "`in_mask` and `out_mask` overlap: a shadow cannot be both IN and OUT for an example.",
        ),
        (
            (torch.zeros(3), _STATS, _IN),
            {"variant": "Online"},
            ValueError,
            "`variant` should be one of ['offline', 'online'], got 'Online'.",
        ),
        (
            (torch.zeros(3), _STATS, _IN),
            {"fixed_variance": "yes"},
            TypeError,
            "`fixed_variance` should be a bool, got str 'yes'.",
        ),
        ((torch.zeros(3), _STATS, _IN), {"min_std": 0}, ValueError, "`min_std` should be > 0, got 0."),
        (
            (torch.zeros(3), _STATS, _IN.clone().index_fill_(1, torch.tensor([1]), False)),
            {},
            ValueError,
            "The online attack needs at least 1 IN shadow model per example; examples with fewer: 1. Train more shadows.",
        ),
        (
            (torch.zeros(3), _STATS, torch.tensor([[True] * 3, [False] * 3, [False] * 3, [False] * 3])),
            {"fixed_variance": False},
            ValueError,
            "The online attack needs at least 2 IN shadow models per example (or use `fixed_variance=True`); examples with "
            "fewer: 0, 1, 2.",
        ),
        (
            (torch.zeros(3), _STATS, torch.tensor([[True] * 3, [False] * 3, [False] * 3, [False] * 3])),
            {},
            ValueError,
            "The shared IN variance needs at least one example with 2 or more IN shadow models; every scored example has "
            "exactly one. Train more shadows.",
        ),
        (
            (torch.zeros(3), _STATS, torch.ones(4, 3, dtype=torch.bool)),
            {"variant": "offline"},
            ValueError,
            "The offline attack needs at least 1 OUT shadow model per example; examples with fewer: 0, 1, 2.",
        ),
    ],
)
def test_lira_scores_errors(args, kwargs, error, match):
    with pytest.raises(error, match=re.escape(match)):
        lira_scores(*args, **kwargs)


def test_lira_scores_offline_ignores_missing_in_shadows():
    stats = torch.tensor([[0.0, 1.0], [2.0, 1.5], [1.0, 0.0]])
    no_in = torch.zeros(3, 2, dtype=torch.bool)
    got = lira_scores(torch.tensor([1.0, 2.0]), stats, no_in, variant="offline")
    want = _reference_scores(torch.tensor([1.0, 2.0]), stats, no_in, ~no_in, "offline", True)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)


# ------------------------------------------------------------------------------------------------------------------
# attack_roc vs sklearn
# ------------------------------------------------------------------------------------------------------------------


def test_attack_roc_matches_sklearn_and_manual_tpr():
    gen = torch.Generator().manual_seed(0)
    members = torch.randn(300, generator=gen) + 1.0
    nonmembers = torch.randn(400, generator=gen)
    out = attack_roc(members, nonmembers)
    labels = np.r_[np.ones(300), np.zeros(400)]
    assert out["auc"] == pytest.approx(roc_auc_score(labels, torch.cat([members, nonmembers]).numpy()), abs=1e-12)
    # TPR at FPR <= 1%: flag scores above the (k+1)-th largest non-member score, k = floor(0.01 * 400) = 4
    threshold = nonmembers.sort(descending=True).values[4]
    assert out["tpr_at_1pct_fpr"] == pytest.approx((members > threshold).double().mean().item())
    assert out["tpr_at_0.1pct_fpr"] is None  # 400 non-members cannot resolve an FPR of 0.1%
    assert out["n_members"] == 300 and out["n_nonmembers"] == 400
    assert attack_roc(members, nonmembers, fprs=(0.0025,))["tpr_at_0.25pct_fpr"] == pytest.approx(
        (members > nonmembers.max()).double().mean().item()
    )


def test_attack_roc_doctest_example():
    out = attack_roc(torch.tensor([3.0, 2.0, 0.5]), torch.tensor([1.0, 0.0]), fprs=(0.5,))
    assert out == {"auc": pytest.approx(5 / 6), "tpr_at_50pct_fpr": 1.0, "n_members": 3, "n_nonmembers": 2}


@pytest.mark.parametrize(
    ("members", "nonmembers", "kwargs", "error", "match"),
    [
        (
            torch.zeros(0),
            torch.ones(3),
            {},
            ValueError,
            "`member_scores` is empty; the ROC curve needs at least one member and one non-member.",
        ),
        (torch.ones(2), torch.zeros(0), {}, ValueError, "`nonmember_scores` is empty;"),
        (torch.ones(2, 2), torch.ones(3), {}, ValueError, "`member_scores` should have shape [N], got shape (2, 2)."),
        (torch.ones(2), [1.0], {}, TypeError, "`nonmember_scores` should be a torch.Tensor, got list."),
        (torch.ones(2), torch.ones(3), {"fprs": (0.01, 1.0)}, ValueError, "`fprs` should lie in (0, 1), got 1.0."),
        (torch.ones(2), torch.ones(3), {"fprs": 0.01}, TypeError, "`fprs` should be a sequence of numbers in (0, 1), got 0.01."),
    ],
)
def test_attack_roc_errors(members, nonmembers, kwargs, error, match):
    with pytest.raises(error, match=re.escape(match)):
        attack_roc(members, nonmembers, **kwargs)


# ------------------------------------------------------------------------------------------------------------------
# ShadowStats
# ------------------------------------------------------------------------------------------------------------------


def test_shadow_stats_without_and_candidates():
    _, stats, in_mask = _synthetic(6, 8)
    unlearned = in_mask & (torch.arange(8) < 4)
    shadows = ShadowStats(stats, in_mask, unlearned)
    assert shadows.n_shadows == 6 and shadows.n_examples == 8
    assert torch.equal(shadows.candidates, unlearned.any(0))
    rest = shadows.without(2)
    assert torch.equal(rest.stats, stats[[0, 1, 3, 4, 5]]) and torch.equal(rest.unlearned_mask, unlearned[[0, 1, 3, 4, 5]])
    assert ShadowStats(stats, in_mask).candidates is None
    with pytest.raises(ValueError, match=re.escape("`index` should be < 6 (the number of shadows), got 6.")):
        shadows.without(6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"stats": torch.zeros(4)}, ValueError, "`stats` should have shape [S, N], got shape (4,)."),
        ({"in_mask": torch.zeros(2, 3)}, ValueError, "`in_mask` should be a boolean tensor, got dtype torch.float32."),
        (
            {"unlearned_mask": torch.ones(2, 2, dtype=torch.bool)},
            ValueError,
            "`unlearned_mask` should have the shape of `stats` (2, 3), got (2, 2).",
        ),
        (
            {"unlearned_mask": torch.ones(2, 3, dtype=torch.bool)},
            ValueError,
            "`unlearned_mask` should be a subset of `in_mask`: a shadow can only unlearn what it trained on.",
        ),
    ],
)
def test_shadow_stats_errors(kwargs, error, match):
    args = {"stats": torch.zeros(2, 3), "in_mask": torch.tensor([[True, False, True], [False, True, False]]), **kwargs}
    with pytest.raises(error, match=re.escape(match)):
        ShadowStats(**args)


# ------------------------------------------------------------------------------------------------------------------
# train_shadows: balanced memberships, determinism, what the callables receive
# ------------------------------------------------------------------------------------------------------------------


def _quick_fit(model: nn.Module, data) -> nn.Module:
    return fit_plain(model, *full_batch(data), steps=5, lr=1e-2)


def test_train_shadows_balanced_and_passes_the_right_subsets():
    data = noisy_blobs(40, seed=5)
    seen: list[tuple[str, list[int], list[int]]] = []

    def train_fn(model, subset):
        seen.append(("train", list(subset.indices), []))
        return _quick_fit(model, subset)

    def unlearn_fn(model, forget, retain):
        seen.append(("unlearn", list(forget.indices), list(retain.indices)))
        return model

    candidates = list(range(0, 40, 2))
    shadows = train_shadows(
        data, make_mlp, train_fn, n_shadows=6, seed=3, unlearn_fn=unlearn_fn, forget_fraction=0.7, forget_candidates=candidates
    )
    assert shadows.stats.shape == (6, 40) and shadows.stats.dtype == torch.float32
    assert (shadows.in_mask.sum(0) == 3).all()  # every example IN for exactly S // 2 shadows
    k_forget = int(0.7 * 3 + 0.5)  # 2
    is_candidate = torch.zeros(40, dtype=torch.bool)
    is_candidate[candidates] = True
    assert torch.equal(shadows.unlearned_mask.sum(0), torch.where(is_candidate, k_forget, 0))
    assert torch.equal(shadows.candidates, is_candidate)
    assert not (shadows.unlearned_mask & ~shadows.in_mask).any()
    assert [kind for kind, *_ in seen] == ["train", "unlearn"] * 6
    for s in range(6):
        (_, trained, _), (_, forget, retain) = seen[2 * s], seen[2 * s + 1]
        assert trained == torch.nonzero(shadows.in_mask[s]).flatten().tolist()
        assert forget == torch.nonzero(shadows.unlearned_mask[s]).flatten().tolist()
        assert sorted(forget + retain) == trained and not set(forget) & set(retain)


def test_train_shadows_deterministic_and_leaves_the_global_rng_alone():
    data = noisy_blobs(30, seed=6)
    state = torch.get_rng_state()
    first = train_shadows(data, make_mlp, _quick_fit, n_shadows=4, seed=11)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)  # the caller's RNG state does not matter either
    again = train_shadows(data, make_mlp, _quick_fit, n_shadows=4, seed=11)
    other = train_shadows(data, make_mlp, _quick_fit, n_shadows=4, seed=12)
    assert torch.equal(first.stats, again.stats) and torch.equal(first.in_mask, again.in_mask)
    assert not torch.equal(first.in_mask, other.in_mask)
    assert first.unlearned_mask is None
    assert not torch.equal(first.stats[0], first.stats[1])  # shadows get different initialisations


def test_train_shadows_several_methods_on_the_same_shadows():
    data = noisy_blobs(40, seed=7)

    def fresh(model, forget, retain):  # uses the RNG (a new initialisation)
        return _quick_fit(make_mlp(), retain)

    def nudge(model, forget, retain):  # changes the model it was given, in place
        with torch.no_grad():
            model[0].bias.add_(1.0)
        return model

    kwargs = {"n_shadows": 4, "seed": 2, "forget_fraction": 0.5}
    both = train_shadows(data, make_mlp, _quick_fit, unlearn_fn={"nudge": nudge, "fresh": fresh}, **kwargs)
    assert sorted(both) == ["fresh", "nudge"]
    for name, fn in (("nudge", nudge), ("fresh", fresh)):
        alone = train_shadows(data, make_mlp, _quick_fit, unlearn_fn=fn, **kwargs)
        assert torch.equal(both[name].stats, alone.stats)  # each method starts from its own copy and the same RNG
        assert torch.equal(both[name].unlearned_mask, alone.unlearned_mask)


_DATA = noisy_blobs(20, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"make_model": None}, TypeError, "`make_model` should be a callable () -> nn.Module, got NoneType None."),
        ({"train_fn": "adam"}, TypeError, "`train_fn` should be a callable (model, dataset) -> nn.Module, got str 'adam'."),
        ({"unlearn_fn": 3}, TypeError, "`unlearn_fn` should be a callable (model, forget, retain) -> nn.Module, got int 3."),
        ({"unlearn_fn": {}}, ValueError, "`unlearn_fn` is an empty mapping; give at least one {name: unlearn_fn}."),
        ({"unlearn_fn": {1: keep_model}}, TypeError, "The keys of `unlearn_fn` should be method names (str), got int 1."),
        (
            {"unlearn_fn": {"ok": keep_model, "bad": 3}},
            TypeError,
            "`unlearn_fn['bad']` should be a callable (model, forget, retain) -> nn.Module, got int 3.",
        ),
        ({"train_fn": lambda model, data: None}, TypeError, "`train_fn` should return the model (an nn.Module), got NoneType."),
        (
            {"unlearn_fn": lambda model, forget, retain: {"model": model}},
            TypeError,
            "`unlearn_fn` should return the model (an nn.Module), got dict.",
        ),
        ({"n_shadows": 1}, ValueError, "`n_shadows` should be an int >= 2, got 1."),
        ({"seed": -1}, ValueError, "`seed` should be an int >= 0, got -1."),
        ({"forget_fraction": 0.0}, ValueError, "`forget_fraction` should lie in (0, 1], got 0.0."),
        (
            {"pool": TensorDataset(torch.zeros(0, 10), torch.zeros(0, dtype=torch.long))},
            ValueError,
            "`pool` is empty; there is nothing to attack.",
        ),
        (
            {"forget_candidates": [1, 2]},
            ValueError,
            "`forget_candidates` only applies with an `unlearn_fn` (U-LiRA); got no `unlearn_fn`.",
        ),
        (
            {"unlearn_fn": keep_model, "forget_candidates": [1, 20, -1]},
            ValueError,
            "`forget_candidates` should lie in [0, 19]; got 20, -1.",
        ),
        (
            {"unlearn_fn": keep_model, "forget_candidates": []},
            ValueError,
            "`forget_candidates` should be a non-empty sequence of int indices into `pool`, got [].",
        ),
        (
            {"unlearn_fn": keep_model, "n_shadows": 2, "forget_fraction": 0.4},
            ValueError,
            "`forget_fraction`=0.4 of the 1 shadows that train on each example rounds to 0 shadows that unlearn it; "
            "raise `forget_fraction` or `n_shadows`.",
        ),
        (
            {"unlearn_fn": keep_model, "n_shadows": 8, "forget_candidates": [3]},
            ValueError,
            "drew no forget examples from the 1 forget candidates; use more `forget_candidates` or a larger `forget_fraction`.",
        ),
        (
            {"pool": TensorDataset(torch.zeros(1, 10), torch.zeros(1, dtype=torch.long))},
            ValueError,
            "drew no training examples from a pool of 1; use a larger pool.",
        ),
    ],
)
def test_train_shadows_errors(kwargs, error, match):
    args = {"pool": _DATA, "make_model": make_mlp, "train_fn": _quick_fit, "n_shadows": 4, **kwargs}
    with pytest.raises(error, match=re.escape(match)):
        train_shadows(**args)


# ------------------------------------------------------------------------------------------------------------------
# LiRA on the over-fitted toy
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "min_auc"), [("online", 0.75), ("offline", 0.7)])
def test_lira_separates_members_of_an_overfitted_model(lira_shadows, variant, min_auc):
    out = leave_one_out(lira_shadows, variant=variant)
    # measured: online AUC 0.874 (TPR 0.23 at 1% FPR), offline 0.793 (16 shadows, 240 examples, 25% label noise)
    assert out["auc"] >= min_auc
    assert out["n_targets"] == 16 and out["n_members"] == out["n_nonmembers"] == 16 * 120
    assert out["tpr_at_1pct_fpr"] > 0.01  # better than chance at low FPR too


def test_lira_on_separate_targets(pool, lira_shadows):
    gen = torch.Generator().manual_seed(42)
    members = torch.rand(240, generator=gen) < 0.5
    torch.manual_seed(1)
    trained = overfit(make_mlp(), Subset(pool, torch.nonzero(members).flatten().tolist()))
    elsewhere = overfit(make_mlp(), noisy_blobs(120, seed=2))  # never saw any pool example
    stats = torch.stack([model_stats(trained, pool), model_stats(elsewhere, pool)])
    hit = lira(stats[0], members, ~members, lira_shadows)
    miss = lira(stats[1], members, ~members, lira_shadows)
    # measured: trained target AUC 0.883, target trained on other data 0.507
    assert hit["auc"] >= 0.75
    assert abs(miss["auc"] - 0.5) <= 0.1
    both = lira(stats, torch.stack([members, members]), torch.stack([~members, ~members]), lira_shadows)
    assert both["n_members"] == 2 * int(members.sum())  # several targets share one ROC curve


def test_leave_one_out_equals_manual_lira_scores():
    _, stats, in_mask = _synthetic(8, 20, seed=4)
    shadows = ShadowStats(stats, in_mask)
    plain_pos, plain_neg, pos, neg = [], [], [], []
    priority = torch.rand(8, 20, generator=torch.Generator().manual_seed(3))
    for t in range(8):
        rest = shadows.without(t)
        scores = lira_scores(stats[t], rest.stats, rest.in_mask)
        plain_pos.append(scores[in_mask[t]])
        plain_neg.append(scores[~in_mask[t]])
        # balanced: also drop the lowest-priority reference of the side the target is not on
        ref_in, ref_out = rest.in_mask.clone(), ~rest.in_mask
        rank = priority[torch.arange(8) != t]
        for n in range(20):
            side = ref_out if in_mask[t, n] else ref_in
            rows = torch.nonzero(side[:, n]).flatten()
            side[rows[rank[rows, n].argmin()], n] = False
        assert (ref_in.sum(0) == 3).all() and (ref_out.sum(0) == 3).all()  # k_in - 1 and S - k_in - 1 for every example
        scores = lira_scores(stats[t], rest.stats, ref_in, ref_out)
        pos.append(scores[in_mask[t]])
        neg.append(scores[~in_mask[t]])
    assert leave_one_out(shadows, balanced=False) == {**attack_roc(torch.cat(plain_pos), torch.cat(plain_neg)), "n_targets": 8}
    assert leave_one_out(shadows, seed=3) == {**attack_roc(torch.cat(pos), torch.cat(neg)), "n_targets": 8}


def test_balanced_leave_one_out_is_calibrated_when_nothing_leaks():
    gen = torch.Generator().manual_seed(100)
    stats = torch.randn(8, 3000, generator=gen) + 2 * torch.randn(1, 3000, generator=gen)  # phi independent of membership
    rank = torch.rand(8, 3000, generator=gen).argsort(0).argsort(0)
    shadows = ShadowStats(stats, rank < 4)
    # measured: balanced 0.506, plain leave-one-out 0.477 (its positives are fit to one IN reference fewer)
    assert abs(leave_one_out(shadows)["auc"] - 0.5) <= 0.02
    assert leave_one_out(shadows, balanced=False)["auc"] < 0.49


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda s: lira(torch.zeros(20), torch.ones(20, dtype=torch.bool), torch.zeros(20, dtype=torch.bool), s),
            ValueError,
            "`nonmembers` selects no examples.",
        ),
        (
            lambda s: lira(torch.zeros(20), torch.ones(20, dtype=torch.bool), torch.ones(20, dtype=torch.bool), s),
            ValueError,
            "`members` and `nonmembers` overlap: an example cannot be both.",
        ),
        (
            lambda s: lira(torch.zeros(19), torch.ones(19, dtype=torch.bool), torch.zeros(19, dtype=torch.bool), s),
            ValueError,
            "`target_stats` should have one value per pool example (20), got shape (19,).",
        ),
        (
            lambda s: lira(torch.zeros(20), torch.ones(2, 20, dtype=torch.bool), torch.zeros(20, dtype=torch.bool), s),
            ValueError,
            "`members` should have the shape of `target_stats` (20,), got (2, 20).",
        ),
        (
            lambda s: lira(torch.zeros(20), torch.ones(20, dtype=torch.bool), torch.zeros(20, dtype=torch.bool), s.stats),
            TypeError,
            "`shadows` should be a ShadowStats (see `train_shadows`), got Tensor.",
        ),
        (
            lambda s: ulira(torch.zeros(20), torch.ones(20, dtype=torch.bool), torch.zeros(20, dtype=torch.bool), s),
            ValueError,
            "`shadows` have no `unlearned_mask`; train them with `train_shadows(..., unlearn_fn=...)` for U-LiRA.",
        ),
        (lambda s: leave_one_out(s.stats), TypeError, "`shadows` should be a ShadowStats (see `train_shadows`), got Tensor."),
    ],
)
def test_lira_ulira_errors(call, error, match):
    _, stats, in_mask = _synthetic(8, 20, seed=4)
    with pytest.raises(error, match=re.escape(match)):
        call(ShadowStats(stats, in_mask))


def test_leave_one_out_ulira_needs_two_unlearning_shadows_per_example():
    _, stats, in_mask = _synthetic(4, 12, seed=2)  # 2 IN shadows per example, each unlearned by 1 of them
    rank = torch.rand(4, 12, generator=torch.Generator().manual_seed(0)).masked_fill(~in_mask, 2.0).argsort(0).argsort(0)
    shadows = ShadowStats(stats, in_mask, rank < 1)
    with pytest.raises(
        ValueError, match=re.escape("The online attack needs at least 1 IN shadow model per example; examples with fewer:")
    ):
        leave_one_out(shadows, balanced=False)  # the target's own unlearned examples have no IN reference left
    leave_one_out(shadows, variant="offline", balanced=False)  # the offline attack needs OUT shadows only
    with pytest.raises(ValueError, match=re.escape("The shared OUT variance needs at least one example with 2 or more OUT")):
        leave_one_out(shadows, variant="offline")  # balanced: 4 - 2 - 1 = 1 OUT reference per example


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"balanced": 1}, TypeError, "`balanced` should be a bool, got int 1."),
        ({"seed": -2}, ValueError, "`seed` should be an int >= 0, got -2."),
        ({"variant": "both"}, ValueError, "`variant` should be one of ['offline', 'online'], got 'both'."),
    ],
)
def test_leave_one_out_errors(kwargs, error, match):
    _, stats, in_mask = _synthetic(8, 20, seed=4)
    with pytest.raises(error, match=re.escape(match)):
        leave_one_out(ShadowStats(stats, in_mask), **kwargs)


# ------------------------------------------------------------------------------------------------------------------
# U-LiRA on the over-fitted toy
# ------------------------------------------------------------------------------------------------------------------


def test_ulira_do_nothing_is_detected_and_retraining_is_not(pool):
    kept = train_shadows(pool, make_mlp, overfit, n_shadows=12, seed=0, unlearn_fn=keep_model, forget_fraction=0.5)
    retrained = train_shadows(pool, make_mlp, overfit, n_shadows=12, seed=0, unlearn_fn=retrain, forget_fraction=0.5)
    assert torch.equal(kept.unlearned_mask, retrained.unlearned_mask)  # same draws for the same seed
    assert (kept.unlearned_mask.sum(0) == 3).all()  # round(0.5 * 6) shadows unlearn each example
    do_nothing = leave_one_out(kept)
    exact = leave_one_out(retrained)
    # measured: do-nothing AUC 0.851, retrain 0.492 (12 shadows, 240 examples; plain leave-one-out: 0.849, 0.461)
    assert do_nothing["auc"] >= 0.75
    assert abs(exact["auc"] - 0.5) <= 0.05
    assert do_nothing["n_members"] == 12 * 60  # each shadow unlearned a quarter of the pool


def test_ulira_on_a_separate_target(pool):
    shadows = train_shadows(pool, make_mlp, overfit, n_shadows=8, seed=0, unlearn_fn=keep_model)
    target = train_shadows(pool, make_mlp, overfit, n_shadows=2, seed=5, unlearn_fn=keep_model, forget_fraction=1.0)
    forgotten, nonmembers = target.unlearned_mask[0], ~target.in_mask[0]
    out = ulira(target.stats[0], forgotten, nonmembers, shadows)
    # measured: AUC 0.841
    assert out["auc"] >= 0.75
    with pytest.raises(ValueError, match=re.escape("`forgotten` and `nonmembers` overlap: an example cannot be both.")):
        ulira(target.stats[0], forgotten, forgotten | nonmembers, shadows)


# ------------------------------------------------------------------------------------------------------------------
# the Lightning-native train / unlearn functions
# ------------------------------------------------------------------------------------------------------------------


def test_supervised_fit_and_method_unlearn_through_lightning():
    data = blobs(15, seed=0)  # 60 samples, 8 features, 4 classes

    def small():
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    fit = SupervisedFit(epochs=2, lr=1e-2, batch_size=16)
    runs = [
        train_shadows(
            data,
            small,
            fit,
            n_shadows=2,
            seed=1,
            forget_fraction=1.0,
            forget_candidates=list(range(20)),
            unlearn_fn=MethodUnlearn(method, epochs=1, lr=1e-3, batch_size=8),
        )  # fmt: skip
        for method in ("ga", functools.partial(GradientAscent, forget_weight=1.0), "ga")
    ]
    assert runs[0].stats.shape == (2, 60) and torch.isfinite(runs[0].stats).all()
    assert torch.equal(runs[0].stats, runs[1].stats)  # the name and the factory build the same method
    assert torch.equal(runs[0].stats, runs[2].stats)  # deterministic through Lightning too
    plain = train_shadows(data, small, fit, n_shadows=2, seed=1)
    assert not torch.equal(plain.stats, runs[0].stats)  # unlearning changed the models


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda: MethodUnlearn(GradientAscent()),
            TypeError,
            "`method` should be a method name or a factory that builds a fresh method per shadow",
        ),
        (lambda: MethodUnlearn("gradient_ascent"), ValueError, "Unknown method 'gradient_ascent'"),
        (
            lambda: MethodUnlearn(3),
            TypeError,
            "`method` should be a callable () -> UnlearningMethod, or a registered method name, got int 3.",
        ),
        (lambda: MethodUnlearn("ga", epochs=0), ValueError, "`epochs` should be an int >= 1, got 0."),
        (
            lambda: MethodUnlearn("ga", mode="min"),
            ValueError,
            "`mode` should be one of ['max_size', 'max_size_cycle', 'min_size'], got 'min'.",
        ),
        (
            lambda: MethodUnlearn("ga", retain_batch_size=0),
            ValueError,
            "`retain_batch_size` should be an int >= 1 or None, got 0.",
        ),
        (
            lambda: MethodUnlearn(lambda: nn.Linear(2, 2)).build_method(),
            TypeError,
            "The `method` factory should return an UnlearningMethod, got Linear.",
        ),
        (lambda: SupervisedFit(lr=-1.0), ValueError, "`lr` should be > 0, got -1.0."),
        (lambda: SupervisedFit(batch_size=1.5), ValueError, "`batch_size` should be an int >= 1, got 1.5."),
        (
            lambda: SupervisedFit(optimizer="adam"),
            TypeError,
            "`optimizer` should be a callable (params, lr=...) -> torch.optim.Optimizer, got str 'adam'.",
        ),
    ],
)
def test_fit_and_unlearn_function_errors(build, error, match):
    with pytest.raises(error, match=re.escape(match)):
        build()


def test_docstring_examples():
    result = doctest.testmod(lira_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 6 and result.failed == 0
