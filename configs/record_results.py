"""Run a benchmark's config chain and record the numbers beside the configs.

    python configs/record_results.py digits          # -> configs/digits/results.json

Runs ``original.yaml``, ``retrain.yaml`` and every method config with ``lightning-unlearn fit``
then ``test`` (from the run's last checkpoint) in a scratch folder, and writes each method's test
metrics. ``tests/test_reproducibility.py`` reruns a config and checks it reproduces the recorded
numbers within :data:`TOLERANCE` percentage points (seeded runs on CPU repeat to float precision;
the tolerance absorbs BLAS differences between machines).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
#: Allowed difference (percentage points for accuracies/MIA, absolute for AUC and gap) on a rerun.
TOLERANCE = 1.0
KEYS = ("UA", "RA", "TA", "MIA", "mia_auc", "avg_gap")


def run_config(bench: str, name: str, workdir: Path, extra: list[str] | None = None) -> dict[str, float]:
    """``fit`` then ``test`` one config in ``workdir``; return the test metrics (empty for non-unlearning configs)."""
    from lightning_unlearn.cli import UnlearnCLI

    quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", *(extra or [])]
    config = str(ROOT / bench / f"{name}.yaml")
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        fit = UnlearnCLI(args=["fit", "--config", config, *quiet])
        for logger in fit.trainer.loggers:
            getattr(logger, "finish", lambda: None)()
        if name == "original":
            return {}
        ckpt = workdir / f"outputs/{bench}/{name}/checkpoints/last.ckpt"
        test = UnlearnCLI(args=["test", "--config", config, "--ckpt_path", str(ckpt), *quiet])
        for logger in test.trainer.loggers:
            getattr(logger, "finish", lambda: None)()
        metrics = test.trainer.callback_metrics
        return {k: float(metrics[f"test/{k}"]) for k in KEYS if f"test/{k}" in metrics}
    finally:
        os.chdir(cwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", choices=sorted(p.name for p in ROOT.iterdir() if (p / "original.yaml").exists()))
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    import torch

    torch.set_num_threads(1)  # the numbers are recorded single-threaded; the test reruns them the same way
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix=f"record-{args.bench}-"))
    names = ["original", "retrain"] + sorted(p.stem for p in (ROOT / args.bench).glob("*.yaml") if p.stem not in ("original", "retrain"))
    results: dict[str, Any] = {}
    for name in names:
        start = time.perf_counter()
        results[name] = run_config(args.bench, name, workdir)
        print(f"{name:>10}: {results[name]}  ({time.perf_counter() - start:.1f} s)", flush=True)
    from lightning_unlearn._provenance import versions

    record = {
        "benchmark": args.bench,
        "command": f"python configs/record_results.py {args.bench}",
        "tolerance": TOLERANCE,
        "threads": 1,
        "versions": {k: v for k, v in versions().items() if k in ("python", "torch", "lightning")},
        "results": {k: v for k, v in results.items() if v},
    }
    out = ROOT / args.bench / "results.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
