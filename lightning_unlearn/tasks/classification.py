"""Classification: the task behind benchmark B1 (Fashion-MNIST, digits) and most unlearning papers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_unlearn.tasks.base import Task


class ClassificationTask(Task):
    """A model that maps inputs to class logits ``[B, C]``.

    Batches are ``(inputs, targets, *extra)`` tuples/lists, or mappings with ``input_key`` and
    ``target_key``. Model outputs may be a tensor or an object with a ``logits`` attribute
    (``transformers`` models).

    Args:
        num_classes: Number of classes. Needed for :meth:`relabel`; when ``None`` it is read from the
            logits' last dimension.
        input_key: Key of the inputs when batches are mappings.
        target_key: Key of the targets when batches are mappings.
        label_smoothing: Passed to :func:`torch.nn.functional.cross_entropy`.
    """

    kind = "classification"

    supports_relabel = True

    def __init__(
        self,
        num_classes: int | None = None,
        input_key: str = "inputs",
        target_key: str = "targets",
        label_smoothing: float = 0.0,
    ) -> None:
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2):
            raise ValueError(f"`num_classes` should be an int >= 2 or None, got {num_classes!r}.")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` should lie in [0, 1), got {label_smoothing!r}.")
        self.num_classes = num_classes
        self.input_key = input_key
        self.target_key = target_key
        self.label_smoothing = label_smoothing

    # ------------------------------------------------------------------ batch access
    def inputs(self, batch: Any) -> Any:
        if isinstance(batch, Mapping):
            return batch[self.input_key]
        if isinstance(batch, (tuple, list)):
            return batch[0]
        raise TypeError(
            f"A classification batch should be a (inputs, targets) tuple/list or a mapping with keys "
            f"{self.input_key!r} and {self.target_key!r}; got {type(batch).__name__}."
        )

    def targets(self, batch: Any) -> Tensor:
        if isinstance(batch, Mapping):
            return batch[self.target_key]
        if isinstance(batch, (tuple, list)) and len(batch) >= 2:
            return batch[1]
        raise TypeError(
            f"A classification batch should be a (inputs, targets) tuple/list or a mapping with keys "
            f"{self.input_key!r} and {self.target_key!r}; got {type(batch).__name__}."
        )

    def batch_size(self, batch: Any) -> int:
        return int(self.targets(batch).shape[0])

    # ------------------------------------------------------------------ primitives
    def forward(self, model: nn.Module, batch: Any) -> Tensor:
        out = model(self.inputs(batch))
        logits = getattr(out, "logits", out)
        if not isinstance(logits, Tensor) or logits.dim() != 2:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"A classifier should return logits of shape [batch, classes]; got {shape}.")
        if self.num_classes is not None and logits.shape[-1] != self.num_classes:
            raise ValueError(
                f"The model returns {logits.shape[-1]} logits per sample but `num_classes` is {self.num_classes}; "
                "the model's label space and the task's must agree."
            )
        return logits

    def _check_targets(self, logits: Tensor, targets: Tensor) -> None:
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= logits.shape[-1]):
            raise ValueError(
                f"Targets should lie in [0, {logits.shape[-1] - 1}] for a model with {logits.shape[-1]} classes; "
                f"got labels in [{int(targets.min())}, {int(targets.max())}]. Check the label space."
            )

    def per_sample_loss(self, outputs: Tensor, batch: Any, targets: Tensor | None = None) -> Tensor:
        targets = self.targets(batch) if targets is None else targets
        self._check_targets(outputs, targets)
        return F.cross_entropy(outputs.float(), targets, reduction="none", label_smoothing=self.label_smoothing)

    def log_likelihood(self, outputs: Tensor, batch: Any, targets: Tensor | None = None) -> Tensor:
        targets = self.targets(batch) if targets is None else targets
        self._check_targets(outputs, targets)
        return torch.log_softmax(outputs.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)

    def kl_divergence(self, outputs: Tensor, reference_outputs: Tensor, batch: Any, temperature: float = 1.0) -> Tensor:
        log_p = torch.log_softmax(outputs.float() / temperature, dim=-1)
        log_q = torch.log_softmax(reference_outputs.float() / temperature, dim=-1)
        return (log_q.exp() * (log_q - log_p)).sum(-1)

    def relabel(self, outputs: Tensor, batch: Any, generator: torch.Generator | None = None) -> Tensor:
        """Uniformly random labels that differ from the true ones (random labeling, Golatkar et al. 2020)."""
        targets = self.targets(batch)
        num_classes = self.num_classes or outputs.shape[-1]
        offset = torch.randint(1, num_classes, targets.shape, generator=generator, device="cpu").to(targets.device)
        return (targets + offset) % num_classes

    def correct(self, outputs: Tensor, batch: Any) -> Tensor:
        return outputs.argmax(-1) == self.targets(batch)

    def probabilities(self, outputs: Tensor) -> Tensor:
        return torch.softmax(outputs.float(), dim=-1)
