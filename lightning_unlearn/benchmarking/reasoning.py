"""Selective forgetting in reasoning traces: the measured run behind ``benchmarks/b2_reasoning.py``.

Protocol (RECONSTRUCTED after arXiv 2604.03571, ``docs/reasoning.md``), per seed:

1. :class:`~lightning_unlearn.datamodules.ReasoningTracesDataModule`: ``n_authors`` fictitious authors, each
   fact asked once and answered by a chain-of-thought trace; ``forget_fraction`` of the authors are forgotten.
   The :class:`~lightning_unlearn.datamodules.TraceAnalyst` (MiniLM retrieval over the forget authors' facts +
   value matching) marks the forget traces' spans, the :class:`~lightning_unlearn.datamodules.TraceRewriter`
   writes the edited traces.
2. The *target*: a tiny Llama (:func:`~lightning_unlearn.models.llm.tiny_llama`, a byte-level BPE tokenizer
   trained on the seed's traces) or, at the ``"smollm2"`` scale, SmolLM2-135M-Instruct with its own tokenizer and
   chat template, fine-tuned on every trace (``SupervisedModule``).
3. Each method unlearns the forget authors from the target (``UnlearningModule`` on paired forget/retain trace
   batches): ``feature_replacement`` (the §9 loss) and ``graddiff`` (ascent on the whole forget traces).
4. Scoring (:func:`score`) by greedy generation: the *CoT leak* (the generated chain of thought, the text before
   ``"Answer:"``, states the asked value) and the *answer leak* (the final answer states it), separately, plus
   the leak of any of the forget author's facts in the CoT; on retain questions the final-answer accuracy, the
   trace NLL (teacher forcing) and, on held-out traces (other question phrasings and trace templates of the retain
   authors), the NLL and answer accuracy.

Settings live in :data:`SETTINGS` (``"full"``: the reported tiny-Llama run; ``"smollm2"``: the same traces on
SmolLM2; ``"quick"``: a smoke test whose 4-epoch target
learns nothing, it only runs every step); the unlearning settings were picked on seed :data:`TUNE_SEED`, which is not
reported (:func:`tuning_grid`). As for B2's quick scale, no YAML config chain can describe the run: the tokenizer is
trained on the seed's traces at run time and the analyst edits the forget traces before the datamodule is built.
"""

from __future__ import annotations

import copy
import functools
import time
from typing import Any

from lightning_unlearn import benchmarking

TUNE_SEED = 3
REPORT_SEEDS = (0, 1, 2)
METHODS_RUN = ("feature_replacement", "feature_replacement+sum", "graddiff")
"""The reported rows: ``<method>[+<variant>]``, the variant's settings in ``SETTINGS[scale]["unlearn"]``."""

_MODEL = {"hidden_size": 64, "num_layers": 2, "num_heads": 4}
_DATA = {"n_authors": 8, "facts_per_author": 4, "forget_fraction": 0.25, "holdout_fraction": 0.0}
_ANALYST = {"threshold": 0.6, "top_k": 3}
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {
        "data": _DATA,
        "analyst": _ANALYST,
        "model": _MODEL,
        "vocab_size": 600,
        "target": {"lr": 3e-3, "epochs": 120, "batch_size": 8},
        # picked on seed 3 (tuning rounds 1-2, `--tune 1/2`): no leak, then the highest retain answer accuracy, then
        # held-out accuracy; "+sum" is the spec's Σ-reduced unlikelihood (the ablation), at its best setting
        "unlearn": {
            "feature_replacement": {"method": {"edit_weight": 1.0, "reduction": "mean"}, "lr": 3e-3, "epochs": 30},
            "feature_replacement+sum": {"method": {"edit_weight": 1.0, "reduction": "sum", "retain_weight": 3.0}, "lr": 1e-3, "epochs": 30},
            "graddiff": {"method": {}, "lr": 1e-3, "epochs": 60},
        },
        "batch_size": 8,
        "max_new_tokens": 128,
    },
    # SmolLM2-135M-Instruct as released (its own tokenizer and chat template) fine-tuned on the same traces as "full"
    "smollm2": {
        "data": _DATA,
        "analyst": _ANALYST,
        "model": "smollm2",
        "target": {"lr": 5e-4, "epochs": 8, "batch_size": 8},
        "unlearn": {
            # picked on seed 3 (`--smollm2 --tune 1`) by the same rule as "full"
            "feature_replacement": {"method": {"edit_weight": 1.0, "reduction": "mean"}, "lr": 3e-5, "epochs": 8},
            "graddiff": {"method": {}, "lr": 1e-4, "epochs": 8},
        },
        "batch_size": 8,
        "max_new_tokens": 96,
    },
    "quick": {
        "data": {"n_authors": 4, "facts_per_author": 2, "forget_fraction": 0.25, "holdout_fraction": 0.0},
        "analyst": _ANALYST,
        "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 4},
        "vocab_size": 400,
        "target": {"lr": 3e-3, "epochs": 4, "batch_size": 4},
        "unlearn": {
            "feature_replacement": {"method": {"edit_weight": 1.0, "reduction": "mean"}, "lr": 3e-3, "epochs": 2},
            "graddiff": {"method": {}, "lr": 1e-3, "epochs": 2},
        },
        "batch_size": 4,
        "max_new_tokens": 24,
    },
}
SCORE_KEYS = (
    "forget_cot_leak",
    "forget_answer_leak",
    "forget_cot_leak_any_fact",
    "forget_cot_only_leak",
    "retain_answer_accuracy",
    "retain_nll",
    "heldout_answer_accuracy",
    "heldout_nll",
    "forget_format_rate",
    "retain_format_rate",
)


def settings(scale: str, override: dict[str, Any] | None = None) -> dict[str, Any]:
    """A deep copy of :data:`SETTINGS` ``[scale]`` with ``override`` merged in (nested dicts merged)."""
    if scale not in SETTINGS:
        raise ValueError(f"`scale` should be one of {sorted(SETTINGS)}, got {scale!r}.")
    out = copy.deepcopy(SETTINGS[scale])

    def merge(base: dict[str, Any], new: dict[str, Any]) -> None:
        for k, v in new.items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                merge(base[k], v)
            else:
                base[k] = copy.deepcopy(v)

    merge(out, override or {})
    return out


def build_data(hp: dict[str, Any], seed: int) -> dict[str, Any]:
    """The seed's trace datamodule (forget traces edited by the analyst), tokenizer and held-out retain traces."""
    from lightning_unlearn.datamodules import ReasoningTracesDataModule, TraceAnalyst, TraceCollator, reasoning_traces
    from lightning_unlearn.models.llm import train_tokenizer

    dm = ReasoningTracesDataModule(
        **hp["data"], seed=seed, analyst=TraceAnalyst(**hp["analyst"]), batch_size=hp["batch_size"], train_on="all"
    )
    heldout = reasoning_traces(dm.authors_of("retain"), seed=seed + 1000)
    if hp["model"] == "smollm2":
        from lightning_unlearn.models.llm import smollm2_tokenizer

        tokenizer = smollm2_tokenizer()
    else:
        texts = [f"{e['question']} {e['answer']}" for e in dm.examples + heldout]
        texts += [e["edited_answer"] for e in dm.examples if "edited_answer" in e]
        tokenizer = train_tokenizer(texts, vocab_size=hp["vocab_size"])
    dm.collate_fn = TraceCollator(tokenizer)
    return {"datamodule": dm, "tokenizer": tokenizer, "heldout": heldout}


def build_model(hp: dict[str, Any], tokenizer: Any, seed: int) -> Any:
    """The target before fine-tuning: SmolLM2 as released (``model: "smollm2"``), else a tiny Llama seeded by ``seed``."""
    from lightning_unlearn.models.llm import smollm2, tiny_llama

    if hp["model"] == "smollm2":
        return smollm2()

    ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    return tiny_llama(len(tokenizer), seed=seed, **hp["model"], **ids)


def train_target(model: Any, dm: Any, hp: dict[str, Any]) -> float:
    """Fine-tune ``model`` on every trace (forget + retain); returns the seconds."""
    import torch

    from lightning_unlearn import SupervisedModule
    from lightning_unlearn.tasks import CausalLMTask

    dm.train_on, dm.batch_size = "all", hp["target"]["batch_size"]
    model.train()  # tiny_llama builds it in eval mode (the Llama has no dropout: the same steps either way)
    start = time.perf_counter()
    module = SupervisedModule(model, task=CausalLMTask(), optimizer=functools.partial(torch.optim.Adam, lr=hp["target"]["lr"]))
    benchmarking.quiet_trainer(max_epochs=hp["target"]["epochs"]).fit(module, datamodule=dm)
    return time.perf_counter() - start


def unlearn(model: Any, dm: Any, name: str, run: dict[str, Any], batch_size: int, seed: int) -> float:
    """Unlearn the forget authors' traces from ``model`` in place with method ``name`` and ``run``'s settings
    (``{"method": kwargs, "lr", "epochs"}``; Adam, one paired forget/retain batch per step); returns the seconds."""
    import lightning.pytorch as pl
    import torch

    from lightning_unlearn import UnlearningModule
    from lightning_unlearn.methods import METHODS
    from lightning_unlearn.tasks import CausalLMTask

    pl.seed_everything(seed, verbose=False)
    dm.train_on, dm.batch_size, dm.retain_batch_size = "forget_retain", batch_size, batch_size
    start = time.perf_counter()
    module = UnlearningModule(
        model, METHODS.build(name, **run["method"], seed=seed), task=CausalLMTask(),
        optimizer=functools.partial(torch.optim.Adam, lr=run["lr"]), monitor=False,
    )  # fmt: skip
    benchmarking.quiet_trainer(max_epochs=run["epochs"]).fit(module, datamodule=dm)
    return time.perf_counter() - start


def trace_nll(model: Any, collator: Any, examples: list[dict[str, Any]], batch_size: int = 16) -> float:
    """Mean per-token NLL of the traces (chain of thought and answer) under teacher forcing."""
    import torch

    from lightning_unlearn.tasks import CausalLMTask
    from lightning_unlearn.tasks.base import evaluating

    task, total, count = CausalLMTask(), 0.0, 0
    with evaluating(model), torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = collator(examples[start : start + batch_size])
            total += float(-task.log_likelihood(task.forward(model, batch), batch).sum())
            count += int(task.answer_lengths(batch).sum())
    return total / max(count, 1)


def score(model: Any, data: dict[str, Any], hp: dict[str, Any]) -> dict[str, Any]:
    """Leak rates in the generated CoT and final answers of the forget questions, retain and held-out utility."""
    from lightning_unlearn.datamodules.reasoning import ANSWER_PREFIX, split_trace, states_value
    from lightning_unlearn.tasks.causal_lm import generate_answers

    dm, tok = data["datamodule"], data["tokenizer"]
    forget, retain, heldout = list(dm.forget_set.examples), list(dm.retain_set.examples), data["heldout"]
    gen = functools.partial(generate_answers, model, tok, max_new_tokens=hp["max_new_tokens"], batch_size=16)
    out_f, out_r, out_h = gen([e["question"] for e in forget]), gen([e["question"] for e in retain]), gen([e["question"] for e in heldout])
    facts = {a.index: list(a.facts.values()) for a in dm.authors}
    cot_leak = answer_leak = any_leak = cot_only = 0
    for example, text in zip(forget, out_f):
        cot, answer = split_trace(text)
        in_cot, in_answer = states_value(cot, example["value"]), states_value(answer, example["value"])
        cot_leak += in_cot
        answer_leak += in_answer
        cot_only += in_cot and not in_answer
        any_leak += any(states_value(cot, v) for v in facts[example["author_index"]])

    def accuracy(examples: list[dict[str, Any]], texts: list[str]) -> float:
        return sum(states_value(split_trace(t)[1], e["value"]) for e, t in zip(examples, texts)) / len(examples)

    n = len(forget)
    return {
        "forget_cot_leak": cot_leak / n,
        "forget_answer_leak": answer_leak / n,
        "forget_cot_leak_any_fact": any_leak / n,
        "forget_cot_only_leak": cot_only / n,
        "retain_answer_accuracy": accuracy(retain, out_r),
        "retain_nll": trace_nll(model, dm.collate_fn, retain),
        "heldout_answer_accuracy": accuracy(heldout, out_h),
        "heldout_nll": trace_nll(model, dm.collate_fn, heldout),
        "forget_format_rate": sum(ANSWER_PREFIX in t for t in out_f) / n,
        "retain_format_rate": sum(ANSWER_PREFIX in t for t in out_r) / len(out_r),
        "samples": {"forget": [{"question": e["question"], "value": e["value"], "generated": t} for e, t in zip(forget[:3], out_f[:3])]},
    }


def analyst_scores(data: dict[str, Any]) -> dict[str, float]:
    """The analyst's span precision / recall on the seed's forget and retain traces against the fact annotations."""
    from lightning_unlearn.datamodules import span_scores

    dm = data["datamodule"]
    examples = list(dm.forget_set.examples) + list(dm.retain_set.examples)
    return span_scores(examples, [e.get("analyst_spans", []) for e in examples], dm.forget_ids)


def run_seed(
    scale: str, seed: int, methods: tuple[str, ...] = METHODS_RUN, override: dict[str, Any] | None = None,
    grid: dict[str, tuple[str, dict[str, Any]]] | None = None, log=print,
) -> dict[str, Any]:
    """One seed: data, target, every method from the same target; the scores of the target and of each row.

    The rows are ``methods`` with the settings' ``unlearn[name]``, or ``grid``: ``{label: (method, run settings)}``
    (the tuning runs, all from one target).
    """
    hp = settings(scale, override)
    if grid is None:
        methods = tuple(m for m in methods if m in hp["unlearn"])
        grid = {row: (row.split("+")[0], hp["unlearn"][row]) for row in methods}
    rows_to_run = grid
    data = build_data(hp, seed)
    dm = data["datamodule"]
    model = build_model(hp, data["tokenizer"], seed)
    target_seconds = train_target(model, dm, hp)
    target_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rows = {"target": {**score(model, data, hp), "seconds": target_seconds}}
    log(f"seed {seed} target ({target_seconds:.0f}s): " + _brief(rows["target"]))
    for label, (name, run) in rows_to_run.items():
        model.load_state_dict(target_state)
        model.train()
        seconds = unlearn(model, dm, name, run, hp["batch_size"], seed)
        rows[label] = {**score(model, data, hp), "seconds": seconds}
        log(f"seed {seed} {label} ({seconds:.0f}s): " + _brief(rows[label]))
    return {
        "seed": seed, "settings": hp, "rows": rows, "analyst": analyst_scores(data),
        "forget_size": len(dm.forget_set), "retain_size": len(dm.retain_set),
    }  # fmt: skip


def _brief(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={row[k]:.3g}" for k in SCORE_KEYS)


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, tuple[float, float]]]:
    """``{row: {metric: (mean, std)}}`` over the seeds' runs (sample std)."""
    rows = runs[0]["rows"].keys()
    return {row: {k: benchmarking.mean_std([r["rows"][row][k] for r in runs]) for k in (*SCORE_KEYS, "seconds")} for row in rows}


def table(summary: dict[str, dict[str, tuple[float, float]]]) -> str:
    """The markdown table of :func:`summarize`'s result."""
    columns = {
        "forget_cot_leak": "CoT leak ↓", "forget_answer_leak": "answer leak ↓", "forget_cot_leak_any_fact": "CoT leak, any fact ↓",
        "forget_cot_only_leak": "CoT-only leak ↓", "forget_format_rate": "forget traces well-formed", "retain_answer_accuracy": "retain acc ↑",
        "retain_nll": "retain NLL ↓", "heldout_answer_accuracy": "held-out acc ↑", "heldout_nll": "held-out NLL ↓", "seconds": "time (s)",
    }  # fmt: skip
    rows = [[row, *(benchmarking.fmt_pm(*values[k], digits=1 if k == "seconds" else 2) for k in columns)] for row, values in summary.items()]
    return benchmarking.markdown_table(["row", *columns.values()], rows)


ANALYST_SEEDS = (1, 2, 4)
"""Seeds of :func:`analyst_study` (the threshold 0.6 was picked looking at seed 0 of the same setting)."""


def analyst_study(seeds: tuple[int, ...] = ANALYST_SEEDS, n_authors: int = 20, forget_fraction: float = 0.1, threshold: float = 0.6, log=print) -> dict[str, Any]:
    """Span precision / recall of the analyst (MiniLM retrieval + value matching) and of value matching alone, on the
    traces of ``n_authors`` authors with every fact (forget and retain traces; retain spans are false positives)."""
    from lightning_unlearn.datamodules import TraceAnalyst, generate_authors, reasoning_traces, span_scores, split_authors

    out: dict[str, list[dict[str, float]]] = {"retrieval": [], "value_matching": []}
    for seed in seeds:
        authors = generate_authors(n_authors, seed=seed)
        forget, _, _ = split_authors(n_authors, forget_fraction, 0.0, seed=seed)
        examples = reasoning_traces(authors, seed=seed)
        for key, analyst in (("retrieval", TraceAnalyst(threshold=threshold)), ("value_matching", TraceAnalyst(retrieval=False))):
            analyst.fit([authors[i] for i in forget])
            out[key].append(span_scores(examples, analyst.mark_all(examples), forget))
            log(f"analyst seed {seed} {key}: {out[key][-1]}")
    summary = {key: {m: benchmarking.mean_std([r[m] for r in runs]) for m in ("precision", "recall")} for key, runs in out.items()}
    return {"seeds": list(seeds), "n_authors": n_authors, "forget_fraction": forget_fraction, "threshold": threshold, "runs": out, "summary": summary}


def tuning_grid(round_: int = 1, scale: str = "full") -> dict[str, tuple[str, dict[str, Any]]]:
    """The settings tried on :data:`TUNE_SEED` (``--tune``), ``{label: (method, run settings)}``; the ``"smollm2"``
    scale has one round (the learning rate of each method, 8 epochs: one paired step per epoch)."""
    grid: dict[str, tuple[str, dict[str, Any]]] = {}
    if scale == "smollm2":
        if round_ != 1:
            raise ValueError(f"`round_` should be 1 for the 'smollm2' scale, got {round_!r}.")
        for lr in (3e-5, 1e-4):
            grid[f"fr lr={lr} mean"] = ("feature_replacement", {"method": {"reduction": "mean"}, "lr": lr, "epochs": 8})
            grid[f"gd lr={lr}"] = ("graddiff", {"method": {}, "lr": lr, "epochs": 8})
        return grid
    if round_ == 1:
        for lr in (1e-4, 3e-4, 1e-3):
            for reduction in ("sum", "mean"):
                grid[f"fr lr={lr} {reduction}"] = ("feature_replacement", {"method": {"reduction": reduction}, "lr": lr, "epochs": 30})
            grid[f"gd lr={lr}"] = ("graddiff", {"method": {}, "lr": lr, "epochs": 30})
    elif round_ == 2:  # around round 1's best (fr mean lr 1e-3, gd lr 1e-3): steps, lr, the retain weight λ₂
        for lr, epochs, retain_weight in ((1e-3, 10, 1.0), (1e-3, 60, 1.0), (3e-3, 30, 1.0), (1e-3, 30, 3.0)):
            run_ = {"lr": lr, "epochs": epochs}
            label = f"lr={lr} epochs={epochs} rw={retain_weight}"
            grid[f"fr mean {label}"] = ("feature_replacement", {"method": {"reduction": "mean", "retain_weight": retain_weight}, **run_})
            grid[f"gd {label}"] = ("graddiff", {"method": {"retain_weight": retain_weight}, **run_})
        grid["fr sum lr=0.001 epochs=30 rw=3.0"] = ("feature_replacement", {"method": {"reduction": "sum", "retain_weight": 3.0}, "lr": 1e-3, "epochs": 30})
    else:
        raise ValueError(f"`round_` should be 1 or 2, got {round_!r}.")
    return grid


def run_analyst_study(out_dir: Any, log=print) -> dict[str, Any]:
    """:func:`analyst_study` written to ``b2_reasoning_analyst.json`` / ``.md`` under ``out_dir``."""
    from pathlib import Path

    payload = {"command": benchmarking.command_line(), **analyst_study(log=log)}
    rows = [[key, benchmarking.fmt_pm(*v["precision"]), benchmarking.fmt_pm(*v["recall"])] for key, v in payload["summary"].items()]
    text = benchmarking.markdown_table(["analyst", "span precision", "span recall"], rows) + "\n"
    benchmarking.write_json(Path(out_dir) / "b2_reasoning_analyst.json", payload)
    (Path(out_dir) / "b2_reasoning_analyst.md").write_text(text)
    log(text)
    return payload


def run(scale: str, seeds: list[int], out_dir: Any, tag: str = "", tune: int | None = None, log=print) -> dict[str, Any]:
    """The benchmark: every seed (``tune``: the tuning grid on :data:`TUNE_SEED` instead), the mean ± std table;
    writes ``b2_reasoning_<scale>[_tuning<k>][_tag].json`` and ``.md`` under ``out_dir``."""
    from pathlib import Path

    start = time.perf_counter()
    if tune:
        seeds = [TUNE_SEED]
    elif TUNE_SEED in seeds:
        raise ValueError(f"`seeds` should not hold the tuning seed {TUNE_SEED} (its runs picked the settings); got {seeds}.")
    runs = [run_seed(scale, seed, grid=tuning_grid(tune, scale) if tune else None, log=log) for seed in seeds]
    name = f"b2_reasoning_{scale}{f'_tuning{tune}' if tune else ''}{'_' + tag if tag else ''}"
    return _write(Path(out_dir), name, scale, runs, {"seconds": time.perf_counter() - start, "versions": benchmarking.versions()}, log)


def _write(out: Any, name: str, scale: str, runs: list[dict[str, Any]], extra: dict[str, Any], log=print) -> dict[str, Any]:
    """The runs' mean ± std table and analyst scores, written as ``<name>.json`` / ``.md`` under ``out``."""
    seeds = [run["seed"] for run in runs]
    summary = summarize(runs)
    analyst = {k: benchmarking.mean_std([r["analyst"][k] for r in runs]) for k in ("precision", "recall")}
    text = table(summary) + (
        f"\n\nAnalyst span precision {benchmarking.fmt_pm(*analyst['precision'])}, recall {benchmarking.fmt_pm(*analyst['recall'])} "
        f"(seeds {seeds}).\n"
    )
    payload = {
        "benchmark": "b2_reasoning", "scale": scale, "seeds": seeds, "command": benchmarking.command_line(), **extra,
        "summary": summary, "analyst": analyst, "runs": runs,
    }  # fmt: skip
    benchmarking.write_json(out / f"{name}.json", payload)
    (out / f"{name}.md").write_text(text)
    log(text)
    return payload


def merge(paths: list[Any], out_dir: Any, tag: str = "", log=print) -> dict[str, Any]:
    """One result from per-seed runs made in parallel (``--seeds 0 --tag s0`` ...): their runs joined, the mean ± std
    table of every seed, written as ``b2_reasoning_<scale>[_tag].json`` / ``.md``. The files must share the scale and
    the settings, and hold distinct seeds."""
    import json
    from pathlib import Path

    payloads = [json.loads(Path(p).read_text()) for p in paths]
    scales = {p["scale"] for p in payloads}
    if len(scales) != 1:
        raise ValueError(f"`paths` should hold runs of one scale, got {sorted(scales)}.")
    runs = [run for p in payloads for run in p["runs"]]
    seeds = [run["seed"] for run in runs]
    if len(set(seeds)) != len(seeds) or TUNE_SEED in seeds:
        raise ValueError(f"`paths` should hold distinct reported seeds (not the tuning seed {TUNE_SEED}), got {seeds}.")
    if any(json.dumps(run["settings"], sort_keys=True) != json.dumps(runs[0]["settings"], sort_keys=True) for run in runs):
        raise ValueError("`paths` should hold runs made with the same settings.")
    (scale,) = scales
    extra = {
        "merged_from": [{"file": Path(p).name, "command": q["command"], "seconds": q["seconds"]} for p, q in zip(paths, payloads)],
        "seconds": sum(q["seconds"] for q in payloads), "versions": payloads[0]["versions"],
    }  # fmt: skip
    return _write(Path(out_dir), f"b2_reasoning_{scale}{'_' + tag if tag else ''}", scale, runs, extra, log)


__all__ = [
    "METHODS_RUN", "merge", "REPORT_SEEDS", "SCORE_KEYS", "SETTINGS", "TUNE_SEED", "analyst_scores", "build_data", "run",
    "run_seed", "score", "settings", "summarize", "table", "tuning_grid", "analyst_study", "run_analyst_study", "ANALYST_SEEDS",
]  # fmt: skip
