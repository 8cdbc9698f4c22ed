"""Benchmark B6's protocol: unlearning in a hybrid quantum-classical classifier (shared by ``benchmarks/b6_quantum.py``).

The protocol of C. Crivoi et al., "Machine Unlearning for Hybrid Quantum-Classical Neural Networks" (ICPR 2026),
arXiv 2512.19253: a 4-qubit angle-encoded variational circuit with an MLP head
(:class:`~lightning_unlearn.models.HybridQuantumClassifier`) on Iris, digits or Fashion-MNIST reduced to 4 features
(:class:`~lightning_unlearn.datamodules.AngleFeaturesDataModule`); two deletion requests, a random 2% of the training
split and the whole class 0; an *original* trained on everything and an *oracle* retrained on the retain split, both
trained once per (dataset, depth, entangler, seed[, scenario]) and cached on disk; then every method unlearns the
original through :class:`~lightning_unlearn.UnlearningModule` and is scored with the study's metrics
(:func:`study_metrics`).

Settings come from the shipped configs, as B1's do: the original's and the oracle's recipe (epochs, lr, batch size)
from ``configs/quantum_<dataset>/original.yaml``, a method's from ``configs/quantum_<dataset>/<method>.yaml``
(random) and ``configs/quantum_<dataset>/classwise/<method>.yaml`` (class). Any registered classifier method runs: one
without a config runs with :data:`DEFAULT_HP` and the row says so.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

from lightning_unlearn import benchmarking

__all__ = [
    "CONFIG_FOLDERS",
    "DEFAULT_HP",
    "ENTANGLERS",
    "LAYERS",
    "RECIPE_VERSION",
    "SCALES",
    "SCENARIOS",
    "STUDY_METHODS",
    "build_model",
    "device_timing",
    "get_trained",
    "make_datamodule",
    "method_settings",
    "predictions",
    "resolve_methods",
    "run_method",
    "study_metrics",
    "train_recipe",
    "unlearning_quality_index",
]

#: The study's eleven methods by their registry names (the order of the paper's tables).
STUDY_METHODS = ("ga", "fisher", "neggrad_plus", "cf_k", "eu_k", "scrub", "scrub_r", "certified", "qmul", "lca", "adv_uniform")
LAYERS = (1, 2, 4, 6)
ENTANGLERS = ("cz_ring", "none")
#: The study's two requests: a seeded random 2% of the training split, and every sample of class 0.
SCENARIOS: dict[str, dict[str, Any]] = {"random": {"forget_fraction": 0.02}, "class": {"forget_class": 0}}
SCENARIO_FOLDERS = {"random": "", "class": "classwise/"}
CONFIG_FOLDERS = {"iris": "quantum_iris", "digits": "quantum_digits", "fashion_mnist": "quantum_fmnist"}
#: The data of each dataset (``AngleFeaturesDataModule`` arguments besides the request).
DATA: dict[str, dict[str, Any]] = {
    "iris": {},
    "digits": {},
    "fashion_mnist": {"train_limit": 2000, "test_limit": 1000},
}
#: What a scale runs: dataset, depth × entanglement grid and default number of seeds.
SCALES: dict[str, dict[str, Any]] = {
    "quick": {"dataset": "iris", "layers": (2,), "entanglers": ("cz_ring",), "seeds": 1},
    "full": {"dataset": "iris", "layers": LAYERS, "entanglers": ENTANGLERS, "seeds": 3},
    "digits": {"dataset": "digits", "layers": (2,), "entanglers": ("cz_ring",), "seeds": 3},
    "fashion_mnist": {"dataset": "fashion_mnist", "layers": (2,), "entanglers": ("cz_ring",), "seeds": 3},
}
#: A method without a config: the study's Adam lr, five passes over the retain set (forget batches cycled).
DEFAULT_HP: dict[str, Any] = {"lr": 1e-2, "epochs": 5, "max_steps": -1, "mode": "max_size_cycle", "batch_size": 32, "method": {}}
RECIPE_VERSION = 1
HIDDEN = 16
ORIGINAL, ORACLE = "original", "retrain"


def _check(name: str, value: Any, allowed: Any) -> None:
    from lightning_unlearn._errors import check_choice

    check_choice(name, value, allowed)


# ----------------------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------------------


def train_recipe(dataset: str) -> dict[str, Any]:
    """The original's and the oracle's recipe from ``configs/quantum_<dataset>/original.yaml``:
    ``{"epochs", "lr", "batch_size"}`` (Adam, constant lr, cross-entropy)."""
    from lightning_unlearn.configs import load_config

    _check("dataset", dataset, CONFIG_FOLDERS)
    config = load_config(f"{CONFIG_FOLDERS[dataset]}/original")
    return {
        "epochs": config["trainer"]["max_epochs"],
        "lr": config["model"]["init_args"]["optimizer"]["init_args"]["lr"],
        "batch_size": config["data"]["init_args"]["batch_size"],
    }


def method_settings(dataset: str, scenario: str, method: str) -> tuple[dict[str, Any], str]:
    """``(settings, source)`` of ``method`` (:func:`~lightning_unlearn.benchmarking.unlearning_settings` of its
    shipped config), or :data:`DEFAULT_HP` and ``"defaults"`` when the dataset has no config for it."""
    from lightning_unlearn.configs import config_path, load_config

    _check("scenario", scenario, SCENARIOS)
    name = f"{CONFIG_FOLDERS[dataset]}/{SCENARIO_FOLDERS[scenario]}{method}"
    try:
        config_path(name)
    except ValueError:
        return dict(DEFAULT_HP), "defaults"
    return benchmarking.unlearning_settings(load_config(name), f"configs/{name}.yaml", optimizer="torch.optim.Adam"), f"configs/{name}.yaml"


def resolve_methods(names: list[str] | None) -> tuple[list[str], list[str]]:
    """``(runnable, missing)``: ``None`` or ``["study"]`` means :data:`STUDY_METHODS`, ``["all"]`` every registered
    classifier method but ``retrain``; names that are not registered classifier methods are returned as missing."""
    from lightning_unlearn import METHODS

    classifier = [m for m in METHODS.names() if m != "retrain" and "classification" in METHODS.get(m).supported_tasks]
    if not names or names == ["study"]:
        names = list(STUDY_METHODS)
    elif names == ["all"]:
        names = classifier
    return [n for n in names if n in classifier], [n for n in names if n not in classifier]


# ----------------------------------------------------------------------------------------------------------
# Model, data, original and oracle
# ----------------------------------------------------------------------------------------------------------


def num_classes(dataset: str) -> int:
    return 3 if dataset == "iris" else 10


def build_model(dataset: str, layers: int, entangler: str, device: str = "default.qubit"):
    from lightning_unlearn.models import HybridQuantumClassifier

    return HybridQuantumClassifier(layers=layers, entangler=entangler, num_classes=num_classes(dataset), hidden=HIDDEN, device=device)


def make_datamodule(dataset: str, scenario: str | None, seed: int, **kwargs: Any):
    """``AngleFeaturesDataModule`` for ``scenario`` (``None``: the original's data, all of the training split)."""
    from lightning_unlearn import AngleFeaturesDataModule

    request = SCENARIOS[scenario] if scenario is not None else {"forget_indices": [0]}
    return AngleFeaturesDataModule(dataset, seed=seed, **DATA[dataset], **request, **kwargs)


def get_trained(
    kind: str, dataset: str, layers: int, entangler: str, scenario: str | None, seed: int, cache_dir: Path, log=print
) -> dict[str, Any]:
    """Train (or load from ``cache_dir/b6``) the original (``scenario=None``) or the oracle; returns
    ``{"path", "seconds", "config", "key", "cached"}``. The training seconds are the time-ratio denominator."""
    import lightning.pytorch as pl
    import torch

    recipe = train_recipe(dataset)
    config = {
        "kind": kind, "recipe_version": RECIPE_VERSION, "dataset": dataset, "data": DATA[dataset],
        "model": {"layers": layers, "entangler": entangler, "hidden": HIDDEN}, **recipe, "seed": seed,
        "scenario": scenario, "request": SCENARIOS[scenario] if scenario else None,
    }  # fmt: skip
    key = benchmarking.config_hash(config)
    folder = Path(cache_dir) / "b6"
    weights, meta = folder / f"{kind}-{key}.pt", folder / f"{kind}-{key}.json"
    if weights.is_file() and meta.is_file():
        return {**json.loads(meta.read_text()), "path": str(weights), "key": key, "cached": True}
    folder.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(seed, verbose=False)
    dm = make_datamodule(dataset, scenario, seed, batch_size=recipe["batch_size"], train_on="all" if kind == ORIGINAL else "retain")
    seconds = benchmarking.train_and_save(build_model(dataset, layers, entangler), dm, recipe["lr"], recipe["epochs"], weights)
    info = {"config": config, "seconds": seconds, "threads": torch.get_num_threads()}
    benchmarking.write_json(meta, info)
    log(f"[b6] trained {kind} {dataset} L={layers} {entangler} scenario={scenario or '-'} seed={seed} in {seconds:.1f}s")
    return {**info, "path": str(weights), "key": key, "cached": False}


def run_method(
    name: str, hp: dict[str, Any], dataset: str, layers: int, entangler: str, scenario: str, seed: int, original_path: str
) -> tuple[Any, float]:
    """Unlearn the cached original with method ``name`` (``UnlearningModule`` + ``Trainer.fit``); returns
    ``(model, seconds)``, timed from building the module (loading the original) to the end of the fit."""
    import lightning.pytorch as pl
    import torch

    from lightning_unlearn import UnlearningModule
    from lightning_unlearn.benchmarking.b1 import build_method

    pl.seed_everything(seed, verbose=False)
    dm = make_datamodule(
        dataset, scenario, seed, batch_size=hp["batch_size"], retain_batch_size=hp.get("retain_batch_size"),
        mode=hp["mode"], train_on="forget_retain",
    )  # fmt: skip
    method = build_method(name, hp["method"], seed)
    start = time.perf_counter()
    model = build_model(dataset, layers, entangler)
    optimizer = functools.partial(torch.optim.Adam, lr=hp["lr"], weight_decay=hp.get("weight_decay", 0.0))
    module = UnlearningModule(model, method, original=original_path, optimizer=optimizer, monitor=False)
    benchmarking.quiet_trainer(max_epochs=hp["epochs"], max_steps=hp.get("max_steps", -1)).fit(module, datamodule=dm)
    return model.eval(), time.perf_counter() - start


# ----------------------------------------------------------------------------------------------------------
# The study's metrics
# ----------------------------------------------------------------------------------------------------------


def predictions(model, loaders: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{split: (probabilities [N, C], targets [N])}`` of ``model`` on each loader."""
    import torch

    from lightning_unlearn.metrics import output_probabilities

    out = {}
    for split, loader in loaders.items():
        targets = torch.cat([batch[1] for batch in loader])
        out[split] = (output_probabilities(model, loader), targets)
    return out


def unlearning_quality_index(acc: dict[str, float], original: dict[str, float]) -> float:
    """UQI = forget drop − ½ (retain drop + test drop), drops in accuracy points from the original (the study's
    score: forgetting rewarded, lost utility penalised; 0 for the original itself)."""
    drop = {k: original[k] - acc[k] for k in ("forget", "retain", "test")}
    return drop["forget"] - 0.5 * (drop["retain"] + drop["test"])


def study_metrics(preds: dict[str, tuple[Any, Any]], original: dict[str, float], oracle: dict[str, tuple[Any, Any]]) -> dict[str, float]:
    """The study's metrics of one model from its :func:`predictions`: accuracy (percent) on forget / retain / test,
    ``uqi`` (against ``original``'s accuracies), KL(oracle ‖ model) and JS to the oracle on retain and test, argmax
    agreement with the oracle (percent) on forget / retain / test, and ``mia_auc``: the ROC AUC of the maximum softmax
    confidence telling forget samples (members) from test samples (0.5: indistinguishable)."""
    from lightning_unlearn.metrics import auroc, js_divergence, kl_divergence

    out: dict[str, float] = {}
    acc = {split: 100.0 * float((p.argmax(-1) == y).float().mean()) for split, (p, y) in preds.items()}
    out.update({f"acc_{split}": value for split, value in acc.items()})
    out["uqi"] = unlearning_quality_index(acc, original)
    for split in ("retain", "test"):
        out[f"kl_{split}"] = kl_divergence(oracle[split][0], preds[split][0])
        out[f"js_{split}"] = js_divergence(preds[split][0], oracle[split][0])
    for split in ("forget", "retain", "test"):
        out[f"agree_{split}"] = 100.0 * float((preds[split][0].argmax(-1) == oracle[split][0].argmax(-1)).float().mean())
    out["mia_auc"] = auroc(preds["forget"][0].max(-1).values, preds["test"][0].max(-1).values)
    return out


# ----------------------------------------------------------------------------------------------------------
# Which simulator: forward + backward time per batch
# ----------------------------------------------------------------------------------------------------------


def device_timing(layers: tuple[int, ...] = LAYERS, batch_size: int = 32, repeats: int = 12, warmup: int = 2, seed: int = 0) -> list[dict[str, Any]]:
    """Median seconds of one forward + backward pass (cross-entropy on a batch of ``batch_size`` random angles) on
    ``default.qubit`` (backprop) and ``lightning.qubit`` (adjoint), alternating the two devices in the same process;
    one row per depth with ``ratio`` = lightning / default."""
    import statistics

    import torch

    rows = []
    devices = ("default.qubit", "lightning.qubit")
    for depth in layers:
        torch.manual_seed(seed)
        x, y = torch.rand(batch_size, 4) * torch.pi, torch.randint(0, 3, (batch_size,))
        models = {d: build_model("iris", depth, "cz_ring", device=d) for d in devices}
        times: dict[str, list[float]] = {d: [] for d in devices}
        for _ in range(warmup + repeats):
            for d, model in models.items():
                model.zero_grad()
                start = time.perf_counter()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                times[d].append(time.perf_counter() - start)
        med = {d: statistics.median(t[warmup:]) for d, t in times.items()}
        rows.append({"layers": depth, "batch_size": batch_size, **{f"{d}_s": med[d] for d in devices}, "ratio": med[devices[1]] / med[devices[0]]})
    return rows
