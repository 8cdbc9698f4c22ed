"""The task interface: what a model *is*, as the few primitives every unlearning method needs.

A method is written once against these primitives, so the same gradient-ascent or NPO code runs on
a classifier, a causal LM, a recommender and a diffusion UNet (:class:`~lightning_unlearn.tasks.DiffusionTask`).
A task is stateless apart from its configuration; it never owns the model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import Tensor, nn


class Task(ABC):
    """Primitives a method may ask for. Subclasses implement the abstract ones.

    All per-sample quantities have shape ``[B]`` so that methods can weight, mask or compare them
    with a reference model without knowing what a sample is (an image, a sequence, a rating).
    """

    #: Whether :meth:`relabel` is meaningful (classification yes, denoising no).
    supports_relabel: bool = False
    #: The kind of task, matched against a method's ``supported_tasks`` (``None``: any method may try).
    kind: ClassVar[str | None] = None

    @abstractmethod
    def forward(self, model: nn.Module, batch: Any) -> Any:
        """Run the model on a batch and return its raw outputs (e.g. logits)."""

    @abstractmethod
    def targets(self, batch: Any) -> Tensor:
        """The batch's supervision targets."""

    @abstractmethod
    def per_sample_loss(self, outputs: Any, batch: Any, targets: Tensor | None = None) -> Tensor:
        """Loss of every sample, shape ``[B]``; ``targets`` overrides the batch's own targets."""

    def log_likelihood(self, outputs: Any, batch: Any, targets: Tensor | None = None) -> Tensor:
        """Log-likelihood of each sample's target, shape ``[B]`` (``-per_sample_loss`` by default)."""
        return -self.per_sample_loss(outputs, batch, targets)

    @abstractmethod
    def kl_divergence(self, outputs: Any, reference_outputs: Any, batch: Any, temperature: float = 1.0) -> Tensor:
        """``KL(p_reference || p_model)`` per sample, shape ``[B]``, at the given temperature."""

    def relabel(self, outputs: Any, batch: Any, generator: torch.Generator | None = None) -> Tensor:
        """New targets for a batch (e.g. random wrong labels). Only tasks with ``supports_relabel``."""
        raise NotImplementedError(f"{type(self).__name__} does not support relabelled targets.")

    @abstractmethod
    def correct(self, outputs: Any, batch: Any) -> Tensor:
        """Boolean ``[B]``: whether each prediction is right (drives forget/retain/test accuracy)."""

    @abstractmethod
    def batch_size(self, batch: Any) -> int:
        """Number of samples in a batch."""

    def features(self, model: nn.Module, batch: Any, layer: str) -> Tensor:
        """Output of the submodule named ``layer`` (as in ``model.named_modules()``), flattened per sample."""
        with capture_features(model, layer) as store:
            self.forward(model, batch)
        return store["out"].flatten(1)


def _find_module(model: nn.Module, layer: str) -> nn.Module:
    modules = dict(model.named_modules())
    if layer not in modules:
        names = [n for n in modules if n]
        shown = names if len(names) <= 20 else names[:20] + ["..."]
        raise ValueError(f"`layer` should name a submodule of the model, one of {shown}; got {layer!r}.")
    return modules[layer]


@contextmanager
def evaluating(model: nn.Module) -> Iterator[torch.device]:
    """Put ``model`` in eval mode inside the block (yielding its device) and restore its train/eval mode afterwards,
    also on errors."""
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    try:
        yield param.device if param is not None else torch.device("cpu")
    finally:
        model.train(was_training)


@contextmanager
def capture_features(model: nn.Module, layer: str) -> Iterator[dict[str, Tensor]]:
    """Capture the output of ``model.<layer>`` during the forward passes run inside the block."""
    module = _find_module(model, layer)
    store: dict[str, Tensor] = {}

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        store["out"] = output[0] if isinstance(output, (tuple, list)) else output

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()
