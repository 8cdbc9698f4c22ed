"""RAZOR for diffusion: score a UNet's attention heads and layers by ratio-aware saliency, edit only the best few."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import Tensor, nn

from lightning_unlearn.methods._diffusion import encode_once, prediction_under, surrogate_condition
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.methods.razor import (
    DIFFUSERS_PROJECTIONS,
    Units,
    check_razor_arguments,
    editing_units,
    rank_units,
    score_units,
    unit_masks,
)
from lightning_unlearn.tasks.base import Task


@register_method(name="razor_diffusion")
class RAZORDiffusion(UnlearningMethod):
    """RAZOR on a text-conditioned diffusion UNet (RECONSTRUCTED from shared/METHODS.md §13).

    RAZOR, "ratio-aware layer editing", CVPR 2026, arXiv 2603.14819 (code: raviranjan-ai/RAZOR-cvpr2026, not
    consulted). The scoring is the classifier RAZOR's (:mod:`lightning_unlearn.methods.razor`, shared functions):

    1. Units (:func:`~lightning_unlearn.methods.razor.editing_units` with diffusers' ``to_q/to_k/to_v/to_out.0``):
       one per attention head of every self- and cross-attention, one per other layer.
    2. ``φ(l) = ‖g_l^f‖ / (‖θ_l‖ + ε) · (1 − cos(g_l^f, g_l^r))^α`` with ``g^f``, ``g^r`` the gradients of the mean
       ε-loss over the forget and retain loaders (``max_batches`` each). Edit set ``K``: ``φ > threshold``, else the
       ``top_k``, else the best ``top_fraction`` of the units. Only entries of ``K`` change.
    3. ``L = L_retain + λ_f·ρ·L_forget + λ_m·L_mismatch``. The paper's Stable Diffusion instance puts the forget
       term (a CE) on the text encoder; here the text encoder (MiniLM or CLIP) stays frozen and **this library's
       instantiation** edits the UNet: ``L_forget = ‖ε_θ(x_t, t, c_f) − sg[ε_θ₀(x_t, t, c_s)]‖²`` (the concept's
       prediction remapped to a surrogate c_s, bounded, unlike an ascended ε-loss), ``L_retain`` the ε-loss on
       retain data and ``L_mismatch = ‖ε_θ(x_t, t, c_r) − ε_θ₀(x_t, t, c_r)‖²`` (drift from the original θ₀).

    **Not implemented**: the per-unit step size η_l (binary search on a validation set; every unit moves with the
    optimizer's learning rate) and the iterative expansion of ``K`` (RAZOR adds units while the forget accuracy is
    too high; a denoiser has no in-loop accuracy — B4 measures it with a judge on generations).

    Args:
        top_fraction: Fraction of the units in the edit set (when neither ``top_k`` nor ``threshold`` is given).
        top_k: Number of units in the edit set.
        threshold: τ; the edit set is ``{l: φ(l) > τ}`` (the best unit if none passes).
        alpha: α in ``[0, 1]``.
        rho: ρ in ``(0, 1]``, scales the forget term.
        mismatch_weight: λ_m (0 disables the drift term).
        surrogate: Prompt(s) of the surrogate concept (``None``: the retain batch's prompts).
        projections: Child names of an attention module's q/k/v/out projections.
        eps: ε of the score.
        max_batches: Cap on forget and retain batches for the scores (``None``: all).
        forget_weight: λ_f.
        retain_weight: Weight of ``L_retain``.
        retain_loss: ``"nll"`` (ε-loss, the paper's), ``"kl"`` or ``"none"``.
        mask: Must be ``None``: RAZOR's mask is its edit set.
        seed: Unused; accepted like every method's.
    """

    supported_tasks = ("diffusion",)
    needs_reference = True

    def __init__(
        self,
        top_fraction: float = 0.1,
        top_k: int | None = None,
        threshold: float | None = None,
        alpha: float = 0.5,
        rho: float = 1.0,
        mismatch_weight: float = 1.0,
        surrogate: Sequence[str] | str | None = None,
        projections: Sequence[str] = DIFFUSERS_PROJECTIONS,
        eps: float = 1e-8,
        max_batches: int | None = None,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_razor_arguments(mask, top_fraction, top_k, threshold, alpha, rho, mismatch_weight, eps, max_batches)
        if isinstance(projections, str) or len(projections) != 4:
            raise ValueError(f"`projections` should name the q, k, v and output projections (4 names), got {projections!r}.")
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, seed=seed)
        self.top_fraction = float(top_fraction)
        self.top_k = top_k
        self.threshold = None if threshold is None else float(threshold)
        self.alpha = float(alpha)
        self.rho = float(rho)
        self.mismatch_weight = float(mismatch_weight)
        self.surrogate = [surrogate] if isinstance(surrogate, str) else (list(surrogate) if surrogate is not None else None)
        self.projections = tuple(projections)
        self.eps = float(eps)
        self.max_batches = max_batches
        self.units: Units = {}
        self.add_state("selected", [])
        self.add_state("scores", {})
        self.add_state("_masks", None)  # persistent: a resumed run edits the same units
        self.add_state("_surrogate", None, persistent=False)

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        if forget_loader is None:
            raise ValueError("RAZOR scores layers and heads with the forget data; pass the forget loader to `setup`.")
        self.units = editing_units(model, projections=self.projections)
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.scores = score_units(model, task, self.units, params, forget_loader, retain_loader, self.alpha, self.eps, self.max_batches)
        self.selected = rank_units(self.scores, self.top_fraction, self.top_k, self.threshold)
        shapes = {n: (p.shape, p.dtype) for n, p in params.items()}
        self.set_masks(unit_masks(self.units, self.selected, shapes, next(iter(params.values())).device))
        self._surrogate = encode_once(task, self.surrogate)

    def forget_loss(self, ctx: StepContext) -> Tensor:
        batch = ctx.batch("forget")
        target = prediction_under(ctx.require_reference(), ctx.task, batch, surrogate_condition(ctx, self._surrogate))
        return self.rho * ctx.loss("forget", targets=target).mean()

    def regularizer(self, ctx: StepContext) -> Tensor | None:
        if self.mismatch_weight == 0 or ctx.retain is None:
            return None
        drift = ctx.task.kl_divergence(ctx.outputs("retain"), ctx.reference_outputs("retain"), ctx.retain).mean()
        return self.mismatch_weight * drift

