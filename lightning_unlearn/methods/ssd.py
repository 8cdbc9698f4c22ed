"""SSD: Selective Synaptic Dampening, and its loss-free (LFSSD) and parameter-free (ASSD) variants."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_int, check_positive
from lightning_unlearn.methods.base import _RETAIN_LOSSES, RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.methods.one_shot import (
    IMPORTANCES,
    ImportanceKind,
    apply_edit,
    diagonal_importance,
    edit_once,
    require_loaders,
)
from lightning_unlearn.tasks.base import Task

SSDSelection = Literal["fixed", "adaptive"]
_SELECTIONS = {
    "fixed": "α as given (SSD, LFSSD)",
    "adaptive": "α chosen from the data, λ = 1 (ASSD): the (100 − ln(1 + 100·|D_f|/|D|))-th percentile of []_f/[]_D",
}
_ONE_SHOT_RETAIN = {
    "none": "no training after the edit (the papers')",
    "nll": "fine-tune on D_r after the edit: " + _RETAIN_LOSSES["nll"],
    "kl": "fine-tune on D_r after the edit: " + _RETAIN_LOSSES["kl"],
}


def dampening_factor(forget_importance: Tensor, full_importance: Tensor, alpha: float, dampening: float) -> Tensor:
    """SSD's multiplicative factor β per parameter entry.

    ``β = min(λ·[]_D / []_f, 1)`` where ``[]_f > α·[]_D`` (the entry is specialised to the forget set), else ``β = 1``
    (the entry is left as it is). An entry with ``[]_f = 0`` is never selected.
    """
    selected = forget_importance > alpha * full_importance
    ratio = (dampening * full_importance / forget_importance.clamp_min(torch.finfo(forget_importance.dtype).tiny)).clamp(max=1.0)
    return torch.where(selected, ratio, torch.ones_like(ratio))


def adaptive_alpha(forget_importance: dict[str, Tensor], full_importance: dict[str, Tensor], forget_size: int, full_size: int) -> float:
    """ASSD's selection weight: the ``100 − ln(1 + 100·|D_f|/|D|)`` percentile of the ratios ``[]_f/[]_D`` over all
    entries (undefined ratios, 0/0 and x/0, left out; linear interpolation between order statistics)."""
    if full_size <= 0:
        raise ValueError(f"ASSD needs the size of D; got {full_size} samples.")
    ratios = []
    for name, forget in forget_importance.items():
        ratio = (forget / full_importance[name]).flatten()
        ratios.append(ratio[torch.isfinite(ratio)].double().cpu())
    values = torch.cat(ratios).numpy() if ratios else np.empty(0)
    if values.size == 0:
        raise ValueError("ASSD found no parameter with a finite importance ratio []_f/[]_D (all importances are 0).")
    percentile = 100.0 - math.log(1.0 + 100.0 * forget_size / full_size)
    return float(np.percentile(values, percentile))


@register_method(name="ssd")
class SSD(UnlearningMethod):
    """SSD: Selective Synaptic Dampening, a retrain-free one-shot weight edit.

    Foster, Schoepf, Brintrup, "Fast Machine Unlearning Without Retraining Through Selective Synaptic Dampening",
    AAAI 2024, arXiv 2308.07707. With per-parameter importances ``[]_f`` on the forget set D_f and ``[]_D`` on the
    training data, every entry with ``[]_f > α·[]_D`` is multiplied by ``β = min(λ·[]_D/[]_f, 1)``
    (:func:`dampening_factor`); all others are left unchanged. Variants, by argument:

    * ``importance="loss_free"``: **LFSSD** (Foster, Schoepf, Brintrup, "Loss-Free Machine Unlearning", ICLR 2024
      Tiny Papers, arXiv 2402.19308): importances from the gradient of the squared l2 norm of the logits, no labels
      (:data:`~lightning_unlearn.methods.one_shot.IMPORTANCES`);
    * ``selection="adaptive"``: **ASSD** (Schoepf, Foster, Brintrup, "Parameter-tuning-free data entry error
      unlearning with adaptive selective synaptic dampening", arXiv 2402.10098): α is the
      ``100 − ln(1 + 100·|D_f|/|D|)`` percentile of the ratios ``[]_f/[]_D`` (:func:`adaptive_alpha`) and λ = 1.

    The edit is made once, at the first step, on the weights the model has then (see
    :mod:`lightning_unlearn.methods.one_shot`); the steps after it have a zero loss unless a retain term is chosen.
    :attr:`edit_stats` records the α used and how many entries were dampened. Importances are computed in eval mode
    over the whole forget and retain loaders (or their first ``max_batches`` batches); they depend on the loaders'
    batch size, as in the authors' code. **``[]_D`` is taken on D_r**: the authors' code runs over the full training
    loader, whose batches mix D_f with much more of D_r; D_r alone is the same up to the forget samples' share (a
    weighted mean of the D_f and D_r importances is *not*: batch gradients of mixed batches cancel, those of a
    one-class forget batch do not). ASSD's ``|D|`` is ``|D_f| + |D_r|``.

    Args:
        alpha: α, the selection weight (paper: 10). Ignored with ``selection="adaptive"``.
        dampening: λ, the dampening constant (paper: 1). Set to 1 with ``selection="adaptive"``.
        importance: ``"fisher"`` (SSD, ASSD) or ``"loss_free"`` (LFSSD).
        selection: ``"fixed"`` (α as given) or ``"adaptive"`` (ASSD).
        max_batches: Cap on the forget and retain batches used for the importances (``None``: all).
        forget_weight: Must be > 0: the edit is made in the forget hook (its loss is 0).
        retain_weight: Weight of the optional retain term.
        retain_loss: ``"none"`` (the papers': no training), or ``"nll"`` / ``"kl"`` to fine-tune on D_r after the edit.
        mask: Optional parameter mask: only its entries are dampened.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    supported_tasks = ("classification",)
    retain_losses = _ONE_SHOT_RETAIN

    def __init__(
        self,
        alpha: float = 10.0,
        dampening: float = 1.0,
        importance: ImportanceKind = "fisher",
        selection: SSDSelection = "fixed",
        max_batches: int | None = None,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "none",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("alpha", alpha)
        check_positive("dampening", dampening)
        check_choice("importance", importance, IMPORTANCES)
        check_choice("selection", selection, _SELECTIONS)
        check_int("max_batches", max_batches, minimum=1, optional=True)
        check_positive("forget_weight", forget_weight)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.alpha = float(alpha)
        self.dampening = float(dampening)
        self.importance = importance
        self.selection = selection
        self.max_batches = max_batches
        self.add_state("edited", False)
        self.add_state("edit_stats", {})
        self._loaders: tuple[Iterable | None, Iterable | None] = (None, None)

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        self._loaders = require_loaders("SSD computes importances on the forget and retain data", (forget_loader, retain_loader))

    def importances(self, model: nn.Module, task: Task) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Any]]:
        """``([]_f, []_D, sizes)`` on the current weights, ``[]_D`` on D_r (``sizes``: batches and samples of D_f and
        D_r)."""
        forget_loader, retain_loader = require_loaders("SSD computes importances on the forget and retain data", self._loaders)
        forget, b_f, n_f = diagonal_importance(model, task, forget_loader, self.importance, self.max_batches)
        retain, b_r, n_r = diagonal_importance(model, task, retain_loader, self.importance, self.max_batches)
        return forget, retain, {"forget_batches": b_f, "forget_samples": n_f, "retain_batches": b_r, "retain_samples": n_r}

    @torch.no_grad()
    def edit(self, model: nn.Module, task: Task) -> None:
        """Dampen the model's weights in place (the one-shot edit), where the mask allows."""
        forget, full, sizes = self.importances(model, task)
        if self.selection == "adaptive":
            alpha, dampening = adaptive_alpha(forget, full, sizes["forget_samples"], sizes["forget_samples"] + sizes["retain_samples"]), 1.0
        else:
            alpha, dampening = self.alpha, self.dampening
        new, dampened, total = {}, 0, 0
        for name, param in model.named_parameters():
            if name not in forget:
                continue
            factor = dampening_factor(forget[name], full[name], alpha, dampening)
            if self.masks is not None:
                factor = torch.where(self.masks[name].to(factor.device) != 0, factor, 1.0) if name in self.masks else torch.ones_like(factor)
            new[name] = param.detach() * factor.to(param.dtype)
            dampened += int((factor < 1).sum())
            total += factor.numel()
        apply_edit(model, new, self.masks)
        self.edit_stats = {"alpha": alpha, "dampening": dampening, "dampened": dampened, "total": total, **sizes}

    def forget_loss(self, ctx: StepContext) -> Tensor:
        return edit_once(self, ctx)
