"""A toy unlearning problem shared by the method tests: 4-class Gaussian blobs and a small MLP."""

from __future__ import annotations

import functools
from typing import Any

import torch
import toys
from torch import nn

from lightning_unlearn.datamodules import LabeledTensorDataset
from lightning_unlearn.methods import StepContext, UnlearningMethod
from lightning_unlearn.tasks import ClassificationTask

PER_CLASS = 60


def blobs(per_class: int = PER_CLASS, seed: int = 0) -> LabeledTensorDataset:
    """Well separated Gaussian blobs: inputs ``[4 * per_class, 8]``, labels 0..3 (sorted by class; noise drawn class by class)."""
    return toys.blobs(per_class, seed, noise_per_class=True, dataset=LabeledTensorDataset)


def mlp(seed: int = 0) -> nn.Module:
    """``body`` (Linear-ReLU) and ``head`` (Linear), so masks can name layers."""
    return toys.mlp(seed, named=True)


@functools.cache
def _pretrained_state() -> dict[str, torch.Tensor]:
    x, y = blobs().tensors
    model = toys.fit_plain(mlp(), x, y, steps=150)
    with torch.no_grad():
        assert (model(x).argmax(-1) == y).float().mean() == 1.0, "the toy model should fit the blobs"
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def pretrained() -> nn.Module:
    """A fresh MLP holding the weights of one trained to 100% accuracy on :func:`blobs`."""
    model = mlp()
    model.load_state_dict(_pretrained_state())
    return model


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(-1) == y).float().mean())


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def batch(n: int = 8, seed: int = 0, label: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random samples of :func:`blobs` (optionally of one class), as an ``(x, y)`` batch."""
    x, y = blobs().tensors
    if label is not None:
        x, y = x[y == label], y[y == label]
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


def perturbed(model: nn.Module, scale: float = 0.05, seed: int = 1) -> nn.Module:
    """Move every weight a little, so that a model and its frozen reference differ."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def context(
    method: UnlearningMethod,
    model: nn.Module,
    forget: Any = None,
    retain: Any = None,
    **kwargs: Any,
) -> StepContext:
    """A StepContext for ``method`` on ``model`` (with the method's reference, if it built one)."""
    return StepContext(model=model, task=ClassificationTask(), forget=forget, retain=retain, reference=method.reference, **kwargs)


def setup(method: UnlearningMethod, model: nn.Module, forget: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
    """``method.setup`` with the forget data as a one-batch loader."""
    method.setup(model, ClassificationTask(), None if forget is None else [forget])


def train_steps(
    method: UnlearningMethod,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    forget: Any,
    retain: Any,
    steps: int,
    *,
    after_step: bool = True,
) -> list[float]:
    """The engine's step outside Lightning: loss, backward, ``before_optimizer_step``, the optimizer step and (unless
    ``after_step=False``) ``after_optimizer_step``. Returns the losses."""
    losses = []
    for step in range(steps):
        optimizer.zero_grad()
        out = method.loss(context(method, model, forget, retain, global_step=step))
        out.loss.backward()
        method.before_optimizer_step(model)
        optimizer.step()
        if after_step:
            method.after_optimizer_step(model)
        losses.append(float(out.parts["loss"]))
    return losses


def unlearn_class(
    method: UnlearningMethod, steps: int, lr: float = 1e-2, label: int = 3, model: nn.Module | None = None
) -> tuple[float, float]:
    """Unlearn class ``label`` of :func:`blobs` from :func:`pretrained` (or ``model``, edited in place) with ``method``
    (Adam, ``steps`` steps on the whole forget class and 32 retain samples per step); returns the (forget, retain)
    accuracy afterwards."""
    x, y = blobs().tensors
    forget = y == label
    model = pretrained() if model is None else model
    forget_batch, retain_all = (x[forget], y[forget]), (x[~forget], y[~forget])
    method.setup(model, ClassificationTask(), [forget_batch], [retain_all])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad] + method.parameters(), lr=lr)
    train_steps(method, model, optimizer, forget_batch, batch(n=32, seed=7), steps)
    return accuracy(model, *forget_batch), accuracy(model, *retain_all)
