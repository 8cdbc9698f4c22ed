"""Deletion requests: every kind of request, every way a request can be wrong, the fingerprint."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from lightning_unlearn.datamodules import DeletionRequest, LabeledTensorDataset, dataset_targets, resolve_request

N = 20  # samples 0..19, label i % 4


def _dataset() -> LabeledTensorDataset:
    x = torch.arange(N, dtype=torch.float32)[:, None]
    return LabeledTensorDataset(x, torch.arange(N) % 4)


class _PairList(Dataset):
    """(input, label) pairs with no ``targets`` attribute: labels must be read one by one."""

    def __init__(self, labels: list[int]) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return torch.tensor([float(i)]), self.labels[i]


class _WithIds(_PairList):
    def __init__(self, labels: list[int], ids: list[str]) -> None:
        super().__init__(labels)
        self.sample_ids = ids


# ---------------------------------------------------------------------------------- request kinds
def test_indices_are_sorted_and_deduplicated():
    req = resolve_request(_dataset(), forget_indices=[7, 1, 1, 3])
    assert req.indices == (1, 3, 7)
    assert req.kind == "forget_indices"
    assert "1 duplicates dropped" in req.description
    assert len(req) == 3 and req.dataset_size == N


def test_indices_accept_tensors_and_numpy():
    a = resolve_request(_dataset(), forget_indices=torch.tensor([4, 2]))
    b = resolve_request(_dataset(), forget_indices=np.array([2, 4]))
    assert a.indices == b.indices == (2, 4)


@pytest.mark.parametrize(
    "mask",
    [
        pytest.param(lambda m: m, id="bool-tensor"),
        pytest.param(lambda m: m.numpy(), id="bool-ndarray"),
        pytest.param(lambda m: m.tolist(), id="bool-list"),
        pytest.param(lambda m: [np.bool_(v) for v in m.tolist()], id="numpy-bools"),
    ],
)
def test_a_boolean_mask_selects_its_true_positions(mask):
    # Read as indices, a mask of 20 booleans was the indices {0, 1} with "18 duplicates dropped".
    m = torch.zeros(N, dtype=torch.bool)
    m[[2, 5, 17]] = True
    req = resolve_request(_dataset(), forget_indices=mask(m))
    assert req.indices == (2, 5, 17)
    assert req.description == "3 indices (boolean mask)"


def test_a_boolean_mask_of_the_wrong_length_is_refused():
    with pytest.raises(
        ValueError,
        match=r"`forget_indices` is a boolean mask of length 12, but a mask needs one entry per training sample \(20\)",
    ):
        resolve_request(_dataset(), forget_indices=torch.ones(12, dtype=torch.bool))


def test_booleans_mixed_with_indices_are_refused():
    with pytest.raises(TypeError, match=r"`forget_indices` mixes booleans and numbers \(1 of 2"):
        resolve_request(_dataset(), forget_indices=[True, 3])


def test_integral_float_indices_are_accepted():
    req = resolve_request(_dataset(), forget_indices=np.array([3.0, 7.0]))
    assert req.indices == (3, 7)
    assert resolve_request(_dataset(), forget_indices=[np.int32(4), torch.tensor(2), 9.0]).indices == (2, 4, 9)


@pytest.mark.parametrize(
    "indices",
    [
        pytest.param([3.5, 4], id="list"),
        pytest.param(torch.tensor([1.0, 3.5]), id="tensor"),
        pytest.param(np.array([3.5]), id="ndarray"),
        pytest.param([float("nan")], id="nan"),
    ],
)
def test_fractional_indices_are_refused_not_truncated(indices):
    with pytest.raises(
        ValueError, match=r"`forget_indices` should be integer indices or a boolean mask of length 20; 1 are not whole numbers"
    ):
        resolve_request(_dataset(), forget_indices=indices)


@pytest.mark.parametrize(
    ("indices", "match"),
    [
        pytest.param(3, r"`forget_indices` should be integer indices or a boolean mask of length 20, got int 3", id="scalar"),
        pytest.param("12", r"got str '12'", id="string"),
        pytest.param(["a", 1], r"1 entries are not numbers, e.g. \[str 'a'\]", id="strings"),
        pytest.param(torch.zeros(2, 2, dtype=torch.long), r"\(1-D\), got an array of shape \(2, 2\)", id="2d"),
    ],
)
def test_indices_of_the_wrong_type_or_shape(indices, match):
    with pytest.raises((TypeError, ValueError), match=match):
        resolve_request(_dataset(), forget_indices=indices)


def test_sample_ids_argument():
    ids = [f"s{i}" for i in range(N)]
    req = resolve_request(_dataset(), forget_ids=["s5", "s0", "s5"], sample_ids=ids)
    assert req.indices == (0, 5)
    assert req.kind == "forget_ids"


def test_sample_ids_attribute_of_the_dataset():
    ds = _WithIds([0, 1, 0, 1], ["a", "b", "c", "d"])
    assert resolve_request(ds, forget_ids=["d", "b"]).indices == (1, 3)


def test_one_class():
    req = resolve_request(_dataset(), forget_class=2)
    assert req.indices == tuple(i for i in range(N) if i % 4 == 2)
    assert req.description == "class 2"


def test_several_classes():
    req = resolve_request(_dataset(), forget_class=[0, 3])
    assert req.indices == tuple(i for i in range(N) if i % 4 in (0, 3))
    assert req.description == "classes [0, 3]"


@pytest.mark.parametrize(
    "label",
    [
        np.int64(3),
        np.int32(3),
        torch.tensor(3),
        np.array(3),
        3.0,
        np.float32(3.0),
        [np.int64(3)],
        torch.tensor([3]),
        np.array([3.0]),
    ],
    ids=["np.int64", "np.int32", "torch-scalar", "0-d-array", "float", "np.float32", "list-np.int64", "tensor", "float-array"],
)
def test_class_labels_of_any_integer_type(label):
    # np.int64(3) and 3.0 raised "object is not iterable".
    req = resolve_request(_dataset(), forget_class=label)
    assert req.indices == tuple(i for i in range(N) if i % 4 == 3)
    assert req.description == "class 3"


@pytest.mark.parametrize(
    ("label", "error", "match"),
    [
        pytest.param(
            2.5,
            ValueError,
            r"`forget_class` should be an integer class label or a list of them; 1 are not whole numbers, e.g. \[2.5\]",
            id="fraction",
        ),
        pytest.param([1, 2.5], ValueError, r"1 are not whole numbers, e.g. \[2.5\]", id="fraction-in-list"),
        pytest.param(
            True, TypeError, r"`forget_class` should be an integer class label or a list of them, got bool True", id="bool"
        ),
        pytest.param("3", TypeError, r"got str '3'", id="string"),
    ],
)
def test_class_labels_that_are_not_integers(label, error, match):
    with pytest.raises(error, match=match):
        resolve_request(_dataset(), forget_class=label)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: TensorDataset(torch.zeros(8, 1), torch.tensor([0, 1, 2, 1, 0, 1, 2, 1])), id="tensor-dataset"),
        pytest.param(lambda: _PairList([0, 1, 2, 1, 0, 1, 2, 1]), id="pairs-without-targets"),
        pytest.param(
            lambda: Subset(LabeledTensorDataset(torch.zeros(10, 1), torch.tensor([9, 9, 0, 1, 2, 1, 0, 1, 2, 1])), range(2, 10)),
            id="subset",
        ),
    ],
)
def test_class_request_reads_labels_from_any_dataset(make):
    req = resolve_request(make(), forget_class=1)
    assert req.indices == (1, 3, 5, 7)


def test_class_request_on_unlabelled_samples():
    class Unlabelled(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.zeros(2)

    with pytest.raises(ValueError, match="`forget_class` needs labelled samples"):
        resolve_request(Unlabelled(), forget_class=0)


def test_predicate():
    def is_large(sample) -> bool:
        return float(sample[0]) >= 15

    req = resolve_request(_dataset(), forget_predicate=is_large)
    assert req.indices == (15, 16, 17, 18, 19)
    assert req.kind == "forget_predicate"
    assert "is_large" in req.description


def test_fraction_is_seeded():
    a = resolve_request(_dataset(), forget_fraction=0.25, seed=3)
    b = resolve_request(_dataset(), forget_fraction=0.25, seed=3)
    c = resolve_request(_dataset(), forget_fraction=0.25, seed=4)
    assert len(a) == 5  # round(0.25 * 20)
    assert a.indices == b.indices
    assert a.indices != c.indices
    assert list(a.indices) == sorted(a.indices)
    assert a.description == "random 25.0% of the training set"  # never the seed: it regenerates the indices


# ---------------------------------------------------------------------------------- bad requests
@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"forget_indices": []}, id="no-indices"),
        pytest.param({"forget_predicate": lambda s: False}, id="predicate-matches-nothing"),
        pytest.param({"forget_fraction": 0.01}, id="fraction-rounds-to-zero"),
        pytest.param({"forget_class": [], "num_classes": 4}, id="no-classes"),
    ],
)
def test_empty_forget_set(kwargs):
    with pytest.raises(ValueError, match="selects no samples out of 20; the forget set would be empty"):
        resolve_request(_dataset(), **kwargs)


def test_absent_but_valid_class_selects_nothing():
    # class 5 exists in a 6-class label space but has no sample in this dataset
    with pytest.raises(ValueError, match="selects no samples"):
        resolve_request(_dataset(), forget_class=5, num_classes=6)


def test_indices_out_of_range():
    with pytest.raises(ValueError, match=r"`forget_indices` should lie in \[0, 19\] .* 2 are out of range, e.g. \[-1, 20\]"):
        resolve_request(_dataset(), forget_indices=[0, -1, 20])


def test_unknown_class():
    with pytest.raises(ValueError, match=r"`forget_class` \[7\] does not exist; the dataset's classes are \[0, 1, 2, 3\]"):
        resolve_request(_dataset(), forget_class=7)
    with pytest.raises(ValueError, match=r"`forget_class` \[4\] does not exist; the dataset's classes are \[0, 1, 2, 3\]"):
        resolve_request(_dataset(), forget_class=[1, 4], num_classes=4)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"forget_indices": list(range(N))}, id="indices"),
        pytest.param({"forget_class": [0, 1, 2, 3]}, id="classes"),
        pytest.param({"forget_predicate": lambda s: True}, id="predicate"),
        pytest.param({"forget_fraction": 0.99}, id="fraction-rounds-to-all"),
    ],
)
def test_whole_dataset(kwargs):
    with pytest.raises(ValueError, match="selects all 20 samples; nothing would be left to retain"):
        resolve_request(_dataset(), **kwargs)


def test_more_than_one_kind():
    with pytest.raises(ValueError, match=r"Give exactly one deletion request .* got \['forget_indices', 'forget_class'\]"):
        resolve_request(_dataset(), forget_indices=[1], forget_class=0)


def test_no_request():
    with pytest.raises(ValueError, match="Give exactly one deletion request .* got none"):
        resolve_request(_dataset())


def test_missing_sample_ids():
    with pytest.raises(ValueError, match="`forget_ids` needs sample ids"):
        resolve_request(_dataset(), forget_ids=["a"])


def test_unknown_sample_ids():
    ids = [f"s{i}" for i in range(N)]
    with pytest.raises(ValueError, match=r"2 of `forget_ids` are not in the dataset, e.g. \[x, y\]"):
        resolve_request(_dataset(), forget_ids=["s1", "x", "y"], sample_ids=ids)


def test_sample_ids_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"`sample_ids` should have one id per sample \(20\), got 3"):
        resolve_request(_dataset(), forget_ids=["a"], sample_ids=["a", "b", "c"])


def test_repeated_sample_ids():
    ids = [f"s{i}" for i in range(N - 2)] + ["s0", "s1"]
    with pytest.raises(ValueError, match="`sample_ids` should be unique; 2 are repeated"):
        resolve_request(_dataset(), forget_ids=["s3"], sample_ids=ids)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1])
def test_fraction_out_of_bounds(fraction):
    with pytest.raises(ValueError, match=r"`forget_fraction` should lie in \(0, 1\)"):
        resolve_request(_dataset(), forget_fraction=fraction)


def test_empty_dataset():
    empty = LabeledTensorDataset(torch.zeros(0, 1), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="The training dataset is empty"):
        resolve_request(empty, forget_indices=[0])


# ---------------------------------------------------------------------------------- fingerprint
def test_fingerprint_closed_form(monkeypatch: pytest.MonkeyPatch):
    """HMAC-SHA256 keyed by the request key, over a domain label, n, k and the sorted indices as int64."""
    monkeypatch.setenv("LIGHTNING_UNLEARN_REQUEST_KEY", "k" * 32)
    req = resolve_request(_dataset(), forget_indices=[3, 1])
    message = b"lightning_unlearn/deletion-request/v1\x00n=20;k=2;" + np.array([1, 3], dtype="<i8").tobytes()
    key_id = hmac.new(b"k" * 32, b"lightning_unlearn/request-key-id/v1", hashlib.sha256).hexdigest()[:8]
    assert req.fingerprint == f"hmac-sha256:{key_id}:{hmac.new(b'k' * 32, message, hashlib.sha256).hexdigest()}"
    assert hashlib.sha256(b"n=20;" + np.array([1, 3], dtype=np.int64).tobytes()).hexdigest() not in req.fingerprint


def test_fingerprint_is_stable_and_identifies_the_samples():
    a = resolve_request(_dataset(), forget_class=2)
    b = resolve_request(_dataset(), forget_class=2)
    same_samples = resolve_request(_dataset(), forget_indices=list(a.indices))
    other = resolve_request(_dataset(), forget_class=1)
    other_size = resolve_request(LabeledTensorDataset(torch.zeros(N + 1, 1), torch.arange(N + 1) % 4), forget_class=2)
    assert a.fingerprint == b.fingerprint == same_samples.fingerprint
    assert len({a.fingerprint, other.fingerprint, other_size.fingerprint}) == 3
    assert len(a.fingerprint.rsplit(":", 1)[1]) == 64


def test_request_is_immutable():
    req = resolve_request(_dataset(), forget_indices=[1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.indices = (2,)  # type: ignore[misc]
    assert isinstance(req, DeletionRequest)


# ---------------------------------------------------------------------------------- labels
def test_dataset_targets_paths():
    labels = torch.tensor([2, 0, 1, 1])
    assert torch.equal(dataset_targets(LabeledTensorDataset(torch.zeros(4, 1), labels)), labels)
    assert torch.equal(dataset_targets(TensorDataset(torch.zeros(4, 1), labels)), labels)
    assert torch.equal(dataset_targets(Subset(TensorDataset(torch.zeros(4, 1), labels), [3, 0])), torch.tensor([1, 2]))
    assert torch.equal(dataset_targets(_PairList([2, 0, 1, 1])), labels)
