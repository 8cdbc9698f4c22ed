#!/usr/bin/env python
"""Benchmark B1 — image-classification unlearning (SalUn / "Model Sparsity Can Simplify Unlearning" protocol).

For every seed and scenario:

1. the *original* model (``SupervisedModule``, trained on the whole training split) and the *oracle*
   (the same recipe on the retain split only) are trained once and cached on disk, keyed by a hash of
   their recipe; their training seconds are cached with them (the oracle's is the denominator of every
   time ratio);
2. the original, the oracle and every unlearning method (``UnlearningModule`` + ``Trainer.fit`` on
   paired forget/retain batches, starting from the cached original) are evaluated with
   ``lightning_unlearn.callbacks.evaluate`` on the forget / retain / test splits:
   UA (100 − forget accuracy), RA, TA, MIA (MIA-efficacy), mia_auc and Avg Gap to the oracle.

Scales: ``--quick`` = scikit-learn digits (8×8) with a tiny CNN (about a minute on 2 cores);
default (full) = Fashion-MNIST 60k/10k with ``SmallCNN()`` (28×28).
Scenarios: ``class`` forgets class 0 (Fashion-MNIST "T-shirt/top", digits "0") entirely;
``random`` forgets a seeded random 10% of the training split (the seed is the run's seed).

The per-method settings that produce the published numbers are the shipped configs: ``--quick`` reads
``configs/digits/<method>.yaml`` (random) and ``configs/digits/classwise/<method>.yaml`` (class), the full scale
``configs/fashion_mnist/...`` and ``--arch vit`` ``configs/fashion_mnist_vit/...`` (the protocol and the
mapping: :mod:`lightning_unlearn.benchmarking.b1`). Edit a YAML file to change a method's settings.

Run from the repository root::

    python benchmarks/b1_classification.py --quick
    python benchmarks/b1_classification.py              # full scale, 3 seeds, both scenarios
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from pathlib import Path
from typing import Any

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking.b1 import (
    ARCHS,
    MIA_ATTACK,
    ORACLE,
    ORIGINAL,
    SCALES,
    SCENARIOS,
    STRUCTURE_K,
    STRUCTURE_LAYER,
    STRUCTURE_SAMPLES,
    default_methods,
    evaluate_model,
    get_trained,
    load_model,
    make_datamodule,
    method_name,
    model_class,
    oracle_seconds_now,
    resolve_hparams,
    run_method,
    structure_loader,
    train_recipe,
)

BENCH_DIR = Path(__file__).resolve().parent


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["scenario"]), []).append(row)
    out = []
    for (method, scenario), items in groups.items():
        keys = sorted({k for r in items for k in r["metrics"]})
        means, stds = {}, {}
        for k in keys:
            m, s = benchmarking.mean_std([r["metrics"][k] for r in items if k in r["metrics"]])
            means[k], stds[k] = m, s
        gap_m, gap_s = benchmarking.mean_std([r["avg_gap_to_oracle"] for r in items])
        out.append(
            {
                "method": method,
                "scenario": scenario,
                "metrics_mean": means,
                "metrics_std": stds,
                "avg_gap_mean": gap_m,
                "avg_gap_std": gap_s,
                "seconds_mean": benchmarking.mean_std([r["seconds"] for r in items])[0],
                "time_ratio_mean": benchmarking.mean_std([r["time_ratio_to_oracle"] for r in items])[0],
            }
        )
    return out


def format_tables(payload: dict[str, Any]) -> str:
    """One markdown table per scenario: the brief's columns plus two cross-checks of the time ratio."""
    summary, config = payload["summary"], payload["config"]
    scenarios, methods, n_seeds = list(config["scenarios"]), config["methods"], len(config["seeds"])
    header = ["Method", "UA", "RA", "TA", "MIA", "Avg Gap", "kNN overlap", "class-sim r", "seconds", "time ratio", "time ratio (same-run est.)", "compute ratio"]
    order = [ORIGINAL, ORACLE, *methods]
    labels = {ORIGINAL: "Original (no unlearning)", ORACLE: "Retrain (oracle)"}
    blocks = []
    for scenario in scenarios:
        by_method = {s["method"]: s for s in summary if s["scenario"] == scenario}
        calib = [v for k, v in config["time_calibration"].items() if k.startswith(scenario + "/")]
        rows = []
        for m in order:
            s = by_method.get(m)
            if s is None:
                continue
            mm, sd = s["metrics_mean"], s["metrics_std"]
            if m in (ORIGINAL, ORACLE):
                est, compute = ("0" if m == ORIGINAL else "–"), ("0" if m == ORIGINAL else "1")
            else:
                vals = [c["time_ratio_vs_estimate"][m] for c in calib if m in c["time_ratio_vs_estimate"]]
                est = f"{benchmarking.mean_std(vals)[0]:.3f}" if vals else "–"
                b = config["budgets"].get(scenario, {}).get(m)
                compute = f"{b['sample_passes_ratio_to_oracle']:.3f}" if b else "–"
            rows.append(
                [
                    labels.get(m, m),
                    *(benchmarking.fmt_pm(mm.get(k, math.nan), sd.get(k, 0.0)) for k in ("UA", "RA", "TA", "MIA")),
                    benchmarking.fmt_pm(s["avg_gap_mean"], s["avg_gap_std"]),
                    *(f"{mm[k]:.3f}" if k in mm else "–" for k in ("knn_overlap", "class_sim_corr")),
                    f"{s['seconds_mean']:.1f}",
                    f"{s['time_ratio_mean']:.3f}",
                    est,
                    compute,
                ]
            )
        title = {"class": "class-wise forgetting (class 0)", "random": "random 10% forgetting"}[scenario]
        blocks.append(f"### B1 ({payload['scale']}) — {title}, mean ± std over {n_seeds} seed(s)\n\n" + benchmarking.markdown_table(header, rows))
    return "\n\n".join(blocks)


# ----------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="b1_classification.py",
        description=(
            "Benchmark B1: image-classification unlearning against a retrain-from-scratch oracle "
            "(UA, RA, TA, MIA-efficacy, Avg Gap, time as a fraction of the oracle's training time). "
            "Original and oracle models are cached on disk, so reruns cost only the unlearning."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="digits (sklearn, 8x8) with SmallCNN(image_size=8, width=16, hidden=64): ~1 minute on 2 cores. Default: Fashion-MNIST 60k/10k with SmallCNN().")
    parser.add_argument("--arch", choices=sorted(ARCHS), default="cnn", help="Model: 'cnn' = SmallCNN, 'vit' = ViTClassifier (a transformers ViT built from a config; needs the 'vision' extra). The ViT rows use their own configs (configs/fashion_mnist_vit; --quick: the digits configs) and output file.")
    parser.add_argument("--scenarios", nargs="+", choices=sorted(SCENARIOS), default=["class", "random"], help="'class' forgets class 0 (T-shirt/top / digit 0); 'random' forgets a seeded random 10%% of the training split.")
    parser.add_argument("--methods", nargs="+", default=None, help="Rows: methods from lightning_unlearn.METHODS or <method>+<variant> config names (default: every registered classifier method except 'retrain', which is the oracle row, then every variant config of the scale).")
    parser.add_argument("--seeds", type=int, default=None, help="Number of seeds (0..N-1); default 3 at full scale, 1 at quick scale.")
    parser.add_argument("--first-seed", type=int, default=0, help="First seed (seeds are first-seed .. first-seed+N-1).")
    parser.add_argument("--out", default=None, help="Output JSON (default benchmarks/results/b1_<scale>.json).")
    parser.add_argument("--cache-dir", default=str(BENCH_DIR / ".cache"), help="Where original/oracle weights and their training times are cached.")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for the whole run (1 gives the steadiest timings on a shared 2-core machine; 0 = torch's default).")
    parser.add_argument("--prepare-only", action="store_true", help="Only train/cache the original and oracle models, then exit.")
    parser.add_argument("--quiet", action="store_true", help="No progress line per finished run (the final tables are still printed).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    benchmarking.quiet_lightning()
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    scale = ("quick" if args.quick else "full") + ("_vit" if args.arch == "vit" else "")
    n_seeds = args.seeds if args.seeds is not None else SCALES[scale]["seeds"]
    seeds = list(range(args.first_seed, args.first_seed + n_seeds))
    methods = args.methods or default_methods(scale)
    from lightning_unlearn import METHODS

    for m in methods:
        METHODS.get(method_name(m))  # a clear error on a typo before anything trains
    cache_dir = Path(args.cache_dir)
    out_path = Path(args.out) if args.out else BENCH_DIR / "results" / f"b1_{scale}.json"
    log = (lambda *a, **k: None) if args.quiet else functools.partial(print, flush=True)

    hparams = {sc: {m: dict(zip(("config", "source"), resolve_hparams(scale, sc, m))) for m in methods} for sc in args.scenarios}
    rows: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    budgets: dict[str, Any] = {}
    calibration: dict[str, Any] = {}
    wall = time.perf_counter()
    for seed in seeds:
        original = get_trained(ORIGINAL, scale, None, seed, cache_dir, log)
        models[f"original/seed{seed}"] = {k: original[k] for k in ("key", "seconds", "cached", "path")}
        for scenario in args.scenarios:
            oracle = get_trained(ORACLE, scale, scenario, seed, cache_dir, log)
            models[f"oracle/{scenario}/seed{seed}"] = {k: oracle[k] for k in ("key", "seconds", "cached", "path")}
            if args.prepare_only:
                continue
            oracle_seconds = float(oracle["seconds"])
            eval_dm = make_datamodule(scale, scenario, seed, max_eval_samples=SCALES[scale]["max_eval_samples"])
            loaders = eval_dm.eval_dataloaders()
            oracle_model = load_model(scale, oracle["path"])
            structure = structure_loader(loaders, seed)
            oracle_metrics = evaluate_model(oracle_model, loaders, None, oracle_model, structure)
            oracle_metrics["avg_gap"] = 0.0
            estimate = oracle_seconds_now(scale, scenario, seed)
            calibration[f"{scenario}/seed{seed}"] = {"cached_oracle_seconds": oracle_seconds, "same_run_estimate_seconds": estimate, "time_ratio_vs_estimate": {}}

            def add(method: str, metrics: dict[str, float], seconds: float, scenario=scenario, seed=seed, oracle_seconds=oracle_seconds) -> None:
                row = {
                    "method": method,
                    "scenario": scenario,
                    "seed": seed,
                    "metrics": metrics,
                    "seconds": seconds,
                    "time_ratio_to_oracle": seconds / oracle_seconds,
                    "avg_gap_to_oracle": metrics["avg_gap"],
                }
                rows.append(row)
                log(
                    f"[b1] {scale} seed={seed} {scenario:6s} {method:10s} UA={metrics['UA']:6.2f} RA={metrics['RA']:6.2f} "
                    f"TA={metrics['TA']:6.2f} MIA={metrics['MIA']:6.2f} gap={metrics['avg_gap']:5.2f} "
                    f"time={seconds:6.1f}s ({100 * row['time_ratio_to_oracle']:.2f}% of oracle)"
                )

            add(ORACLE, oracle_metrics, oracle_seconds)
            add(ORIGINAL, evaluate_model(load_model(scale, original["path"]), loaders, oracle_metrics, oracle_model, structure), 0.0)
            for method in methods:
                hp = hparams[scenario][method]["config"]
                model, seconds, budget = run_method(method, hp, scale, scenario, seed, original["path"])
                budget["sample_passes_ratio_to_oracle"] = budget["sample_passes"] / (train_recipe(scale)["epochs"] * budget["retain_size"])
                budgets.setdefault(scenario, {})[method] = budget
                add(method, evaluate_model(model, loaders, oracle_metrics, oracle_model, structure), seconds)
                calibration[f"{scenario}/seed{seed}"]["time_ratio_vs_estimate"][method] = seconds / estimate
            # write after every seed x scenario so a long run leaves partial results behind
            _write(out_path, args, scale, seeds, methods, hparams, models, budgets, calibration, rows, time.perf_counter() - wall)
    if args.prepare_only:
        log(f"[b1] prepared {len(models)} models in {time.perf_counter() - wall:.1f}s")
        return {}
    payload = _write(out_path, args, scale, seeds, methods, hparams, models, budgets, calibration, rows, time.perf_counter() - wall)
    print(format_tables(payload))
    print(f"\nwrote {out_path} ({len(rows)} rows, {time.perf_counter() - wall:.0f}s wall)")
    return payload


def _write(out_path, args, scale, seeds, methods, hparams, models, budgets, calibration, rows, wall_seconds) -> dict[str, Any]:
    import torch

    payload = {
        "benchmark": "B1",
        "scale": scale,
        "command": benchmarking.command_line(),
        "git_commit": benchmarking.git_commit(BENCH_DIR.parent),
        "versions": benchmarking.versions(),
        "config": {
            "dataset": SCALES[scale]["dataset"],
            "model": {"class": model_class(scale), **SCALES[scale]["model"]},
            "train_recipe": {"optimizer": "Adam", **train_recipe(scale)},
            "max_eval_samples": SCALES[scale]["max_eval_samples"],
            "scenarios": {s: SCENARIOS[s] for s in args.scenarios},
            "seeds": seeds,
            "methods": methods,
            "hparams": hparams,
            "torch_threads": torch.get_num_threads(),
            "mia_attack": MIA_ATTACK,
            "structure_metrics": {
                "against": "the oracle (same seed and scenario)",
                "layer": STRUCTURE_LAYER,
                "k": STRUCTURE_K,
                "samples": f"a seeded subset of {STRUCTURE_SAMPLES} retained training samples (the evaluation retain split)",
            },
            "time_ratio_denominator": "the oracle's cached training seconds (same seed and scenario)",
            "budgets": budgets,
            "budget_note": "sample_passes = optimizer steps x (forget batch if the method uses it + retain batch if it has a retain term); "
            "sample_passes_ratio_to_oracle divides by the oracle's epochs x retain size: a load-independent cost ratio",
            "time_calibration": calibration,
            "cached_models": models,
            "git_dirty": benchmarking.git_dirty(BENCH_DIR.parent),
            "wall_seconds": wall_seconds,
        },
        "rows": rows,
        "summary": summarise(rows),
    }
    benchmarking.write_json(out_path, payload)
    return payload


if __name__ == "__main__":
    main()
