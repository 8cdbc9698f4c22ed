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

    What is checked at this boundary (shape and dtype only: no extra device synchronisation):

    * targets are a tensor of class indices of shape ``[B]``; int64 is used as is, other integer dtypes (int32,
      uint8, ...) are cast to int64; float, bool and one-hot ``[B, C]`` targets are refused with a hint;
    * logits are ``[B, C]`` with ``B`` the number of targets and ``C == num_classes`` when it is given;
    * inputs are passed to the model unchecked (a model may take uint8 images or int64 token ids on purpose); when
      the model fails on inputs whose dtype differs from its parameters' (float64 from numpy, raw uint8 images),
      the error names both dtypes and the conversion.

    Not detectable: a model that returns transposed logits ``[C, B]`` on a batch whose size equals the number of
    classes (the shape is the same). It is refused at the first batch of another size (e.g. the last, partial
    batch, or the forget-set pass :class:`~lightning_unlearn.UnlearningModule`'s monitor makes before training).

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
        """The batch's class indices as an int64 tensor of shape ``[B]`` (see the class docstring for what is refused)."""
        if isinstance(batch, Mapping):
            return _class_indices(batch[self.target_key])
        if isinstance(batch, (tuple, list)) and len(batch) >= 2:
            return _class_indices(batch[1])
        raise TypeError(
            f"A classification batch should be a (inputs, targets) tuple/list or a mapping with keys "
            f"{self.input_key!r} and {self.target_key!r}; got {type(batch).__name__}."
        )

    def batch_size(self, batch: Any) -> int:
        return int(self.targets(batch).shape[0])

    def with_inputs(self, batch: Any, inputs: Any) -> Any:
        """The same batch with its inputs replaced by ``inputs`` (e.g. adversarially perturbed ones); labels and any
        extra entries are kept."""
        if isinstance(batch, Mapping):
            return {**batch, self.input_key: inputs}
        if isinstance(batch, (tuple, list)):
            return [inputs, *batch[1:]] if isinstance(batch, list) else (inputs, *batch[1:])
        raise TypeError(
            f"A classification batch should be a (inputs, targets) tuple/list or a mapping with keys "
            f"{self.input_key!r} and {self.target_key!r}; got {type(batch).__name__}."
        )

    # ------------------------------------------------------------------ primitives
    def forward(self, model: nn.Module, batch: Any) -> Tensor:
        inputs = self.inputs(batch)
        try:
            out = model(inputs)
        except (RuntimeError, TypeError) as err:
            hint = _dtype_mismatch(model, inputs, err)
            if hint is None:
                raise
            raise TypeError(hint) from err
        logits = getattr(out, "logits", out)
        if not isinstance(logits, Tensor) or logits.dim() != 2:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"A classifier should return logits of shape [batch, classes]; got {shape}.")
        if self.num_classes is not None and logits.shape[-1] != self.num_classes:
            raise ValueError(
                f"The model returns {logits.shape[-1]} logits per sample but `num_classes` is {self.num_classes}; "
                "the model's label space and the task's must agree."
            )
        if isinstance(batch, Mapping):
            labels = batch.get(self.target_key)
        else:
            labels = batch[1] if isinstance(batch, (tuple, list)) and len(batch) >= 2 else None
        if isinstance(labels, Tensor) and labels.dim() >= 1:  # labelled batches: one row of logits per sample
            _check_rows(logits, int(labels.shape[0]))
        return logits

    def _check_targets(self, logits: Tensor, targets: Tensor) -> None:
        _check_rows(logits, int(targets.shape[0]))
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= logits.shape[-1]):
            raise ValueError(
                f"Targets should lie in [0, {logits.shape[-1] - 1}] for a model with {logits.shape[-1]} classes; "
                f"got labels in [{int(targets.min())}, {int(targets.max())}]. Check the label space."
            )

    def per_sample_loss(self, outputs: Tensor, batch: Any, targets: Tensor | None = None) -> Tensor:
        targets = self.targets(batch) if targets is None else _class_indices(targets)
        self._check_targets(outputs, targets)
        return F.cross_entropy(outputs.float(), targets, reduction="none", label_smoothing=self.label_smoothing)

    def log_likelihood(self, outputs: Tensor, batch: Any, targets: Tensor | None = None) -> Tensor:
        targets = self.targets(batch) if targets is None else _class_indices(targets)
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


_INTEGER = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _class_indices(targets: Any) -> Tensor:
    """``targets`` as int64 class indices of shape ``[B]``; other integer dtypes are cast, anything else refused."""
    if not isinstance(targets, Tensor):
        raise TypeError(
            "Classification targets should be a tensor of class indices (int64, shape [batch]); got "
            f"{type(targets).__name__}. Collate labels into a tensor (the default collate does)."
        )
    if targets.dtype not in _INTEGER:
        if targets.dim() == 2:
            hint = "one-hot or soft labels [batch, classes]: pass `targets.argmax(-1)`"
        elif targets.dtype == torch.bool:
            hint = "booleans are not class indices: convert binary labels with `.long()`"
        else:
            hint = "whole-number labels stored as floats: convert them with `.long()`"
        raise TypeError(
            f"Classification targets should be integer class indices (int64, shape [batch]); got a {targets.dtype} "
            f"tensor of shape {tuple(targets.shape)} ({hint})."
        )
    if targets.dim() != 1:
        raise ValueError(
            f"Classification targets should have shape [batch] (one class index per sample); got shape {tuple(targets.shape)}."
        )
    return targets if targets.dtype == torch.int64 else targets.long()


def _check_rows(logits: Tensor, batch_size: int) -> None:
    """Logits ``[B, C]`` must have one row per target; a ``[C, B]`` output is named as transposed."""
    if logits.shape[0] == batch_size:
        return
    transposed = logits.shape[1] == batch_size
    raise ValueError(
        f"The model returned logits of shape {tuple(logits.shape)} for a batch of {batch_size} samples; a classifier "
        f"should return [batch, classes] = [{batch_size}, C]"
        + (" (this looks like [classes, batch]: transpose the model's output)." if transposed else ".")
    )


def _dtype_mismatch(model: nn.Module, inputs: Any, err: BaseException) -> str | None:
    """A clear message when ``model`` failed on tensor ``inputs`` of another dtype than its parameters, else ``None``."""
    if not isinstance(inputs, Tensor):
        return None
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if param is None or param.dtype == inputs.dtype or "type" not in str(err).lower():
        return None
    if inputs.dtype == torch.uint8:
        fix = "convert images before batching, e.g. `x.float() / 255`"
    elif inputs.is_floating_point():
        fix = f"convert the inputs with `x.to({param.dtype})` (numpy arrays are float64: `torch.from_numpy(a).float()`), or the model"
    else:
        fix = f"the model takes {param.dtype} inputs; convert them, or give the model an input layer for {inputs.dtype} (e.g. an embedding)"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (
        f"The model failed on inputs of dtype {inputs.dtype} (shape {tuple(inputs.shape)}); its parameters are {param.dtype}: "
        f"{fix}. (The model raised: {first})"
    )
