"""The package's import graph has no cycles through the methods: each module imports first, alone, in a fresh
interpreter (a cycle shows up as an ImportError or an AttributeError on a partly initialised module)."""

from __future__ import annotations

import subprocess
import sys

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


_FRESH_IMPORTS = """
import sys, json, torch, lightning  # the heavy third-party imports once; only our modules are re-imported
results = {}
for name in %r:
    for loaded in [m for m in sys.modules if m == "lightning_unlearn" or m.startswith("lightning_unlearn.")]:
        del sys.modules[loaded]
    try:
        __import__(name)
        results[name] = "ok"
    except Exception as err:  # a cycle: ImportError / AttributeError on a partly initialised module
        results[name] = f"{type(err).__name__}: {err}"
for loaded in [m for m in sys.modules if m == "lightning_unlearn" or m.startswith("lightning_unlearn.")]:
    del sys.modules[loaded]
import lightning_unlearn._weights, lightning_unlearn.peft
above = ["lightning_unlearn.methods", "lightning_unlearn.training", "lightning_unlearn.callbacks",
         "lightning_unlearn.module", "lightning_unlearn.report", "lightning_unlearn.attacks"]
results["above_the_bottom"] = sorted(m for m in sys.modules if any(m == a or m.startswith(a + ".") for a in above))
print(json.dumps(results))
"""


def test_each_module_imports_first_and_the_bottom_modules_import_nothing_above_them():
    """One interpreter (torch and Lightning imported once): before each import every ``lightning_unlearn`` module is
    dropped from ``sys.modules``, so each module is the first of ours to load. ``_weights`` and ``peft`` sit at
    the bottom: importing them loads no method, callback, training or module code."""
    import json

    result = subprocess.run([sys.executable, "-c", _FRESH_IMPORTS % (MODULES,)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert {m: results[m] for m in MODULES} == {m: "ok" for m in MODULES}
    assert results["above_the_bottom"] == []


def test_old_import_paths_still_work():
    from lightning_unlearn import SaveMergedWeights, SaveWeights, _weights
    from lightning_unlearn.callbacks import SaveWeights as FromCallbacks
    from lightning_unlearn.methods.base import frozen_copy, reference_model
    from lightning_unlearn.peft import SaveMergedWeights as FromPeft
    from lightning_unlearn.training import SaveWeights as FromTraining

    assert SaveWeights is FromCallbacks is FromTraining and SaveMergedWeights is FromPeft
    assert frozen_copy is _weights.frozen_copy and reference_model is _weights.reference_model
