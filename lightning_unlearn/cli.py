"""``lightning-unlearn``: the LightningCLI front end.

    lightning-unlearn fit --config configs/fashion_mnist/salun.yaml
    lightning-unlearn test --config configs/fashion_mnist/salun.yaml --ckpt_path outputs/fashion_mnist/salun/checkpoints/last.ckpt
    lightning-unlearn test --config configs/authors_smollm2/graddiff.yaml --ckpt_path outputs/authors_smollm2/graddiff/checkpoints/last.ckpt
    lightning-unlearn fit --help
    lightning-unlearn fit --model.method.help SalUn      # every SalUn hyperparameter, typed and documented
    lightning-unlearn methods                             # the registered methods
    lightning-unlearn sweep configs/sweeps/digits_npo.yaml  # a W&B-format sweep (W&B service or local engine)
    lightning-unlearn report outputs/digits/salun         # (re)render the unlearning report of a run
    lightning-unlearn attack --config configs/digits/npo.yaml --weights artifacts/digits/npo.pt  # quantization + relearning
    lightning-unlearn verify-request --report outputs/digits/npo/report --request forget.txt  # request vs report fingerprint
    lightning-unlearn chat --editor stamp               # chat with SmolLM2; "forget what you know about X" edits it
    lightning-unlearn federated --config federated_fmnist/quick --leaving 3  # a client leaves a Flower federation

Models and datamodules are given by ``class_path``/``init_args`` (any LightningModule, e.g.
:class:`~lightning_unlearn.UnlearningModule` or :class:`~lightning_unlearn.SupervisedModule`;
any LightningDataModule, e.g. :class:`~lightning_unlearn.FashionMNISTDataModule`).

``test`` (and ``validate``) of a causal-LM ``UnlearningModule`` on fictitious-author data (the
``configs/authors_smollm2`` chain) also computes and prints benchmark B2's TOFU-style row (TOFU, Maini et al.,
arXiv 2401.06121): the CLI adds an :class:`~lightning_unlearn.callbacks.LLMEvaluation` callback with B2's
settings when the config has none, whose general-knowledge probes are those the config's model, built afresh
(before ``original`` is loaded: SmolLM2 as released), answers correctly.
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
    "`lightning-unlearn methods` lists the registered methods, `lightning-unlearn configs` the shipped configs "
    "(`fit --config digits/npo` runs one by name), `lightning-unlearn sweep SWEEP.yaml` runs a "
    "hyperparameter sweep, `lightning-unlearn report RUN_DIR` renders a run's unlearning report, "
    "`lightning-unlearn attack --config C --weights W` attacks an unlearned model (quantization, relearning), "
    "`lightning-unlearn verify-request --report R --request FILE` checks a deletion request against a report's keyed "
    "fingerprint. `lightning-unlearn chat` chats with a causal LM that forgets what you ask it to (STAMP). "
    "`lightning-unlearn federated --config federated_fmnist/quick` runs a client-leaving request on a Flower federation. "
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

    def before_test(self) -> None:
        _add_llm_evaluation(self)

    def before_validate(self) -> None:
        _add_llm_evaluation(self)


def _is_authors_llm_run(model: Any, datamodule: Any) -> bool:
    """A causal-LM ``UnlearningModule`` on TOFU-style QA data (``FictitiousAuthorsDataModule``)."""
    from lightning_unlearn.datamodules.authors import FictitiousAuthorsDataModule
    from lightning_unlearn.module import UnlearningModule
    from lightning_unlearn.tasks.causal_lm import QACollator

    return (
        isinstance(model, UnlearningModule)
        and getattr(model.task, "kind", None) == "causal_lm"
        and isinstance(datamodule, FictitiousAuthorsDataModule)
        and isinstance(datamodule.collate_fn, QACollator)
    )


def _fresh_network(cli: LightningCLI) -> Any:
    """The config's ``model.init_args.model`` instantiated again: the network before ``original`` is loaded."""
    from jsonargparse import ArgumentParser
    from torch import nn

    config = cli.config[cli.subcommand] if cli.subcommand else cli.config
    spec = config["model"]["init_args"]["model"]
    spec = spec.as_dict() if hasattr(spec, "as_dict") else spec
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--network", type=nn.Module)
    return parser.instantiate_classes(parser.parse_object({"network": spec})).network


def _add_llm_evaluation(cli: LightningCLI) -> None:
    """Add B2's :class:`LLMEvaluation` to ``test``/``validate`` of an authors LLM config that has none."""
    from lightning_unlearn.callbacks.llm_evaluation import LLMEvaluation

    if any(isinstance(cb, LLMEvaluation) for cb in cli.trainer.callbacks):
        return
    if not _is_authors_llm_run(cli.model, cli.datamodule):
        return
    name = str(getattr(cli.model.method, "name", type(cli.model.method).__name__))
    if cli.config[cli.subcommand].get("ckpt_path") is None:
        name = "original" if cli.model.original else "model as built"  # no checkpoint: nothing unlearned yet
    cli.trainer.callbacks.append(LLMEvaluation(known_probes_of=_fresh_network(cli), name=name))


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
    "verify-request": "lightning_unlearn.privacy:main",
    "chat": "lightning_unlearn.interactive.cli:main",
    "federated": "lightning_unlearn.federated.cli:main",
}


def _resolve_shipped_configs(args: list[str]) -> list[str]:
    """``--config NAME`` (or ``-c``/``--config=``) with the name of a shipped config (``digits/npo``) instead of
    a file path becomes that config's path, so an installed wheel runs ``fit --config digits/npo`` as it is."""
    from pathlib import Path

    from lightning_unlearn.configs import config_path

    out = list(args)
    for i, arg in enumerate(out):
        if arg in ("--config", "-c") and i + 1 < len(out):
            target, setter = out[i + 1], lambda v, i=i: out.__setitem__(i + 1, v)
        elif arg.startswith("--config="):
            target, setter = arg.split("=", 1)[1], lambda v, i=i: out.__setitem__(i, f"--config={v}")
        else:
            continue
        if target and not Path(target).expanduser().exists() and not target.lstrip().startswith("{"):
            setter(str(config_path(target)))  # a clear error listing close matches when it is neither
    return out


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
    resolved = _resolve_shipped_configs(args)
    if argv is None:  # LightningCLI reads sys.argv itself (and warns when given both)
        sys.argv[1:] = resolved
        UnlearnCLI()
    else:
        UnlearnCLI(args=resolved)


if __name__ == "__main__":
    main()
