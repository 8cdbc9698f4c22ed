"""Seeded batch streams over a dataset, for the plain training loop of :class:`ContinualUnlearner`.

A ``TensorDataset`` (or a ``Subset`` of one) is indexed directly, which is much faster than a
``DataLoader`` collating samples one by one; any other map-style dataset is collated with
``torch.utils.data.default_collate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import Dataset, Subset, TensorDataset, default_collate


def _tensor_view(dataset: Dataset) -> tuple[torch.Tensor, ...] | None:
    """The tensors behind ``dataset`` when it is a ``TensorDataset`` or a (nested) ``Subset`` of one."""
    if isinstance(dataset, TensorDataset):
        return tuple(dataset.tensors)
    if isinstance(dataset, Subset):
        inner = _tensor_view(dataset.dataset)
        if inner is None:
            return None
        idx = torch.as_tensor(list(dataset.indices), dtype=torch.long)
        return tuple(t[idx] for t in inner)
    return None


class BatchStream:
    """Endless reshuffled batches of ``dataset`` (a new seeded permutation each pass).

    Args:
        dataset: A map-style dataset of ``(inputs, targets, ...)`` samples.
        batch_size: Samples per batch; the last batch of a pass may be smaller.
        seed: Seed of the shuffling.
        device: Where batches are moved.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, device: torch.device) -> None:
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.device = device
        self.tensors = _tensor_view(dataset)
        self.size = len(self.tensors[0]) if self.tensors is not None else len(dataset)  # type: ignore[arg-type]
        if self.size == 0:
            raise ValueError("A deletion request needs a non-empty dataset, got one with 0 samples.")
        self.generator = torch.Generator().manual_seed(int(seed))
        self.passes = 0  # completed passes over the dataset
        self._order: torch.Tensor | None = None
        self._pos = 0

    @property
    def batches_per_pass(self) -> int:
        return -(-self.size // self.batch_size)

    def _take(self, idx: torch.Tensor) -> Any:
        if self.tensors is not None:
            batch: Any = tuple(t[idx] for t in self.tensors)
        else:
            batch = default_collate([self.dataset[int(i)] for i in idx])
        return move_data_to_device(batch, self.device)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._order is None or self._pos >= self.size:
            if self._order is not None:
                self.passes += 1
            self._order = torch.randperm(self.size, generator=self.generator)
            self._pos = 0
        idx = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return self._take(idx)

    def fixed_order(self) -> _FixedOrder:
        """A re-iterable, lazy pass in dataset order (what a method's ``setup`` gets as its loader)."""
        return _FixedOrder(self)


class _FixedOrder:
    def __init__(self, stream: BatchStream) -> None:
        self.stream = stream

    def __len__(self) -> int:
        return self.stream.batches_per_pass

    def __iter__(self) -> Iterator[Any]:
        s = self.stream
        for i in range(0, s.size, s.batch_size):
            yield s._take(torch.arange(i, min(i + s.batch_size, s.size)))
