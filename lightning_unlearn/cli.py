"""``lightning-unlearn``: the LightningCLI front end.

    lightning-unlearn fit --config configs/fashion_mnist/salun.yaml
    lightning-unlearn test --config configs/fashion_mnist/salun.yaml --ckpt_path outputs/fashion_mnist/salun/checkpoints/last.ckpt
    lightning-unlearn fit --help
    lightning-unlearn fit --model.method.help SalUn      # every SalUn hyperparameter, typed and documented
    lightning-unlearn methods                             # the registered methods
    lightning-unlearn sweep configs/sweeps/digits_npo.yaml  # a W&B-format sweep (W&B service or local engine)
    lightning-unlearn report outputs/digits/salun         # (re)render the unlearning report of a run
    lightning-unlearn attack --config configs/digits/npo.yaml --weights artifacts/digits/npo.pt  # quantization + relearning

Models and datamodules are given by ``class_path``/``init_args`` (any LightningModule, e.g.
:class:`~lightning_unlearn.UnlearningModule` or :class:`~lightning_unlearn.SupervisedModule`;
any LightningDataModule, e.g. :class:`~lightning_unlearn.FashionMNISTDataModule`).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from lightning_unlearn.tracking import LoggerSaveConfigCallback

_DESCRIPTION = (
    "lightning-unlearn: machine unlearning with PyTorch Lightning. Besides fit/validate/test/predict: "
    "`lightning-unlearn methods` lists the registered methods, `lightning-unlearn sweep SWEEP.yaml` runs a "
    "hyperparameter sweep, `lightning-unlearn report RUN_DIR` renders a run's unlearning report, "
    "`lightning-unlearn attack --config C --weights W` attacks an unlearned model (quantization, relearning). "
    "`lightning-unlearn fit --model lightning_unlearn.UnlearningModule --model.method.help CLASS_PATH` shows "
    "one method's hyperparameters."
)


class UnlearnCLI(LightningCLI):
    """LightningCLI with subclass mode for models and data, and configs saved per run (overwrite on rerun)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("model_class", LightningModule)
        kwargs.setdefault("datamodule_class", LightningDataModule)
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("save_config_callback", LoggerSaveConfigCallback)
        kwargs.setdefault("auto_configure_optimizers", False)
        kwargs.setdefault("parser_kwargs", {"description": _DESCRIPTION})
        super().__init__(*args, **kwargs)


def _print_methods() -> None:
    from lightning_unlearn.methods import METHODS

    rows = [(name, f"{METHODS.get(name).__module__}.{METHODS.get(name).__qualname__}") for name in METHODS.names()]
    name_width = max(len(r[0]) for r in rows)
    path_width = max(len(r[1]) for r in rows)
    for name, path in rows:
        summary = (METHODS.get(name).__doc__ or "").strip().splitlines()[0]
        print(f"{name:<{name_width}}  {path:<{path_width}}  {summary}")


#: Subcommands outside LightningCLI: name -> "module:function" taking the remaining argv.
_EXTRA_COMMANDS = {
    "sweep": "lightning_unlearn.sweep:main",
    "report": "lightning_unlearn.report.cli:main",
    "attack": "lightning_unlearn.attacks.cli:main",
    "configs": "lightning_unlearn.configs:main",
}


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["methods"]:
        _print_methods()
        return
    if args[:1] and args[0] in _EXTRA_COMMANDS:
        module_name, function = _EXTRA_COMMANDS[args[0]].split(":")
        getattr(importlib.import_module(module_name), function)(args[1:])
        return
    UnlearnCLI(args=argv)


if __name__ == "__main__":
    main()
