"""Searching files for a deletion request's indices written as a sequence (issue 13's artifact tests).

Import as ``from leak_search import leaks`` (``tests/`` is on ``sys.path``). It depends on nothing of
lightning_unlearn, so it also runs against older versions of the package (to show a leak there).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch


def _sequence_patterns(indices: Sequence[int]) -> list[tuple[str, re.Pattern[bytes] | bytes]]:
    """Byte patterns of ``indices`` written out as a sequence: decimal text with any non-digit separators
    (YAML, JSON, repr, protobuf JSON values), packed int64/int32 (tensor and numpy storage), and pickled
    ints of 256..65535 (``torch.save``/``pickle`` of a list: consecutive BININT2 opcodes)."""
    decimal = rb"\D{1,40}?".join(str(i).encode() for i in indices)
    return [
        ("decimal", re.compile(rb"(?<!\d)" + decimal + rb"(?!\d)")),
        ("int64", struct.pack(f"<{len(indices)}q", *indices)),
        ("int32", struct.pack(f"<{len(indices)}i", *indices)),
        ("pickle", b"".join(b"M" + struct.pack("<H", i) for i in indices)),
    ]


def leaks_in_bytes(data: bytes, indices: Sequence[int]) -> list[str]:
    found = []
    for name, pattern in _sequence_patterns(indices):
        hit = pattern.search(data) if isinstance(pattern, re.Pattern) else pattern in data
        if hit:
            found.append(name)
    return found


def leaks_in_object(obj: Any, indices: Sequence[int], where: str = "") -> Iterator[str]:
    """Places in a loaded object (a checkpoint) where a list, tuple, tensor or string holds all of ``indices``."""
    wanted = set(indices)
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaks_in_object(k, indices, f"{where}[key]")
            yield from leaks_in_object(v, indices, f"{where}/{k}")
    elif isinstance(obj, (list, tuple, set)):
        if wanted <= {v for v in obj if isinstance(v, int) and not isinstance(v, bool)}:
            yield where
        for i, v in enumerate(obj):
            yield from leaks_in_object(v, indices, f"{where}[{i}]")
    elif isinstance(obj, torch.Tensor):
        if not obj.is_floating_point() and obj.numel() and wanted <= set(obj.flatten().tolist()):
            yield where
    elif isinstance(obj, str) and leaks_in_bytes(obj.encode(), indices):
        yield where


def leaks(path: Path, indices: Sequence[int]) -> list[str]:
    data = path.read_bytes()
    found = [f"{path}: {kind}" for kind in leaks_in_bytes(data, indices)]
    if path.suffix in (".ckpt", ".pt"):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        found += [f"{path}: loaded object at {where or '/'}" for where in leaks_in_object(checkpoint, indices)]
    return found
