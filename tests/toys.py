"""The toy problem shared by the tests: Gaussian blobs, a tiny MLP, a quiet CPU Trainer and small helpers.

Import it as ``from toys import ...`` from any test file, top level or in a test folder: pytest puts
``tests/`` on ``sys.path`` (rootdir-relative imports), and ``ddp_spawn`` workers inherit that path, so
what they unpickle from the test modules imports this module too.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

NUM_CLASSES = 4
DIM = 8
HIDDEN = 32
FORGET_CLASS = 0


def blobs(
    n_per_class: int,
    seed: int,
    *,
    num_classes: int = NUM_CLASSES,
    dim: int = DIM,
    centers_seed: int = 1234,
    spread: float = 3,
    noise_per_class: bool = False,
    dataset: Callable[[torch.Tensor, torch.Tensor], Dataset] = TensorDataset,
) -> Any:
    """Well-separated Gaussian blobs, sorted by class: inputs ``[num_classes * n_per_class, dim]``, labels 0..num_classes-1.

    The centres are fixed (``centers_seed``); ``seed`` draws the unit-variance noise, in one draw or, with
    ``noise_per_class``, one draw per class in class order. ``dataset(inputs, targets)`` builds the result.
    """
    centers = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(centers_seed)) * spread
    targets = torch.arange(num_classes).repeat_interleave(n_per_class)
    noise_gen = torch.Generator().manual_seed(seed)
    if noise_per_class:
        noise = torch.cat([torch.randn(n_per_class, dim, generator=noise_gen) for _ in range(num_classes)])
    else:
        noise = torch.randn(len(targets), dim, generator=noise_gen)
    return dataset(centers[targets] + noise, targets)


def mlp(
    seed: int = 0,
    *,
    dim: int = DIM,
    hidden: int = HIDDEN,
    num_classes: int = NUM_CLASSES,
    named: bool = False,
    dropout: float = 0.0,
) -> nn.Module:
    """Linear-ReLU-Linear, initialised after ``torch.manual_seed(seed)``.

    ``named=True`` nests it as ``body`` (Linear-ReLU) and ``head`` (Linear), so masks can name layers. ``dropout > 0``
    puts a ``Dropout`` before the last layer (Linear-ReLU-Dropout-Linear: training then draws random numbers).
    """
    torch.manual_seed(seed)
    if dropout:
        return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))
    if named:
        body = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
        return nn.Sequential(OrderedDict(body=body, head=nn.Linear(hidden, num_classes)))
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def fit_plain(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 100, lr: float = 1e-2) -> nn.Module:
    """Full-batch Adam on the cross-entropy, outside Lightning; returns ``model``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def make_trainer(**kwargs: Any) -> pl.Trainer:
    """A quiet single-process CPU Trainer: no logger, progress bar, model summary or sanity check.

    ``kwargs`` override the defaults. Unless ``enable_checkpointing`` is given, it checkpoints only where
    the test passes its own ``ModelCheckpoint`` (never a default one in the cwd).
    """
    options: dict[str, Any] = dict(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0
    )
    options.update(kwargs)
    options.setdefault("enable_checkpointing", any(isinstance(c, ModelCheckpoint) for c in options.get("callbacks") or []))
    return pl.Trainer(**options)


def ddp_trainer(**kwargs: Any) -> pl.Trainer:
    """:func:`make_trainer` over two CPU processes (``ddp_spawn``, gloo)."""
    return make_trainer(**{"devices": 2, "strategy": "ddp_spawn", **kwargs})


@torch.no_grad()
def accuracy(model: nn.Module, data: Dataset) -> float:
    """Accuracy in percent of ``model`` (in eval mode, then restored) on all of ``data`` as one batch."""
    x, y = next(iter(DataLoader(data, batch_size=len(data))))  # type: ignore[arg-type]
    was_training = model.training
    model.eval()
    acc = (model(x).argmax(-1) == y).float().mean().item() * 100
    model.train(was_training)
    return acc


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class NetClassifier(pl.LightningModule):
    """A user's own classifier around ``net`` (cross-entropy, Adam at lr 1e-2): stands for an existing module that knows
    nothing about unlearning. Module level, so that ``ddp_spawn`` workers unpickle it."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def class_forget_data(n_per_class: int, train_seed: int, n_test: int, test_seed: int) -> dict[str, Any]:
    """Blobs with class ``FORGET_CLASS`` as the forget set: train/test, forget/retain subsets and pretrained MLP weights."""
    from torch.utils.data import Subset

    train, test = blobs(n_per_class, seed=train_seed), blobs(n_test, seed=test_seed)
    labels = train.tensors[1]
    return {
        "train": train,
        "test": test,
        "forget": Subset(train, torch.nonzero(labels == FORGET_CLASS).flatten().tolist()),
        "retain": Subset(train, torch.nonzero(labels != FORGET_CLASS).flatten().tolist()),
        "pretrained": fit_plain(mlp(), *train.tensors).state_dict(),
    }


def corrupt_weights_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """The four ways a weights file arrives broken, as ``name -> (path, regex of the problem the error names)``:
    random bytes, a ``torch.save`` file cut in half, an empty file and a text file."""
    folder.mkdir(parents=True, exist_ok=True)
    random_bytes = bytes(torch.randint(0, 256, (512,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).tolist())
    whole = folder / "whole.pt"
    torch.save(mlp().state_dict(), whole)
    data = whole.read_bytes()
    files = {
        "random": (b"\x13\x37" + random_bytes, r"is not a PyTorch or safetensors weights file.*first bytes are 13 37"),
        "truncated": (data[: len(data) // 2], r"looks like a zip archive \(PyTorch's format\) but is truncated or corrupted"),
        "empty": (b"", r"is empty \(0 bytes\)"),
        "text": (
            b"epoch 3: loss 0.12\nepoch 4: loss 0.10\n",
            r"is a text file, not a weights file \(it begins 'epoch 3: loss 0.12'\)",
        ),
    }
    out = {}
    for name, (content, match) in files.items():
        path = folder / f"{name}.pt"
        path.write_bytes(content)
        out[name] = (path, match)
    return out
