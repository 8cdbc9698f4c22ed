"""Parameter masks, composed into any method: only the selected entries are updated."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_fraction, check_int
from lightning_unlearn.tasks.base import Task, evaluating

MaskScope = Literal["global", "layer"]
_SCOPES = {"global": "one threshold over all parameters", "layer": "one threshold per parameter tensor"}


class ParameterMask:
    """Builds ``{parameter name: 0/1 tensor}``; parameters absent from the dict are frozen."""

    def build(self, model: nn.Module, task: Task, forget_loader: Iterable | None) -> dict[str, Tensor]:
        """Return the masks; ``forget_loader`` is ``None`` when no forget data is available."""
        raise NotImplementedError


def check_masks_leave_trainable(masks: dict[str, Tensor], model: nn.Module, mask: object = None) -> None:
    """Raise a ``ValueError`` when ``masks`` (``{parameter name: 0/1 tensor}``) select no entry of a trainable parameter
    of ``model``: training would run, every gradient would be zeroed, and nothing would change.

    The typical case is a mask written for the full model used with a LoRA adapter (``peft=``): only the adapter
    trains, and e.g. RMU's ``trainable="down_proj"`` selects the frozen base ``down_proj`` weights. ``mask`` (the
    :class:`ParameterMask` or method the masks come from) is named in the message.
    """
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        return  # nothing trains with or without a mask; not the mask's doing
    allowed = set(trainable)
    if any(n in allowed and bool((m != 0).any()) for n, m in masks.items()):
        return
    selected = sorted(n for n, m in masks.items() if bool((m != 0).any()))
    frozen = [n for n in selected if n not in allowed]

    def listed(names: list[str], limit: int = 8) -> str:
        return f"{names[:limit]}{f' and {len(names) - limit} more' if len(names) > limit else ''}"

    what = f"it selects {len(frozen)} frozen parameters (requires_grad=False), {listed(frozen)}" if frozen else "it selects no entry"
    raise ValueError(
        f"The parameter mask {mask!r} leaves nothing to train: {what}, while the model's {len(trainable)} trainable "
        f"parameters are {listed(trainable)}. Unlearning would run and change nothing. With a LoRA adapter (`peft=`) "
        "only the adapter trains: put the adapter on the masked modules (`target_modules`), or choose a mask over the "
        "adapter's parameters, or no mask."
    )


class RegexMask(ParameterMask):
    """Update only parameters whose name matches ``pattern`` (``re.search``).

    Args:
        pattern: Regular expression over ``model.named_parameters()`` names, e.g. ``"^fc\\."``.
    """

    def __init__(self, pattern: str) -> None:
        try:
            self._regex = re.compile(pattern)
        except re.error as err:
            raise ValueError(f"`pattern` should be a valid regular expression, got {pattern!r}: {err}.") from None
        self.pattern = pattern

    def build(self, model: nn.Module, task: Task, forget_loader: Iterable | None = None) -> dict[str, Tensor]:
        masks = {n: torch.ones_like(p) for n, p in model.named_parameters() if self._regex.search(n)}
        if not masks:
            names = [n for n, _ in model.named_parameters()]
            raise ValueError(f"`pattern` {self.pattern!r} matches no parameter; the model has {names[:12]}...")
        return masks

    def __repr__(self) -> str:
        return f"RegexMask(pattern={self.pattern!r})"


class SaliencyMask(ParameterMask):
    """Weight saliency: the entries with the largest forget-loss gradient magnitude.

    SalUn (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in
    Both Image Classification and Generation", ICLR 2024, arXiv 2310.12508):
    ``m = 1[|∇_θ L_f(θ₀; D_f)| ≥ γ]`` with γ the ``1 - threshold`` quantile, i.e. the top
    ``threshold`` fraction of entries are updated. The gradient is of the *summed* forget loss over
    the forget set (SalUn accumulates per-batch gradients of the mean loss; the ranking is the same
    up to batch weighting).

    Args:
        threshold: Fraction of parameter entries kept (SalUn's default 0.5).
        scope: ``"global"`` ranks all entries together (SalUn), ``"layer"`` ranks per tensor.
        max_batches: Cap on forget batches used to estimate the gradient (``None`` = all).
    """

    def __init__(self, threshold: float = 0.5, scope: MaskScope = "global", max_batches: int | None = None) -> None:
        check_fraction("threshold", threshold)
        check_choice("scope", scope, _SCOPES)
        if max_batches is not None and max_batches < 1:
            raise ValueError(f"`max_batches` should be >= 1 or None, got {max_batches!r}.")
        self.threshold = float(threshold)
        self.scope = scope
        self.max_batches = max_batches

    def gradients(self, model: nn.Module, task: Task, forget_loader: Iterable | None) -> dict[str, Tensor]:
        if forget_loader is None:
            raise ValueError("The SaliencyMask mask needs the forget data to be built; pass the forget loader to `setup`.")
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        grads = {n: torch.zeros_like(p) for n, p in params.items()}
        seen = 0
        device = next(iter(params.values())).device
        with evaluating(model):
            for i, batch in enumerate(forget_loader):
                if self.max_batches is not None and i >= self.max_batches:
                    break
                batch = move_data_to_device(batch, device)
                loss = task.per_sample_loss(task.forward(model, batch), batch).sum()
                g = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
                for (n, _), gi in zip(params.items(), g):
                    if gi is not None:
                        grads[n] += gi
                seen += 1
        if seen == 0:
            raise ValueError("SaliencyMask got an empty forget loader; the forget set must not be empty.")
        return grads

    def build(self, model: nn.Module, task: Task, forget_loader: Iterable | None) -> dict[str, Tensor]:
        grads = self.gradients(model, task, forget_loader)
        if self.scope == "layer":
            return {n: self._top_fraction(g.abs().flatten()).view_as(g).to(g.dtype) for n, g in grads.items()}
        flat = self._top_fraction(torch.cat([g.abs().flatten() for g in grads.values()]))
        masks: dict[str, Tensor] = {}
        for (n, g), part in zip(grads.items(), flat.split([g.numel() for g in grads.values()])):
            masks[n] = part.view_as(g).to(g.dtype)
        return masks

    def _top_fraction(self, scores: Tensor) -> Tensor:
        """Exactly ``round(threshold * n)`` (at least 1) ones at the largest scores. Ties at the cut-off
        (e.g. the zero gradients of dead units) are broken by ``torch.topk``, not all let in."""
        k = min(scores.numel(), max(1, int(round(self.threshold * scores.numel()))))
        keep = torch.zeros_like(scores, dtype=torch.bool)
        keep[torch.topk(scores, k, sorted=False).indices] = True
        return keep

    def __repr__(self) -> str:
        return f"SaliencyMask(threshold={self.threshold}, scope={self.scope!r}, max_batches={self.max_batches})"



def last_layers(model: nn.Module, k: int) -> list[tuple[str, nn.Module]]:
    """The last ``k`` layers of ``model``: ``(name, module)`` of the modules that own trainable parameters directly
    (``parameters(recurse=False)``), in registration order (``named_modules``), last ``k`` of them.

    For ``SmallCNN`` the layers are its two convolutions, the penultimate linear layer and the head (``k=1``: the
    head); for a hybrid quantum model, its ``TorchLayer`` counts as one layer. ``k`` larger than the number of layers
    is an error naming both.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` should be a positive int (the number of last layers), got {k!r}.")
    layers = [(n, m) for n, m in model.named_modules() if any(p.requires_grad for p in m.parameters(recurse=False))]
    if k > len(layers):
        raise ValueError(f"`k`={k} is more than the model's {len(layers)} layers with trainable parameters: {[n for n, _ in layers]}.")
    return layers[-k:]


class LastLayersMask(ParameterMask):
    """Update only the parameters of the model's last ``k`` layers (:func:`last_layers`): CF-k and EU-k's selection
    (Goel et al., "Towards Adversarial Evaluation of Machine Unlearning", arXiv 2201.06640).

    Args:
        k: Number of last layers (modules owning trainable parameters) to update.
    """

    def __init__(self, k: int = 1) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` should be a positive int (the number of last layers), got {k!r}.")
        self.k = k

    def build(self, model: nn.Module, task: Task, forget_loader: Iterable | None = None) -> dict[str, Tensor]:
        masks: dict[str, Tensor] = {}
        for name, module in last_layers(model, self.k):
            for pname, param in module.named_parameters(recurse=False):
                if param.requires_grad:
                    masks[f"{name}.{pname}" if name else pname] = torch.ones_like(param)
        return masks

    def __repr__(self) -> str:
        return f"LastLayersMask(k={self.k})"


def check_last_layers_arguments(k: int, mask: ParameterMask | None, what: str) -> None:
    """The arguments of a method whose mask is the last ``k`` layers (CF-k, EU-k): ``k ≥ 1`` and no user ``mask``
    (``what`` names the method and its verb in the error, e.g. ``"CF-k trains"``)."""
    check_int("k", k, minimum=1)
    if mask is not None:
        raise ValueError(f"`mask` should be None: {what} the last `k` layers (LastLayersMask(k={k})), got {mask!r}.")
