#!/usr/bin/env python
"""B7 side by side: plain PyTorch loop vs lightning_unlearn vs SUPREME on the digits model (see README.md here).

Run from the repository root with the project's interpreter (the peer runs in its scratch venv)::

    .venv/bin/python benchmarks/peers/b7_peers.py --rounds 5

Every round starts two processes, ``run_ours.py`` (project venv: plain loops + ours) and ``run_supreme.py`` (peer
venv: SUPREME + the same plain loop); the order of the two processes and the order of the variants inside each
alternate from round to round. Ratios are per round, to the plain loop of the same workload measured in the same
round (project venv), then median and [min–max] over rounds. Writes ``benchmarks/results/b7_peers.json`` and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OURS = ["plain_gar", "plain_ga", "ours_gar", "ours_ga", "ours_gar_nomon", "ours_gar_noval", "ours_ga_noval"]
PEER = ["supreme_neggrad", "supreme_neggrad_sgd", "supreme_neggrad_w8", "plain_ga_peervenv"]
WORKLOAD = {
    "plain_gar": "GA+retain", "ours_gar": "GA+retain", "ours_gar_nomon": "GA+retain", "ours_gar_noval": "GA+retain",
    "plain_ga": "GA (forget only)", "ours_ga": "GA (forget only)", "ours_ga_noval": "GA (forget only)", "supreme_neggrad": "GA (forget only)",
    "supreme_neggrad_sgd": "GA (forget only)", "supreme_neggrad_w8": "GA (forget only)", "plain_ga_peervenv": "GA (forget only)",
}
LABEL = {
    "plain_gar": "plain loop",
    "ours_gar": "ours: UnlearningModule + Trainer + CSVLogger (monitor on)",
    "ours_gar_nomon": "ours, monitor=False",
    "ours_gar_noval": "ours, Trainer(limit_val_batches=0)",
    "ours_ga_noval": "ours GA, Trainer(limit_val_batches=0)",
    "plain_ga": "plain loop",
    "ours_ga": "ours: GradientAscent(retain_weight=0)",
    "supreme_neggrad": "SUPREME neg_grad (Adam, num_workers=0)",
    "supreme_neggrad_sgd": "SUPREME neg_grad (its SGD, num_workers=0)",
    "supreme_neggrad_w8": "SUPREME neg_grad (Adam, its default num_workers=8)",
    "plain_ga_peervenv": "plain loop in the peer venv",
}
METRICS = ("fit_s", "ms_per_step", "median_step_ms")


def call(python: str, script: str, configs: str, variants: list[str], warmup: int, lr: float) -> list[dict]:
    cmd = [python, str(HERE / script), "--configs", configs, "--variants", ",".join(variants), "--warmup", str(warmup), "--lr", str(lr)]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if res.returncode:
        sys.stderr.write(res.stderr[-4000:])
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode})")
    return json.loads(res.stdout.strip().splitlines()[-1])


def versions(python: str) -> dict:
    code = (
        "import json, importlib.metadata as m\n"
        "out = {}\n"
        "for p in ('torch', 'lightning', 'scikit-learn', 'supreme-unlearning', 'lightning-unlearn'):\n"
        "    try: out[p] = m.version(p)\n"
        "    except Exception: pass\n"
        "print(json.dumps(out))"
    )
    # cwd="/": with the repository as cwd, `python -c` would find the repository's own metadata on sys.path
    return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, cwd="/").stdout)


def git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return None


def summarise(raw: list[dict], rounds: int) -> list[dict]:
    rows = []
    keys = sorted({(r["batch"], r["steps"]) for r in raw}, key=lambda k: k[0])
    for batch, steps in keys:
        for variant in ["plain_gar", "ours_gar", "ours_gar_nomon", "ours_gar_noval", "plain_ga", "ours_ga", "ours_ga_noval"] + PEER:
            recs = {r["round"]: r for r in raw if r["variant"] == variant and r["batch"] == batch}
            if not recs:
                continue
            # every ratio is within one process: the peer's variants are divided by the plain loop of the peer process
            ref_name = "plain_gar" if WORKLOAD[variant] == "GA+retain" else "plain_ga_peervenv" if variant.startswith("supreme") else "plain_ga"
            ref = {r["round"]: r for r in raw if r["variant"] == ref_name and r["batch"] == batch}
            row = {"variant": variant, "label": LABEL[variant], "workload": WORKLOAD[variant], "batch": batch, "steps": steps, "reference": ref_name, "rounds": len(recs)}
            row["setup_teardown_s_median"] = statistics.median(recs[k]["setup_s"] + recs[k]["teardown_s"] for k in recs)
            for m in METRICS:
                vals = [recs[k][m] for k in sorted(recs)]
                ratios = [recs[k][m] / ref[k][m] for k in sorted(recs) if k in ref]
                row[f"{m}_median"] = statistics.median(vals)
                row[f"{m}_ratio_median"] = statistics.median(ratios)
                row[f"{m}_ratio_min"] = min(ratios)
                row[f"{m}_ratio_max"] = max(ratios)
            if variant == "ours_ga":  # ours vs the peer on the same workload, per round
                # normalised: (ours / plain, project process) / (SUPREME / plain, peer process), so that the two
                # processes' different load levels cancel; "raw" divides the two processes' times directly
                peer = {r["round"]: r for r in raw if r["variant"] == "supreme_neggrad" and r["batch"] == batch}
                peer_plain = {r["round"]: r for r in raw if r["variant"] == "plain_ga_peervenv" and r["batch"] == batch}
                for m in METRICS:
                    ks = [k for k in sorted(recs) if k in peer and k in peer_plain and k in ref]
                    if not ks:
                        continue
                    norm = [(recs[k][m] / ref[k][m]) / (peer[k][m] / peer_plain[k][m]) for k in ks]
                    rawr = [recs[k][m] / peer[k][m] for k in ks]
                    row[f"{m}_vs_supreme_median"], row[f"{m}_vs_supreme_min"], row[f"{m}_vs_supreme_max"] = statistics.median(norm), min(norm), max(norm)
                    row[f"{m}_vs_supreme_raw_median"], row[f"{m}_vs_supreme_raw_min"], row[f"{m}_vs_supreme_raw_max"] = statistics.median(rawr), min(rawr), max(rawr)
            rows.append(row)
    return rows


def table(rows: list[dict], cfg: dict) -> str:
    def rng(r, m):
        return f"{r[f'{m}_ratio_median']:.2f} [{r[f'{m}_ratio_min']:.2f}–{r[f'{m}_ratio_max']:.2f}]"

    head = ["batch×steps", "workload", "variant", "ratio to", "whole fit s (median)", "whole fit / plain", "set-up+teardown s", "ms/step (median)", "ms/step / plain", "median step / plain"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(
            f"| {r['batch']}×{r['steps']} | {r['workload']} | {r['label']} | {r['reference']} | {r['fit_s_median']:.2f} | {rng(r, 'fit_s')} | "
            f"{r['setup_teardown_s_median']:.2f} | {r['ms_per_step_median']:.1f} | {rng(r, 'ms_per_step')} | {rng(r, 'median_step_ms')} |"
        )
    extra = []
    for r in rows:
        if "fit_s_vs_supreme_median" in r:
            for kind, tag in (("", "normalised by each process's plain loop"), ("raw_", "raw, across processes")):
                extra.append(
                    f"- batch {r['batch']}: ours GA / SUPREME neg_grad (Adam, workers 0), {tag}: whole fit "
                    + ", ".join(
                        f"{name} {r[f'{m}_vs_supreme_{kind}median']:.2f} [{r[f'{m}_vs_supreme_{kind}min']:.2f}–{r[f'{m}_vs_supreme_{kind}max']:.2f}]"
                        for m, name in (("fit_s", ""), ("ms_per_step", "ms/step"), ("median_step_ms", "median step"))
                    ).lstrip()
                )
    note = (
        f"### B7 side by side — digits SmallCNN(8, 16, 64), {cfg['rounds']} rounds, 1 torch thread, Adam lr {cfg['lr']}\n\n"
        "Ratios: per round, to the plain loop of the same workload run in the same process (ours: project venv; SUPREME: its\n"
        "venv, column 'ratio to'); median [min–max] over rounds. 'plain loop in the peer venv' is divided by the project's\n"
        "plain loop (another process, same round): a parity/noise check between the two processes.\n"
        "whole fit = from before building model/Trainer/Fabric to fit's return (set-up, monitor passes, teardown included);\n"
        f"ms/step = end of step {cfg['warmup']} -> end of last step, divided by the steps (per-epoch work included);\n"
        "median step = median step-to-step interval in that window (steady state).\n\n"
    )
    return note + "\n".join(lines) + ("\n\n" + "\n".join(extra) if extra else "")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--configs", default="32x200,128x50")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--ours-python", default=sys.executable)
    p.add_argument("--peer-python", default="/tmp/peers/supreme/bin/python")
    p.add_argument("--peer-variants", default=",".join(PEER))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "b7_peers.json"))
    p.add_argument("--summarise", default=None, metavar="JSON", help="Only re-print the table of an earlier run's JSON.")
    args = p.parse_args(argv)
    if args.summarise:
        payload = json.loads(Path(args.summarise).read_text())
        payload["rows"] = summarise(payload["raw"], payload["config"]["rounds"])
        print(table(payload["rows"], payload["config"]))
        return payload
    peer_variants = args.peer_variants.split(",")
    raw: list[dict] = []
    t0 = time.perf_counter()
    for r in range(args.rounds):
        flip = r % 2 == 1
        jobs = [("run_ours.py", args.ours_python, OURS[::-1] if flip else OURS), ("run_supreme.py", args.peer_python, peer_variants[::-1] if flip else peer_variants)]
        for script, python, variants in (jobs[::-1] if flip else jobs):
            for rec in call(python, script, args.configs, variants, args.warmup, args.lr):
                rec["round"] = r
                raw.append(rec)
        print(f"[b7_peers] round {r + 1}/{args.rounds} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    cfg = {
        "model": "lightning_unlearn.models.SmallCNN(image_size=8, width=16, hidden=64), 13,706 parameters (peer venv: same layers re-declared in _digits.DigitsCNN, same state dict)",
        "data": "sklearn load_digits (8x8, /16); seeded random forget set of 1,280, retain = the other 517",
        "configs": args.configs,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "lr": args.lr,
        "optimizer": "Adam in every variant except supreme_neggrad_sgd (SUPREME's SGD lr 0.02, momentum 0.9, wd 5e-4)",
        "torch_threads": 1,
        "order": "round r: the two processes and the variants in each run in reversed order when r is odd; each variant runs once untimed (10 steps) first",
        "versions": {"project_venv": versions(args.ours_python), "peer_venv": versions(args.peer_python)},
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "wall_seconds": time.perf_counter() - t0,
    }
    rows = summarise(raw, args.rounds)
    payload = {"benchmark": "B7-peers", "config": cfg, "rows": rows, "raw": raw}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(table(rows, cfg))
    print(f"\nwrote {out}")
    return payload


if __name__ == "__main__":
    main()
