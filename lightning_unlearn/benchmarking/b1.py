"""Benchmark B1's protocol, shared by the B1 scripts (``benchmarks/b1_*.py``).

B1 (image-classification unlearning, the SalUn / "Model Sparsity Can Simplify Unlearning" protocol):
an *original* model trained on the whole training split and an *oracle* retrained on the retain split are
trained once per seed and scenario and cached on disk; every method then unlearns the cached original and
is evaluated against the oracle.

The settings of every method come from the shipped configs (:mod:`lightning_unlearn.configs`): scale
``quick`` reads ``configs/digits/<method>.yaml`` (random 10% forgetting) and
``configs/digits/classwise/<method>.yaml`` (class 0), ``full`` reads ``configs/fashion_mnist/...`` and
``full_vit`` ``configs/fashion_mnist_vit/...``; the original's and the oracle's training recipe (epochs, lr,
batch size) comes from the folder's ``original.yaml``. :func:`resolve_hparams` turns a config into the
run's settings; a row ``<method>+<variant>`` (e.g. ``stake_the_points+retain``) is the config file of that
name, a registered method with other settings.
"""

from __future__ import annotations

import functools
import json
import math
import time
from pathlib import Path
from typing import Any

from lightning_unlearn import benchmarking

__all__ = [
    "ARCHS",
    "CONFIG_FOLDERS",
    "DEFAULT_HP",
    "METRIC_KEYS",
    "MIA_ATTACK",
    "ORACLE",
    "ORIGINAL",
    "RECIPE_VERSION",
    "SCALES",
    "SCENARIOS",
    "SCENARIO_FOLDERS",
    "STRUCTURE_K",
    "STRUCTURE_LAYER",
    "STRUCTURE_SAMPLES",
    "build_method",
    "build_model",
    "config_name",
    "default_methods",
    "evaluate_model",
    "get_trained",
    "load_data",
    "load_model",
    "make_datamodule",
    "method_name",
    "model_class",
    "model_config",
    "oracle_seconds_now",
    "resolve_hparams",
    "run_method",
    "settings_from_config",
    "structure_loader",
    "train_recipe",
]

#: What defines a scale besides its configs: the dataset, the architecture's arguments (part of the cache
#: key of the original and the oracle), ``max_eval_samples`` (each evaluation split capped at a fixed seeded
#: subset; only the 54k-sample retain split is affected at full scale) and the default number of seeds.
SCALES: dict[str, dict[str, Any]] = {
    "quick": {"dataset": "digits", "model": {"image_size": 8, "width": 16, "hidden": 64}, "max_eval_samples": None, "seeds": 1},
    # SmallCNN() defaults: 28×28, width 32, hidden 128
    "full": {"dataset": "fashion_mnist", "model": {}, "max_eval_samples": 10_000, "seeds": 3},
}
# The ViT rows (``--arch vit``): the same data and recipe with ViTClassifier (transformers ViT from a config).
SCALES["quick_vit"] = {
    **SCALES["quick"],
    "arch": "vit",
    "model": {"image_size": 8, "patch_size": 2, "hidden_size": 32, "num_layers": 2, "num_heads": 4},
}
# ViTClassifier() defaults: 7×7 patches, 4 layers, 4 heads, width 64 (139k parameters)
SCALES["full_vit"] = {**SCALES["full"], "arch": "vit", "model": {}}
ARCHS = {"cnn": "SmallCNN", "vit": "ViTClassifier"}

#: The config folder of each scale. The quick ViT smoke run has no configs of its own: it uses the digits
#: (CNN) settings, as the ViT rows at full scale started from the CNN's.
CONFIG_FOLDERS = {"quick": "digits", "quick_vit": "digits", "full": "fashion_mnist", "full_vit": "fashion_mnist_vit"}

#: The deletion requests and their config sub-folders. Class 0 is "T-shirt/top" on Fashion-MNIST (the class
#: most confused with "Shirt", so the oracle's retain accuracy differs visibly from the original's) and the
#: digit 0 on digits.
SCENARIOS: dict[str, dict[str, Any]] = {"class": {"forget_class": 0}, "random": {"forget_fraction": 0.1}}
SCENARIO_FOLDERS = {"class": "classwise/", "random": ""}

#: Bump to invalidate every cached original/oracle (e.g. after a change of the training code).
RECIPE_VERSION = 1

#: The settings of a method run with its constructor defaults (``b1_tune.py --base default``).
DEFAULT_HP: dict[str, Any] = {"lr": 1e-3, "epochs": 1, "max_steps": -1, "mode": "min_size", "schedule": "constant", "method": {}}

#: The MIA column: SalUn's SVC_MIA exactly (``MIAEfficacy(attack="salun_svc")``: an RBF SVC, C=3, on the raw
#: confidence of the first |test| retain samples vs the test samples, applied to the forget set), so that MIA and
#: Avg Gap are comparable with SalUn's published numbers. Results written before issue 12 used "logistic".
MIA_ATTACK = "salun_svc"

METRIC_KEYS = ("UA", "RA", "TA", "MIA", "mia_auc", "forget_acc", "avg_gap", "knn_overlap", "class_sim_corr")
ORIGINAL, ORACLE = "original", "retrain"


# ----------------------------------------------------------------------------------------------------------
# Settings from the shipped configs
# ----------------------------------------------------------------------------------------------------------


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ValueError(f"`scale` should be one of {sorted(SCALES)}, got {scale!r}.")


def config_name(scale: str, scenario: str | None, row: str) -> str:
    """The shipped config behind ``row`` (a method, a ``<method>+<variant>`` row, or ``"original"``) at
    ``scale`` in ``scenario`` (``None`` for the scenario-independent original), e.g. ``"digits/classwise/npo"``."""
    _check_scale(scale)
    if scenario is not None and scenario not in SCENARIOS:
        raise ValueError(f"`scenario` should be one of {sorted(SCENARIOS)}, got {scenario!r}.")
    return f"{CONFIG_FOLDERS[scale]}/{SCENARIO_FOLDERS[scenario] if scenario else ''}{row}"


def method_name(row: str) -> str:
    """The registered method behind a row name (``"stake_the_points+retain"`` -> ``"stake_the_points"``)."""
    return row.split("+", 1)[0]


def settings_from_config(config: dict[str, Any], name: str = "config") -> dict[str, Any]:
    """An unlearning config's settings as B1 runs them (:func:`lightning_unlearn.benchmarking.unlearning_settings`
    of a config that unlearns with ``torch.optim.Adam``)."""
    return benchmarking.unlearning_settings(config, name, optimizer="torch.optim.Adam")


def resolve_hparams(scale: str, scenario: str, row: str) -> tuple[dict[str, Any], str]:
    """The settings of ``row`` (see :func:`settings_from_config`) and the shipped config they come from.

    The config's method class must be the registered class of ``method_name(row)``.
    """
    from lightning_unlearn import METHODS
    from lightning_unlearn.configs import config_path, load_config

    name = config_name(scale, scenario, row)
    try:
        config_path(name)
    except ValueError:
        raise ValueError(
            f"B1 has no settings for {row!r} at scale {scale!r}, scenario {scenario!r}: configs/{name}.yaml does not exist."
        ) from None
    config = load_config(name)
    hp = settings_from_config(config, f"configs/{name}.yaml")
    cls = METHODS.get(method_name(row))
    registered = f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__name__}"
    class_path = config["model"]["init_args"]["method"].get("class_path")
    if class_path not in (registered, f"{cls.__module__}.{cls.__name__}"):
        raise ValueError(
            f"configs/{name}.yaml: the method should be {registered} (registered as {method_name(row)!r}), got {class_path!r}."
        )
    return hp, f"configs/{name}.yaml"


def train_recipe(scale: str) -> dict[str, Any]:
    """The original's and the oracle's training recipe (Adam, constant lr, plain cross-entropy), from the
    scale's ``original.yaml``: ``{"epochs", "lr", "batch_size"}``."""
    from lightning_unlearn.configs import load_config

    _check_scale(scale)
    config = load_config(f"{CONFIG_FOLDERS[scale]}/original")
    return {
        "epochs": config["trainer"]["max_epochs"],
        "lr": config["model"]["init_args"]["optimizer"]["init_args"]["lr"],
        "batch_size": config["data"]["init_args"]["batch_size"],
    }


def default_methods(scale: str) -> list[str]:
    """Every registered classifier method (except ``retrain``, the oracle row), then every variant row
    (``<method>+<variant>.yaml`` in the scale's config folder)."""
    from lightning_unlearn import METHODS
    from lightning_unlearn.configs import list_configs

    names = [m for m in METHODS.names() if m != "retrain" and "classification" in METHODS.get(m).supported_tasks]
    folder = CONFIG_FOLDERS[scale]
    variants = [n.rsplit("/", 1)[1] for n in list_configs(folder) if n.count("/") == 1 and "+" in n]
    return names + [v for v in variants if method_name(v) in names]


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
        **train_recipe(scale),
        "seed": seed,
        "train_on": "all" if kind == ORIGINAL else "retain",
    }
    if kind == ORACLE:
        out["scenario"] = scenario
        out["request"] = SCENARIOS[scenario]
    return out


def get_trained(kind: str, scale: str, scenario: str | None, seed: int, cache_dir: Path, log=print) -> dict[str, Any]:
    """Train (or load from the cache) the original (``scenario=None``) or the oracle. Returns its cache entry:
    ``{"path", "seconds", "config", "key", "cached"}``."""
    import lightning.pytorch as pl
    import torch

    config = model_config(kind, scale, scenario, seed)
    key = benchmarking.config_hash(config)
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
    train = train_recipe(scale)
    pl.seed_everything(seed, verbose=False)
    dm = make_datamodule(scale, scenario, seed, batch_size=train["batch_size"], train_on="all" if kind == ORIGINAL else "retain")
    seconds = benchmarking.train_and_save(build_model(scale), dm, train["lr"], train["epochs"], weights)
    info = {
        "config": config,
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        "trained_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    benchmarking.write_json(meta, info)
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

    train = train_recipe(scale)
    stamps: list[float] = []

    def factory(params):
        opt = torch.optim.Adam(params, lr=train["lr"])
        opt.register_step_post_hook(lambda *_: stamps.append(time.perf_counter()))
        return opt

    pl.seed_everything(seed, verbose=False)
    dm = make_datamodule(scale, scenario, seed, batch_size=train["batch_size"], train_on="retain")
    benchmarking.quiet_trainer(max_steps=warmup + steps).fit(
        SupervisedModule(build_model(scale), optimizer=factory), datamodule=dm
    )
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


def evaluate_model(
    model, loaders, oracle_metrics: dict[str, float] | None, oracle_model=None, structure_loader=None
) -> dict[str, float]:
    """UA/RA/TA/MIA/Avg Gap, plus the structure agreement with the oracle on retained samples when given."""
    from lightning_unlearn.callbacks import evaluate
    from lightning_unlearn.metrics import structure_agreement

    out = {k: float(v) for k, v in evaluate(model, loaders, oracle=oracle_metrics, mia_attack=MIA_ATTACK).items()}
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

        ((kind, arg),) = mask.items()
        kwargs["mask"] = SaliencyMask(**arg) if kind == "saliency" else RegexMask(arg)
    kwargs.setdefault("seed", seed)  # every method takes the base arguments, `seed` among them
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
        total = (
            per_epoch * hp["epochs"] if hp.get("max_steps", -1) in (-1, None) else min(hp["max_steps"], per_epoch * hp["epochs"])
        )
        scheduler = _linear_decay(total)
    elif hp.get("schedule", "constant") != "constant":
        raise ValueError(f"unknown schedule {hp['schedule']!r}")
    start = time.perf_counter()
    model = build_model(scale)
    module = UnlearningModule(
        model,
        method,
        original=original_path,
        optimizer=functools.partial(torch.optim.Adam, lr=hp["lr"]),
        lr_scheduler=scheduler,
        monitor=False,  # the benchmark scores every model itself; the monitor's two passes would count as unlearning time
    )
    trainer = benchmarking.quiet_trainer(max_epochs=hp["epochs"], max_steps=hp.get("max_steps", -1))
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
        * (
            (hp["batch_size"] if method.uses_forget else 0)
            + ((hp.get("retain_batch_size") or hp["batch_size"]) if method.uses_retain else 0)
        ),
    }
    return model.eval(), seconds, budget


def _linear_decay(total_steps: int):
    """LR-scheduler factory: lr × (1 − step/total), stepped every optimizer step."""
    import torch

    def factory(optimizer):
        lam = lambda step: max(0.0, 1.0 - step / max(1, total_steps))  # noqa: E731
        return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, lam), "interval": "step"}

    return factory
