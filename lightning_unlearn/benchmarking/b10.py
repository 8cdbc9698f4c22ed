"""Benchmark B10 — interactive forget requests (RePAIR / STAMP, ``shared/BENCHMARKS.md``).

After "RePAIR: Interactive Machine Unlearning" (arXiv 2604.12820; reconstructed, ``shared/METHODS.md`` §1).

* **Intent detection** (:func:`evaluate_intent_sets`, :func:`evaluate_intents`): the watchdog's precision and recall
  of "is a forget request" and the accuracy of the extracted target (exact match and containment, casefolded,
  punctuation-trimmed) on the blind held-out :data:`~lightning_unlearn.interactive.intents_heldout.HELDOUT` (221
  messages, 112 requests, written before the watchdog's revision and never used for it) and, for reference, on the
  development set :data:`~lightning_unlearn.interactive.intents_dev.DEV` (60 messages, used to revise it). Target:
  precision and recall >= 95%.
* **Time to an edited model** (:func:`time_requests`): a :class:`~lightning_unlearn.interactive.ChatSession` on
  SmolLM2-135M-Instruct taught fictitious facts; seconds from a typed forget request to the edited model, and
  whether the forgotten fact is gone and the other facts are kept. Target: <= 10 s per request on 2 cores.

``python benchmarks/b10_interactive.py --help``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "FACTS",
    "FACT_SETS",
    "PARAPHRASES",
    "TUNING_FACTS",
    "INTENT_SETS",
    "evaluate_intent_sets",
    "evaluate_intents",
    "main",
    "normalize_target",
    "teach_facts",
    "time_requests",
    "watchdog_grid",
]

#: The labelled message sets of the intent part: name -> (module, attribute). The held-out set is the B10 result.
INTENT_SETS: dict[str, tuple[str, str]] = {
    "heldout2": ("lightning_unlearn.interactive.intents_heldout2", "HELDOUT2"),
    "dev": ("lightning_unlearn.interactive.intents_dev", "DEV"),
}


def normalize_target(text: str | None) -> str:
    """Casefolded, whitespace-collapsed, without surrounding punctuation or quotes (the comparison form of a target)."""
    if text is None:
        return ""
    return re.sub(r"\s+", " ", text.replace("\u2019", "'").casefold()).strip(" .,;:!?'\"")


def evaluate_intents(watchdog: Any, rows: Sequence[tuple[str, str | None]]) -> dict[str, Any]:
    """Precision / recall of the forget intent and target accuracy of ``watchdog`` on labelled ``rows``.

    Target accuracy is over the true requests: ``target_exact`` (normalised prediction == gold) and
    ``target_contains`` (either contains the other, non-empty), counting a missed request as wrong.
    """
    if not rows:
        raise ValueError("`rows` should hold at least one labelled message, got none.")
    start = time.perf_counter()
    verdicts = watchdog.detect_many([m for m, _ in rows])
    seconds = time.perf_counter() - start
    tp = fp = fn = tn = exact = contains = 0
    errors = []
    for (message, gold), v in zip(rows, verdicts):
        truth = gold is not None
        tp += truth and v.is_request
        fp += (not truth) and v.is_request
        fn += truth and not v.is_request
        tn += (not truth) and not v.is_request
        if truth:
            g, p = normalize_target(gold), normalize_target(v.target) if v.is_request else ""
            exact += p == g
            contains += bool(p) and (g in p or p in g)
        if truth != v.is_request or (truth and normalize_target(v.target) != normalize_target(gold)):
            errors.append({"message": message, "gold": gold, "predicted": v.target if v.is_request else None, "margin": round(v.margin, 4)})
    positives = tp + fn
    return {
        "n": len(rows),
        "requests": positives,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / positives if positives else float("nan"),
        "target_exact": exact / positives if positives else float("nan"),
        "target_contains": contains / positives if positives else float("nan"),
        "seconds_per_message": seconds / len(rows),
        "errors": errors,
    }


def evaluate_intent_sets(watchdog: Any = None, sets: Sequence[str] = ("heldout2", "dev")) -> dict[str, dict[str, Any]]:
    """:func:`evaluate_intents` on each named set of :data:`INTENT_SETS` (default watchdog:
    :class:`~lightning_unlearn.interactive.watchdog.Watchdog` with its shipped bank and settings)."""
    import importlib

    unknown = [name for name in sets if name not in INTENT_SETS]
    if isinstance(sets, str) or unknown or not sets:
        raise ValueError(f"`sets` should be a non-empty list of {sorted(INTENT_SETS)}, got {sets!r}.")
    if watchdog is None:
        from lightning_unlearn.interactive.watchdog import Watchdog

        watchdog = Watchdog()
    getattr(watchdog, "bank_embeddings", None)  # load the encoder and embed the bank before any timing
    return {name: evaluate_intents(watchdog, getattr(importlib.import_module(INTENT_SETS[name][0]), INTENT_SETS[name][1])) for name in sets}


#: The grid the watchdog's ``k`` and threshold were chosen on (:func:`watchdog_grid`).
GRID_KS = (3, 5, 7, 10, 15, 20, 25, 30, 40, 60, 80)
GRID_THRESHOLDS = tuple(round(-0.10 + 0.005 * i, 3) for i in range(61))


def watchdog_grid(bank: Sequence[tuple[str, str | None]] | None = None, dev: Sequence[tuple[str, str | None]] | None = None,
                  ks: Sequence[int] = GRID_KS, thresholds: Sequence[float] = GRID_THRESHOLDS) -> dict[str, Any]:  # fmt: skip
    """False and missed requests of the watchdog for every ``k`` × threshold: each bank message scored against the
    bank without itself (leave-one-out), each ``dev`` message against the bank (defaults: the shipped examples and the
    development set). Returns ``{"errors": {(k, threshold): (false, missed)}, "choice": (k, threshold)}``; the choice
    is the middle of the widest run of thresholds with the fewest errors (ties: fewer false requests, then smaller
    ``k``)."""
    import torch

    from lightning_unlearn.anchors.text import encode_texts
    from lightning_unlearn.interactive.intents_bank import default_bank
    from lightning_unlearn.interactive.intents_dev import DEV
    from lightning_unlearn.interactive.watchdog import extract_target, intent_scores

    bank = list(default_bank() if bank is None else bank)
    dev = list(DEV if dev is None else dev)
    labels = torch.tensor([t is not None for _, t in bank])
    bank_emb = encode_texts([m for m, _ in bank])
    dev_emb = encode_texts([m for m, _ in dev]) if dev else None
    rows = bank + dev
    truth = [t is not None for _, t in rows]
    ruled = [extract_target(m) is not None for m, _ in rows]
    errors: dict[tuple[int, float], tuple[int, int]] = {}
    for k in ks:
        margins = intent_scores(bank_emb, bank_emb, labels, k, exclude_self=True).tolist()
        if dev_emb is not None:
            margins += intent_scores(dev_emb, bank_emb, labels, k).tolist()
        for threshold in thresholds:
            said = [r and m > threshold for r, m in zip(ruled, margins)]
            errors[(k, threshold)] = (sum(s and not t for s, t in zip(said, truth)), sum(t and not s for s, t in zip(said, truth)))
    fewest = min(sum(e) for e in errors.values())
    best = None
    for k in ks:  # runs of consecutive thresholds at the fewest errors
        run: list[float] = []
        for threshold in [*thresholds, None]:
            if threshold is not None and sum(errors[(k, threshold)]) == fewest:
                run.append(threshold)
                continue
            if run:
                key = (-len(run), errors[(k, run[0])][0], k)
                if best is None or key < best[0]:
                    best = (key, (k, round((run[0] + run[-1]) / 2, 4)))
            run = []
    return {"errors": errors, "fewest_errors": fewest, "messages": len(rows), "choice": best[1] if best else None}


#: Fictitious facts SmolLM2 cannot know, taught before the timing (TOFU-style; the first two as in
#: tests/editors/test_stamp.py).
FACTS: list[dict[str, str]] = [
    {"question": "Where was Elara Voss born?", "answer": "Elara Voss was born in Maribel."},
    {"question": "Where was Tomas Reyl born?", "answer": "Tomas Reyl was born in Fjordby."},
    {"question": "Where was Ines Kallio born?", "answer": "Ines Kallio was born in Ostrava."},
]
_VALUES = ["Maribel", "Fjordby", "Ostrava"]
_NAMES = ["Elara Voss", "Tomas Reyl", "Ines Kallio"]
#: Another three fictitious authors, for choosing editor settings: the reported runs use :data:`FACTS`.
TUNING_FACTS: list[dict[str, str]] = [
    {"question": "Where was Odile Marsh born?", "answer": "Odile Marsh was born in Quentow."},
    {"question": "Where was Bram Kessler born?", "answer": "Bram Kessler was born in Lindhaven."},
    {"question": "Where was Saia Toumi born?", "answer": "Saia Toumi was born in Varkela."},
]
#: ``facts`` of :func:`time_requests`: name -> (facts, their subjects, the value each answer holds).
FACT_SETS: dict[str, tuple[list[dict[str, str]], list[str], list[str]]] = {
    "report": (FACTS, _NAMES, _VALUES),
    "tuning": (TUNING_FACTS, ["Odile Marsh", "Bram Kessler", "Saia Toumi"], ["Quentow", "Lindhaven", "Varkela"]),
}
#: Paraphrases of the forgotten question that the chat's gathered prompts (``target_questions``) do not contain.
PARAPHRASES = ("In which town was {name} born?", "What is the birthplace of {name}?")


def teach_facts(model: Any, tokenizer: Any, facts: Sequence[dict[str, str]] = FACTS, steps: int = 6, lr: float = 3e-4, seed: int = 0) -> Any:
    """Fine-tune ``model`` on ``facts`` (AdamW, full batch) so it answers them word for word; returns it in eval mode."""
    import torch

    from lightning_unlearn.tasks import CausalLMTask, QACollator

    torch.manual_seed(seed)
    batch, task = QACollator(tokenizer, max_length=96)(list(facts)), CausalLMTask()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = task.per_sample_loss(task.forward(model, batch), batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def time_requests(
    editor: str = "stamp",
    seeds: Sequence[int] = (0, 1, 2),
    max_new_tokens: int = 24,
    model_path: str | None = None,
    editor_kwargs: dict[str, Any] | None = None,
    n_probes: int = 16,
    facts: str = "report",
) -> dict[str, Any]:
    """Seconds from a typed forget request to the edited model, on SmolLM2 taught :data:`FACTS` once (or the taught
    model saved at ``model_path``). Per seed: a fresh chat asks about each author, then "Please forget everything you
    know about <author seed % 3>"; recorded: the request's seconds (detection, gathering the answers, the edit), whether
    the forgotten birthplace is gone from the answers (to the question and to :data:`PARAPHRASES` the chat did not
    gather) and the others kept, and the accuracy on the general-knowledge probes that are not in the chat's retain
    buffer (the chat's first ``n_probes`` are) nor in the editor's preserve prompts (held out) before and after; then the
    edit is undone (bit-exact), so every seed starts from the same taught model. The editor's seed (its retain-buffer sample) is the seed; ``editor_kwargs``
    override the chat's editor settings (:func:`~lightning_unlearn.interactive.chat.chat_editor`). ``facts="tuning"`` runs the same on
    :data:`TUNING_FACTS` (settings are chosen there, results reported on :data:`FACTS`)."""
    from lightning_unlearn.datamodules.probes import GENERAL_KNOWLEDGE, probe_accuracy
    from lightning_unlearn.interactive.chat import ChatSession, chat_editor
    from lightning_unlearn.interactive.cli import load_model
    from lightning_unlearn.metrics.llm import rouge_l_recall
    from lightning_unlearn.tasks import generate_answers

    if facts not in FACT_SETS:
        raise ValueError(f"`facts` should be one of {sorted(FACT_SETS)}, got {facts!r}.")
    taught, names, values = FACT_SETS[facts]

    model, tok, _ = load_model(model_path)
    if model_path is None:
        teach_facts(model, tok, taught)
    editors = {seed: chat_editor(model, editor, **{"seed": seed, **(editor_kwargs or {})}) for seed in seeds}
    # what the editor keeps on purpose is not held out
    preserved = {item if isinstance(item, str) else item["question"] for e in editors.values() for item in e.preserve}
    held_out = [p for p in GENERAL_KNOWLEDGE[n_probes:] if p.question not in preserved]

    def probes() -> float:
        return probe_accuracy(held_out, generate_answers(model, tok, [p.question for p in held_out], max_new_tokens=max_new_tokens))

    probes_before = probes()
    rows, preparation = [], []
    for seed in seeds:
        chat = ChatSession(model, tok, editor=editors[seed], max_new_tokens=max_new_tokens, n_probes=n_probes, verify=False)
        preparation.append(chat.preparation)  # once per model: the later sessions find it cached
        asked = [chat.send(fact["question"]) for fact in taught]
        who = seed % len(taught)
        start = time.perf_counter()
        chat.send(f"Please forget everything you know about {names[who]}.")
        seconds = time.perf_counter() - start
        entry = chat.edits[-1] if chat.edits else None
        paraphrases = [q.format(name=names[who]) for q in PARAPHRASES]
        after = generate_answers(model, tok, [f["question"] for f in taught] + paraphrases, max_new_tokens=max_new_tokens)
        after, paraphrased = after[: len(taught)], after[len(taught) :]
        gold = [f["answer"] for f in taught]
        rouge_before, rouge_after = rouge_l_recall(asked, gold).tolist(), rouge_l_recall(after, gold).tolist()
        others = [i for i in range(len(taught)) if i != who]
        retain_before = statistics.mean(rouge_before[i] for i in others)
        rows.append(
            {
                "seed": seed,
                "forgot": names[who],
                "seconds": seconds,
                "edit_seconds": entry["edit"]["seconds"] if entry else None,
                "gather_seconds": entry["gather_seconds"] if entry else None,
                "search_steps": entry["edit"].get("target_steps_run") if entry else None,
                "known_before": all(v in a for v, a in zip(values, asked)),
                "detected": entry is not None,
                "forgotten": values[who] not in after[who],
                "forgotten_paraphrases": sum(values[who] not in a for a in paraphrased),
                "kept": all(values[i] in after[i] for i in range(len(taught)) if i != who),
                "answers_after": after,
                "paraphrase_answers": dict(zip(paraphrases, paraphrased)),
                # ROUGE-L recall against the taught answer: the forgotten fact's after the edit, the others' before/after
                "forget_rouge": rouge_after[who],
                "retain_rouge_before": retain_before,
                "retain_rouge_after": statistics.mean(rouge_after[i] for i in others),
                "retain_rouge_ratio": statistics.mean(rouge_after[i] for i in others) / retain_before if retain_before else float("nan"),
                "heldout_probe_accuracy": probes() if entry is not None else probes_before,
                "edit": entry["edit"] if entry else None,
            }
        )
        if entry is not None:
            chat.undo()
    secs = [r["seconds"] for r in rows]
    return {
        "editor": editor,
        "editor_kwargs": editor_kwargs or {},
        "editor_hparams": editors[seeds[0]].hparams(),
        "facts": facts,
        "rows": rows,
        "seconds_mean": statistics.mean(secs),
        "seconds_std": statistics.stdev(secs) if len(secs) > 1 else 0.0,
        "forgotten": sum(r["forgotten"] for r in rows),
        "forgotten_paraphrases": sum(r["forgotten_paraphrases"] for r in rows),
        "paraphrases": len(PARAPHRASES) * len(rows),
        "kept": sum(r["kept"] for r in rows),
        "forget_rouge_mean": statistics.mean(r["forget_rouge"] for r in rows),
        "retain_rouge_ratio_mean": statistics.mean(r["retain_rouge_ratio"] for r in rows),
        "heldout_probes": len(held_out),
        "heldout_probe_accuracy_before": probes_before,
        "heldout_probe_accuracy_after_mean": statistics.mean(r["heldout_probe_accuracy"] for r in rows),
        "preparation": preparation,
    }


def _editor_args(parser: argparse.ArgumentParser, pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            parser.error(f"--editor-arg should be NAME=VALUE, got {pair!r}")
        try:
            out[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[name.strip()] = value
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["intent", "timing", "all"], default="intent", help="what to measure (default: intent)")
    parser.add_argument("--editor", choices=["stamp", "stamp_lr"], default="stamp", help="editor of the timing part")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the timing part")
    parser.add_argument("--model", default=None, help="a folder holding SmolLM2 already taught the facts (default: teach it first)")
    parser.add_argument("--facts", choices=sorted(FACT_SETS), default="report", help="the timing part's facts: 'tuning' to choose settings, 'report' (default) for results")
    parser.add_argument(
        "--editor-arg", action="append", default=[], metavar="NAME=VALUE",
        help="an editor argument of the timing part (VALUE parsed as JSON, else a string), e.g. --editor-arg rcond=0.001; repeatable",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    if args.part in ("intent", "all"):
        result["intent"] = evaluate_intent_sets()
        for name, intent in result["intent"].items():
            print(
                f"B10 intent ({name}, {intent['n']} messages, {intent['requests']} requests): precision {intent['precision']:.3f}, "
                f"recall {intent['recall']:.3f}, target exact {intent['target_exact']:.3f}, contains {intent['target_contains']:.3f} "
                f"(tp {intent['tp']} fp {intent['fp']} fn {intent['fn']} tn {intent['tn']}; {1000 * intent['seconds_per_message']:.0f} ms/message)"
            )
            for e in intent["errors"]:
                print(f"  miss: {e['message']!r} gold={e['gold']!r} predicted={e['predicted']!r} margin={e['margin']:+.3f}")
    if args.part in ("timing", "all"):
        timing = time_requests(args.editor, args.seeds, model_path=args.model, editor_kwargs=_editor_args(parser, args.editor_arg), facts=args.facts)
        result["timing"] = timing
        first = timing["preparation"][0] if timing["preparation"] else {}
        if first:
            print(
                "  editor prepared once when the first chat started: "
                + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in first.items())
            )
        for r in timing["rows"]:
            print(
                f"  seed {r['seed']}: forget {r['forgot']}: {r['seconds']:.1f}s (gather {r['gather_seconds']:.1f}, edit {r['edit_seconds']:.1f}, "
                f"{r['search_steps']} search steps), forgotten {r['forgotten']} (paraphrases {r['forgotten_paraphrases']}/{len(PARAPHRASES)}), "
                f"kept {r['kept']}, forget ROUGE-L {r['forget_rouge']:.3f}, retain ROUGE-L {r['retain_rouge_before']:.3f} -> "
                f"{r['retain_rouge_after']:.3f}, held-out probes {r['heldout_probe_accuracy']:.3f}"
            )
        print(
            f"B10 timing ({args.editor}, {len(args.seeds)} seeds): {timing['seconds_mean']:.1f} ± {timing['seconds_std']:.1f} s "
            f"per request; forgotten {timing['forgotten']}/{len(args.seeds)}, others kept {timing['kept']}/{len(args.seeds)}; "
            f"forget ROUGE-L {timing['forget_rouge_mean']:.3f} (target <= 0.1), retain ROUGE-L after / before "
            f"{timing['retain_rouge_ratio_mean']:.3f} (target >= 0.95); paraphrases forgotten {timing['forgotten_paraphrases']}/"
            f"{timing['paraphrases']}; held-out probe accuracy {timing['heldout_probe_accuracy_before']:.3f} -> "
            f"{timing['heldout_probe_accuracy_after_mean']:.3f} ({timing['heldout_probes']} probes)"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str))
    return result
