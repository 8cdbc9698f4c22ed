"""The package's on-disk cache: ``$LIGHTNING_UNLEARN_CACHE/<kind>`` (default ``~/.cache/lightning_unlearn/<kind>``)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def cache_folder(kind: str) -> Path:
    """``$LIGHTNING_UNLEARN_CACHE/<kind>`` (default ``~/.cache/lightning_unlearn/<kind>``); not created."""
    root = os.environ.get("LIGHTNING_UNLEARN_CACHE") or Path.home() / ".cache" / "lightning_unlearn"
    return Path(root) / kind


def cache_key(*parts: Any) -> str:
    """A short hex key of JSON-serialisable ``parts`` (what the cached value was computed from)."""
    return hashlib.sha256(json.dumps(list(parts)).encode()).hexdigest()[:16]


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename, so a reader never sees half of it;
    the parent folder is created. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f"{path.suffix}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def cached_tensor(file: Path, compute: Callable[[], Tensor], cache: bool = True) -> Tensor:
    """The tensor stored in ``file`` (read with ``weights_only=True``), or ``compute()``'s, written atomically to
    ``file`` (a temporary file, then a rename: concurrent processes never read a half-written file). ``cache=False``
    always computes and writes nothing."""
    if cache and file.is_file():
        return torch.load(file, map_location="cpu", weights_only=True)
    value = compute()
    if cache:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".tmp{os.getpid()}")
        torch.save(value, tmp)
        os.replace(tmp, file)
    return value
