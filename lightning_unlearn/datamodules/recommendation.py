"""Recommendation data: implicit-feedback interactions as BPR triples, and a deletion request over users, items or
interactions (MovieLens-100k by default).

The protocol, and why:

* **Implicit feedback.** Every rating is a positive interaction (a user watched and rated the movie), the usual
  reading of MovieLens for top-k recommendation; ``min_rating`` keeps only ratings at or above a threshold.
* **Held-out split: leave-one-out by latest timestamp.** Each user's most recent interaction (ties broken by file
  order) is held out for evaluation; all earlier ones are training interactions. Leave-one-out is the protocol of
  NCF (He et al., WWW 2017) and most recommendation-unlearning papers on MovieLens (RecEraser, Chen et al., WWW 2022),
  it gives every user exactly one test item (Recall@k is then the hit rate of that user), and taking the *latest*
  one never asks a model to predict the past from the future. Users with a single interaction keep it for training.
* **Negative sampling.** A training triple ``(user, positive, negative)`` pairs each training interaction with an item
  the user has not interacted with *in the training data the triple belongs to*, drawn uniformly and redrawn every
  epoch from a generator seeded by ``(seed, epoch)``: the same seed gives the same triples, and a run resumed from a
  checkpoint draws the epoch's negatives again. The retain set's negatives exclude only retained interactions, so
  the oracle trained on it is exactly "trained as if the deleted data never existed" (a deleted interaction may be
  drawn as a negative, as it would be after retraining). Evaluation triples draw one fixed negative per
  interaction (seed ``seed + 7``) among the items the user never interacted with at all (train or held out), so
  "the positive outranks the negative" is a true statement about the model.
* **Deletion requests** (exactly one): ``forget_users`` (raw MovieLens user ids: all their training interactions),
  ``forget_items`` (raw item ids: every training interaction with them), ``forget_interactions`` (raw
  ``[user_id, item_id]`` pairs of training interactions), or the generic ``forget_fraction`` (a seeded random share
  of the training interactions) and ``forget_indices`` (positions in the training interactions). A deleted user's
  or item's held-out interaction leaves the test split too: the user (item) is gone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from lightning_unlearn.datamodules.forget_retain import EVAL_SPLITS, CombineMode, ForgetRetainDataModule, TrainOn
from lightning_unlearn.datamodules.movielens import MovieLens, load_movielens_100k
from lightning_unlearn.datamodules.request import DeletionRequest, _examples, _items, _whole
from lightning_unlearn.privacy import request_from_file

__all__ = ["InteractionTriples", "RecommendationDataModule", "leave_latest_out", "sample_negatives"]

#: Seed offset of the evaluation triples' fixed negatives.
_EVAL_SEED = 7


def _keys(users: Tensor, items: Tensor, num_items: int) -> Tensor:
    return users.long() * num_items + items.long()


def sample_negatives(users: Tensor, exclude: Tensor, num_items: int, generator: torch.Generator) -> Tensor:
    """One uniformly drawn item per entry of ``users`` that is not among that user's excluded items.

    ``exclude`` holds the sorted keys ``user * num_items + item`` of the excluded (positive) pairs. Draws are
    vectorised; rejected ones are redrawn until none is left, so the result depends only on ``generator``'s state.
    Every user must have at least one item that is not excluded (checked by :class:`InteractionTriples`).
    """
    negatives = torch.randint(0, num_items, users.shape, generator=generator)
    pending = torch.arange(users.shape[0])
    while pending.numel():
        keys = _keys(users[pending], negatives[pending], num_items)
        position = torch.searchsorted(exclude, keys).clamp_max(max(exclude.numel() - 1, 0))
        taken = exclude[position] == keys if exclude.numel() else torch.zeros_like(keys, dtype=torch.bool)
        pending = pending[taken]
        negatives[pending] = torch.randint(0, num_items, pending.shape, generator=generator)
    return negatives


class InteractionTriples(Dataset):
    """``{"user", "pos", "neg"}`` BPR triples (Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit
    Feedback", UAI 2009) over a list of interactions.

    Args:
        users, items: ``[N]`` user and item indices of the positive interactions.
        num_items: Size of the item catalogue (negatives are drawn from ``0..num_items-1``).
        exclude_users, exclude_items: The pairs a negative may never be (default: the interactions themselves).
        seed: Seed of the negatives.
        fixed: ``True``: one draw, whatever the epoch (evaluation); ``False``: a fresh draw for every epoch,
            seeded by ``(seed, epoch)`` (:meth:`set_epoch`, called by the training loaders' sampler).
        user_ids, item_ids: Raw ids of the indices, for :attr:`sample_ids` (``(user_id, item_id)`` pairs).
    """

    def __init__(
        self,
        users: Tensor,
        items: Tensor,
        num_items: int,
        exclude_users: Tensor | None = None,
        exclude_items: Tensor | None = None,
        seed: int = 0,
        fixed: bool = False,
        user_ids: Sequence[int] | None = None,
        item_ids: Sequence[int] | None = None,
    ) -> None:
        if users.shape != items.shape or users.dim() != 1:
            raise ValueError(f"`users` and `items` should be 1-D of one length, got shapes {tuple(users.shape)} and {tuple(items.shape)}.")
        self.users = users.long()
        self.items = items.long()
        self.num_items = int(num_items)
        if exclude_users is None or exclude_items is None:
            exclude_users, exclude_items = self.users, self.items
        # sorted unique keys (numpy's unique: torch's is much slower on a busy CPU)
        self.exclude = torch.from_numpy(np.unique(_keys(exclude_users, exclude_items, self.num_items).numpy()))
        positives = torch.bincount(torch.div(self.exclude, self.num_items, rounding_mode="floor"))
        full = torch.nonzero(positives >= self.num_items).flatten()
        if full.numel():
            raise ValueError(
                f"Users {_examples(full.tolist())} have interacted with all {self.num_items} items: no negative item "
                "can be drawn for them. Drop them from the data."
            )
        self.seed = int(seed)
        self.fixed = fixed
        self._user_ids, self._item_ids = user_ids, item_ids
        self._epoch = 0
        self._negatives: Tensor | None = None
        self._drawn_for: int | None = None

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def set_epoch(self, epoch: int) -> None:
        """Use the negatives of ``epoch`` (no-op for ``fixed`` triples)."""
        self._epoch = int(epoch)

    def negatives(self) -> Tensor:
        """``[N]`` negatives of the current epoch."""
        epoch = 0 if self.fixed else self._epoch
        if self._negatives is None or self._drawn_for != epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._negatives = sample_negatives(self.users, self.exclude, self.num_items, generator)
            self._drawn_for = epoch
        return self._negatives

    def __getitem__(self, index: int) -> dict[str, int]:
        return {"user": int(self.users[index]), "pos": int(self.items[index]), "neg": int(self.negatives()[index])}

    def __getitems__(self, indices: list[int]) -> list[dict[str, int]]:
        """A batch of samples at once (the ``DataLoader`` fetches through it): one indexing per column."""
        index = torch.as_tensor(indices, dtype=torch.long)
        columns = zip(self.users[index].tolist(), self.items[index].tolist(), self.negatives()[index].tolist())
        return [{"user": u, "pos": p, "neg": q} for u, p, q in columns]

    @property
    def sample_ids(self) -> list[tuple[int, int]] | None:
        """Raw ``(user_id, item_id)`` of every interaction (when the raw ids were given)."""
        if self._user_ids is None or self._item_ids is None:
            return None
        return [(self._user_ids[u], self._item_ids[i]) for u, i in zip(self.users.tolist(), self.items.tolist())]


def _triples_of(dataset: Dataset) -> list[InteractionTriples]:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return [dataset] if isinstance(dataset, InteractionTriples) else []


class _EpochSampler(DistributedSampler):
    """A seeded ``DistributedSampler`` that also tells the triples which epoch's negatives to serve."""

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        for triples in _triples_of(self.dataset):
            triples.set_epoch(epoch)


def leave_latest_out(users: Tensor, timestamps: Tensor) -> Tensor:
    """Boolean ``[N]``: each user's latest interaction (ties: the last in row order), for users with at least two."""
    n = users.shape[0]
    # sort by (user, timestamp, row): numpy's lexsort is stable, the last key is the primary one
    order = torch.from_numpy(np.lexsort((np.arange(n), timestamps.numpy(), users.numpy())))
    sorted_users = users[order]
    last = torch.ones(n, dtype=torch.bool)
    last[:-1] = sorted_users[1:] != sorted_users[:-1]
    counts = torch.bincount(users)
    held = torch.zeros(n, dtype=torch.bool)
    held[order[last]] = True
    return held & (counts[users] >= 2)


def _raw_ids(name: str, values: Any, known: dict[int, int], what: str) -> list[int]:
    """Raw ids (ints) of ``values`` → their indices, refusing unknown ids with examples."""
    expected = f"a list of MovieLens {what} ids"
    items = _whole(name, _items(name, values, expected), expected)
    unknown = sorted({v for v in items if v not in known})
    if unknown:
        raise ValueError(f"`{name}` names {len(unknown)} {what} ids that are not in the loaded data, e.g. {_examples(unknown)}.")
    if not items:
        raise ValueError(f"`{name}` is empty; name at least one {what} id.")
    return sorted({known[v] for v in items})


class RecommendationDataModule(ForgetRetainDataModule):
    """MovieLens-100k as forget / retain / test BPR triples for recommendation unlearning (benchmark B5).

    See the module docstring for the protocol (implicit feedback, leave-latest-out held-out split, seeded negative
    sampling, the deletion requests). Training batches are ``{"user", "pos", "neg"}`` dicts of int64 tensors
    (paired ``{"forget": ..., "retain": ...}`` for unlearning); the evaluation splits are ``forget`` (the deleted
    training interactions), ``retain`` (the others), ``test`` (the held-out interactions of what was not deleted)
    and ``holdout``, each with fixed negatives, so :class:`~lightning_unlearn.UnlearningModule` reports pairwise
    accuracy and loss-MIA AUC on them. The ``holdout`` split is, for a request by users or items, the held-out
    interactions of the deleted users (items): never trained on, they are the non-members the deleted interactions
    are told apart from in ``mia_auc`` — the same users, unlike the test split, whose users every model has trained
    on. With ``holdout_fraction`` it is that fraction of the test split instead; for other requests there is none (the
    test split stands in). The ranking
    metrics (Recall@20, NDCG@20) are :func:`lightning_unlearn.evaluation.recommendation.ranking_metrics`.

    Args:
        forget_users: Request: raw MovieLens user ids to delete (all their interactions).
        forget_items: Request: raw MovieLens item ids to delete (every interaction with them).
        forget_interactions: Request: raw ``[user_id, item_id]`` pairs, each a training interaction.
        forget_fraction: Request: a seeded random fraction of the training interactions.
        forget_indices: Request: positions in the training interactions (:attr:`train_users` / :attr:`train_items`).
        forget_users_file, forget_items_file, forget_interactions_file, forget_indices_file: The same requests by
            reference: a file the user controls (``.txt``: ids separated by whitespace, commas or newlines, ``#``
            comments, for interactions one ``user_id item_id`` pair a line; ``.json``: a list, of pairs for
            interactions; ``.npy``: a 1-D array), so that a config names the file, not the users.
        data_path: Folder of RecBole's ``ml-100k`` atomic files (default: the installed ``recbole`` wheel's).
        min_rating: Keep only ratings ``>=`` this as interactions (default: every rating).
        max_users: Keep only the first ``max_users`` users (by id): a smaller, faster subset for tests.
        batch_size, retain_batch_size, eval_batch_size, mode, train_on, max_eval_samples, holdout_fraction,
            num_workers, pin_memory, seed: as in :class:`~lightning_unlearn.ForgetRetainDataModule`.
    """

    def __init__(
        self,
        *,
        forget_users: Sequence[int] | None = None,
        forget_items: Sequence[int] | None = None,
        forget_interactions: Sequence[Sequence[int]] | None = None,
        forget_fraction: float | None = None,
        forget_indices: Sequence[int] | None = None,
        forget_users_file: str | os.PathLike | None = None,
        forget_items_file: str | os.PathLike | None = None,
        forget_interactions_file: str | os.PathLike | None = None,
        forget_indices_file: str | os.PathLike | None = None,
        data_path: str | os.PathLike | None = None,
        min_rating: float | None = None,
        max_users: int | None = None,
        batch_size: int = 1024,
        retain_batch_size: int | None = None,
        eval_batch_size: int = 4096,
        mode: CombineMode = "min_size",
        train_on: TrainOn = "forget_retain",
        max_eval_samples: int | None = None,
        holdout_fraction: float = 0.0,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
    ) -> None:
        forget_users = request_from_file("forget_users", forget_users, forget_users_file)
        forget_items = request_from_file("forget_items", forget_items, forget_items_file)
        forget_interactions = request_from_file("forget_interactions", forget_interactions, forget_interactions_file)
        if forget_interactions_file is not None and forget_interactions and not isinstance(forget_interactions[0], (list, tuple)):
            # a text or .npy file: "user_id item_id" per line, read as one flat list of ids
            if len(forget_interactions) % 2:
                raise ValueError(
                    f"`forget_interactions_file` {str(forget_interactions_file)!r} should hold [user_id, item_id] pairs (two ids a "
                    f"line, or a JSON list of pairs); it holds {len(forget_interactions)} ids, an odd number."
                )
            forget_interactions = [forget_interactions[k : k + 2] for k in range(0, len(forget_interactions), 2)]
        forget_indices = request_from_file("forget_indices", forget_indices, forget_indices_file)
        given = {
            "forget_users": forget_users,
            "forget_items": forget_items,
            "forget_interactions": forget_interactions,
            "forget_fraction": forget_fraction,
            "forget_indices": forget_indices,
        }
        chosen = [k for k, v in given.items() if v is not None]
        if len(chosen) != 1:
            raise ValueError(f"Give exactly one deletion request among {list(given)}; got {chosen or 'none'}.")
        if max_users is not None and (isinstance(max_users, bool) or not isinstance(max_users, int) or max_users < 2):
            raise ValueError(f"`max_users` should be an int >= 2 or None, got {max_users!r}.")
        data = load_movielens_100k(data_path, argument="data_path")
        self.data: MovieLens = data
        keep = torch.ones(len(data), dtype=torch.bool)
        if min_rating is not None:
            keep &= data.ratings >= float(min_rating)
        if max_users is not None:
            keep &= data.users < max_users
        rows = torch.nonzero(keep).flatten()
        if rows.numel() == 0:
            raise ValueError(f"No interaction is left with `min_rating`={min_rating!r} and `max_users`={max_users!r}.")
        users, items = data.users[rows], data.items[rows]
        held = leave_latest_out(users, data.timestamps[rows])
        self.num_users, self.num_items = data.num_users, data.num_items
        #: Training interactions (in file order) and held-out ones, as user / item indices.
        self.train_users, self.train_items = users[~held], items[~held]
        self.heldout_users, self.heldout_items = users[held], items[held]

        n = int(self.train_users.shape[0])
        request: DeletionRequest | None = None
        heldout_keep = torch.ones(self.heldout_users.shape[0], dtype=torch.bool)
        if forget_users is not None or forget_items is not None:
            by_users = forget_users is not None
            name, what = ("forget_users", "user") if by_users else ("forget_items", "item")
            raw = data.user_ids if by_users else data.item_ids
            present = torch.unique(self.train_users if by_users else self.train_items).tolist()
            known = {raw[i]: i for i in present}
            selected = torch.as_tensor(_raw_ids(name, forget_users if by_users else forget_items, known, what))
            column = self.train_users if by_users else self.train_items
            forget_idx = torch.nonzero(torch.isin(column, selected)).flatten().tolist()
            heldout_keep = ~torch.isin(self.heldout_users if by_users else self.heldout_items, selected)
            description = f"{selected.numel()} {what}{'s' if selected.numel() != 1 else ''} ({len(forget_idx)} interactions)"
            request = self._request(forget_idx, name, description, n)
        elif forget_interactions is not None:
            forget_idx = self._interaction_rows(forget_interactions)
            request = self._request(forget_idx, "forget_interactions", f"{len(forget_idx)} interactions", n)
        else:
            forget_idx = None

        user_ids, item_ids = data.user_ids, data.item_ids
        train = InteractionTriples(self.train_users, self.train_items, self.num_items, seed=seed, user_ids=user_ids, item_ids=item_ids)
        # every interaction of the loaded data: evaluation negatives are items the user never touched
        self._all_users, self._all_items = users, items
        test_users, test_items = self.heldout_users[heldout_keep], self.heldout_items[heldout_keep]
        test = self._eval_triples(test_users, test_items, seed) if test_users.numel() else None
        super().__init__(
            train,
            test,
            forget_indices=forget_idx if forget_idx is not None else forget_indices,
            forget_fraction=forget_fraction,
            holdout_fraction=holdout_fraction,
            batch_size=batch_size,
            retain_batch_size=retain_batch_size,
            eval_batch_size=eval_batch_size,
            mode=mode,
            train_on=train_on,
            max_eval_samples=max_eval_samples,
            num_workers=num_workers,
            pin_memory=pin_memory,
            seed=seed,
        )
        if request is not None:
            self.request = request
        self.forget_rows = torch.as_tensor(self.request.indices, dtype=torch.long)  # type: ignore[union-attr]
        retain_mask = torch.ones(n, dtype=torch.bool)
        retain_mask[self.forget_rows] = False
        self.retain_rows = torch.nonzero(retain_mask).flatten()
        #: Deleted and retained training interactions, as user / item indices.
        self.forget_users, self.forget_items = self.train_users[self.forget_rows], self.train_items[self.forget_rows]
        self.retain_users, self.retain_items = self.train_users[self.retain_rows], self.train_items[self.retain_rows]
        #: Held-out interactions evaluated (those of users and items that were not deleted).
        self.test_users, self.test_items = test_users, test_items
        # The retain triples draw their negatives among the items not in the *retained* data (see the module docstring).
        self.retain_set = InteractionTriples(
            self.retain_users, self.retain_items, self.num_items, seed=seed + 1, user_ids=user_ids, item_ids=item_ids
        )
        self._eval_sets: dict[str, Dataset] = {
            "forget": self._eval_triples(self.forget_users, self.forget_items, seed),
            "retain": self._eval_triples(self.retain_users, self.retain_items, seed),
        }
        if self.test_set is not None:
            self._eval_sets["test"] = self.test_set
        #: Held-out interactions of the deleted users / items (never trained on by any model): the non-members of
        #: the loss-MIA when the request names users or items.
        self.deleted_heldout_users, self.deleted_heldout_items = self.heldout_users[~heldout_keep], self.heldout_items[~heldout_keep]
        if self.holdout_set is None and self.deleted_heldout_users.numel():
            self.holdout_set = self._eval_triples(self.deleted_heldout_users, self.deleted_heldout_items, seed)
        if self.holdout_set is not None:
            self._eval_sets["holdout"] = self.holdout_set

    # ------------------------------------------------------------------ requests
    @staticmethod
    def _request(indices: list[int], kind: str, description: str, n: int) -> DeletionRequest:
        if not indices:
            raise ValueError(f"The deletion request ({kind}: {description}) selects no training interaction; the forget set would be empty.")
        if len(indices) == n:
            raise ValueError(f"The deletion request ({kind}: {description}) selects all {n} training interactions; nothing would be left to retain.")
        return DeletionRequest(indices=tuple(sorted(indices)), kind=kind, description=description, dataset_size=n)

    def _interaction_rows(self, pairs: Any) -> list[int]:
        expected = "a list of [user_id, item_id] pairs"
        if isinstance(pairs, Tensor):
            pairs = pairs.tolist()
        if isinstance(pairs, (str, bytes)) or not hasattr(pairs, "__iter__"):
            raise TypeError(f"`forget_interactions` should be {expected}, got {type(pairs).__name__} {pairs!r}.")
        pairs = list(pairs)
        bad = [p for p in pairs if isinstance(p, (str, bytes)) or not hasattr(p, "__len__") or len(p) != 2]
        if bad or not pairs:
            raise ValueError(f"`forget_interactions` should be {expected}; got {_examples(bad) if bad else 'an empty list'}.")
        flat = _whole("forget_interactions", [v for p in pairs for v in p], expected)
        upos = {u: i for i, u in enumerate(self.data.user_ids)}
        ipos = {v: i for i, v in enumerate(self.data.item_ids)}
        row_of = {(u, i): r for r, (u, i) in enumerate(zip(self.train_users.tolist(), self.train_items.tolist()))}
        heldout = set(zip(self.heldout_users.tolist(), self.heldout_items.tolist()))
        rows, missing, held = [], [], []
        for user_id, item_id in zip(flat[0::2], flat[1::2]):
            key = (upos.get(user_id, -1), ipos.get(item_id, -1))
            if key in row_of:
                rows.append(row_of[key])
            elif key in heldout:
                held.append([user_id, item_id])
            else:
                missing.append([user_id, item_id])
        if held:
            raise ValueError(
                f"`forget_interactions` names {len(held)} held-out interactions, e.g. {_examples(held)}: they are never "
                "trained on (each user's latest interaction is held out for evaluation), so there is nothing to forget."
            )
        if missing:
            raise ValueError(f"`forget_interactions` names {len(missing)} pairs that are not interactions of the loaded data, e.g. {_examples(missing)}.")
        return sorted(set(rows))

    # ------------------------------------------------------------------ datasets and loaders
    def _eval_triples(self, users: Tensor, items: Tensor, seed: int) -> InteractionTriples:
        return InteractionTriples(
            users,
            items,
            self.num_items,
            exclude_users=self._all_users,
            exclude_items=self._all_items,
            seed=seed + _EVAL_SEED,
            fixed=True,
            user_ids=self.data.user_ids,
            item_ids=self.data.item_ids,
        )

    def _train_sampler(self, dataset: Dataset, seed: int) -> DistributedSampler:
        world, rank = self._rank()  # the sampler also hands the epoch to the dataset (negatives redrawn per epoch)
        return _EpochSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)

    def forget_dataloader(self, shuffle: bool = True) -> DataLoader:
        if shuffle:
            return self._shuffled(self.forget_set, self.batch_size, self.seed)
        return self._eval_loader(self._eval_sets["forget"], limit=False)

    def retain_dataloader(self, shuffle: bool = True) -> DataLoader:
        if shuffle:
            return self._shuffled(self.retain_set, self.retain_batch_size, self.seed + 1)
        return self._eval_loader(self._eval_sets["retain"], limit=False)

    def eval_dataloaders(self) -> dict[str, DataLoader]:
        """Named evaluation loaders over fixed-negative triples: ``forget``, ``retain``, ``test`` (, ``holdout``)."""
        return {
            name: self._eval_loader(self._eval_sets[name], salt=i) for i, name in enumerate(EVAL_SPLITS) if name in self._eval_sets
        }

    def item_titles(self, items: Sequence[int] | Tensor) -> list[str]:
        """Titles of item indices (for reports: a user's top-k)."""
        return [self.data.titles[int(i)] for i in items]
