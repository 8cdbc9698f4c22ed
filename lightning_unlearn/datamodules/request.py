"""Deletion requests: which training samples must be forgotten.

A request is resolved against a dataset into sorted forget indices, with a clear error for every
way a request can be wrong (empty, out of range, unknown class, the whole dataset, overlapping an
explicit retain set). The resolved request has a stable *keyed* fingerprint that identifies
*which* samples were forgotten without containing them and without letting anyone who lacks the
key test guesses against it (:mod:`lightning_unlearn.privacy`). The description says how the
request was made without naming samples: never the indices, ids or the seed of a random request.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from lightning_unlearn.privacy import request_fingerprint


def dataset_targets(dataset: Dataset) -> torch.Tensor:
    """Labels of a map-style dataset: its ``targets`` attribute, a TensorDataset's second tensor,
    the parent's labels for a ``Subset``, or — slowest — one pass reading ``dataset[i][1]``."""
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return torch.as_tensor(targets)
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        return dataset.tensors[1]
    if isinstance(dataset, Subset):
        return dataset_targets(dataset.dataset)[torch.as_tensor(dataset.indices)]
    labels = []
    for i in range(len(dataset)):  # type: ignore[arg-type]
        sample = dataset[i]
        if not isinstance(sample, (tuple, list)) or len(sample) < 2:
            raise ValueError(
                "`forget_class` needs labelled samples: give the dataset a `targets` attribute or make "
                f"samples (input, label) pairs; sample 0 is a {type(sample).__name__}."
            )
        labels.append(int(sample[1]))
    return torch.as_tensor(labels)


def _examples(values: Sequence[Any], k: int = 5) -> str:
    values = list(values)
    shown = ", ".join(map(str, values[:k]))
    return f"[{shown}{', ...' if len(values) > k else ''}]"


def _scalar(value: Any) -> Any:
    """A one-element tensor or numpy scalar as the Python number it holds; anything else unchanged."""
    if isinstance(value, (bool, int, float)):
        return value
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "item") and tuple(shape) == ():
        return value.item()
    return value


def _items(name: str, values: Any, expected: str) -> list[Any]:
    """The elements of a 1-D sequence, tensor or array as Python scalars."""
    if isinstance(values, torch.Tensor) or (hasattr(values, "dtype") and hasattr(values, "shape") and hasattr(values, "tolist")):
        if len(values.shape) != 1:
            raise ValueError(f"`{name}` should be {expected} (1-D), got an array of shape {tuple(values.shape)}.")
        return values.tolist()
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"`{name}` should be {expected}, got {type(values).__name__} {values!r}.")
    return [_scalar(v) for v in values]


def _whole(name: str, values: list[Any], expected: str) -> list[int]:
    """``values`` as ints: ints and integral floats (``3.0``) pass; fractions, NaN and other types are refused."""
    wrong_type = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))]
    if wrong_type:
        raise TypeError(
            f"`{name}` should be {expected}; {len(wrong_type)} entries are not numbers, e.g. "
            f"{_examples([f'{type(v).__name__} {v!r}' for v in wrong_type])}."
        )
    fractional = [v for v in values if isinstance(v, float) and not v.is_integer()]
    if fractional:
        raise ValueError(
            f"`{name}` should be {expected}; {len(fractional)} are not whole numbers, e.g. {_examples(fractional)} "
            "(integral floats such as 3.0 are accepted; fractions are not rounded)."
        )
    return [int(v) for v in values]


def as_indices(name: str, values: Any, n: int) -> list[int]:
    """Indices into a dataset of ``n`` samples from a sequence, tensor or array of ints (integral floats such as
    ``3.0`` pass, ``3.5`` is refused), or from a boolean mask of length ``n`` (its ``True`` positions). Range and
    duplicates are left to the caller; ``name`` is the argument, for errors."""
    return _indices_or_mask(name, values, n)[0]


def _indices_or_mask(name: str, values: Any, n: int) -> tuple[list[int], bool]:
    """:func:`as_indices` and whether ``values`` was a boolean mask."""
    expected = f"integer indices or a boolean mask of length {n}"
    items = _items(name, values, expected)
    flags = [isinstance(v, bool) for v in items]
    if items and all(flags):
        if len(items) != n:
            raise ValueError(
                f"`{name}` is a boolean mask of length {len(items)}, but a mask needs one entry per training "
                f"sample ({n}); give integer indices or a mask of length {n}."
            )
        return [i for i, keep in enumerate(items) if keep], True
    if any(flags):
        raise TypeError(
            f"`{name}` mixes booleans and numbers ({sum(flags)} of {len(items)} are booleans); give either "
            f"integer indices or a boolean mask of length {n}."
        )
    return _whole(name, items, expected), False


def _as_classes(value: Any) -> list[int]:
    """``forget_class`` as a list of int labels: one label (an int, a numpy/torch integer scalar, an integral float
    such as ``3.0``) or a sequence of them."""
    value = _scalar(value)
    expected = "an integer class label or a list of them"
    if isinstance(value, bool):
        raise TypeError(f"`forget_class` should be {expected}, got bool {value!r}.")
    items = [value] if isinstance(value, (int, float)) else _items("forget_class", value, expected)
    return _whole("forget_class", items, expected)


@dataclass(frozen=True)
class DeletionRequest:
    """A resolved request: the forget indices into the training dataset and how they were asked for."""

    indices: tuple[int, ...]
    kind: str
    description: str
    dataset_size: int

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def fingerprint(self) -> str:
        """``hmac-sha256:<key id>:<digest>``: HMAC-SHA256 of the sorted forget indices and the dataset size,
        keyed by the data controller's request key (:func:`lightning_unlearn.privacy.request_key`:
        ``$LIGHTNING_UNLEARN_REQUEST_KEY``, ``$LIGHTNING_UNLEARN_REQUEST_KEY_FILE`` or a generated per-user
        key file). Stable across runs with the same key, different for different requests, and not
        recomputable (so not open to enumerating small requests) without the key."""
        return request_fingerprint(self.indices, self.dataset_size)


def resolve_request(
    dataset: Dataset,
    *,
    forget_indices: Sequence[int] | None = None,
    forget_ids: Sequence[Hashable] | None = None,
    sample_ids: Sequence[Hashable] | None = None,
    forget_class: int | Sequence[int] | None = None,
    forget_predicate: Callable[[Any], bool] | None = None,
    forget_fraction: float | None = None,
    num_classes: int | None = None,
    seed: int = 0,
) -> DeletionRequest:
    """Turn exactly one kind of request into a :class:`DeletionRequest` over ``dataset``.

    ``forget_indices`` may be a sequence, tensor or array of integer indices (integral floats such as ``3.0``
    are accepted, fractions such as ``3.5`` refused) or a boolean mask with one entry per sample (its ``True``
    positions are forgotten; a mask of another length is refused). ``forget_class`` may be one label (a Python,
    numpy or torch integer, or an integral float) or a sequence of them.
    """
    given = {
        "forget_indices": forget_indices,
        "forget_ids": forget_ids,
        "forget_class": forget_class,
        "forget_predicate": forget_predicate,
        "forget_fraction": forget_fraction,
    }
    chosen = [k for k, v in given.items() if v is not None]
    if len(chosen) != 1:
        raise ValueError(
            f"Give exactly one deletion request among {list(given)}; got {chosen or 'none'}."
        )
    kind = chosen[0]
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("The training dataset is empty; there is nothing to unlearn from.")

    if kind == "forget_indices":
        idx, is_mask = _indices_or_mask("forget_indices", forget_indices, n)
        bad = [i for i in idx if i < 0 or i >= n]
        if bad:
            raise ValueError(
                f"`forget_indices` should lie in [0, {n - 1}] for a dataset of {n} samples; "
                f"{len(bad)} are out of range, e.g. {_examples(bad)}."
            )
        dupes = len(idx) - len(set(idx))
        description = f"{len(set(idx))} indices" + (f" ({dupes} duplicates dropped)" if dupes else "")
        if is_mask:
            description = f"{len(idx)} indices (boolean mask)"
        selected = sorted(set(idx))
    elif kind == "forget_ids":
        ids = sample_ids if sample_ids is not None else getattr(dataset, "sample_ids", None)
        if ids is None:
            raise ValueError(
                "`forget_ids` needs sample ids: pass `sample_ids` (one per sample) or give the dataset a "
                "`sample_ids` attribute."
            )
        if len(ids) != n:
            raise ValueError(f"`sample_ids` should have one id per sample ({n}), got {len(ids)}.")
        position = {sid: i for i, sid in enumerate(ids)}
        if len(position) != n:
            raise ValueError(f"`sample_ids` should be unique; {n - len(position)} are repeated.")
        missing = [sid for sid in forget_ids if sid not in position]  # type: ignore[union-attr]
        if missing:
            raise ValueError(f"{len(missing)} of `forget_ids` are not in the dataset, e.g. {_examples(missing)}.")
        selected = sorted({position[sid] for sid in forget_ids})  # type: ignore[union-attr]
        description = f"{len(selected)} sample ids"
    elif kind == "forget_class":
        classes = _as_classes(forget_class)
        targets = dataset_targets(dataset)
        present = sorted(int(c) for c in torch.unique(targets))
        valid = list(range(num_classes)) if num_classes is not None else present
        unknown = [c for c in classes if c not in valid]
        if unknown:
            raise ValueError(f"`forget_class` {unknown} does not exist; the dataset's classes are {valid}.")
        selected = torch.nonzero(torch.isin(targets, torch.as_tensor(classes)), as_tuple=False).flatten().tolist()
        description = f"class {classes[0]}" if len(classes) == 1 else f"classes {classes}"
    elif kind == "forget_predicate":
        selected = [i for i in range(n) if forget_predicate(dataset[i])]  # type: ignore[misc]
        description = f"predicate {getattr(forget_predicate, '__name__', repr(forget_predicate))}"
    else:
        if not isinstance(forget_fraction, (int, float)) or not 0 < forget_fraction < 1:
            raise ValueError(f"`forget_fraction` should lie in (0, 1), got {forget_fraction!r}.")
        k = int(round(forget_fraction * n))
        g = torch.Generator().manual_seed(seed)
        selected = sorted(torch.randperm(n, generator=g)[:k].tolist())
        description = f"random {forget_fraction:.1%} of the training set"  # never the seed: it regenerates the indices

    if not selected:
        raise ValueError(f"The deletion request ({kind}={description}) selects no samples out of {n}; the forget set would be empty.")
    if len(selected) == n:
        raise ValueError(
            f"The deletion request ({kind}={description}) selects all {n} samples; nothing would be left to "
            "retain. Train a new model instead."
        )
    return DeletionRequest(indices=tuple(selected), kind=kind, description=description, dataset_size=n)
