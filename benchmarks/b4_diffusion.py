#!/usr/bin/env python
"""Benchmark B4 — erase a concept ("sneaker") from a text-conditioned diffusers UNet trained on Fashion-MNIST.

The protocol is :mod:`lightning_unlearn.benchmarking.b4`: the original (a 16×16 ``UNet2DConditionModel`` with
cross-attention to all-MiniLM-L6-v2 caption states) is trained in-process once and cached, a SmallCNN judge
trained on real 16×16 Fashion-MNIST scores DDIM generations, and ESD, SalUn for diffusion, SPARE and RAZOR for
diffusion unlearn the original with the settings of ``configs/fashion_mnist_diffusion/<method>.yaml``.

Run from the repository root::

    python benchmarks/b4_diffusion.py --quick            # 20 unlearning steps per method, 4 images per prompt
    python benchmarks/b4_diffusion.py --seeds 0 1 2      # the configs' steps, 8 images per prompt
    python benchmarks/b4_diffusion.py --merge a.json b.json --out all.json   # one table from runs of single seeds
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import b4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="20 unlearning steps per method, 4 images per prompt")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="unlearning / generation seeds")
    parser.add_argument("--methods", nargs="+", default=list(b4.METHODS), choices=list(b4.METHODS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a contended machine)")
    parser.add_argument("--out", default=None, help="JSON output (default benchmarks/results/b4_diffusion[_quick].json)")
    parser.add_argument("--merge", nargs="+", default=None, help="JSON files of earlier runs to merge into one table")
    args = parser.parse_args()
    if args.merge:
        result = b4.merge_results(args.merge)
        if args.out:
            b4.write_results(args.out, result)
        print(b4.table(result))
        return
    torch.set_num_threads(args.threads)
    benchmarking.quiet_lightning()
    result = b4.run(args.methods, tuple(args.seeds), quick=args.quick, log=lambda *a: print(*a, flush=True))
    original = Path("artifacts/fashion_mnist_diffusion/original.pt")  # what the configs' `original:` points at
    original.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result["original"]["path"], original)
    out = Path(args.out or f"benchmarks/results/b4_diffusion{'_quick' if args.quick else ''}.json")
    b4.write_results(out, {"quick": args.quick, "seeds": args.seeds, "threads": args.threads, **result, "versions": benchmarking.versions("diffusers")})
    print(b4.table(result))
    print(f"original: {result['original']['seconds']:.0f} s training; judge test accuracy {100 * result['judge']['test_acc']:.1f}%")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
