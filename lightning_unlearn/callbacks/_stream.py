"""A resumable, rank-aware stream of batches over a dataset, for callbacks that bring their own data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset
from torch.utils.data._utils.collate import default_collate
from torch.utils.data.distributed import DistributedSampler


class BatchStream:
    """Endless shuffled batches over ``dataset`` whose position is a plain ``(epoch, position)`` pair.

    The order of epoch ``e`` depends only on ``(seed, e)`` (a ``DistributedSampler`` with
    ``set_epoch``), so :meth:`state_dict`/:meth:`load_state_dict` resume exactly where a run stopped,
    and under DDP each rank reads its own shard.
    """

    def __init__(self, data: Dataset | DataLoader, batch_size: int, seed: int = 0) -> None:
        if isinstance(data, DataLoader):
            self.dataset = data.dataset
            self.batch_size = data.batch_size or batch_size
            self.collate: Callable[[list[Any]], Any] = data.collate_fn
        else:
            self.dataset = data
            self.batch_size = batch_size
            self.collate = default_collate
        if len(self.dataset) == 0:  # type: ignore[arg-type]
            raise ValueError("The forget set is empty; there is nothing to unlearn.")
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self.world, self.rank = 1, 0
        self._order: list[int] | None = None

    def distribute(self, world: int, rank: int) -> None:
        self.world, self.rank = world, rank
        self._order = None

    def _indices(self) -> list[int]:
        if self._order is None:
            sampler = DistributedSampler(self.dataset, num_replicas=self.world, rank=self.rank, shuffle=True, seed=self.seed)
            sampler.set_epoch(self.epoch)
            self._order = list(sampler)
        return self._order

    def loader(self) -> DataLoader:
        """The whole dataset in a fixed order (unsharded), for a method's preparation and for scoring."""
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False, collate_fn=self.collate)

    def batches_per_epoch(self) -> int:
        n = len(self._indices())
        return (n + self.batch_size - 1) // self.batch_size

    def next(self) -> Any:
        if self.position >= self.batches_per_epoch():
            self.epoch += 1
            self.position = 0
            self._order = None
        order = self._indices()
        chunk = order[self.position * self.batch_size : (self.position + 1) * self.batch_size]
        self.position += 1
        return self.collate([self.dataset[i] for i in chunk])

    def epoch_batches(self) -> Iterator[Any]:
        """Yield the remaining batches of the current epoch one at a time (the position advances as each
        is consumed), then move to the next epoch once the epoch is exhausted."""
        while self.position < self.batches_per_epoch():
            yield self.next()
        self.epoch += 1
        self.position = 0
        self._order = None

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state.get("epoch", 0))
        self.position = int(state.get("position", 0))
        self._order = None
