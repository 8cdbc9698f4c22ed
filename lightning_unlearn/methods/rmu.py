"""RMU: representation misdirection, steering a layer's activations on forget data to a fixed random vector."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_int, check_positive
from lightning_unlearn.methods.base import StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask, RegexMask
from lightning_unlearn.tasks.base import Task
from lightning_unlearn.tasks.causal_lm import CausalLMTask

RMUTokens = Literal["answer", "all"]
RMUTrainable = Literal["all", "down_proj"]
RMURetainLoss = Literal["activation", "none"]
_TOKENS = {"answer": "the answer tokens (labels != ignore_index)", "all": "every attended token (attention mask)"}
_TRAINABLE = {
    "all": "every parameter",
    "down_proj": "only the MLP down-projection (`trainable_module`) of decoder layers layer-2..layer",
}

#: Where the common causal-LM families keep their stack of decoder layers, in the order they are looked for
#: (a match is the module's whole name or its last components, e.g. ``base_model.model.transformer.h`` under PEFT).
DECODER_STACKS: tuple[str, ...] = (
    "model.layers",  # Llama, Mistral, Qwen2/3, Gemma, Phi, SmolLM
    "transformer.h",  # GPT-2, GPT-J, Bloom, Falcon
    "model.decoder.layers",  # OPT
    "gpt_neox.layers",  # GPT-NeoX, Pythia
    "language_model.layers",  # vision-language models
)

#: The MLP down-projection (the MLP's output layer) of a decoder layer of the common families, relative to the layer.
DOWN_PROJECTIONS: tuple[str, ...] = (
    "mlp.down_proj",  # Llama, Mistral, Qwen2/3, Gemma
    "mlp.c_proj",  # GPT-2
    "fc2",  # OPT
    "mlp.dense_4h_to_h",  # GPT-NeoX, Pythia
    "mlp.fc2",  # Phi
)
_RETAIN = {"activation": "MSE to the frozen reference's activations on D_r", "none": "no retain term"}


def rmu_control_vector(hidden_size: int, steering_coeff: float, seed: int) -> Tensor:
    """The control vector ``c·u/‖u‖`` with ``u ~ U[0, 1)^d`` drawn from a generator seeded by ``seed`` (float32, CPU)."""
    check_int("hidden_size", hidden_size)
    u = torch.rand(hidden_size, generator=torch.Generator().manual_seed(int(seed)))
    return steering_coeff * u / u.norm()


def masked_activation_mse(hidden: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean over samples of the mean over each sample's selected tokens of ``mean_d (h − target)²``.

    ``hidden`` is ``[B, T, D]``, ``target`` broadcasts to it (a ``[D]`` control vector or ``[B, T, D]``
    activations) and ``mask`` is ``[B, T]``; computed in float32. A sample without selected tokens
    contributes 0.
    """
    per_token = (hidden.float() - target.float()).pow(2).mean(-1)
    weights = mask.to(per_token.dtype)
    return ((per_token * weights).sum(-1) / weights.sum(-1).clamp_min(1)).mean()


def _module_lists(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and n]


def _matches(name: str, path: str) -> bool:
    return name == path or name.endswith("." + path)


def decoder_layers_name(model: nn.Module, layers: str | None = None) -> str:
    """Name of the model's stack of decoder layers (an ``nn.ModuleList``).

    ``layers`` names it (``"transformer.h"``; also found under a wrapper's prefix, e.g. PEFT's
    ``base_model.model.``); ``None`` looks for :data:`DECODER_STACKS` in order (the first ``ModuleList``
    named like one, so a VLM's language model wins over its vision tower), then for any ``ModuleList``
    named ``*layers`` or ``*h``. The errors list the model's ``ModuleList`` names.
    """
    lists = _module_lists(model)
    if layers is not None:
        found = [n for n in lists if _matches(n, layers)]
        if not found:
            raise ValueError(
                f"`layers` should name an nn.ModuleList of decoder layers in {type(model).__name__}, got {layers!r}; "
                f"its ModuleLists are {lists[:12]}{'...' if len(lists) > 12 else ''}."
            )
        return found[0]
    for path in DECODER_STACKS:
        found = [n for n in lists if _matches(n, path)]
        if found:
            return found[0]
    found = [n for n in lists if n.rpartition(".")[2] in ("layers", "h")]
    if found:
        return found[0]
    raise ValueError(
        f"RMU could not find the decoder layers of {type(model).__name__}: none of {list(DECODER_STACKS)} nor any "
        f"nn.ModuleList named '*layers' or '*h'; its ModuleLists are {lists[:12]}. Name the stack with `layers=`."
    )


def down_projection_name(layer: nn.Module, module: str | None = None) -> str:
    """The path, relative to a decoder ``layer``, of the MLP down-projection that ``trainable="down_proj"`` trains.

    ``module`` names it (e.g. ``"mlp.c_proj"``); ``None`` takes the first of :data:`DOWN_PROJECTIONS` the layer has.
    """
    names = [n for n, _ in layer.named_modules() if n]
    if module is not None:
        if module not in names:
            raise ValueError(
                f"`trainable_module` should name a module of each decoder layer ({type(layer).__name__}), got "
                f"{module!r}; the layer's modules are {names}."
            )
        return module
    for path in DOWN_PROJECTIONS:
        if path in names:
            return path
    raise ValueError(
        f"RMU could not find the MLP down-projection of {type(layer).__name__} for `trainable='down_proj'`: none of "
        f"{list(DOWN_PROJECTIONS)}; the layer's modules are {names}. Name it with `trainable_module=`."
    )


class _Captured(Exception):
    """Stops the forward pass once the wanted layer has run (the layers above and the LM head are not needed)."""


def layer_output(model: nn.Module, layers_name: str, layer: int, task: CausalLMTask, batch: Any) -> Tensor:
    """The output ``[B, T, D]`` of decoder layer ``layer`` of ``model`` on ``batch``, by a forward hook.

    The forward pass stops right after that layer (the hook is removed before returning, so a later
    gradient-checkpointing recomputation is not affected).
    """
    module = model.get_submodule(layers_name)[layer]
    captured: list[Tensor] = []

    def hook(_module: nn.Module, _args: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, (tuple, list)) else output)
        raise _Captured

    handle = module.register_forward_hook(hook)
    try:
        task.forward(model, batch)
    except _Captured:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"Decoder layer {layers_name}.{layer} did not run in the model's forward pass.")
    return captured[0]


@register_method(name="rmu")
class RMU(UnlearningMethod):
    """RMU: Representation Misdirection for Unlearning.

    Li et al., "The WMDP Benchmark: Measuring and Reducing Malicious Use With Unlearning", ICML 2024,
    arXiv 2403.03218. With h_ℓ the output of decoder layer ℓ (``layer``) and a control vector
    ``c·û``, ``û = u/‖u‖``, ``u ~ U[0, 1)^d`` drawn once per run from ``seed``:

    ``L_f = E_{D_f} mean_t ‖h_ℓ(x_f; θ)_t − c·û‖²/d``,
    ``L_r = E_{D_r} mean_t ‖h_ℓ(x_r; θ)_t − h_ℓ(x_r; θ₀)_t‖²/d``,
    ``L = γ·L_f + α·L_r``

    (θ₀ the frozen model as unlearning found it). As in open-unlearning, the token mean is over
    each sample's *answer* tokens (the positions whose label is not ``ignore_index``) and then over
    the samples; ``tokens="all"`` uses every attended token instead, like the WMDP code on plain
    text. Activations come from a forward hook on decoder layer ℓ of the layer stack (``layers``, found
    by :func:`decoder_layers_name`: ``model.layers``, GPT-2's ``transformer.h``, OPT's ``model.decoder.layers``,
    NeoX's ``gpt_neox.layers``, ...), which also stops the forward pass there. ``trainable="down_proj"`` is
    the WMDP / open-unlearning recipe of training only the MLP down-projection of layers ℓ−2, ℓ−1, ℓ (a
    :class:`RegexMask` built at setup): ``mlp.down_proj`` in Llama/Qwen/Gemma, ``mlp.c_proj`` in GPT-2,
    ``fc2`` in OPT, ``mlp.dense_4h_to_h`` in NeoX, ``mlp.fc2`` in Phi (:func:`down_projection_name`), or the
    module named by ``trainable_module``. Under LoRA, the mask must select adapter weights (a LoRA on the
    down-projections); one that selects only frozen base weights is an error at setup. WMDP used
    ℓ=7, c=6.5, α=1200 on Zephyr-7B; the defaults here are open-unlearning's generic c=2, α=1
    (tune c per model: it should exceed the layer's typical activation norm). The loss never
    reaches the layers above ℓ nor the LM head, so they get no gradient (under DDP use
    ``strategy="ddp_find_unused_parameters_true"``).

    Args:
        layer: ℓ, index of the decoder layer in the layer stack (0-based).
        steering_coeff: c, the norm of the control vector.
        forget_weight: γ, weight of the forget term.
        retain_weight: α, weight of the activation-preserving retain term.
        retain_loss: ``"activation"`` (MSE to the reference's layer-ℓ activations on D_r) or ``"none"``.
        tokens: ``"answer"`` (answer tokens) or ``"all"`` (every attended token) enter the token means.
        trainable: ``"all"`` parameters, or ``"down_proj"``: only the MLP down-projection of layers ℓ−2..ℓ.
        layers: Name of the ``nn.ModuleList`` of decoder layers, e.g. ``"transformer.h"`` (a wrapper's prefix
            may be left out); ``None``: discovered (:data:`DECODER_STACKS`).
        trainable_module: With ``trainable="down_proj"``, the module of each decoder layer to train, as a path
            relative to the layer, e.g. ``"mlp.c_proj"``; ``None``: discovered (:data:`DOWN_PROJECTIONS`).
        mask: Optional parameter mask (not together with ``trainable="down_proj"``).
        seed: Seed of the control vector.
    """

    needs_reference = True
    supported_tasks = ("causal_lm", "vision_language")
    retain_losses = _RETAIN

    def __init__(
        self,
        layer: int = 7,
        steering_coeff: float = 2.0,
        tokens: RMUTokens = "answer",
        trainable: RMUTrainable = "all",
        layers: str | None = None,
        trainable_module: str | None = None,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RMURetainLoss = "activation",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_int("layer", layer, minimum=0)
        check_positive("steering_coeff", steering_coeff)
        check_choice("tokens", tokens, _TOKENS)
        check_choice("trainable", trainable, _TRAINABLE)
        if trainable != "all" and mask is not None:
            raise ValueError(
                f"Pass either `trainable={trainable!r}` or a `mask`, not both: the trainable set would be ambiguous."
            )
        for name, value in (("layers", layers), ("trainable_module", trainable_module)):
            if value is not None and (not isinstance(value, str) or not value.strip(".")):
                raise ValueError(f"`{name}` should be a dotted module name or None, got {value!r}.")
        if trainable_module is not None and trainable != "down_proj":
            raise ValueError(
                f"`trainable_module` names the module `trainable='down_proj'` trains; with `trainable={trainable!r}` "
                f"it would be ignored, got trainable_module={trainable_module!r}."
            )
        super().__init__(
            forget_weight=forget_weight,
            retain_weight=retain_weight,
            retain_loss=retain_loss,  # type: ignore[arg-type]  # RMU's own kinds (`retain_losses`)
            mask=mask,
            seed=seed,
        )
        self.layer = layer
        self.steering_coeff = float(steering_coeff)
        self.tokens = tokens
        self.trainable = trainable
        self.layers = layers
        self.trainable_module = trainable_module
        self._layers_name: str | None = None
        self.add_state("control", None)  # c·û, drawn once per run (float32, CPU until `to`)

    # ------------------------------------------------------------------ setup
    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        self._layers_name = self._layers(model)
        self.control = None
        if self.trainable == "down_proj":
            stack = model.get_submodule(self._layers_name)
            module = down_projection_name(stack[self.layer], self.trainable_module)
            ids = "|".join(str(i) for i in range(max(0, self.layer - 2), self.layer + 1))
            self.mask = RegexMask(rf"^{re.escape(self._layers_name)}\.({ids})\.{re.escape(module)}\.")

    def _layers(self, model: nn.Module) -> str:
        name = decoder_layers_name(model, self.layers)
        count = len(model.get_submodule(name))
        if self.layer >= count:
            raise ValueError(
                f"`layer` should lie in [0, {count - 1}] for this model ({count} decoder layers in {name!r}), got {self.layer}."
            )
        return name

    def control_vector(self, hidden_size: int) -> Tensor:
        """``c·û`` for a ``hidden_size``-wide layer: fixed for the run (seeded by ``seed``), float32."""
        if self.control is None or self.control.numel() != hidden_size:
            self.control = rmu_control_vector(hidden_size, self.steering_coeff, self.seed)
        return self.control

    # ------------------------------------------------------------------ losses
    def activations(self, model: nn.Module, task: Task, batch: Any) -> Tensor:
        """Output ``[B, T, D]`` of decoder layer ``layer`` of ``model`` on ``batch``."""
        self.check_task(task)
        if self._layers_name is None:
            self._layers_name = self._layers(model)
        return layer_output(model, self._layers_name, self.layer, task, batch)  # type: ignore[arg-type]

    def token_mask(self, task: CausalLMTask, batch: Any) -> Tensor:
        """Boolean ``[B, T]``: the tokens that enter the means (see ``tokens``)."""
        if self.tokens == "answer":
            return task.targets(batch) != task.ignore_index
        mask = task.attention_mask(batch)
        ids = task.input_ids(batch)
        return torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()

    def forget_loss(self, ctx: StepContext) -> Tensor:
        batch = ctx.batch("forget")
        hidden = self.activations(ctx.model, ctx.task, batch)
        control = self.control_vector(hidden.shape[-1]).to(hidden.device)
        return masked_activation_mse(hidden, control, self.token_mask(ctx.task, batch))  # type: ignore[arg-type]

    def retain_loss(self, ctx: StepContext) -> Tensor | None:
        if not self.uses_retain or ctx.retain is None:
            return None
        reference_model = ctx.require_reference()
        hidden = self.activations(ctx.model, ctx.task, ctx.retain)
        with torch.no_grad():
            reference = self.activations(reference_model, ctx.task, ctx.retain)
        return masked_activation_mse(hidden, reference, self.token_mask(ctx.task, ctx.retain))  # type: ignore[arg-type]
