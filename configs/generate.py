"""Write ``configs/<benchmark>/<method>.yaml`` for every registered method.

The configs are data, generated from one table so that every benchmark × method file agrees on
the model, data split, seed and output paths. Re-run after changing a hyperparameter:

    python configs/generate.py

Each benchmark directory holds a three-step chain (random 10% forgetting, seed 0):

1. ``original.yaml``  trains the model on all training data  -> ``artifacts/<bench>/original.pt``
2. ``retrain.yaml``   the oracle: from scratch on the retain set -> ``artifacts/<bench>/retrain.pt``
3. ``<method>.yaml``  unlearns the original (the oracle's weights give ``avg_gap``; drop them with
                      ``--model.init_args.oracle null``), writes the unlearning report to ``outputs/<bench>/<method>/report``;
                      ``test`` reports UA/RA/TA/MIA and the gap to the oracle

and the same for B1's class-wise scenario (forget class 0) under ``<bench>/classwise/``: its own oracle
(``classwise/retrain.yaml`` -> ``artifacts/<bench>/classwise/retrain.pt``) and methods, unlearning the same
original. ``fashion_mnist_vit`` is the Fashion-MNIST chain with the ViT (``ViTClassifier``).

``authors_smollm2`` is benchmark B2's chain on SmolLM2-135M-Instruct (``lightning_unlearn.models.smollm2``)
and 40 fictitious authors (forget 10%, holdout 10%): ``target.yaml`` fine-tunes on forget + retain ->
``artifacts/authors_smollm2/target.pt``, ``oracle.yaml`` on retain only -> ``.../oracle.pt``, and
``<method>.yaml`` unlearns the target with B2's settings (``HPARAMS`` in benchmarks/b2_llm.py, full scale).

``einstein_smollm2`` is benchmark B3: ``<method>.yaml`` unlearns Albert Einstein's Wikipedia article from
SmolLM2-135M-Instruct *as released* (``RealEntityDataModule``; no target to train, no oracle exists) with B3's
settings (``HPARAMS`` in benchmarks/b3_entity.py).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent

BENCHMARKS: dict[str, dict[str, Any]] = {
    "fashion_mnist": {
        "data": {"class_path": "lightning_unlearn.FashionMNISTDataModule", "init_args": {}},
        "model": {"class_path": "lightning_unlearn.models.SmallCNN", "init_args": {"image_size": 28}},
        "batch_size": 128,
        "train_epochs": 8,
        "eval": {"max_eval_samples": 10000},
        "anchors": "fashion_mnist",
    },
    "fashion_mnist_vit": {
        "data": {"class_path": "lightning_unlearn.FashionMNISTDataModule", "init_args": {}},
        "model": {"class_path": "lightning_unlearn.models.ViTClassifier", "init_args": {"image_size": 28}},
        "batch_size": 128,
        "train_epochs": 8,
        "eval": {"max_eval_samples": 10000},
        "anchors": "fashion_mnist",
    },
    "digits": {
        "data": {"class_path": "lightning_unlearn.DigitsDataModule", "init_args": {}},
        "model": {"class_path": "lightning_unlearn.models.SmallCNN", "init_args": {"image_size": 8, "width": 16, "hidden": 64}},
        "batch_size": 32,
        "train_epochs": 30,
        "eval": {},
        "anchors": "digits",
    },
}

#: Method class paths. Hyperparameters come from benchmark B1's tuned table (``HPARAMS`` in
#: benchmarks/b1_classification.py, random-10% scenario), so configs and README numbers agree.
METHOD_CLASSES: dict[str, str] = {
    "ft": "lightning_unlearn.methods.FineTune",
    "ga": "lightning_unlearn.methods.GradientAscent",
    "graddiff": "lightning_unlearn.methods.GradDiff",
    "rl": "lightning_unlearn.methods.RandomLabel",
    "npo": "lightning_unlearn.methods.NPO",
    "scrub": "lightning_unlearn.methods.SCRUB",
    "salun": "lightning_unlearn.methods.SalUn",
    "l1_sparse": "lightning_unlearn.methods.L1Sparse",
    "stake_the_points": "lightning_unlearn.methods.StakeThePoints",
    "adaprob": "lightning_unlearn.methods.AdaProb",
    "roka": "lightning_unlearn.methods.ROKA",
    "razor": "lightning_unlearn.methods.RAZOR",
}
#: Which B1 scale each config folder mirrors.
B1_SCALE = {"fashion_mnist": "full", "fashion_mnist_vit": "full_vit", "digits": "quick"}
#: Config sub-folder -> (B1 scenario name, the datamodule's request). "" is the benchmark folder itself.
SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {"": ("random", {"forget_fraction": 0.1}), "classwise": ("class", {"forget_class": 0})}
_HP_KEYS = {"lr", "epochs", "max_steps", "mode", "schedule", "method", "batch_size", "retain_batch_size"}


def _benchmark(script: str) -> Any:
    """Import ``benchmarks/<script>.py`` (with ``benchmarks/`` on the path for its ``_common`` import)."""
    path = ROOT.parent / "benchmarks" / f"{script}.py"
    spec = importlib.util.spec_from_file_location(f"_{script}_for_configs", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    finally:
        sys.path.pop(0)
    return module


def b1_hparams(bench: str, method: str, scenario: str = "random") -> dict[str, Any]:
    """The B1 benchmark's hyperparameters for ``method`` on ``bench`` and ``scenario`` ("random" | "class")."""
    hp, _ = _benchmark("b1_classification").resolve_hparams(B1_SCALE[bench], scenario, method)
    unknown = set(hp) - _HP_KEYS
    if unknown or hp.get("schedule", "constant") != "constant":
        raise ValueError(f"configs/generate.py cannot express {method}'s B1 settings {hp} in a config yet.")
    return hp


def _trainer(bench: str, run: str, epochs: int, callbacks: list[dict[str, Any]]) -> dict[str, Any]:
    # ``run`` may be "classwise/npo": the W&B run is named "classwise-npo" in group "<bench>"
    return {
        "accelerator": "cpu",
        "max_epochs": epochs,
        "default_root_dir": f"outputs/{bench}/{run}",
        # W&B first (online when you have W&B configured, offline otherwise; LightningCLI saves config.yaml
        # in the first logger's folder), plus plain CSV metrics.
        "logger": [
            {
                "class_path": "lightning_unlearn.tracking.UnlearnWandbLogger",
                "init_args": {"project": "lightning-unlearn", "name": run.replace("/", "-"), "group": bench, "save_dir": f"outputs/{bench}/{run}", "mode": "auto"},
            },
            {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": f"outputs/{bench}", "name": run}},
        ],
        "callbacks": callbacks,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 10,
    }


def _data(spec: dict[str, Any], train_on: str, mode: str = "min_size", request: dict[str, Any] | None = None) -> dict[str, Any]:
    data = copy.deepcopy(spec["data"])
    data["init_args"].update(
        {**(request or {"forget_fraction": 0.1}), "train_on": train_on, "batch_size": spec["batch_size"], "mode": mode, "seed": 0, **spec["eval"]}
    )
    return data


def _checkpoint(bench: str, run: str) -> dict[str, Any]:
    return {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"dirpath": f"outputs/{bench}/{run}/checkpoints", "save_last": True},
    }


def _save(bench: str, run: str) -> dict[str, Any]:
    return {"class_path": "lightning_unlearn.SaveWeights", "init_args": {"path": f"artifacts/{bench}/{run}.pt"}}


def _report(bench: str, run: str) -> dict[str, Any]:
    return {"class_path": "lightning_unlearn.UnlearningReport", "init_args": {"dirpath": f"outputs/{bench}/{run}/report"}}


def _optimizer(lr: float) -> dict[str, Any]:
    return {"class_path": "torch.optim.Adam", "init_args": {"lr": lr}}


def build(bench: str) -> dict[str, dict[str, Any]]:
    if bench == LLM_BENCH:
        return build_llm()
    if bench == ENTITY_BENCH:
        return build_entity()
    spec = BENCHMARKS[bench]
    configs: dict[str, dict[str, Any]] = {}
    epochs = spec["train_epochs"]
    configs["original"] = {
        "seed_everything": 0,
        "trainer": _trainer(bench, "original", epochs, [_save(bench, "original")]) | {"enable_checkpointing": False},
        "model": {
            "class_path": "lightning_unlearn.SupervisedModule",
            "init_args": {"model": spec["model"], "optimizer": _optimizer(1e-3)},
        },
        "data": _data(spec, "all"),
    }
    for folder, (scenario, request) in SCENARIOS.items():
        prefix = f"{folder}/" if folder else ""
        oracle = f"artifacts/{bench}/{prefix}retrain.pt"
        configs[f"{prefix}retrain"] = {
            "seed_everything": 0,
            "trainer": _trainer(bench, f"{prefix}retrain", epochs, [_checkpoint(bench, f"{prefix}retrain"), _save(bench, f"{prefix}retrain")])
            | {"check_val_every_n_epoch": epochs},
            "model": {
                "class_path": "lightning_unlearn.UnlearningModule",
                "init_args": {
                    "model": spec["model"],
                    "method": {"class_path": "lightning_unlearn.methods.Retrain", "init_args": {"seed": 0}},
                    "optimizer": _optimizer(1e-3),
                },
            },
            "data": _data(spec, "forget_retain", mode="max_size_cycle", request=request),
        }
        for name, class_path in METHOD_CLASSES.items():
            run = f"{prefix}{name}"
            hp = b1_hparams(bench, name, scenario)
            trainer = _trainer(bench, run, hp["epochs"], [_checkpoint(bench, run), _save(bench, run), _report(bench, run)])
            if hp.get("max_steps", -1) != -1:
                trainer["max_steps"] = hp["max_steps"]
            data = _data(spec, "forget_retain", mode=hp["mode"], request=request)
            data["init_args"]["batch_size"] = hp["batch_size"]
            if hp.get("retain_batch_size"):
                data["init_args"]["retain_batch_size"] = hp["retain_batch_size"]
            method_args = dict(hp["method"])
            if "anchors" in inspect.signature(_resolve(class_path)).parameters:
                method_args.setdefault("anchors", spec["anchors"])  # the dataset's built-in class descriptions
            configs[run] = {
                "seed_everything": 0,
                "trainer": trainer,
                "model": {
                    "class_path": "lightning_unlearn.UnlearningModule",
                    "init_args": {
                        "model": spec["model"],
                        "method": {"class_path": class_path, "init_args": method_args},
                        "optimizer": _optimizer(hp["lr"]),
                        "original": f"artifacts/{bench}/original.pt",
                        "oracle": oracle,
                    },
                },
                "data": data,
            }
    return configs


# ---------------------------------------------------------------------------------------------------- B2 (LLM)
LLM_BENCH = "authors_smollm2"
#: B2's LLM methods (the ones of benchmarks/b2_llm.py's LLM_METHODS) -> class paths.
LLM_METHOD_CLASSES: dict[str, str] = {
    "ga": "lightning_unlearn.methods.GradientAscent",
    "graddiff": "lightning_unlearn.methods.GradDiff",
    "npo": "lightning_unlearn.methods.NPO",
    "simnpo": "lightning_unlearn.methods.SimNPO",
    "idk": "lightning_unlearn.methods.IdK",
    "idk_dpo": "lightning_unlearn.methods.IdKDPO",
    "rmu": "lightning_unlearn.methods.RMU",
    "pmc": "lightning_unlearn.methods.PMC",
    "tru": "lightning_unlearn.methods.TRU",
    "asu": "lightning_unlearn.methods.ASU",
}
_TOKENIZER = {"class_path": "lightning_unlearn.models.smollm2_tokenizer"}


_SMOLLM2 = {"class_path": "lightning_unlearn.models.smollm2", "init_args": {"dtype": "float32"}}
_CAUSAL_LM = {"class_path": "lightning_unlearn.tasks.CausalLMTask"}


def _collator(max_length: int, alternative: str | None = None) -> dict[str, Any]:
    collator: dict[str, Any] = {"tokenizer": _TOKENIZER, "max_length": max_length}
    if alternative is not None:  # IdK / IdK-DPO: the refusal answers ride along in every forget batch
        collator["alternatives"] = {alternative: {"class_path": "lightning_unlearn.methods.IdkAnswers", "init_args": {"seed": 0}}}
    return collator


def _llm_data(b2: Any, train_on: str, batch_size: int, retain_batch_size: int | None = None, alternative: str | None = None) -> dict[str, Any]:
    scale = b2.SCALES["full"]
    collator = _collator(scale["max_length"], alternative)
    d = scale["data"]
    args = {
        "n_authors": d["n_authors"],
        "seed": 0,
        "forget_fraction": d["forget_fraction"],
        "holdout_fraction": d["holdout_fraction"],
        "facts_per_author": d["facts_per_author"],
        "n_perturbed": d["n_perturbed"],
        "collate_fn": {"class_path": "lightning_unlearn.tasks.QACollator", "init_args": collator},
        "batch_size": batch_size,
        "eval_batch_size": scale["eval"]["batch_size"],
        "train_on": train_on,
        "mode": "min_size",
    }
    if retain_batch_size is not None:
        args["retain_batch_size"] = retain_batch_size
    return {"class_path": "lightning_unlearn.datamodules.FictitiousAuthorsDataModule", "init_args": args}


def _adamw(lr: float, weight_decay: float) -> dict[str, Any]:
    return {"class_path": "torch.optim.AdamW", "init_args": {"lr": lr, "weight_decay": weight_decay}}


def build_llm() -> dict[str, dict[str, Any]]:
    """B2's chain: target and oracle fine-tunes of SmolLM2, then every LLM method from the target."""
    b2, bench = _benchmark("b2_llm"), LLM_BENCH
    train = b2.SCALES["full"]["train"]
    model, task = _SMOLLM2, _CAUSAL_LM
    configs: dict[str, dict[str, Any]] = {}
    for run, train_on in (("target", "all"), ("oracle", "retain")):
        trainer = _trainer(bench, run, train["epochs"], [_save(bench, run)]) | {"enable_checkpointing": False, "limit_val_batches": 0}
        configs[run] = {
            "seed_everything": 0,
            "trainer": trainer,
            "model": {
                "class_path": "lightning_unlearn.SupervisedModule",
                "init_args": {"model": model, "task": task, "optimizer": _adamw(train["lr"], train["weight_decay"])},
            },
            "data": _llm_data(b2, train_on, train["batch_size"]),
        }
    for name, class_path in LLM_METHOD_CLASSES.items():
        hp, _ = b2.resolve_hparams("full", name)
        configs[name] = _llm_method_config(
            bench,
            name,
            class_path,
            hp,
            lambda hp, alternative: _llm_data(b2, "forget_retain", hp["batch_size"], hp.get("retain_batch_size"), alternative),
            original=f"artifacts/{bench}/target.pt",
            oracle=f"artifacts/{bench}/oracle.pt",
        )
    return configs


def _llm_method_config(
    bench: str, name: str, class_path: str, hp: dict[str, Any], data: Any, original: str | None, oracle: str | None
) -> dict[str, Any]:
    """One LLM method's unlearning config; ``data(hp, alternative)`` builds its ``data`` section."""
    unknown = set(hp) - _HP_KEYS - {"weight_decay"}
    if unknown:
        raise ValueError(f"configs/generate.py cannot express {name}'s settings {hp} in a config yet.")
    method_args = dict(hp["method"])
    if "tokenizer" in inspect.signature(_resolve(class_path)).parameters:
        method_args["tokenizer"] = _TOKENIZER  # TRU writes its reasoning targets with the model's tokenizer
    alternative = getattr(_resolve(class_path)(**{k: v for k, v in method_args.items() if k != "tokenizer"}), "alternative", None)
    trainer = _trainer(bench, name, hp["epochs"], [_checkpoint(bench, name), _save(bench, name)])
    if hp.get("max_steps", -1) != -1:
        trainer["max_steps"] = hp["max_steps"]
    init_args: dict[str, Any] = {
        "model": _SMOLLM2,
        "method": {"class_path": class_path, "init_args": method_args},
        "task": _CAUSAL_LM,
        "optimizer": _adamw(hp["lr"], hp["weight_decay"]),
    }
    if original is not None:
        init_args["original"] = original
    if oracle is not None:
        init_args["oracle"] = oracle
    return {
        "seed_everything": 0,
        "trainer": trainer,
        "model": {"class_path": "lightning_unlearn.UnlearningModule", "init_args": init_args},
        "data": data(hp, alternative if isinstance(alternative, str) else None),
    }


# ---------------------------------------------------------------------------------------------------- B3 (entity)
ENTITY_BENCH = "einstein_smollm2"


def build_entity() -> dict[str, dict[str, Any]]:
    """B3's methods: unlearn Albert Einstein's Wikipedia article from SmolLM2 as released (no target, no oracle)."""
    b3 = _benchmark("b3_entity")

    def data(hp: dict[str, Any], alternative: str | None) -> dict[str, Any]:
        args = {
            "forget_entities": [b3.ENTITY],
            **b3.DATA,
            "collate_fn": {"class_path": "lightning_unlearn.tasks.QACollator", "init_args": _collator(b3.MAX_LENGTH, alternative)},
            "batch_size": hp["batch_size"],
            "retain_batch_size": hp["retain_batch_size"],
            "eval_batch_size": b3.EVAL["gen_batch_size"],
            "train_on": "forget_retain",
            "mode": "min_size",
            "seed": 0,
        }
        return {"class_path": "lightning_unlearn.datamodules.RealEntityDataModule", "init_args": args}

    classes = {**METHOD_CLASSES, **LLM_METHOD_CLASSES}
    return {
        name: _llm_method_config(ENTITY_BENCH, name, classes[name], b3.resolve_hparams(name), data, original=None, oracle=None)
        for name in b3.DEFAULT_METHODS
    }


def _resolve(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


HEADER = {
    "original": "Step 1: train the original model on all training data (forget + retain).",
    "retrain": "Step 2: the oracle -- retrain from scratch on the retain set only (exact unlearning).",
    "classwise/retrain": "Step 2 (class-wise): the oracle -- retrain from scratch without class 0 (exact unlearning).",
    f"{LLM_BENCH}/target": "Step 1: fine-tune SmolLM2 on every training author (forget + retain): the target.",
    f"{LLM_BENCH}/oracle": "Step 2: the oracle -- fine-tune SmolLM2 on the retain authors only.",
}


ALL_BENCHMARKS = [*BENCHMARKS, LLM_BENCH, ENTITY_BENCH]


def main() -> None:
    for bench in ALL_BENCHMARKS:
        out = ROOT / bench
        out.mkdir(exist_ok=True)
        source = {LLM_BENCH: "B2", ENTITY_BENCH: "B3"}.get(bench, "B1")
        for name, config in build(bench).items():
            (out / name).parent.mkdir(exist_ok=True)
            start = {LLM_BENCH: "target", ENTITY_BENCH: "pretrained SmolLM2"}.get(bench, "original")
            step = "Step 1 (the only step: no target to train, no oracle exists)" if bench == ENTITY_BENCH else "Step 3"
            default = f"{step}: unlearn the {start} with {name}; then `lightning-unlearn test` with --ckpt_path."
            header = HEADER.get(f"{bench}/{name}", HEADER.get(name, default))
            text = (
                f"# {bench} / {name} -- generated by configs/generate.py from benchmark {source}'s HPARAMS; edit those and re-run.\n"
                f"# {header}\n# lightning-unlearn fit --config configs/{bench}/{name}.yaml\n"
            )
            (out / f"{name}.yaml").write_text(text + yaml.safe_dump(config, sort_keys=False))
    print(f"wrote configs for {', '.join(ALL_BENCHMARKS)}")


if __name__ == "__main__":
    main()
