#!/usr/bin/env python
"""Benchmark B1-continual — a stream of deletion requests served on one static model.

Compares three ways of serving T deletion requests one after another with
:class:`lightning_unlearn.continual.ContinualUnlearner`; after every request the deployed model is a
single network (no routing):

* ``orthogonal`` — SVD-LoRA (a *reconstruction* of arXiv 2604.12526, which publishes no code): a new LoRA
  per request whose factors are kept orthogonal to the top singular subspace (energy threshold 0.97) of
  the updates fused so far, then fused;
* ``naive`` — a new LoRA per request, fused after each, no projection (the static-fusion baseline);
* ``full`` — sequential full fine-tuning of all weights with the same unlearning loss.

Every strategy uses the same unlearning loss — RL (random labels on the forget batch + cross-entropy on a
retain batch of the same size, :class:`lightning_unlearn.methods.RandomLabel`) — the same number of steps
and the same batches. LoRA (rank 8, alpha 8) adapts every Conv2d/Linear layer (``features.0``,
``features.3``, ``penultimate.1``, ``head``). The learning rate is chosen once per family (the LoRA
strategies share one: they are identical on request 1) by ``--tune``: a grid {3e-4, 1e-3, 3e-3} on request
1 of the class stream (seed 0), keeping the best retained accuracy among the rates that forget (forget
accuracy ≤ 5%); the result is frozen in :data:`SCALES` and logged in
``benchmarks/results/b1_continual[_quick]_tuning.json``.

Model: the cached *original* of benchmark B1 (``lightning_unlearn.benchmarking.b1.get_trained("original", scale, None, seed,
...)``: ``SmallCNN()`` trained 8 epochs with Adam 1e-3, batch 128 on all 60k Fashion-MNIST images; the
digits CNN at quick scale), one per seed. A missing one is trained and cached under
``benchmarks/.cache/b1`` first (~6 minutes per seed at full scale, not counted in the budget below).

Request streams:

``class`` (T=5): request t forgets *every training image of one class*; the classes are the first T of a
    permutation of the 10 classes seeded by the run's seed. The retain set of request t is every training
    image of the classes not forgotten so far (the classes of later requests included). Metrics after
    request t, on the **test** split (argmax over all 10 logits):

    * ``RA`` — accuracy on the classes not forgotten so far (the currently retained classes);
    * ``RA_never`` — accuracy on the 10−T classes that no request of the stream forgets (a fixed set,
      comparable across t);
    * ``FA[s]`` for every s ≤ t — accuracy on the class forgotten by request s (should stay ≈ 0);
      ``relapse`` = max_{s<t} FA[s], how much of an *earlier* deletion came back.

``random`` (T=10, optional: ``--streams class random``): request t forgets a random 1% of the training
    split (600 images at full scale), disjoint from the other requests' subsets; the retain set is the
    training split minus everything forgotten so far. Metrics: ``TA`` = test accuracy and ``FA[s]`` =
    accuracy on request s's forget subset (a model that never saw it scores ≈ TA there; the original
    scores its training accuracy).

Scales: default (full) = Fashion-MNIST 60k/10k, ``SmallCNN()``, class stream, seeds 0-2 (about 5-8
minutes on 1 thread of a busy 2-core machine); ``--quick`` = scikit-learn digits (8×8) with the quick-scale
B1 CNN, both streams, seed 0 (~15 s). Output: markdown tables (printed and
``benchmarks/results/b1_continual[_quick].md``), the JSON with config, versions and every number
(``.json``), the log (``.log``) and a plot of RA/relapse vs request (``.png``, if matplotlib is installed).

Run from the repository root::

    python benchmarks/b1_continual.py --quick
    python benchmarks/b1_continual.py                                   # full scale
    python benchmarks/b1_continual.py --streams random --seeds 1 --out benchmarks/results/b1_continual_random
    python benchmarks/b1_continual.py --tune                            # re-derive the learning rates
"""

from __future__ import annotations

import argparse
import copy
import functools
import time
from pathlib import Path
from typing import Any

from lightning_unlearn import benchmarking
from lightning_unlearn.benchmarking import b1

BENCH_DIR = Path(__file__).resolve().parent

STRATEGIES = ("orthogonal", "naive", "full")

#: Everything that defines a run, per scale. ``unlearner`` = ContinualUnlearner keyword arguments shared
#: by all strategies (``target_modules=None`` = every Conv2d/Linear for the LoRA strategies, every weight
#: for ``full``); ``lr`` = the learning rate of the LoRA strategies (``orthogonal`` and ``naive`` share it)
#: and of ``full``, chosen with ``--tune`` (see :func:`tune`) and frozen here; ``steps`` = optimizer steps
#: per request of each stream.
SCALES: dict[str, dict[str, Any]] = {
    "full": {
        "b1_scale": "full",
        "seeds": 3,
        "default_streams": ["class"],
        "streams": {"class": {"requests": 5, "steps": 30}, "random": {"requests": 10, "fraction": 0.01, "steps": 10}},
        "unlearner": {
            "method": "rl",
            "method_kwargs": {},
            "batch_size": 64,
            "retain_batch_size": 64,
            "rank": 8,
            "energy": 0.97,
            "target_modules": None,
        },
        # --tune on request 1 of the class stream (benchmarks/results/b1_continual_tuning.json)
        "lr": {"lora": 3e-3, "full": 1e-3},
        "tune_grid": [3e-4, 1e-3, 3e-3],
        "eval_batch_size": 1000,
    },
    "quick": {
        "b1_scale": "quick",
        "seeds": 1,
        "default_streams": ["class", "random"],
        "streams": {"class": {"requests": 5, "steps": 20}, "random": {"requests": 10, "fraction": 0.01, "steps": 3}},
        "unlearner": {
            "method": "rl",
            "method_kwargs": {},
            "batch_size": 32,
            "retain_batch_size": 32,
            "rank": 8,
            "energy": 0.97,
            "target_modules": None,
        },
        # --tune --quick (benchmarks/results/b1_continual_quick_tuning.json)
        "lr": {"lora": 3e-3, "full": 3e-3},
        "tune_grid": [3e-4, 1e-3, 3e-3],
        "eval_batch_size": 1000,
    },
}

#: Tuning criterion on request 1: among the learning rates whose forget accuracy is at most this (%),
#: the one with the highest retained accuracy RA; if none qualifies, the lowest forget accuracy.
TUNE_MAX_FA = 5.0


def lr_group(strategy: str) -> str:
    return "full" if strategy == "full" else "lora"


# ----------------------------------------------------------------------------------------------------------
# Data, model, evaluation
# ----------------------------------------------------------------------------------------------------------


def subset(dataset, mask_or_index):
    from lightning_unlearn.datamodules import LabeledTensorDataset

    x, y = dataset.tensors
    return LabeledTensorDataset(x[mask_or_index], y[mask_or_index])


def load_original(scale: str, seed: int, cache_dir: Path, log):
    """The cached B1 original (trained now if missing) and its cache entry."""
    entry = b1.get_trained(b1.ORIGINAL, SCALES[scale]["b1_scale"], None, seed, cache_dir, log)
    return b1.load_model(SCALES[scale]["b1_scale"], entry["path"]), entry


@functools.cache
def load_data(scale: str):
    return b1.load_data(b1.SCALES[SCALES[scale]["b1_scale"]]["dataset"])


def predict(model, dataset, batch_size: int):
    import torch

    x = dataset.tensors[0]
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size]).argmax(-1) for i in range(0, len(x), batch_size)])


def accuracy(pred, target, mask=None) -> float:
    if mask is not None:
        pred, target = pred[mask], target[mask]
    return 100.0 * float((pred == target).float().mean()) if len(target) else float("nan")


# ----------------------------------------------------------------------------------------------------------
# Streams
# ----------------------------------------------------------------------------------------------------------


def class_stream(scale: str, seed: int) -> dict[str, Any]:
    import torch

    train, test = load_data(scale)
    n_req = SCALES[scale]["streams"]["class"]["requests"]
    order = torch.randperm(10, generator=torch.Generator().manual_seed(seed)).tolist()
    classes = order[:n_req]
    requests = []
    for t, c in enumerate(classes):
        forgotten = torch.tensor(classes[: t + 1])
        requests.append(
            {
                "forget_class": c,
                "forget": subset(train, train.targets == c),
                "retain_mask": ~torch.isin(train.targets, forgotten),
            }
        )
    return {"name": "class", "train": train, "classes": classes, "never": sorted(set(range(10)) - set(classes)), "requests": requests, "test": test}


def random_stream(scale: str, seed: int) -> dict[str, Any]:
    import torch

    train, test = load_data(scale)
    spec = SCALES[scale]["streams"]["random"]
    n = len(train.targets)
    size = max(1, round(spec["fraction"] * n))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(10_007 + seed))
    requests = []
    removed = torch.zeros(n, dtype=torch.bool)
    for t in range(spec["requests"]):
        idx = perm[t * size : (t + 1) * size]
        removed = removed.clone()
        removed[idx] = True
        requests.append({"forget": subset(train, idx), "retain_mask": ~removed})
    return {"name": "random", "size": size, "requests": requests, "test": test, "train": train}


def evaluate_class(model, stream, t: int, batch_size: int) -> dict[str, Any]:
    import torch

    test = stream["test"]
    pred = predict(model, test, batch_size)
    y = test.targets
    forgotten = stream["classes"][: t + 1] if t >= 0 else []
    retained = ~torch.isin(y, torch.tensor(forgotten, dtype=torch.long)) if forgotten else torch.ones_like(y, dtype=torch.bool)
    return {
        "RA": accuracy(pred, y, retained),
        "RA_never": accuracy(pred, y, torch.isin(y, torch.tensor(stream["never"]))),
        "TA": accuracy(pred, y),
        "FA": [accuracy(pred, y, y == c) for c in forgotten],
    }


def evaluate_random(model, stream, t: int, batch_size: int) -> dict[str, Any]:
    test = stream["test"]
    pred = predict(model, test, batch_size)
    out = {"TA": accuracy(pred, test.targets), "FA": []}
    for s in range(t + 1):
        forget = stream["requests"][s]["forget"]
        out["FA"].append(accuracy(predict(model, forget, batch_size), forget.targets))
    return out


# ----------------------------------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------------------------------


def run_strategy(strategy: str, original, stream, unlearner_kwargs: dict[str, Any], seed: int, eval_bs: int, progress: bool, log) -> list[dict[str, Any]]:
    from lightning_unlearn.continual import ContinualUnlearner

    evaluate = evaluate_class if stream["name"] == "class" else evaluate_random
    unlearner = ContinualUnlearner(original, strategy, seed=seed, progress=progress, **unlearner_kwargs)
    rows = []
    for t, request in enumerate(stream["requests"]):
        # the retain set (~all of the training split) is materialised only while its request runs
        record = unlearner.unlearn(request["forget"], subset(stream["train"], request["retain_mask"]))
        metrics = evaluate(unlearner.model, stream, t, eval_bs)
        row = {"request": t + 1, "seconds": record["seconds"], **metrics, "record": record}
        rows.append(row)
        fa = ", ".join(f"{v:.1f}" for v in metrics["FA"])
        head = f"RA {metrics['RA']:6.2f}  RA_never {metrics['RA_never']:6.2f}" if "RA" in metrics else f"TA {metrics['TA']:6.2f}"
        ranks = record.get("protected_rank_next")
        log(f"[b1c] {stream['name']:6s} {strategy:10s} t={t + 1:2d}  {head}  FA [{fa}]  {record['seconds']:.1f}s" + (f"  k={ranks}" if ranks else ""))
    return rows


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def fmt_ms(values: list[float | None]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean, std = benchmarking.mean_std(values)
    return benchmarking.fmt_pm(mean, std, digits=1, show_std=len(values) > 1)


def summarise(name: str, per_seed: dict[int, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per strategy and request t: every metric's list over seeds."""
    out: dict[str, list[dict[str, Any]]] = {}
    first = next(iter(per_seed.values()))
    for strategy in first["runs"]:
        rows = []
        for i in range(len(first["runs"][strategy])):
            seed_rows = [result["runs"][strategy][i] for result in per_seed.values()]
            item: dict[str, Any] = {"request": i + 1, "seconds": [r["seconds"] for r in seed_rows]}
            if name == "class":
                item["RA"] = [r["RA"] for r in seed_rows]
                item["RA_never"] = [r["RA_never"] for r in seed_rows]
                item["FA_now"] = [r["FA"][-1] for r in seed_rows]
                item["relapse"] = [max(r["FA"][:-1]) if len(r["FA"]) > 1 else None for r in seed_rows]
            else:
                item["TA"] = [r["TA"] for r in seed_rows]
                item["FA_mean"] = [sum(r["FA"]) / len(r["FA"]) for r in seed_rows]
            rows.append(item)
        out[strategy] = rows
    return out


def summary_table(name: str, per_seed: dict[int, dict[str, Any]], summary: dict[str, list[dict[str, Any]]]) -> str:
    originals = [r["original"] for r in per_seed.values()]
    if name == "class":
        header = ["strategy", "t", "RA (not yet forgotten)", "RA_never", "FA of request t", "relapse: max FA of requests s < t", "seconds"]
        rows = [["original", 0, fmt_ms([o["RA"] for o in originals]), fmt_ms([o["RA_never"] for o in originals]), "–", "–", "–"]]
        for strategy, items in summary.items():
            for it in items:
                rows.append([strategy, it["request"], fmt_ms(it["RA"]), fmt_ms(it["RA_never"]), fmt_ms(it["FA_now"]), fmt_ms(it["relapse"]), fmt_ms(it["seconds"])])
    else:
        header = ["strategy", "t", "TA", "mean FA of requests s ≤ t", "seconds"]
        rows = [["original", 0, fmt_ms([o["TA"] for o in originals]), fmt_ms([o["FA_all_mean"] for o in originals]) + " (all subsets)", "–"]]
        for strategy, items in summary.items():
            for it in items:
                rows.append([strategy, it["request"], fmt_ms(it["TA"]), fmt_ms(it["FA_mean"]), fmt_ms(it["seconds"])])
    return benchmarking.markdown_table(header, rows)


def detail_table(name: str, result: dict[str, Any]) -> str:
    o = result["original"]
    if name == "class":
        header = ["strategy", "t", "forgot class", "RA", "RA_never", "FA of every request s ≤ t", "seconds"]
        rows = [["original", 0, "–", fmt(o["RA"]), fmt(o["RA_never"]), " / ".join(fmt(v) for v in o["FA"]) + " (classes of the stream)", "–"]]
        meta = result["stream"]
        for strategy, srows in result["runs"].items():
            for row in srows:
                t = row["request"]
                rows.append([strategy, t, f"{meta['classes'][t - 1]} ({meta['class_names'][t - 1]})", fmt(row["RA"]), fmt(row["RA_never"]),
                             " / ".join(fmt(v) for v in row["FA"]), f"{row['seconds']:.1f}"])
    else:
        header = ["strategy", "t", "TA", "FA of every request s ≤ t", "seconds"]
        rows = [["original", 0, fmt(o["TA"]), " / ".join(fmt(v) for v in o["FA"]), "–"]]
        for strategy, srows in result["runs"].items():
            for row in srows:
                rows.append([strategy, row["request"], fmt(row["TA"]), " / ".join(fmt(v) for v in row["FA"]), f"{row['seconds']:.1f}"])
    return benchmarking.markdown_table(header, rows)


def plot(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import numpy as np

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.2), squeeze=False)
    for ax, (name, result) in zip(axes[0], results.items()):
        key = "RA" if name == "class" else "TA"
        originals = [r["original"][key] for r in result["seeds"].values()]
        for i, (strategy, items) in enumerate(result["summary"].items()):
            color = f"C{i}"
            t = np.arange(len(items) + 1)
            values = np.array([originals] + [it[key] for it in items], dtype=float)
            mean, std = values.mean(1), values.std(1, ddof=1) if values.shape[1] > 1 else np.zeros(len(values))
            ax.plot(t, mean, marker="o", color=color, label=f"{strategy}: {key}")
            ax.fill_between(t, mean - std, mean + std, color=color, alpha=0.15)
            if name == "class":
                relapse = np.array([[v for v in it["relapse"]] for it in items[1:]], dtype=float)
                ax.plot(t[2:], relapse.mean(1), linestyle="--", marker="x", color=color, alpha=0.7, label=f"{strategy}: relapse (max earlier FA)")
        ax.set_xlabel("deletion request t")
        ax.set_ylabel("accuracy (%)")
        n = len(result["seeds"])
        ax.set_title(f"{name} stream, mean ± std over {n} seed(s)" if n > 1 else f"{name} stream")
        ax.set_ylim(-2, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="scikit-learn digits with the quick B1 CNN (~15 s). Default: Fashion-MNIST with SmallCNN().")
    parser.add_argument("--streams", nargs="+", choices=["class", "random"], default=None, help="Request streams (default: class at full scale, both at quick scale).")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--seeds", type=int, default=None, help="Number of seeds 0..N-1 (default 3 at full scale, 1 at quick scale); each seed has its own original model and request order.")
    parser.add_argument("--tune", action="store_true", help="Only run the learning-rate grid on request 1 of the class stream, seed 0 (writes <out>_tuning.json); freeze the result in SCALES by hand.")
    parser.add_argument("--method", default=None, help="Override the unlearning method (a name in lightning_unlearn.METHODS); the frozen learning rates were tuned for 'rl'.")
    parser.add_argument("--energy", type=float, default=None, help="Override the energy threshold of the orthogonal strategy.")
    parser.add_argument("--out", default=None, help="Output stem (default benchmarks/results/b1_continual[_quick]); writes .json, .md, .log, .png.")
    parser.add_argument("--cache-dir", default=str(BENCH_DIR / ".cache"), help="Cache of the B1 original models.")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0 = torch's default).")
    parser.add_argument("--progress", action="store_true", help="tqdm bar per request.")
    return parser.parse_args(argv)


def tune(cfg: dict[str, Any], scale: str, original, seed: int, log) -> dict[str, Any]:
    """Learning-rate grid on request 1 of the class stream, per LoRA/full family (the two LoRA strategies
    are identical on request 1: nothing is protected yet). Criterion: :data:`TUNE_MAX_FA`."""
    from lightning_unlearn.continual import ContinualUnlearner

    stream = class_stream(scale, seed)
    request = stream["requests"][0]
    retain = subset(stream["train"], request["retain_mask"])
    steps = cfg["streams"]["class"]["steps"]
    trials: dict[str, list[dict[str, Any]]] = {}
    chosen: dict[str, float] = {}
    for group, strategy in (("lora", "naive"), ("full", "full")):
        trials[group] = []
        for lr in cfg["tune_grid"]:
            unlearner = ContinualUnlearner(original, strategy, seed=seed, lr=lr, steps_per_request=steps, **cfg["unlearner"])
            record = unlearner.unlearn(request["forget"], retain)
            metrics = evaluate_class(unlearner.model, stream, 0, cfg["eval_batch_size"])
            trials[group].append({"lr": lr, "RA": metrics["RA"], "RA_never": metrics["RA_never"], "FA": metrics["FA"][0], "seconds": record["seconds"]})
            log(f"[b1c] tune {group:4s} lr={lr:g}  RA {metrics['RA']:.2f}  FA {metrics['FA'][0]:.2f}")
        ok = [t for t in trials[group] if t["FA"] <= TUNE_MAX_FA]
        best = max(ok, key=lambda t: (t["RA"], -t["lr"])) if ok else min(trials[group], key=lambda t: (t["FA"], t["lr"]))
        chosen[group] = best["lr"]
    log(f"[b1c] tuned learning rates: {chosen}")
    return {"criterion": f"FA <= {TUNE_MAX_FA} on request 1 of the class stream, then max RA", "steps": steps, "trials": trials, "chosen": chosen}


def run_stream(name: str, scale: str, cfg: dict[str, Any], seed: int, original, strategies, progress: bool, log) -> dict[str, Any]:
    eval_bs = cfg["eval_batch_size"]
    kwargs = cfg["unlearner"]
    steps = cfg["streams"][name]["steps"]
    if name == "class":
        from lightning_unlearn.datamodules import FASHION_MNIST_CLASSES

        class_names = FASHION_MNIST_CLASSES if scale == "full" else tuple(str(i) for i in range(10))
        stream = class_stream(scale, seed)
        o = evaluate_class(original, stream, len(stream["requests"]) - 1, eval_bs)
        original_metrics = {"RA": evaluate_class(original, stream, -1, eval_bs)["RA"], "RA_never": o["RA_never"], "FA": o["FA"]}
        meta = {"classes": stream["classes"], "class_names": [class_names[c] for c in stream["classes"]], "never_forgotten": stream["never"]}
        log(f"[b1c] seed {seed} class stream: forget classes {meta['classes']} {meta['class_names']}; never forgotten {stream['never']}")
    else:
        stream = random_stream(scale, seed)
        o = evaluate_random(original, stream, len(stream["requests"]) - 1, eval_bs)
        original_metrics = {"TA": o["TA"], "FA": o["FA"], "FA_all_mean": sum(o["FA"]) / len(o["FA"])}
        meta = {"subset_size": stream["size"], "requests": len(stream["requests"])}
        log(f"[b1c] seed {seed} random stream: {len(stream['requests'])} disjoint subsets of {stream['size']} training images")
    runs, settings = {}, {}
    for strategy in strategies:
        settings[strategy] = {**kwargs, "lr": cfg["lr"][lr_group(strategy)], "steps_per_request": steps}
        runs[strategy] = run_strategy(strategy, original, stream, settings[strategy], seed, eval_bs, progress, log)
    return {"stream": meta, "settings": settings, "steps": steps, "original": original_metrics, "runs": runs}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    scale = "quick" if args.quick else "full"
    cfg = copy.deepcopy(SCALES[scale])
    kwargs = cfg["unlearner"]
    for key, value in (("method", args.method), ("energy", args.energy)):
        if value is not None:
            kwargs[key] = value
    streams = args.streams or cfg["default_streams"]
    seeds = list(range(args.seeds if args.seeds is not None else cfg["seeds"]))
    stem = Path(args.out) if args.out else BENCH_DIR / "results" / f"b1_continual{'_quick' if args.quick else ''}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    log_lines: list[str] = []

    def log(*parts: Any) -> None:
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        log_lines.append(line)

    wall = time.perf_counter()
    log(f"[b1c] {benchmarking.command_line()}  scale={scale} threads={torch.get_num_threads()} streams={streams} seeds={seeds}")
    header = {
        "benchmark": "b1_continual",
        "scale": scale,
        "command": benchmarking.command_line(),
        "threads": torch.get_num_threads(),
        "config": cfg,
        "versions": benchmarking.versions(),
        "git_commit": benchmarking.git_commit(BENCH_DIR.parent),
        "git_dirty": benchmarking.git_dirty(BENCH_DIR.parent),
    }
    if args.tune:
        original, entry = load_original(scale, 0, Path(args.cache_dir), log)
        tuning = tune(cfg, scale, original, 0, log)
        header["originals"] = {0: {k: entry.get(k) for k in ("path", "key", "cached")}}
        path = benchmarking.write_json(stem.with_name(stem.name + "_tuning.json"), {**header, "wall_seconds": time.perf_counter() - wall, "tuning": tuning})
        log(f"[b1c] wrote {path}")
        return tuning

    results: dict[str, Any] = {name: {"seeds": {}} for name in streams}
    originals = {}
    for seed in seeds:
        original, entry = load_original(scale, seed, Path(args.cache_dir), log)
        originals[seed] = {k: entry.get(k) for k in ("path", "key", "cached")}
        for name in streams:
            results[name]["seeds"][seed] = run_stream(name, scale, cfg, seed, original, args.strategies, args.progress, log)
    for name in streams:
        results[name]["summary"] = summarise(name, results[name]["seeds"])

    lrs = ", ".join(f"{g} {v:g}" for g, v in cfg["lr"].items())
    n = len(seeds)
    sections = [
        f"## B1-continual ({scale}) — {n} seed(s); method {kwargs['method']}; lr {lrs} (tuned once on request 1); "
        f"LoRA rank {kwargs['rank']} on every Conv2d/Linear; energy {kwargs['energy']}; batch {kwargs['batch_size']} forget + "
        f"{kwargs['retain_batch_size']} retain"
    ]
    if "class" in results:
        r = results["class"]
        first = next(iter(r["seeds"].values()))
        sections.append(
            f"### Class stream: T={len(first['stream']['classes'])} requests (one whole class each), {first['steps']} steps each — "
            f"mean ± std over {n} seed(s)\n\n"
            "RA = test accuracy on the classes not yet forgotten; RA_never = test accuracy on the classes no request forgets; "
            "FA = test accuracy on a forgotten class (lower = forgotten); relapse = the highest FA among the *earlier* requests "
            "(how much of an earlier deletion came back); seconds = training time of the request.\n\n"
            + summary_table("class", r["seeds"], r["summary"])
        )
        for seed, result in r["seeds"].items():
            sections.append(f"#### Class stream, seed {seed} (FA listed request 1 first)\n\n" + detail_table("class", result))
    if "random" in results:
        r = results["random"]
        first = next(iter(r["seeds"].values()))
        sections.append(
            f"### Random stream: T={first['stream']['requests']} requests of {first['stream']['subset_size']} disjoint training images, "
            f"{first['steps']} steps each — mean ± std over {n} seed(s)\n\n"
            "TA = test accuracy; FA = accuracy on a request's forget subset (a model that never saw it would score ≈ TA).\n\n"
            + summary_table("random", r["seeds"], r["summary"])
        )
        for seed, result in r["seeds"].items():
            sections.append(f"#### Random stream, seed {seed}\n\n" + detail_table("random", result))
    seconds = time.perf_counter() - wall
    sections.append(f"Total wall time {seconds:.0f} s ({torch.get_num_threads()} thread(s)); command: `{benchmarking.command_line()}`")
    markdown = "\n\n".join(sections) + "\n"
    print("\n" + markdown)
    header["originals"] = originals
    benchmarking.write_json(stem.with_suffix(".json"), {**header, "wall_seconds": seconds, "results": results})
    stem.with_suffix(".md").write_text(markdown)
    png = plot(results, stem.with_suffix(".png"))
    log(f"[b1c] wrote {stem.with_suffix('.json')}, .md{', .png' if png else ''} in {seconds:.0f}s")
    stem.with_suffix(".log").write_text("\n".join(log_lines) + "\n")
    return {**header, "results": results}


if __name__ == "__main__":
    main()
