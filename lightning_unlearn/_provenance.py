"""Where a result came from: library versions and the git commit (reports, benchmarks, recorded configs)."""

from __future__ import annotations

import importlib
import os
import platform
import subprocess


def versions(*extra: str) -> dict[str, str | None]:
    """Python, torch, lightning, lightning_unlearn, numpy and the platform, plus the ``__version__`` of each
    module named in ``extra`` (``None`` where it is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "lightning", "lightning_unlearn", "numpy", *extra):
        try:
            out[name] = str(importlib.import_module(name).__version__)
        except Exception:  # reported as missing, never fatal
            out[name] = None
    out["platform"] = platform.platform()
    return out


def _git(args: list[str], cwd: str | os.PathLike | None) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd or os.getcwd(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """``git rev-parse HEAD`` in ``cwd`` (default: the working directory), ``None`` outside a checkout."""
    out = _git(["rev-parse", "HEAD"], cwd)
    return out.strip() or None if out is not None else None


def git_dirty(cwd: str | os.PathLike | None = None) -> bool | None:
    """Whether tracked files differ from HEAD in ``cwd``; ``None`` outside a checkout."""
    out = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return bool(out.strip()) if out is not None else None
