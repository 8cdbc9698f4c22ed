"""The method base: owns the plumbing so that a method overrides one or two hooks.

The base owns, once for every method:

* the **base arguments** every method takes the same way: ``forget_weight``, ``retain_weight``,
  ``retain_loss``, ``mask`` and ``seed``,
* the **reference model** (a frozen copy of the model as it was when unlearning started; for a LoRA
  ``PeftModel``, the same network with its adapter disabled: :func:`~lightning_unlearn._weights.reference_model`),
* the **retain objective** (``"nll"`` = task loss on the retain batch, ``"kl"`` = KL to the
  reference on the retain batch, ``"none"``),
* the **dropout convention**: when there is a reference (which runs in eval mode), the model's dropout is set to 0
  for the run (:meth:`UnlearningMethod.restore_dropout` puts it back; ``UnlearningModule``, the ``Unlearn`` callback
  and ``ContinualUnlearner`` call it when their run ends), so the model and θ₀ are compared as the
  same deterministic function and e.g. NPO's log-ratio is exactly 0 at the first step,
* **loss weighting** ``L = forget_weight * L_forget + retain_weight * L_retain + L_reg``,
* **parameter masks** that freeze for real: entries outside the mask keep exactly their values from
  before unlearning, whatever the optimizer does (weight decay, momentum; :meth:`after_optimizer_step`),
* the method's **own state**, declared once (:meth:`add_state`, :meth:`register_module`, like
  torchmetrics' ``add_state``), so moving it, checkpointing it and DDP are generic,
* the loss **parts** returned for logging (``forget_loss``, ``retain_loss``, ...),
* a clear error on a non-finite loss, before anything touches the weights.

A method subclasses :class:`UnlearningMethod` and overrides :meth:`forget_loss`, and sometimes
:meth:`regularizer` or :meth:`prepare`. Methods never subclass each other; shared pieces are
composed (masks, the retain objective, the reference).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_positive
from lightning_unlearn._registry import Registry
from lightning_unlearn._weights import disable_dropout, frozen_copy, reference_model, restore_dropout
from lightning_unlearn.methods.masks import ParameterMask, check_masks_leave_trainable
from lightning_unlearn.tasks.base import Task

__all__ = [
    "METHODS",
    "LossOutput",
    "NonFiniteLossError",
    "RetainLoss",
    "StepContext",
    "UnlearningMethod",
    "frozen_copy",
    "reference_model",
    "register_method",
]

RetainLoss = Literal["nll", "kl", "none"]
_RETAIN_LOSSES: dict[str, str] = {
    "nll": "the task's loss (cross-entropy for classifiers) on the retain batch",
    "kl": "KL(p_reference || p_model) on the retain batch",
    "none": "no retain term",
}

METHODS: Registry[UnlearningMethod] = Registry("method")

_NO_REFERENCE = (
    "This method needs a reference model; set `needs_reference = True` on the class (or on the instance in "
    "`__init__` when it depends on the arguments) and call `setup` first."
)


def register_method(*, name: str):
    """Register a method class under a unique lowercase ``name`` (keyword-only)."""
    return METHODS.register(name=name)


class NonFiniteLossError(FloatingPointError):
    """Raised when an unlearning loss becomes NaN or infinite, before the step it would have driven.

    The weights are as the previous optimizer step left them, which may already be far off when finite steps
    diverged first (a huge learning rate): the engine adds their state (largest magnitude, non-finite values) to the
    message, and the ``Unlearn`` phase restores the weights it started from.
    """


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

    def require_reference(self) -> nn.Module:
        """The frozen reference θ₀; a ``RuntimeError`` that says how to get one when there is none."""
        if self.reference is None:
            raise RuntimeError(_NO_REFERENCE)
        return self.reference

    def reference_outputs(self, split: Literal["forget", "retain"]) -> Any:
        reference = self.require_reference()
        key = f"ref/{split}"
        if key not in self._cache:
            with torch.no_grad():
                self._cache[key] = self.task.forward(reference, self.batch(split))
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
_TASK_KINDS = {
    "classification": ("classifiers", "ClassificationTask"),
    "causal_lm": ("causal language models", "CausalLMTask"),
    "recommendation": ("recommenders", "RecommendationTask"),
    "diffusion": ("text-conditioned diffusion models", "DiffusionTask"),
    "vision_language": ("vision-language models", "VisionLanguageTask"),
}


class UnlearningMethod:
    """Base class of every unlearning method.

    Every method takes these five arguments, with these meanings (a method may change a default, restrict
    ``retain_loss`` to its :attr:`retain_losses`, or refuse a ``mask`` it builds itself, with an error):

    Args:
        forget_weight: Weight γ of the forget term (unused by methods that never use the forget batch,
            ``uses_forget = False``).
        retain_weight: Weight α of the retain term (ignored when ``retain_loss="none"``).
        retain_loss: The retain objective: ``"nll"`` (task loss on retain data), ``"kl"`` (KL to
            the frozen reference on retain data) or ``"none"``.
        mask: Optional parameter mask; only its selected entries change, the others keep their values exactly.
        seed: Seed of the method's own randomness (random labels, control vectors, ...).

    A method's own tensors and modules are declared once, in ``__init__`` (and filled in :meth:`prepare`):
    ``self.add_state("centroid", None)``, ``self.register_module("projector", None)``. The base
    then moves them (:meth:`to`), checkpoints them (:meth:`state_dict` / :meth:`load_state_dict`) and puts the
    trainable modules' parameters in the optimizer (:meth:`parameters`); no method overrides those.
    """

    name: ClassVar[str] = "base"
    #: Whether :meth:`setup` builds a frozen copy θ₀ of the model as it was before unlearning (:attr:`reference`).
    #: One idiom: a plain attribute, set on the class, or on the instance in ``__init__`` when it depends on the
    #: arguments (e.g. ``self.needs_reference = mismatch_weight > 0``). A ``"kl"`` retain loss builds it anyway.
    needs_reference: bool = False
    #: Whether the method's objective uses the forget batch at all (FT and Retrain do not).
    uses_forget: ClassVar[bool] = True
    #: The kinds of task the method applies to (``"classification"``, ``"causal_lm"``, ``"recommendation"``); benchmarks
    #: and the shared test matrices pick methods by it. The default covers every task: a method that only uses the
    #: generic primitives (per-sample loss, log-likelihood, KL to a reference) runs on any of them.
    supported_tasks: ClassVar[tuple[str, ...]] = ("classification", "causal_lm", "recommendation", "vision_language")
    #: The ``retain_loss`` values the method accepts, with what each means (the error text lists them).
    retain_losses: ClassVar[Mapping[str, str]] = _RETAIN_LOSSES

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
        check_choice("retain_loss", retain_loss, self.retain_losses)
        if mask is not None and not isinstance(mask, ParameterMask):
            raise TypeError(f"`mask` should be a ParameterMask or None, got {type(mask).__name__}.")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"`seed` should be an int, got {type(seed).__name__} {seed!r}.")
        if seed < 0:
            raise ValueError(f"`seed` should be >= 0, got {seed!r}.")
        self.forget_weight = float(forget_weight)
        self.retain_weight = float(retain_weight)
        self.retain_loss_kind = retain_loss
        self.mask = mask
        self.seed = int(seed)
        #: Data the model was never trained on, given to :meth:`setup` (``None``: none); see :meth:`setup`.
        self.holdout_loader: Iterable | None = None
        # The base's own state, declared like any method's: the reference and the masks are rebuilt by `setup`
        # from the weights being unlearned, so they stay out of checkpoints.
        self.register_module("reference", None, trainable=False, persistent=False)
        self.add_state("_masks", None, persistent=False)  # {param name: 0/1 tensor}; absent names are frozen
        self.add_state("_user_masks", None, persistent=False)  # what `mask` built, intersected with a method's own
        self.add_state("_frozen", {}, persistent=False)  # {param name: its values before unlearning}, masked-out ones

    # ------------------------------------------------------------------ declaring state
    def add_state(self, name: str, default: Any, *, persistent: bool = True) -> None:
        """Declare ``self.<name>`` part of the method's state, initialised to ``default``.

        The value may be a tensor, a (nested) dict/list/tuple of tensors, plain data (numbers, strings, lists,
        dicts), or ``None`` until :meth:`prepare` fills it. Tensors in it follow :meth:`to`; when ``persistent``
        it is saved by :meth:`state_dict` (as ``"state/<name>"``, on the CPU) and restored by
        :meth:`load_state_dict`. Like torchmetrics' ``Metric.add_state``.
        """
        self._check_state_name(name, "state")
        self.__dict__.setdefault("_state_names", {})[name] = bool(persistent)
        setattr(self, name, default)

    def register_module(self, name: str, module: nn.Module | None, *, trainable: bool = True, persistent: bool = True) -> None:
        """Declare ``self.<name>`` a module the method owns (``None`` until :meth:`prepare` builds it).

        It follows :meth:`to`; when ``persistent`` its weights are saved as ``"module/<name>"``. A ``trainable``
        module is one of :meth:`modules`: its parameters join the optimizer and it is registered on
        ``UnlearningModule`` (so DDP and precision apply to it). A frozen one (``trainable=False``) is kept in
        eval mode by :meth:`train`.
        """
        if module is not None and not isinstance(module, nn.Module):
            raise TypeError(f"`module` should be a torch.nn.Module or None, got {type(module).__name__}.")
        self._check_state_name(name, "module")
        self.__dict__.setdefault("_module_names", {})[name] = (bool(trainable), bool(persistent))
        setattr(self, name, module)

    def _check_state_name(self, name: str, kind: str) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"`name` should be a Python identifier, got {name!r}.")
        other = "_module_names" if kind == "state" else "_state_names"
        if name in self.__dict__.get(other, {}):
            taken = "module" if kind == "state" else "state"
            raise ValueError(f"{type(self).__name__} already declares {name!r} as a {taken}; pick another `name`.")

    def declared_modules(self) -> dict[str, nn.Module]:
        """Every module the method declared with :meth:`register_module` (the reference, a mask's or a teacher's frozen
        module, its own trainable modules) that is set: what follows the model's device and precision."""
        modules = {n: getattr(self, n) for n in self.__dict__.get("_module_names", {})}
        return {n: m for n, m in modules.items() if m is not None}

    # ------------------------------------------------------------------ lifecycle
    @property
    def uses_retain(self) -> bool:
        return self.retain_loss_kind != "none" and self.retain_weight > 0

    def setup(
        self,
        model: nn.Module,
        task: Task,
        forget_loader: Iterable | None = None,
        retain_loader: Iterable | None = None,
        *,
        holdout_loader: Iterable | None = None,
    ) -> None:
        """Prepare for unlearning ``model``: build the reference, let the method prepare, build masks.

        Called once per process (every DDP rank) before the first step, with the model holding the
        weights to unlearn from. ``forget_loader`` / ``retain_loader`` iterate the forget and retain
        data in a fixed order (``None`` when not available, e.g. a retain-free setting). ``holdout_loader``
        iterates data the model was never trained on (``None`` when there is none), kept as
        :attr:`holdout_loader` for the methods that need it (SCRUB+R's rewind).
        """
        self.check_task(task)
        self.holdout_loader = holdout_loader
        if self.needs_reference or self.retain_loss_kind == "kl":
            self.reference = reference_model(model)
            self._disable_dropout(model)
        self.prepare(model, task, forget_loader, retain_loader)
        if self.mask is not None:
            self._user_masks = self.mask.build(model, task, forget_loader)
            self.set_masks(self._masks)
        if self._masks is not None:
            check_masks_leave_trainable(self._masks, model, self.mask if self.mask is not None else self)
        self._frozen = {}
        self._snapshot_frozen(model)

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
        """Move every declared tensor and module (reference, masks, the method's own state) to ``device``."""
        for module in {**self.declared_modules(), **self.modules()}.values():
            module.to(device)
        for name in self.__dict__.get("_state_names", {}):
            setattr(self, name, move_data_to_device(getattr(self, name), device))
        return self

    def train(self) -> None:
        """Keep the reference and the other frozen modules in eval mode whatever the caller does to the model."""
        trainable = self.modules()
        for name, module in self.declared_modules().items():
            if name not in trainable:
                module.eval()

    # ------------------------------------------------------------------ the method's own state
    def modules(self) -> dict[str, nn.Module]:
        """Modules the method owns and trains beside the model (e.g. a projector head): the trainable modules
        declared with :meth:`register_module` (``None`` ones left out).

        Their parameters join the optimizer (:meth:`parameters`) and their weights are saved in
        checkpoints (:meth:`state_dict`), so a resumed run continues with them.
        """
        names = self.__dict__.get("_module_names", {})
        return {n: m for n, m in self.declared_modules().items() if names[n][0]}

    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of :meth:`modules`, to optimise together with the model's."""
        return [p for m in self.modules().values() for p in m.parameters() if p.requires_grad]

    def state_dict(self) -> dict[str, Any]:
        """The method's persistent state for checkpoints: ``"module/<name>"`` (module weights) and
        ``"state/<name>"`` (declared states, tensors on the CPU)."""
        names = self.__dict__.get("_module_names", {})
        modules = {n: m for n, m in self.declared_modules().items() if names[n][1]}
        modules.update(self.modules())
        state: dict[str, Any] = {f"module/{n}": m.state_dict() for n, m in modules.items()}
        for name, persistent in self.__dict__.get("_state_names", {}).items():
            if persistent:
                state[f"state/{name}"] = move_data_to_device(_detached(getattr(self, name)), "cpu")
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (called after :meth:`setup` when resuming).

        Checkpoints of earlier versions (method-specific ``"extra/<name>"`` entries) load too: an entry named
        like a declared state or module, or like a private one (``_<name>``), restores it; unknown entries are
        skipped with a warning.
        """
        legacy = {key.partition("/")[2]: value for key, value in state.items() if key.startswith("extra/")}
        entries = {k: v for k, v in state.items() if not k.startswith("extra/")}
        module_names, state_names = self.__dict__.get("_module_names", {}), self.__dict__.get("_state_names", {})
        for name, value in self.upgrade_legacy_state(legacy).items():
            if name not in module_names and name not in state_names and f"_{name}" in {**module_names, **state_names}:
                name = f"_{name}"
            kind = "module" if name in module_names else "state"
            entries.setdefault(f"{kind}/{name}", value)
        modules = {**self.declared_modules(), **self.modules()}
        states = self.__dict__.get("_state_names", {})
        unknown = []
        for key, value in entries.items():
            kind, _, name = key.partition("/")
            if kind == "module" and name in modules:
                modules[name].load_state_dict(value)
            elif kind == "state" and name in states:
                setattr(self, name, move_data_to_device(value, _device_of(getattr(self, name))))
            else:
                unknown.append(key)
        if unknown:
            rank_zero_warn(
                f"The checkpoint holds method state {sorted(unknown)} that {type(self).__name__} does not declare; it "
                f"was skipped (declared: modules {sorted(modules)}, states {sorted(states)})."
            )

    def upgrade_legacy_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """Convert the ``"extra/<name>"`` entries of a checkpoint written before :meth:`add_state` into
        ``{declared name: value}``; the default passes them through (most kept their names)."""
        return state

    # ------------------------------------------------------------------ hooks to override
    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        """Optional one-off preparation (re-initialisation, precomputed targets, ...), after the reference exists."""

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

    def on_run_end(self, model: nn.Module, task: Task) -> None:
        """Called once when the unlearning run ends, after its last step and before the model is saved or scored
        (``UnlearningModule`` at the end of its last epoch, the ``Unlearn`` callback after its phase). A method may
        edit the weights a last time here (SCRUB+R rewinds to an earlier checkpoint); the default does nothing."""

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
                f"The {self.name!r} loss is not finite at step {ctx.global_step} ({detail}). This step was not taken: "
                "the weights are as the previous optimizer step left them. Lower the learning rate or the forget "
                "weight, or use a bounded forget loss (e.g. NPO instead of GA)."
            )
        parts["loss"] = total.detach()
        return LossOutput(total, parts)

    def before_optimizer_step(self, model: nn.Module) -> None:
        """Edit the model's gradients before each optimizer step; the base applies the mask.

        Every trainer path (``UnlearningModule``, the ``Unlearn`` callback) calls this after the
        backward pass, so a method may override it (e.g. to project gradients) and call ``super()``.
        """
        self._snapshot_frozen(model)
        self.apply_mask(model)

    def _disable_dropout(self, model: nn.Module) -> None:
        """The dropout convention of methods with a reference: θ₀ runs in eval mode, so the model is compared with it
        without dropout. Otherwise, at the first step, NPO's log-ratio log π_θ − log π_θ₀ on GPT-2 (dropout 0.1) is
        off by up to 2 nats of pure dropout noise, and KL terms are not 0. As TRL's DPO trainer does by default
        (``disable_dropout``), every dropout probability of the model is set to 0 (train/eval flags untouched, so
        gradient checkpointing and batch norms are unaffected), with a warning naming them."""
        settings = disable_dropout(model)
        if not settings:
            return
        self.__dict__.setdefault("_dropout_settings", []).extend(settings)
        shown = sorted({f"{name or type(model).__name__}.{attribute}={value:g}" for name, _, attribute, value in settings})
        rank_zero_warn(
            f"{type(self).__name__} compares the model with its frozen reference θ₀, which runs in eval mode, so the "
            f"model's dropout is set to 0 while unlearning ({len(settings)} probabilities: {shown[:4]}"
            f"{'...' if len(shown) > 4 else ''}); both are then the same function at the first step. "
            "They are put back when the run ends (`method.restore_dropout()`)."
        )

    def restore_dropout(self) -> None:
        """Put back the model's dropout probabilities that :meth:`setup` set to 0 (methods with a reference)."""
        restore_dropout(self.__dict__.pop("_dropout_settings", []))

    def release_frozen(self) -> None:
        """Drop the kept values of the masked-out entries: the next step keeps their values as they are then. For the
        interleaved schedule, where the user's own training moves every weight between unlearning steps and the
        mask freezes the masked-out entries only during the steps that carry the forget term."""
        self._frozen = {}

    def after_optimizer_step(self, model: nn.Module) -> None:
        """Called right after each optimizer step; the base re-imposes the mask.

        Zeroed gradients are not enough to freeze an entry: AdamW's decoupled weight decay (and momentum
        from earlier steps) still moves it. So every masked-out entry is set back to its value from before
        unlearning: the masked-out entries of a partly masked parameter, and the whole of a parameter the mask
        leaves out entirely.
        """
        if self._masks is None:
            return
        with torch.no_grad():
            for name, param in model.named_parameters():
                frozen = self._frozen.get(name)
                if frozen is None:
                    continue
                mask = self._masks.get(name)
                if mask is None:
                    param.copy_(frozen.to(param.device))
                else:
                    param.copy_(torch.where(mask.to(param.device) != 0, param, frozen.to(param.device)))

    def apply_mask(self, model: nn.Module) -> None:
        """Zero the gradient of every entry outside the mask (call before the optimizer step).

        The gradients are zeroed, not dropped: an optimizer still counts the step for every parameter, so a
        parameter that joins the mask later (RAZOR's growing edit set) starts with the same Adam step count as
        the others; :meth:`after_optimizer_step` then undoes whatever weight decay or momentum moved.
        """
        if self._masks is None:
            return
        for name, param in model.named_parameters():
            if param.grad is None:
                continue
            mask = self._masks.get(name)
            if mask is None:
                param.grad.zero_()
            else:
                param.grad.mul_(mask.to(device=param.grad.device, dtype=param.grad.dtype))

    def set_masks(self, masks: dict[str, Tensor] | None) -> None:
        """Set the method's own parameter mask (e.g. RAZOR's edit set), intersected with the one built from
        ``mask``; ``None``: only ``mask``'s."""
        user = self._user_masks
        if masks is None or user is None:
            self._masks = masks if user is None else user
        else:
            self._masks = {n: m * user[n].to(m) for n, m in masks.items() if n in user}

    def _snapshot_frozen(self, model: nn.Module) -> None:
        """Keep the current values of every trainable parameter the mask leaves out, wholly or in part, not kept
        yet. Called at setup and before each step: at both points the masked-out entries still hold their values
        from before unlearning."""
        if self._masks is None:
            return
        for name, param in model.named_parameters():
            if not param.requires_grad or name in self._frozen:
                continue
            mask = self._masks.get(name)
            if mask is None or not bool((mask != 0).all()):
                self._frozen[name] = param.detach().clone()

    @property
    def masks(self) -> dict[str, Tensor] | None:
        """``{parameter name: 0/1 tensor}`` of the entries that may change (absent names are frozen); ``None``: all."""
        return self._masks

    # ------------------------------------------------------------------ reporting
    def hparams(self) -> dict[str, Any]:
        """The method's configuration, for logging and reports."""
        state = self.__dict__.get("_state_names", {})
        out = {
            k: v
            for k, v in vars(self).items()
            if not k.startswith("_") and k not in state and k != "needs_reference" and isinstance(v, (int, float, str, bool))
        }
        out["method"] = self.name
        if self.mask is not None:
            out["mask"] = repr(self.mask)
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items() if k != "method")
        return f"{type(self).__name__}({args})"


def _detached(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(v) for v in value)
    return value


def _device_of(value: Any) -> torch.device:
    """The device of the first tensor in ``value`` (CPU when it holds none)."""
    if isinstance(value, Tensor):
        return value.device
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    for item in items:
        device = _device_of(item)
        if device.type != "cpu":
            return device
    return torch.device("cpu")
