#!/usr/bin/env python
"""Benchmark B6 — unlearning in a hybrid quantum-classical classifier (PennyLane, 4 qubits).

The protocol of Crivoi et al., "Machine Unlearning for Hybrid Quantum-Classical Neural Networks" (ICPR 2026),
arXiv 2512.19253 (:mod:`lightning_unlearn.benchmarking.b6`): for every depth L, entanglement, seed and scenario
(random 2% / class 0), the original and the oracle (retrained without the forget set) are trained once and cached;
every method unlearns the original; each model is scored with the study's metrics (accuracy on forget / retain / test,
UQI, KL and JS to the oracle on retain and test, argmax agreement with the oracle, confidence-MIA AUC, time as a ratio
of retraining). The claims of the study are checked on the depth × entanglement grid, and UQI is plotted against
depth (a PNG next to the JSON).

Methods come from ``--methods`` (default: the study's eleven, those registered; ``all``: every registered classifier
method); a method's settings from ``configs/quantum_<dataset>/[classwise/]<method>.yaml`` (defaults otherwise).

Run from the repository root::

    python benchmarks/b6_quantum.py --quick          # Iris, L=2, CZ ring, 1 seed (about a minute on 2 cores)
    python benchmarks/b6_quantum.py                  # Iris, L in {1,2,4,6} x {cz_ring, none}, 3 seeds
    python benchmarks/b6_quantum.py --scale digits   # digits reduced to 4 PCA features, L=2
    python benchmarks/b6_quantum.py --device-timing  # default.qubit vs lightning.qubit, forward+backward per batch
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from pathlib import Path
from typing import Any

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import b6

BENCH_DIR = Path(__file__).resolve().parent
COLUMNS = ("acc_forget", "acc_retain", "acc_test", "uqi", "kl_retain", "kl_test", "js_retain", "js_test", "agree_test", "mia_auc", "time_ratio")
BALANCED = ("eu_k", "lca", "certified")


def evaluate_cell(dataset: str, layers: int, entangler: str, seed: int, scenarios, methods, cache_dir: Path, log) -> list[dict[str, Any]]:
    """Every row of one (depth, entanglement, seed): the original, the oracle and each method, per scenario."""
    import torch

    rows = []
    original = b6.get_trained(b6.ORIGINAL, dataset, layers, entangler, None, seed, cache_dir, log)
    for scenario in scenarios:
        oracle = b6.get_trained(b6.ORACLE, dataset, layers, entangler, scenario, seed, cache_dir, log)
        loaders = b6.make_datamodule(dataset, scenario, seed).eval_dataloaders()
        loaders.pop("holdout", None)

        def load(path: str):
            model = b6.build_model(dataset, layers, entangler)
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()

        oracle_preds = b6.predictions(load(oracle["path"]), loaders)
        original_preds = b6.predictions(load(original["path"]), loaders)
        original_acc = {s: 100.0 * float((p.argmax(-1) == y).float().mean()) for s, (p, y) in original_preds.items()}
        cell = {"dataset": dataset, "layers": layers, "entangler": entangler, "seed": seed, "scenario": scenario}
        runs = [(b6.ORIGINAL, original_preds, 0.0, "-"), (b6.ORACLE, oracle_preds, float(oracle["seconds"]), "-")]
        for name in methods:
            hp, source = b6.method_settings(dataset, scenario, name)
            try:
                model, seconds = b6.run_method(name, hp, dataset, layers, entangler, scenario, seed, original["path"])
            except Exception as err:  # one failing method must not lose the grid: the row records the error
                log(f"[b6] L={layers} {entangler} seed={seed} {scenario} {name} FAILED: {type(err).__name__}: {err}")
                rows.append({**cell, "method": name, "error": f"{type(err).__name__}: {err}", "settings": source})
                continue
            runs.append((name, b6.predictions(model, loaders), seconds, source))
        for name, preds, seconds, source in runs:
            metrics = b6.study_metrics(preds, original_acc, oracle_preds)
            metrics["time_ratio"] = seconds / float(oracle["seconds"])
            rows.append({**cell, "method": name, "metrics": metrics, "seconds": seconds, "settings": source})
            if name not in (b6.ORIGINAL, b6.ORACLE):
                log(
                    f"[b6] L={layers} {entangler} seed={seed} {scenario:6s} {name:14s} forget {metrics['acc_forget']:5.1f} "
                    f"retain {metrics['acc_retain']:5.1f} test {metrics['acc_test']:5.1f} UQI {metrics['uqi']:6.1f} "
                    f"KL_test {metrics['kl_test']:.3f} time x{metrics['time_ratio']:.2f}"
                )
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample std over seeds of every metric, per (layers, entangler, scenario, method)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if "error" in row:
            continue
        groups.setdefault((row["layers"], row["entangler"], row["scenario"], row["method"]), []).append(row)
    out = []
    for (layers, entangler, scenario, method), items in groups.items():
        stats = {k: benchmarking.mean_std([r["metrics"][k] for r in items]) for k in items[0]["metrics"]}
        out.append({
            "layers": layers, "entangler": entangler, "scenario": scenario, "method": method, "seeds": len(items),
            "mean": {k: v[0] for k, v in stats.items()}, "std": {k: v[1] for k, v in stats.items()},
            "settings": items[0]["settings"],
        })  # fmt: skip
    return out


def _pearson(x: list[float], y: list[float]) -> float:
    if len(x) < 3 or statistics.pstdev(x) == 0 or statistics.pstdev(y) == 0:
        return math.nan
    return statistics.correlation(x, y)


def check_claims(rows: list[dict[str, Any]], summary: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    """The study's three claims and B6's target, each with the numbers behind the verdict."""
    rows = [r for r in rows if "error" not in r]
    depths = sorted({r["layers"] for r in rows})
    by = {(s["layers"], s["entangler"], s["scenario"], s["method"]): s for s in summary}
    claims: dict[str, Any] = {}

    # 1. Shallow circuits barely memorise: the original's advantage on the forgotten random 2% over the oracle that
    #    never saw them, and its train-test gap, per depth (mean over entanglers and seeds).
    memo = {}
    for depth in depths:
        orig = [r for r in rows if r["layers"] == depth and r["method"] == b6.ORIGINAL and r["scenario"] == "random"]
        orac = [r for r in rows if r["layers"] == depth and r["method"] == b6.ORACLE and r["scenario"] == "random"]
        if not orig:
            continue
        memo[depth] = {
            "forget_acc_original_minus_oracle": statistics.fmean(o["metrics"]["acc_forget"] for o in orig)
            - statistics.fmean(o["metrics"]["acc_forget"] for o in orac),
            "train_minus_test_acc_original": statistics.fmean(o["metrics"]["acc_retain"] - o["metrics"]["acc_test"] for o in orig),
        }
    if memo:
        shallow = memo[depths[0]]
        deep = memo[depths[-1]]
        held = shallow["forget_acc_original_minus_oracle"] <= 5.0 and shallow["train_minus_test_acc_original"] <= 5.0
        claims["shallow_circuits_barely_memorise"] = {
            "per_depth": memo,
            "criterion": f"at L={depths[0]} the original beats the oracle on the forget set by <= 5 points and its train-test gap is <= 5 points",
            "held": held,
            "deep_vs_shallow_memorisation_gap": deep["forget_acc_original_minus_oracle"] - shallow["forget_acc_original_minus_oracle"],
        }

    # 2. Deeper hybrids show sharper utility/forgetting trade-offs: across methods, how strongly forgetting costs
    #    utility (correlation of forget drop with utility drop) and how far methods spread in UQI, per depth.
    trade = {}
    for depth in depths:
        for scenario in ("random", "class"):
            cells = [s for s in summary if s["layers"] == depth and s["scenario"] == scenario and s["method"] in methods]
            if len(cells) < 3:
                continue
            base = [s for s in summary if s["layers"] == depth and s["scenario"] == scenario and s["method"] == b6.ORIGINAL]
            fd, ud = [], []
            for s in cells:
                o = next(b["mean"] for b in base if b["entangler"] == s["entangler"])
                fd.append(o["acc_forget"] - s["mean"]["acc_forget"])
                ud.append(0.5 * ((o["acc_retain"] - s["mean"]["acc_retain"]) + (o["acc_test"] - s["mean"]["acc_test"])))
            trade[f"L{depth}/{scenario}"] = {
                "corr_forget_drop_utility_drop": _pearson(fd, ud),
                "uqi_spread_across_methods": statistics.pstdev([s["mean"]["uqi"] for s in cells]),
                "mean_utility_drop": statistics.fmean(ud),
            }
    if len(depths) > 1 and trade:
        def spread(depth: int) -> float:
            vals = [v["uqi_spread_across_methods"] for k, v in trade.items() if k.startswith(f"L{depth}/")]
            return statistics.fmean(vals) if vals else math.nan

        claims["deeper_hybrids_sharper_tradeoffs"] = {
            "per_depth_scenario": trade,
            "criterion": f"the UQI spread across methods (mean over scenarios and entanglers) grows from L={depths[0]} to L={depths[-1]}",
            "spread_shallow": spread(depths[0]),
            "spread_deep": spread(depths[-1]),
            "held": spread(depths[-1]) > spread(depths[0]),
        }

    # 3. EU-k, LCA and Certified give the most consistent balance: rank by mean UQI and by KL to the oracle on test
    #    in every (depth, entanglement, scenario) cell; average the two ranks over cells.
    ranks: dict[str, list[float]] = {m: [] for m in methods}
    for key in {(s["layers"], s["entangler"], s["scenario"]) for s in summary}:
        cells = [by[(*key, m)] for m in methods if (*key, m) in by]
        if len(cells) < 2:
            continue
        uqi_order = sorted(cells, key=lambda s: -s["mean"]["uqi"])
        kl_order = sorted(cells, key=lambda s: s["mean"]["kl_test"])
        for s in cells:
            ranks[s["method"]].append(0.5 * (uqi_order.index(s) + kl_order.index(s)) + 1)
    mean_rank = {m: statistics.fmean(r) for m, r in ranks.items() if r}
    if len(mean_rank) >= 4:
        top = sorted(mean_rank, key=mean_rank.get)[:3]
        present = [m for m in BALANCED if m in mean_rank]
        claims["eu_k_lca_certified_most_balanced"] = {
            "mean_rank_uqi_and_kl_test": dict(sorted(mean_rank.items(), key=lambda kv: kv[1])),
            "top3": top,
            "criterion": "EU-k, LCA and Certified are the three best methods by mean rank (UQI rank and KL-to-oracle rank, every cell)",
            "held": (set(present) == set(top)) if len(present) == 3 else None,
            "in_top3": sorted(set(present) & set(top)),
            "missing_methods": [m for m in BALANCED if m not in mean_rank],
        }

    # B6's target: the best method's KL to the oracle on test is <= half the original's, with UQI > 0, on both scenarios.
    target = {}
    for key in sorted({(s["layers"], s["entangler"]) for s in summary}):
        per = {}
        for scenario in ("random", "class"):
            base = by.get((*key, scenario, b6.ORIGINAL))
            cells = [by[(*key, scenario, m)] for m in methods if (*key, scenario, m) in by and by[(*key, scenario, m)]["mean"]["uqi"] > 0]
            if base is None or not cells:
                per[scenario] = {"met": False, "reason": "no method with UQI > 0"}
                continue
            best = min(cells, key=lambda s: s["mean"]["kl_test"])
            per[scenario] = {
                "best": best["method"], "kl_test": best["mean"]["kl_test"], "original_kl_test": base["mean"]["kl_test"],
                "uqi": best["mean"]["uqi"], "met": best["mean"]["kl_test"] <= 0.5 * base["mean"]["kl_test"],
            }  # fmt: skip
        target[f"L{key[0]}/{key[1]}"] = {**per, "met": all(v["met"] for v in per.values())}
    claims["b6_target"] = target
    return claims


def format_tables(payload: dict[str, Any]) -> str:
    summary, config = payload["summary"], payload["config"]
    order = [b6.ORIGINAL, b6.ORACLE, *config["methods"]]
    header = ["Method", "forget acc", "retain acc", "test acc", "UQI", "KL retain", "KL test", "JS test", "agree test", "MIA AUC", "time / retrain"]
    blocks = []
    for layers in config["layers"]:
        for entangler in config["entanglers"]:
            for scenario in config["scenarios"]:
                cells = {s["method"]: s for s in summary if (s["layers"], s["entangler"], s["scenario"]) == (layers, entangler, scenario)}
                rows = []
                for m in order:
                    s = cells.get(m)
                    if s is None:
                        continue
                    digits = {"kl_retain": 3, "kl_test": 3, "js_test": 3, "mia_auc": 2, "time_ratio": 2}
                    rows.append([m, *(benchmarking.fmt_pm(s["mean"][k], s["std"][k], digits.get(k, 1)) for k in COLUMNS if k not in ("js_retain",))])
                title = f"{config['dataset']}, L={layers}, {entangler}, {scenario}"
                blocks.append(f"#### B6 — {title} (mean ± std over {len(config['seeds'])} seeds)\n\n" + benchmarking.markdown_table(header, rows))
    if len(config["layers"]) > 1:
        header = ["Method", "scenario", "entangler", *(f"UQI L={d}" for d in config["layers"])]
        rows = []
        for scenario in config["scenarios"]:
            for entangler in config["entanglers"]:
                for m in order:
                    vals = []
                    for d in config["layers"]:
                        s = next((x for x in summary if (x["layers"], x["entangler"], x["scenario"], x["method"]) == (d, entangler, scenario, m)), None)
                        vals.append(benchmarking.fmt_pm(s["mean"]["uqi"], s["std"]["uqi"], 1) if s else "–")
                    rows.append([m, scenario, entangler, *vals])
        blocks.insert(0, "#### B6 — UQI against depth\n\n" + benchmarking.markdown_table(header, rows))
    return "\n\n".join(blocks)


def plot_uqi(payload: dict[str, Any], path: Path) -> Path | None:
    """UQI (mean ± std over seeds) against depth, one line per method, a panel per scenario × entangler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config, summary = payload["config"], payload["summary"]
    scenarios, entanglers = config["scenarios"], config["entanglers"]
    fig, axes = plt.subplots(len(scenarios), len(entanglers), figsize=(5.5 * len(entanglers), 4 * len(scenarios)), squeeze=False, sharey="row")
    for i, scenario in enumerate(scenarios):
        for j, entangler in enumerate(entanglers):
            ax = axes[i][j]
            for m in [b6.ORACLE, *config["methods"]]:
                pts = sorted((s["layers"], s["mean"]["uqi"], s["std"]["uqi"]) for s in summary if (s["scenario"], s["entangler"], s["method"]) == (scenario, entangler, m))
                if pts:
                    ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3, label=m, linestyle="--" if m == b6.ORACLE else "-")
            ax.axhline(0, color="grey", linewidth=0.8)
            ax.set_title(f"{config['dataset']}: {scenario}, {entangler}")
            ax.set_xlabel("variational layers L")
            ax.set_xticks(config["layers"])
            ax.set_ylabel("UQI (points)")
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="b6_quantum.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Scale 'quick': Iris, L=2, CZ ring, 1 seed (about a minute).")
    parser.add_argument("--scale", choices=sorted(b6.SCALES), default="full", help="Dataset and grid (see b6.SCALES); --quick overrides it.")
    parser.add_argument("--methods", nargs="+", default=["study"], help="Registered classifier methods; 'study' = the study's eleven (those registered), 'all' = every registered classifier method.")
    parser.add_argument("--layers", type=int, nargs="+", default=None, help="Depths L (default: the scale's).")
    parser.add_argument("--entanglers", nargs="+", choices=b6.ENTANGLERS, default=None, help="Entanglement (default: the scale's).")
    parser.add_argument("--scenarios", nargs="+", choices=sorted(b6.SCENARIOS), default=["random", "class"])
    parser.add_argument("--seeds", type=int, default=None, help="Number of seeds (first-seed .. first-seed+N-1); default: the scale's.")
    parser.add_argument("--first-seed", type=int, default=0, help="First seed.")
    parser.add_argument("--out", default=None, help="Output JSON (default benchmarks/results/b6_<scale>.json); the .md tables and the .png plot go next to it.")
    parser.add_argument("--cache-dir", default=str(BENCH_DIR / ".cache"), help="Cache of the original and oracle weights.")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0 = torch's default).")
    parser.add_argument("--device-timing", action="store_true", help="Only time default.qubit (backprop) vs lightning.qubit (adjoint), forward+backward per batch of 32, at every depth.")
    parser.add_argument("--merge", nargs="+", default=None, help="Combine the rows of these B6 JSON files (e.g. runs split by entangler) into --out: summary, claims, tables and plot; nothing is trained.")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    commit, dirty = benchmarking.git_commit(), benchmarking.git_dirty()  # the code this run executes
    benchmarking.quiet_lightning()
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    log = (lambda *a, **k: None) if args.quiet else functools.partial(print, flush=True)
    scale = "quick" if args.quick else args.scale
    spec = b6.SCALES[scale]
    if args.device_timing:
        timing = b6.device_timing(tuple(args.layers or b6.LAYERS))
        payload = {"command": benchmarking.command_line(), "git_commit": benchmarking.git_commit(), "versions": benchmarking.versions("pennylane"),
                   "threads": torch.get_num_threads(), "device_timing": timing}  # fmt: skip
        out = Path(args.out) if args.out else BENCH_DIR / "results" / "b6_device_timing.json"
        benchmarking.write_json(out, payload)
        for row in timing:
            log(f"L={row['layers']}: default.qubit {1e3 * row['default.qubit_s']:.1f} ms, lightning.qubit {1e3 * row['lightning.qubit_s']:.1f} ms, ratio {row['ratio']:.2f}")
        return payload
    if args.merge:
        return merge(args, log)
    methods, missing = b6.resolve_methods(args.methods)
    if missing:
        log(f"[b6] not registered as classifier methods, skipped: {missing}")
    layers = list(args.layers or spec["layers"])
    entanglers = list(args.entanglers or spec["entanglers"])
    n_seeds = args.seeds if args.seeds is not None else spec["seeds"]
    seeds = list(range(args.first_seed, args.first_seed + n_seeds))
    out_path = Path(args.out) if args.out else BENCH_DIR / "results" / f"b6_{scale}.json"
    wall = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for depth in layers:
        for entangler in entanglers:
            for seed in seeds:
                rows += evaluate_cell(spec["dataset"], depth, entangler, seed, args.scenarios, methods, Path(args.cache_dir), log)
    summary = summarise(rows)
    config = {
        "dataset": spec["dataset"], "layers": layers, "entanglers": entanglers, "seeds": seeds, "scenarios": args.scenarios,
        "methods": methods, "missing_methods": missing, "train_recipe": b6.train_recipe(spec["dataset"]), "data": b6.DATA[spec["dataset"]],
        "requests": {s: b6.SCENARIOS[s] for s in args.scenarios},
        "settings": {sc: {m: dict(zip(("hp", "source"), b6.method_settings(spec["dataset"], sc, m))) for m in methods} for sc in args.scenarios},
    }  # fmt: skip
    payload: dict[str, Any] = {
        "benchmark": "B6", "scale": scale, "command": benchmarking.command_line(), "git_commit": commit,
        "git_dirty": dirty, "versions": benchmarking.versions("pennylane"), "threads": torch.get_num_threads(),
        "wall_seconds": time.perf_counter() - wall, "config": config, "rows": rows, "summary": summary,
    }  # fmt: skip
    return finish(payload, out_path, log)


def merge(args: argparse.Namespace, log) -> dict[str, Any]:
    """One payload from several runs' rows (same dataset and scenarios); the union of their grids, seeds and methods."""
    import json

    parts = [json.loads(Path(p).read_text()) for p in args.merge]
    first = parts[0]["config"]
    if any(p["config"]["dataset"] != first["dataset"] for p in parts):
        raise ValueError(f"`--merge` files should hold one dataset, got {[p['config']['dataset'] for p in parts]}.")
    rows = [r for p in parts for r in p["rows"]]
    methods = list(dict.fromkeys(m for p in parts for m in p["config"]["methods"]))
    config = {
        **first, "methods": methods, "layers": sorted({r["layers"] for r in rows}), "seeds": sorted({r["seed"] for r in rows}),
        "entanglers": [e for e in b6.ENTANGLERS if any(r["entangler"] == e for r in rows)],
        "scenarios": [s for s in first["scenarios"]],
        "settings": {sc: {m: s for p in parts for m, s in p["config"]["settings"].get(sc, {}).items()} for sc in first["scenarios"]},
        "merged_from": [{"file": str(f), "command": p["command"], "wall_seconds": p["wall_seconds"]} for f, p in zip(args.merge, parts)],
    }  # fmt: skip
    payload = {**parts[0], "command": benchmarking.command_line(), "config": config, "rows": rows, "summary": summarise(rows),
               "wall_seconds": sum(p["wall_seconds"] for p in parts)}  # fmt: skip
    out_path = Path(args.out) if args.out else BENCH_DIR / "results" / f"b6_{parts[0]['scale']}.json"
    return finish(payload, out_path, log)


def _finite(value: Any) -> Any:
    """``value`` with every NaN float replaced by ``None`` (e.g. a correlation over methods that all scored alike)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def finish(payload: dict[str, Any], out_path: Path, log) -> dict[str, Any]:
    """Claims, tables, JSON, markdown and plot of a payload with rows and summary."""
    config = payload["config"]
    payload["claims"] = _finite(check_claims(payload["rows"], payload["summary"], config["methods"]))
    tables = format_tables(payload)
    benchmarking.write_json(out_path, payload)
    out_path.with_suffix(".md").write_text(tables + "\n")
    if len(config["layers"]) > 1:
        plot_uqi(payload, out_path.with_suffix(".png"))
    log(tables)
    for name, claim in payload["claims"].items():
        if name != "b6_target":
            log(f"[b6] claim {name}: held={claim.get('held')} ({claim.get('criterion')})")
    log(f"[b6] target met in: {[k for k, v in payload['claims']['b6_target'].items() if v['met']]}; wall {payload['wall_seconds']:.0f}s -> {out_path}")
    return payload


if __name__ == "__main__":
    main()
