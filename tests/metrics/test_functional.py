"""Tests for the functional metrics: membership features, MIA-efficacy, loss-MIA AUC and split accuracy."""

from __future__ import annotations

import dataclasses
import re
from typing import get_args

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy
from sklearn.metrics import accuracy_score, roc_auc_score

from lightning_unlearn.metrics import (
    DEFAULT_MIA_FEATURES,
    MembershipFeature,
    MIAAttack,
    MIASplit,
    loss_mia_auc,
    membership_features,
    mia_efficacy,
    split_accuracy,
)
from lightning_unlearn.metrics import functional as F

from ._reference import (
    member_like,
    nonmember_like,
    overlapping,
    reference_features,
    reference_mia_efficacy,
    song_mittal_modified_entropy,
)

ALL_KINDS = ["entropy", "confidence", "modified_entropy", "correctness"]


def _probs(n: int = 64, c: int = 7, seed: int = 0, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=gen, dtype=torch.float64).mul(2)
    return logits.softmax(-1).to(dtype), torch.randint(c, (n,), generator=gen)


# ------------------------------------------------------------------------------------------------------------------
# Literal aliases and dicts agree
# ------------------------------------------------------------------------------------------------------------------


def test_literal_aliases_match_validation_dicts():
    assert list(get_args(MembershipFeature)) == list(F._MEMBERSHIP_FEATURES)
    assert list(get_args(MIAAttack)) == list(F._MIA_ATTACKS)
    assert list(get_args(MIASplit)) == list(F._MIA_SPLITS)
    assert DEFAULT_MIA_FEATURES == ("entropy", "confidence")


# ------------------------------------------------------------------------------------------------------------------
# membership_features
# ------------------------------------------------------------------------------------------------------------------


def test_entropy_matches_scipy():
    probs, targets = _probs(dtype=torch.float64)  # scipy renormalises rows; float64 rows already sum to 1
    got = membership_features(probs, targets, kind="entropy")
    assert got.shape == (64, 1) and got.dtype == torch.float64
    np.testing.assert_allclose(got[:, 0].numpy(), scipy_entropy(probs.numpy(), axis=1), rtol=1e-12)
    got32 = membership_features(probs.float(), targets, kind="entropy")[:, 0]
    np.testing.assert_allclose(got32.numpy(), scipy_entropy(probs.float().numpy(), axis=1), rtol=1e-5)


def test_entropy_handles_exact_zeros_and_one_hot():
    probs = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    got = membership_features(probs, torch.tensor([0, 1, 2]), kind="entropy")[:, 0]
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), [0.0, np.log(2), np.log(3)], rtol=1e-6, atol=1e-12)


def test_confidence_is_true_class_probability():
    probs, targets = _probs()
    got = membership_features(probs, targets, kind="confidence")[:, 0]
    torch.testing.assert_close(got, probs.double()[torch.arange(64), targets])


def test_modified_entropy_matches_song_mittal_reference_code():
    probs, targets = _probs()
    probs = torch.cat([probs, torch.tensor([[1.0] + [0.0] * 6])])  # log floor at 1e-30 for p = 0 and 1 - p = 0
    targets = torch.cat([targets, torch.tensor([3])])
    got = membership_features(probs, targets, kind="modified_entropy")[:, 0]
    want = song_mittal_modified_entropy(probs.double().numpy(), targets.numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    # certain and wrong: (1 - 0) * -log(floor) for the true class + 1 * -log(floor) for the predicted one
    assert got[-1].item() == pytest.approx(-2 * np.log(1e-30))


def test_correctness_is_argmax_hit():
    probs, targets = _probs()
    got = membership_features(probs, targets, kind="correctness")[:, 0]
    torch.testing.assert_close(got, (probs.argmax(-1) == targets).double())


def test_sequence_of_kinds_is_concatenated_in_order():
    probs, targets = _probs()
    got = membership_features(probs, targets, kind=ALL_KINDS[::-1])
    np.testing.assert_allclose(got.numpy(), reference_features(probs, targets, ALL_KINDS[::-1]), rtol=1e-6)
    singles = [membership_features(probs, targets, kind=k) for k in ALL_KINDS[::-1]]
    torch.testing.assert_close(got, torch.cat(singles, dim=1))
    torch.testing.assert_close(membership_features(probs, targets, kind=("entropy",)), singles[-1])


def test_default_kind_and_empty_input():
    probs, targets = _probs()
    torch.testing.assert_close(
        membership_features(probs, targets), membership_features(probs, targets, kind=["entropy", "confidence"])
    )
    empty = membership_features(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), kind=ALL_KINDS)
    assert empty.shape == (0, 4)


def test_float16_and_slightly_off_probs_are_accepted():
    probs, targets = _probs()
    out = membership_features(probs.half(), targets, kind="entropy")
    assert out.dtype == torch.float64 and torch.isfinite(out).all()
    nudged = probs.clone()
    nudged[0, 0] += 5e-4  # within the 1e-3 tolerance
    membership_features(nudged, targets)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"kind": "ENTROPY"},
            ValueError,
            "`kind` should be one of ['confidence', 'correctness', 'entropy', 'modified_entropy'], got 'ENTROPY'.",
        ),
        ({"kind": ["entropy", "loss"]}, ValueError, "`kind` should be one of {ANY}, got 'loss'."),
        ({"kind": []}, ValueError, "`kind` should name at least one feature from {ANY}, got an empty sequence."),
        ({"kind": 3}, ValueError, "`kind` should be one of {ANY} or a sequence of them, got 3."),
        ({"probs": torch.rand(4)}, ValueError, "`probs` should be 2-D with shape [N, C], got shape (4,)."),
        ({"probs": torch.ones(4, 1, dtype=torch.long)}, ValueError, "`probs` should be a floating-point tensor"),
        ({"probs": torch.zeros(4, 0)}, ValueError, "`probs` should have at least one class column"),
        (
            {"targets": torch.zeros(3, dtype=torch.long)},
            ValueError,
            "`targets` should be 1-D with 4 entries to match `probs` of shape (4, 2), got shape (3,).",
        ),
        ({"targets": torch.zeros(4, 1, dtype=torch.long)}, ValueError, "`targets` should be 1-D with 4 entries"),
        (
            {"targets": torch.zeros(4)},
            ValueError,
            "`targets` should be an integer tensor of class indices, got dtype torch.float32.",
        ),
        (
            {"targets": torch.tensor([0, 1, 2, 0])},
            ValueError,
            "`targets` should be class indices in [0, 1] for `probs` with 2 columns, got values in [0, 2].",
        ),
        ({"targets": torch.tensor([0, -1, 1, 0])}, ValueError, "got values in [-1, 1]."),
        (
            {"probs": torch.tensor([[2.0, -1.0]] * 4)},
            ValueError,
            "`probs` should lie in [0, 1], got values in [-1, 2]. Did you pass logits? Apply `logits.softmax(dim=-1)`",
        ),
        (
            {"probs": torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.2, 0.2], [0.5, 0.5]])},
            ValueError,
            "Rows of `probs` should sum to 1 (tolerance 0.001), but row 2 sums to 0.4. Did you pass logits? "
            "Apply `logits.softmax(dim=-1)` first.",
        ),
        ({"probs": torch.tensor([[0.5, float("nan")]] * 4)}, ValueError, "`probs` contains NaN or infinite values"),
        ({"probs": [[0.5, 0.5]] * 4}, TypeError, "`probs` should be a torch.Tensor of shape [N, C], got list."),
        ({"targets": [0, 1, 0, 1]}, TypeError, "`targets` should be a torch.Tensor of shape [N], got list."),
    ],
)
def test_membership_features_errors(kwargs, error, match):
    args = {"probs": torch.full((4, 2), 0.5), "targets": torch.tensor([0, 1, 0, 1]), "kind": "entropy"} | kwargs
    pattern = ".*".join(re.escape(part) for part in match.split("{ANY}"))
    with pytest.raises(error, match=pattern):
        membership_features(**args)


# ------------------------------------------------------------------------------------------------------------------
# mia_efficacy
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attack", ["logistic", "svc"])
@pytest.mark.parametrize("kinds", [("entropy", "confidence"), ("confidence",), ("modified_entropy", "correctness")])
def test_mia_efficacy_matches_sklearn_without_subsampling(attack, kinds):
    # balanced and under the cap: the attack is fit on exactly all retain + test rows
    retain, test, forget = overlapping(150, 1, 3.0), overlapping(150, 2, 1.5), overlapping(80, 3, 2.2)
    got = mia_efficacy(*retain, *test, *forget, kind=kinds, attack=attack)
    want = reference_mia_efficacy(retain, test, forget, kinds, attack)
    assert got == want
    assert 0.0 < got < 100.0  # a non-trivial case


@pytest.mark.parametrize("attack", ["logistic", "svc"])
@pytest.mark.parametrize(
    ("n_retain", "n_test", "cap", "seed"), [(300, 120, 5000, 0), (90, 200, 5000, 3), (300, 200, 50, 7)]
)
def test_mia_efficacy_matches_sklearn_with_balancing_and_cap(attack, n_retain, n_test, cap, seed):
    retain, test, forget = overlapping(n_retain, 11, 3.0), overlapping(n_test, 12, 1.5), overlapping(70, 13, 2.2)
    got = mia_efficacy(*retain, *test, *forget, attack=attack, max_samples_per_side=cap, seed=seed)
    assert got == reference_mia_efficacy(retain, test, forget, attack=attack, max_samples_per_side=cap, seed=seed)


def test_mia_efficacy_fits_attack_on_balanced_capped_scaled_rows(monkeypatch):
    seen = {}

    class SpyLogistic:
        def __init__(self):
            from sklearn.linear_model import LogisticRegression

            self.clf = LogisticRegression(max_iter=1000)

        def fit(self, x, y):
            seen["x"], seen["y"] = x, y
            self.clf.fit(x, y)
            return self

        def predict(self, x):
            return self.clf.predict(x)

    monkeypatch.setitem(F._MIA_ATTACKS, "logistic", dataclasses.replace(F._MIA_ATTACKS["logistic"], make=SpyLogistic))
    retain, test, forget = overlapping(400, 1, 3.0), overlapping(250, 2, 1.5), overlapping(10, 3, 2.0)
    mia_efficacy(*retain, *test, *forget, max_samples_per_side=100)
    assert seen["x"].shape == (200, 2)
    assert seen["y"].tolist() == [1] * 100 + [0] * 100
    np.testing.assert_allclose(seen["x"].mean(0), 0.0, atol=1e-6)  # standardised
    np.testing.assert_allclose(seen["x"].std(0), 1.0, atol=1e-6)


@pytest.mark.parametrize("attack", ["logistic", "svc"])
def test_mia_efficacy_separable_toy_case(attack):
    retain, test = member_like(200, 1), nonmember_like(200, 2)
    not_forgotten = mia_efficacy(*retain, *test, *member_like(100, 3), attack=attack)
    forgotten = mia_efficacy(*retain, *test, *nonmember_like(100, 4), attack=attack)
    assert not_forgotten <= 5.0
    assert forgotten >= 95.0


def test_mia_efficacy_is_invariant_to_sample_order():
    retain, test, forget = overlapping(300, 1, 3.0), overlapping(200, 2, 1.5), overlapping(60, 3, 2.2)
    base = mia_efficacy(*retain, *test, *forget, max_samples_per_side=100, attack="svc")
    gen = torch.Generator().manual_seed(123)

    def shuffled(split):
        perm = torch.randperm(len(split[1]), generator=gen)
        return split[0][perm], split[1][perm]

    again = mia_efficacy(*shuffled(retain), *shuffled(test), *shuffled(forget), max_samples_per_side=100, attack="svc")
    assert again == base


def test_mia_efficacy_seed_is_deterministic_and_used():
    retain, test, forget = overlapping(500, 1, 2.5), overlapping(500, 2, 2.0), overlapping(200, 3, 2.2)
    runs = {s: mia_efficacy(*retain, *test, *forget, max_samples_per_side=20, seed=s) for s in range(6)}
    assert runs[0] == mia_efficacy(*retain, *test, *forget, max_samples_per_side=20, seed=0)
    assert len(set(runs.values())) > 1  # different subsamples give different attacks


def test_mia_efficacy_returns_percent_float():
    y = torch.tensor([0, 1])
    retain = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    test = torch.tensor([[0.6, 0.4], [0.4, 0.6]])
    out = mia_efficacy(retain, y, test, y, torch.tensor([[0.95, 0.05], [0.5, 0.5]]), y)
    assert isinstance(out, float) and out == 50.0
    assert mia_efficacy(retain, y, test, y, retain, y) == 0.0
    assert mia_efficacy(retain, y, test, y, test, y) == 100.0


@pytest.mark.parametrize(
    ("which", "kwargs", "error", "match"),
    [
        (None, {"attack": "SVM"}, ValueError, "`attack` should be one of ['logistic', 'salun_svc', 'svc'], got 'SVM'."),
        (
            None,
            {"kind": "loss"},
            ValueError,
            "`kind` should be one of ['confidence', 'correctness', 'entropy', 'modified_entropy'], got 'loss'.",
        ),
        (None, {"max_samples_per_side": 0}, ValueError, "`max_samples_per_side` should be >= 1, got 0."),
        (None, {"max_samples_per_side": 10.0}, TypeError, "`max_samples_per_side` should be an int or None, got float 10.0."),
        (None, {"max_samples_per_side": True}, TypeError, "`max_samples_per_side` should be an int or None, got bool True."),
        (None, {"seed": "0"}, TypeError, "`seed` should be an int, got str '0'."),
        (
            None,
            {"attack": "salun_svc", "max_samples_per_side": 100},
            ValueError,
            "`max_samples_per_side` should be None with attack='salun_svc' (SalUn's SVC_MIA fits on the first |test| "
            "retain samples and every test sample, without a cap), got 100.",
        ),
        (
            "test",
            (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)),
            ValueError,
            "mia_efficacy needs samples from all three splits; got 0 'test' samples.",
        ),
        (
            "retain",
            (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)),
            ValueError,
            "mia_efficacy needs samples from all three splits; got 0 'retain' samples.",
        ),
        (
            "forget",
            (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)),
            ValueError,
            "mia_efficacy needs samples from all three splits; got 0 'forget' samples.",
        ),
        (
            "retain",
            (torch.tensor([[3.0, -1.0]]), torch.tensor([0])),
            ValueError,
            "`retain_probs` should lie in [0, 1], got values in [-1, 3]. Did you pass logits?",
        ),
        (
            "test",
            (torch.tensor([[0.3, 0.3]]), torch.tensor([0])),
            ValueError,
            "Rows of `test_probs` should sum to 1 (tolerance 0.001), but row 0 sums to 0.6.",
        ),
        (
            "forget",
            (torch.tensor([[0.5, 0.5]]), torch.tensor([5])),
            ValueError,
            "`forget_targets` should be class indices in [0, 1] for `forget_probs` with 2 columns, "
            "got values in [5, 5].",
        ),
        (
            "forget",
            (torch.tensor([0.5, 0.5]), torch.tensor([0])),
            ValueError,
            "`forget_probs` should be 2-D with shape [N, C], got shape (2,).",
        ),
    ],
)
def test_mia_efficacy_errors(which, kwargs, error, match):
    y = torch.tensor([0, 1])
    splits = {s: (torch.tensor([[0.9, 0.1], [0.2, 0.8]]), y) for s in ("retain", "test", "forget")}
    options = {}
    if which is None:
        options = kwargs
    else:
        splits[which] = kwargs
    with pytest.raises(error, match=re.escape(match)):
        mia_efficacy(*splits["retain"], *splits["test"], *splits["forget"], **options)


# ------------------------------------------------------------------------------------------------------------------
# mia_efficacy(attack="salun_svc") against SalUn's SVC_MIA
# ------------------------------------------------------------------------------------------------------------------


def salun_svc_mia_forget_efficacy(retain, test, forget) -> dict[str, float]:
    """SalUn's forget-efficacy ``SVC_MIA`` (github.com/OPTML-Group/Unlearn-Saliency, ``Classification/main_forget.py``
    and ``evaluation/SVC_MIA.py``), re-written here with sklearn from their description:

    shadow_train = the first ``len(test)`` retain samples, shadow_test = all test samples, target_train = none,
    target_test = the forget set; per feature an ``SVC(C=3, gamma="auto", kernel="rbf")`` is fit on the raw feature
    (label 1 = shadow_train, 0 = shadow_test) and the entry is ``1 - mean(predict(target_test))``.
    """
    from sklearn.svm import SVC

    def feats(probs, targets):
        p = probs.float()  # SalUn's softmax outputs are float32
        conf = p[torch.arange(len(targets)), targets]
        entr = -torch.where(p > 0, p * p.log(), torch.zeros(())).sum(-1)
        return {"confidence": conf.numpy().reshape(-1, 1), "entropy": entr.numpy().reshape(-1, 1)}

    shadow_train = feats(retain[0][: len(test[1])], retain[1][: len(test[1])])
    shadow_test, target_test = feats(*test), feats(*forget)
    out = {}
    for name in ("confidence", "entropy"):
        x = np.concatenate([shadow_train[name], shadow_test[name]])
        y = np.concatenate([np.ones(len(shadow_train[name])), np.zeros(len(shadow_test[name]))])
        clf = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
        out[name] = 1 - clf.predict(target_test[name]).mean()
    return out


@pytest.mark.parametrize(("n_retain", "n_test"), [(300, 120), (90, 150), (200, 200)])
def test_mia_efficacy_salun_svc_reproduces_salun_svc_mia(n_retain, n_test):
    retain, test = overlapping(n_retain, 21, 3.0), overlapping(n_test, 22, 1.0)
    forget = overlapping(90, 23, 2.0)
    want = salun_svc_mia_forget_efficacy(retain, test, forget)
    got = mia_efficacy(*retain, *test, *forget, attack="salun_svc")  # default feature: confidence
    assert got == pytest.approx(100 * want["confidence"], abs=1e-9)
    got_entropy = mia_efficacy(*retain, *test, *forget, attack="salun_svc", kind="entropy")
    assert got_entropy == pytest.approx(100 * want["entropy"], abs=1e-9)
    assert 0.0 < got < 100.0


def test_mia_efficacy_salun_svc_uses_the_first_retain_samples_in_order():
    retain, test, forget = overlapping(300, 31, 3.0), overlapping(100, 32, 1.0), overlapping(80, 33, 2.0)
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    shuffled = (retain[0][perm], retain[1][perm])
    want = salun_svc_mia_forget_efficacy(shuffled, test, forget)["confidence"]
    assert mia_efficacy(*shuffled, *test, *forget, attack="salun_svc") == pytest.approx(100 * want, abs=1e-9)


def test_mia_efficacy_standardised_svc_is_not_salun_svc_mia():
    # the old advice "kind='confidence', attack='svc'" standardises and subsamples: a different number
    retain, test, forget = overlapping(300, 21, 3.0), overlapping(120, 22, 1.0), overlapping(90, 23, 2.0)
    salun = mia_efficacy(*retain, *test, *forget, attack="salun_svc")
    standardised = mia_efficacy(*retain, *test, *forget, attack="svc", kind="confidence")
    assert salun == pytest.approx(100 * salun_svc_mia_forget_efficacy(retain, test, forget)["confidence"], abs=1e-9)
    assert standardised != salun


# ------------------------------------------------------------------------------------------------------------------
# loss_mia_auc
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_loss_mia_auc_matches_sklearn_with_ties(seed):
    gen = torch.Generator().manual_seed(seed)
    # few distinct values -> many ties, within and across the two groups
    members = torch.randint(0, 8, (int(torch.randint(1, 60, (1,), generator=gen)),), generator=gen).float() / 4
    nonmembers = torch.randint(2, 10, (int(torch.randint(1, 60, (1,), generator=gen)),), generator=gen).float() / 4
    scores = -torch.cat([members, nonmembers]).numpy()
    labels = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    assert loss_mia_auc(members, nonmembers) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_loss_mia_auc_matches_sklearn_continuous():
    gen = torch.Generator().manual_seed(0)
    members, nonmembers = torch.rand(500, generator=gen), torch.rand(300, generator=gen) + 0.3
    labels = np.r_[np.ones(500), np.zeros(300)]
    want = roc_auc_score(labels, -torch.cat([members, nonmembers]).numpy())
    assert loss_mia_auc(members, nonmembers) == pytest.approx(want, abs=1e-12)


def test_loss_mia_auc_extremes():
    low, high = torch.tensor([0.1, 0.2]), torch.tensor([1.0, 2.0, 3.0])
    assert loss_mia_auc(low, high) == 1.0  # members have lower loss: fully recognisable
    assert loss_mia_auc(high, low) == 0.0
    assert loss_mia_auc(torch.ones(3), torch.ones(5)) == 0.5  # all tied: indistinguishable
    assert isinstance(loss_mia_auc(low, high), float)


def test_loss_mia_auc_refuses_log_likelihoods_that_would_flip_the_auc():
    # regression: log-likelihoods (= -loss) used to be accepted and gave 1 - AUC without a word
    losses_m, losses_h = torch.tensor([0.1, 0.2, 0.9]), torch.tensor([0.2, 1.0])
    assert loss_mia_auc(losses_m, losses_h) == 0.75
    with pytest.raises(ValueError, match=re.escape("Did you pass log-likelihoods (negative losses)?")):
        loss_mia_auc(-losses_m, -losses_h)
    # a cross-entropy that rounds to a tiny negative number is still a loss
    assert loss_mia_auc(torch.tensor([-1e-6, 0.5]), torch.tensor([0.7, 0.0])) == 0.75


def test_loss_mia_auc_accepts_float64_and_half():
    members, nonmembers = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64), torch.tensor([0.3, 0.7]).half()
    assert loss_mia_auc(members, nonmembers) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("members", "nonmembers", "error", "match"),
    [
        (
            torch.zeros(0),
            torch.ones(2),
            ValueError,
            "loss_mia_auc needs at least one member and one non-member loss; got 0 member losses.",
        ),
        (
            torch.ones(2),
            torch.zeros(0),
            ValueError,
            "loss_mia_auc needs at least one member and one non-member loss; got 0 non-member losses.",
        ),
        (
            torch.ones(2, 2),
            torch.ones(2),
            ValueError,
            "`member_losses` should be 1-D per-sample losses of shape [N], got shape (2, 2).",
        ),
        (
            torch.ones(2),
            torch.tensor(1.0),
            ValueError,
            "`nonmember_losses` should be 1-D per-sample losses of shape [N], got shape ().",
        ),
        (
            torch.ones(2, dtype=torch.long),
            torch.ones(2),
            ValueError,
            "`member_losses` should be a floating-point tensor, got dtype torch.int64.",
        ),
        (
            torch.ones(2),
            torch.tensor([1.0, float("inf")]),
            ValueError,
            "`nonmember_losses` contains NaN or infinite values.",
        ),
        ([0.1, 0.2], torch.ones(2), TypeError, "`member_losses` should be a torch.Tensor of shape [N], got list."),
        (
            torch.tensor([-0.5, -2.0]),
            torch.ones(2),
            ValueError,
            "`member_losses` should hold losses (>= 0), got a minimum of -2. Did you pass log-likelihoods "
            "(negative losses)? Negate them.",
        ),
        (torch.ones(2), torch.tensor([0.3, -0.01]), ValueError, "`nonmember_losses` should hold losses (>= 0)"),
    ],
)
def test_loss_mia_auc_errors(members, nonmembers, error, match):
    with pytest.raises(error, match=re.escape(match)):
        loss_mia_auc(members, nonmembers)


# ------------------------------------------------------------------------------------------------------------------
# split_accuracy
# ------------------------------------------------------------------------------------------------------------------


def test_split_accuracy_matches_sklearn_for_logits_and_probs():
    gen = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(257, 5, generator=gen), torch.randint(5, (257,), generator=gen)
    want = 100.0 * accuracy_score(targets.numpy(), logits.argmax(-1).numpy())
    assert split_accuracy(logits, targets) == pytest.approx(want, abs=1e-12)
    assert split_accuracy(logits.softmax(-1), targets) == pytest.approx(want, abs=1e-12)
    assert split_accuracy(torch.eye(3), torch.arange(3)) == 100.0


@pytest.mark.parametrize(
    ("scores", "targets", "error", "match"),
    [
        (
            torch.zeros(4),
            torch.zeros(4, dtype=torch.long),
            ValueError,
            "`logits_or_probs` should be 2-D with shape [N, C], got shape (4,).",
        ),
        (
            torch.zeros(4, 3),
            torch.zeros(3, dtype=torch.long),
            ValueError,
            "`targets` should be 1-D with 4 entries to match `logits_or_probs` of shape (4, 3), got shape (3,).",
        ),
        (torch.zeros(4, 3), torch.zeros(4), ValueError, "`targets` should be an integer tensor of class indices"),
        (
            torch.zeros(0, 3),
            torch.zeros(0, dtype=torch.long),
            ValueError,
            "`logits_or_probs` should contain at least one sample, got N=0.",
        ),
        (
            torch.zeros(2, 3),
            torch.tensor([0, 3]),
            ValueError,
            "`targets` should be class indices in [0, 2] for 3 classes, got values in [0, 3].",
        ),
        ("logits", torch.zeros(2, dtype=torch.long), TypeError, "`logits_or_probs` should be a torch.Tensor"),
        (torch.zeros(2, 3), [0, 1], TypeError, "`targets` should be a torch.Tensor of shape [N], got list."),
    ],
)
def test_split_accuracy_errors(scores, targets, error, match):
    with pytest.raises(error, match=re.escape(match)):
        split_accuracy(scores, targets)
