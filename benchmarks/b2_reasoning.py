#!/usr/bin/env python
"""Benchmark B2-reasoning — selective forgetting in chain-of-thought traces (shared/METHODS.md §9, RECONSTRUCTED;
the logic is ``lightning_unlearn.benchmarking.reasoning``, the write-up ``docs/reasoning.md``).

A tiny Llama (or, with ``--smollm2``, SmolLM2-135M-Instruct) fine-tuned on reasoning traces about 8 fictitious
authors unlearns 2 of them with the feature-replacement
loss (MiniLM analyst + placeholder rewriter) and with GradDiff on the same traces. Reported: the forget leak rate in
the generated chain of thought and in the final answer (separately), retain answer accuracy and trace NLL, held-out
trace NLL and accuracy, and the analyst's span precision/recall.

Run from the repository root (offline)::

    OMP_NUM_THREADS=1 python benchmarks/b2_reasoning.py --quick   # smoke test, ~1 min
    OMP_NUM_THREADS=1 python benchmarks/b2_reasoning.py           # seeds 0-2, ~10 min on 2 loaded cores
    OMP_NUM_THREADS=1 python benchmarks/b2_reasoning.py --smollm2 # the same on SmolLM2-135M-Instruct (--tune 1 first)
    python benchmarks/b2_reasoning.py --merge results/a.json results/b.json  # per-seed runs made in parallel -> one table
    OMP_NUM_THREADS=1 python benchmarks/b2_reasoning.py --tune 1  # the tuning grids (1, 2) on seed 3 (not reported)
    OMP_NUM_THREADS=1 python benchmarks/b2_reasoning.py --analyst # the analyst's span precision/recall, ~3 min
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import reasoning

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the smoke test (4 authors, 2 facts, a 1-layer model, one seed)")
    parser.add_argument("--smollm2", action="store_true", help="SmolLM2-135M-Instruct as the target instead of the tiny Llama (scale 'smollm2')")
    parser.add_argument("--seeds", nargs="+", type=int, help=f"reported seeds (default {list(reasoning.REPORT_SEEDS)}; --quick: 0)")
    parser.add_argument("--tune", type=int, choices=(1, 2), help=f"a tuning round on seed {reasoning.TUNE_SEED}")
    parser.add_argument("--analyst", action="store_true", help="only the analyst's span precision/recall (20 authors, seeds 1, 2, 4)")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument(
        "--merge", nargs="+", type=Path, metavar="JSON", help="join per-seed result files run in parallel into one table (written with --tag)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    benchmarking.quiet_lightning()
    if args.analyst:
        reasoning.run_analyst_study(RESULTS)
        return
    if args.merge:
        reasoning.merge(args.merge, RESULTS, tag=args.tag)
        return
    seeds = args.seeds or ([0] if args.quick else list(reasoning.REPORT_SEEDS))
    if args.quick and args.smollm2:
        parser.error("--quick and --smollm2 are two scales; pass one")
    reasoning.run("quick" if args.quick else "smollm2" if args.smollm2 else "full", seeds, RESULTS, tag=args.tag, tune=args.tune)


if __name__ == "__main__":
    main()
