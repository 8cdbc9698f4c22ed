"""ASU: attention smoothing unlearning — distil the forget answers towards an attention-smoothed θ₀."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.tasks.base import Task


def attention_modules(model: nn.Module, layers: str | None = None) -> list[tuple[str, nn.Module]]:
    """The attention modules whose softmax temperature can be changed: those with a float ``scaling``.

    In ``transformers`` (≥ 4.48, e.g. Llama, Mistral, Qwen2/3, Gemma, Phi-3) every attention module
    stores ``scaling`` (``1/√d_k``) and passes it to the attention interface (eager, SDPA, flash,
    flex), which computes ``softmax(QKᵀ·scaling + mask)``. ``layers`` (a regular expression searched
    in the module names, e.g. ``r"layers\\.(6|7|8)\\."``) keeps only some of them. (PEFT's LoRA layers
    keep a *dict* ``scaling`` and are not attention modules: only floats count.)
    """
    pattern = re.compile(layers) if layers is not None else None
    found = []
    for name, module in model.named_modules():
        scaling = getattr(module, "scaling", None)
        if isinstance(scaling, float) and (pattern is None or pattern.search(name)):
            found.append((name, module))
    return found


@contextmanager
def smoothed_attention(model: nn.Module, temperature: float, layers: str | None = None) -> Iterator[list[str]]:
    """Inside the block, every (selected) attention softmax of ``model`` runs on ``QKᵀ/(τ√d_k)``.

    Divides the modules' ``scaling`` by ``temperature`` (τ > 1 flattens the attention; τ = 1 changes
    nothing) and restores it on exit, even after an error. Yields the names of the modules changed.
    The model's weights are untouched; do not run it concurrently elsewhere while in the block.
    """
    check_positive("temperature", temperature)
    modules = attention_modules(model, layers)
    if not modules:
        which = f" matching `layers`={layers!r}" if layers is not None else ""
        raise ValueError(
            f"Found no attention module{which} with a float `scaling` attribute in {type(model).__name__}; attention "
            "smoothing needs a transformers model whose attention modules pass `self.scaling` to the attention "
            "function (e.g. Llama, Mistral, Qwen2, Gemma)."
        )
    saved = [module.scaling for _, module in modules]
    try:
        for _, module in modules:
            module.scaling = module.scaling / temperature
        yield [name for name, _ in modules]
    finally:
        for (_, module), scaling in zip(modules, saved):
            module.scaling = scaling


@register_method(name="asu")
class ASU(UnlearningMethod):
    """Attention Smoothing Unlearning: self-distil the forget answers from θ₀ with smoothed attention.

    After "Attention Smoothing Unlearning" (ASU), ICLR 2026, arXiv 2603.01285 (code only as an
    OpenReview supplement; built from a detailed summary). The forget-teacher θ_τ is the frozen
    original θ₀ with every attention softmax computed on ``QKᵀ/(τ√d_k)``: with τ > 1 the attention
    is flatter, so the teacher no longer retrieves the memorised fact yet stays fluent. The model is
    distilled towards it on the forget answers:

    ``L_f = E_{(x,y)∈D_f} (1/T) Σ_t KL( p(·|x∘y_<t; θ_τ) ‖ p(·|x∘y_<t; θ) )`` (teacher fixed),

    averaged over each answer's T tokens, then over the batch, plus a retain term:
    ``"kl"`` = ASU_KL (KL(p_θ₀‖p_θ) on D_r, the default) or ``"nll"`` = ASU_GD (CE on D_r).
    ``L = γ·L_f + α·L_retain``.

    Implementation: the teacher is the method's frozen reference θ₀ run inside
    :func:`smoothed_attention`, which temporarily divides each attention module's ``scaling``
    attribute by τ (the attention mask is added after the scaling, so masking is unchanged). No
    second copy of the model is kept; the retain KL uses the same reference unsmoothed. Verified on
    the tiny test Llama: τ = 1 reproduces θ₀'s logits exactly, τ ≠ 1 changes them. ``layers``
    restricts the smoothing to some attention modules (the summary: smoothing only layers ~6–8 is
    nearly as good). Stable τ ∈ [2, 2.8]; τ > 4 tends to give gibberish.

    Args:
        temperature: τ ≥ 1, the attention temperature of the teacher (1 = the original model).
        layers: Regular expression selecting the attention modules to smooth by name (``None``: all).
        forget_weight: γ, weight of the distillation term.
        retain_weight: α, weight of the retain term.
        retain_loss: ``"kl"`` (ASU_KL), ``"nll"`` (ASU_GD) or ``"none"``.
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    needs_reference = True
    supported_tasks = ("causal_lm", "vision_language")

    def __init__(
        self,
        temperature: float = 2.0,
        layers: str | None = None,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "kl",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("temperature", temperature)
        if temperature < 1:
            raise ValueError(
                f"`temperature` should be >= 1 (τ > 1 smooths the attention, τ < 1 would sharpen it), got {temperature!r}."
            )
        if layers is not None:
            if not isinstance(layers, str):
                raise TypeError(f"`layers` should be a regular expression string or None, got {type(layers).__name__}.")
            try:
                re.compile(layers)
            except re.error as err:
                raise ValueError(f"`layers` is not a valid regular expression ({err}): {layers!r}.") from None
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.temperature = float(temperature)
        self.layers = layers

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        with smoothed_attention(model, self.temperature, self.layers):  # fail early on a model it cannot smooth
            pass

    def teacher_outputs(self, ctx: StepContext) -> Tensor:
        """Logits of the smoothed teacher θ_τ on the forget batch (no gradient; cached for the step)."""
        if ctx.reference is None:
            ctx.reference = self.reference
        reference = ctx.require_reference()  # the teacher θ_τ is θ₀ with smoothed attention
        key = "asu/teacher/forget"
        if key not in ctx._cache:
            with torch.no_grad(), smoothed_attention(reference, self.temperature, self.layers):
                ctx._cache[key] = ctx.task.forward(reference, ctx.batch("forget"))
        return ctx._cache[key]

    def forget_loss(self, ctx: StepContext) -> Tensor:
        teacher = self.teacher_outputs(ctx)
        return ctx.task.kl_divergence(ctx.outputs("forget"), teacher, ctx.batch("forget")).mean()
