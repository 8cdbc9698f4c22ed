#!/usr/bin/env python
"""Benchmark B5 — recommendation unlearning on MovieLens-100k (shared/BENCHMARKS.md; the logic is
``lightning_unlearn.benchmarking.b5``).

Two backbones (content-aware MF and a LightGCN-style graph model, both with genre and MiniLM title branches) × three
deletion regimes (users, items, interactions) × seeds: the original, the retrained oracle, the SISA/RecEraser-style
partition baseline, GA and NPO with a retain BPR term, TRU (``tru_rec``) and its ablations. Recall@20 / NDCG@20 on
retained users, the deleted items' hit rate@20 and mean rank for the users they were deleted from, a
membership-inference AUC (deleted vs never-seen interactions of the same users), and time as a ratio of the oracle's
retraining in the same run.

Run from the repository root (offline; one thread is fastest on a shared 2-core machine)::

    OMP_NUM_THREADS=1 python benchmarks/b5_recommendation.py --quick   # ~1-2 min: 200 users, 1 seed, 6 epochs
    OMP_NUM_THREADS=1 python benchmarks/b5_recommendation.py           # full: every user, seeds 1-3

Each backbone's method settings are its configs in ``configs/movielens_b5/<backbone>/`` (a regime tuned apart has its own
``<regime>/<method>.yaml``). Seed 0 is the tuning seed (``--tune``: the grids of ``b5.tuning_rows*`` on seed 0); the
reported runs use seeds 1-3.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import b5

BENCH_DIR = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the ~1-minute run (200 users, one seed)")
    parser.add_argument("--backbones", nargs="+", default=list(b5.BACKBONES), choices=b5.BACKBONES)
    parser.add_argument("--regimes", nargs="+", default=list(b5.REGIMES), choices=b5.REGIMES)
    parser.add_argument("--seeds", nargs="+", type=int, help="override the scale's seeds (0 = the tuning seed)")
    parser.add_argument("--methods", nargs="+", choices=sorted(b5.METHOD_ROWS), help="unlearning rows (default: all)")
    parser.add_argument("--no-ablations", action="store_true", help="skip TRU's ablation rows")
    parser.add_argument("--tune", type=int, choices=(1, 2, 3, 4, 5),
                        help="a tuning round without the partition: b5.tuning_rows, _2, _3, _4 on seed 0; 5: _4's grid on b5.TUNING_SEEDS")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--combine", nargs="+", metavar="JSON", help="only tabulate the cells of these result files together")
    args = parser.parse_args(argv)
    if args.combine:
        combine(args.combine, args.tag or "combined")
        return

    import torch

    torch.set_num_threads(args.threads)
    benchmarking.quiet_lightning()
    scale = "quick" if args.quick else "full"
    name = f"b5_{scale}{f'_tuning{args.tune}' if args.tune else ''}{'_' + args.tag if args.tag else ''}"
    start = time.perf_counter()
    tuning = {1: b5.tuning_rows, 2: b5.tuning_rows_2, 3: b5.tuning_rows_3, 4: b5.tuning_rows_4, 5: b5.tuning_rows_4}
    rows = tuning[args.tune]() if args.tune else None  # None: each cell runs its backbone's and regime's configs
    seeds = args.seeds
    if args.tune and seeds is None:
        seeds = list(b5.TUNING_SEEDS) if args.tune == 5 else [0]
    cells = b5.run(
        scale, tuple(args.backbones), tuple(args.regimes), seeds, rows, partition=not args.tune, methods=args.methods, ablations=not args.no_ablations
    )
    table = b5.markdown(cells)
    if args.tune:  # the row each backbone/regime chooses (mean objective over the tuning seeds)
        choice = b5.tuning_choice(cells)
        table += "\n\n**Chosen (lowest mean max(0, −ΔRecall@20) + |Δhit@20|, points)**\n\n" + benchmarking.markdown_table(
            ["cell", "row", "objective", "ΔRecall@20", "Δhit@20", "time / retrain", "seeds"],
            [[g, c["row"], f"{c['objective']:.2f}", f"{c['recall_gap']:+.2f}", f"{c['hit_gap']:+.2f}", f"{c['time_ratio']:.3f}", str(c["seeds"])] for g, c in choice.items()],
        )
    print(table)
    out = BENCH_DIR / "results"
    benchmarking.write_json(
        out / f"{name}.json",
        {
            "benchmark": "B5",
            "scale": scale,
            "command": benchmarking.command_line(),
            "versions": benchmarking.versions(),
            "rows": rows if rows is not None else "per cell (configs/movielens_b5)",
            "train": b5.TRAIN,
            "settings": b5.SCALES[scale],
            "cells": cells,
            "target": b5.target_check(cells),
            "choice": b5.tuning_choice(cells) if args.tune else None,
            "seconds": time.perf_counter() - start,
        },
    )
    (out / f"{name}.md").write_text(table + "\n")
    print(f"wrote {out / name}.json / .md in {time.perf_counter() - start:.0f}s")


def combine(files: list[str], tag: str) -> None:
    """One table (mean ± std over the seeds) from the cells of several result files, e.g. one per seed and backbone."""
    import json

    cells, commands = [], []
    for file in files:
        payload = json.loads(Path(file).read_text())
        cells += payload["cells"]
        commands.append(payload["command"])
    table = b5.markdown(cells)
    print(table)
    out = BENCH_DIR / "results"
    benchmarking.write_json(out / f"b5_{tag}.json", {"benchmark": "B5", "files": files, "commands": commands, "cells": cells, "target": b5.target_check(cells)})
    (out / f"b5_{tag}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
