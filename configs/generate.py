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
"""

from __future__ import annotations

import copy
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
    },
    "digits": {
        "data": {"class_path": "lightning_unlearn.DigitsDataModule", "init_args": {}},
        "model": {"class_path": "lightning_unlearn.models.SmallCNN", "init_args": {"image_size": 8, "width": 16, "hidden": 64}},
        "batch_size": 32,
        "train_epochs": 30,
        "eval": {},
    },
}

#: Per method: init args, optimizer lr, epochs and pairing mode. Kept in sync with benchmarks/b1_classification.py.
METHOD_SETTINGS: dict[str, dict[str, Any]] = {
    "ft": {"class_path": "lightning_unlearn.methods.FineTune", "init_args": {}, "lr": 1e-3, "epochs": 1},
    "ga": {"class_path": "lightning_unlearn.methods.GradientAscent", "init_args": {}, "lr": 1e-4, "epochs": 1},
    "graddiff": {"class_path": "lightning_unlearn.methods.GradDiff", "init_args": {}, "lr": 1e-4, "epochs": 1},
    "rl": {"class_path": "lightning_unlearn.methods.RandomLabel", "init_args": {}, "lr": 1e-4, "epochs": 1},
    "npo": {"class_path": "lightning_unlearn.methods.NPO", "init_args": {"beta": 0.1}, "lr": 1e-4, "epochs": 1},
    "scrub": {"class_path": "lightning_unlearn.methods.SCRUB", "init_args": {"max_epochs": 1}, "lr": 1e-4, "epochs": 1},
    "salun": {"class_path": "lightning_unlearn.methods.SalUn", "init_args": {"threshold": 0.5}, "lr": 1e-4, "epochs": 1},
    "l1_sparse": {"class_path": "lightning_unlearn.methods.L1Sparse", "init_args": {"l1_weight": 5e-4}, "lr": 1e-3, "epochs": 1},
}


def _trainer(bench: str, run: str, epochs: int, callbacks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "accelerator": "cpu",
        "max_epochs": epochs,
        "default_root_dir": f"outputs/{bench}/{run}",
        # W&B first (online when you have W&B configured, offline otherwise; LightningCLI saves config.yaml
        # in the first logger's folder), plus plain CSV metrics.
        "logger": [
            {
                "class_path": "lightning_unlearn.tracking.UnlearnWandbLogger",
                "init_args": {"project": "lightning-unlearn", "name": run, "group": bench, "save_dir": f"outputs/{bench}/{run}", "mode": "auto"},
            },
            {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": f"outputs/{bench}", "name": run}},
        ],
        "callbacks": callbacks,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 10,
    }


def _data(spec: dict[str, Any], train_on: str, mode: str = "min_size") -> dict[str, Any]:
    data = copy.deepcopy(spec["data"])
    data["init_args"].update(
        {"forget_fraction": 0.1, "train_on": train_on, "batch_size": spec["batch_size"], "mode": mode, "seed": 0, **spec["eval"]}
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
    configs["retrain"] = {
        "seed_everything": 0,
        "trainer": _trainer(bench, "retrain", epochs, [_checkpoint(bench, "retrain"), _save(bench, "retrain")])
        | {"check_val_every_n_epoch": epochs},
        "model": {
            "class_path": "lightning_unlearn.UnlearningModule",
            "init_args": {
                "model": spec["model"],
                "method": {"class_path": "lightning_unlearn.methods.Retrain", "init_args": {"seed": 0}},
                "optimizer": _optimizer(1e-3),
            },
        },
        "data": _data(spec, "forget_retain", mode="max_size_cycle"),
    }
    for name, setting in METHOD_SETTINGS.items():
        configs[name] = {
            "seed_everything": 0,
            "trainer": _trainer(bench, name, setting["epochs"], [_checkpoint(bench, name), _save(bench, name), _report(bench, name)]),
            "model": {
                "class_path": "lightning_unlearn.UnlearningModule",
                "init_args": {
                    "model": spec["model"],
                    "method": {"class_path": setting["class_path"], "init_args": dict(setting["init_args"])},
                    "optimizer": _optimizer(setting["lr"]),
                    "original": f"artifacts/{bench}/original.pt",
                    "oracle": f"artifacts/{bench}/retrain.pt",
                },
            },
            "data": _data(spec, "forget_retain", mode=setting.get("mode", "min_size")),
        }
    return configs


HEADER = {
    "original": "Step 1: train the original model on all training data (forget + retain).",
    "retrain": "Step 2: the oracle -- retrain from scratch on the retain set only (exact unlearning).",
}


def main() -> None:
    for bench in BENCHMARKS:
        out = ROOT / bench
        out.mkdir(exist_ok=True)
        for name, config in build(bench).items():
            header = HEADER.get(name, f"Step 3: unlearn the original with {name}; then `lightning-unlearn test` with --ckpt_path.")
            text = (
                f"# {bench} / {name} -- generated by configs/generate.py; edit METHOD_SETTINGS there and re-run.\n"
                f"# {header}\n# lightning-unlearn fit --config configs/{bench}/{name}.yaml\n"
            )
            (out / f"{name}.yaml").write_text(text + yaml.safe_dump(config, sort_keys=False))
    print(f"wrote configs for {', '.join(BENCHMARKS)}")


if __name__ == "__main__":
    main()
