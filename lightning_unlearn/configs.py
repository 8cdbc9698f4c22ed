"""The shipped LightningCLI configs: list, locate and load them, from a checkout or an installed wheel.

The repository's ``configs/`` folder is installed with the package (``lightning_unlearn/shipped_configs``;
in a checkout that is a link to ``configs/``), so a ``pip install``-ed user has the same files::

    lightning-unlearn configs                      # every shipped config, by name
    lightning-unlearn configs list digits          # those under configs/digits/
    lightning-unlearn configs path digits/npo      # the file's absolute path
    lightning-unlearn configs show digits/npo      # its content
    lightning-unlearn fit --config "$(lightning-unlearn configs path digits/original)"

A config's *name* is its path under ``configs/`` without ``.yaml``: ``digits/npo``,
``fashion_mnist/classwise/salun``, ``sweeps/digits_npo_grid``. The tuned settings of benchmark B1 live in
these files (the benchmark scripts read them); class paths name the registered methods
(:data:`lightning_unlearn.methods.METHODS`).
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_DIR", "benchmarks", "config_path", "instantiate", "list_configs", "load_config", "main"]

#: Where the shipped configs are: the installed copy, or in a checkout the link to the repository's ``configs/``.
CONFIG_DIR = Path(__file__).resolve().parent / "shipped_configs"


def _root() -> Path:
    if not CONFIG_DIR.is_dir():
        raise FileNotFoundError(
            f"The shipped configs are missing: {CONFIG_DIR} does not exist. Reinstall lightning-unlearn, or in a "
            "checkout restore the link `lightning_unlearn/shipped_configs -> ../configs`."
        )
    return CONFIG_DIR


def benchmarks() -> list[str]:
    """The top-level folders of the shipped configs (``digits``, ``fashion_mnist``, ``sweeps``, ...)."""
    return sorted(p.name for p in _root().iterdir() if p.is_dir() and any(p.rglob("*.yaml")))


def list_configs(prefix: str | None = None) -> list[str]:
    """Names of every shipped config (sorted), or of those under the folder ``prefix`` (e.g. ``"digits"``,
    ``"digits/classwise"``)."""
    root = _root()
    names = sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))
    if prefix is None:
        return names
    prefix = prefix.strip("/")
    selected = [n for n in names if n.startswith(prefix + "/")]
    if not selected:
        folders = sorted({n.rsplit("/", 1)[0] for n in names})
        raise ValueError(f"`prefix` should be one of the config folders {folders}, got {prefix!r}.")
    return selected


def config_path(name: str) -> Path:
    """The file of the shipped config ``name`` (``"digits/npo"``, ``.yaml`` optional), or ``name`` itself when it
    is the path of an existing file."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` should be a config name such as 'digits/npo' or a path to a YAML file, got {name!r}.")
    as_path = Path(name).expanduser()
    if as_path.is_file():
        return as_path.resolve()
    key = name.removesuffix(".yaml").removeprefix("configs/").strip("/")
    path = _root() / f"{key}.yaml"
    if path.is_file():
        return path.resolve()
    names = list_configs()
    close = difflib.get_close_matches(key, names, n=5)
    hint = f" Close matches: {close}." if close else f" Folders: {benchmarks()}."
    raise ValueError(
        f"`name` should be a shipped config (`lightning-unlearn configs` lists all {len(names)}) or the path of a "
        f"YAML file, got {name!r}.{hint}"
    )


def load_config(name: str) -> dict[str, Any]:
    """The parsed YAML of the shipped config ``name`` (or of the file at that path)."""
    import yaml

    config = yaml.safe_load(config_path(name).read_text())
    if not isinstance(config, dict):
        raise ValueError(f"The config {name!r} ({config_path(name)}) should hold a mapping, got {type(config).__name__}.")
    return config


def resolve_class(class_path: str, search: tuple[str, ...] = ()) -> Any:
    """The object a config's ``class_path`` names: ``"package.module.Name"``, or a bare ``"Name"`` looked up in the
    ``search`` modules in order (as LightningCLI accepts ``ModelCheckpoint`` for a callback). Raises ``ValueError``
    naming the class path when nothing importable matches."""
    import importlib

    module_name, _, name = class_path.rpartition(".") if isinstance(class_path, str) else ("", "", "")
    modules = (module_name,) if module_name else search
    if not name or not modules:
        raise ValueError(f"`class_path` should be a dotted path such as 'lightning_unlearn.methods.NPO', got {class_path!r}.")
    errors = []
    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as err:
            errors.append(str(err))
    raise ValueError(f"`class_path` {class_path!r} does not name an importable class: {'; '.join(errors)}")


def instantiate(spec: dict[str, Any], **overrides: Any) -> Any:
    """The object a config's ``{"class_path": "package.module.Name", "init_args": {...}}`` names, built with its
    ``init_args`` updated by ``overrides`` (e.g. a run's ``seed``; the spec itself is not changed). The
    ``init_args`` are passed as they are: nested class specs are not built."""
    class_path = spec.get("class_path") if isinstance(spec, dict) else None
    if not isinstance(class_path, str) or "." not in class_path:
        raise ValueError(f"`spec` should be a dict with a dotted `class_path` such as 'lightning_unlearn.methods.NPO', got {spec!r}.")
    try:
        factory = resolve_class(class_path)
    except ValueError as err:
        raise ValueError(f"`spec`'s {err}") from None
    return factory(**{**(spec.get("init_args") or {}), **overrides})


def build_nested(value: Any) -> Any:
    """``value`` with every ``{"class_path": ..., "init_args": {...}}`` inside it built, innermost first (as
    LightningCLI builds a nested argument such as TRU's ``reasoner``); other dicts and lists are walked, the rest
    returned as is. Used by the benchmarks, which read a method's ``init_args`` from its config."""
    if isinstance(value, dict):
        built = {k: build_nested(v) for k, v in value.items()}
        if isinstance(built.get("class_path"), str) and set(built) <= {"class_path", "init_args"}:
            return instantiate(built)
        return built
    if isinstance(value, list):
        return [build_nested(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> None:
    """``lightning-unlearn configs [list [FOLDER] | path NAME | show NAME]``."""
    parser = argparse.ArgumentParser(
        prog="lightning-unlearn configs",
        description="The configs shipped with lightning-unlearn. Run one with "
        '`lightning-unlearn fit --config "$(lightning-unlearn configs path digits/original)"`; '
        "output paths in the configs (artifacts/, outputs/) are relative to the working directory.",
    )
    commands = parser.add_subparsers(dest="command")
    listing = commands.add_parser("list", help="list config names (the default command)")
    listing.add_argument(
        "folder", nargs="?", default=None, help="only the configs under this folder, e.g. digits or digits/classwise"
    )
    path = commands.add_parser("path", help="print the absolute path of a config")
    path.add_argument("name", help="a config name, e.g. digits/npo")
    show = commands.add_parser("show", help="print a config's YAML")
    show.add_argument("name", help="a config name, e.g. digits/npo")
    args = parser.parse_args(argv)
    try:
        if args.command == "path":
            print(config_path(args.name))
        elif args.command == "show":
            print(config_path(args.name).read_text(), end="")
        else:
            folder = getattr(args, "folder", None)
            print(f"# {_root()}")
            for name in list_configs(folder):
                print(name)
    except (ValueError, TypeError, FileNotFoundError) as err:
        parser.exit(2, f"lightning-unlearn configs: error: {err}\n")
