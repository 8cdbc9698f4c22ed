"""The forget/retain DataModule: a deletion request turned into training and evaluation loaders."""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from lightning_unlearn._errors import check_choice
from lightning_unlearn.datamodules._content import UnhashableSample, dataset_digests
from lightning_unlearn.datamodules.loaders import ResumableDataLoader
from lightning_unlearn.datamodules.request import DeletionRequest, _examples, as_indices, resolve_request
from lightning_unlearn.privacy import (
    fingerprints_match,
    key_id,
    parse_fingerprint,
    redact_config,
    request_from_file,
    request_key,
    short_fingerprint,
)

CombineMode = Literal["min_size", "max_size_cycle", "max_size"]
_MODES = {
    "min_size": "an epoch ends with the shorter set (usually the forget set: one pass over it, "
    "paired with fresh random retain batches)",
    "max_size_cycle": "an epoch ends with the longer set; the shorter one is cycled",
    "max_size": "an epoch ends with the longer set; the shorter one yields None when exhausted",
}
TrainOn = Literal["forget_retain", "retain", "all"]
_TRAIN_ON = {
    "forget_retain": "paired {'forget': ..., 'retain': ...} batches for unlearning",
    "retain": "plain batches of the retain set (train the oracle)",
    "all": "plain batches of forget + retain (train the original model)",
}
EVAL_SPLITS = ("forget", "retain", "test", "holdout")


class ForgetRetainDataModule(pl.LightningDataModule):
    """Forget / retain / holdout / test splits from a dataset and a deletion request.

    Give either ``train`` plus exactly one request (``forget_indices``, ``forget_ids``,
    ``forget_class``, ``forget_predicate`` or ``forget_fraction``; the first two also by reference,
    as ``forget_indices_file``/``forget_ids_file``), or explicit ``forget`` and ``retain`` datasets.
    Training batches are ``{"forget": b_f, "retain": b_r}`` from a
    :class:`~lightning.pytorch.utilities.combined_loader.CombinedLoader`; evaluation loaders come
    in the order of :attr:`eval_splits` (``forget``, ``retain``, ``test``, ``holdout``).

    Shuffling uses a seeded :class:`~torch.utils.data.distributed.DistributedSampler` whose order
    depends only on ``(seed, epoch)``, and the training loaders are
    :class:`~lightning_unlearn.datamodules.loaders.ResumableDataLoader`: runs are reproducible, a run resumed
    from a checkpoint written mid-epoch reads exactly the batches the interrupted run had not read yet, and each
    DDP rank gets its own shard.

    The request never reaches what a run writes: hyperparameters saved with ``save_hyperparameters``
    (by a subclass, or by LightningCLI), and with them ``hparams.yaml``, the loggers and checkpoints,
    hold ``"<redacted: ...>"`` instead of indices, ids or the seed of ``forget_fraction``
    (:func:`~lightning_unlearn.privacy.redact_config`); checkpoints record only the request's keyed
    fingerprint (:attr:`DeletionRequest.fingerprint`).

    Args:
        train: The full training dataset the original model was trained on.
        test: Held-out test data (test accuracy; the non-members of the MIA-efficacy attack).
        forget_indices: Request: indices into ``train`` to forget (ints; integral floats such as ``3.0`` pass,
            ``3.5`` is refused), or a boolean mask of length ``len(train)`` that is ``True`` for the samples to
            forget. In a config prefer ``forget_indices_file``: a config with the indices inline is redacted when
            saved.
        forget_indices_file: Request by reference: a file the user controls holding the indices
            (``.txt``: separated by whitespace, commas or newlines, ``#`` comments; ``.json``: a list;
            ``.npy``: a 1-D array). The config names the file, not the samples.
        forget_ids: Request: sample ids to forget (needs ``sample_ids`` or ``train.sample_ids``).
        forget_ids_file: Request by reference: a file of sample ids (``.txt``: one per line; ``.json``: a list).
        sample_ids: One id per training sample, for ``forget_ids``.
        forget_class: Request: one class label (or several) to forget entirely: a Python, numpy or torch integer,
            or an integral float such as ``3.0``.
        forget_predicate: Request: forget every sample ``s`` of ``train`` with ``forget_predicate(s)`` true.
        forget_fraction: Request: forget a seeded random fraction of ``train`` (e.g. 0.1).
        forget: Explicit forget dataset (instead of ``train`` + request).
        retain: Explicit retain dataset; with ``train`` + ``retain_indices`` it is derived instead.
        retain_indices: Explicit retain indices into ``train`` (default: every index not forgotten), or a boolean
            mask of length ``len(train)``, like ``forget_indices``. Must not overlap the forget indices.
        check_overlap: With explicit ``forget`` and ``retain`` datasets, refuse samples that both hold. When both
            datasets have ``sample_ids``, ids are compared; for two ``Subset`` s of one dataset, indices; otherwise
            the samples' content is hashed (every sample of both sets is read once: a 60,000-sample
            ``TensorDataset`` takes well under a second, but a dataset that decodes images from disk takes as long
            as one pass over it, and random transforms make equal samples differ). ``False`` skips the content
            hashing (ids and indices are still compared).
        holdout: Non-member data for membership inference; default: a ``holdout_fraction`` split of
            ``test``, or ``test`` itself when that fraction is 0.
        holdout_fraction: Fraction of ``test`` set aside as the holdout (the rest stays test).
        num_classes: Label-space size, to validate ``forget_class`` (default: labels present).
        batch_size: Forget batch size (and retain batch size unless ``retain_batch_size`` is set).
        retain_batch_size: Retain batch size.
        eval_batch_size: Batch size of evaluation loaders.
        mode: How forget and retain batches are paired (see ``CombinedLoader``); ``"min_size"`` makes
            an epoch one pass over the (smaller) forget set.
        train_on: ``"forget_retain"`` (paired batches), ``"retain"`` or ``"all"`` (plain batches, to
            train the oracle or the original with an ordinary LightningModule).
        max_eval_samples: Evaluate on at most this many samples of each split (seeded subset);
            ``None`` evaluates everything.
        num_workers: DataLoader workers.
        pin_memory: DataLoader ``pin_memory``.
        collate_fn: DataLoader ``collate_fn`` of every loader (e.g. a tokenizing collator for text);
            ``None`` is PyTorch's default collation.
        seed: Seed of the request (``forget_fraction``), splits and shuffling. With ``forget_fraction`` the
            seed (with the dataset size) regenerates every forgotten index: it is redacted from saved
            configs and hyperparameters, and the default 0 is public, so pick your own for real requests.
    """

    def __init__(
        self,
        train: Dataset | None = None,
        test: Dataset | None = None,
        *,
        forget_indices: Sequence[int] | None = None,
        forget_indices_file: str | os.PathLike | None = None,
        forget_ids: Sequence[Hashable] | None = None,
        forget_ids_file: str | os.PathLike | None = None,
        sample_ids: Sequence[Hashable] | None = None,
        forget_class: int | list[int] | None = None,
        forget_predicate: Callable[[Any], bool] | None = None,
        forget_fraction: float | None = None,
        forget: Dataset | None = None,
        retain: Dataset | None = None,
        retain_indices: Sequence[int] | None = None,
        check_overlap: bool = True,
        holdout: Dataset | None = None,
        holdout_fraction: float = 0.0,
        num_classes: int | None = None,
        batch_size: int = 64,
        retain_batch_size: int | None = None,
        eval_batch_size: int = 512,
        mode: CombineMode = "min_size",
        train_on: TrainOn = "forget_retain",
        max_eval_samples: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"`collate_fn` should be a callable on a list of samples or None, got {collate_fn!r}.")
        check_choice("mode", mode, _MODES)
        check_choice("train_on", train_on, _TRAIN_ON)
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` should be a positive int, got {value!r}.")
        if retain_batch_size is not None and retain_batch_size < 1:
            raise ValueError(f"`retain_batch_size` should be a positive int or None, got {retain_batch_size!r}.")
        if not 0.0 <= holdout_fraction < 1.0:
            raise ValueError(f"`holdout_fraction` should lie in [0, 1), got {holdout_fraction!r}.")
        if max_eval_samples is not None and max_eval_samples < 1:
            raise ValueError(f"`max_eval_samples` should be a positive int or None, got {max_eval_samples!r}.")
        self.batch_size = batch_size
        self.retain_batch_size = retain_batch_size or batch_size
        self.eval_batch_size = eval_batch_size
        self.mode = mode
        self.train_on = train_on
        self.max_eval_samples = max_eval_samples
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.collate_fn = collate_fn
        self.seed = seed
        self.request: DeletionRequest | None = None
        forget_indices = request_from_file("forget_indices", forget_indices, forget_indices_file)
        forget_ids = request_from_file("forget_ids", forget_ids, forget_ids_file)

        has_request = any(v is not None for v in (forget_indices, forget_ids, forget_class, forget_predicate, forget_fraction))
        if forget is not None or (retain is not None and train is None):
            if has_request or train is not None:
                raise ValueError("Give either `train` with a deletion request, or explicit `forget` and `retain` datasets, not both.")
            if forget is None or retain is None:
                raise ValueError("With explicit datasets both `forget` and `retain` are needed.")
            if len(forget) == 0:  # type: ignore[arg-type]
                raise ValueError("The `forget` dataset is empty; there is nothing to unlearn.")
            if len(retain) == 0:  # type: ignore[arg-type]
                raise ValueError("The `retain` dataset is empty; nothing would be left to retain.")
            _check_subset_overlap(forget, retain, check_content=check_overlap)
            self.forget_set, self.retain_set = forget, retain
            self.all_set: Dataset = ConcatDataset([forget, retain])
        else:
            if train is None:
                raise ValueError("Give `train` with a deletion request, or explicit `forget` and `retain` datasets.")
            if retain is not None:
                raise ValueError("With `train`, give the retain part as `retain_indices`, not a `retain` dataset.")
            self.request = resolve_request(
                train,
                forget_indices=forget_indices,
                forget_ids=forget_ids,
                sample_ids=sample_ids,
                forget_class=forget_class,
                forget_predicate=forget_predicate,
                forget_fraction=forget_fraction,
                num_classes=num_classes,
                seed=seed,
            )
            forget_idx = list(self.request.indices)
            if retain_indices is None:
                forget_mask = torch.zeros(len(train), dtype=torch.bool)  # type: ignore[arg-type]
                forget_mask[forget_idx] = True
                retain_idx = torch.nonzero(~forget_mask).flatten().tolist()
            else:
                n = len(train)  # type: ignore[arg-type]
                retain_idx = sorted(set(as_indices("retain_indices", retain_indices, n)))
                bad = [i for i in retain_idx if i < 0 or i >= n]
                if bad:
                    raise ValueError(f"`retain_indices` should lie in [0, {n - 1}]; {len(bad)} are out of range, e.g. {_examples(bad)}.")
                overlap = sorted(set(retain_idx) & set(forget_idx))
                if overlap:
                    raise ValueError(
                        f"The forget and retain sets overlap in {len(overlap)} samples (e.g. indices {_examples(overlap)}); "
                        "a sample cannot be both forgotten and retained."
                    )
                if not retain_idx:
                    raise ValueError("`retain_indices` is empty; nothing would be left to retain.")
            self.forget_set = Subset(train, forget_idx)
            self.retain_set = Subset(train, retain_idx)
            # In the training set's own order, so the original's data order does not depend on the request.
            self.all_set = Subset(train, sorted(forget_idx + retain_idx))

        self.test_set = test
        self.holdout_set = holdout
        if holdout is None and test is not None and holdout_fraction > 0:
            g = torch.Generator().manual_seed(seed + 1)
            perm = torch.randperm(len(test), generator=g).tolist()  # type: ignore[arg-type]
            k = int(round(holdout_fraction * len(perm)))
            if k == 0 or k == len(perm):
                raise ValueError(f"`holdout_fraction`={holdout_fraction} leaves an empty holdout or test split of {len(perm)} samples.")
            self.holdout_set = Subset(test, sorted(perm[:k]))
            self.test_set = Subset(test, sorted(perm[k:]))

    # ------------------------------------------------------------------ sizes and names
    @property
    def eval_splits(self) -> list[str]:
        """Names of the evaluation loaders, in the order ``val_dataloader`` returns them."""
        names = ["forget", "retain"]
        if self.test_set is not None:
            names.append("test")
        if self.holdout_set is not None:
            names.append("holdout")
        return names

    def sizes(self) -> dict[str, int]:
        sets = {"forget": self.forget_set, "retain": self.retain_set, "test": self.test_set, "holdout": self.holdout_set}
        return {k: len(v) for k, v in sets.items() if v is not None}  # type: ignore[arg-type]

    # ------------------------------------------------------------------ loaders
    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    def _train_sampler(self, dataset: Dataset, seed: int) -> DistributedSampler:
        """The training loaders' sampler: this rank's shard, in an order that depends only on ``(seed, epoch)``."""
        world, rank = self._rank()
        return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)

    def _shuffled(self, dataset: Dataset, batch_size: int, seed: int) -> DataLoader:
        sampler = self._train_sampler(dataset, seed)
        return ResumableDataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            generator=_own_generator(seed),
        )

    def forget_dataloader(self, shuffle: bool = True) -> DataLoader:
        if shuffle:
            return self._shuffled(self.forget_set, self.batch_size, self.seed)
        return self._eval_loader(self.forget_set, limit=False)

    def retain_dataloader(self, shuffle: bool = True) -> DataLoader:
        if shuffle:
            return self._shuffled(self.retain_set, self.retain_batch_size, self.seed + 1)
        return self._eval_loader(self.retain_set, limit=False)

    def train_dataloader(self) -> CombinedLoader | DataLoader:
        if self.train_on == "retain":
            return self._shuffled(self.retain_set, self.retain_batch_size, self.seed)
        if self.train_on == "all":
            return self._shuffled(self.all_set, self.batch_size, self.seed)
        return CombinedLoader({"forget": self.forget_dataloader(), "retain": self.retain_dataloader()}, mode=self.mode)

    def _eval_loader(self, dataset: Dataset, salt: int = 0, limit: bool = True) -> DataLoader:
        """An unshuffled loader; ``limit`` applies ``max_eval_samples`` (evaluation only, never mask building)."""
        if limit and self.max_eval_samples is not None and len(dataset) > self.max_eval_samples:  # type: ignore[arg-type]
            g = torch.Generator().manual_seed(self.seed + 100 + salt)
            keep = sorted(torch.randperm(len(dataset), generator=g)[: self.max_eval_samples].tolist())  # type: ignore[arg-type]
            dataset = Subset(dataset, keep)
        return DataLoader(
            dataset,
            batch_size=self.eval_batch_size,
            shuffle=False,
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            generator=_own_generator(self.seed + 100 + salt),
        )

    def eval_dataloaders(self) -> dict[str, DataLoader]:
        """Named evaluation loaders, ``{"forget": ..., "retain": ..., "test": ..., "holdout": ...}``."""
        sets = {"forget": self.forget_set, "retain": self.retain_set, "test": self.test_set, "holdout": self.holdout_set}
        return {name: self._eval_loader(sets[name], salt=i) for i, name in enumerate(EVAL_SPLITS) if name in self.eval_splits}

    def val_dataloader(self) -> list[DataLoader]:
        return list(self.eval_dataloaders().values())

    def test_dataloader(self) -> list[DataLoader]:
        return list(self.eval_dataloaders().values())

    # ------------------------------------------------------------------ checkpointing
    #: Subclasses that *generate* their data (fictitious authors, Wikipedia passages) set ``fingerprint`` (a hash
    #: of the examples) and ``settings`` (what generated them), and name the data in ``data_name``: a checkpoint
    #: then records them, and resuming it on other data fails.
    fingerprint: str | None = None
    settings: dict[str, Any] | None = None
    data_name: str = "data"

    def save_hyperparameters(self, *args: Any, ignore: Sequence[str] | str | None = None, frame: Any = None, logger: bool = True) -> None:
        """Lightning's ``save_hyperparameters``, with the request redacted (:func:`~lightning_unlearn.privacy.redact_config`):
        ``hparams``, ``hparams_initial`` and with them the loggers' ``hparams.yaml`` and the checkpoints'
        ``datamodule_hyper_parameters`` never hold the forget indices, ids or the seed of ``forget_fraction``."""
        if frame is None:
            frame = inspect.currentframe().f_back  # type: ignore[union-attr]  # the caller's arguments, as Lightning reads them
        super().save_hyperparameters(*args, ignore=ignore, frame=frame, logger=logger)
        request = getattr(self, "request", None)
        for name in ("_hparams", "_hparams_initial"):
            hparams = getattr(self, name, None)
            if hparams is not None:
                redacted = redact_config(dict(hparams), request)
                hparams.clear()
                hparams.update(redacted)

    def state_dict(self) -> dict[str, Any]:
        state = {"fingerprint": self.request.fingerprint if self.request else None, "sizes": self.sizes()}
        if self.fingerprint is not None:
            state.update({"data_fingerprint": self.fingerprint, "settings": dict(self.settings or {})})
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("fingerprint")
        if saved is not None and self.request is not None:
            parsed = parse_fingerprint(saved)
            if parsed is not None and parsed[0] != key_id(request_key()):
                raise ValueError(
                    f"The checkpoint's deletion request was fingerprinted with another request key (key id {parsed[0]}; this "
                    f"run's key id is {key_id(request_key())}): set LIGHTNING_UNLEARN_REQUEST_KEY or "
                    "LIGHTNING_UNLEARN_REQUEST_KEY_FILE to the key the checkpoint was made with."
                )
            if not fingerprints_match(saved, self.request.indices, self.request.dataset_size):
                raise ValueError(
                    "The checkpoint was made for a different deletion request (fingerprint "
                    f"{short_fingerprint(saved)} vs {short_fingerprint(self.request.fingerprint)}); resuming would mix two requests."
                )
        saved = state_dict.get("data_fingerprint")
        if saved is not None and self.fingerprint is not None and saved != self.fingerprint:
            raise ValueError(
                f"The checkpoint was made for different {self.data_name} (fingerprint {saved[:12]}… vs {self.fingerprint[:12]}…, "
                f"settings {state_dict.get('settings')} vs {self.settings}); resuming would mix two datasets."
            )


def _own_generator(seed: int) -> torch.Generator:
    """A loader's own generator: creating its iterator (which draws the workers' base seed) then leaves the global
    random state alone, so evaluation passes and resumed runs do not shift the training's dropout and random labels."""
    return torch.Generator().manual_seed(seed)


def _check_subset_overlap(forget: Dataset, retain: Dataset, check_content: bool = True) -> None:
    """Explicit forget and retain datasets must not share samples: compared by ``sample_ids`` when both have them,
    by index for two ``Subset`` s of one dataset, else (``check_content``) by a hash of each sample's content."""
    same_parent = isinstance(forget, Subset) and isinstance(retain, Subset) and forget.dataset is retain.dataset
    if same_parent:
        overlap = sorted(set(map(int, forget.indices)) & set(map(int, retain.indices)))
        if overlap:
            raise ValueError(
                f"The forget and retain sets overlap in {len(overlap)} samples (e.g. indices {_examples(overlap)}); "
                "a sample cannot be both forgotten and retained."
            )
    f_ids, r_ids = getattr(forget, "sample_ids", None), getattr(retain, "sample_ids", None)
    if f_ids is not None and r_ids is not None:
        overlap = sorted(set(f_ids) & set(r_ids), key=str)
        if overlap:
            raise ValueError(
                f"The forget and retain sets overlap in {len(overlap)} samples (e.g. ids {_examples(overlap)}); "
                "a sample cannot be both forgotten and retained."
            )
        return
    if same_parent or not check_content:
        return
    try:
        forget_digests = dataset_digests(forget)
        retain_digests = dataset_digests(retain)
    except UnhashableSample as err:
        warnings.warn(
            f"The forget and retain sets were not checked for shared samples: a sample holds a {err}, whose content "
            "cannot be hashed. Give both datasets `sample_ids` to have them compared, or pass `check_overlap=False` "
            "to silence this warning.",
            stacklevel=3,
        )
        return
    first: dict[bytes, int] = {}
    for i, d in enumerate(forget_digests):
        first.setdefault(d, i)
    pairs = [(first[d], j) for j, d in enumerate(retain_digests) if d in first]
    if pairs:
        shown = [f"forget[{i}] == retain[{j}]" for i, j in pairs]
        raise ValueError(
            f"The forget and retain sets overlap: {len(pairs)} retain samples have the same content as a forget sample "
            f"(e.g. {_examples(shown, 3)}); a sample cannot be both forgotten and retained. Remove them from one set, "
            "give both datasets `sample_ids` to compare ids instead of content, or pass `check_overlap=False` to skip "
            "the content check."
        )
