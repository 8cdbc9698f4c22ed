"""The package's import graph has no cycles through the methods: each module imports first, alone, in a fresh
interpreter (a cycle shows up as an ImportError or an AttributeError on a partly initialised module)."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: The modules of the former cycle ``_weights → methods.base → peft → training → _weights`` and their users.
MODULES = [
    "lightning_unlearn._weights",
    "lightning_unlearn.peft",
    "lightning_unlearn.training",
    "lightning_unlearn.methods.base",
    "lightning_unlearn.callbacks.save_weights",
    "lightning_unlearn.report",
    "lightning_unlearn.attacks.callback",
]


@pytest.mark.parametrize("module", MODULES)
def test_imports_first_in_a_fresh_interpreter(module):
    code = f"import {module}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_bottom_modules_import_nothing_above_them():
    """``_weights`` and ``peft`` sit at the bottom: importing them loads no method, callback, training or module code."""
    code = (
        "import sys, lightning_unlearn._weights, lightning_unlearn.peft\n"
        "above = ['lightning_unlearn.methods', 'lightning_unlearn.training', 'lightning_unlearn.callbacks',"
        " 'lightning_unlearn.module', 'lightning_unlearn.report', 'lightning_unlearn.attacks']\n"
        "print(sorted(m for m in sys.modules if any(m == a or m.startswith(a + '.') for a in above)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_old_import_paths_still_work():
    from lightning_unlearn import SaveMergedWeights, SaveWeights
    from lightning_unlearn.callbacks import SaveWeights as FromCallbacks
    from lightning_unlearn.methods.base import frozen_copy, reference_model
    from lightning_unlearn.peft import SaveMergedWeights as FromPeft
    from lightning_unlearn.training import SaveWeights as FromTraining
    from lightning_unlearn import _weights

    assert SaveWeights is FromCallbacks is FromTraining and SaveMergedWeights is FromPeft
    assert frozen_copy is _weights.frozen_copy and reference_model is _weights.reference_model
