"""Quantization attack: does forgotten knowledge come back when the unlearned weights are quantized?

Zhang et al., "Catastrophic Failure of LLM Unlearning via Quantization" (ICLR 2025, arXiv:2410.16454)
show that unlearning methods constrained to keep utility (GA/NPO with a retain term) move the weights
so little that 4-bit round-to-nearest quantization maps many of them back onto the original model's
grid: on average ~83% of the forgotten knowledge reappears (MUSE benchmarks), against ~21% in full
precision.

What is implemented here is **round-to-nearest (RTN) fake quantization** of the weights, in plain
PyTorch on any device: every selected weight is quantized to ``bits``-bit integers and immediately
dequantized back to its own dtype, so the attacked copy runs like the original model, only with the
quantized values. RTN is the simplest of the quantizers the paper evaluates; the calibrated,
error-compensating ones (GPTQ, AWQ) are not implemented, and no memory-saving integer model is built.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_int

__all__ = [
    "QUANTIZABLE_LAYERS",
    "QUANTIZATION_BITS",
    "QuantizableLayer",
    "QuantizationAttack",
    "QuantizationSummary",
    "fake_quantize",
    "quantize_model",
]

#: Bit widths :func:`fake_quantize` accepts.
QUANTIZATION_BITS: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)

QuantizableLayer = Literal["linear", "conv", "embedding"]
#: The layer kinds whose ``weight`` :func:`quantize_model` can quantize (``"linear"`` also takes ``transformers``'
#: ``Conv1D``, GPT-2's linear layer with a transposed ``[in, out]`` weight, whenever ``transformers`` is loaded).
QUANTIZABLE_LAYERS: dict[str, tuple[type[nn.Module], ...]] = {
    "linear": (nn.Linear,),
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "embedding": (nn.Embedding,),
}


def _check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise ValueError(f"`bits` should be one of {list(QUANTIZATION_BITS)}, got {bits!r}.")
    return check_choice("bits", bits, QUANTIZATION_BITS)


def _check_symmetric(symmetric: bool) -> bool:
    if not isinstance(symmetric, bool):
        raise TypeError(f"`symmetric` should be a bool, got {type(symmetric).__name__} {symmetric!r}.")
    return symmetric


def _check_weight(weight: Tensor, group_size: int | None, what: str = "`weight`") -> None:
    if not isinstance(weight, Tensor):
        raise TypeError(f"{what} should be a torch.Tensor, got {type(weight).__name__}.")
    if not weight.is_floating_point():
        raise TypeError(f"{what} should be a floating-point tensor, got dtype {weight.dtype}.")
    if weight.dim() < 2:
        raise ValueError(
            f"{what} should have at least 2 dimensions ([out, in, ...], one row per output channel); "
            f"got shape {tuple(weight.shape)}."
        )
    row = math.prod(weight.shape[1:])
    if group_size is not None and row % group_size:
        raise ValueError(
            f"`group_size` should divide the row length of {what} ({row} elements per output channel, "
            f"shape {tuple(weight.shape)}); got {group_size}."
        )


def fake_quantize(weight: Tensor, bits: int = 8, group_size: int | None = None, symmetric: bool = True) -> Tensor:
    r"""Round-to-nearest quantize ``weight`` to ``bits``-bit integers and dequantize it again.

    The weight is read as rows, one per output channel: ``weight[i]`` flattened (so the
    ``[out, in, kh, kw]`` weights of convolutions work too). Each row, or each group of
    ``group_size`` consecutive elements of a row, gets its own scale :math:`s`:

    - symmetric: :math:`s = \max|w| / q_{max}` with :math:`q_{max} = 2^{b-1} - 1` and
      :math:`\hat w = s \cdot \mathrm{clamp}(\mathrm{round}(w / s), -q_{max}, q_{max})`;
    - asymmetric: the range :math:`[\min(w, 0), \max(w, 0)]` is mapped onto the integers
      :math:`[0, 2^b - 1]`, :math:`s = (\max - \min) / (2^b - 1)`, zero point
      :math:`z = \mathrm{round}(-\min / s)` and
      :math:`\hat w = s \cdot (\mathrm{clamp}(\mathrm{round}(w / s) + z, 0, 2^b - 1) - z)`
      (including 0 in the range keeps 0 exactly representable).

    So every element moves by at most :math:`s / 2`. The arithmetic is done in float32 and the result
    has the input's dtype and shape; a row or group of zeros stays zero (no division by a zero scale).
    The input is not modified and no gradient flows through the result.

    Args:
        weight: A floating-point tensor with at least 2 dimensions, ``[out, ...]``.
        bits: Bit width, 2 to 8.
        group_size: ``None``: one scale per row (per output channel). An int: one scale per
            ``group_size`` consecutive elements of a row; it must divide the row length.
        symmetric: Absmax scale with a signed range (``True``) or min/max with a zero point (``False``).
    """
    bits = _check_bits(bits)
    check_int("group_size", group_size, optional=True)
    symmetric = _check_symmetric(symmetric)
    _check_weight(weight, group_size)
    if weight.numel() == 0:
        return weight.detach().clone()
    rows = weight.detach().reshape(weight.shape[0], -1).float()
    groups = rows.reshape(rows.shape[0], -1, group_size or rows.shape[1])
    if symmetric:
        q_max = 2 ** (bits - 1) - 1
        scale = groups.abs().amax(dim=-1, keepdim=True) / q_max
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        dequantized = torch.clamp(torch.round(groups / scale), -q_max, q_max) * scale
    else:
        q_max = 2**bits - 1
        low = groups.amin(dim=-1, keepdim=True).clamp(max=0)
        high = groups.amax(dim=-1, keepdim=True).clamp(min=0)
        scale = (high - low) / q_max
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero = torch.round(-low / scale)
        dequantized = (torch.clamp(torch.round(groups / scale) + zero, 0, q_max) - zero) * scale
    return dequantized.reshape(weight.shape).to(weight.dtype)


@dataclass(frozen=True)
class QuantizationSummary:
    """What :func:`quantize_model` quantized, and what it did not.

    Attributes:
        names: The quantized weights, by parameter name (a tensor shared by several layers is named
            and counted once, under its first name).
        num_parameters: Number of weight elements that were quantized.
        total_parameters: Number of elements of all the model's (unique) parameters.
        per_channel: The weights quantized per output channel although a ``group_size`` was asked for,
            because it does not divide their rows (e.g. a first convolution's 9-element rows).
        matrix_parameters: Number of elements of all the model's weight matrices: its (unique) floating-point
            parameters with at least 2 dimensions, quantized or not.
        skipped: The weight matrices that were *not* quantized (not the weight of a selected layer kind, e.g. a
            ViT's position embeddings, or a layer kind left out of ``layer_types``).
    """

    names: tuple[str, ...]
    num_parameters: int
    total_parameters: int
    per_channel: tuple[str, ...] = ()
    matrix_parameters: int = 0
    skipped: tuple[str, ...] = ()

    @property
    def num_tensors(self) -> int:
        """Number of quantized weight tensors."""
        return len(self.names)

    @property
    def fraction(self) -> float:
        """Share of the model's parameters that were quantized (0 for a model without parameters)."""
        return self.num_parameters / self.total_parameters if self.total_parameters else 0.0

    @property
    def coverage(self) -> float:
        """Share of the model's weight-matrix elements that were quantized (:attr:`matrix_parameters`; 1 for a
        model without weight matrices): what an ``int4`` result says about the model rests on this."""
        return self.num_parameters / self.matrix_parameters if self.matrix_parameters else 1.0


def _transposed_linear_class() -> type[nn.Module] | None:
    """``transformers``' ``Conv1D`` (a linear layer storing its weight as ``[in, out]``), if ``transformers`` is loaded."""
    return getattr(sys.modules.get("transformers.pytorch_utils"), "Conv1D", None)


def _rows(weight: Tensor, transposed: bool) -> Tensor:
    """``weight`` with one row per output channel: a ``Conv1D`` weight ``[in, out]`` is read as ``[out, in]``."""
    return weight.t() if transposed else weight


def _layer_classes(layer_types: Sequence[str]) -> tuple[type[nn.Module], ...]:
    if isinstance(layer_types, str) or not isinstance(layer_types, Sequence) or not layer_types:
        raise ValueError(f"`layer_types` should be a non-empty sequence of {sorted(QUANTIZABLE_LAYERS)}, got {layer_types!r}.")
    classes: tuple[type[nn.Module], ...] = ()
    for kind in layer_types:
        classes += QUANTIZABLE_LAYERS[check_choice("layer_types", kind, QUANTIZABLE_LAYERS)]
    conv1d = _transposed_linear_class()
    if "linear" in layer_types and conv1d is not None:
        classes += (conv1d,)
    return classes


def quantize_model(
    model: nn.Module,
    bits: int = 8,
    group_size: int | None = None,
    symmetric: bool = True,
    layer_types: Sequence[QuantizableLayer] = ("linear", "conv", "embedding"),
) -> tuple[nn.Module, QuantizationSummary]:
    """A deep copy of ``model`` whose layer weights are fake-quantized with :func:`fake_quantize`.

    The ``weight`` of every ``nn.Linear`` (``"linear"``; this includes a ``transformers`` model's
    ``lm_head`` and ``transformers``' ``Conv1D``, GPT-2's attention and MLP layers, whose ``[in, out]``
    weight is quantized per output channel like a linear layer's), ``nn.Conv1d/2d/3d`` (``"conv"``) and
    ``nn.Embedding`` (``"embedding"``) selected by ``layer_types`` is quantized; biases, normalisation
    parameters and everything else keep their values. Subclasses of these layers count as the layer; a
    weight that is not a plain ``nn.Parameter`` (e.g. computed by ``torch.nn.utils.parametrize``) is left
    alone and is absent from the summary. ``model`` itself is not modified. The summary records the
    coverage: which of the model's weight matrices were quantized and which were skipped.

    Tied weights (e.g. a language model's input embedding and ``lm_head`` sharing one tensor) are
    quantized once, in place in the copy, so the copy's layers still share one tensor. The tensor is
    quantized if *any* layer that uses it is selected. For tied embeddings this is unambiguous: both
    the embedding and the head store it as ``[vocab, hidden]``, so the rows (and groups) are the same.

    Args:
        model: The model to attack.
        bits: Bit width, 2 to 8.
        group_size: ``None``: one scale per output channel; an int: one scale per ``group_size``
            consecutive input elements; a weight whose row length it does not divide is quantized per
            output channel instead (listed in :attr:`QuantizationSummary.per_channel`).
        symmetric: Absmax scale with a signed range, or min/max with a zero point.
        layer_types: Which kinds of layers to quantize: any of ``"linear"``, ``"conv"``, ``"embedding"``.

    Returns:
        The quantized copy (in the same training/eval mode, device and dtypes as ``model``) and a
        :class:`QuantizationSummary` of what was quantized.
    """
    bits = _check_bits(bits)
    check_int("group_size", group_size, optional=True)
    symmetric = _check_symmetric(symmetric)
    classes = _layer_classes(layer_types)
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` should be a torch.nn.Module, got {type(model).__name__}.")

    conv1d = _transposed_linear_class()
    selected: dict[int, tuple[str, Tensor]] = {}
    per_channel: list[str] = []  # weights whose rows the group size does not divide
    transposed: set[str] = set()  # Conv1D weights, [in, out]
    for module_name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, classes) and isinstance(weight, nn.Parameter) and id(weight) not in selected:
            name = f"{module_name}.weight" if module_name else "weight"
            if conv1d is not None and isinstance(module, conv1d):
                transposed.add(name)
            rows = _rows(weight, name in transposed)
            _check_weight(rows, None, what=f"the weight `{name}`")
            if group_size is not None and math.prod(rows.shape[1:]) % group_size:
                per_channel.append(name)
            selected[id(weight)] = (name, weight)

    # Copy after checking, then find the same tensors in the copy by name (deepcopy keeps ties).
    attacked = copy.deepcopy(model)
    copied = dict(attacked.named_parameters(remove_duplicate=False))
    names = tuple(name for name, _ in selected.values())
    with torch.no_grad():
        for name in names:
            target = copied[name]
            groups = None if name in per_channel else group_size
            rows = _rows(target, name in transposed)
            rows.copy_(fake_quantize(rows, bits=bits, group_size=groups, symmetric=symmetric))
    total = sum(p.numel() for p in model.parameters())
    quantized = sum(weight.numel() for _, weight in selected.values())
    matrices = [(n, p) for n, p in model.named_parameters() if p.is_floating_point() and p.dim() >= 2]
    summary = QuantizationSummary(
        names=names,
        num_parameters=quantized,
        total_parameters=total,
        per_channel=tuple(per_channel),
        matrix_parameters=sum(p.numel() for _, p in matrices),
        skipped=tuple(n for n, p in matrices if id(p) not in selected),
    )
    return attacked, summary


class QuantizationAttack:
    """Round-to-nearest weight quantization as an attack: ``attack(model)`` returns a quantized copy.

    Reproduces the attack of Zhang et al., "Catastrophic Failure of LLM Unlearning via Quantization"
    (ICLR 2025, arXiv:2410.16454) with RTN fake quantization (:func:`quantize_model`): the copy keeps
    its dtype and runs like the original, with every selected weight rounded onto a ``bits``-bit grid.
    The paper's main setting is 4 bits (8 bits recovers far less); RTN is one of the quantizers it
    evaluates, and the only one implemented here (not GPTQ or AWQ: no calibration data, no error
    compensation).
    Evaluate the forget metrics on the copy and compare with the unlearned model
    (:func:`~lightning_unlearn.attacks.recovery.recovery`).

    Args:
        bits: Bit width, 2 to 8 (the paper: 4 and 8).
        group_size: ``None``: one scale per output channel; an int (e.g. 128): one scale per group of
            that many consecutive input elements.
        symmetric: Absmax scale with a signed range, or min/max with a zero point.
        layer_types: Which kinds of layers to quantize: any of ``"linear"``, ``"conv"``, ``"embedding"``.

    Attributes:
        summary: The :class:`QuantizationSummary` of the last call (``None`` before the first): what was
            quantized, and its :attr:`~QuantizationSummary.coverage` of the model's weight matrices.
    """

    def __init__(
        self,
        bits: int = 4,
        group_size: int | None = None,
        symmetric: bool = True,
        layer_types: Sequence[QuantizableLayer] = ("linear", "conv", "embedding"),
    ) -> None:
        self.bits = _check_bits(bits)
        self.group_size = check_int("group_size", group_size, optional=True)
        self.symmetric = _check_symmetric(symmetric)
        _layer_classes(layer_types)
        self.layer_types = tuple(layer_types)
        self.summary: QuantizationSummary | None = None

    @property
    def name(self) -> str:
        """A short label, e.g. ``"int4-g128"``, ``"int8-per-channel"`` or ``"int4-g64-asym"``."""
        grouping = "per-channel" if self.group_size is None else f"g{self.group_size}"
        return f"int{self.bits}-{grouping}" + ("" if self.symmetric else "-asym")

    def __call__(self, model: nn.Module) -> nn.Module:
        attacked, self.summary = quantize_model(
            model, bits=self.bits, group_size=self.group_size, symmetric=self.symmetric, layer_types=self.layer_types
        )
        return attacked

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(bits={self.bits}, group_size={self.group_size}, symmetric={self.symmetric}, "
            f"layer_types={self.layer_types!r})"
        )
