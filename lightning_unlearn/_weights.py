"""Loading and saving model weights safely (``weights_only=True``; the original is never overwritten)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


def load_weights(model: nn.Module, path: str | os.PathLike, *, argument: str = "original", prefix: str = "model.") -> None:
    """Load a state dict saved with ``torch.save(model.state_dict())`` or a Lightning checkpoint
    (keys under ``prefix`` in ``"state_dict"``) into ``model``. Untrusted files are safe: pickled
    code is refused (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`{argument}` weights file {str(path)!r} does not exist.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        inner = state["state_dict"]
        if any(k.startswith(prefix) for k in inner):
            state = {k[len(prefix):]: v for k, v in inner.items() if k.startswith(prefix)}
        else:
            state = inner
    if not isinstance(state, dict):
        raise ValueError(f"`{argument}` file {str(path)!r} holds a {type(state).__name__}, not a state dict.")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"`{argument}` file {str(path)!r} does not match the model: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}) and {len(unexpected)} unexpected keys (e.g. {unexpected[:3]})."
        )


def save_weights(model: nn.Module, path: str | os.PathLike, *, protected: tuple[str | os.PathLike | None, ...] = ()) -> Path:
    """Save ``model.state_dict()`` to ``path`` atomically, refusing to overwrite any ``protected`` file."""
    path = Path(path)
    for other in protected:
        if other is not None and path.resolve() == Path(other).resolve():
            raise ValueError(f"Refusing to overwrite the original model at {str(path)!r}; choose another output path.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, path)
    return path
