"""Model weights: loading and saving them safely (``weights_only=True``; the original is never overwritten),
and the frozen copies of a model that methods, reports and attacks compare against (:func:`frozen_copy`,
:func:`reference_model`).

This module sits at the bottom of the package's imports: it imports only ``torch`` and
:mod:`lightning_unlearn.peft` (which imports nothing of the package but ``_errors``), so anything may import it.
"""

from __future__ import annotations

import copy
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightning_unlearn.peft import adapter_disabled_reference

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive
_PICKLE_PROTOCOL = 0x80  # the legacy format (`_use_new_zipfile_serialization=False`) starts with a pickle
_SAVE_HINT = "Save the weights with `torch.save(model.state_dict(), path)` (or as safetensors)."


def _is_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file starts with the little-endian byte length of its JSON header, then ``{``."""
    if len(head) < 9:
        return False
    header = int.from_bytes(head[:8], "little")
    return 2 <= header <= size - 8 and head[8:9] == b"{"


def _text_preview(head: bytes) -> str | None:
    """The first line of ``head`` if it is text (UTF-8 without control characters), else ``None``."""
    for cut in range(4):  # a multi-byte character cut by the 4 KiB read
        try:
            text = head[: len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        return None
    if any(ord(c) < 32 and c not in "\t\n\r\f" for c in text):
        return None
    line = text.strip().splitlines()[0] if text.strip() else text
    return line[:60] + ("..." if len(line) > 60 else "")


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    sentence = lines[0].split(". ")[0].rstrip(".")[:160] if lines else ""
    return f"{type(err).__name__}: {sentence}" if sentence else type(err).__name__


def _load_safetensors(path: Path, where: str) -> dict:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise ValueError(f"{where} is a safetensors file; install `safetensors` (`pip install safetensors`) to load it.") from None
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{where} is a safetensors file but is truncated or corrupted ({_first_line(err)}). {_SAVE_HINT}") from None


def read_weights_file(path: str | os.PathLike, *, argument: str = "original", mmap: bool = False) -> Any:
    """Read a weights file written by ``torch.save`` (``weights_only=True``: pickled code is never run) or a
    safetensors file, on the CPU. Every way a file can be wrong is named, with the path and ``argument`` (the
    argument the path came from): missing, empty, a text file, truncated or corrupted, not a weights file at all, or
    holding pickled objects other than tensors. What the file holds is left to the caller. ``mmap`` maps the tensors
    of a ``torch.save`` zip file instead of reading them (for a look at a large file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`{argument}` weights file {str(path)!r} does not exist.")
    where = f"`{argument}` file {str(path)!r}"
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{where} is empty (0 bytes): it was not written completely, or not at all. {_SAVE_HINT}")
    with path.open("rb") as f:
        head = f.read(4096)
    if _is_safetensors(head, size):
        return _load_safetensors(path, where)
    is_torch = head.startswith(_ZIP_MAGIC) or head[0] == _PICKLE_PROTOCOL
    preview = None if is_torch else _text_preview(head)
    if preview is not None:
        raise ValueError(f"{where} is a text file, not a weights file (it begins {preview!r}). {_SAVE_HINT}")
    if not is_torch:
        raise ValueError(
            f"{where} is not a PyTorch or safetensors weights file: it is neither a zip archive (`torch.save`), a "
            f"legacy pickle nor safetensors (its first bytes are {head[:8].hex(' ')}; {size} bytes). {_SAVE_HINT}"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and head.startswith(_ZIP_MAGIC))
    except pickle.UnpicklingError as err:
        reason = next((line.strip() for line in str(err).splitlines() if "WeightsUnpickler error" in line), "")
        detail = reason.split("WeightsUnpickler error:", 1)[-1].strip()
        if not detail or detail.startswith("Unsupported operand"):  # garbage bytes, not a refused object
            raise ValueError(
                f"{where} is truncated or corrupted: its pickled data is not valid ({detail or 'unreadable'}; "
                f"{size} bytes). {_SAVE_HINT}"
            ) from None
        raise ValueError(
            f"{where} holds pickled objects that are not plain tensors, which `torch.load(weights_only=True)` refuses "
            f"to load ({reason or type(err).__name__}). Save the weights with `torch.save(model.state_dict(), path)`."
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, IndexError, TypeError) as err:
        kind = "a zip archive (PyTorch's format)" if head.startswith(_ZIP_MAGIC) else "a legacy PyTorch file"
        raise ValueError(
            f"{where} looks like {kind} but is truncated or corrupted ({size} bytes; {_first_line(err)}). It was "
            f"probably not written or copied completely. {_SAVE_HINT}"
        ) from None


def load_weights(model: nn.Module, path: str | os.PathLike, *, argument: str = "original", prefix: str = "model.") -> None:
    """Load a state dict saved with ``torch.save(model.state_dict())`` (or as safetensors) or a Lightning checkpoint
    (keys under ``prefix`` in ``"state_dict"``) into ``model``. Untrusted files are safe: pickled code is refused
    (``weights_only=True``); an empty, truncated, corrupted or text file is named as such
    (:func:`read_weights_file`)."""
    state = state_dict_in(read_weights_file(path, argument=argument), prefix)
    path = Path(path)
    if not isinstance(state, dict):
        raise ValueError(f"`{argument}` file {str(path)!r} holds a {type(state).__name__}, not a state dict.")
    # Check everything before loading: ``load_state_dict`` copies the matching tensors before it
    # reports a mismatch, which would leave ``model`` half overwritten.
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: {tuple(state[k].shape)} in the file vs {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if k in state and isinstance(v, torch.Tensor) and isinstance(state[k], torch.Tensor) and state[k].shape != v.shape
    ]
    problems = [
        f"{len(items)} {kind} (e.g. {items[:3]})"
        for kind, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
        if items
    ]
    if problems:
        raise ValueError(f"`{argument}` file {str(path)!r} does not match the model: {'; '.join(problems)}.")
    model.load_state_dict(state)


def state_dict_in(state: Any, prefix: str = "model.") -> Any:
    """The network's state dict in what a weights file holds: the file's dict itself, or a Lightning checkpoint's
    ``"state_dict"`` with the ``prefix`` of the network's keys removed (anything else is returned unchanged)."""
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        inner = state["state_dict"]
        if any(k.startswith(prefix) for k in inner):
            return {k[len(prefix) :]: v for k, v in inner.items() if k.startswith(prefix)}
        return inner
    return state


def holds_weights_of(path: str | os.PathLike, model: nn.Module) -> bool:
    """Whether the weights file at ``path`` holds exactly ``model``'s current state dict (same keys, dtypes, shapes
    and values; a Lightning checkpoint's ``model.`` keys count). The file is memory-mapped where possible and the
    comparison stops at the first difference, so a file of another model costs little."""
    state = state_dict_in(read_weights_file(path, argument="path", mmap=True))
    expected = model.state_dict()
    if not isinstance(state, dict) or state.keys() != expected.keys():
        return False
    for key, value in expected.items():
        other = state[key]
        if isinstance(value, torch.Tensor) != isinstance(other, torch.Tensor):
            return False
        if not isinstance(value, torch.Tensor):
            if value != other:
                return False
        elif value.dtype != other.dtype or value.shape != other.shape or not torch.equal(value.detach().cpu(), other):
            return False
    return True


def save_weights(model: nn.Module, path: str | os.PathLike, *, protected: tuple[str | os.PathLike | None, ...] = ()) -> Path:
    """Save ``model.state_dict()`` to ``path`` atomically, refusing to overwrite any ``protected`` file."""
    path = Path(path)
    check_not_protected(path, protected)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, path)
    return path


def check_not_protected(path: str | os.PathLike, protected: tuple[str | os.PathLike | None, ...]) -> None:
    """Raise if ``path`` names the same file as any ``protected`` path (``None`` entries are skipped)."""
    for other in protected:
        if other is not None and Path(path).resolve() == Path(other).resolve():
            raise ValueError(f"Refusing to overwrite the original model at {str(path)!r}; choose another output path.")


def network_of(module: nn.Module) -> nn.Module:
    """The network that is unlearned and saved: ``module.model`` when it is a module (``UnlearningModule``,
    ``SupervisedModule`` and most users' LightningModules), else ``module`` itself."""
    inner = getattr(module, "model", None)
    return inner if isinstance(inner, nn.Module) else module


def copy_with_weights(network: nn.Module, path: str | os.PathLike, argument: str) -> nn.Module:
    """A frozen CPU copy of ``network`` holding the weights saved at ``path`` (``weights_only=True``);
    ``argument`` names the argument the path came from, for errors."""
    model = frozen_copy(network).cpu()
    load_weights(model, path, argument=argument)
    return model


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy in eval mode with gradients off; a LightningModule's Trainer is not copied."""
    trainer = getattr(module, "_trainer", None)
    if trainer is not None:
        module._trainer = None  # type: ignore[assignment]
    try:
        clone = copy.deepcopy(module)
    finally:
        if trainer is not None:
            module._trainer = trainer  # type: ignore[assignment]
    return clone.eval().requires_grad_(False)


def reference_model(model: nn.Module) -> nn.Module:
    """The frozen reference θ₀ of ``model``: a :func:`frozen_copy`, or for a ``peft.PeftModel`` whose adapter is
    still the identity, the same network with its adapters disabled (no second copy of the weights; see
    :class:`~lightning_unlearn.peft.AdapterDisabledReference`)."""
    shared = adapter_disabled_reference(model)
    return shared if shared is not None else frozen_copy(model)


#: One active dropout of a model: (module name, module, attribute, probability).
DropoutSetting = tuple[str, nn.Module, str, float]


def dropout_settings(model: nn.Module) -> list[DropoutSetting]:
    """Every active dropout of ``model``: each dropout layer's ``p`` and each float attribute named ``*drop*`` that is
    above 0 (the probabilities ``transformers`` layers pass to ``F.dropout`` or to the attention kernel themselves,
    e.g. OPT's ``dropout``, Llama's ``attention_dropout``, OPT's ``layerdrop``)."""
    found: list[DropoutSetting] = []
    for name, module in model.named_modules():
        for attribute, value in vars(module).items():
            if isinstance(value, float) and 0 < value <= 1 and "drop" in attribute.lower():
                found.append((name, module, attribute, value))
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0:
            found.append((name, module, "p", float(module.p)))
    return found


def disable_dropout(model: nn.Module) -> list[DropoutSetting]:
    """Set every dropout probability of ``model`` (:func:`dropout_settings`) to 0, leaving the train/eval flags alone;
    returns what was changed, for :func:`restore_dropout`.

    Only the probabilities are zeroed, not the modules put in eval mode: batch norms keep using batch statistics
    and ``transformers``' gradient checkpointing (active only in training mode) keeps working, with the same (no)
    dropout in its recomputation.
    """
    settings = dropout_settings(model)
    for _, module, attribute, _ in settings:
        setattr(module, attribute, 0.0)
    return settings


def restore_dropout(settings: list[DropoutSetting]) -> None:
    """Put back the probabilities :func:`disable_dropout` zeroed."""
    for _, module, attribute, value in settings:
        setattr(module, attribute, value)


@contextmanager
def dropout_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block every dropout of ``model`` has probability 0 (:func:`disable_dropout`); restored on exit."""
    settings = disable_dropout(model)
    try:
        yield model
    finally:
        restore_dropout(settings)
