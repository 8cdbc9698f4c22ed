"""The method base: owns the plumbing so that a method overrides one or two hooks.

The base owns, once for every method:

* the **reference model** (a frozen copy of the model as it was when unlearning started; for a LoRA
  ``PeftModel``, the same network with its adapter disabled: :func:`reference_model`),
* the **retain objective** (``"nll"`` = task loss on the retain batch, ``"kl"`` = KL to the
  reference on the retain batch, ``"none"``),
* **loss weighting** ``L = forget_weight * L_forget + retain_weight * L_retain + L_reg``,
* **parameter masks** (only masked entries receive gradient; e.g. SalUn's saliency mask),
* the loss **parts** returned for logging (``forget_loss``, ``retain_loss``, ...),
* a clear error on a non-finite loss, before anything touches the weights.

A method subclasses :class:`UnlearningMethod` and overrides :meth:`forget_loss`, and sometimes
:meth:`regularizer` or :meth:`prepare`. Methods never subclass each other; shared pieces are
composed (masks, the retain objective, the reference).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_positive
from lightning_unlearn._registry import Registry
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.peft import adapter_disabled_reference
from lightning_unlearn.tasks.base import Task

RetainLoss = Literal["nll", "kl", "none"]
_RETAIN_LOSSES: dict[str, str] = {
    "nll": "the task's loss (cross-entropy for classifiers) on the retain batch",
    "kl": "KL(p_reference || p_model) on the retain batch",
    "none": "no retain term",
}

METHODS: Registry[UnlearningMethod] = Registry("method")


def register_method(*, name: str):
    """Register a method class under a unique lowercase ``name`` (keyword-only)."""
    return METHODS.register(name=name)


class NonFiniteLossError(FloatingPointError):
    """Raised when an unlearning loss becomes NaN or infinite; the weights are left untouched."""


@dataclass
class StepContext:
    """Everything a method's hooks may need for one optimisation step.

    Model outputs are computed lazily and cached, so a method that asks twice for the forget
    outputs (e.g. for a loss and a KL term) runs one forward pass.
    """

    model: nn.Module
    task: Task
    forget: Any | None
    retain: Any | None
    reference: nn.Module | None = None
    epoch: int = 0
    max_epochs: int | None = None
    global_step: int = 0
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def batch(self, split: Literal["forget", "retain"]) -> Any:
        batch = self.forget if split == "forget" else self.retain
        if batch is None:
            raise ValueError(f"This method needs a {split!r} batch but none was given.")
        return batch

    def outputs(self, split: Literal["forget", "retain"]) -> Any:
        key = f"out/{split}"
        if key not in self._cache:
            self._cache[key] = self.task.forward(self.model, self.batch(split))
        return self._cache[key]

    def reference_outputs(self, split: Literal["forget", "retain"]) -> Any:
        if self.reference is None:
            raise RuntimeError("This method needs a reference model; set `needs_reference = True` on the class.")
        key = f"ref/{split}"
        if key not in self._cache:
            with torch.no_grad():
                self._cache[key] = self.task.forward(self.reference, self.batch(split))
        return self._cache[key]

    def loss(self, split: Literal["forget", "retain"], targets: Tensor | None = None) -> Tensor:
        """Per-sample task loss ``[B]`` on a split, optionally against other ``targets``."""
        return self.task.per_sample_loss(self.outputs(split), self.batch(split), targets)

    @property
    def progress(self) -> float:
        """Fraction of the unlearning run done, in ``[0, 1]`` (0 when the length is unknown)."""
        if not self.max_epochs:
            return 0.0
        return min(1.0, self.epoch / self.max_epochs)


@dataclass
class LossOutput:
    loss: Tensor
    parts: dict[str, Tensor]


#: Task kind -> (what a method of that kind unlearns, the task class to pass), for :meth:`UnlearningMethod.check_task`.
_TASK_KINDS = {"classification": ("classifiers", "ClassificationTask"), "causal_lm": ("causal language models", "CausalLMTask")}


class UnlearningMethod:
    """Base class of every unlearning method.

    Args:
        forget_weight: Weight γ of the forget term.
        retain_weight: Weight α of the retain term (ignored when ``retain_loss="none"``).
        retain_loss: The retain objective: ``"nll"`` (task loss on retain data), ``"kl"`` (KL to
            the frozen reference on retain data) or ``"none"``.
        mask: Optional parameter mask; only its selected entries are updated.
        seed: Seed of the method's own randomness (random labels, control vectors, ...).
    """

    name: ClassVar[str] = "base"
    #: Whether the method needs a frozen copy of the model as it was before unlearning.
    needs_reference: ClassVar[bool] = False
    #: Whether the method's objective uses the forget batch at all (FT and Retrain do not).
    uses_forget: ClassVar[bool] = True
    #: The kinds of task the method applies to (``"classification"``, ``"causal_lm"``); benchmarks and the
    #: shared test matrices pick methods by it.
    supported_tasks: ClassVar[tuple[str, ...]] = ("classification", "causal_lm")

    def __init__(
        self,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("forget_weight", forget_weight, allow_zero=True)
        check_positive("retain_weight", retain_weight, allow_zero=True)
        check_choice("retain_loss", retain_loss, _RETAIN_LOSSES)
        if mask is not None and not isinstance(mask, ParameterMask):
            raise TypeError(f"`mask` should be a ParameterMask or None, got {type(mask).__name__}.")
        self.forget_weight = float(forget_weight)
        self.retain_weight = float(retain_weight)
        self.retain_loss_kind = retain_loss
        self.mask = mask
        self.seed = int(seed)
        self.reference: nn.Module | None = None
        self._masks: dict[str, Tensor] | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def uses_retain(self) -> bool:
        return self.retain_loss_kind != "none" and self.retain_weight > 0

    def setup(
        self, model: nn.Module, task: Task, forget_loader: Iterable | None = None, retain_loader: Iterable | None = None
    ) -> None:
        """Prepare for unlearning ``model``: build the reference, let the method prepare, build masks.

        Called once per process (every DDP rank) before the first step, with the model holding the
        weights to unlearn from. ``forget_loader`` / ``retain_loader`` iterate the forget and retain
        data in a fixed order (``None`` when not available, e.g. a retain-free setting).
        """
        self.check_task(task)
        if self.needs_reference or self.retain_loss_kind == "kl":
            self.reference = reference_model(model)
        if "retain_loader" in inspect.signature(self.prepare).parameters:
            self.prepare(model, task, forget_loader, retain_loader=retain_loader)
        else:  # a subclass written before `prepare` took the retain loader
            self.prepare(model, task, forget_loader)
        if self.mask is not None:
            self._masks = self.mask.build(model, task, forget_loader)

    def check_task(self, task: Task) -> None:
        """Raise a ``TypeError`` when ``task``'s ``kind`` is not among :attr:`supported_tasks` (tasks without a
        ``kind`` pass)."""
        kind = getattr(task, "kind", None)
        if kind is None or kind in self.supported_tasks:
            return
        what = " or ".join(_TASK_KINDS.get(k, (k, k))[0] for k in self.supported_tasks)
        wanted = " or ".join(_TASK_KINDS.get(k, (k, k))[1] for k in self.supported_tasks)
        raise TypeError(
            f"{type(self).__name__} unlearns {what}: it needs task={wanted}(); its task should be a {wanted}, "
            f"got {type(task).__name__}."
        )

    def to(self, device: torch.device | str) -> UnlearningMethod:
        """Move the method's own tensors (reference model, masks, own modules) to ``device``."""
        if self.reference is not None:
            self.reference.to(device)
        if self._masks is not None:
            self._masks = {k: m.to(device) for k, m in self._masks.items()}
        for module in self.modules().values():
            module.to(device)
        return self

    # ------------------------------------------------------------------ the method's own trainable state
    def modules(self) -> dict[str, nn.Module]:
        """Modules the method owns and trains beside the model (e.g. a projector head); default none.

        Their parameters join the optimizer (:meth:`parameters`) and their weights are saved in
        checkpoints (:meth:`state_dict`), so a resumed run continues with them.
        """
        return {}

    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of :meth:`modules`, to optimise together with the model's."""
        return [p for m in self.modules().values() for p in m.parameters() if p.requires_grad]

    def state_dict(self) -> dict[str, Any]:
        """The method's own state for checkpoints: its modules' weights plus :meth:`extra_state`."""
        state: dict[str, Any] = {f"module/{k}": m.state_dict() for k, m in self.modules().items()}
        state.update({f"extra/{k}": v for k, v in self.extra_state().items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (called after :meth:`setup` when resuming)."""
        modules = self.modules()
        extra: dict[str, Any] = {}
        for key, value in state.items():
            kind, _, name = key.partition("/")
            if kind == "module":
                if name not in modules:
                    raise KeyError(f"Checkpoint holds state of method module {name!r}, which {self.name!r} does not have ({sorted(modules)}).")
                modules[name].load_state_dict(value)
            elif kind == "extra":
                extra[name] = value
        if extra:
            self.load_extra_state(extra)

    def extra_state(self) -> dict[str, Any]:
        """Tensors/values (not modules) a method must carry across a resume; default none."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`."""

    def train(self) -> None:
        """Keep the reference in eval mode whatever the caller does to the model."""
        if self.reference is not None:
            self.reference.eval()

    # ------------------------------------------------------------------ hooks to override
    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None = None) -> None:
        """Optional one-off preparation (re-initialisation, precomputed targets, ...)."""

    def forget_loss(self, ctx: StepContext) -> Tensor | None:
        """The forget objective on ``ctx.forget`` (a scalar to *minimise*), or ``None``."""
        return None

    def retain_loss(self, ctx: StepContext) -> Tensor | None:
        """The retain objective on ``ctx.retain``; the base implements ``retain_loss`` kinds."""
        if not self.uses_retain or ctx.retain is None:
            return None
        if self.retain_loss_kind == "nll":
            return ctx.loss("retain").mean()
        return ctx.task.kl_divergence(ctx.outputs("retain"), ctx.reference_outputs("retain"), ctx.retain).mean()

    def regularizer(self, ctx: StepContext) -> Tensor | None:
        """An extra term on the parameters (e.g. an l1 penalty), or ``None``."""
        return None

    # ------------------------------------------------------------------ the step
    def loss(self, ctx: StepContext, *, include_retain: bool = True) -> LossOutput:
        """Combine the hooks into ``forget_weight * L_f + retain_weight * L_r + L_reg``.

        ``include_retain=False`` drops the retain term: the :class:`~lightning_unlearn.Unlearn`
        callback uses it when the user's own training step already supplies the retain objective.
        """
        if ctx.reference is None:
            ctx.reference = self.reference
        parts: dict[str, Tensor] = {}
        total: Tensor | None = None
        terms = [("forget_loss", self.forget_weight, self.forget_loss if self.uses_forget and ctx.forget is not None else None)]
        if include_retain:
            terms.append(("retain_loss", self.retain_weight, self.retain_loss))
        terms.append(("regularizer", 1.0, self.regularizer))
        for key, weight, hook in terms:
            if hook is None or weight == 0:
                continue
            value = hook(ctx)
            if value is None:
                continue
            parts[key] = value.detach()
            total = weight * value if total is None else total + weight * value
        if total is None:
            raise ValueError(f"Method {self.name!r} produced no loss term for this batch (is the forget or retain batch missing?).")
        if not torch.isfinite(total):
            detail = ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
            raise NonFiniteLossError(
                f"The {self.name!r} loss is not finite at step {ctx.global_step} ({detail}). The step was skipped and "
                "the weights are unchanged; lower the learning rate or the forget weight, or use a bounded "
                "forget loss (e.g. NPO instead of GA)."
            )
        parts["loss"] = total.detach()
        return LossOutput(total, parts)

    def before_optimizer_step(self, model: nn.Module) -> None:
        """Edit the model's gradients before each optimizer step; the base applies the mask.

        Every trainer path (``UnlearningModule``, the ``Unlearn`` callback) calls this after the
        backward pass, so a method may override it (e.g. to project gradients) and call ``super()``.
        """
        self.apply_mask(model)

    def apply_mask(self, model: nn.Module) -> None:
        """Zero the gradient of every parameter entry outside the mask (call before the optimizer step)."""
        if self._masks is None:
            return
        for name, param in model.named_parameters():
            if param.grad is None:
                continue
            mask = self._masks.get(name)
            if mask is None:
                param.grad.zero_()
            else:
                param.grad.mul_(mask.to(param.grad.dtype))

    @property
    def masks(self) -> dict[str, Tensor] | None:
        return self._masks

    # ------------------------------------------------------------------ reporting
    def hparams(self) -> dict[str, Any]:
        """The method's configuration, for logging and reports."""
        out = {k: v for k, v in vars(self).items() if not k.startswith("_") and isinstance(v, (int, float, str, bool))}
        out["method"] = self.name
        if self.mask is not None:
            out["mask"] = repr(self.mask)
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items() if k != "method")
        return f"{type(self).__name__}({args})"


def reference_model(model: nn.Module) -> nn.Module:
    """The frozen reference θ₀ of ``model``: a :func:`frozen_copy`, or for a ``peft.PeftModel`` whose adapter is
    still the identity, the same network with its adapters disabled (no second copy of the weights; see
    :class:`~lightning_unlearn.peft.AdapterDisabledReference`)."""
    shared = adapter_disabled_reference(model)
    return shared if shared is not None else frozen_copy(model)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy in eval mode with gradients off; a LightningModule's Trainer is not copied."""
    trainer = getattr(module, "_trainer", None)
    if trainer is not None:
        module._trainer = None  # type: ignore[assignment]
    try:
        clone = copy.deepcopy(module)
    finally:
        if trainer is not None:
            module._trainer = trainer  # type: ignore[assignment]
    return clone.eval().requires_grad_(False)

