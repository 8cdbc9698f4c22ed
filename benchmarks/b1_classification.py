#!/usr/bin/env python
"""Benchmark B1 — image-classification unlearning (SalUn / "Model Sparsity Can Simplify Unlearning" protocol).

For every seed and scenario:

1. the *original* model (``SupervisedModule``, trained on the whole training split) and the *oracle*
   (the same recipe on the retain split only) are trained once and cached on disk, keyed by a hash of
   their recipe; their training seconds are cached with them (the oracle's is the denominator of every
   time ratio);
2. the original, the oracle and every unlearning method (``UnlearningModule`` + ``Trainer.fit`` on
   paired forget/retain batches, starting from the cached original) are evaluated with
   ``lightning_unlearn.callbacks.evaluate`` on the forget / retain / test splits:
   UA (100 − forget accuracy), RA, TA, MIA (MIA-efficacy), mia_auc and Avg Gap to the oracle.

Scales: ``--quick`` = scikit-learn digits (8×8) with a tiny CNN (about a minute on 2 cores);
default (full) = Fashion-MNIST 60k/10k with ``SmallCNN()`` (28×28).
Scenarios: ``class`` forgets class 0 (Fashion-MNIST "T-shirt/top", digits "0") entirely;
``random`` forgets a seeded random 10% of the training split (the seed is the run's seed).

The per-method hyper-parameters that produce the published numbers are in :data:`HPARAMS` below.

Run from the repository root::

    python benchmarks/b1_classification.py --quick
    python benchmarks/b1_classification.py              # full scale, 3 seeds, both scenarios
"""

from __future__ import annotations

import argparse
import copy
import functools
import inspect
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

# ----------------------------------------------------------------------------------------------------------
# Scales: data, model and the training recipe of the original and the oracle
# ----------------------------------------------------------------------------------------------------------

#: Everything that defines a scale. ``train`` is the recipe shared by the original and the oracle
#: (Adam, constant lr, plain cross-entropy); ``max_eval_samples`` caps each evaluation split at a fixed
#: seeded subset (only the 54k-sample retain split is affected at full scale; forget and test are whole).
SCALES: dict[str, dict[str, Any]] = {
    "quick": {
        "dataset": "digits",
        "model": {"image_size": 8, "width": 16, "hidden": 64},
        "train": {"epochs": 30, "lr": 1e-3, "batch_size": 32},
        "unlearn_batch_size": 32,
        "max_eval_samples": None,
        "seeds": 1,
    },
    "full": {
        "dataset": "fashion_mnist",
        "model": {},  # SmallCNN() defaults: 28×28, width 32, hidden 128
        "train": {"epochs": 8, "lr": 1e-3, "batch_size": 128},
        "unlearn_batch_size": 128,
        "max_eval_samples": 10_000,
        "seeds": 3,
    },
}
# The ViT rows (``--arch vit``): the same data and recipe with ViTClassifier (transformers ViT from a config).
SCALES["quick_vit"] = {**SCALES["quick"], "arch": "vit", "model": {"image_size": 8, "patch_size": 2, "hidden_size": 32, "num_layers": 2, "num_heads": 4}}
# ViTClassifier() defaults: 7×7 patches, 4 layers, 4 heads, width 64 (139k parameters)
SCALES["full_vit"] = {**SCALES["full"], "arch": "vit", "model": {}}
ARCHS = {"cnn": "SmallCNN", "vit": "ViTClassifier"}

#: The deletion requests. Class 0 is "T-shirt/top" on Fashion-MNIST (the class most confused with
#: "Shirt", so the oracle's retain accuracy differs visibly from the original's) and the digit 0 on digits.
SCENARIOS: dict[str, dict[str, Any]] = {
    "class": {"forget_class": 0},
    "random": {"forget_fraction": 0.1},
}

#: Bump to invalidate every cached original/oracle (e.g. after a change of the training code).
RECIPE_VERSION = 1

# ----------------------------------------------------------------------------------------------------------
# THE per-method configurations (these reproduce the numbers in benchmarks/README.md)
# ----------------------------------------------------------------------------------------------------------
#
# HPARAMS[scale][scenario][method] = {
#     "lr":         Adam learning rate of the unlearning run,
#     "epochs":     Trainer max_epochs; with mode="min_size" one epoch = one pass over the forget set, each
#                   forget batch paired with a fresh retain batch of the same size,
#     "max_steps":  optional cap on optimizer steps (-1 = none),
#     "mode":       how forget and retain batches are paired ("min_size" | "max_size_cycle"),
#     "schedule":   "constant" lr, or "linear" decay from lr to 0 over the run's optimizer steps,
#     "batch_size": optional override of the scale's unlearning batch size (forget and retain),
#     "retain_batch_size": optional larger retain batch paired with each forget batch,
#     "method":     keyword arguments of the method's constructor (METHODS.build(name, **method)); a "mask"
#                   entry {"saliency": {"threshold": t}} or {"regex": "pattern"} becomes that ParameterMask,
# }
# Methods missing here run with their constructor defaults, lr 1e-3 and one pass (reported as untuned).
# Tuning protocol: candidates were scored on the digits quick scale and on ONE Fashion-MNIST seed (seed 0)
# with benchmarks/b1_tune.py (logs in benchmarks/results/b1_tuning_*.json); the chosen values are frozen
# here and all seeds are then reported with them.
DEFAULT_HP: dict[str, Any] = {"lr": 1e-3, "epochs": 1, "max_steps": -1, "mode": "min_size", "schedule": "constant", "method": {}}

HPARAMS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    # digits (quick): 1,347 train images, batch 32; the forget sets are ~135 images (4-5 batches), so class-wise
    # forgetting gets 2-5 passes. The trailing comment is the tuning-seed Avg Gap (do-nothing: random 1.08,
    # class 32.41).
    "quick": {
        "random": {
            "ft": {"lr": 3e-4},  # 0.69
            "ga": {"lr": 1e-4},  # 0.79
            "graddiff": {"lr": 1e-4},  # 0.60
            "l1_sparse": {"lr": 1e-4},  # 0.78
            "npo": {"lr": 1e-4},  # 0.60
            "rl": {"lr": 1e-4},  # 0.98
            "salun": {"lr": 1e-5},  # 1.08 (no lr tried beat doing nothing)
            "scrub": {"lr": 3e-4, "method": {"max_epochs": 1}},  # 0.64
            "stake_the_points": {"lr": 3e-5},  # 1.13
            "stake_the_points+retain": {"lr": 3e-5, "method": {"retain_loss": "nll"}},
            "adaprob": {"lr": 1e-4},  # 0.62
            "roka": {"lr": 3e-4},  # 1.06
            "razor": {"lr": 1e-3},  # 0.84
        },
        "class": {
            "ft": {"lr": 3e-3, "epochs": 5},  # 36.84
            "ga": {"lr": 1e-3},  # 3.23
            "graddiff": {"lr": 1e-3, "epochs": 3},  # 12.38
            "l1_sparse": {"lr": 3e-3, "epochs": 5},  # 35.01
            "npo": {"lr": 3e-3, "epochs": 2},  # 4.54
            "rl": {"lr": 3e-4, "epochs": 3},  # 3.48
            "salun": {"lr": 3e-4, "epochs": 3},  # 2.14
            "scrub": {"lr": 1e-3, "epochs": 3, "method": {"max_epochs": 3}},  # 30.16
            "stake_the_points": {"lr": 1e-3, "epochs": 5},  # 4.08
            "stake_the_points+retain": {"lr": 1e-3, "epochs": 5, "method": {"retain_loss": "nll"}},
            "adaprob": {"lr": 1e-3},  # 4.86
            "roka": {"lr": 1e-3, "epochs": 3},  # 8.52
            "razor": {"lr": 1e-3, "epochs": 3},  # 0.88
        },
    },
    # Fashion-MNIST (full): batch 128, forget sets of 6,000 images = 47 paired steps per pass. One pass with a
    # retain batch of 128 costs 2.8% of the oracle's sample passes (8 epochs x 54,000). Trailing comment:
    # Avg Gap on the tuning seed 0 (do-nothing: random 1.47, class 44.37).
    "full": {
        "random": {
            "ft": {"lr": 3e-3},  # 1.43
            "ga": {"lr": 3e-6},  # 1.48 (every lr tried is at or above doing nothing)
            "graddiff": {"lr": 1e-4},  # 1.38
            "l1_sparse": {"lr": 3e-3, "method": {"l1_weight": 1e-4}},  # 1.23
            # two passes over the forget set, each forget batch paired with a retain batch of 64 (4.2% compute)
            "npo": {"lr": 1e-3, "epochs": 2, "retain_batch_size": 64, "method": {"beta": 5.0}},  # 0.62
            "rl": {"lr": 3e-5, "epochs": 2, "retain_batch_size": 64},  # 1.34
            "salun": {"lr": 3e-5, "epochs": 2, "retain_batch_size": 64},  # 1.03
            "scrub": {"lr": 3e-6, "method": {"max_epochs": 1}},  # 1.85 (every lr tried is above doing nothing)
            "razor": {"lr": 1e-3, "method": {"max_batches": 20}},  # 1.44
            "stake_the_points": {"lr": 1e-5},  # 1.39 (retain-set-free)
            "stake_the_points+retain": {"lr": 3e-5, "method": {"retain_loss": "nll"}},
            "adaprob": {"lr": 1e-5},  # 1.50 (1e-4: 6.61; pseudo="uniform" 1e-4: 7.34)
            "roka": {"lr": 1e-5},  # 1.53 (every lr tried is above doing nothing)
        },
        "class": {
            "ft": {"lr": 3e-3, "retain_batch_size": 256},  # 0.11
            "ga": {"lr": 5e-5},  # 4.97
            "graddiff": {"lr": 5e-5},  # 3.90
            "l1_sparse": {"lr": 3e-3, "retain_batch_size": 256},  # 1.45
            "npo": {"lr": 1e-3},  # 0.86
            "rl": {"lr": 1e-3, "retain_batch_size": 256},  # 1.44
            "salun": {"lr": 1e-3},  # 1.46
            "scrub": {"lr": 3e-4, "method": {"max_epochs": 1, "forget_weight": 0.1}},  # 9.67
            # the issue-4 methods; RAZOR scores its units on 20 forget/retain batches
            "stake_the_points": {"lr": 1e-4},  # 3.10 (retain-set-free)
            "stake_the_points+retain": {"lr": 1e-4, "method": {"retain_loss": "nll"}},  # 1.15
            "adaprob": {"lr": 1e-3},  # 1.49
            "roka": {"lr": 3e-4},  # 4.30
            "razor": {"lr": 1e-3, "method": {"max_batches": 20}},  # 0.04
        },
    },
}
# The ViT rows reuse the CNN's settings (tuned on SmallCNN, not on the ViT), except where an entry below says
# otherwise (tuned on the ViT's seed 0 with b1_tune.py --arch vit).
HPARAMS["quick_vit"] = copy.deepcopy(HPARAMS["quick"])
HPARAMS["full_vit"] = copy.deepcopy(HPARAMS["full"])
# RAZOR on the ViT (do-nothing on seed 0: class 39.30, random 0.92); its units include single attention heads
HPARAMS["full_vit"]["class"]["razor"] = {"lr": 3e-3, "method": {"max_batches": 20}}  # 3.68 (lr 1e-3: 28.99)
HPARAMS["full_vit"]["random"]["razor"] = {"lr": 1e-3, "method": {"max_batches": 20}}  # 0.46

METRIC_KEYS = ("UA", "RA", "TA", "MIA", "mia_auc", "forget_acc", "avg_gap", "knn_overlap", "class_sim_corr")
ORIGINAL, ORACLE = "original", "retrain"


def resolve_hparams(scale: str, scenario: str, method: str) -> tuple[dict[str, Any], bool]:
    """The merged configuration of ``method`` (defaults + HPARAMS entry) and whether it was tuned."""
    entry = HPARAMS.get(scale, {}).get(scenario, {}).get(method)
    defaults = {**DEFAULT_HP, "batch_size": SCALES[scale]["unlearn_batch_size"]}
    return merge_hparams(defaults, entry), entry is not None


merge_hparams = _common.merge_hparams


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------


@functools.cache
def load_data(dataset: str) -> tuple[Any, Any]:
    """``(train, test)`` datasets, loaded once per process (reading Fashion-MNIST's .gz files takes seconds)."""
    from lightning_unlearn.datamodules import load_digits_dataset, load_fashion_mnist

    if dataset == "fashion_mnist":
        return load_fashion_mnist("train"), load_fashion_mnist("test")
    if dataset == "digits":
        return load_digits_dataset("train"), load_digits_dataset("test")
    raise ValueError(f"unknown dataset {dataset!r}")


def make_datamodule(scale: str, scenario: str | None, seed: int, **kwargs: Any):
    """The scale's datamodule for ``scenario``: exactly ``FashionMNISTDataModule(...)`` (``DigitsDataModule``
    at quick scale), built on datasets loaded once per process instead of re-reading the files every run.

    ``scenario=None`` gives the scenario-independent datamodule of the original model (``train_on="all"``:
    the request ``forget_indices=[0]`` only exists to satisfy the constructor; forget + retain = the whole
    training split, shuffled by ``seed``).
    """
    from lightning_unlearn import ForgetRetainDataModule

    train, test = load_data(SCALES[scale]["dataset"])
    request = SCENARIOS[scenario] if scenario is not None else {"forget_indices": [0]}
    return ForgetRetainDataModule(train, test, num_classes=10, seed=seed, **request, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# Original and oracle: train once, cache on disk
# ----------------------------------------------------------------------------------------------------------


def model_class(scale: str) -> str:
    return ARCHS[SCALES[scale].get("arch", "cnn")]


def build_model(scale: str):
    from lightning_unlearn import models

    return getattr(models, model_class(scale))(**SCALES[scale]["model"])


def model_config(kind: str, scale: str, scenario: str | None, seed: int) -> dict[str, Any]:
    cfg = SCALES[scale]
    out = {
        "kind": kind,
        "recipe_version": RECIPE_VERSION,
        "dataset": cfg["dataset"],
        "model": {"class": model_class(scale), **cfg["model"]},
        "optimizer": "Adam",
        **cfg["train"],
        "seed": seed,
        "train_on": "all" if kind == ORIGINAL else "retain",
    }
    if kind == ORACLE:
        out["scenario"] = scenario
        out["request"] = SCENARIOS[scenario]
    return out


config_hash = _common.config_hash


def get_trained(kind: str, scale: str, scenario: str | None, seed: int, cache_dir: Path, log=print) -> dict[str, Any]:
    """Train (or load from the cache) the original (``scenario=None``) or the oracle. Returns its cache entry:
    ``{"path", "seconds", "config", "key", "cached"}``."""
    import lightning.pytorch as pl
    import torch

    from lightning_unlearn import SupervisedModule

    config = model_config(kind, scale, scenario, seed)
    key = config_hash(config)
    folder = cache_dir / "b1"
    weights, meta = folder / f"{kind}-{key}.pt", folder / f"{kind}-{key}.json"
    if weights.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        try:
            build_model(scale).load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            return {**info, "path": str(weights), "key": key, "cached": True}
        except Exception as err:  # corrupt or stale file: retrain
            log(f"[b1] cache entry {weights} unusable ({err}); retraining")
    folder.mkdir(parents=True, exist_ok=True)
    train = SCALES[scale]["train"]
    pl.seed_everything(seed, verbose=False)
    dm = make_datamodule(scale, scenario, seed, batch_size=train["batch_size"], train_on="all" if kind == ORIGINAL else "retain")
    start = time.perf_counter()
    model = build_model(scale)
    module = SupervisedModule(model, optimizer=functools.partial(torch.optim.Adam, lr=train["lr"]))
    _common.quiet_trainer(max_epochs=train["epochs"]).fit(module, datamodule=dm)
    seconds = time.perf_counter() - start
    tmp = weights.with_suffix(".pt.tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, weights)
    info = {"config": config, "seconds": seconds, "threads": torch.get_num_threads(), "trained_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    _common.write_json(meta, info)
    log(f"[b1] trained {kind} scale={scale} scenario={scenario or '-'} seed={seed} in {seconds:.1f}s -> {weights.name}")
    return {**info, "path": str(weights), "key": key, "cached": False}


def oracle_seconds_now(scale: str, scenario: str, seed: int, steps: int = 30, warmup: int = 5) -> float:
    """Same-run estimate of the oracle's training time: time ``steps`` optimizer steps of the oracle's recipe
    (after ``warmup``) now, and scale to the recipe's full number of steps.

    The cached oracle time was measured whenever the oracle happened to be trained; on a shared machine the
    load then and now can differ a lot, so the JSON also reports every time ratio against this estimate.
    """
    import lightning.pytorch as pl
    import torch

    from lightning_unlearn import SupervisedModule

    train = SCALES[scale]["train"]
    stamps: list[float] = []

    def factory(params):
        opt = torch.optim.Adam(params, lr=train["lr"])
        opt.register_step_post_hook(lambda *_: stamps.append(time.perf_counter()))
        return opt

    pl.seed_everything(seed, verbose=False)
    dm = make_datamodule(scale, scenario, seed, batch_size=train["batch_size"], train_on="retain")
    _common.quiet_trainer(max_steps=warmup + steps).fit(SupervisedModule(build_model(scale), optimizer=factory), datamodule=dm)
    per_step = (stamps[warmup + steps - 1] - stamps[warmup - 1]) / steps
    n_steps = train["epochs"] * math.ceil(dm.sizes()["retain"] / train["batch_size"])
    return per_step * n_steps


# ----------------------------------------------------------------------------------------------------------
# Evaluation and unlearning runs
# ----------------------------------------------------------------------------------------------------------


def load_model(scale: str, path: str):
    import torch

    model = build_model(scale)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def evaluate_model(model, loaders, oracle_metrics: dict[str, float] | None, oracle_model=None, structure_loader=None) -> dict[str, float]:
    """UA/RA/TA/MIA/Avg Gap, plus the structure agreement with the oracle on retained samples when given."""
    from lightning_unlearn.callbacks import evaluate
    from lightning_unlearn.metrics import structure_agreement

    out = {k: float(v) for k, v in evaluate(model, loaders, oracle=oracle_metrics).items()}
    if oracle_model is not None and structure_loader is not None:
        out.update(structure_agreement(model, oracle_model, structure_loader, layer=STRUCTURE_LAYER, k=STRUCTURE_K))
    return out


#: Structure metrics (kNN overlap and class-similarity correlation with the oracle) use the features at
#: ``penultimate`` (SmallCNN's hidden layer, ViTClassifier's [CLS] token) of a fixed seeded subset of retained
#: training samples.
STRUCTURE_LAYER, STRUCTURE_K, STRUCTURE_SAMPLES = "penultimate", 10, 2000


def structure_loader(loaders, seed: int):
    """A fixed, seeded subset of :data:`STRUCTURE_SAMPLES` retained samples, in a fixed order."""
    from lightning_unlearn.metrics import structure_subset

    return structure_subset(loaders["retain"].dataset, STRUCTURE_SAMPLES, seed=10_000 + seed)


def build_method(name: str, kwargs: dict[str, Any], seed: int, dataset: str | None = None):
    from lightning_unlearn import METHODS

    cls = METHODS.get(method_name(name))
    kwargs = dict(kwargs)
    mask = kwargs.get("mask")
    if isinstance(mask, dict):  # JSON-able mask spec: {"saliency": {...SaliencyMask kwargs}} or {"regex": "pattern"}
        from lightning_unlearn.methods import RegexMask, SaliencyMask

        (kind, arg), = mask.items()
        kwargs["mask"] = SaliencyMask(**arg) if kind == "saliency" else RegexMask(arg)
    if "seed" in inspect.signature(cls.__init__).parameters and "seed" not in kwargs:
        kwargs["seed"] = seed
    if "anchors" in inspect.signature(cls.__init__).parameters and "anchors" not in kwargs and dataset is not None:
        kwargs["anchors"] = dataset  # the built-in description set of the benchmark's dataset
    return cls(**kwargs)


def run_method(
    name: str, hp: dict[str, Any], scale: str, scenario: str, seed: int, original_path: str
) -> tuple[Any, float, dict[str, Any]]:
    """Unlearn the cached original with method ``name``; returns ``(model, seconds, budget)``.

    The timed region covers building the ``UnlearningModule`` (loading the original's weights), the
    Trainer and the whole ``Trainer.fit`` (reference copies, saliency masks, every step).
    """
    import lightning.pytorch as pl
    import torch

    from lightning_unlearn import UnlearningModule

    pl.seed_everything(seed, verbose=False)
    dm = make_datamodule(
        scale,
        scenario,
        seed,
        batch_size=hp["batch_size"],
        retain_batch_size=hp.get("retain_batch_size"),
        mode=hp["mode"],
        train_on="forget_retain",
    )
    method = build_method(name, hp["method"], seed, SCALES[scale]["dataset"])
    scheduler = None
    if hp.get("schedule", "constant") == "linear":
        # optimizer steps of the run: one per forget batch with mode="min_size"
        per_epoch = math.ceil(dm.sizes()["forget"] / hp["batch_size"])
        total = per_epoch * hp["epochs"] if hp.get("max_steps", -1) in (-1, None) else min(hp["max_steps"], per_epoch * hp["epochs"])
        scheduler = _linear_decay(total)
    elif hp.get("schedule", "constant") != "constant":
        raise ValueError(f"unknown schedule {hp['schedule']!r}")
    start = time.perf_counter()
    model = build_model(scale)
    module = UnlearningModule(
        model, method, original=original_path, optimizer=functools.partial(torch.optim.Adam, lr=hp["lr"]), lr_scheduler=scheduler
    )
    trainer = _common.quiet_trainer(max_epochs=hp["epochs"], max_steps=hp.get("max_steps", -1))
    trainer.fit(module, datamodule=dm)
    seconds = time.perf_counter() - start
    sizes = dm.sizes()
    budget = {
        "steps": int(trainer.global_step),
        "forget_size": sizes["forget"],
        "retain_size": sizes["retain"],
        # samples through forward+backward per step: the forget batch if the method uses it, the retain
        # batch if it has a retain term (reference-model forwards are not counted)
        "sample_passes": int(trainer.global_step)
        * ((hp["batch_size"] if method.uses_forget else 0) + ((hp.get("retain_batch_size") or hp["batch_size"]) if method.uses_retain else 0)),
    }
    return model.eval(), seconds, budget


def _linear_decay(total_steps: int):
    """LR-scheduler factory: lr × (1 − step/total), stepped every optimizer step."""
    import torch

    def factory(optimizer):
        lam = lambda step: max(0.0, 1.0 - step / max(1, total_steps))  # noqa: E731
        return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, lam), "interval": "step"}

    return factory


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["scenario"]), []).append(row)
    out = []
    for (method, scenario), items in groups.items():
        keys = sorted({k for r in items for k in r["metrics"]})
        means, stds = {}, {}
        for k in keys:
            m, s = _common.mean_std([r["metrics"][k] for r in items if k in r["metrics"]])
            means[k], stds[k] = m, s
        gap_m, gap_s = _common.mean_std([r["avg_gap_to_oracle"] for r in items])
        out.append(
            {
                "method": method,
                "scenario": scenario,
                "metrics_mean": means,
                "metrics_std": stds,
                "avg_gap_mean": gap_m,
                "avg_gap_std": gap_s,
                "seconds_mean": _common.mean_std([r["seconds"] for r in items])[0],
                "time_ratio_mean": _common.mean_std([r["time_ratio_to_oracle"] for r in items])[0],
            }
        )
    return out


def format_tables(payload: dict[str, Any]) -> str:
    """One markdown table per scenario: the brief's columns plus two cross-checks of the time ratio."""
    summary, config = payload["summary"], payload["config"]
    scenarios, methods, n_seeds = list(config["scenarios"]), config["methods"], len(config["seeds"])
    header = ["Method", "UA", "RA", "TA", "MIA", "Avg Gap", "kNN overlap", "class-sim r", "seconds", "time ratio", "time ratio (same-run est.)", "compute ratio"]
    order = [ORIGINAL, ORACLE, *methods]
    labels = {ORIGINAL: "Original (no unlearning)", ORACLE: "Retrain (oracle)"}
    blocks = []
    for scenario in scenarios:
        by_method = {s["method"]: s for s in summary if s["scenario"] == scenario}
        calib = [v for k, v in config["time_calibration"].items() if k.startswith(scenario + "/")]
        rows = []
        for m in order:
            s = by_method.get(m)
            if s is None:
                continue
            mm, sd = s["metrics_mean"], s["metrics_std"]
            if m in (ORIGINAL, ORACLE):
                est, compute = ("0" if m == ORIGINAL else "–"), ("0" if m == ORIGINAL else "1")
            else:
                vals = [c["time_ratio_vs_estimate"][m] for c in calib if m in c["time_ratio_vs_estimate"]]
                est = f"{_common.mean_std(vals)[0]:.3f}" if vals else "–"
                b = config["budgets"].get(scenario, {}).get(m)
                compute = f"{b['sample_passes_ratio_to_oracle']:.3f}" if b else "–"
            rows.append(
                [
                    labels.get(m, m),
                    *(_common.fmt_pm(mm.get(k, math.nan), sd.get(k, 0.0)) for k in ("UA", "RA", "TA", "MIA")),
                    _common.fmt_pm(s["avg_gap_mean"], s["avg_gap_std"]),
                    *(f"{mm[k]:.3f}" if k in mm else "–" for k in ("knn_overlap", "class_sim_corr")),
                    f"{s['seconds_mean']:.1f}",
                    f"{s['time_ratio_mean']:.3f}",
                    est,
                    compute,
                ]
            )
        title = {"class": "class-wise forgetting (class 0)", "random": "random 10% forgetting"}[scenario]
        blocks.append(f"### B1 ({payload['scale']}) — {title}, mean ± std over {n_seeds} seed(s)\n\n" + _common.markdown_table(header, rows))
    return "\n\n".join(blocks)


# ----------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------


#: Extra rows: a registered method run with a different configuration, named ``<method>+<variant>``
#: (its settings are the HPARAMS entry of that name). Stake the Points is retain-set-free; "+retain" adds the
#: optional retain term (cross-entropy on retain data).
VARIANTS = ("stake_the_points+retain",)


def method_name(row: str) -> str:
    """The registered method behind a row name (``"stake_the_points+retain"`` -> ``"stake_the_points"``)."""
    return row.split("+", 1)[0]


def default_methods() -> list[str]:
    from lightning_unlearn import METHODS

    names = [m for m in METHODS.names() if m != "retrain" and "classification" in METHODS.get(m).supported_tasks]
    return names + [v for v in VARIANTS if method_name(v) in names]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="b1_classification.py",
        description=(
            "Benchmark B1: image-classification unlearning against a retrain-from-scratch oracle "
            "(UA, RA, TA, MIA-efficacy, Avg Gap, time as a fraction of the oracle's training time). "
            "Original and oracle models are cached on disk, so reruns cost only the unlearning."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="digits (sklearn, 8x8) with SmallCNN(image_size=8, width=16, hidden=64): ~1 minute on 2 cores. Default: Fashion-MNIST 60k/10k with SmallCNN().")
    parser.add_argument("--arch", choices=sorted(ARCHS), default="cnn", help="Model: 'cnn' = SmallCNN, 'vit' = ViTClassifier (a transformers ViT built from a config; needs the 'vision' extra). The ViT rows use their own HPARAMS scale ('<scale>_vit') and output file.")
    parser.add_argument("--scenarios", nargs="+", choices=sorted(SCENARIOS), default=["class", "random"], help="'class' forgets class 0 (T-shirt/top / digit 0); 'random' forgets a seeded random 10%% of the training split.")
    parser.add_argument("--methods", nargs="+", default=None, help="Methods from lightning_unlearn.METHODS (default: every registered method except 'retrain', which is the oracle row).")
    parser.add_argument("--seeds", type=int, default=None, help="Number of seeds (0..N-1); default 3 at full scale, 1 at quick scale.")
    parser.add_argument("--first-seed", type=int, default=0, help="First seed (seeds are first-seed .. first-seed+N-1).")
    parser.add_argument("--out", default=None, help="Output JSON (default benchmarks/results/b1_<scale>.json).")
    parser.add_argument("--cache-dir", default=str(_common.BENCH_DIR / ".cache"), help="Where original/oracle weights and their training times are cached.")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for the whole run (1 gives the steadiest timings on a shared 2-core machine; 0 = torch's default).")
    parser.add_argument("--prepare-only", action="store_true", help="Only train/cache the original and oracle models, then exit.")
    parser.add_argument("--quiet", action="store_true", help="No progress line per finished run (the final tables are still printed).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    _common.quiet_lightning()
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    scale = ("quick" if args.quick else "full") + ("_vit" if args.arch == "vit" else "")
    n_seeds = args.seeds if args.seeds is not None else SCALES[scale]["seeds"]
    seeds = list(range(args.first_seed, args.first_seed + n_seeds))
    methods = args.methods or default_methods()
    from lightning_unlearn import METHODS

    for m in methods:
        METHODS.get(method_name(m))  # a clear error on a typo before anything trains
    cache_dir = Path(args.cache_dir)
    out_path = Path(args.out) if args.out else _common.BENCH_DIR / "results" / f"b1_{scale}.json"
    log = (lambda *a, **k: None) if args.quiet else functools.partial(print, flush=True)

    hparams = {sc: {m: dict(zip(("config", "tuned"), resolve_hparams(scale, sc, m))) for m in methods} for sc in args.scenarios}
    rows: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    budgets: dict[str, Any] = {}
    calibration: dict[str, Any] = {}
    wall = time.perf_counter()
    for seed in seeds:
        original = get_trained(ORIGINAL, scale, None, seed, cache_dir, log)
        models[f"original/seed{seed}"] = {k: original[k] for k in ("key", "seconds", "cached", "path")}
        for scenario in args.scenarios:
            oracle = get_trained(ORACLE, scale, scenario, seed, cache_dir, log)
            models[f"oracle/{scenario}/seed{seed}"] = {k: oracle[k] for k in ("key", "seconds", "cached", "path")}
            if args.prepare_only:
                continue
            oracle_seconds = float(oracle["seconds"])
            eval_dm = make_datamodule(scale, scenario, seed, max_eval_samples=SCALES[scale]["max_eval_samples"])
            loaders = eval_dm.eval_dataloaders()
            oracle_model = load_model(scale, oracle["path"])
            structure = structure_loader(loaders, seed)
            oracle_metrics = evaluate_model(oracle_model, loaders, None, oracle_model, structure)
            oracle_metrics["avg_gap"] = 0.0
            estimate = oracle_seconds_now(scale, scenario, seed)
            calibration[f"{scenario}/seed{seed}"] = {"cached_oracle_seconds": oracle_seconds, "same_run_estimate_seconds": estimate, "time_ratio_vs_estimate": {}}

            def add(method: str, metrics: dict[str, float], seconds: float, scenario=scenario, seed=seed, oracle_seconds=oracle_seconds) -> None:
                row = {
                    "method": method,
                    "scenario": scenario,
                    "seed": seed,
                    "metrics": metrics,
                    "seconds": seconds,
                    "time_ratio_to_oracle": seconds / oracle_seconds,
                    "avg_gap_to_oracle": metrics["avg_gap"],
                }
                rows.append(row)
                log(
                    f"[b1] {scale} seed={seed} {scenario:6s} {method:10s} UA={metrics['UA']:6.2f} RA={metrics['RA']:6.2f} "
                    f"TA={metrics['TA']:6.2f} MIA={metrics['MIA']:6.2f} gap={metrics['avg_gap']:5.2f} "
                    f"time={seconds:6.1f}s ({100 * row['time_ratio_to_oracle']:.2f}% of oracle)"
                )

            add(ORACLE, oracle_metrics, oracle_seconds)
            add(ORIGINAL, evaluate_model(load_model(scale, original["path"]), loaders, oracle_metrics, oracle_model, structure), 0.0)
            for method in methods:
                hp = hparams[scenario][method]["config"]
                model, seconds, budget = run_method(method, hp, scale, scenario, seed, original["path"])
                budget["sample_passes_ratio_to_oracle"] = budget["sample_passes"] / (SCALES[scale]["train"]["epochs"] * budget["retain_size"])
                budgets.setdefault(scenario, {})[method] = budget
                add(method, evaluate_model(model, loaders, oracle_metrics, oracle_model, structure), seconds)
                calibration[f"{scenario}/seed{seed}"]["time_ratio_vs_estimate"][method] = seconds / estimate
            # write after every seed x scenario so a long run leaves partial results behind
            _write(out_path, args, scale, seeds, methods, hparams, models, budgets, calibration, rows, time.perf_counter() - wall)
    if args.prepare_only:
        log(f"[b1] prepared {len(models)} models in {time.perf_counter() - wall:.1f}s")
        return {}
    payload = _write(out_path, args, scale, seeds, methods, hparams, models, budgets, calibration, rows, time.perf_counter() - wall)
    print(format_tables(payload))
    print(f"\nwrote {out_path} ({len(rows)} rows, {time.perf_counter() - wall:.0f}s wall)")
    return payload


def _write(out_path, args, scale, seeds, methods, hparams, models, budgets, calibration, rows, wall_seconds) -> dict[str, Any]:
    import torch

    payload = {
        "benchmark": "B1",
        "scale": scale,
        "command": _common.command_line(),
        "git_commit": _common.git_commit(),
        "versions": _common.versions(),
        "config": {
            "dataset": SCALES[scale]["dataset"],
            "model": {"class": model_class(scale), **SCALES[scale]["model"]},
            "train_recipe": {"optimizer": "Adam", **SCALES[scale]["train"]},
            "unlearn_batch_size": SCALES[scale]["unlearn_batch_size"],
            "max_eval_samples": SCALES[scale]["max_eval_samples"],
            "scenarios": {s: SCENARIOS[s] for s in args.scenarios},
            "seeds": seeds,
            "methods": methods,
            "hparams": hparams,
            "torch_threads": torch.get_num_threads(),
            "mia_attack": "logistic",
            "structure_metrics": {
                "against": "the oracle (same seed and scenario)",
                "layer": STRUCTURE_LAYER,
                "k": STRUCTURE_K,
                "samples": f"a seeded subset of {STRUCTURE_SAMPLES} retained training samples (the evaluation retain split)",
            },
            "time_ratio_denominator": "the oracle's cached training seconds (same seed and scenario)",
            "budgets": budgets,
            "budget_note": "sample_passes = optimizer steps x (forget batch if the method uses it + retain batch if it has a retain term); "
            "sample_passes_ratio_to_oracle divides by the oracle's epochs x retain size: a load-independent cost ratio",
            "time_calibration": calibration,
            "cached_models": models,
            "git_dirty": _common.git_dirty(),
            "wall_seconds": wall_seconds,
        },
        "rows": rows,
        "summary": summarise(rows),
    }
    _common.write_json(out_path, payload)
    return payload


if __name__ == "__main__":
    main()
