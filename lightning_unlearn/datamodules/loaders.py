"""A ``DataLoader`` that Lightning can resume in the middle of an epoch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader


class _Resuming:
    """The loader's batch sampler, started late when the loader holds a saved position for the epoch being read.

    Whether to skip is decided when iteration starts, not when the iterator is created: Lightning creates the
    epoch's iterator before it sets the sampler's epoch, and samplers draw their order lazily too.
    """

    def __init__(self, loader: ResumableDataLoader, batches: Any) -> None:
        self.loader = loader
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        skip = self.loader._take_skip()
        for i, indices in enumerate(self.batches):
            if i >= skip:
                yield indices

    def __len__(self) -> int:
        return len(self.batches)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` with ``state_dict``/``load_state_dict``: its position in the current epoch.

    Lightning saves the state of a stateful train loader in every checkpoint (``loops.fit_loop.state_dict
    .combined_loader``) and restores it before the resumed epoch iterates, so a run resumed from a checkpoint
    written mid-epoch reads exactly the batches the interrupted run had not read yet, in the same order. The order
    itself must depend only on the sampler's epoch (a seeded ``DistributedSampler``, as in
    :class:`~lightning_unlearn.ForgetRetainDataModule`); a loader whose state comes from another epoch starts that
    epoch from its beginning. Skipped batches are skipped as index lists: no sample is loaded or collated.

    The state counts the batches handed out since the epoch's iterator was created, which is the number of batches
    the training loop consumed: Lightning does not prefetch from loaders whose length is known.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._served = 0
        self._epoch_of_state: int | None = None
        self._saved: dict[str, Any] | None = None

    def _sampler_epoch(self) -> int | None:
        return getattr(self.sampler, "epoch", None)

    @property
    def _index_sampler(self) -> Any:  # what DataLoader's iterators draw index batches from
        return _Resuming(self, super()._index_sampler)

    def _take_skip(self) -> int:
        """Called as an epoch's reading starts: the batches to skip (the saved position, if it is this epoch's)."""
        saved, self._saved = self._saved, None
        epoch = self._sampler_epoch()
        skip = 0
        if saved is not None and saved["epoch"] == epoch and saved["batches"] < len(self):
            skip = saved["batches"]  # a finished epoch resumes at the next one's start
        self._served, self._epoch_of_state = skip, epoch
        return skip

    def __iter__(self) -> Iterator[Any]:
        return self._count(super().__iter__())

    def _count(self, iterator: Iterator[Any]) -> Iterator[Any]:
        for batch in iterator:
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self._epoch_of_state, "batches": self._served}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        batches = state_dict.get("batches", 0)
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 0:
            raise ValueError(f"A saved loader state's `batches` should be an int >= 0, got {batches!r}.")
        epoch = state_dict.get("epoch")
        self._saved = {"epoch": epoch, "batches": batches}
        if isinstance(epoch, int) and hasattr(self.sampler, "set_epoch"):
            # The epoch to read next, set now: Lightning creates the resumed epoch's iterator before it sets the
            # epoch, and worker processes draw their first index batches as the iterator is created.
            self.sampler.set_epoch(epoch if batches < len(self) else epoch + 1)
