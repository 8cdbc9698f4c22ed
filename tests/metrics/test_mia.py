"""Tests for the MIAEfficacy and LossMIAAUC Metric classes: parity with the functional twins, errors, DDP states."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torchmetrics import Metric

from lightning_unlearn.metrics import LossMIAAUC, MIAEfficacy, loss_mia_auc, mia_efficacy

from ._reference import member_like, nonmember_like, overlapping, reference_mia_efficacy

SPLITS = ("retain", "test", "forget")


def _data(n_retain: int = 240, n_test: int = 170, n_forget: int = 90):
    return {
        "retain": overlapping(n_retain, 1, 3.0),
        "test": overlapping(n_test, 2, 1.5),
        "forget": overlapping(n_forget, 3, 2.2),
    }


def _batches(probs: torch.Tensor, targets: torch.Tensor, sizes: list[int]):
    start = 0
    for size in sizes:
        yield probs[start : start + size], targets[start : start + size]
        start += size
    if start < len(targets):
        yield probs[start:], targets[start:]


def _update_interleaved(metric: MIAEfficacy, data: dict, sizes=(17, 1, 40, 0, 33)) -> None:
    """Feed every split in uneven batches, interleaving the splits (as a val loop over three loaders would)."""
    streams = {s: list(_batches(*data[s], list(sizes))) for s in SPLITS}
    while any(streams.values()):
        for split in ("forget", "retain", "test"):
            if streams[split]:
                metric.update(*streams[split].pop(0), split=split)


def _functional(data: dict, **kwargs) -> float:
    return mia_efficacy(*data["retain"], *data["test"], *data["forget"], **kwargs)


def _half(data: dict, part: int) -> dict:
    out = {}
    for split, (probs, targets) in data.items():
        mid = len(targets) // 2
        out[split] = (probs[:mid], targets[:mid]) if part == 0 else (probs[mid:], targets[mid:])
    return out


# ------------------------------------------------------------------------------------------------------------------
# MIAEfficacy
# ------------------------------------------------------------------------------------------------------------------


def test_mia_efficacy_metric_attributes():
    assert MIAEfficacy.higher_is_better is True
    assert MIAEfficacy.is_differentiable is False
    assert MIAEfficacy.full_state_update is False
    metric = MIAEfficacy()
    assert metric.kind == ("entropy", "confidence") and metric.attack == "logistic"
    assert metric.max_samples_per_side == 5000 and metric.seed == 0
    assert all(metric._reductions[f"{s}_features"].__name__ == "dim_zero_cat" for s in SPLITS)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"attack": "svc"},
        {"kind": "confidence", "attack": "svc"},
        {"kind": ["modified_entropy", "correctness", "entropy"]},
        {"max_samples_per_side": 60, "seed": 5},
        {"max_samples_per_side": 60, "seed": 5, "attack": "svc"},
    ],
)
def test_mia_efficacy_metric_equals_functional_over_batches(kwargs):
    data = _data()
    metric = MIAEfficacy(**kwargs)
    _update_interleaved(metric, data)
    value = metric.compute()
    want = _functional(data, **kwargs)
    assert value.ndim == 0 and value.dtype == torch.float32
    assert value == torch.tensor(want)
    assert 0.0 < want < 100.0
    kinds = kwargs.get("kind", ("entropy", "confidence"))
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    ref_kwargs = {k: v for k, v in kwargs.items() if k != "kind"}
    assert want == reference_mia_efficacy(data["retain"], data["test"], data["forget"], kinds, **ref_kwargs)


def test_mia_efficacy_metric_salun_svc_equals_functional_in_update_order():
    data = _data(n_retain=240, n_test=100)
    metric = MIAEfficacy(attack="salun_svc")
    assert metric.kind == ("confidence",) and metric.max_samples_per_side is None
    for probs, targets in _batches(*data["retain"], [17, 1, 40, 0, 33]):  # retain in order, in uneven batches
        metric.update(probs, targets, split="retain")
    for split in ("test", "forget"):
        metric.update(*data[split], split=split)
    want = _functional(data, attack="salun_svc")
    assert metric.compute() == torch.tensor(want)
    assert 0.0 < want < 100.0


def test_mia_efficacy_metric_separable_toy_case():
    metric = MIAEfficacy(attack="svc")
    metric.update(*member_like(200, 1), split="retain")
    metric.update(*nonmember_like(200, 2), split="test")
    metric.update(*member_like(100, 3), split="forget")
    assert metric.compute() <= 5.0
    metric.reset()
    metric.update(*member_like(200, 1), split="retain")
    metric.update(*nonmember_like(200, 2), split="test")
    metric.update(*nonmember_like(100, 4), split="forget")
    assert metric.compute() >= 95.0


def test_mia_efficacy_forward_only_updates_and_reset_clears():
    data = _data(40, 40, 20)
    metric = MIAEfficacy()
    for split in SPLITS:
        assert metric(*data[split], split=split) is None
    assert metric.compute() == torch.tensor(_functional(data))
    metric.reset()
    with (
        pytest.warns(UserWarning, match="called before the ``update``"),
        pytest.raises(ValueError, match=re.escape("got 0 'retain' samples")),
    ):
        metric.compute()


def test_mia_efficacy_float64_state_dtype():
    data = _data(60, 60, 30)
    metric = MIAEfficacy().set_dtype(torch.float64)
    _update_interleaved(metric, data)
    assert metric.retain_features[0].dtype == torch.float64
    assert 0.0 <= metric.compute().item() <= 100.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"attack": "SVM"}, ValueError, "`attack` should be one of ['logistic', 'salun_svc', 'svc'], got 'SVM'."),
        (
            {"kind": ["entropy", "Confidence"]},
            ValueError,
            "`kind` should be one of ['confidence', 'correctness', 'entropy', 'modified_entropy'], got 'Confidence'.",
        ),
        ({"kind": ()}, ValueError, "`kind` should name at least one feature from"),
        ({"max_samples_per_side": -1}, ValueError, "`max_samples_per_side` should be >= 1, got -1."),
        ({"seed": None}, TypeError, "`seed` should be an int, got NoneType None."),
    ],
)
def test_mia_efficacy_init_errors(kwargs, error, match):
    with pytest.raises(error, match=re.escape(match)):
        MIAEfficacy(**kwargs)


@pytest.mark.parametrize(
    ("probs", "targets", "split", "match"),
    [
        (
            torch.full((2, 2), 0.5),
            torch.tensor([0, 1]),
            "val",
            "`split` should be one of ['forget', 'retain', 'test'], got 'val'.",
        ),
        (
            torch.full((2, 2), 0.5),
            torch.tensor([0, 1]),
            "Forget",
            "`split` should be one of ['forget', 'retain', 'test'], got 'Forget'.",
        ),
        (
            torch.full((2,), 0.5),
            torch.tensor([0, 1]),
            "retain",
            "`probs` should be 2-D with shape [N, C], got shape (2,).",
        ),
        (
            torch.full((2, 2, 1), 0.5),
            torch.tensor([0, 1]),
            "retain",
            "`probs` should be 2-D with shape [N, C], got shape (2, 2, 1).",
        ),
        (
            torch.tensor([[2.0, 1.0], [0.1, 0.3]]),
            torch.tensor([0, 1]),
            "test",
            "`probs` should lie in [0, 1], got values in [0.1, 2]. Did you pass logits? Apply `logits.softmax(dim=-1)` "
            "first.",
        ),
        (
            torch.tensor([[0.5, 0.5], [0.1, 0.3]]),
            torch.tensor([0, 1]),
            "test",
            "Rows of `probs` should sum to 1 (tolerance 0.001), but row 1 sums to 0.4. Did you pass logits? "
            "Apply `logits.softmax(dim=-1)` first.",
        ),
        (
            torch.full((2, 2), 0.5),
            torch.tensor([0, 2]),
            "forget",
            "`targets` should be class indices in [0, 1] for `probs` with 2 columns, got values in [0, 2].",
        ),
        (
            torch.full((2, 2), 0.5),
            torch.tensor([0.0, 1.0]),
            "forget",
            "`targets` should be an integer tensor of class indices, got dtype torch.float32.",
        ),
    ],
)
def test_mia_efficacy_update_errors(probs, targets, split, match):
    metric = MIAEfficacy()
    with pytest.raises(ValueError, match=re.escape(match)):
        metric.update(probs, targets, split=split)
    assert all(len(getattr(metric, f"{s}_features")) == 0 for s in SPLITS)  # nothing half-stored


@pytest.mark.parametrize("missing", SPLITS)
def test_mia_efficacy_compute_needs_all_splits(missing):
    data = _data(20, 20, 10)
    metric = MIAEfficacy()
    for split in SPLITS:
        if split != missing:
            metric.update(*data[split], split=split)
    metric.update(data[missing][0][:0], data[missing][1][:0], split=missing)  # an empty batch does not count
    with pytest.raises(
        ValueError, match=re.escape(f"MIAEfficacy needs samples from all three splits; got 0 {missing!r} samples.")
    ):
        metric.compute()


# ------------------------------------------------------------------------------------------------------------------
# DDP-style state reduction
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attack", ["logistic", "svc"])
def test_mia_efficacy_merge_state_equals_single_metric(attack):
    data = _data()
    kwargs = {"attack": attack, "max_samples_per_side": 80, "seed": 2}
    full = MIAEfficacy(**kwargs)
    _update_interleaved(full, data)
    rank0, rank1 = MIAEfficacy(**kwargs), MIAEfficacy(**kwargs)
    _update_interleaved(rank0, _half(data, 0))
    _update_interleaved(rank1, _half(data, 1), sizes=(5, 50))
    rank0.merge_state(rank1)  # torchmetrics puts rank1's rows first: the result must not depend on that
    assert rank0.compute() == full.compute() == torch.tensor(_functional(data, **kwargs))


def test_mia_efficacy_merge_state_with_a_rank_that_saw_no_forget_samples():
    data = _data()
    full, rank0, rank1 = MIAEfficacy(), MIAEfficacy(), MIAEfficacy()
    _update_interleaved(full, data)
    _update_interleaved(rank0, {**_half(data, 0), "forget": data["forget"]})
    rank1_data = _half(data, 1)
    rank1.update(*rank1_data["retain"], split="retain")
    rank1.update(*rank1_data["test"], split="test")
    rank1.merge_state(rank0)
    assert rank1.compute() == full.compute()


def _fake_all_gather(remote: Metric):
    """An all-gather for a simulated 2-rank world whose other rank holds ``remote``'s states.

    Passed as ``dist_sync_fn`` (with ``distributed_available_fn=lambda: True``), it makes ``compute`` run
    torchmetrics' real sync code path. The remote states are prepared like torchmetrics prepares the local ones
    (list states pre-concatenated, an empty list replaced by ``torch.tensor([], dtype=metric.dtype)``).
    ``gather_all_tensors`` needs the same number of dimensions and dtype on every rank, which is asserted here.
    """
    remote_states = []
    for attr in remote._reductions:
        state = getattr(remote, attr)
        remote_states.append(torch.cat(state) if state else torch.tensor([], dtype=remote.dtype))
    calls = iter(remote_states)

    def all_gather(tensor: torch.Tensor, group=None) -> list[torch.Tensor]:
        other = next(calls)
        assert tensor.ndim == other.ndim == 1
        assert tensor.dtype == other.dtype == remote.dtype
        return [tensor, other]

    return all_gather


@pytest.mark.parametrize("empty_split", [None, "forget", "test"])
def test_mia_efficacy_simulated_all_gather_sync(empty_split):
    data = _data()
    full = MIAEfficacy(attack="svc")
    _update_interleaved(full, data)
    rank0 = MIAEfficacy(attack="svc")
    part0, part1 = _half(data, 0), _half(data, 1)
    if empty_split is not None:  # this rank's shard of one split is empty: rank 0 holds all of it
        part0[empty_split], part1[empty_split] = data[empty_split], (data[empty_split][0][:0], data[empty_split][1][:0])
    _update_interleaved(rank0, part0)
    rank1 = MIAEfficacy(attack="svc", dist_sync_fn=_fake_all_gather(rank0), distributed_available_fn=lambda: True)
    _update_interleaved(rank1, part1)
    assert rank1.compute() == full.compute()
    assert isinstance(rank1.retain_features, list)  # local state restored after compute


# ------------------------------------------------------------------------------------------------------------------
# LossMIAAUC
# ------------------------------------------------------------------------------------------------------------------


def _losses(seed: int = 0, n_members: int = 130, n_nonmembers: int = 170):
    gen = torch.Generator().manual_seed(seed)
    members = torch.randint(0, 20, (n_members,), generator=gen).float() / 10  # coarse values: many ties
    nonmembers = torch.randint(3, 25, (n_nonmembers,), generator=gen).float() / 10
    return members, nonmembers


def test_loss_mia_auc_metric_attributes():
    assert LossMIAAUC.higher_is_better is False
    assert LossMIAAUC.is_differentiable is False
    assert LossMIAAUC.full_state_update is False


@pytest.mark.parametrize("seed", range(3))
def test_loss_mia_auc_metric_equals_functional_and_sklearn(seed):
    members, nonmembers = _losses(seed)
    metric = LossMIAAUC()
    for chunk in members.split(37):
        metric.update(chunk, is_member=True)
    for chunk in nonmembers.split(50):
        metric.update(chunk, is_member=False)
    want = loss_mia_auc(members, nonmembers)
    sk = roc_auc_score(np.r_[np.ones(len(members)), np.zeros(len(nonmembers))], -torch.cat([members, nonmembers]))
    assert metric.compute() == torch.tensor(want)
    assert want == pytest.approx(sk, abs=1e-12)


def test_loss_mia_auc_metric_refuses_negative_losses():
    metric = LossMIAAUC()
    with pytest.raises(ValueError, match=re.escape("`losses` should hold losses (>= 0), got a minimum of -1.5.")):
        metric.update(torch.tensor([-0.2, -1.5]), is_member=True)


def test_loss_mia_auc_metric_per_sample_membership_mask():
    members, nonmembers = _losses(1)
    losses = torch.cat([members, nonmembers])
    mask = torch.cat([torch.ones(len(members), dtype=torch.bool), torch.zeros(len(nonmembers), dtype=torch.bool)])
    perm = torch.randperm(len(losses), generator=torch.Generator().manual_seed(0))
    losses, mask = losses[perm], mask[perm]
    by_bool, by_int = LossMIAAUC(), LossMIAAUC()
    for chunk, m in zip(losses.split(64), mask.split(64), strict=True):
        by_bool.update(chunk, is_member=m)
        by_int.update(chunk, is_member=m.long())
    want = torch.tensor(loss_mia_auc(members, nonmembers))
    assert by_bool.compute() == want
    assert by_int.compute() == want
    assert by_bool(losses[:3], mask[:3]) is None  # forward only updates


def test_loss_mia_auc_metric_merge_state_and_simulated_sync():
    members, nonmembers = _losses(2)
    full = LossMIAAUC()
    full.update(members, True)
    full.update(nonmembers, False)
    rank0 = LossMIAAUC()
    rank0.update(members[:50], True)
    rank0.update(nonmembers, False)
    rank1 = LossMIAAUC(dist_sync_fn=_fake_all_gather(rank0), distributed_available_fn=lambda: True)
    rank1.update(members[50:], True)  # this rank saw no non-members
    assert rank1.compute() == full.compute()  # syncs through the fake all-gather
    rank0.merge_state(rank1)
    assert rank0.compute() == full.compute()


@pytest.mark.parametrize(
    ("losses", "is_member", "match"),
    [
        (torch.ones(2, 2), True, "`losses` should be 1-D per-sample losses of shape [N], got shape (2, 2)."),
        (torch.ones(3, dtype=torch.long), True, "`losses` should be a floating-point tensor, got dtype torch.int64."),
        (torch.tensor([1.0, float("nan")]), True, "`losses` contains NaN or infinite values."),
        (torch.ones(3), 1, "`is_member` should be a bool or a boolean tensor of shape (3,), got int."),
        (torch.ones(3), "yes", "`is_member` should be a bool or a boolean tensor of shape (3,), got str."),
        (
            torch.ones(3),
            torch.ones(2, dtype=torch.bool),
            "`is_member` should have the same shape as `losses` (3,), got (2,).",
        ),
        (
            torch.ones(3),
            torch.ones(3),
            "`is_member` should be a boolean or 0/1 integer tensor, got dtype torch.float32.",
        ),
        (torch.ones(3), torch.tensor([0, 1, 2]), "`is_member` should contain only 0 and 1, got values [0, 1, 2]."),
    ],
)
def test_loss_mia_auc_update_errors(losses, is_member, match):
    metric = LossMIAAUC()
    with pytest.raises(ValueError, match=re.escape(match)):
        metric.update(losses, is_member)


@pytest.mark.parametrize(("is_member", "missing"), [(True, "non-member"), (False, "member")])
def test_loss_mia_auc_compute_needs_both_sides(is_member, missing):
    metric = LossMIAAUC()
    metric.update(torch.rand(5), is_member)
    with pytest.raises(
        ValueError,
        match=re.escape(f"LossMIAAUC needs at least one member and one non-member loss; got 0 {missing} losses."),
    ):
        metric.compute()


# ------------------------------------------------------------------------------------------------------------------
# real 2-process DDP (gloo, CPU)
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_ddp_gloo_two_processes(tmp_path):
    import torch.multiprocessing as mp

    from . import _ddp_worker

    data = _data()
    members, nonmembers = _losses(0)
    empty = (data["forget"][0][:0], data["forget"][1][:0])
    shards = [
        {**_half(data, 0), "forget": data["forget"], "losses": [(members[0::2], True), (nonmembers, False)]},
        # rank 1 saw no forget samples and no non-members: torchmetrics all-gathers empty placeholders for it
        {**_half(data, 1), "forget": empty, "losses": [(members[1::2], True)]},
    ]
    mia_kwargs = {"attack": "logistic", "max_samples_per_side": 100}
    mp.spawn(_ddp_worker.run, args=(2, str(tmp_path / "init"), str(tmp_path), shards, mia_kwargs), nprocs=2)
    want_mia = torch.tensor(_functional(data, **mia_kwargs))
    want_auc = torch.tensor(loss_mia_auc(members, nonmembers))
    for rank in range(2):
        out = torch.load(tmp_path / f"rank{rank}.pt")
        assert out["mia"] == want_mia
        assert out["auc"] == want_auc
