#!/usr/bin/env python
"""Hyper-parameter search for B1 (the record behind the tuned settings in ``configs/{digits,fashion_mnist,fashion_mnist_vit}``).

Runs candidate configurations of each method on ONE seed (default 0) of one scale and scenario, using
the same cached original/oracle, data, evaluation and timing as ``b1_classification.py``, and appends
every trial to ``benchmarks/results/b1_tuning_<scale>.json``. The selection rule is: the lowest Avg Gap
among the candidates whose compute budget (samples through forward+backward) is at most 5% of the
oracle's; ties go to the cheaper candidate. The chosen values are then written by hand into the method's
config (e.g. ``configs/digits/classwise/npo.yaml`` for ``--quick --scenario class``) and all seeds are reported
with them by ``b1_classification.py``.

Examples (from the repository root)::

    python benchmarks/b1_tune.py --quick --scenario random
    python benchmarks/b1_tune.py --scenario class --methods rl salun
    python benchmarks/b1_tune.py --scenario random --candidates '{"npo": [{"lr": 3e-4, "method": {"beta": 0.5}}]}'
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path
from typing import Any

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import b1

BENCH_DIR = Path(__file__).resolve().parent


#: Default search grid: a list of overrides of the method's current settings (its config), per scenario.
LRS = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3]
_PER_METHOD: dict[str, list[dict[str, Any]]] = {
    "ft": [{"lr": lr} for lr in (1e-4, 3e-4, 1e-3, 3e-3)],
    "l1_sparse": [{"lr": lr} for lr in (1e-4, 3e-4, 1e-3, 3e-3)],
    **{m: [{"lr": lr} for lr in LRS] for m in ("ga", "graddiff", "npo", "rl", "salun", "scrub", "stake_the_points", "adaprob", "roka", "razor")},
}
GRID: dict[str, dict[str, list[dict[str, Any]]]] = {scenario: _PER_METHOD for scenario in ("random", "class")}
BUDGET = 0.05


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="digits scale (default: Fashion-MNIST).")
    parser.add_argument("--arch", choices=sorted(b1.ARCHS), default="cnn", help="Model, as in b1_classification.py.")
    parser.add_argument("--scenario", choices=sorted(b1.SCENARIOS), required=True)
    parser.add_argument("--methods", nargs="+", default=None, help="Methods to tune (default: those in the grid).")
    parser.add_argument("--seed", type=int, default=0, help="The single tuning seed.")
    parser.add_argument("--candidates", default=None, help="JSON (or a path to a JSON file) {method: [override, ...]} replacing the built-in grid for those methods.")
    parser.add_argument("--base", choices=["config", "default"], default="config", help="Apply overrides to the method's config (its current settings) or to the constructor defaults (lr 1e-3, one pass, the config's batch size).")
    parser.add_argument("--out", default=None, help="Trial log (default benchmarks/results/b1_tuning_<scale>.json; trials are appended).")
    parser.add_argument("--cache-dir", default=str(BENCH_DIR / ".cache"))
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    benchmarking.quiet_lightning()
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    scale = ("quick" if args.quick else "full") + ("_vit" if args.arch == "vit" else "")
    grid = {m: list(c) for m, c in GRID[args.scenario].items()}
    if args.candidates:
        text = args.candidates if args.candidates.lstrip().startswith("{") else Path(args.candidates).read_text()
        grid.update(json.loads(text))
    methods = args.methods or list(grid)
    out_path = Path(args.out) if args.out else BENCH_DIR / "results" / f"b1_tuning_{scale}.json"
    log = functools.partial(print, flush=True)
    cache = Path(args.cache_dir)

    original = b1.get_trained(b1.ORIGINAL, scale, None, args.seed, cache, log)
    oracle = b1.get_trained(b1.ORACLE, scale, args.scenario, args.seed, cache, log)
    eval_dm = b1.make_datamodule(scale, args.scenario, args.seed, max_eval_samples=b1.SCALES[scale]["max_eval_samples"])
    loaders = eval_dm.eval_dataloaders()
    oracle_metrics = b1.evaluate_model(b1.load_model(scale, oracle["path"]), loaders, None)
    original_metrics = b1.evaluate_model(b1.load_model(scale, original["path"]), loaders, oracle_metrics)
    log(f"[tune] oracle {fmt(oracle_metrics)}")
    log(f"[tune] original {fmt(original_metrics)} gap={original_metrics['avg_gap']:.2f}")

    session = {
        "id": f"{time.time():.6f}-{os.getpid()}",
        "command": benchmarking.command_line(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "scenario": args.scenario,
        "seed": args.seed,
        "oracle": oracle_metrics,
        "oracle_seconds": oracle["seconds"],
        "original": original_metrics,
        "trials": [],
    }
    epochs = b1.train_recipe(scale)["epochs"]
    for method in methods:
        base = b1.resolve_hparams(scale, args.scenario, method)[0]
        if args.base == "default":
            base = {**b1.DEFAULT_HP, "batch_size": base["batch_size"]}
        for override in grid.get(method, [{}]):
            hp = benchmarking.merge_hparams(base, override)
            try:
                model, seconds, budget = b1.run_method(method, hp, scale, args.scenario, args.seed, original["path"])
                metrics = b1.evaluate_model(model, loaders, oracle_metrics)
                error = None
            except Exception as err:  # a diverging candidate is a result, not a crash
                metrics, seconds, budget, error = {}, float("nan"), {}, f"{type(err).__name__}: {err}"
            compute = budget.get("sample_passes", 0) / (epochs * budget["retain_size"]) if budget else None
            trial = {
                "method": method,
                "hparams": hp,
                "metrics": metrics,
                "seconds": seconds,
                "time_ratio_to_oracle": seconds / oracle["seconds"],
                "compute_ratio_to_oracle": compute,
                "error": error,
            }
            session["trials"].append(trial)
            save_session(out_path, scale, session)
            if error:
                log(f"[tune] {args.scenario} {method:9s} {json.dumps(override)} -> {error}")
            else:
                log(
                    f"[tune] {args.scenario} {method:9s} {json.dumps(override):50s} gap={metrics['avg_gap']:5.2f} {fmt(metrics)} "
                    f"t={seconds:5.1f}s ({100 * trial['time_ratio_to_oracle']:.1f}%) compute={100 * compute:.1f}%"
                )
        ok = [t for t in session["trials"] if t["method"] == method and not t["error"] and t["compute_ratio_to_oracle"] <= BUDGET]
        if ok:
            best = min(ok, key=lambda t: (round(t["metrics"]["avg_gap"], 2), t["compute_ratio_to_oracle"]))
            log(f"[tune] BEST {args.scenario} {method}: gap={best['metrics']['avg_gap']:.2f} hparams={json.dumps(best['hparams'])}")


def save_session(path: Path, scale: str, session: dict[str, Any]) -> None:
    """Re-read the log and replace this session's entry (another tuning process may have appended meanwhile)."""
    data = json.loads(path.read_text()) if path.is_file() else {"benchmark": "B1-tuning", "scale": scale, "sessions": []}
    data["sessions"] = [s for s in data["sessions"] if s.get("id") != session["id"]] + [session]
    benchmarking.write_json(path, data)


def fmt(m: dict[str, float]) -> str:
    return " ".join(f"{k}={m[k]:.2f}" for k in ("UA", "RA", "TA", "MIA", "mia_auc") if k in m)


if __name__ == "__main__":
    main()
