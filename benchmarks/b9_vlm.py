#!/usr/bin/env python
"""Benchmark B9 — vision-language unlearning: VLM-UnBench's prompt conditions and Safety Mirage's one-word attack.

The protocol is :mod:`lightning_unlearn.benchmarking.b9`: a LLaVA-style VLM (EfficientNet-Lite0 with its ImageNet
weights → MLP projector → SmolLM2-135M-Instruct + LoRA, merged) is trained in-process once on Fashion-MNIST visual
QA and cached. Part 1 (VLM-UnBench): four-choice questions with hard negatives, forget classes sneaker and bag,
the five prompt conditions, then GradDiff / NPO / RMU / SimNPO / IdK-DPO / ASU (``configs/fashion_vqa/<method>.yaml``, ``--methods`` picks some) on the same
questions. Part 2 (Safety Mirage): the original, safety fine-tuning on a mix whose first word predicts refusal,
and NPO (the authors' variant) / RMU unlearning of the harmful answers, under the 3-shot one-word rewrite attack.

Run from the repository root::

    python benchmarks/b9_vlm.py --quick --seeds 0        # fewer test images (trains the original first, ~70 min on 2 cores)
    python benchmarks/b9_vlm.py --seeds 0 1 2            # the full evaluation
    python benchmarks/b9_vlm.py --parts unbench          # one part only
    python benchmarks/b9_vlm.py --parts unbench --oracle # part 1 with the retrained oracle (trained on first use)
    python benchmarks/b9_vlm.py --merge a.json b.json --out ab.json   # results of distinct seeds (one per process)
    python benchmarks/b9_vlm.py --tune '[{"config": "npo", "init_args": {"retain_weight": 5.0}}]'   # tuning seed 99
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import b9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="fewer test images per class")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="evaluation / unlearning seeds")
    parser.add_argument("--parts", nargs="+", default=["unbench", "safety"], choices=["unbench", "safety"])
    parser.add_argument(
        "--methods", nargs="+", default=list(b9.UNBENCH_METHODS), choices=b9.UNBENCH_METHODS, help="part 1's unlearning methods (configs/fashion_vqa/<name>.yaml); give a subset its own --out (--merge joins files)"
    )
    parser.add_argument(
        "--oracle", action="store_true", help="part 1 also scores the retrained oracle (the original's recipe without the forget classes; trained on first use, as long as the original)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", default=None, help="JSON output (default benchmarks/results/b9_vlm[_quick].json)")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="merge result files of distinct seeds into --out and print the tables")
    parser.add_argument(
        "--tune", metavar="JSON", help='score candidate settings on the unreported tuning seed instead, e.g. \'[{"config": "npo", "lr": 1e-5}]\''
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    benchmarking.quiet_lightning()
    if args.merge:
        import json

        merged = b9.merge([json.loads(Path(f).read_text()) for f in args.merge])
        merged["merged_from"] = list(args.merge)
        if args.out:
            benchmarking.write_json(Path(args.out), merged)
        print(b9.tables(merged))
        return
    if args.tune:
        import json

        records = b9.tune(json.loads(args.tune), log=lambda *a: print(*a, flush=True))
        out = Path(args.out or "benchmarks/results/b9_tuning.jsonl")
        with out.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
        print(f"appended {len(records)} records to {out}")
        return
    out = Path(args.out or f"benchmarks/results/b9_vlm{'_quick' if args.quick else ''}.json")

    def save(result) -> None:  # after every row (part 1) and seed (part 2): an interrupted run keeps what it measured
        payload = {"command": benchmarking.command_line(), "threads": args.threads, **result, "versions": benchmarking.versions("transformers", "peft")}
        benchmarking.write_json(out, payload)

    result = b9.run(tuple(args.seeds), quick=args.quick, parts=tuple(args.parts), log=lambda *a: print(*a, flush=True), save=save, methods=tuple(args.methods), oracle=args.oracle)
    save(result)
    print(b9.tables(result))
    print(f"original: {result['original']['seconds']:.0f} s training; wrote {out}")


if __name__ == "__main__":
    main()
