"""Retrain: the oracle, trained from scratch on the retain set only."""

from __future__ import annotations

import sys
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from lightning_unlearn.methods.base import _RETAIN_LOSSES, RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.tasks.base import Task

_HF_FLAG = "_is_hf_initialized"


def _pretrained_models(model: nn.Module) -> list[nn.Module]:
    """The outermost ``transformers.PreTrainedModel`` submodules of ``model`` (``model`` itself when it is one);
    empty when ``transformers`` is not loaded (then ``model`` holds none)."""
    transformers = sys.modules.get("transformers")
    pretrained = getattr(transformers, "PreTrainedModel", None)
    if pretrained is None:
        return []
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        if isinstance(module, pretrained):
            found.append(module)
            return
        for child in module.children():
            visit(child)

    visit(model)
    return found


def _hf_initialize(model: nn.Module) -> None:
    """Run a ``transformers`` model's own weight initialisation (its ``_init_weights``) over every module again.

    ``transformers`` marks modules and tensors it has initialised or loaded (``_is_hf_initialized``) and its init
    functions skip them; the marks are cleared first so that every tensor is drawn again.
    """
    for module in model.modules():
        module.__dict__.pop(_HF_FLAG, None)
        for tensor in [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
            if tensor is not None:
                tensor.__dict__.pop(_HF_FLAG, None)
    initialize = getattr(model, "initialize_weights", None)
    if callable(initialize):
        initialize()  # transformers >= 5: dispatches each sub-model's own `_init_weights`
    else:
        model.apply(model._init_weights)  # type: ignore[operator]  # transformers 4


def reinitialize_model(model: nn.Module, keep_frozen: bool = False) -> None:
    """Re-initialise every parameter of ``model`` in place, using the global torch RNG; raise if any would keep its
    trained value.

    Every submodule's ``reset_parameters()`` is called (``nn.Linear``, ``nn.Embedding``, norms, convolutions:
    PyTorch's defaults; batch norms also reset their running statistics), then every ``transformers``
    ``PreTrainedModel`` in ``model`` re-runs its own ``_init_weights`` on all its modules (so e.g. GPT-2's
    ``Conv1D`` layers, which have no ``reset_parameters``, and Llama's RMSNorms are re-drawn the model's way).
    Tied weights stay tied (they are one tensor).

    The check is exact: every floating-point parameter is first filled with NaN, so a parameter that no
    initialisation wrote to (or wrote only in part) still holds a NaN afterwards. Then the trained values are
    put back (the model is left as it was) and a ``ValueError`` names those parameters. A parameter that the
    initialisation sets to the value it had before (a zero bias of a model that was never trained) is re-initialised
    all the same and passes. With ``keep_frozen``, modules whose parameters are all frozen (``requires_grad=False``: a
    pretrained part that training never updates, such as a VLM's vision tower) keep their parameters and buffers
    (Retrain's oracle; a random teacher re-draws everything).
    """
    params = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
    saved = [p.detach().to("cpu", copy=True) for _, p in params]
    # Frozen parts (every parameter requires_grad=False, e.g. a VLM's pretrained vision tower) are not trained on the
    # data: they keep their values and their buffers (batch-norm statistics).
    frozen_modules = [
        m
        for m in model.modules()
        if keep_frozen and list(m.parameters(recurse=False)) and not any(p.requires_grad for p in m.parameters(recurse=False))
    ]
    frozen = [t for m in frozen_modules for t in (*m.parameters(recurse=False), *m.buffers(recurse=False))]
    frozen_saved = [t.detach().clone() for t in frozen]

    def restore() -> None:
        with torch.no_grad():
            for (_, p), value in zip(params, saved):
                p.copy_(value.to(p.device))

    def keep_frozen() -> None:
        with torch.no_grad():
            for t, value in zip(frozen, frozen_saved):
                t.copy_(value)

    try:
        with torch.no_grad():
            for _, p in params:
                p.fill_(float("nan"))
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
        for pretrained in _pretrained_models(model):
            _hf_initialize(pretrained)
        keep_frozen()
    except BaseException:
        restore()
        raise
    kept = [n for n, p in params if bool(torch.isnan(p).any())]
    if kept:
        restore()
        owners = sorted({type(model.get_submodule(n.rpartition(".")[0])).__name__ if "." in n else type(model).__name__ for n in kept})
        raise ValueError(
            f"Retrain cannot re-initialise {len(kept)} of the model's {len(params)} parameters: {kept[:12]}"
            f"{'...' if len(kept) > 12 else ''} (in {owners}). Their modules have no `reset_parameters()` and no "
            "transformers `_init_weights` covers them, so the oracle would keep their trained values. Give those "
            "modules a `reset_parameters()` method, or pass `reinitialize=False` (plain fine-tuning on the retain "
            "set, not an oracle). The model was left unchanged."
        )


@register_method(name="retrain")
class Retrain(UnlearningMethod):
    """Exact unlearning: re-initialise the model and train it on the retain set only.

    The gold standard every approximate method is measured against ("retrain from scratch",
    e.g. Bourtoule et al., "Machine Unlearning", IEEE S&P 2021, arXiv 1912.03817). Its cost is a
    full training run; benchmarks report every other method's time as a fraction of it.

    Args:
        reinitialize: Re-initialise every parameter before training, seeded by ``seed``
            (:func:`reinitialize_model`: each module's ``reset_parameters()``, then a ``transformers`` model's own
            ``_init_weights``); a parameter nothing re-initialises is an error, since an oracle that keeps trained
            weights is no oracle. ``False`` keeps the starting weights, which makes this plain fine-tuning on the
            retain set.
        forget_weight: Unused (retraining never uses the forget batch); accepted like every method's.
        retain_weight: Weight of the retain loss (the only term).
        retain_loss: ``"nll"`` only: the task's loss on the retain data (distilling the original would leak
            what it knows about the forget set).
        mask: Optional parameter mask: entries outside it keep their re-initialised values (they are not trained).
        seed: Seed of the re-initialisation.
    """

    uses_forget = False
    retain_losses = {"nll": _RETAIN_LOSSES["nll"]}

    def __init__(
        self,
        reinitialize: bool = True,
        forget_weight: float = 0.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.reinitialize = reinitialize

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        if not self.reinitialize:
            return
        devices = {p.device for p in model.parameters()}
        with torch.random.fork_rng(devices=[d for d in devices if d.type == "cuda"]):
            torch.manual_seed(self.seed)
            reinitialize_model(model, keep_frozen=True)

    def forget_loss(self, ctx: StepContext) -> Tensor | None:
        return None
