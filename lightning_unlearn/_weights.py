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

import torch
from torch import nn

from lightning_unlearn.peft import adapter_disabled_reference


def load_weights(model: nn.Module, path: str | os.PathLike, *, argument: str = "original", prefix: str = "model.") -> None:
    """Load a state dict saved with ``torch.save(model.state_dict())`` or a Lightning checkpoint
    (keys under ``prefix`` in ``"state_dict"``) into ``model``. Untrusted files are safe: pickled
    code is refused (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`{argument}` weights file {str(path)!r} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = next((line.strip() for line in str(err).splitlines() if "WeightsUnpickler error" in line), "")
        raise ValueError(
            f"`{argument}` file {str(path)!r} holds pickled objects that are not plain tensors, which "
            f"`torch.load(weights_only=True)` refuses to load ({reason or type(err).__name__}). Save the weights "
            "with `torch.save(model.state_dict(), path)`."
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        inner = state["state_dict"]
        if any(k.startswith(prefix) for k in inner):
            state = {k[len(prefix):]: v for k, v in inner.items() if k.startswith(prefix)}
        else:
            state = inner
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
