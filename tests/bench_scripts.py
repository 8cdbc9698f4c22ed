"""Load a benchmark script (``benchmarks/<name>.py``) as a module, for tests of its helpers.

Import as ``from bench_scripts import load_script`` (``tests/`` is on ``sys.path``, as for ``toys``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(filename: str) -> ModuleType:
    """``benchmarks/<filename>`` executed as a fresh module named after it (each call loads it anew)."""
    path = BENCHMARKS / filename
    spec = importlib.util.spec_from_file_location(f"{path.stem}_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module
