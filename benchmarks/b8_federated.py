#!/usr/bin/env python
"""Benchmark B8 — a client leaves a Flower federation (Fashion-MNIST, 10 clients): retrain, FedEraser, PGA, FOUL.

One ServerApp on Flower's simulation engine (Ray) trains, for every split scheme and seed, the original FedAvg
model, the retrain oracle (FedAvg without the leaving client, same rounds and seed) and every unlearning method;
each model is then scored on the test set, the leaving client's data and the remaining clients' data, with
MIA-efficacy on the leaving client's data; wall time and the bytes of the Flower messages are ratios of the
oracle's (the protocol: :mod:`lightning_unlearn.benchmarking.b8`; the settings: ``configs/federated_fmnist/``).

A second part runs MPU (multiple perturbed copies) through Flower on a causal LM that learned fictitious authors
(a tiny Llama for ``--quick``, SmolLM2-135M-Instruct for the full run):
the data owner forgets one author on perturbed copies and the result is compared with the same method run
noise-free (``--part mpu``; written to ``benchmarks/results/b8_mpu_<scale>.json``).

The deletion request is a client leaving by default; ``--request class`` (the requesting client deletes one class of
its data, ``federation.forget_class``) or ``--request samples`` (a seeded ``federation.forget_fraction`` of its
samples) runs the Fashion-MNIST part for that request instead (no MPU; written to
``benchmarks/results/b8_<scale>_<request>.json``; FOUL is not defined for it, see ``docs/federated.md``).

Run from the repository root::

    python benchmarks/b8_federated.py --quick        # Dirichlet split, 3 rounds, 200 images/client, 3 seeds; MPU
    python benchmarks/b8_federated.py                # IID and Dirichlet, 10 rounds, 600 images/client, 3 seeds; MPU
                                                     # on SmolLM2-135M-Instruct
    python benchmarks/b8_federated.py --quick --request class     # client 0 deletes its most frequent class
    python benchmarks/b8_federated.py --quick --request samples   # client 0 deletes 20% of its samples
    python benchmarks/b8_federated.py --part mpu --seeds 0 --out benchmarks/results/b8_mpu_full_seed0.json  # one seed
    python benchmarks/b8_federated.py --table benchmarks/results/b8_mpu_full_seed*.json                   # pooled
"""

from __future__ import annotations

import argparse
import time

import torch

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import b8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick scale (configs/federated_fmnist/quick.yaml)")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the config's seeds")
    parser.add_argument("--schemes", nargs="+", choices=["iid", "dirichlet"], help="override the config's split schemes")
    parser.add_argument("--part", choices=["fmnist", "mpu", "all"], default="all", help="the Fashion-MNIST federation, MPU, or both")
    parser.add_argument("--request", choices=["client", "class", "samples"], help="the deletion request (default: the config's federation.request)")
    parser.add_argument("--forget-class", help="override federation.forget_class (a class id or 'largest')")
    parser.add_argument("--forget-fraction", type=float, help="override federation.forget_fraction (in (0, 1))")
    parser.add_argument(
        "--table", metavar="JSON", nargs="+",
        help="only re-render the tables of results files this script wrote (one part; their records pooled, e.g. one file per seed)",
    )
    parser.add_argument(
        "--out", default=None,
        help="JSON output of the part run (default benchmarks/results/b8_<scale>[_<request>].json, and b8_mpu_<scale>.json for --part mpu)",
    )
    args = parser.parse_args()
    if args.table:
        import json

        saved = []
        for path in args.table:
            with open(path) as f:
                saved.append(json.load(f))
        records = [r for s in saved for r in s["records"]]
        print(b8.mpu_markdown(records) if "schemes" not in saved[0] else b8.markdown(b8.summarize(records)))
        return
    torch.set_num_threads(1)
    benchmarking.quiet_lightning()
    scale = "quick" if args.quick else "full"
    settings = b8.load_settings(scale)
    seeds = args.seeds or settings["seeds"]
    schemes = args.schemes or settings["schemes"]
    fed = settings["federation"]
    if args.request:
        fed["request"] = args.request
    if args.forget_class is not None:
        fed["forget_class"] = args.forget_class if args.forget_class == "largest" else int(args.forget_class)
    if args.forget_fraction is not None:
        fed["forget_fraction"] = args.forget_fraction
    request = str(fed.get("request", "client"))
    if request != "client" and args.part == "mpu":
        parser.error(f"--request {request} is a request at a Fashion-MNIST client; --part mpu has no such request (use --part fmnist).")
    for seed in seeds:
        b8.request_of(settings, seed)  # errors name the bad setting before anything runs
    if args.part in ("mpu", "all") and request == "client":
        start = time.perf_counter()
        mpu_records = b8.run_mpu(settings, seeds)
        mpu_table = b8.mpu_markdown(mpu_records)
        print(mpu_table)
        mpu_out = args.out if args.part == "mpu" and args.out else f"benchmarks/results/b8_mpu_{scale}.json"
        benchmarking.write_json(
            mpu_out,
            {
                "command": benchmarking.command_line(),
                "git_commit": benchmarking.git_commit(),
                "versions": benchmarking.versions("flwr", "ray", "transformers"),
                "settings": settings["mpu"],
                "seeds": seeds,
                "seconds": time.perf_counter() - start,
                "records": mpu_records,
                "table": mpu_table,
            },
        )
        print(f"wrote {mpu_out} ({time.perf_counter() - start:.0f} s)")
        if args.part == "mpu":
            return
    start = time.perf_counter()
    records = b8.run(settings, schemes, seeds)
    summary = b8.summarize(records)
    table = b8.markdown(summary)
    print(table)
    out = args.out or f"benchmarks/results/b8_{scale}{'' if request == 'client' else '_' + request}.json"
    benchmarking.write_json(
        out,
        {
            "command": benchmarking.command_line(),
            "git_commit": benchmarking.git_commit(),
            "versions": benchmarking.versions("flwr", "ray"),
            "settings": settings,
            "seeds": seeds,
            "schemes": schemes,
            "seconds": time.perf_counter() - start,
            "records": records,
            "summary": {s: {r: {k: list(v) for k, v in m.items()} for r, m in rows.items()} for s, rows in summary.items()},
            "table": table,
        },
    )
    print(f"wrote {out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
