"""ForgetRetainDataModule: splits, loaders, reproducibility, DDP shards and every error path."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from lightning_unlearn.datamodules import EVAL_SPLITS, ForgetRetainDataModule, LabeledTensorDataset

N = 40  # sample i has input [i] and label i % 4


def _train(n: int = N) -> LabeledTensorDataset:
    return LabeledTensorDataset(torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n) % 4)


def _test(n: int = 20) -> LabeledTensorDataset:
    return LabeledTensorDataset(torch.arange(1000, 1000 + n, dtype=torch.float32)[:, None], torch.arange(n) % 4)


def _ids(dataset) -> list[int]:
    """The training-sample ids (their input value) a dataset or loader yields, in order."""
    if isinstance(dataset, DataLoader):
        return [int(v) for x, _ in dataset for v in x.flatten()]
    return [int(dataset[i][0]) for i in range(len(dataset))]


def _epoch(loader) -> list[dict]:
    iter(loader)
    return [batch for batch, _, _ in loader]


# ---------------------------------------------------------------------------------- every request kind
@pytest.mark.parametrize(
    ("kwargs", "forget"),
    [
        pytest.param({"forget_indices": [3, 1, 30]}, [1, 3, 30], id="indices"),
        pytest.param({"forget_ids": ["id7", "id2"], "sample_ids": [f"id{i}" for i in range(N)]}, [2, 7], id="ids"),
        pytest.param({"forget_class": 1}, list(range(1, N, 4)), id="class"),
        pytest.param({"forget_class": [0, 2]}, [i for i in range(N) if i % 4 in (0, 2)], id="classes"),
        pytest.param({"forget_predicate": lambda s: float(s[0]) < 5}, [0, 1, 2, 3, 4], id="predicate"),
    ],
)
def test_request_kinds_split_train_into_forget_and_retain(kwargs, forget):
    dm = ForgetRetainDataModule(_train(), **kwargs)
    assert _ids(dm.forget_set) == forget
    assert _ids(dm.retain_set) == [i for i in range(N) if i not in forget]
    assert dm.sizes() == {"forget": len(forget), "retain": N - len(forget)}
    assert dm.request is not None and dm.request.indices == tuple(forget)


def test_fraction_request():
    dm = ForgetRetainDataModule(_train(), forget_fraction=0.25, seed=5)
    forget, retain = set(_ids(dm.forget_set)), set(_ids(dm.retain_set))
    assert len(forget) == 10 and forget.isdisjoint(retain) and forget | retain == set(range(N))


def test_explicit_retain_indices():
    dm = ForgetRetainDataModule(_train(), forget_indices=[0, 1], retain_indices=[5, 3, 3, 9])
    assert _ids(dm.forget_set) == [0, 1]
    assert _ids(dm.retain_set) == [3, 5, 9]


def test_boolean_masks_for_forget_and_retain_indices():
    # A retain mask was read as the indices {0, 1}: the retain set was two samples.
    forget = torch.zeros(N, dtype=torch.bool)
    forget[[0, 1]] = True
    retain = torch.zeros(N, dtype=torch.bool)
    retain[[3, 5, 9]] = True
    dm = ForgetRetainDataModule(_train(), forget_indices=forget, retain_indices=retain.numpy())
    assert _ids(dm.forget_set) == [0, 1]
    assert _ids(dm.retain_set) == [3, 5, 9]


@pytest.mark.parametrize(
    ("retain", "error", "match"),
    [
        pytest.param(torch.ones(10, dtype=torch.bool), ValueError, r"`retain_indices` is a boolean mask of length 10, but a mask needs one entry per training sample \(40\)", id="short-mask"),
        pytest.param([3.5, 4.0], ValueError, r"`retain_indices` should be integer indices or a boolean mask of length 40; 1 are not whole numbers, e.g. \[3.5\]", id="fraction"),
        pytest.param(5, TypeError, r"`retain_indices` should be integer indices or a boolean mask of length 40, got int 5", id="scalar"),
    ],
)
def test_bad_retain_indices(retain, error, match):
    with pytest.raises(error, match=match):
        ForgetRetainDataModule(_train(), forget_indices=[0], retain_indices=retain)


def test_integral_float_retain_indices_are_accepted():
    dm = ForgetRetainDataModule(_train(), forget_indices=[0], retain_indices=[3.0, 5.0])
    assert _ids(dm.retain_set) == [3, 5]


def test_explicit_forget_and_retain_datasets():
    base = _train()
    forget, retain = Subset(base, [0, 1, 2]), Subset(base, [10, 11])
    dm = ForgetRetainDataModule(forget=forget, retain=retain, test=_test())
    assert dm.forget_set is forget and dm.retain_set is retain
    assert dm.request is None
    assert dm.state_dict()["fingerprint"] is None
    assert dm.sizes() == {"forget": 3, "retain": 2, "test": 20}


# ---------------------------------------------------------------------------------- bad requests and arguments
def test_retain_indices_overlapping_the_forget_set():
    with pytest.raises(ValueError, match=r"overlap in 2 samples \(e.g. indices \[1, 2\]\)"):
        ForgetRetainDataModule(_train(), forget_indices=[0, 1, 2], retain_indices=[1, 2, 3])


def test_explicit_subsets_overlapping():
    base = _train()
    with pytest.raises(ValueError, match=r"overlap in 3 samples \(e.g. indices \[2, 3, 4\]\)"):
        ForgetRetainDataModule(forget=Subset(base, [0, 2, 3, 4]), retain=Subset(base, [2, 3, 4, 5]))


def test_explicit_datasets_overlapping_by_sample_id():
    forget, retain = _train(4), _train(4)
    forget.sample_ids, retain.sample_ids = ["a", "b", "c", "d"], ["d", "e", "f", "a"]
    with pytest.raises(ValueError, match=r"overlap in 2 samples \(e.g. ids \[a, d\]\)"):
        ForgetRetainDataModule(forget=forget, retain=retain)


def test_explicit_datasets_sharing_samples_by_content():
    # Two TensorDatasets cut from overlapping slices of one tensor (5 shared samples) were accepted.
    x, y = torch.randn(30, 3), torch.arange(30) % 3
    with pytest.raises(
        ValueError,
        match=r"overlap: 5 retain samples have the same content as a forget sample "
        r"\(e.g. \[forget\[5\] == retain\[0\], forget\[6\] == retain\[1\], forget\[7\] == retain\[2\], \.\.\.\]\).*"
        r"`sample_ids`.*`check_overlap=False`",
    ):
        ForgetRetainDataModule(forget=TensorDataset(x[:10], y[:10]), retain=TensorDataset(x[5:], y[5:]))


class _Samples(Dataset):
    """Samples as built by a user's own dataset: a list of whatever ``__getitem__`` returns."""

    def __init__(self, samples: list) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        return self.samples[i]


def test_content_overlap_across_dataset_types():
    # A TensorDataset (hashed from its tensors) and a user's dataset (hashed sample by sample) holding one equal
    # (tensor, label) sample; labels as Python ints and as one-element tensors hash alike.
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    forget = TensorDataset(x[:2], torch.tensor([0, 1]))
    retain = _Samples([(x[3].clone(), 1), (x[1].clone(), 1)])
    with pytest.raises(ValueError, match=r"1 retain samples have the same content as a forget sample \(e.g. \[forget\[1\] == retain\[1\]\]\)"):
        ForgetRetainDataModule(forget=forget, retain=retain)
    text = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(6)]
    with pytest.raises(ValueError, match=r"2 retain samples have the same content"):
        ForgetRetainDataModule(forget=_Samples(text[:3]), retain=_Samples(text[1:3] + text[4:]), collate_fn=list)


def test_equal_inputs_with_different_labels_or_dtypes_do_not_overlap():
    x = torch.randn(6, 3)
    dm = ForgetRetainDataModule(forget=TensorDataset(x[:3], torch.zeros(3, dtype=torch.long)), retain=TensorDataset(x, torch.ones(6, dtype=torch.long)))
    assert dm.sizes() == {"forget": 3, "retain": 6}
    dm = ForgetRetainDataModule(forget=TensorDataset(x[:3].double()), retain=TensorDataset(x))
    assert dm.sizes() == {"forget": 3, "retain": 6}


def test_check_overlap_false_skips_the_content_check():
    x, y = torch.randn(30, 3), torch.arange(30) % 3
    dm = ForgetRetainDataModule(forget=TensorDataset(x[:10], y[:10]), retain=TensorDataset(x[5:], y[5:]), check_overlap=False)
    assert dm.sizes() == {"forget": 10, "retain": 25}
    base = _train()
    with pytest.raises(ValueError, match="overlap in 1 samples"):  # indices of one parent are still compared
        ForgetRetainDataModule(forget=Subset(base, [0, 1]), retain=Subset(base, [1, 2]), check_overlap=False)


def test_sample_ids_decide_identity_over_content():
    # Equal content under different ids (e.g. the same passage in two records) is the user's declared identity.
    forget, retain = _train(4), _train(4)
    forget.sample_ids, retain.sample_ids = ["a", "b", "c", "d"], ["e", "f", "g", "h"]
    assert ForgetRetainDataModule(forget=forget, retain=retain).sizes() == {"forget": 4, "retain": 4}


def test_unhashable_samples_are_reported_not_skipped_silently():
    forget, retain = _Samples([(object(), 0)]), _Samples([(object(), 1)])
    with pytest.warns(UserWarning, match="not checked for shared samples: a sample holds a object.*`sample_ids`"):
        ForgetRetainDataModule(forget=forget, retain=retain, collate_fn=list)


def test_content_check_of_60k_samples_is_fast():
    x = torch.randint(0, 256, (60_000, 1, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (60_000,))
    start = time.perf_counter()
    ForgetRetainDataModule(forget=TensorDataset(x[:6000], y[:6000]), retain=Subset(TensorDataset(x, y), range(6000, 60_000)))
    assert time.perf_counter() - start < 10  # ~0.5 s on one free core; generous for a shared CI machine


def test_retain_indices_out_of_range():
    with pytest.raises(ValueError, match=r"`retain_indices` should lie in \[0, 39\]; 1 are out of range, e.g. \[40\]"):
        ForgetRetainDataModule(_train(), forget_indices=[0], retain_indices=[1, 40])


def test_empty_retain_indices():
    with pytest.raises(ValueError, match="`retain_indices` is empty"):
        ForgetRetainDataModule(_train(), forget_indices=[0], retain_indices=[])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"forget_indices": []}, "the forget set would be empty"),
        ({"forget_indices": [0, 99]}, "out of range"),
        ({"forget_class": 9}, r"`forget_class` \[9\] does not exist"),
        ({"forget_class": 7, "num_classes": 4}, r"does not exist; the dataset's classes are \[0, 1, 2, 3\]"),
        ({"forget_indices": list(range(N))}, "selects all 40 samples"),
        ({"forget_indices": [1], "forget_fraction": 0.1}, "Give exactly one deletion request"),
        ({"forget_ids": ["a"]}, "`forget_ids` needs sample ids"),
    ],
)
def test_bad_requests_through_the_datamodule(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ForgetRetainDataModule(_train(), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"forget": _train(2)}, "both `forget` and `retain` are needed"),
        ({"retain": _train(2)}, "both `forget` and `retain` are needed"),
        ({"forget": _train(0), "retain": _train(2)}, "The `forget` dataset is empty"),
        ({"forget": _train(2), "retain": _train(0)}, "The `retain` dataset is empty"),
        ({"train": _train(), "forget": _train(2), "retain": _train(2)}, "not both"),
        ({"forget": _train(2), "retain": _train(2), "forget_class": 0}, "not both"),
        ({"train": _train(), "retain": _train(2), "forget_class": 0}, "give the retain part as `retain_indices`"),
        ({}, "Give `train` with a deletion request"),
    ],
)
def test_bad_dataset_combinations(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ForgetRetainDataModule(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "sequential"}, r"`mode` should be one of \['max_size', 'max_size_cycle', 'min_size'\], got 'sequential'"),
        ({"train_on": "forget"}, r"`train_on` should be one of \['all', 'forget_retain', 'retain'\], got 'forget'"),
        ({"batch_size": 0}, "`batch_size` should be a positive int, got 0"),
        ({"batch_size": True}, "`batch_size` should be a positive int, got True"),
        ({"eval_batch_size": 2.5}, "`eval_batch_size` should be a positive int, got 2.5"),
        ({"retain_batch_size": 0}, "`retain_batch_size` should be a positive int or None, got 0"),
        ({"holdout_fraction": 1.0}, r"`holdout_fraction` should lie in \[0, 1\), got 1.0"),
        ({"holdout_fraction": -0.1}, r"`holdout_fraction` should lie in \[0, 1\)"),
        ({"max_eval_samples": 0}, "`max_eval_samples` should be a positive int or None, got 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ForgetRetainDataModule(_train(), forget_class=0, **kwargs)


# ---------------------------------------------------------------------------------- reproducibility
def test_same_seed_same_split_and_batch_order():
    a = ForgetRetainDataModule(_train(), forget_fraction=0.3, batch_size=4, seed=11)
    b = ForgetRetainDataModule(_train(), forget_fraction=0.3, batch_size=4, seed=11)
    assert a.request.indices == b.request.indices
    batches_a, batches_b = _epoch(a.train_dataloader()), _epoch(b.train_dataloader())
    assert len(batches_a) == len(batches_b) > 1
    for x, y in zip(batches_a, batches_b):
        for split in ("forget", "retain"):
            assert torch.equal(x[split][0], y[split][0]) and torch.equal(x[split][1], y[split][1])


def test_different_seed_different_split_and_order():
    a = ForgetRetainDataModule(_train(), forget_class=1, batch_size=4, seed=0)
    b = ForgetRetainDataModule(_train(), forget_class=1, batch_size=4, seed=1)
    assert a.request.indices == b.request.indices  # a class request does not depend on the seed
    assert _ids(a.forget_dataloader()) != _ids(b.forget_dataloader())
    assert sorted(_ids(a.forget_dataloader())) == sorted(_ids(b.forget_dataloader()))


def test_shuffled_loader_is_a_permutation():
    dm = ForgetRetainDataModule(_train(), forget_class=1, batch_size=3)
    order = _ids(dm.forget_dataloader())
    assert sorted(order) == list(range(1, N, 4)) and order != sorted(order)


@pytest.mark.parametrize("loader", ["forget_dataloader", "retain_dataloader"])
def test_epoch_changes_the_order_reproducibly(loader):
    a = getattr(ForgetRetainDataModule(_train(), forget_class=1, batch_size=4), loader)()
    b = getattr(ForgetRetainDataModule(_train(), forget_class=1, batch_size=4), loader)()
    epoch0 = _ids(a)
    a.sampler.set_epoch(1)
    b.sampler.set_epoch(1)
    epoch1 = _ids(a)
    assert epoch1 != epoch0 and sorted(epoch1) == sorted(epoch0)
    assert _ids(b) == epoch1
    a.sampler.set_epoch(0)
    assert _ids(a) == epoch0


def test_fingerprint_in_state_dict():
    a = ForgetRetainDataModule(_train(), forget_class=1)
    b = ForgetRetainDataModule(_train(), forget_class=1, seed=9, batch_size=3)
    c = ForgetRetainDataModule(_train(), forget_class=2)
    assert a.state_dict()["fingerprint"] == b.state_dict()["fingerprint"] == a.request.fingerprint
    assert a.state_dict()["fingerprint"] != c.state_dict()["fingerprint"]
    assert a.state_dict()["sizes"] == {"forget": 10, "retain": 30}


def test_resuming_with_another_request_is_refused():
    a = ForgetRetainDataModule(_train(), forget_class=1)
    c = ForgetRetainDataModule(_train(), forget_class=2)
    a.load_state_dict(ForgetRetainDataModule(_train(), forget_indices=list(a.request.indices)).state_dict())
    a.load_state_dict({})  # an older checkpoint without a fingerprint is accepted
    with pytest.raises(ValueError, match="The checkpoint was made for a different deletion request"):
        a.load_state_dict(c.state_dict())


# ---------------------------------------------------------------------------------- paired training batches
def test_paired_batches_min_size():
    dm = ForgetRetainDataModule(_train(), forget_class=1, batch_size=4, retain_batch_size=8)
    loader = dm.train_dataloader()
    assert isinstance(loader, CombinedLoader)
    batches = _epoch(loader)
    assert len(batches) == math.ceil(10 / 4)  # one pass over the forget set
    for batch in batches:
        assert set(batch) == {"forget", "retain"}
        x_r, y_r = batch["retain"]
        assert x_r.shape == (8, 1) and bool((y_r != 1).all())
        assert bool((batch["forget"][1] == 1).all())
    assert [len(b["forget"][1]) for b in batches] == [4, 4, 2]


def test_paired_batches_max_size_cycle():
    dm = ForgetRetainDataModule(_train(), forget_class=1, batch_size=4, mode="max_size_cycle")
    batches = _epoch(dm.train_dataloader())
    assert len(batches) == math.ceil(30 / 4)  # one pass over the longer retain set
    assert all(b["forget"] is not None for b in batches)
    retain_seen = [int(v) for b in batches for v in b["retain"][0].flatten()]
    assert sorted(retain_seen) == [i for i in range(N) if i % 4 != 1]


def test_paired_batches_max_size():
    dm = ForgetRetainDataModule(_train(), forget_class=1, batch_size=4, mode="max_size")
    batches = _epoch(dm.train_dataloader())
    assert len(batches) == math.ceil(30 / 4)
    assert [b["forget"] is None for b in batches] == [False] * 3 + [True] * 5


def test_train_on_retain_yields_plain_retain_batches():
    dm = ForgetRetainDataModule(_train(), forget_class=1, batch_size=16, retain_batch_size=7, train_on="retain")
    loader = dm.train_dataloader()
    assert isinstance(loader, DataLoader)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [7, 7, 7, 7, 2]
    assert sorted(_ids(loader)) == [i for i in range(N) if i % 4 != 1]


def test_train_on_all_yields_plain_batches_of_everything():
    dm = ForgetRetainDataModule(_train(), forget_class=1, batch_size=16, retain_batch_size=7, train_on="all")
    loader = dm.train_dataloader()
    assert isinstance(loader, DataLoader)
    assert [len(y) for _, y in loader] == [16, 16, 8]
    assert sorted(_ids(loader)) == list(range(N))


# ---------------------------------------------------------------------------------- DDP shards
def _on_rank(dm: ForgetRetainDataModule, rank: int, world: int = 2) -> ForgetRetainDataModule:
    dm.trainer = SimpleNamespace(world_size=world, global_rank=rank)  # what `_rank()` reads
    return dm


def test_ranks_get_disjoint_forget_shards_covering_the_forget_set():
    shards = [_ids(_on_rank(ForgetRetainDataModule(_train(), forget_class=1, batch_size=2), r).forget_dataloader()) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert set(shards[0]).isdisjoint(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(1, N, 4))


def test_ranks_share_the_retain_set_and_paired_length():
    dms = [_on_rank(ForgetRetainDataModule(_train(), forget_class=1, batch_size=2, retain_batch_size=3), r) for r in (0, 1)]
    retain = [_ids(dm.retain_dataloader()) for dm in dms]
    assert set(retain[0]).isdisjoint(retain[1])
    assert sorted(retain[0] + retain[1]) == [i for i in range(N) if i % 4 != 1]
    assert [len(_epoch(dm.train_dataloader())) for dm in dms] == [3, 3]  # ceil(5 / 2) on each rank


def test_uneven_forget_set_is_padded_so_ranks_stay_in_step():
    # 5 forget samples on 2 ranks: DistributedSampler repeats one so both ranks take 3 steps
    shards = [_ids(_on_rank(ForgetRetainDataModule(_train(), forget_indices=[0, 4, 8, 12, 16]), r).forget_dataloader()) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 3
    assert set(shards[0]) | set(shards[1]) == {0, 4, 8, 12, 16}


def test_without_a_trainer_there_is_one_rank():
    dm = ForgetRetainDataModule(_train(), forget_class=1)
    assert dm._rank() == (1, 0)
    sampler = dm.forget_dataloader().sampler
    assert sampler.num_replicas == 1 and sampler.rank == 0


# ---------------------------------------------------------------------------------- evaluation splits
def test_eval_splits_and_loaders():
    dm = ForgetRetainDataModule(_train(), _test(), forget_class=1, holdout_fraction=0.25, eval_batch_size=8)
    assert dm.eval_splits == list(EVAL_SPLITS) == ["forget", "retain", "test", "holdout"]
    loaders = dm.eval_dataloaders()
    assert list(loaders) == dm.eval_splits
    assert [len(_ids(loader)) for loader in dm.val_dataloader()] == [10, 30, 15, 5]
    assert [len(_ids(loader)) for loader in dm.test_dataloader()] == [10, 30, 15, 5]
    assert _ids(loaders["forget"]) == list(range(1, N, 4))  # evaluation is unshuffled


def test_eval_splits_without_test_or_holdout():
    assert ForgetRetainDataModule(_train(), forget_class=1).eval_splits == ["forget", "retain"]
    dm = ForgetRetainDataModule(_train(), _test(), forget_class=1)
    assert dm.eval_splits == ["forget", "retain", "test"]
    assert dm.holdout_set is None and dm.test_set is not None


def test_holdout_fraction_splits_test():
    a = ForgetRetainDataModule(_train(), _test(), forget_class=1, holdout_fraction=0.3, seed=2)
    b = ForgetRetainDataModule(_train(), _test(), forget_class=1, holdout_fraction=0.3, seed=2)
    c = ForgetRetainDataModule(_train(), _test(), forget_class=1, holdout_fraction=0.3, seed=3)
    holdout, test = _ids(a.holdout_set), _ids(a.test_set)
    assert len(holdout) == 6 and len(test) == 14
    assert set(holdout).isdisjoint(test) and sorted(holdout + test) == list(range(1000, 1020))
    assert _ids(b.holdout_set) == holdout
    assert _ids(c.holdout_set) != holdout
    assert a.sizes() == {"forget": 10, "retain": 30, "test": 14, "holdout": 6}


def test_explicit_holdout_is_kept():
    holdout = _test(5)
    dm = ForgetRetainDataModule(_train(), _test(), forget_class=1, holdout=holdout, holdout_fraction=0.5)
    assert dm.holdout_set is holdout and len(dm.test_set) == 20


def test_holdout_fraction_leaving_an_empty_split():
    with pytest.raises(ValueError, match="`holdout_fraction`=0.01 leaves an empty holdout or test split of 20 samples"):
        ForgetRetainDataModule(_train(), _test(), forget_class=1, holdout_fraction=0.01)


def test_max_eval_samples_caps_every_evaluation_split():
    a = ForgetRetainDataModule(_train(), _test(), forget_class=1, max_eval_samples=7, seed=4)
    b = ForgetRetainDataModule(_train(), _test(), forget_class=1, max_eval_samples=7, seed=4)
    sizes = {name: len(_ids(loader)) for name, loader in a.eval_dataloaders().items()}
    assert sizes == {"forget": 7, "retain": 7, "test": 7}
    for (_name, la), lb in zip(a.eval_dataloaders().items(), b.eval_dataloaders().values()):
        assert _ids(la) == _ids(lb)  # the subset is seeded
        assert _ids(la) == sorted(_ids(la))
    assert set(_ids(a.eval_dataloaders()["forget"])) <= set(range(1, N, 4))
    small = ForgetRetainDataModule(_train(), _test(), forget_class=1, max_eval_samples=15)
    assert {name: len(_ids(loader)) for name, loader in small.eval_dataloaders().items()} == {"forget": 10, "retain": 15, "test": 15}


def test_unshuffled_forget_and_retain_loaders_are_the_whole_sets():
    # used to build saliency masks: max_eval_samples limits evaluation only, never the forget data itself
    dm = ForgetRetainDataModule(_train(), forget_class=1, max_eval_samples=3, eval_batch_size=4)
    assert _ids(dm.forget_dataloader(shuffle=False)) == list(range(1, N, 4))
    assert _ids(dm.retain_dataloader(shuffle=False)) == [i for i in range(N) if i % 4 != 1]
    assert dm.forget_dataloader(shuffle=False).batch_size == 4


def test_training_the_original_does_not_depend_on_the_request():
    """``train_on="all"`` shuffles the training set in its own order: one original serves every scenario."""
    by_class = ForgetRetainDataModule(_train(), forget_class=1, train_on="all", batch_size=8, seed=3)
    by_fraction = ForgetRetainDataModule(_train(), forget_fraction=0.3, train_on="all", batch_size=8, seed=3)
    first = [b[0].flatten().tolist() for b in by_class.train_dataloader()]
    second = [b[0].flatten().tolist() for b in by_fraction.train_dataloader()]
    assert first == second
    assert sorted(x for batch in first for x in batch) == [float(i) for i in range(N)]


def test_collate_fn_reaches_every_loader():
    data = LabeledTensorDataset(torch.randn(40, 3), torch.arange(40) % 4)
    seen: list[int] = []

    def collate(samples):
        seen.append(len(samples))
        return {"n": len(samples)}

    for train_on in ("forget_retain", "retain", "all"):
        dm = ForgetRetainDataModule(data, data, forget_class=1, batch_size=5, train_on=train_on, collate_fn=collate)
        if train_on == "forget_retain":
            assert next(iter(dm.forget_dataloader())) == next(iter(dm.retain_dataloader())) == {"n": 5}
        else:
            assert next(iter(dm.train_dataloader())) == {"n": 5}
        assert all(next(iter(v)) == {"n": min(len(v.dataset), 512)} for v in dm.eval_dataloaders().values())
    with pytest.raises(TypeError, match="`collate_fn` should be a callable"):
        ForgetRetainDataModule(data, forget_class=1, collate_fn="stack")
