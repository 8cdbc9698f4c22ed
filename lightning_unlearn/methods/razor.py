"""RAZOR: edit only the few layers / attention heads that carry the forget set."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn

from lightning_unlearn._errors import check_fraction, check_int, check_positive
from lightning_unlearn.methods.base import LossOutput, RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.tasks.base import Task, evaluating

#: Child names that make a module an attention block edited per head (``transformers`` >= 5 naming).
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
#: The same for ``diffusers``' ``Attention`` (UNet self- and cross-attention).
DIFFUSERS_PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")


@dataclass(frozen=True)
class UnitSlice:
    """A block of one parameter tensor: the whole tensor (``dim=None``) or ``[start, stop)`` along ``dim``."""

    param: str
    dim: int | None = None
    start: int = 0
    stop: int = 0

    def take(self, tensor: Tensor) -> Tensor:
        """The view of ``tensor`` (shaped like the parameter) this slice covers."""
        if self.dim is None:
            return tensor
        return tensor.narrow(self.dim, self.start, self.stop - self.start)


Units = dict[str, tuple[UnitSlice, ...]]


def editing_units(model: nn.Module, num_heads: int | None = None, projections: Sequence[str] = ATTENTION_PROJECTIONS) -> Units:
    """Split the trainable parameters of ``model`` into RAZOR's editing units.

    * An **attention module** (one with ``nn.Linear`` children named ``q_proj``, ``k_proj``,
      ``v_proj``, ``o_proj``) gives one unit per head, ``"<module>.head<h>"``: the head's rows of
      the q/k/v weights and bias entries and its columns of ``o_proj.weight``. The ``o_proj`` bias,
      shared by all heads, is a unit of its own, ``"<module>.o_proj.bias"``.
    * Every other module with parameters of its own (a Linear, Conv2d, LayerNorm, an embedding
      table, ...) is one unit named after the module (``"<root>"`` for the model itself).

    The units partition the trainable parameters: every entry belongs to exactly one unit.

    Args:
        model: The network.
        num_heads: Heads per attention module. ``None`` reads ``num_attention_heads`` (or
            ``num_heads``, or diffusers' ``heads``) from the attention module, else from a ``config`` of the
            model or of one of its submodules.
        projections: The (dotted) child names of an attention module's query, key, value and output
            projections: ``ATTENTION_PROJECTIONS`` (``transformers``), ``DIFFUSERS_PROJECTIONS``
            (``diffusers``' ``Attention``: ``to_q, to_k, to_v, to_out.0``).
    """
    names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    seen: set[int] = set()
    claimed: set[str] = set()
    units: Units = {}
    for module_name, module in model.named_modules():
        if module_name in claimed:
            continue
        prefix = f"{module_name}." if module_name else ""
        if _is_attention(module, projections):
            heads = _head_count(model, module, module_name, num_heads)
            units.update(_head_units(module, prefix, heads, names, seen, projections))
            claimed.update(prefix + child for child in projections)
        own = [p for p in module.parameters(recurse=False) if id(p) in names and id(p) not in seen]
        if own:
            seen.update(id(p) for p in own)
            units[module_name or "<root>"] = tuple(UnitSlice(names[id(p)]) for p in own)
    return units


def _child(module: nn.Module, path: str) -> nn.Module | None:
    """The submodule at a dotted ``path`` (``"to_out.0"``), or ``None``."""
    found: nn.Module | None = module
    for part in path.split("."):
        if isinstance(found, (nn.ModuleList, nn.Sequential)) and part.isdigit():
            found = found[int(part)] if int(part) < len(found) else None
        else:
            found = getattr(found, part, None)
        if not isinstance(found, nn.Module):
            return None
    return found


def _is_attention(module: nn.Module, projections: Sequence[str] = ATTENTION_PROJECTIONS) -> bool:
    return all(isinstance(_child(module, child), nn.Linear) for child in projections)


def _head_count(model: nn.Module, attention: nn.Module, name: str, num_heads: int | None) -> int:
    if num_heads is not None:
        return num_heads
    for attr in ("num_attention_heads", "num_heads", "heads"):
        value = getattr(attention, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    for module in model.modules():
        value = getattr(getattr(module, "config", None), "num_attention_heads", None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    raise ValueError(
        f"Cannot tell how many heads the attention module {name!r} has (no `num_attention_heads` on it or on a "
        "model `config`); pass `num_heads`."
    )


def _head_units(
    attention: nn.Module, prefix: str, heads: int, names: dict[int, str], seen: set[int], projections: Sequence[str] = ATTENTION_PROJECTIONS
) -> Units:
    q, k, v, o = (_child(attention, child) for child in projections)
    width = q.out_features
    if k.out_features != width or v.out_features != width or o.in_features != width:
        raise ValueError(
            f"RAZOR edits attention per head and needs q/k/v outputs and o_proj inputs of one width; "
            f"{prefix.rstrip('.')!r} has q={q.out_features}, k={k.out_features}, v={v.out_features}, "
            f"o_proj in={o.in_features} (grouped-query attention is not supported)."
        )
    if width % heads:
        raise ValueError(f"`num_heads` should divide the attention width {width} of {prefix.rstrip('.')!r}, got {heads}.")
    dim = width // heads
    units: Units = {}
    for h in range(heads):
        lo, hi = h * dim, (h + 1) * dim
        parts: list[UnitSlice] = []
        for proj in (q, k, v):
            for param in (proj.weight, proj.bias):
                if param is not None and id(param) in names:
                    parts.append(UnitSlice(names[id(param)], 0, lo, hi))
        if id(o.weight) in names:
            parts.append(UnitSlice(names[id(o.weight)], 1, lo, hi))
        if parts:
            units[f"{prefix}head{h}"] = tuple(parts)
    for proj in (q, k, v):
        seen.update(id(p) for p in proj.parameters())
    seen.add(id(o.weight))
    if o.bias is not None and id(o.bias) in names:
        units[f"{prefix}o_proj.bias"] = (UnitSlice(names[id(o.bias)]),)
        seen.add(id(o.bias))
    return units


def mean_gradients(
    model: nn.Module, task: Task, batches: Iterable[Any], params: dict[str, Tensor], max_batches: int | None = None
) -> tuple[dict[str, Tensor], int]:
    """Gradient of the sample-mean task loss over ``batches`` (in eval mode) and the number of samples."""
    device = next(iter(params.values())).device
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    with evaluating(model):
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            batch = move_data_to_device(batch, device)
            with torch.enable_grad():
                loss = task.per_sample_loss(task.forward(model, batch), batch).sum()
                found = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for name, g in zip(params, found):
                if g is not None:
                    grads[name] += g
            count += task.batch_size(batch)
    if count:
        for g in grads.values():
            g.div_(count)
    return grads, count


def unit_scores(
    units: Units,
    params: dict[str, Tensor],
    forget_grads: dict[str, Tensor],
    retain_grads: dict[str, Tensor] | None,
    alpha: float,
    eps: float,
) -> dict[str, float]:
    """``φ(l) = ‖g_l^f‖ / (‖θ_l‖ + ε) · (1 − cos(g_l^f, g_l^r))^α`` for every unit.

    The cosine is taken as 0 where either gradient is zero (or no retain gradient is given).
    """

    def inner(parts: tuple[UnitSlice, ...], a: dict[str, Tensor], b: dict[str, Tensor]) -> Tensor:
        return sum((s.take(a[s.param]).double() * s.take(b[s.param]).double()).sum() for s in parts)  # type: ignore[return-value]

    theta = {n: p.detach() for n, p in params.items()}
    rows = []
    for parts in units.values():
        ff, tt = inner(parts, forget_grads, forget_grads), inner(parts, theta, theta)
        if retain_grads is None:
            rr = dot = torch.zeros_like(ff)
        else:
            rr, dot = inner(parts, retain_grads, retain_grads), inner(parts, forget_grads, retain_grads)
        rows.append(torch.stack([ff, rr, dot, tt]))
    scores: dict[str, float] = {}
    for name, (ff, rr, dot, tt) in zip(units, torch.stack(rows).tolist() if rows else []):
        g_f, g_r, theta = math.sqrt(ff), math.sqrt(rr), math.sqrt(tt)
        cos = max(-1.0, min(1.0, dot / (g_f * g_r))) if g_f > 0 and g_r > 0 else 0.0
        scores[name] = g_f / (theta + eps) * (1.0 - cos) ** alpha
    return scores


def check_razor_arguments(
    mask: Any, top_fraction: float, top_k: int | None, threshold: float | None, alpha: float, rho: float,
    mismatch_weight: float, eps: float, max_batches: int | None,
) -> None:
    """Validate the arguments every RAZOR variant shares (the classifier one and the diffusion one)."""
    if mask is not None:
        raise ValueError(f"`mask` should be None for RAZOR, which builds its own mask (the edit set); got {mask!r}.")
    check_fraction("top_fraction", top_fraction)
    check_int("top_k", top_k, minimum=1, optional=True)
    if threshold is not None:
        check_positive("threshold", threshold, allow_zero=True)
    if top_k is not None and threshold is not None:
        raise ValueError(f"Give either `top_k` or `threshold`, not both; got top_k={top_k!r} and threshold={threshold!r}.")
    check_fraction("alpha", alpha, inclusive_low=True)
    check_fraction("rho", rho)
    check_positive("mismatch_weight", mismatch_weight, allow_zero=True)
    check_positive("eps", eps)
    check_int("max_batches", max_batches, minimum=1, optional=True)


def score_units(
    model: nn.Module, task: Task, units: Units, params: dict[str, Tensor], forget_loader: Iterable[Any],
    retain_loader: Iterable[Any] | None, alpha: float, eps: float, max_batches: int | None,
) -> dict[str, float]:
    """RAZOR's initial scores: ``φ`` of every unit from the mean task-loss gradients over the forget and retain
    loaders (at most ``max_batches`` each; no retain gradient without retain data)."""
    forget_grads, n_forget = mean_gradients(model, task, forget_loader, params, max_batches)
    if n_forget == 0:
        raise ValueError("RAZOR got an empty forget loader; the forget set must not be empty.")
    retain_grads = None
    if retain_loader is not None:
        retain_grads, n_retain = mean_gradients(model, task, retain_loader, params, max_batches)
        retain_grads = retain_grads if n_retain else None
    return unit_scores(units, params, forget_grads, retain_grads, alpha, eps)


def rank_units(scores: dict[str, float], top_fraction: float, top_k: int | None = None, threshold: float | None = None) -> list[str]:
    """RAZOR's initial edit set: the units with ``φ > threshold`` (at least the best one), else the ``top_k`` best,
    else the best ``top_fraction`` of the units (at least one). Ties keep the model's order."""
    ranked = sorted(scores, key=lambda unit: -scores[unit])
    if threshold is not None:
        return [u for u in ranked if scores[u] > threshold] or ranked[:1]
    if top_k is not None:
        return ranked[:top_k]
    return ranked[: max(1, round(top_fraction * len(ranked)))]


def unit_masks(
    units: Units, selected: Sequence[str], shapes: dict[str, tuple[torch.Size, torch.dtype]], device: torch.device | str
) -> dict[str, Tensor]:
    """``{parameter: 0/1 mask}`` that lets exactly the entries of the ``selected`` units change."""
    masks: dict[str, Tensor] = {}
    for unit in selected:
        for part in units[unit]:
            mask = masks.get(part.param)
            if mask is None:
                shape, dtype = shapes[part.param]
                mask = masks[part.param] = torch.zeros(shape, dtype=dtype, device=device)
            part.take(mask).fill_(1)
    return masks


def _all_ranks_mean(values: Tensor) -> Tensor:
    """Average over DDP ranks, so that every rank takes the same edit-set decision."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= dist.get_world_size()
    return values


@register_method(name="razor")
class RAZOR(UnlearningMethod):
    """RAZOR: ratio-aware editing of a few layers and attention heads.

    RAZOR, "ratio-aware layer editing", CVPR 2026, arXiv 2603.14819 (authors' code:
    raviranjan-ai/RAZOR-cvpr2026; this implementation follows the method's description and was
    written without consulting that code). The model is cut into *units* (:func:`editing_units`): one per layer and,
    in attention modules with ``q_proj/k_proj/v_proj/o_proj``, one per head.

    1. **Scoring**, once before the first step: with ``g_l^f = ∇_{θ_l} L_f`` and
       ``g_l^r = ∇_{θ_l} L_r`` (gradients of the mean cross-entropy over the forget and retain
       loaders, ``max_batches`` batches of each, in eval mode),
       ``φ(l) = ‖g_l^f‖ / (‖θ_l‖ + ε) · (1 − cos(g_l^f, g_l^r))^α`` (``eps``, ``alpha``).
       Without retain data the cosine is taken as 0.
    2. **Edit set** ``K``: the units with ``φ(l) > τ`` (``threshold``; at least the best one),
       else the ``top_k`` best, else (default) the best ``top_fraction`` of the units.
       Only entries of ``K`` are updated (a parameter mask, :attr:`masks`).
    3. **Objective**, ``L = L_retain + λ_f·ρ·L_forget + λ_m·L_mismatch`` with the forget term
       *ascended*: this class minimises ``forget_weight·(−ρ·CE_f) + retain_weight·CE_r +
       λ_m·KL(p_θ₀ ‖ p_θ)`` on the retain batch (``λ_f = forget_weight``, ``ρ = rho``,
       ``λ_m = mismatch_weight``). The paper defines the mismatch term for CLIP / Stable
       Diffusion / LLaVA; **our classifier instantiation** is this drift regulariser, the KL from the
       frozen original model's retain predictions.
    4. **Iterative expansion**: at the first step of every epoch after the first, if the accuracy
       on the current forget batch is above ``target_forget_acc``, ``φ`` is recomputed on the
       current forget/retain batches and the best unit not yet in ``K`` is added; at most
       ``max_rounds`` rounds. Under DDP the accuracy and scores are averaged over ranks so every
       rank keeps the same ``K``.

    **Simplified**: the paper's per-unit step size ``η_l``, found by binary search on a small
    validation set, is not implemented; every edited unit moves with the optimizer's learning rate.
    The defaults (``alpha=0.5``, ``top_fraction=0.1``, ``mismatch_weight=1``,
    ``target_forget_acc=0.1``) are this library's choices, not values taken from the paper. The
    initial scoring runs over the whole forget and retain loaders unless ``max_batches`` caps it
    (e.g. 20 on Fashion-MNIST). Units with a small ``‖θ_l‖`` (biases, norms) can score high.

    The latest scores are in :attr:`scores` (``{unit: φ}``), the edit set in :attr:`selected` (in
    the order the units were chosen) and the units in :attr:`units`; :meth:`select` sets ``K`` by
    hand. ``K`` and the expansion progress are saved in checkpoints, so a resumed run edits the
    same units.

    Args:
        top_fraction: Fraction of the units in the initial edit set (at least one), used when
            neither ``top_k`` nor ``threshold`` is given. τ scales differ from model to model, so
            this is the default selection.
        top_k: Number of units in the initial edit set (instead of ``top_fraction``).
        threshold: τ: the initial edit set is ``{l: φ(l) > τ}`` (the best unit if none passes).
            Cannot be combined with ``top_k``.
        alpha: α in ``[0, 1]``, the exponent of the gradient-conflict factor ``1 − cos``.
        rho: ρ in ``(0, 1]``, the ratio that scales the ascended forget loss.
        mismatch_weight: λ_m, weight of the retain KL to the original model (0 disables it and the
            reference copy).
        target_forget_acc: Forget-batch accuracy at or below which forgetting counts as sufficient
            (no expansion).
        max_rounds: Most expansion rounds (each adds one unit); 0 keeps the initial edit set.
        num_heads: Heads per attention module; ``None`` reads them from the model.
        eps: ε in the score's denominator.
        max_batches: Cap on forget and retain batches used for the initial scores (``None``: all).
        forget_weight: λ_f, weight of the forget term.
        retain_weight: Weight of the retain term.
        retain_loss: ``"nll"`` (the paper's ``L_retain``), ``"kl"`` or ``"none"``.
        mask: Must be ``None``: RAZOR builds its own parameter mask (the edit set).
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    #: Units of classifiers and of ViT attention heads; causal LMs with grouped-query attention are not handled yet.
    supported_tasks = ("classification",)

    needs_reference = True

    def __init__(
        self,
        top_fraction: float = 0.1,
        top_k: int | None = None,
        threshold: float | None = None,
        alpha: float = 0.5,
        rho: float = 1.0,
        mismatch_weight: float = 1.0,
        target_forget_acc: float = 0.1,
        max_rounds: int = 6,
        num_heads: int | None = None,
        eps: float = 1e-8,
        max_batches: int | None = None,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_razor_arguments(mask, top_fraction, top_k, threshold, alpha, rho, mismatch_weight, eps, max_batches)
        check_fraction("target_forget_acc", target_forget_acc, inclusive_low=True)
        check_int("max_rounds", max_rounds, minimum=0)
        check_int("num_heads", num_heads, minimum=1, optional=True)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, seed=seed)
        self.top_fraction = float(top_fraction)
        self.top_k = top_k
        self.threshold = None if threshold is None else float(threshold)
        self.alpha = float(alpha)
        self.rho = float(rho)
        self.mismatch_weight = float(mismatch_weight)
        self.target_forget_acc = float(target_forget_acc)
        self.max_rounds = int(max_rounds)
        self.num_heads = num_heads
        self.eps = float(eps)
        self.max_batches = max_batches
        self.needs_reference = self.mismatch_weight > 0  # no drift term: no frozen copy needed
        self.units: Units = {}
        # What a resumed run needs: the edit set K (and its mask), the expansion progress, the latest scores.
        self.add_state("selected", [])
        self.add_state("scores", {})
        self.add_state("_rounds", 0)
        self.add_state("_checked_epoch", 0)
        self.add_state("_masks", None)  # the base's mask, persistent here: K changes during the run
        self._shapes: dict[str, tuple[torch.Size, torch.dtype]] = {}
        self._device: torch.device = torch.device("cpu")

    # ------------------------------------------------------------------ selection
    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        if forget_loader is None:
            raise ValueError("RAZOR scores layers and heads with the forget data; pass the forget loader to `setup`.")
        self.units = editing_units(model, self.num_heads)
        if not self.units:
            raise ValueError("The model has no trainable parameters for RAZOR to edit.")
        params = self._params(model)
        self._shapes = {n: (p.shape, p.dtype) for n, p in params.items()}
        self._device = next(iter(params.values())).device
        self._masks = None
        self.scores = score_units(model, task, self.units, params, forget_loader, retain_loader, self.alpha, self.eps, self.max_batches)
        self._rounds = 0
        self._checked_epoch = 0
        self.select(self._initial_selection(self.scores))

    @property
    def rounds(self) -> int:
        """Expansion rounds done so far (each added one unit)."""
        return self._rounds

    def _initial_selection(self, scores: dict[str, float]) -> list[str]:
        return rank_units(scores, self.top_fraction, self.top_k, self.threshold)

    def select(self, units: Sequence[str], device: torch.device | str | None = None) -> None:
        """Make ``units`` (names from :attr:`units`) the edit set and rebuild the parameter mask.

        The mask is built on ``device`` (default: where the current mask lives, else where the
        model was at :meth:`setup`). Call it after :meth:`setup`, which defines the units.
        """
        if not self.units:
            raise RuntimeError("RAZOR has no units yet; call `setup` (it reads them from the model) before `select`.")
        unknown = [u for u in units if u not in self.units]
        if unknown:
            shown = list(self.units)[:20]
            raise ValueError(
                f"Unknown RAZOR units {unknown}; the model's units are {shown}{'...' if len(self.units) > 20 else ''}."
            )
        if not units:
            raise ValueError("The RAZOR edit set should hold at least one unit, got none.")
        if device is None:
            device = next(iter(self._masks.values())).device if self._masks else self._device
        self.selected = list(dict.fromkeys(units))
        self.set_masks(unit_masks(self.units, self.selected, self._shapes, device))

    @staticmethod
    def _params(model: nn.Module) -> dict[str, Tensor]:
        return {n: p for n, p in model.named_parameters() if p.requires_grad}

    # ------------------------------------------------------------------ iterative expansion
    def loss(self, ctx: StepContext, *, include_retain: bool = True) -> LossOutput:
        self._maybe_expand(ctx)
        return super().loss(ctx, include_retain=include_retain)

    def _maybe_expand(self, ctx: StepContext) -> None:
        """At the first step of a new epoch, add the best remaining unit if forgetting is insufficient."""
        if ctx.epoch <= self._checked_epoch or not self.units:
            return
        self._checked_epoch = ctx.epoch
        if self._rounds >= self.max_rounds or ctx.forget is None or len(self.selected) >= len(self.units):
            return
        outputs = ctx.outputs("forget")  # outside no_grad: the forget loss reuses these cached outputs
        acc = ctx.task.correct(outputs.detach(), ctx.forget).float().mean()
        if float(_all_ranks_mean(acc)) <= self.target_forget_acc:
            return
        params = self._params(ctx.model)
        forget_grads, _ = mean_gradients(ctx.model, ctx.task, [ctx.forget], params)
        retain_grads = mean_gradients(ctx.model, ctx.task, [ctx.retain], params)[0] if ctx.retain is not None else None
        scores = unit_scores(self.units, params, forget_grads, retain_grads, self.alpha, self.eps)
        device = next(iter(params.values())).device
        averaged = _all_ranks_mean(torch.tensor(list(scores.values()), dtype=torch.float64, device=device)).tolist()
        self.scores = dict(zip(scores, averaged))
        remaining = [u for u in self.units if u not in self.selected]
        best = max(remaining, key=lambda unit: self.scores[unit])
        self._rounds += 1
        self.select([*self.selected, best], device)

    # ------------------------------------------------------------------ objective
    def forget_loss(self, ctx: StepContext) -> Tensor:
        return -self.rho * ctx.loss("forget").mean()

    def regularizer(self, ctx: StepContext) -> Tensor | None:
        if self.mismatch_weight == 0 or ctx.retain is None:
            return None
        drift = ctx.task.kl_divergence(ctx.outputs("retain"), ctx.reference_outputs("retain"), ctx.retain).mean()
        return self.mismatch_weight * drift

    # ------------------------------------------------------------------ resume
    def upgrade_legacy_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """Checkpoints written before ``add_state`` saved no mask: rebuild it from ``selected``."""
        if state.get("selected") and self.units:
            self.select(list(state["selected"]))
        return state
