"""Exact evaluation metrics under DDP: leave out the samples a ``DistributedSampler`` repeats to pad its shards.

Under DDP Lightning gives every unshuffled evaluation loader a ``DistributedSampler``. When the dataset size ``n``
is not a multiple of the world size ``W``, the sampler pads the index list to the next multiple by repeating its
first indices, so some samples are scored twice (a 5-sample forget set over 2 ranks: 6 predictions, 83.3% instead
of 80.0%). The padding always sits at the *end* of the padded list, whose position ``p`` goes to rank ``p % W``;
so rank ``r``'s first ``len(range(r, n, W))`` samples are its own and the rest are repeats. :class:`PaddingTrim`
counts them off per loader and says how many samples of each batch to keep; the metrics' states then sum and
concatenate every sample exactly once over the ranks (sums of counts, not means of per-rank means).
"""

from __future__ import annotations

from typing import Any

from torch.utils.data.distributed import DistributedSampler


def real_samples(loader: Any) -> int | None:
    """How many of the samples ``loader`` yields in this process are not padding repeats; ``None`` when its sampler
    does not pad (no ``DistributedSampler``, or one with ``drop_last=True``)."""
    sampler = getattr(loader, "sampler", None)
    if not isinstance(sampler, DistributedSampler) or sampler.drop_last:
        return None
    return len(range(sampler.rank, len(sampler.dataset), sampler.num_replicas))  # type: ignore[arg-type]


class PaddingTrim:
    """Per evaluation loader, how many samples of its next batch to score (the others are padding repeats)."""

    def __init__(self) -> None:
        self._left: dict[int, int | None] = {}

    def reset(self) -> None:
        """Forget the counts (at the start of every evaluation epoch)."""
        self._left = {}

    def keep(self, loader_idx: int, loader: Any, batch_size: int) -> int | None:
        """The number of leading samples of the next ``batch_size`` samples of loader ``loader_idx`` (``loader``) to
        score; ``None``: all of them."""
        if loader_idx not in self._left:
            self._left[loader_idx] = real_samples(loader)
        left = self._left[loader_idx]
        if left is None:
            return None
        kept = min(left, batch_size)
        self._left[loader_idx] = left - kept
        return kept


def current_eval_loader(trainer: Any, dataloader_idx: int) -> Any:
    """The loader of ``trainer``'s running validation or test loop with index ``dataloader_idx`` (``None`` if unknown)."""
    loaders = trainer.test_dataloaders if trainer.testing else trainer.val_dataloaders
    if isinstance(loaders, (list, tuple)):
        return loaders[dataloader_idx] if dataloader_idx < len(loaders) else None
    if isinstance(loaders, dict):
        values = list(loaders.values())
        return values[dataloader_idx] if dataloader_idx < len(values) else None
    return loaders
