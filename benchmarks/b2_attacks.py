#!/usr/bin/env python
"""Benchmark B2, attack table (issue 6): do the LLM unlearning methods of B2 resist attacks?

For the target (no unlearning), the oracle (retain only) and each method, unlearned from B2's cached target
exactly as ``b2_llm.py`` does (``lightning_unlearn.benchmarking.b2``: ``run_method`` with ``resolve_hparams(scale, method)``, the
settings of ``configs/authors_smollm2/<method>.yaml`` at full scale), the forget set is split
once with ``split_forget(forget, 0.5, seed=0)`` into the attacker's half and the held-out half, and measured:

* **base** — on the held-out half: *leak rate* (fraction of greedy answers containing the true value,
  ``leaks_value``), forget ROUGE-L recall, mean answer-token NLL (the package's ``score_answers``); retain
  ROUGE-L on B2's retain evaluation subset (utility);
* **quantization** — the same on RTN fake-quantized copies: int8 per channel, int4 group-wise (group 32);
* **relearning** — the same after ``RelearningAttack`` (a few AdamW steps on the attacker's half, collated with
  B2's ``QACollator``);
* **multi-turn** — ``MultiTurnProbe`` on the held-out half: single-turn, self-correction, dialogue-conditioned
  (k = 1, true context answers), paraphrased, translated (one language), and the rigidity probe (benign
  follow-ups on the general-knowledge probes the pretrained model knows).

Recovery per attack = ``recovery(before=target's metric, unlearned=row's, attacked=row's after the attack)``
for the leak rate, ROUGE and NLL (NaN when nothing was forgotten, e.g. the target row).

Run from the repository root::

    python benchmarks/b2_attacks.py --quick                 # smoke test (tiny Llama)
    python benchmarks/b2_attacks.py --methods graddiff      # one method, full scale
    python benchmarks/b2_attacks.py | tee benchmarks/results/b2_attacks.log
"""

from __future__ import annotations

import argparse
import functools
import math
import time
import traceback
from pathlib import Path
from typing import Any

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import b2  # B2's protocol, as b2_llm.py runs it
from lightning_unlearn.benchmarking.b2 import probe_multiturn, rec

BENCH_DIR = Path(__file__).resolve().parent

DEFAULT_METHODS = ("graddiff", "npo", "simnpo", "idk", "rmu", "pmc", "tru", "asu")

#: Attack settings (recorded in the JSON).
#: Relearning: AdamW at lr 1e-4 (B2's fine-tuning *and* unlearning lr), batch 4, 6 steps = two passes over the
#: 12 attacker examples; the same budget as a B2 unlearning run (6 steps at 1e-4), ~4% of the target's 135
#: fine-tuning steps. The oracle row is the control: it never learnt the held-out facts, so what it gains there
#: is what 6 steps can teach about *other* facts of the same authors (nothing, for independent random facts).
ATTACKS: dict[str, dict[str, Any]] = {
    "int8": {"kind": "quantization", "bits": 8, "group_size": None},
    "int4-g32": {"kind": "quantization", "bits": 4, "group_size": 32},
    "relearn": {"kind": "relearning", "steps": 6, "lr": 1e-4, "batch_size": 4, "optimizer": "adamw"},
}
#: Multi-turn probes; the rigidity probe (benign follow-ups, 3 x the known probes' generations) only with --rigidity.
MULTITURN = {
    "kinds": ["self_correction", "dialogue", "paraphrase", "translation"],
    "k_context": [1],
    "languages": ["de"],
    "context_answers": "true",
}
SPLIT = {"relearn_fraction": 0.5, "seed": 0}


def measure(model, backbone, heldout: list[dict[str, Any]], retain: list[dict[str, Any]], scale: str) -> dict[str, Any]:
    """Held-out forget leak rate / ROUGE-L recall / mean answer NLL and retain ROUGE-L of one model."""
    from lightning_unlearn.attacks.multiturn import leaks_value
    from lightning_unlearn.evaluation.llm import score_answers
    from lightning_unlearn.metrics.llm import rouge_l_recall
    from lightning_unlearn.tasks import generate_answers

    ev = b2.SCALES[scale]["eval"]
    model.eval()
    tok = backbone.tokenizer
    gen = generate_answers(
        model, tok, [e["question"] for e in heldout], max_new_tokens=ev["max_new_tokens"], batch_size=ev["gen_batch_size"]
    )
    scores = score_answers(model, backbone.collator(), [(e["question"], e["answer"]) for e in heldout], ev["batch_size"])
    nll = -(scores["ll"] / scores["n"]).mean()
    retain_gen = generate_answers(
        model, tok, [e["question"] for e in retain], max_new_tokens=ev["max_new_tokens"], batch_size=ev["gen_batch_size"]
    )
    return {
        "leak": sum(leaks_value(a, e["value"]) for a, e in zip(gen, heldout)) / len(heldout),
        "forget_rouge": float(rouge_l_recall(gen, [e["answer"] for e in heldout]).mean()),
        "forget_nll": float(nll),
        "retain_rouge": float(rouge_l_recall(retain_gen, [e["answer"] for e in retain]).mean()),
        "answers": gen,
    }


def attack_model(name: str, model, backbone, attacker_half: list[dict[str, Any]], seed: int):
    """An attacked copy of ``model`` (``model`` is never modified) and what was done."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from lightning_unlearn.attacks import QuantizationAttack, RelearningAttack
    from lightning_unlearn.tasks import CausalLMTask

    spec = ATTACKS[name]
    if spec["kind"] == "quantization":
        attack = QuantizationAttack(bits=spec["bits"], group_size=spec["group_size"])
        attacked = attack(model)
        s = attack.summary
        return attacked, {
            "label": attack.name,
            "quantized_tensors": s.num_tensors,
            "quantized_fraction": s.fraction,
            "per_channel_fallback": list(s.per_channel),
        }
    attack = RelearningAttack(
        steps=spec["steps"], lr=spec["lr"], batch_size=spec["batch_size"], optimizer=spec["optimizer"], seed=seed
    )
    sampler = RandomSampler(attacker_half, generator=torch.Generator().manual_seed(seed))
    loader = DataLoader(attacker_half, batch_size=spec["batch_size"], sampler=sampler, collate_fn=backbone.collator())
    return attack(model, CausalLMTask(), loader), {"label": attack.name}


def multiturn(model, backbone, heldout, retain, probes, scale: str, base_answers: list[str] | None = None) -> dict[str, Any]:
    """MultiTurnProbe on the held-out half; the single-turn answers of ``measure`` are reused (same greedy
    generation: a question string is the one-message conversation ``[user: question]``)."""
    from lightning_unlearn.tasks import generate_answers

    ev = b2.SCALES[scale]["eval"]
    known: dict[tuple, str] = {}
    if base_answers is not None:
        known = {((("user", e["question"]),)): a for e, a in zip(heldout, base_answers)}

    def generate_fn(conversations):
        keys = [tuple((m["role"], m["content"]) for m in c) for c in conversations]
        todo = [c for c, k in zip(conversations, keys) if k not in known]
        new = (
            generate_answers(
                model, backbone.tokenizer, todo, max_new_tokens=ev["max_new_tokens"], batch_size=ev["gen_batch_size"]
            )
            if todo
            else []
        )
        it = iter(new)
        return [known[k] if k in known else next(it) for k in keys]

    return probe_multiturn(
        model, backbone.tokenizer, heldout, retain, probes or None, MULTITURN, ev["max_new_tokens"], ev["gen_batch_size"], generate_fn
    )


def add_recoveries(row: dict[str, Any], target_base: dict[str, Any] | None) -> None:
    base = row["base"]
    for entry in row.get("attacks", {}).values():
        if "metrics" not in entry:
            continue
        entry["recovery"] = {
            m: (rec(target_base[m], base[m], entry["metrics"][m]) if target_base else math.nan)
            for m in ("leak", "forget_rouge", "forget_nll")
        }
    mt = row.get("multiturn", {}).get("metrics")
    if mt and target_base:
        single = mt["forget_acc/single_turn"]
        row["multiturn"]["recovery_vs_target"] = {
            k.split("/", 1)[1]: rec(target_base["leak"], single, v)
            for k, v in mt.items()
            if k.startswith("forget_acc/") and k != "forget_acc/single_turn"
        }


def process_row(
    label: str,
    model,
    backbone,
    heldout,
    attacker_half,
    retain,
    probes,
    scale,
    seed,
    log,
    skip_multiturn: bool,
    attacks: bool = True,
) -> dict[str, Any]:
    row: dict[str, Any] = {"seconds": {}}
    start = time.perf_counter()
    row["base"] = measure(model, backbone, heldout, retain, scale)
    row["seconds"]["base"] = time.perf_counter() - start
    b = row["base"]
    log(
        f"[b2a] {label:9s} base      leak={b['leak']:.2f} fROUGE={b['forget_rouge']:.3f} NLL={b['forget_nll']:.2f} rROUGE={b['retain_rouge']:.3f} ({row['seconds']['base']:.0f}s)"
    )
    row["attacks"] = {}
    for name in ATTACKS if attacks else ():
        start = time.perf_counter()
        try:
            attacked, info = attack_model(name, model, backbone, attacker_half, seed)
            attack_s = time.perf_counter() - start
            metrics = measure(attacked, backbone, heldout, retain, scale)
            del attacked
            row["attacks"][name] = {**info, "metrics": metrics, "attack_seconds": attack_s}
            m = metrics
            log(
                f"[b2a] {label:9s} {name:9s} leak={m['leak']:.2f} fROUGE={m['forget_rouge']:.3f} NLL={m['forget_nll']:.2f} rROUGE={m['retain_rouge']:.3f} ({time.perf_counter() - start:.0f}s)"
            )
        except Exception as err:  # reported, not fatal
            row["attacks"][name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
            log(f"[b2a] {label:9s} {name:9s} ERROR {type(err).__name__}: {str(err)[:200]}")
        row["seconds"][name] = time.perf_counter() - start
        b2.release_memory()
    if not skip_multiturn:
        start = time.perf_counter()
        try:
            row["multiturn"] = multiturn(model, backbone, heldout, retain, probes, scale, base_answers=b["answers"])
            mt = row["multiturn"]["metrics"]
            leaks = " ".join(f"{k.split('/', 1)[1]}={v:.2f}" for k, v in mt.items() if k.startswith("forget_acc/"))
            log(f"[b2a] {label:9s} multiturn {leaks} ({time.perf_counter() - start:.0f}s)")
        except Exception as err:
            row["multiturn"] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
            log(f"[b2a] {label:9s} multiturn ERROR {type(err).__name__}: {str(err)[:200]}")
        row["seconds"]["multiturn"] = time.perf_counter() - start
    return row


# ---------------------------------------------------------------------------------------------------------- output


def _f(v: Any, d: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{d}f}"


def format_tables(rows: list[dict[str, Any]]) -> str:
    head = ["Row", "leak", "ROUGE", "NLL", "rROUGE"]
    for name in ATTACKS:
        head += [f"{name} leak", f"{name} ROUGE", f"{name} rec(leak)", f"{name} rec(ROUGE)", f"{name} rROUGE"]
    body = []
    for row in rows:
        if "base" not in row:
            body.append([row["row"], "ERROR: " + row.get("error", "?")[:80], *[""] * (len(head) - 2)])
            continue
        b = row["base"]
        cells = [row["row"], _f(b["leak"]), _f(b["forget_rouge"], 3), _f(b["forget_nll"]), _f(b["retain_rouge"], 3)]
        for name in ATTACKS:
            e = row["attacks"].get(name, {})
            m, r = e.get("metrics", {}), e.get("recovery", {})
            cells += [
                _f(m.get("leak")),
                _f(m.get("forget_rouge"), 3),
                _f(r.get("leak")),
                _f(r.get("forget_rouge")),
                _f(m.get("retain_rouge"), 3),
            ]
        body.append(cells)
    out = [
        "### B2 attacks — held-out forget half (leak = fraction of greedy answers stating the true value)",
        "",
        benchmarking.markdown_table(head, body),
    ]
    mt_rows = [r for r in rows if "metrics" in r.get("multiturn", {})]
    if mt_rows:
        names = [k.split("/", 1)[1] for k in mt_rows[0]["multiturn"]["metrics"] if k.startswith("forget_acc/")]
        head2 = [
            "Row",
            *(f"{n} leak" for n in names),
            "rec(any)",
            "benign acc alone / after forget / after retain",
            "benign refusal after forget",
        ]
        body2 = []
        for row in mt_rows:
            m = row["multiturn"]["metrics"]
            r = row["multiturn"].get("recovery_vs_target", {})
            benign = " / ".join(_f(m.get(f"benign_acc/{c}")) for c in ("single_turn", "after_forget", "after_retain"))
            body2.append(
                [
                    row["row"],
                    *(_f(m[f"forget_acc/{n}"]) for n in names),
                    _f(r.get("any")),
                    benign,
                    _f(m.get("benign_refusal/after_forget")),
                ]
            )
        out += ["", "### Multi-turn probes (held-out forget half)", "", benchmarking.markdown_table(head2, body2)]
    out.append(
        "\nrec = recovery(before = target's metric, unlearned = row's, attacked = row's after the attack): 0 = nothing back, "
        "1 = back at the target; – = nothing forgotten (|target - row| < 1e-6). rROUGE = retain ROUGE-L (utility). "
        "rec(any) = multi-turn leak under any probe, as recovery of the target's single-turn leak."
    )
    return "\n".join(out)


def write(
    out_path: Path,
    args,
    scale: str,
    seed: int,
    methods: list[str],
    rows: list[dict[str, Any]],
    extra: dict[str, Any],
    wall: float,
) -> dict[str, Any]:
    import torch

    payload = {
        "benchmark": "B2-attacks",
        "scale": scale,
        "command": benchmarking.command_line(),
        "git_commit": benchmarking.git_commit(BENCH_DIR.parent),
        "git_dirty": benchmarking.git_dirty(BENCH_DIR.parent),
        "versions": benchmarking.versions("transformers", "tokenizers"),
        "config": {
            "seed": seed,
            "methods": methods,
            "hparams": {m: b2.resolve_hparams(scale, m)[0] for m in methods},
            "attacks": ATTACKS,
            "multiturn": MULTITURN,
            "split": SPLIT,
            "eval": b2.SCALES[scale]["eval"],
            "torch_threads": torch.get_num_threads(),
            "metrics": {
                "leak": "fraction of greedy answers (max_new_tokens from eval) containing the example's true value (leaks_value)",
                "forget_rouge": "ROUGE-L recall vs the reference answer, held-out forget half",
                "forget_nll": "mean over held-out examples of the mean answer-token NLL (EOS included)",
                "retain_rouge": "ROUGE-L recall on B2's retain evaluation subset",
                "recovery": "recovery(before=target, unlearned=row, attacked=row after attack); NaN = nothing forgotten",
            },
            **extra,
            "wall_seconds": wall,
        },
        "rows": rows,
    }
    payload = b2.finite(payload)
    benchmarking.write_json(out_path, payload)
    return payload


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="b2_attacks.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="B2's tiny-Llama scale (smoke test).")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), help="B2 methods to unlearn and attack.")
    parser.add_argument(
        "--target-attacks",
        action="store_true",
        help="Also attack the target itself (by default its row has the base metrics, which recovery needs, and the multi-turn probes only). The oracle is always attacked: it is the control.",
    )
    parser.add_argument(
        "--retain-eval",
        type=int,
        default=16,
        help="Retain ROUGE on the first N of B2's seeded retain evaluation subset (48 at full scale; 0 = all of it).",
    )
    parser.add_argument(
        "--rigidity",
        action="store_true",
        help="Also run MultiTurnProbe's rigidity probe (benign follow-ups on the known general-knowledge probes; ~3 x their number of generations per row).",
    )
    parser.add_argument("--skip-multiturn", action="store_true", help="No multi-turn probes.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=None, help="Default benchmarks/results/b2_attacks.json (b2_attacks_quick.json with --quick)."
    )
    parser.add_argument("--cache-dir", default=str(BENCH_DIR / ".cache"))
    parser.add_argument(
        "--time-limit",
        type=float,
        default=0.3,
        help="As b2_llm.py: stop a method's training after this fraction of the target's fine-tuning seconds.",
    )
    args = parser.parse_args(argv)

    b2.quiet_llm_run()
    import torch

    from lightning_unlearn import METHODS
    from lightning_unlearn.attacks import split_forget

    scale = "quick" if args.quick else "full"
    if scale == "quick":
        torch.set_num_threads(1)  # as b2_llm.py at quick scale
    seed = args.seed
    for m in args.methods:
        METHODS.get(b2.method_name(m))
    log = functools.partial(print, flush=True)
    out_path = (
        Path(args.out)
        if args.out
        else BENCH_DIR / "results" / ("b2_attacks.json" if scale == "full" else "b2_attacks_quick.json")
    )
    wall = time.perf_counter()
    cache_dir = Path(args.cache_dir)
    backbone = b2.Backbone(scale, seed, cache_dir)

    # The cached models only: at full scale never train a target or oracle here.
    pretrained = None
    if b2.SCALES[scale]["pretrain"] is not None:
        pretrained = b2.get_trained(b2.PRETRAINED, scale, seed, backbone, cache_dir, None, log)
    trained = {}
    for kind in (b2.TARGET, b2.ORACLE):
        key = benchmarking.config_hash(b2.model_config(kind, scale, seed, backbone, pretrained["key"] if pretrained else None))
        if scale == "full" and not (cache_dir / "b2" / f"{kind}-{key}.pt").is_file():
            raise SystemExit(
                f"[b2a] the full-scale {kind} ({kind}-{key}.pt) is not cached under {cache_dir / 'b2'}; run b2_llm.py first (not retraining here)."
            )
        trained[kind] = b2.get_trained(kind, scale, seed, backbone, cache_dir, pretrained, log)
    ft_seconds = float(trained[b2.TARGET]["seconds"])

    data = b2.make_data(scale, seed)
    forget = data["forget"]
    attacker_idx, heldout_idx = split_forget(forget, SPLIT["relearn_fraction"], seed=SPLIT["seed"])
    attacker_half = [forget[i] for i in attacker_idx.indices]
    heldout = [forget[i] for i in heldout_idx.indices]
    retain_all = b2.eval_sets(scale, seed)["retain"]
    retain = retain_all[: args.retain_eval] if args.retain_eval > 0 else retain_all
    if args.rigidity:
        MULTITURN["kinds"].append("rigidity")
    probe_key = pretrained["key"] if pretrained else "smollm2"
    probes = (
        []
        if not args.rigidity
        else b2.known_probes(
            backbone,
            pretrained["path"] if pretrained else None,
            probe_key,
            cache_dir,
            b2.SCALES[scale]["eval"]["gen_batch_size"],
        )
    )
    extra = {
        "split_ids": {"attacker": [e["id"] for e in attacker_half], "heldout": [e["id"] for e in heldout]},
        "sizes": {
            "forget": len(forget),
            "attacker": len(attacker_half),
            "heldout": len(heldout),
            "retain_eval": len(retain),
            "retain_eval_of": len(retain_all),
            "benign_probes": len(probes),
        },
        "cached_models": {k: {"key": v["key"], "seconds": v["seconds"]} for k, v in trained.items()},
        "finetune_seconds": ft_seconds,
    }
    log(
        f"[b2a] {scale}: forget {len(forget)} -> attacker {len(attacker_half)} / held-out {len(heldout)}; retain eval {len(retain)}; {len(probes)} benign probes; methods {args.methods}"
    )

    rows: list[dict[str, Any]] = []
    target_base = None
    for label in [b2.TARGET, b2.ORACLE, *args.methods]:
        start = time.perf_counter()
        row: dict[str, Any] = {"row": label}
        try:
            if label in (b2.TARGET, b2.ORACLE):
                model = b2.load_model(backbone, trained[label]["path"])
            else:
                hp, _ = b2.resolve_hparams(scale, label)
                fraction = hp.get("time_limit", args.time_limit)
                model, seconds, info = b2.run_method(
                    label,
                    hp,
                    scale,
                    seed,
                    backbone,
                    trained[b2.TARGET]["path"],
                    fraction * ft_seconds if fraction > 0 else None,
                )
                row["unlearning"] = {
                    "seconds": seconds,
                    "steps": info["steps"],
                    "stopped_by_time_limit": info["stopped_by_time_limit"],
                    "hparams": hp,
                }
                log(f"[b2a] {label:9s} unlearned in {seconds:.0f}s ({info['steps']} steps)")
            attacks = label != b2.TARGET or args.target_attacks
            row.update(
                process_row(
                    label, model, backbone, heldout, attacker_half, retain, probes, scale, seed, log, args.skip_multiturn, attacks
                )
            )
            if label == b2.TARGET:
                target_base = row["base"]
            add_recoveries(row, target_base)
            del model
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"
            row["traceback"] = traceback.format_exc()
            log(f"[b2a] {label:9s} ERROR {row['error'][:300]}")
        row["row_seconds"] = time.perf_counter() - start
        rows.append(row)
        b2.release_memory()
        log(f"[b2a] {label:9s} row done in {row['row_seconds']:.0f}s (wall {time.perf_counter() - wall:.0f}s)")
        write(out_path, args, scale, seed, args.methods, rows, extra, time.perf_counter() - wall)
    payload = write(out_path, args, scale, seed, args.methods, rows, extra, time.perf_counter() - wall)
    print("\n" + format_tables(rows))
    print(f"\nwrote {out_path} ({len(rows)} rows, {time.perf_counter() - wall:.0f}s wall)")
    return payload


if __name__ == "__main__":
    main()
