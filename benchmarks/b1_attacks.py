#!/usr/bin/env python
"""Benchmark B1-attacks — does what a B1 method forgot come back under quantization or a little relearning?

For every scenario, seed and row:

1. the model of the row: ``original`` (no unlearning, the cached B1 original), ``retrain`` (the cached B1 oracle,
   the baseline: it never saw the forget set) or a B1 method run exactly as ``b1_classification.py`` runs it
   (``run_method`` with the settings of the method's shipped config, starting from the cached original);
2. ``lightning_unlearn.attacks.run_attacks`` on it, with the cached original as ``original``: the forget set is
   split once (seeded) into a half the relearning attacker fine-tunes on and a held-out half on which every
   forget accuracy of this benchmark is measured; each attack works on a copy of the model:

   * ``int8-per-channel``: round-to-nearest int8, one scale per output channel;
   * ``int4-g<G>``: round-to-nearest int4, one scale per group of G consecutive inputs of a row (default 16,
     which divides every SmallCNN row except the first convolution's 9-element rows; those are quantized
     per output channel);
   * ``relearn-<opt>-<k>steps-lr<lr>``: k optimizer steps of plain cross-entropy on the attacker's half of the
     forget set (batches of the scale's training batch size, the original's training lr, Adam by default);

3. recovery = (attacked − unlearned) / (original − unlearned) of the held-out forget accuracy (and of the
   held-out forget loss): 0 = nothing came back, 1 = back at the original's level. The ``retrain`` row's
   recovery is the oracle's under the same attack (run_attacks' ``oracle_recovery_*``): a model that truly never
   learned the forget set regains that much from the same attack, so a method is only "broken" by an attack to
   the extent that it recovers *more* than the oracle.

Recovery is only meaningful where the unlearned model actually forgot something. Class-wise forgetting drives
the forget accuracy to about 0, so recovery is well defined there (the main table). In the random-10% scenario
the original → unlearned gap is a point or two (the forget samples are like the retained ones and the models
generalise to them); recovery divides by that small gap and is noisy, and NaN where the gap is 0.

Run from the repository root (the originals and oracles must already be cached by b1_classification.py)::

    OMP_NUM_THREADS=1 python benchmarks/b1_attacks.py --quick                  # digits, both scenarios
    OMP_NUM_THREADS=1 python benchmarks/b1_attacks.py --scenarios class        # Fashion-MNIST, seed 0
    python benchmarks/b1_attacks.py --from-json benchmarks/results/b1_attacks_full.json   # reprint the tables
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from pathlib import Path
from typing import Any

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import b1

BENCH_DIR = Path(__file__).resolve().parent

ORIGINAL, ORACLE = b1.ORIGINAL, b1.ORACLE
LABELS = {ORIGINAL: "Original (no unlearning)", ORACLE: "Retrain (oracle, baseline)"}
DEFAULT_GROUP_SIZE = 16
DEFAULT_RELEARN_STEPS = (10, 25, 50)  # see RELEARN_NOTE
DEFAULT_RELEARN_LR = 1e-4
RELEARN_NOTE = (
    "Relearning attacker: Adam (fresh state) at lr 1e-4 (a tenth of the original's training lr) on the attacker's half "
    "of the forget set, batches of the original's training batch size (32 quick / 128 full), cross-entropy with the "
    "true labels, 10, 25 and 50 steps. Why: at the training lr (1e-3) the attacker, fine-tuning on one class only, "
    "collapses the model onto it (Fashion-MNIST: RA after 10 steps 55-85%, l1_sparse 0%; the original itself 33%), so "
    "'recovery' there is partly 'predict class 0 for everything' (benchmarks/results/b1_attacks_full_lr1e-3.json); "
    "at 1e-4, measured on digits, the oracle, which never saw the class, stays at 0% for 10-50 steps with RA 96-99%, "
    "so whatever a method regains is knowledge it still had. The table shows RA after each relearning attack."
)
RANDOM_NOTE = (
    "random 10%: the original -> unlearned gap of held-out forget accuracy is small (often 0-2 points), so recovery "
    "divides by almost nothing: it is noisy, and NaN where the gap is below 1e-6. Read the attacked forget accuracies "
    "instead; the class-wise table is the main result."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="b1_attacks.py",
        description=(
            "Attack every B1 unlearned model with int8 per-channel and int4 group-wise round-to-nearest weight "
            "quantization and with a relearning attacker (a few fine-tuning steps on half of the forget set), and "
            "report the held-out forget accuracy after each attack and the recovery: the fraction of the "
            "original -> unlearned forget-accuracy gap the attack regains (0 = nothing, 1 = all). The retrain "
            "(oracle) row is the baseline: the recovery of a model that never saw the forget set. Rows are the "
            "original (no unlearning, recovery undefined), the oracle and every B1 method, each unlearned from the "
            "cached B1 original exactly as b1_classification.py does (the settings of its shipped config). The originals and oracles must "
            "be cached already (run b1_classification.py, or its --prepare-only, first); nothing is trained here "
            "except the unlearning runs."
        ),
        epilog=(
            "Recovery needs a real gap: class-wise forgetting drives forget accuracy to ~0 (well defined); in the "
            "random-10%% scenario the gap is ~0-2 points, so recovery is noisy or NaN there (reported anyway, with a "
            "note). All forget accuracies here are on the held-out half of the forget set (the half the relearning "
            "attacker never sees), so they differ slightly from B1's whole-forget-set numbers."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="digits (sklearn 8x8) with SmallCNN(image_size=8, width=16, hidden=64), B1's quick scale. Default: Fashion-MNIST 60k/10k with SmallCNN() (B1's full scale).",
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=sorted(b1.SCENARIOS),
        default=["class", "random"],
        help="'class' forgets class 0 (the main table); 'random' forgets a seeded random 10%% of the training split (recovery noisy/NaN, see above).",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="Rows: 'original', 'retrain' and registered method names (settings: the scale's configs, as in b1_classification.py). Default: original, retrain and every B1 row (lightning_unlearn.benchmarking.b1.default_methods).",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="Number of seeds (first-seed .. first-seed+N-1); each needs its cached B1 original and oracle. B1's 3-seed run exists already, so 1 by default.",
    )
    parser.add_argument("--first-seed", type=int, default=0, help="First seed.")
    parser.add_argument(
        "--group-size",
        type=int,
        default=DEFAULT_GROUP_SIZE,
        help="Group size of the int4 attack (rows it does not divide, e.g. the first convolution's 9 weights per channel, are quantized per output channel).",
    )
    parser.add_argument(
        "--relearn-steps",
        type=int,
        nargs="*",
        default=list(DEFAULT_RELEARN_STEPS),
        help="One relearning attack per step count (none: no relearning).",
    )
    parser.add_argument(
        "--relearn-lr",
        type=float,
        default=DEFAULT_RELEARN_LR,
        help="Relearning learning rate (default 1e-4, a tenth of the original's training lr; see the notes).",
    )
    parser.add_argument(
        "--relearn-optimizer",
        choices=["adam", "sgd", "adamw"],
        default="adam",
        help="Relearning optimizer ('sgd' has no momentum).",
    )
    parser.add_argument(
        "--relearn-batch-size",
        type=int,
        default=None,
        help="Relearning batch size (default: the original's training batch size, 32 quick / 128 full).",
    )
    parser.add_argument(
        "--relearn-fraction",
        type=float,
        default=0.5,
        help="Share of the forget set the relearning attacker gets; the rest is held out and every forget accuracy is measured on it.",
    )
    parser.add_argument(
        "--max-eval-samples",
        type=int,
        default=-1,
        help="Cap on the retain and test evaluation splits (-1: B1's cap for the scale, 10,000 at full scale, none at quick; 0: no cap).",
    )
    parser.add_argument("--cache-dir", default=str(BENCH_DIR / ".cache"), help="B1's cache of originals and oracles.")
    parser.add_argument("--out", default=None, help="Output JSON (default benchmarks/results/b1_attacks_<quick|full>.json).")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0 = torch's default).")
    parser.add_argument(
        "--from-json", default=None, metavar="PATH", help="Only print the tables of a JSON this script wrote (nothing is run)."
    )
    return parser.parse_args(argv)


def cached(kind: str, scale: str, scenario: str | None, seed: int, cache_dir: Path) -> dict[str, Any]:
    """The B1 cache entry of the original / oracle, or SystemExit if it is missing (nothing is trained here)."""
    key = benchmarking.config_hash(b1.model_config(kind, scale, scenario, seed))
    weights = cache_dir / "b1" / f"{kind}-{key}.pt"
    if not weights.is_file() or not weights.with_suffix(".json").is_file():
        raise SystemExit(
            f"The B1 {kind} for scale={scale} scenario={scenario or '-'} seed={seed} is not cached ({weights}); "
            f"train it first: python benchmarks/b1_classification.py {'--quick ' if scale == 'quick' else ''}--prepare-only --seeds {seed + 1}"
        )
    return {"key": key, "path": str(weights)}


def build_attacks(args: argparse.Namespace, scale: str) -> tuple[list[Any], dict[str, Any]]:
    from lightning_unlearn.attacks import QuantizationAttack, RelearningAttack

    train = b1.train_recipe(scale)
    lr = args.relearn_lr
    batch = args.relearn_batch_size if args.relearn_batch_size is not None else train["batch_size"]
    attacks: list[Any] = [QuantizationAttack(bits=8), QuantizationAttack(bits=4, group_size=args.group_size)]
    attacks += [
        RelearningAttack(steps=k, lr=lr, batch_size=batch, optimizer=args.relearn_optimizer, seed=0) for k in args.relearn_steps
    ]
    config = {
        "quantization": [
            {
                "name": a.name,
                "bits": a.bits,
                "group_size": a.group_size,
                "symmetric": a.symmetric,
                "layer_types": list(a.layer_types),
                "method": "round-to-nearest fake quantization of conv/linear weights (biases untouched)",
            }
            for a in attacks[:2]
        ],
        "relearning": [
            {"name": a.name, "steps": a.steps, "lr": a.lr, "batch_size": a.batch_size, "optimizer": a.optimizer, "seed": a.seed}
            for a in attacks[2:]
        ],
        "relearn_fraction": args.relearn_fraction,
        "relearn_note": RELEARN_NOTE,
    }
    return attacks, config


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.from_json:
        import json

        payload = json.loads(Path(args.from_json).read_text())
        print(format_tables(payload))
        return payload
    benchmarking.quiet_lightning()
    import torch

    from lightning_unlearn import METHODS
    from lightning_unlearn.attacks import run_attacks

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    scale = "quick" if args.quick else "full"
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    rows_wanted = args.methods or [ORIGINAL, ORACLE, *b1.default_methods(scale)]
    for m in rows_wanted:
        if m not in (ORIGINAL, ORACLE):
            METHODS.get(b1.method_name(m))  # a clear error on a typo before anything runs
    cache_dir = Path(args.cache_dir)
    out_path = Path(args.out) if args.out else BENCH_DIR / "results" / f"b1_attacks_{scale}.json"
    max_eval = b1.SCALES[scale]["max_eval_samples"] if args.max_eval_samples < 0 else (args.max_eval_samples or None)
    attacks, attack_config = build_attacks(args, scale)
    names = [a.name for a in attacks]
    log = functools.partial(print, flush=True)

    # fail before any work when a cached model is missing
    for seed in seeds:
        cached(ORIGINAL, scale, None, seed, cache_dir)
        for scenario in args.scenarios:
            cached(ORACLE, scale, scenario, seed, cache_dir)

    hparams = {
        sc: {
            m: dict(zip(("config", "source"), b1.resolve_hparams(scale, sc, m)))
            for m in rows_wanted
            if m not in (ORIGINAL, ORACLE)
        }
        for sc in args.scenarios
    }
    rows: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    wall = time.perf_counter()

    def write_now() -> dict[str, Any]:
        """The JSON so far (written after every row, so an interrupted run keeps its rows)."""
        return _write(
            out_path, args, scale, seeds, rows_wanted, hparams, attack_config, names, models, rows, max_eval, time.perf_counter() - wall
        )

    for seed in seeds:
        original = cached(ORIGINAL, scale, None, seed, cache_dir)
        models[f"original/seed{seed}"] = original
        original_model = b1.load_model(scale, original["path"])
        for scenario in args.scenarios:
            oracle = cached(ORACLE, scale, scenario, seed, cache_dir)
            models[f"oracle/{scenario}/seed{seed}"] = oracle
            dm = b1.make_datamodule(scale, scenario, seed, max_eval_samples=max_eval)
            loaders = dm.eval_dataloaders()
            baseline: dict[str, Any] | None = None
            for row_name in rows_wanted:
                start = time.perf_counter()
                unlearn_seconds = 0.0
                if row_name == ORIGINAL:
                    model = b1.load_model(scale, original["path"])
                elif row_name == ORACLE:
                    model = b1.load_model(scale, oracle["path"])
                else:
                    model, unlearn_seconds, _ = b1.run_method(
                        row_name, hparams[scenario][row_name]["config"], scale, scenario, seed, original["path"]
                    )
                # The oracle is attacked once per scenario and seed, as its own row (its recovery against the
                # original is run_attacks' oracle_recovery_*); method rows pass oracle=None and copy that row's
                # numbers as their baseline instead of attacking the same oracle again for every method.
                result = run_attacks(
                    model, None, dm.forget_set, retain=loaders["retain"], test=loaders.get("test"),
                    original=original_model, oracle=None, attacks=attacks, relearn_fraction=args.relearn_fraction,
                    batch_size=dm.eval_batch_size, collate_like=loaders["forget"], seed=seed,
                )  # fmt: skip
                attack_seconds = time.perf_counter() - start - unlearn_seconds
                row = {
                    "method": row_name,
                    "scenario": scenario,
                    "seed": seed,
                    "unlearn_seconds": unlearn_seconds,
                    "attack_seconds": attack_seconds,
                    "split": result["split"],
                    "unlearned": result["models"]["unlearned"],
                    "original": result["models"]["original"],
                    "attacks": {
                        name: {
                            "attacked": e["unlearned"],
                            "recovery_acc": e["recovery_acc"],
                            "recovery_loss": e["recovery_loss"],
                        }
                        for name, e in result["attacks"].items()
                    },
                }
                if row_name == ORACLE:
                    baseline = row
                if baseline is not None:
                    for name in names:
                        row["attacks"][name]["oracle_recovery_acc"] = baseline["attacks"][name]["recovery_acc"]
                        row["attacks"][name]["oracle_recovery_loss"] = baseline["attacks"][name]["recovery_loss"]
                        row["attacks"][name]["oracle_attacked_forget_acc"] = baseline["attacks"][name]["attacked"]["forget_acc"]
                rows.append(row)
                u = row["unlearned"]
                log(
                    f"[b1-attacks] {scale} seed={seed} {scenario:6s} {row_name:24s} forget={u['forget_acc']:6.2f} RA={u['RA']:6.2f} | "
                    + " | ".join(
                        f"{n}: {row['attacks'][n]['attacked']['forget_acc']:6.2f} ({_fmt_rec(row['attacks'][n]['recovery_acc'])})"
                        for n in names
                    )
                    + f" | unlearn {unlearn_seconds:.1f}s attacks {attack_seconds:.1f}s"
                )
                write_now()
    payload = write_now()
    print()
    print(format_tables(payload))
    print(f"\nwrote {out_path} ({len(rows)} rows, {time.perf_counter() - wall:.0f}s wall)")
    return payload


def _fmt_rec(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:+.2f}"


def _finite(value: Any) -> Any:
    """NaN and infinities -> None, recursively (strict JSON): the library's ``json_safe``."""
    from lightning_unlearn._json import json_safe

    return json_safe(value)


def _mean(values: list[float | None]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def format_tables(payload: dict[str, Any]) -> str:
    """One markdown table per scenario (rows = methods, seeds averaged): held-out forget accuracy and RA of the
    unlearned model, then per attack the forget accuracy after the attack and the recovery."""
    config, rows = payload["config"], payload["rows"]
    names = config["attack_names"]
    # the RA after a relearning attack too: fine-tuning on one class only can collapse the model onto that class,
    # and a forget accuracy that "recovers" that way is not knowledge coming back
    header = ["Method", "forget acc", "forget loss", "RA"] + [
        h for n in names for h in (f"{n} acc", f"{n} rec.", *((f"{n} RA",) if n.startswith("relearn") else ()))
    ]
    blocks = []
    for scenario in config["scenarios"]:
        table = []
        for method in config["rows"]:
            items = [r for r in rows if r["scenario"] == scenario and r["method"] == method]
            if not items:
                continue
            cells = [LABELS.get(method, method)] + [
                f"{_mean([r['unlearned'][k] for r in items]):.2f}" for k in ("forget_acc", "forget_loss", "RA")
            ]
            for n in names:
                acc = _mean([r["attacks"][n]["attacked"]["forget_acc"] for r in items])
                rec = _mean([r["attacks"][n]["recovery_acc"] for r in items])
                cells += [f"{acc:.2f}", _fmt_rec(rec)]
                if n.startswith("relearn"):
                    cells.append(f"{_mean([r['attacks'][n]['attacked']['RA'] for r in items]):.2f}")
            table.append(cells)
        n_seeds = len({r["seed"] for r in rows if r["scenario"] == scenario})
        original = _mean([r["original"]["forget_acc"] for r in rows if r["scenario"] == scenario])
        title = {
            "class": "class-wise forgetting (class 0) — main table",
            "random": "random 10% forgetting — recovery noisy/NaN, see note",
        }[scenario]
        note = (
            f"Held-out forget accuracy (%) on the half of the forget set the relearning attacker never sees; the original "
            f"scores {original:.2f} there. 'rec.' = recovery of that accuracy, (attacked − unlearned) / (original − unlearned); "
            f"'–' = undefined (no gap). The oracle row is the baseline: what a model that never saw the forget set regains. "
            f"'forget loss' = mean cross-entropy on the held-out forget half (how deep the forgetting is; the relearning "
            f"attacker has to climb that back, so a deep loss delays relearning without meaning the class is gone). "
            f"'relearn… RA' = retain accuracy after the relearning attack: the attacker fine-tunes on forget samples only, and "
            f"where RA collapses the model partly predicts the forget class for everything, so its forget accuracy (and "
            f"recovery) overstates what came back."
        )
        if scenario == "random":
            note += " " + RANDOM_NOTE
        blocks.append(
            f"### B1 attacks ({payload['scale']}) — {title}, {n_seeds} seed(s)\n\n"
            + benchmarking.markdown_table(header, table)
            + "\n\n"
            + note
        )
    return "\n\n".join(blocks)


def _write(
    out_path, args, scale, seeds, rows_wanted, hparams, attack_config, names, models, rows, max_eval, wall_seconds
) -> dict[str, Any]:
    import torch

    payload = {
        "benchmark": "B1-attacks",
        "scale": scale,
        "command": benchmarking.command_line(),
        "git_commit": benchmarking.git_commit(BENCH_DIR.parent),
        "git_dirty": benchmarking.git_dirty(BENCH_DIR.parent),
        "versions": benchmarking.versions(),
        "config": {
            "dataset": b1.SCALES[scale]["dataset"],
            "model": {"class": b1.model_class(scale), **b1.SCALES[scale]["model"]},
            "scenarios": list(args.scenarios),
            "scenario_requests": {s: b1.SCENARIOS[s] for s in args.scenarios},
            "seeds": seeds,
            "rows": rows_wanted,
            "hparams": hparams,
            "attack_names": names,
            "attacks": attack_config,
            "max_eval_samples": max_eval,
            "forget_metric": "accuracy (%) and mean loss on the held-out part of the forget set (split_forget, seed = run seed)",
            "recovery": "(attacked - unlearned) / (original - unlearned); null where |original - unlearned| < 1e-6",
            "baseline": "the 'retrain' row (the cached B1 oracle) under the same attacks; its recovery_acc is run_attacks' oracle_recovery_acc, "
            "copied into every later row as oracle_recovery_acc",
            "random_scenario_note": RANDOM_NOTE,
            "torch_threads": torch.get_num_threads(),
            "cached_models": models,
            "wall_seconds": wall_seconds,
        },
        "rows": _finite(rows),
    }
    benchmarking.write_json(out_path, payload)
    return payload


if __name__ == "__main__":
    main()
