"""``ResumableDataLoader``: its position in an epoch is saved and restored, and skipped batches are never loaded."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from lightning_unlearn import ResumableDataLoader


class CountingDataset(Dataset):
    """``range(n)`` as tensors, counting ``__getitem__`` calls."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.reads = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        self.reads += 1
        return torch.tensor(i)


def loader(dataset: Dataset, epoch: int = 0) -> ResumableDataLoader:
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=3)
    sampler.set_epoch(epoch)
    return ResumableDataLoader(dataset, batch_size=4, sampler=sampler)


def test_a_restored_loader_continues_the_epoch_where_the_saved_one_stopped():
    dataset = CountingDataset(22)  # 6 batches, the last one of 2
    full = [b.tolist() for b in loader(dataset, epoch=2)]
    interrupted = loader(dataset, epoch=2)
    iterator = iter(interrupted)
    seen = [next(iterator).tolist() for _ in range(3)]
    state = interrupted.state_dict()
    assert state == {"epoch": 2, "batches": 3}

    dataset.reads = 0
    resumed = loader(dataset, epoch=2)
    resumed.load_state_dict(state)
    rest = [b.tolist() for b in resumed]
    assert seen + rest == full
    assert dataset.reads == 22 - 12  # the three skipped batches were skipped as indices, never read
    assert resumed.state_dict() == {"epoch": 2, "batches": 6}
    assert [b.tolist() for b in resumed] == full  # only the resumed epoch starts late


def test_a_state_from_another_epoch_or_a_finished_epoch_starts_at_the_beginning():
    dataset = CountingDataset(22)
    full = [b.tolist() for b in loader(dataset, epoch=1)]
    for state in ({"epoch": 0, "batches": 3}, {"epoch": 1, "batches": 6}):
        resumed = loader(dataset)
        resumed.load_state_dict(state)
        resumed.sampler.set_epoch(1)  # as Lightning does when the epoch starts
        assert [b.tolist() for b in resumed] == full


def test_the_epoch_is_read_when_iteration_starts_not_when_the_iterator_is_made():
    """Lightning makes the epoch's iterator before it calls ``set_epoch``; the saved position must still apply."""
    dataset = CountingDataset(22)
    expected = [b.tolist() for b in loader(dataset, epoch=4)][2:]
    resumed = loader(dataset, epoch=0)
    resumed.load_state_dict({"epoch": 4, "batches": 2})
    iterator = iter(resumed)
    resumed.sampler.set_epoch(4)
    assert [b.tolist() for b in iterator] == expected


@pytest.mark.parametrize("batches", [-1, 2.5, "3", True])
def test_a_corrupt_state_is_refused(batches):
    with pytest.raises(ValueError, match=r"`batches` should be an int >= 0, got"):
        loader(CountingDataset(8)).load_state_dict({"epoch": 0, "batches": batches})


def test_restoring_a_state_sets_the_epoch_to_read_next():
    """Worker processes draw index batches as the iterator is made, before Lightning sets the resumed epoch: the
    restored state sets it (the saved epoch mid-way, the next one after a finished epoch)."""
    for state, expected in (({"epoch": 3, "batches": 2}, 3), ({"epoch": 3, "batches": 6}, 4)):
        resumed = loader(CountingDataset(22))
        resumed.load_state_dict(state)
        assert resumed.sampler.epoch == expected
