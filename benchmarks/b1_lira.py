#!/usr/bin/env python
"""Benchmark B1-LiRA — U-LiRA (Hayes et al., SaTML 2025, arXiv:2403.01218) at the B1 digits scale.

Can an attacker with shadow models tell an unlearned model from one that never trained on the forgotten
examples? (AUC 0.5 = no; see ``lightning_unlearn/attacks/lira.py`` for the attack and what it simplifies.)

Protocol:

1. ``S`` shadow models ``SmallCNN(image_size=8, width=16, hidden=64)`` are trained with the B1 quick recipe (Adam,
   lr 1e-3, 30 epochs, batch 32; ``SupervisedFit``) on balanced random halves of scikit-learn's digits training
   split (the pool, 1,347 images): every image is in the training set of exactly ``S // 2`` shadows.
2. A seeded set of forget candidates (``--candidates``, default 270 = 20% of the pool) is unlearned by
   ``round(forget_fraction · S // 2)`` of the shadows that trained on each candidate (default 0.5), so every
   shadow forgets about 10% of its training set (the B1 "random" scenario).
3. Every row unlearns its own copy of the same trained shadows (``train_shadows`` with a mapping of unlearning
   functions): ``original`` does nothing (an upper reference: plain LiRA on the candidates), ``retrain`` trains a
   fresh model on the retain part with the same recipe (exact unlearning: AUC ≈ 0.5 expected), and every method
   runs through ``UnlearningModule`` (``MethodUnlearn``) with its B1 quick/random hyper-parameters
   (its shipped config ``configs/digits/<method>.yaml``, as ``b1_classification.py --quick`` runs it).
4. U-LiRA, leave-one-out: each shadow in turn is the target and the other ``S - 1`` the references (IN = those
   that unlearned the example, OUT = those that never trained on it); positives are the target's forgotten
   candidates, negatives the candidates it never trained on; one ROC curve over all targets. Online (fixed
   variance) and offline AUC and the TPR at 1% FPR are reported.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/b1_lira.py                   # 16 shadows, ft/ga/graddiff/npo (~2.5 min)
    OMP_NUM_THREADS=1 python benchmarks/b1_lira.py --shadows 8 --forget-fraction 0.75 --candidates 180 --methods npo
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import b1

BENCH_DIR = Path(__file__).resolve().parent

DEFAULT_METHODS = ("ft", "ga", "graddiff", "npo")
SCALE, SCENARIO = "quick", "random"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="U-LiRA at the B1 digits scale (see the module docstring).")
    parser.add_argument("--shadows", type=int, default=16, help="number of shadow models S (default 16)")
    parser.add_argument("--candidates", type=int, default=270, help="forget candidates drawn from the pool (default 270)")
    parser.add_argument("--forget-fraction", type=float, default=0.5, help="share of a candidate's IN shadows that unlearn it")
    parser.add_argument(
        "--methods", nargs="+", default=list(DEFAULT_METHODS), help="registered method names (settings: configs/digits/<method>.yaml, B1 quick/random)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--out", default=str(BENCH_DIR / "results" / "b1_lira.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    benchmarking.quiet_lightning()
    import torch

    from lightning_unlearn.attacks.lira import MethodUnlearn, SupervisedFit, leave_one_out, train_shadows
    from lightning_unlearn.models import SmallCNN

    torch.set_num_threads(args.threads)
    scale = b1.SCALES[SCALE]
    pool, _ = b1.load_data(scale["dataset"])
    recipe = b1.train_recipe(SCALE)
    fit = SupervisedFit(epochs=recipe["epochs"], lr=recipe["lr"], batch_size=recipe["batch_size"])

    def make_model() -> torch.nn.Module:
        return SmallCNN(**scale["model"])

    seconds: dict[str, float] = {}

    def timed(name: str, fn):
        def run(model, forget, retain):
            start = time.perf_counter()
            out = fn(model, forget, retain)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            return out

        return run

    unlearn = {
        "original": timed("original", lambda model, forget, retain: model),
        "retrain": timed("retrain", lambda model, forget, retain: fit(make_model(), retain)),
    }
    hparams: dict[str, Any] = {}
    for name in args.methods:
        hp, source = b1.resolve_hparams(SCALE, SCENARIO, name)
        if hp.get("schedule", "constant") != "constant":
            raise SystemExit(f"{name}: the {hp['schedule']!r} learning-rate schedule is not supported here")
        hparams[name] = {**hp, "source": source}
        factory = lambda name=name, hp=hp: b1.build_method(name, hp["method"], args.seed, scale["dataset"])  # noqa: E731
        unlearn[name] = timed(
            name,
            MethodUnlearn(
                factory, epochs=hp["epochs"], lr=hp["lr"], batch_size=hp["batch_size"],
                retain_batch_size=hp.get("retain_batch_size"), mode=hp["mode"],
                trainer_kwargs={"max_steps": hp.get("max_steps", -1)},
            ),
        )  # fmt: skip

    gen = torch.Generator().manual_seed(10_000 + args.seed)
    candidates = torch.randperm(len(pool), generator=gen)[: args.candidates].sort().values
    start = time.perf_counter()
    shadows = train_shadows(
        pool, make_model, fit, n_shadows=args.shadows, seed=args.seed, unlearn_fn=unlearn,
        forget_fraction=args.forget_fraction, forget_candidates=candidates, log=print,
    )  # fmt: skip
    wall = time.perf_counter() - start

    results: dict[str, Any] = {}
    for name, stats in shadows.items():
        online = leave_one_out(stats)
        offline = leave_one_out(stats, variant="offline")
        results[name] = {
            **online,
            "offline_auc": offline["auc"],
            "offline_tpr_at_1pct_fpr": offline["tpr_at_1pct_fpr"],
            "unlearn_seconds_per_shadow": seconds.get(name, 0.0) / args.shadows,
        }
    first = next(iter(shadows.values()))
    payload = {
        "benchmark": "b1_lira",
        "command": benchmarking.command_line(),
        "git_commit": benchmarking.git_commit(BENCH_DIR.parent),
        "git_dirty": benchmarking.git_dirty(BENCH_DIR.parent),
        "versions": benchmarking.versions(),
        "threads": torch.get_num_threads(),
        "config": {
            "dataset": scale["dataset"],
            "pool_size": len(pool),
            "model": {"class": "SmallCNN", **scale["model"]},
            "train": recipe,
            "n_shadows": args.shadows,
            "n_candidates": int(candidates.numel()),
            "forget_fraction": args.forget_fraction,
            "unlearned_per_candidate": int(first.unlearned_mask.sum(0).max()),
            "forget_set_size_per_shadow": first.unlearned_mask.sum(1).tolist(),
            "seed": args.seed,
            "evaluation": "leave-one-out over the shadows; online LiRA with fixed (pooled) variance, and offline",
            "hparams": hparams,
        },
        "results": results,
        "wall_seconds": wall,
    }
    benchmarking.write_json(args.out, payload)
    rows = [
        [
            name,
            f"{r['auc']:.3f}",
            f"{r['tpr_at_1pct_fpr']:.3f}" if r["tpr_at_1pct_fpr"] is not None else "–",
            f"{r['offline_auc']:.3f}",
            str(r["n_members"]),
            str(r["n_nonmembers"]),
            f"{r['unlearn_seconds_per_shadow']:.2f}",
        ]
        for name, r in results.items()
    ]
    header = ["Method", "U-LiRA AUC", "TPR@1%FPR", "offline AUC", "forgotten", "never trained", "unlearn s/shadow"]
    print(f"\nU-LiRA, digits, {args.shadows} shadows, {int(candidates.numel())} candidates ({wall:.0f} s)")
    print(benchmarking.markdown_table(header, rows))
    print(f"\nwrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
