"""SalUn for diffusion: remap the forget concept to another one, updating only the salient weights."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import Tensor, nn

from lightning_unlearn.methods._diffusion import encode_once, prediction_under, surrogate_condition
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import MaskScope, ParameterMask, SaliencyMask
from lightning_unlearn.tasks.base import Task


@register_method(name="salun_diffusion")
class SalUnDiffusion(UnlearningMethod):
    """SalUn for text-to-image diffusion: saliency-masked concept remapping.

    Fan, Liu, Zhang, Wei, Wong, Liu, "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in
    Both Image Classification and Generation", ICLR 2024, arXiv 2310.12508, §4 (generation):

    1. Saliency mask ``m = 1[|∇_θ ℓ_MSE(θ₀; D_f)|`` in the top ``threshold`` fraction], from the forget concept's
       ε-loss (:class:`~lightning_unlearn.methods.masks.SaliencyMask` on the task's per-sample loss).
    2. Random labelling becomes a *remapping* of the concept: for a forget image with prompt c and another
       concept's prompt c', ``ℓ_RL = ‖ε_θ(x_t, t, c) − sg[ε_θ(x_t, t, c')]‖²`` (the authors' Stable Diffusion code
       detaches the c' branch), plus ``β·ℓ_MSE`` on retain data; only masked entries move.

    c' is the encoded ``surrogate`` prompt(s) when given, else the retain batch's prompts (random other concepts,
    as SalUn draws c' ≠ c).

    Args:
        threshold: Fraction of weights updated (paper default 0.5).
        scope: ``"global"`` (paper) or ``"layer"`` ranking for the mask.
        surrogate: Prompt(s) the concept is remapped to (``None``: the retain batch's prompts).
        max_batches: Cap on forget batches used for the saliency (``None``: all).
        forget_weight: Weight of ``ℓ_RL``.
        retain_weight: β, weight of the retain term.
        retain_loss: ``"nll"`` (ε-loss on retain data, paper), ``"kl"`` or ``"none"``.
        mask: ``None``: ``SaliencyMask(threshold, scope, max_batches)``; a mask given here replaces it.
        seed: Unused (the task draws the noise); accepted like every method's.
    """

    supported_tasks = ("diffusion",)

    def __init__(
        self,
        threshold: float = 0.5,
        scope: MaskScope = "global",
        surrogate: Sequence[str] | str | None = None,
        max_batches: int | None = None,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            forget_weight=forget_weight,
            retain_weight=retain_weight,
            retain_loss=retain_loss,
            mask=SaliencyMask(threshold=threshold, scope=scope, max_batches=max_batches) if mask is None else mask,
            seed=seed,
        )
        self.threshold = threshold
        self.scope = scope
        self.max_batches = max_batches
        self.surrogate = [surrogate] if isinstance(surrogate, str) else (list(surrogate) if surrogate is not None else None)
        self.add_state("_surrogate", None, persistent=False)

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        self._surrogate = encode_once(task, self.surrogate)

    def forget_loss(self, ctx: StepContext) -> Tensor:
        batch = ctx.batch("forget")
        target = prediction_under(ctx.model, ctx.task, batch, surrogate_condition(ctx, self._surrogate))
        return ctx.loss("forget", targets=target).mean()
