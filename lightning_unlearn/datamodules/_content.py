"""Content digests of a dataset's samples: how :class:`~lightning_unlearn.ForgetRetainDataModule` finds samples
that an explicit forget set and an explicit retain set both hold.

A sample's digest is a BLAKE2b hash of its content: tensors and arrays by dtype, shape and bytes (a contiguous CPU
copy), one-element tensors and numpy scalars as the Python number they hold, strings and bytes by value, tuples and
lists item by item, mappings by sorted key, objects with ``tobytes()`` (PIL images) by type, ``mode``, ``size`` and
bytes. Two samples with the same digest are equal in type and value. ``TensorDataset`` s (and ``Subset`` s of one)
are hashed row by row from their tensors without indexing them one sample at a time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

_DIGEST_SIZE = 16


class UnhashableSample(TypeError):
    """A sample holds an object whose content :func:`sample_digest` cannot read."""


def _tensor_bytes(t: torch.Tensor) -> bytes:
    flat = t.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def _update(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        if obj.dim() == 0:
            _update(h, obj.item())
            return
        h.update(f"T{obj.dtype}{tuple(obj.shape)}:".encode())
        h.update(_tensor_bytes(obj))
    elif isinstance(obj, np.generic):
        _update(h, obj.item())
    elif isinstance(obj, np.ndarray):
        if obj.dtype.kind in "biufc":
            _update(h, torch.from_numpy(np.ascontiguousarray(obj)) if obj.ndim else obj.item())
        else:
            h.update(f"A{obj.dtype.str}{obj.shape}:".encode())
            h.update(repr(obj.tolist()).encode())
    elif obj is None or isinstance(obj, (bool, int, float, complex)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, str):
        data = obj.encode("utf-8", "surrogatepass")
        h.update(f"s{len(data)}:".encode())
        h.update(data)
    elif isinstance(obj, (bytes, bytearray)):
        h.update(f"y{len(obj)}:".encode())
        h.update(bytes(obj))
    elif isinstance(obj, Mapping):
        h.update(f"{{{len(obj)}".encode())
        for key in sorted(obj, key=repr):
            _update(h, key)
            _update(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, (tuple, list)):
        h.update(f"({len(obj)}".encode())
        for item in obj:
            _update(h, item)
        h.update(b")")
    elif callable(getattr(obj, "tobytes", None)):
        h.update(f"O{type(obj).__qualname__}{getattr(obj, 'mode', '')}{getattr(obj, 'size', '')}:".encode())
        h.update(obj.tobytes())
    else:
        raise UnhashableSample(type(obj).__name__)


def sample_digest(sample: Any) -> bytes:
    """The content digest of one sample (see the module docstring); :class:`UnhashableSample` if it holds an object
    whose content cannot be read."""
    h = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    _update(h, sample)
    return h.digest()


def _tensor_rows(dataset: Dataset) -> list[torch.Tensor] | None:
    """The per-sample tensors of a ``TensorDataset`` or of a ``Subset`` of one (rows in the subset's order)."""
    if isinstance(dataset, TensorDataset):
        return list(dataset.tensors)
    if isinstance(dataset, Subset) and isinstance(dataset.dataset, TensorDataset):
        index = torch.as_tensor(list(dataset.indices), dtype=torch.long)
        return [t[index] for t in dataset.dataset.tensors]
    return None


def dataset_digests(dataset: Dataset) -> list[bytes]:
    """:func:`sample_digest` of every sample of ``dataset``, in order. Reads every sample once; a ``TensorDataset``
    (or a ``Subset`` of one) is hashed from its tensors directly (60,000 MNIST-sized samples take a fraction of a
    second)."""
    tensors = _tensor_rows(dataset)
    if tensors is None:
        return [sample_digest(dataset[i]) for i in range(len(dataset))]  # type: ignore[arg-type]
    n = len(tensors[0]) if tensors else 0
    columns: list[tuple[str, Any]] = []
    for t in tensors:
        t = t.detach().cpu()
        if t.dim() == 1:  # one number per sample: hashed as the Python number, as `sample_digest` does
            columns.append(("scalar", t.tolist()))
        else:
            rows = t.contiguous().reshape(n, -1)
            raw = rows.view(torch.uint8).numpy() if rows.numel() else np.zeros((n, 0), dtype=np.uint8)
            columns.append((f"T{t.dtype}{tuple(t.shape[1:])}:", raw))
    head = f"({len(tensors)}".encode()
    digests = []
    for i in range(n):
        h = hashlib.blake2b(head, digest_size=_DIGEST_SIZE)
        for kind, values in columns:
            if kind == "scalar":
                value = values[i]
                h.update(f"{type(value).__name__}:{value!r};".encode())
            else:
                h.update(kind.encode())
                h.update(values[i].tobytes())
        h.update(b")")
        digests.append(h.digest())
    return digests
