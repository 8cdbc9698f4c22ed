#!/usr/bin/env python
"""Benchmark B2 — TOFU-style unlearning of fictitious authors on a real pretrained LM (SmolLM2-135M-Instruct).

Protocol (TOFU, Maini et al., arXiv:2401.06121, on our own seeded fictitious-author generator):

1. **Data.** ``generate_authors`` + ``qa_pairs`` (one short QA pair per fact, a paraphrased answer and
   perturbed (false) answers per pair), split *by author* with ``split_authors``: forget 10%, holdout 10%
   (never trained on; the non-members of the membership-inference attacks), retain the rest.
2. **Target and oracle.** The pretrained model is fine-tuned (full weights, AdamW) on forget + retain (the
   *target*) and, with the same recipe, on retain only (the *oracle*). Both are cached on disk under
   ``benchmarks/.cache/b2`` keyed by a hash of their recipe and data, with their training seconds.
3. **Unlearning.** Every method runs through ``UnlearningModule`` + ``Trainer.fit`` from the cached target on
   paired forget/retain batches (``mode="min_size"``: one epoch = one pass over the forget set), with a small
   budget (the target is ≤ 10% of the target's fine-tuning time); settings are the papers' / open-unlearning's
   defaults unless the row's config says otherwise.
4. **Metrics** (every row, target and oracle included): ROUGE-L recall of greedy answers on forget and retain,
   answer probability P(a|q)^(1/|a|), truth ratio (TOFU's *code* convention, ``perturbed_mean="geometric"``:
   the geometric mean of the perturbed answers' per-token probabilities over the paraphrased answer's),
   forget quality (KS-test p-value of the forget truth ratios against the oracle's), model utility (harmonic
   mean of retain answer probability, retain ROUGE-L, retain truth-ratio score and general-knowledge accuracy
   on the probes the *pretrained* model answers correctly), MIA AUC forget vs. holdout for LOSS, zlib, Min-K%
   and Min-K%++ (k = 0.2), gibberish rate of the forget generations, seconds, seconds / fine-tuning seconds,
   peak RSS, and two example generations per row. The scores come from the package's evaluator
   (:class:`lightning_unlearn.evaluation.llm.TofuEvaluator`), the same code ``lightning-unlearn test`` runs on a
   ``configs/authors_smollm2`` config (:class:`lightning_unlearn.callbacks.LLMEvaluation`).

Scales: ``--quick`` = a tiny Llama (``tiny_llama``, 2 layers) with a BPE tokenizer trained on the generated
texts, first "pretrained" on the general-knowledge probes (so that general knowledge exists to be kept), a
handful of authors; a couple of minutes on 2 cores. Default (full) = SmolLM2-135M-Instruct (fp32,
``load_smollm2``), 40 authors × 6 facts = 240 QA pairs.

The settings that produce the published numbers are the shipped configs: the full scale reads each row's
``configs/authors_smollm2/<row>.yaml`` (``<method>+<variant>.yaml`` for a variant row such as ``pmc+long``) and the
target's and the oracle's recipe and data from ``target.yaml``; edit a YAML file to change them. The protocol and
that mapping are :mod:`lightning_unlearn.benchmarking.b2`; the quick scale's smoke-test settings are its
``QUICK_HPARAMS`` (the tiny Llama is built by the benchmark, so no config describes it).

``--estimate`` measures the full run's costs (a few fine-tuning steps, one evaluation, a few unlearning steps
of chosen methods) without running it, and extrapolates its wall time.

Run from the repository root::

    python benchmarks/b2_llm.py --quick
    python benchmarks/b2_llm.py --estimate          # full-scale costs, ~3 minutes
    python benchmarks/b2_llm.py                     # full scale
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import time
import traceback
from pathlib import Path
from typing import Any

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking.b2 import (  # noqa: F401  (the protocol, importable from the script as before)
    ORACLE,
    PRETRAINED,
    ROW_CURVES,
    SCALES,
    TARGET,
    TARGET_CHECK,
    Backbone,
    PeakRSS,
    curve_table,
    curves_from_run_start,
    default_methods,
    eval_sets,
    evaluate,
    finetune_seconds_now,
    finite,
    get_trained,
    is_editor,
    known_probes,
    load_model,
    make_data,
    merge_seeds,
    method_name,
    model_config,
    plot_curves,
    quiet_llm_run,
    resolve_hparams,
    run_editor,
    run_method,
    same_run_ratio,
    seed_table,
    training_examples,
)
from lightning_unlearn.evaluation.llm import TOFU_COLUMNS

BENCH_DIR = Path(__file__).resolve().parent

# ----------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------

#: The package's TOFU row (``TOFU_COLUMNS``) plus the model utility relative to the target's, which needs the
#: target's row and so exists only here.
_MU = [name for name, _, _ in TOFU_COLUMNS].index("model_utility") + 1
COLUMNS = [*TOFU_COLUMNS[:_MU], ("mu_ratio_to_target", "MU/target", 2), *TOFU_COLUMNS[_MU:]]


def _fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and 0 < abs(value) < 10 ** (-digits):
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def format_table(payload: dict[str, Any]) -> str:
    header = ["Method", *(c[1] for c in COLUMNS), "steps", "seconds", "time / FT", "peak RSS (GB)"]
    rows = []
    for row in payload["rows"]:
        m = row.get("metrics", {})
        if "error" in row:
            rows.append([row["method"], f"ERROR: {row['error'].splitlines()[-1][:80]}", *[""] * (len(header) - 2)])
            continue
        label = {TARGET: "target (no unlearning)", ORACLE: "oracle (retain only)"}.get(row["method"], row["method"])
        steps = row.get("budget", {}).get("steps")
        rows.append(
            [
                label + (" (time-limited)" if row.get("budget", {}).get("stopped_by_time_limit") else ""),
                *(_fmt(m.get(k), d) for k, _, d in COLUMNS),
                "–" if steps is None else str(steps),
                _fmt(row.get("seconds"), 1),
                _fmt(row.get("time_ratio_to_finetune"), 3),
                _fmt(row.get("peak_rss_mb", math.nan) / 1024, 2),
            ]
        )
    title = f"### B2 ({payload['scale']}) — fictitious authors, forget {payload['config']['sizes']['forget']} QA pairs"
    notes = (
        "\n\nforget TR = mean min(R, 1/R) on forget (higher = true and false answers equally likely); retain TR = mean "
        "max(0, 1 - R) on retain; R with perturbed_mean='geometric'. forget quality = KS p-value vs the oracle's forget "
        "truth ratios. MU = harmonic mean(retain prob, retain ROUGE, retain TR, GK acc). MIA = ROC AUC forget vs holdout "
        "(0.5 = indistinguishable). time / FT = seconds / the target's fine-tuning seconds."
    )
    lines = [title, "", benchmarking.markdown_table(header, rows)]
    examples = []
    for row in payload["rows"]:
        for ex in row.get("examples", [])[:2]:
            examples.append(f"- **{row['method']}** — Q: {ex['question']} | ref: {ex['reference']} | gen: {ex['generated']!r}")
    return "\n".join(lines) + notes + "\n\nExample generations (forget questions):\n\n" + "\n".join(examples)


def meets_target(m: dict[str, Any], time_cached: float, time_same_run: float | None, target_rouge: float | None) -> dict[str, Any]:
    """:data:`TARGET_CHECK` for one model's metrics ``m`` (``forget_quality``, ``mu_ratio_to_target``,
    ``forget_rouge``) and its time ratios to the cached fine-tuning seconds and (``None`` if not measured) to the
    same-run estimate. A model must have forgotten something: at the quick scale the untouched target can already
    clear the forget-quality bar, so a model whose forget ROUGE is not below the target's (``target_rouge``) does not
    count as meeting it."""
    def at_least(key: str, bound: float) -> bool:  # a missing or NaN value (stored as null) is not met
        value = m.get(key)
        return value is not None and not math.isnan(value) and value >= bound

    forgot = target_rouge is None or (m.get("forget_rouge") is not None and m["forget_rouge"] < target_rouge)
    quality = forgot and at_least("forget_quality", TARGET_CHECK["forget_quality"]) and at_least("mu_ratio_to_target", TARGET_CHECK["mu_ratio_to_target"])
    limit = TARGET_CHECK["time_ratio_to_finetune"]
    return {
        "forgot": forgot,
        "forget_quality_and_utility": quality,
        "within_time_cached": time_cached <= limit,
        "within_time_same_run": None if time_same_run is None else time_same_run <= limit,
        "met": quality and time_cached <= limit,
    }


def target_check(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Which rows meet :data:`TARGET_CHECK` (:func:`meets_target`), with the time ratio to the cached fine-tuning
    seconds and, where it was measured, to the same-run estimate of them (the cached time may come from a
    differently loaded machine); ``curves``: the same check after every pass of the rows scored per pass."""
    out: dict[str, Any] = {"criteria": dict(TARGET_CHECK), "rows": {}, "curves": {}}
    target = next((r["metrics"] for r in rows if r["method"] == TARGET and "error" not in r), None)
    target_rouge = None if target is None else target["forget_rouge"]
    for row in rows:
        if row["method"] in (TARGET, ORACLE) or "error" in row:
            continue
        same_run = row.get("time_ratio_to_finetune_same_run_estimate")
        out["rows"][row["method"]] = meets_target(row["metrics"], row["time_ratio_to_finetune"], same_run, target_rouge)
        if row.get("curve"):
            out["curves"][row["method"]] = [
                {"passes": pt["passes"], **meets_target(pt, pt["time_ratio_to_finetune"], same_run_ratio(row, pt["seconds"]), target_rouge)}
                for pt in row["curve"]
            ]
    out["met_by"] = [name for name, r in out["rows"].items() if r["met"]]
    out["quality_and_utility_only"] = [name for name, r in out["rows"].items() if r["forget_quality_and_utility"] and not r["met"]]
    return out


def format_target_check(check: dict[str, Any]) -> str:
    c = check["criteria"]
    head = f"Target (forget quality >= {c['forget_quality']}, MU >= {c['mu_ratio_to_target']} x target's, time <= {c['time_ratio_to_finetune']:.0%} of fine-tuning): "
    if check["met_by"]:
        return head + "met by " + ", ".join(check["met_by"]) + "."
    slow = check["quality_and_utility_only"]
    return head + "met by no method" + (f" (forget quality and utility met, over the time budget: {', '.join(slow)})." if slow else ".")


def write_payload(out_path: Path, args, scale: str, seed: int, methods: list[str], hparams, models, rows, extra, wall: float) -> dict[str, Any]:
    import torch

    data = make_data(scale, seed)
    sets = eval_sets(scale, seed)
    payload = {
        "benchmark": "B2",
        "scale": scale,
        "command": benchmarking.command_line(),
        "git_commit": benchmarking.git_commit(BENCH_DIR.parent),
        "git_dirty": benchmarking.git_dirty(BENCH_DIR.parent),
        "versions": benchmarking.versions("transformers", "tokenizers", "scipy", "psutil"),
        "config": {
            "scale": SCALES[scale],
            "seed": seed,
            "data_fingerprint": data["fingerprint"],
            "sizes": {k: len(data[k]) for k in ("forget", "retain", "holdout")},
            "eval_sizes": {k: len(v) for k, v in sets.items()},
            "author_ids": data["ids"],
            "methods": methods,
            "hparams": hparams,
            "torch_threads": torch.get_num_threads(),
            "metric_conventions": {
                "perturbed_template": args.perturbed_template,
                "truth_ratio": "TOFU code convention: perturbed_mean='geometric' (exp(mean_k mean-token log p(perturbed_k)) / "
                "p(paraphrased)^(1/|a|)); forget summary mean min(R,1/R), retain summary mean max(0,1-R)",
                "forget_quality": "scipy ks_2samp p-value, forget truth ratios of the row vs the oracle's",
                "model_utility": "harmonic mean of retain_prob, retain_rouge, retain_truth_ratio, gk_acc",
                "gk_acc": "greedy answers to the GENERAL_KNOWLEDGE probes the pretrained model answers correctly "
                "(filter_known, selected once), probe_correct containment match",
                "rouge": "ROUGE-L recall of the greedy answer vs the reference answer, no stemming",
                "answer_prob": "exp(mean answer-token log-likelihood), answer tokens include EOS",
                "mia": "ROC AUC, forget (members) vs holdout authors (never trained on), scores on answer tokens, k = 0.2",
                "time_ratio_to_finetune": "row seconds / the target's cached fine-tuning seconds",
            },
            **extra,
            "cached_models": models,
            "wall_seconds": wall,
        },
        "target_check": target_check(rows),
        "rows": rows,
    }
    payload = finite(payload)
    benchmarking.write_json(out_path, payload)
    return payload


# ----------------------------------------------------------------------------------------------------------
# Cost estimate (full scale without running it)
# ----------------------------------------------------------------------------------------------------------


def estimate(args, scale: str, seed: int, cache_dir: Path, methods: list[str], log) -> dict[str, Any]:
    """Time a few fine-tuning steps, one evaluation and a few unlearning steps of ``--estimate-methods``, and
    extrapolate the whole run. Unlearning steps start from the *pretrained* model (the target may not exist yet):
    a step costs the same whatever the weights."""
    import torch

    backbone = Backbone(scale, seed, cache_dir)
    data = make_data(scale, seed)
    train = SCALES[scale]["train"]
    report: dict[str, Any] = {"sizes": {k: len(data[k]) for k in ("forget", "retain", "holdout")}}
    if scale == "full":  # a target already trained with this recipe: its real fine-tuning seconds
        key = benchmarking.config_hash(model_config(TARGET, scale, seed, backbone, None))
        meta = cache_dir / "b2" / f"{TARGET}-{key}.json"
        if meta.is_file():
            report["cached_target"] = {k: v for k, v in json.loads(meta.read_text()).items() if k != "config"}
    wall = time.perf_counter()
    with PeakRSS() as rss:
        ft = finetune_seconds_now(scale, seed, backbone, None, steps=args.estimate_steps)
    n_oracle_steps = train["epochs"] * math.ceil(len(training_examples(ORACLE, scale, seed)) / train["batch_size"])
    report["finetune"] = {**ft, "peak_rss_mb": rss.mb, "oracle_steps": n_oracle_steps, "oracle_estimate_seconds": ft["seconds_per_step"] * n_oracle_steps}
    log(f"[b2] fine-tuning: {ft['seconds_per_step']:.2f} s/step x {ft['steps']} steps = {ft['estimate_seconds'] / 60:.1f} min (target); oracle {n_oracle_steps} steps")
    # one evaluation of the pretrained model (known-probe selection included once)
    start = time.perf_counter()
    probes = known_probes(backbone, None, "smollm2" if scale == "full" else "est", cache_dir, SCALES[scale]["eval"]["gen_batch_size"])
    probe_seconds = time.perf_counter() - start
    model = load_model(backbone, None)
    start = time.perf_counter()
    with PeakRSS() as rss:
        res = evaluate(model, backbone, eval_sets(scale, seed), probes, scale, args.perturbed_template)
    eval_seconds = time.perf_counter() - start
    report["eval"] = {"seconds": eval_seconds, "peak_rss_mb": rss.mb, "known_probe_seconds": probe_seconds, "known_probes": len(probes), "pretrained_metrics": res["metrics"]}
    log(f"[b2] one evaluation: {eval_seconds:.1f}s ({len(probes)} known probes, selecting them took {probe_seconds:.1f}s)")
    del model
    # a few unlearning steps of chosen methods, from the pretrained weights
    pre = cache_dir / "b2" / "estimate-start.pt"
    pre.parent.mkdir(parents=True, exist_ok=True)
    torch.save(load_model(backbone, None).state_dict(), pre)
    per_method = {}
    for name in args.estimate_methods:
        hp, _ = resolve_hparams(scale, name)
        with PeakRSS() as rss:
            try:
                _, seconds, info = run_method(name, hp, scale, seed, backbone, str(pre), None, max_steps=1 + args.estimate_steps)
            except Exception as err:  # reported, not fatal
                per_method[name] = {"error": f"{type(err).__name__}: {err}"}
                continue
        steps = info["step_seconds"]
        per_step = sum(steps[1:]) / max(1, len(steps) - 1) if len(steps) > 1 else steps[0]
        n_forget_batches = math.ceil(info["forget_size"] / hp["batch_size"])
        planned = hp["epochs"] * n_forget_batches if hp.get("max_steps", -1) in (-1, None) else hp["max_steps"]
        per_method[name] = {
            "setup_seconds": info["setup_seconds"],
            "first_step_seconds": steps[0] if steps else None,
            "seconds_per_step": per_step,
            "step_seconds": steps,
            "planned_steps": planned,
            "planned_seconds": info["setup_seconds"] + (steps[0] if steps else 0) + per_step * (planned - 1),
            "peak_rss_mb": rss.mb,
        }
        log(f"[b2] {name}: setup {info['setup_seconds']:.1f}s, first step {steps[0]:.1f}s, then {per_step:.2f} s/step; planned {planned} steps")
    pre.unlink(missing_ok=True)
    report["methods"] = per_method
    # extrapolation
    measured = [v["planned_seconds"] for v in per_method.values() if "planned_seconds" in v]
    typical = statistics.median(measured) if measured else ft["estimate_seconds"] * 0.1
    unlearn_total = sum(per_method.get(m, {}).get("planned_seconds", typical) for m in methods)
    target_s, oracle_s = ft["estimate_seconds"], report["finetune"]["oracle_estimate_seconds"]
    if "cached_target" in report:  # a whole measured fine-tuning beats a few timed steps
        target_s = report["cached_target"]["seconds"]
        oracle_s = target_s * n_oracle_steps / ft["steps"]
    total = target_s + oracle_s + probe_seconds + (len(methods) + 2) * eval_seconds + unlearn_total
    report["extrapolation"] = {
        "methods": methods,
        "unmeasured_methods_assumed_seconds": typical,
        "target_seconds": target_s,
        "oracle_seconds": oracle_s,
        "finetune_seconds_source": "cached target's measured training" if "cached_target" in report else "timed steps x steps",
        "evaluations": len(methods) + 2,
        "eval_seconds_total": (len(methods) + 2) * eval_seconds,
        "unlearning_seconds_total": unlearn_total,
        "total_seconds": total,
        "total_seconds_cached_target_oracle": total - target_s - oracle_s,
        "budget_seconds_per_method_at_10pct": 0.1 * target_s,
    }
    report["measure_wall_seconds"] = time.perf_counter() - wall
    try:
        report["load_average"] = os.getloadavg()
    except OSError:
        pass
    return report


# ----------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="b2_llm.py",
        description=(
            "Benchmark B2: TOFU-style unlearning of fictitious authors. The pretrained model is fine-tuned on all "
            "authors but the holdout ones (target) and on the retain authors only (oracle), both cached on disk; every "
            "method unlearns the forget authors from the target with a small budget. Reports forget/retain ROUGE-L, "
            "answer probability, truth ratio, forget quality, model utility, MIA AUC (LOSS, zlib, Min-K%%, Min-K%%++), "
            "gibberish rate, time and peak memory."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="Tiny Llama + trained BPE tokenizer, 30 authors x 5 facts: about a minute on 2 cores (30 s with cached models). Default: SmolLM2-135M-Instruct, 40 authors x 6 facts.")
    parser.add_argument("--methods", nargs="+", default=None, help="Methods from lightning_unlearn.METHODS, or 'llm' (ga graddiff npo simnpo idk idk_dpo rmu pmc tru asu) or 'all' (every method whose supported_tasks include causal_lm, except retrain). ")
    parser.add_argument("--perturbed-template", choices=["paraphrase", "answer"], default="paraphrase", help="Wording of the perturbed answers of the truth ratio: 'paraphrase' = the false values in the paraphrased answer's template (TOFU's construction); 'answer' = qa_pairs' perturbed_answers as they are (the trained answer template).")
    parser.add_argument("--authors", type=int, default=None, help="Override the scale's number of fictitious authors (quick 30, full 40); forget and holdout stay 10%% each. Cached models are keyed by the data, so this trains new ones.")
    parser.add_argument("--facts", type=int, default=None, help="Override the scale's facts (QA pairs) per author (quick 5, full 6; at most 11).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the authors, the split, the training and the unlearning.")
    parser.add_argument("--out", default=None, help="Output JSON (default benchmarks/results/b2_<scale>.json, or b2_<scale>_estimate.json with --estimate).")
    parser.add_argument("--cache-dir", default=str(BENCH_DIR / ".cache"), help="Where the pretrained (quick), target and oracle weights, the tokenizer (quick) and the known probes are cached.")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the whole run (0 = torch's default, all cores). Default: 1 at quick scale (tiny matrices; steadiest on a shared machine), 0 at full scale.")
    parser.add_argument("--time-limit", type=float, default=0.3, help="Stop a method's training once it has run this fraction of the target's fine-tuning seconds (a guard against runaway methods; the budget itself is set by each row's epochs: configs/authors_smollm2/<row>.yaml at full scale). 0 = no limit.")
    parser.add_argument("--calibrate-steps", type=int, default=3, help="Time this many fine-tuning steps now for a same-run estimate of the fine-tuning time (a second time ratio; 0 = skip).")
    parser.add_argument("--prepare-only", action="store_true", help="Only train/cache the pretrained (quick), target and oracle models, then exit.")
    parser.add_argument("--estimate", action="store_true", help="Measure the costs instead of running: a few fine-tuning steps, one evaluation, a few unlearning steps of --estimate-methods; extrapolate the whole run's wall time.")
    parser.add_argument("--estimate-methods", nargs="+", default=["npo", "pmc"], help="Methods whose unlearning steps --estimate times.")
    parser.add_argument("--estimate-steps", type=int, default=3, help="Timed steps (after one warm-up step) per measurement of --estimate.")
    parser.add_argument("--quiet", action="store_true", help="No progress lines (the final table is still printed).")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON", help="Instead of running: merge these B2 result JSONs (per seed; a later file of a seed replaces the rows it reruns) into a mean ± std table, the curves against passes and their plot, written next to --out (default benchmarks/results/b2_seeds.{json,md,png}).")
    return parser.parse_args(argv)


def merge(paths: list[str], out: str | None) -> dict[str, Any]:
    """``--merge``: the per-seed JSONs merged (:func:`lightning_unlearn.benchmarking.b2.merge_seeds`), written as
    ``<out>.json``, ``<out>.md`` (the tables) and ``<out>.png`` (the curves)."""
    base = Path(out).with_suffix("") if out else BENCH_DIR / "results" / "b2_seeds"
    payloads = [json.loads(Path(p).read_text()) for p in paths]
    for payload in payloads:  # this script's rule, applied to every run's stored rows (older runs had no curve checks)
        payload["target_check"] = target_check(curves_from_run_start(payload)["rows"])
    merged = merge_seeds(payloads)
    merged["sources"] = [str(p) for p in paths]
    base.parent.mkdir(parents=True, exist_ok=True)
    benchmarking.write_json(base.with_suffix(".json"), finite(merged))
    text = f"B2, seeds {merged['seeds']} (mean ± std; {', '.join(paths)})\n\n{seed_table(merged)}\n"
    if any(e.get("curve") for e in merged["rows"].values()):
        text += f"\nAgainst passes over the forget set:\n\n{curve_table(merged)}\n"
    base.with_suffix(".md").write_text(text)
    plot = plot_curves(merged, base.with_suffix(".png"))
    print(text + (f"\nplot: {plot}" if plot else ""))
    return merged


def resolve_methods(spec: list[str] | None, scale: str) -> list[str]:
    from lightning_unlearn import METHODS

    spec = spec or ["all"]
    out: list[str] = []
    for item in spec:
        for m in default_methods(item) if item in ("all", "llm") else [item]:
            if not is_editor(m):
                METHODS.get(method_name(m))  # a clear error on a typo before anything trains
            if m not in out:
                out.append(m)
    return out


def pass_curve(snapshots, model, row, backbone, sets, probes, scale, perturbed_template, oracle_ratios, target_mu, ft_seconds, log) -> list[dict[str, Any]]:
    """Score the weights kept after every pass (the last pass is ``row`` itself): forget quality, model utility and
    its ratio to the target's, forget ROUGE, MIA LOSS AUC, with the steps and seconds each pass had taken."""
    from lightning_unlearn.metrics.llm import forget_quality

    curve = []
    for snap in snapshots:
        if snap is snapshots[-1] and snap["steps"] == row["budget"]["steps"]:
            m = row["metrics"]
        else:
            model.load_state_dict(snap["state"])
            result = evaluate(model, backbone, sets, probes, scale, perturbed_template)
            m = result["metrics"]
            m["forget_quality"] = forget_quality(result["forget_truth_ratios"], oracle_ratios)
        point = {
            "passes": snap["epoch"],
            "steps": snap["steps"],
            "seconds": snap["seconds"],
            "time_ratio_to_finetune": snap["seconds"] / ft_seconds,
            "clock": "run",  # seconds since the run's start (run_method), the method's setup included
            "forget_quality": m["forget_quality"],
            "model_utility": m["model_utility"],
            "mu_ratio_to_target": m["model_utility"] / target_mu if target_mu > 0 else math.nan,
            "forget_rouge": m["forget_rouge"],
            "mia_loss": m["mia_loss"],
        }
        curve.append(point)
        log(f"[b2] {row['method']} after {point['passes']} pass(es): FQ={point['forget_quality']:.3g} MU/target={point['mu_ratio_to_target']:.2f} fROUGE={point['forget_rouge']:.3f} time/FT={point['time_ratio_to_finetune']:.3f}")
    return curve


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)
    quiet_llm_run()
    import torch

    scale = "quick" if args.quick else "full"
    if args.authors is not None:
        SCALES[scale]["data"]["n_authors"] = args.authors
    if args.facts is not None:
        SCALES[scale]["data"]["facts_per_author"] = args.facts
    threads = args.threads if args.threads is not None else (1 if scale == "quick" else 0)
    if threads > 0:
        torch.set_num_threads(threads)
    seed = args.seed
    methods = resolve_methods(args.methods, scale)
    cache_dir = Path(args.cache_dir)
    log = (lambda *a, **k: None) if args.quiet else functools.partial(print, flush=True)

    if args.estimate:
        out_path = Path(args.out) if args.out else BENCH_DIR / "results" / f"b2_{scale}_estimate.json"
        report = estimate(args, scale, seed, cache_dir, methods, log)
        payload = {
            "benchmark": "B2",
            "scale": scale,
            "mode": "estimate",
            "command": benchmarking.command_line(),
            "git_commit": benchmarking.git_commit(BENCH_DIR.parent),
            "versions": benchmarking.versions("transformers", "tokenizers", "scipy", "psutil"),
            "config": {"scale": SCALES[scale], "seed": seed, "hparams": {m: resolve_hparams(scale, m)[0] for m in methods}, "torch_threads": torch.get_num_threads()},
            "estimate": report,
        }
        benchmarking.write_json(out_path, finite(payload))
        ex = report["extrapolation"]
        print(
            f"\nestimated full run: {ex['total_seconds'] / 60:.1f} min ({len(methods)} methods; fine-tuning target "
            f"{ex['target_seconds'] / 60:.1f} + oracle {ex['oracle_seconds'] / 60:.1f} min, {ex['evaluations']} evaluations "
            f"{ex['eval_seconds_total'] / 60:.1f} min, unlearning {ex['unlearning_seconds_total'] / 60:.1f} min); "
            f"with cached target/oracle {ex['total_seconds_cached_target_oracle'] / 60:.1f} min\nwrote {out_path}"
        )
        return payload

    out_path = Path(args.out) if args.out else BENCH_DIR / "results" / f"b2_{scale}.json"
    wall = time.perf_counter()
    backbone = Backbone(scale, seed, cache_dir)
    models: dict[str, Any] = {}
    pretrained = None
    if SCALES[scale]["pretrain"] is not None:
        pretrained = get_trained(PRETRAINED, scale, seed, backbone, cache_dir, None, log)
        models[PRETRAINED] = {k: pretrained[k] for k in ("key", "seconds", "cached", "path")}
    target = get_trained(TARGET, scale, seed, backbone, cache_dir, pretrained, log)
    oracle = get_trained(ORACLE, scale, seed, backbone, cache_dir, pretrained, log)
    for kind, entry in ((TARGET, target), (ORACLE, oracle)):
        models[kind] = {k: entry[k] for k in ("key", "seconds", "cached", "path", "peak_rss_mb")}
    if args.prepare_only:
        log(f"[b2] prepared in {time.perf_counter() - wall:.1f}s")
        return {}
    ft_seconds = float(target["seconds"])
    extra: dict[str, Any] = {"finetune_seconds": ft_seconds}
    if args.calibrate_steps > 0:
        calib = finetune_seconds_now(scale, seed, backbone, pretrained["path"] if pretrained else None, steps=args.calibrate_steps)
        extra["finetune_calibration"] = calib
        log(f"[b2] fine-tuning now: {calib['seconds_per_step']:.3f} s/step -> {calib['estimate_seconds']:.1f}s (cached: {ft_seconds:.1f}s)")
    probe_key = pretrained["key"] if pretrained else "smollm2"
    probes = known_probes(backbone, pretrained["path"] if pretrained else None, probe_key, cache_dir, SCALES[scale]["eval"]["gen_batch_size"])
    extra["known_probes"] = [p.question for p in probes]
    log(f"[b2] {len(probes)} general-knowledge probes known by the pretrained model")
    sets = eval_sets(scale, seed)
    hparams = {m: dict(zip(("config", "source"), resolve_hparams(scale, m))) for m in methods}
    rows: list[dict[str, Any]] = []

    def finish(row: dict[str, Any], result: dict[str, Any], oracle_ratios: list[float]) -> None:
        from lightning_unlearn.metrics.llm import forget_quality

        metrics = result["metrics"]
        metrics["forget_quality"] = forget_quality(result["forget_truth_ratios"], oracle_ratios)
        row["metrics"] = metrics
        row["forget_truth_ratios"] = result["forget_truth_ratios"]
        row["examples"] = result["examples"]
        rows.append(row)
        m = metrics
        log(
            f"[b2] {row['method']:10s} fROUGE={m['forget_rouge']:.3f} rROUGE={m['retain_rouge']:.3f} FQ={m['forget_quality']:.3g} "
            f"MU={m['model_utility']:.3f} MIA(loss)={m['mia_loss']:.2f} gib={m['gibberish']:.2f} "
            f"time={row.get('seconds', 0):.1f}s eval={row['eval_seconds']:.1f}s"
        )

    # oracle first: its forget truth ratios are the reference of forget quality
    start = time.perf_counter()
    res_oracle = evaluate(load_model(backbone, oracle["path"]), backbone, sets, probes, scale, args.perturbed_template)
    oracle_ratios = res_oracle["forget_truth_ratios"]
    row_oracle = {"method": ORACLE, "seconds": float(oracle["seconds"]), "time_ratio_to_finetune": float(oracle["seconds"]) / ft_seconds, "peak_rss_mb": oracle.get("peak_rss_mb", math.nan), "eval_seconds": time.perf_counter() - start}
    start = time.perf_counter()
    res_target = evaluate(load_model(backbone, target["path"]), backbone, sets, probes, scale, args.perturbed_template)
    row_target = {"method": TARGET, "seconds": 0.0, "time_ratio_to_finetune": 0.0, "peak_rss_mb": target.get("peak_rss_mb", math.nan), "eval_seconds": time.perf_counter() - start}
    finish(row_target, res_target, oracle_ratios)
    finish(row_oracle, res_oracle, oracle_ratios)
    target_mu = row_target["metrics"]["model_utility"]

    def mu_ratio(row: dict[str, Any]) -> None:
        row["metrics"]["mu_ratio_to_target"] = row["metrics"]["model_utility"] / target_mu if target_mu > 0 else math.nan

    mu_ratio(row_target)
    mu_ratio(row_oracle)
    for name in methods:
        hp = hparams[name]["config"]
        fraction = hp.get("time_limit", args.time_limit)
        time_limit = fraction * ft_seconds if fraction > 0 else None
        row: dict[str, Any] = {"method": name, "hparams_source": hparams[name]["source"]}
        try:
            with PeakRSS() as rss:
                if is_editor(name):
                    model, seconds, info = run_editor(name, hp, scale, seed, backbone, target["path"])
                else:
                    model, seconds, info = run_method(name, hp, scale, seed, backbone, target["path"], time_limit, snapshots=name in ROW_CURVES and scale == "full")  # quick pmc+long: 25 passes, no curve
            snapshots = info.pop("snapshots", None)
            row.update(
                {
                    "seconds": seconds,
                    "time_ratio_to_finetune": seconds / ft_seconds,
                    "peak_rss_mb": rss.mb,
                    "budget": info,
                }
            )
            if "finetune_calibration" in extra:
                row["time_ratio_to_finetune_same_run_estimate"] = seconds / extra["finetune_calibration"]["estimate_seconds"]
            start = time.perf_counter()
            result = evaluate(model, backbone, sets, probes, scale, args.perturbed_template)
            row["eval_seconds"] = time.perf_counter() - start
            finish(row, result, oracle_ratios)
            mu_ratio(row)
            if snapshots:
                row["curve"] = pass_curve(snapshots, model, row, backbone, sets, probes, scale, args.perturbed_template, oracle_ratios, target_mu, ft_seconds, log)
            del model
        except Exception as err:  # a crash is a bug to report: keep it in the JSON and carry on
            row["error"] = f"{type(err).__name__}: {err}"
            row["traceback"] = traceback.format_exc()
            rows.append(row)
            log(f"[b2] {name:10s} ERROR {row['error'][:300]}")
        write_payload(out_path, args, scale, seed, methods, hparams, models, rows, extra, time.perf_counter() - wall)
    payload = write_payload(out_path, args, scale, seed, methods, hparams, models, rows, extra, time.perf_counter() - wall)
    print(format_table(payload))
    print("\n" + format_target_check(payload["target_check"]))
    print(f"\nwrote {out_path} ({len(rows)} rows, {time.perf_counter() - wall:.0f}s wall)")
    return payload


if __name__ == "__main__":
    main()
