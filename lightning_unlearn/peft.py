"""Unlearn with a LoRA adapter (``peft``) instead of the full weights.

``UnlearningModule(model, method, peft={"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]})``
wraps ``model`` (after its ``original`` weights are loaded) with :func:`peft.get_peft_model`, so only
the adapter's parameters train, whatever the method. The dict holds :class:`peft.LoraConfig` keyword
arguments (the LightningCLI-friendly form); a ready ``peft.PeftConfig`` is accepted too.

The **reference model** θ₀ of the methods that need one (NPO, SCRUB, RMU, ASU, KL retain terms, ...)
is then the very same network with the adapter disabled (:class:`AdapterDisabledReference`), not a
second copy of the weights: while the adapter is the identity when unlearning starts (LoRA's
``B = 0``) and only adapter parameters train, the adapter-disabled network *is* θ₀ for the whole run.
:func:`adapter_disabled_reference` checks both conditions and otherwise returns ``None``, so that the
method falls back to a frozen full copy (with a warning): e.g. an adapter that was already trained,
PiSSA/OLoRA-style initialisations (they change the base weights), or ``bias="all"``.

Gradient checkpointing (``UnlearningModule(gradient_checkpointing=True)``, see
:func:`enable_gradient_checkpointing`) also calls ``enable_input_require_grads``: with re-entrant
checkpointing (``{"use_reentrant": True}``) and frozen embeddings, the checkpointed layers' inputs do
not require grad, so their LoRA weights would get no gradient at all. (``transformers`` 5 checkpoints
non-reentrantly by default and enables input grads itself; both are made explicit here.)

Saving: :class:`~lightning_unlearn.callbacks.SaveWeights` writes the ``PeftModel``'s own state dict
(the base weights plus the adapter, under peft's key names).
:class:`~lightning_unlearn.callbacks.SaveMergedWeights` instead writes
the plain network with the adapter merged in (:func:`merged_model`), loadable without ``peft`` into
the original architecture (e.g. as another run's ``original``).

``peft`` is an optional dependency (the ``llm`` extra), imported only when a LoRA is requested.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import missing_extra

__all__ = [
    "AdapterDisabledReference",
    "SaveMergedWeights",  # noqa: F822  (resolved lazily by the module __getattr__ below)
    "adapter_disabled_reference",
    "apply_peft",
    "enable_gradient_checkpointing",
    "is_peft_model",
    "lora_config",
    "merged_model",
]


def _import_peft() -> Any:
    try:
        import peft
    except ImportError as err:
        raise missing_extra("peft", "llm") from err
    return peft


def is_peft_model(model: Any) -> bool:
    """Whether ``model`` is a ``peft.PeftModel`` (``False`` without importing ``peft`` when it is not loaded)."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


# ---------------------------------------------------------------------------------- configuration
def lora_config(spec: Any) -> Any:
    """A ``peft.PeftConfig`` from ``spec``: a ``PeftConfig`` (returned as is) or a mapping of ``LoraConfig`` kwargs.

    The mapping is checked first so that a typo fails with the list of valid keys, and ``r``,
    ``lora_alpha`` and ``lora_dropout`` with their allowed ranges.
    """
    peft = _import_peft()
    if isinstance(spec, peft.PeftConfig):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(
            "`peft` should be a dict of peft.LoraConfig arguments (e.g. {'r': 8, 'lora_alpha': 16, "
            f"'target_modules': ['q_proj', 'v_proj']}}) or a peft.PeftConfig, got {type(spec).__name__} {spec!r}."
        )
    fields = {f.name for f in dataclasses.fields(peft.LoraConfig) if f.init}
    unknown = sorted(str(k) for k in spec if k not in fields)
    if unknown:
        raise ValueError(f"`peft` has unknown LoraConfig argument(s) {unknown}; valid ones include {sorted(fields)}.")
    r = spec.get("r", 8)
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"`peft['r']` (the LoRA rank) should be an int >= 1, got {r!r}.")
    alpha = spec.get("lora_alpha", 8)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ValueError(f"`peft['lora_alpha']` should be a number > 0, got {alpha!r}.")
    dropout = spec.get("lora_dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"`peft['lora_dropout']` should lie in [0, 1), got {dropout!r}.")
    try:
        return peft.LoraConfig(**dict(spec))
    except (TypeError, ValueError) as err:
        raise ValueError(f"`peft` is not a valid LoraConfig ({err}).") from None


def apply_peft(model: nn.Module, spec: Any) -> nn.Module:
    """Wrap ``model`` with ``peft.get_peft_model`` for the config ``spec`` (see :func:`lora_config`).

    Only the adapter's parameters are left trainable (peft freezes the rest). ``model`` must not
    already be a ``PeftModel`` and the config must match at least one of its modules.
    """
    config = lora_config(spec)
    peft = _import_peft()
    if is_peft_model(model):
        raise ValueError(
            "`model` is already a peft.PeftModel; pass the plain model with `peft=...`, or the PeftModel with `peft=None`."
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*deprecated", category=FutureWarning)
        try:
            wrapped = peft.get_peft_model(model, config)
        except ValueError as err:
            raise ValueError(
                f"Could not add the {config.peft_type.value} adapter to {type(model).__name__} ({err}). Check "
                "`target_modules`: it names the layers to adapt (e.g. ['q_proj', 'v_proj'] for Llama attention, or "
                "'all-linear')."
            ) from None
    if not any(p.requires_grad for p in wrapped.parameters()):
        raise ValueError(f"The {config.peft_type.value} adapter added no trainable parameter to {type(model).__name__}.")
    return wrapped


# ---------------------------------------------------------------------------------- the reference
class AdapterDisabledReference(nn.Module):
    """θ₀ as a view of a ``PeftModel``: calling it runs the shared model with its adapters disabled, in eval mode.

    Holds no weights of its own (its ``state_dict`` is empty and ``.to``, ``.train``/``.eval`` and
    ``requires_grad_`` leave the shared model alone), so no second copy of the network exists. Like a
    frozen copy it can be called with gradients enabled (e.g. for gradients w.r.t. its inputs); its
    weights are frozen and the library's methods call it under ``torch.no_grad``.

    For code that treats the reference like the model itself, it delegates:

    * ``named_modules``/``modules``/``get_submodule``: the shared model's modules, under the same
      names as in the trained model (RMU hooks a decoder layer; ASU patches the attention modules'
      ``scaling`` around a reference call; both reach the shared modules this way);
    * ``named_parameters``/``parameters``/``named_buffers``: the tensors the adapter-disabled network
      computes with, i.e. the shared model's minus the adapters' (frozen base weights);
    * ``generate`` (adapters disabled) and any other public attribute (``config``, ``generation_config``, ...).

    The modules' train/eval flags are restored after every call, even when it raises (RMU stops the
    forward pass with an exception once its layer has run).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not callable(getattr(model, "disable_adapter", None)):
            raise TypeError(f"AdapterDisabledReference needs a peft.PeftModel (with `disable_adapter`), got {type(model).__name__}.")
        object.__setattr__(self, "_peft_model", model)  # not registered: the wrapper owns no submodule
        self.eval()

    @property
    def model(self) -> nn.Module:
        """The shared ``PeftModel``."""
        return self.__dict__["_peft_model"]

    @contextmanager
    def disabled(self) -> Iterator[nn.Module]:
        """Inside the block the shared model runs without its adapters, in eval mode; both are restored on exit."""
        model = self.model
        modes = [(module, module.training) for module in model.modules()]
        try:
            model.eval()
            with model.disable_adapter():
                yield model
        finally:
            for module, mode in modes:
                module.training = mode

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self.disabled() as model:
            return model(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        with self.disabled() as model:
            return model.generate(*args, **kwargs)

    # ------------------------------------------------------------------ delegation to the shared model
    def named_modules(self, memo: set[nn.Module] | None = None, prefix: str = "", remove_duplicate: bool = True):  # type: ignore[override]
        return self.model.named_modules(memo, prefix, remove_duplicate)

    def get_submodule(self, target: str) -> nn.Module:
        return self.model.get_submodule(target)

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True) -> Iterator[tuple[str, nn.Parameter]]:
        adapter = _adapter_name_test(self.model)
        for name, param in self.model.named_parameters(prefix, recurse, remove_duplicate):
            if not adapter(name):
                yield name, param

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        adapter = _adapter_name_test(self.model)
        for name, buffer in self.model.named_buffers(prefix, recurse, remove_duplicate):
            if not adapter(name):
                yield name, buffer

    def requires_grad_(self, requires_grad: bool = True) -> AdapterDisabledReference:
        if requires_grad:
            raise RuntimeError("The adapter-disabled reference is frozen: its weights are the model's base weights.")
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Nothing to do: the reference's (shared, frozen) weights never get gradients from it."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            model = self.__dict__.get("_peft_model")
            if model is None or name.startswith("_"):
                raise
            return getattr(model, name)

    def extra_repr(self) -> str:
        return f"{type(self.model).__name__} with its adapters disabled (shared weights)"


def _adapter_name_test(model: nn.Module):
    """A predicate on parameter names: whether the name belongs to an adapter (LoRA ``lora_*`` or a ``modules_to_save`` copy)."""
    prefix = getattr(getattr(model, "base_model", None), "prefix", None) or "lora_"

    def is_adapter(name: str) -> bool:
        return any(part.startswith(prefix) or part == "modules_to_save" for part in name.split("."))

    return is_adapter


def _identity_problem(model: nn.Module) -> str | None:
    """Why the adapter-disabled ``model`` is not θ₀ for a whole run (``None``: it is)."""
    peft = _import_peft()
    active = list(getattr(model, "active_adapters", None) or [])
    configs = getattr(model, "peft_config", {})
    if not active:
        return "it has no active adapter"
    for name in active:
        config = configs.get(name)
        if config is None or config.peft_type != peft.PeftType.LORA:
            kind = getattr(getattr(config, "peft_type", None), "value", type(config).__name__)
            return f"adapter {name!r} is a {kind} adapter, not LoRA (only LoRA's identity initialisation is checked)"
        if getattr(config, "bias", "none") != "none":
            return f"adapter {name!r} trains the base biases (bias={config.bias!r}), which disabling it does not undo"
    is_adapter = _adapter_name_test(model)
    trained = [n for n, p in model.named_parameters() if p.requires_grad and not is_adapter(n)]
    if trained:
        return f"base parameters are trainable too ({trained[:3]}), which disabling the adapter does not undo"
    found = False
    for name, param in model.named_parameters():
        parts = name.split(".")
        for i, part in enumerate(parts[:-1]):
            if part in ("lora_B", "lora_embedding_B") and parts[i + 1] in active:
                found = True
                if bool(param.detach().ne(0).any()):
                    return f"its LoRA B matrices are not zero ({name}): the adapter already changes the model"
    if not found:
        return "no LoRA B matrix of the active adapters was found"
    for module in model.modules():
        copies, original = getattr(module, "modules_to_save", None), getattr(module, "original_module", None)
        if isinstance(copies, nn.ModuleDict) and isinstance(original, nn.Module):
            reference = original.state_dict()
            for name in active:
                if name in copies and any(
                    not torch.equal(v, reference[k]) for k, v in copies[name].state_dict().items() if k in reference
                ):
                    return f"its modules_to_save copy of adapter {name!r} differs from the original module"
    return None


def adapter_disabled_reference(model: nn.Module) -> AdapterDisabledReference | None:
    """θ₀ as ``model`` with its adapters disabled, when that is exact; ``None`` when ``model`` is no ``PeftModel``.

    Exact when, at setup, the active adapters are LoRA adapters at their identity initialisation
    (every ``lora_B`` is zero, ``modules_to_save`` copies equal their originals) and only adapter
    parameters are trainable (so training never changes what the disabled network computes). For a
    ``PeftModel`` that fails the check this warns and returns ``None`` (the caller keeps a full copy).
    """
    if not is_peft_model(model):
        return None
    problem = _identity_problem(model)
    if problem is not None:
        warnings.warn(
            f"The reference model is a full frozen copy of the PeftModel, not the adapter-disabled base, because {problem}.",
            UserWarning,
            stacklevel=3,
        )
        return None
    return AdapterDisabledReference(model)


# ---------------------------------------------------------------------------------- gradient checkpointing
def enable_gradient_checkpointing(model: nn.Module, checkpoint_kwargs: Mapping[str, Any] | None = None) -> None:
    """Turn on (activation / gradient) checkpointing of a ``transformers`` model, peft-wrapped or not.

    Also enables gradients on the input embeddings' output (``enable_input_require_grads``, once):
    with re-entrant checkpointing a checkpointed block whose inputs do not require grad returns
    outputs without a graph, so an adapter inside it (embeddings frozen) would get no gradient.
    ``checkpoint_kwargs`` go to ``torch.utils.checkpoint.checkpoint`` (e.g. ``{"use_reentrant": True}``;
    ``None``: the library's default).
    """
    base = model.get_base_model() if is_peft_model(model) else model
    kwargs = None if checkpoint_kwargs is None else dict(checkpoint_kwargs)
    if callable(getattr(base, "activation_checkpointing_enable", None)):  # transformers >= 5
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    elif callable(getattr(base, "gradient_checkpointing_enable", None)):
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        raise TypeError(
            f"`gradient_checkpointing` needs a transformers model (with `gradient_checkpointing_enable`); "
            f"{type(base).__name__} has none."
        )
    if callable(getattr(base, "enable_input_require_grads", None)):
        if callable(getattr(base, "disable_input_require_grads", None)):
            base.disable_input_require_grads()  # exactly one hook, whoever enabled it before
        base.enable_input_require_grads()


# ---------------------------------------------------------------------------------- saving
def merged_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its adapters merged into the base weights and removed (``merge_and_unload``).

    The trained ``model`` is untouched (the copy needs the memory of one more model while it
    exists). A model that is no ``PeftModel`` is returned as is.
    """
    if not is_peft_model(model):
        return model
    return copy.deepcopy(model).merge_and_unload().eval()


def __getattr__(name: str) -> Any:
    # ``SaveMergedWeights`` moved to :mod:`lightning_unlearn.callbacks.save_weights` (callbacks live in
    # ``callbacks/``); imported lazily here so that old imports work and this module stays import-cycle free.
    if name == "SaveMergedWeights":
        from lightning_unlearn.callbacks.save_weights import SaveMergedWeights

        return SaveMergedWeights
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
