"""Deprecated: the benchmark helpers now live in :mod:`lightning_unlearn.benchmarking`.

A thin re-export kept for the scripts that still ``import _common`` through a ``sys.path`` edit
(b2_llm.py, b2_attacks.py, b3_entity.py, scripts/report_screenshot.py) until they import the package.
"""

from __future__ import annotations

from pathlib import Path

from lightning_unlearn import benchmarking as _benchmarking
from lightning_unlearn.benchmarking import (  # noqa: F401  (re-exported)
    command_line,
    config_hash,
    fmt_pm,
    markdown_table,
    mean_std,
    merge_hparams,
    quiet_lightning,
    quiet_trainer,
    versions,
    write_json,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


def git_commit() -> str | None:
    return _benchmarking.git_commit(REPO_ROOT)


def git_dirty() -> bool | None:
    return _benchmarking.git_dirty(REPO_ROOT)
