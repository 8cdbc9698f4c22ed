"""SPARE: localise the concept in a few UNet modules, put LoRA there, and self-distil onto a surrogate concept."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_fraction, check_int, check_positive
from lightning_unlearn.methods._diffusion import encode_once, prediction_under, surrogate_condition
from lightning_unlearn.methods.base import StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask, SaliencyMask
from lightning_unlearn.tasks.base import Task

_RETAIN = {
    "distill": "self-distillation on retain prompts: ‖ε_{θ+LoRA}(x_t, t, c_r) − sg[ε_θ(x_t, t, c_r)]‖², teacher = the "
    "same UNet with its adapters disabled",
    "none": "no retain term",
}


@register_method(name="spare")
class SPARE(UnlearningMethod):
    """SPARE: self-distillation for parameter-efficient removal.

    SPARE, arXiv 2602.07058; basis: the authors' code (``vision-unlearning``, ``unlearner/fade.py``
    ``UnlearnerLoraDistillation``, method id ``distil``), read for understanding, nothing copied.

    1. **Localisation**: the gradient saliency of every candidate module (the ``nn.Linear`` layers named by
       ``target_modules``, by default attention's ``to_q, to_k, to_v, to_out.0``) on the forget set: the mean
       ``|∇_W L_f|`` over the module's weight entries, ``L_f`` the task's ε-loss on D_f (the gradient pass of
       :class:`~lightning_unlearn.methods.masks.SaliencyMask`). The top ``module_fraction`` of the modules
       (``sparsity_inclusiveness``, default 0.5) get a LoRA adapter (``peft``, rank ``rank``, ``lora_alpha``);
       every other weight is frozen.
    2. **Self-distillation**, teacher = the same UNet with its adapters disabled (no second copy):
       ``L_f = ‖ε_{θ+LoRA}(x_t, t, c_forget) − sg[ε_θ(x_t, t, c_surrogate)]‖²`` on forget images and
       ``L_r = ‖ε_{θ+LoRA}(x_t, t, c_r) − sg[ε_θ(x_t, t, c_r)]‖²`` on retain images;
       ``L = w_f·L_f + w_r·L_r`` (``forget_weight``, ``retain_weight``; the authors' benchmark setting 0.3 / 1.0,
       with r 16, α 4, lr 6e-4). No noise target is used.

    t is drawn uniformly (as in the public code; the paper's concept-specific timestep sampling is not
    implemented). ``surrogate`` is the surrogate concept's prompt (e.g. ``"a photo of a shirt"``); ``None`` uses
    the retain batch's prompts instead (a deviation: several surrogates at once). The adapter is injected into the
    model in place (``peft.inject_adapter_in_model``) when unlearning starts, so the optimizer must be built after
    :meth:`setup` (``UnlearningModule`` does so).

    Args:
        module_fraction: Fraction of the candidate modules that get LoRA (``sparsity_inclusiveness``).
        target_modules: Name suffixes of the candidate ``nn.Linear`` modules.
        rank: LoRA rank r.
        lora_alpha: LoRA α.
        surrogate: Prompt(s) of the surrogate concept (``None``: the retain batch's prompts).
        max_batches: Cap on forget batches used for the saliency (``None``: all).
        forget_weight: w_f.
        retain_weight: w_r.
        retain_loss: ``"distill"`` (the paper's L_r) or ``"none"``.
        mask: Must be ``None``: SPARE localises with its own saliency.
        seed: Seed of the LoRA initialisation.
    """

    supported_tasks = ("diffusion",)
    retain_losses = _RETAIN

    def __init__(
        self,
        module_fraction: float = 0.5,
        target_modules: Sequence[str] = ("to_q", "to_k", "to_v", "to_out.0"),
        rank: int = 16,
        lora_alpha: float = 4.0,
        surrogate: Sequence[str] | str | None = None,
        max_batches: int | None = None,
        forget_weight: float = 0.3,
        retain_weight: float = 1.0,
        retain_loss: str = "distill",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        if mask is not None:
            raise ValueError(f"`mask` should be None for SPARE, which localises with its own saliency; got {mask!r}.")
        check_fraction("module_fraction", module_fraction)
        check_int("rank", rank, minimum=1)
        check_positive("lora_alpha", lora_alpha)
        check_int("max_batches", max_batches, minimum=1, optional=True)
        if isinstance(target_modules, str) or not target_modules:
            raise ValueError(f"`target_modules` should be a non-empty list of module-name suffixes, got {target_modules!r}.")
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, seed=seed)  # type: ignore[arg-type]
        self.module_fraction = float(module_fraction)
        self.target_modules = list(target_modules)
        self.rank = rank
        self.lora_alpha = float(lora_alpha)
        self.surrogate = [surrogate] if isinstance(surrogate, str) else (list(surrogate) if surrogate is not None else None)
        self.max_batches = max_batches
        self.add_state("selected", [])
        self.add_state("saliency", {})
        self.add_state("_surrogate", None, persistent=False)
        self._model: nn.Module | None = None

    # ------------------------------------------------------------------ localisation
    def candidates(self, model: nn.Module) -> list[str]:
        """The ``nn.Linear`` modules whose names end with one of ``target_modules``."""
        return [
            n for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and any(n == t or n.endswith("." + t) for t in self.target_modules)
        ]

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        try:
            import peft
        except ImportError:
            from lightning_unlearn._errors import missing_extra

            raise missing_extra("peft", "llm") from None
        candidates = self.candidates(model)
        if not candidates:
            raise ValueError(f"`target_modules` {self.target_modules} match no nn.Linear module of {type(model).__name__}.")
        if not self.selected:  # a resumed run keeps the modules it chose
            grads = SaliencyMask(max_batches=self.max_batches).gradients(model, task, forget_loader)
            self.saliency = {n: float(grads[f"{n}.weight"].abs().mean()) for n in candidates}
            self.selected = select_modules(self.saliency, self.module_fraction)
        torch.manual_seed(self.seed)
        config = peft.LoraConfig(r=self.rank, lora_alpha=self.lora_alpha, lora_dropout=0.0, target_modules=list(self.selected))
        for param in model.parameters():
            param.requires_grad_(False)
        peft.inject_adapter_in_model(config, model, adapter_name="spare")
        for name, param in model.named_parameters():
            param.requires_grad_("lora_" in name)
        self._model = model
        self._surrogate = encode_once(task, self.surrogate)

    @contextmanager
    def teacher(self, model: nn.Module) -> Iterator[nn.Module]:
        """The same UNet with its SPARE adapters disabled (θ), inside the block."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
        for layer in layers:
            layer.enable_adapters(False)
        try:
            yield model
        finally:
            for layer in layers:
                layer.enable_adapters(True)

    # ------------------------------------------------------------------ objective
    def forget_loss(self, ctx: StepContext) -> Tensor:
        batch = ctx.batch("forget")
        surrogate = surrogate_condition(ctx, self._surrogate)
        with self.teacher(ctx.model) as teacher:
            target = prediction_under(teacher, ctx.task, batch, surrogate)
        return ctx.loss("forget", targets=target).mean()

    def retain_loss(self, ctx: StepContext) -> Tensor | None:
        if not self.uses_retain or ctx.retain is None:
            return None
        batch = ctx.batch("retain")
        with self.teacher(ctx.model) as teacher:
            target = prediction_under(teacher, ctx.task, batch, ctx.task.condition(batch))  # type: ignore[attr-defined]
        return ctx.loss("retain", targets=target).mean()

    def hparams(self) -> dict[str, Any]:
        out = super().hparams()
        out["target_modules"] = ",".join(self.target_modules)
        return out


def select_modules(saliency: dict[str, float], fraction: float) -> list[str]:
    """The ``round(fraction · n)`` (at least one) modules of highest saliency, in the model's order."""
    k = max(1, round(fraction * len(saliency)))
    top = set(sorted(saliency, key=lambda n: -saliency[n])[:k])
    return [n for n in saliency if n in top]
