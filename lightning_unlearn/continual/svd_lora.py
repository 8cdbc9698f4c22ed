"""Continual unlearning with one LoRA per deletion request, fused statically; orthogonal SVD-LoRA.

Setting: a stream of T deletion requests arrives one after another. Request t is handled by a new
LoRA module ``ΔW_t = s·B_t A_t`` on a set of layers, trained with an unlearning loss from
:data:`lightning_unlearn.methods.METHODS`, and then fused into the weights; the deployed model is the
single static model ``W₀ + Σ_t ΔW_t`` (no routing, no adapter kept at inference).

Strategies (:data:`STRATEGIES`):

``"orthogonal"`` — *Orthogonal Subspace Projection* (SVD-LoRA), after "continual unlearning with
    orthogonal SVD-LoRA", arXiv 2604.12526. **The paper publishes no code; this is a reconstruction
    from the paper's abstract-level description, not the authors' implementation.** After request t, for
    every adapted layer, the accumulated update ``Σ_{s≤t} ΔW_s = U S Vᵀ`` is decomposed and the
    smallest number k of singular directions whose energy ``Σ_{i<k} S_i² / Σ_i S_i²`` reaches
    ``energy`` is kept as the protected subspace ``(U_k, V_k)``. During request t+1, B's columns are
    kept in the orthogonal complement of ``U_k`` and A's rows in that of ``V_k``: the projection is
    applied to A's random initialisation, to both gradients after every backward pass, and to both
    factors after every optimizer step (Adam's per-coordinate scaling would otherwise leak the update
    back into the protected subspace). Hence the new ``ΔW = s·BA`` satisfies ``U_kᵀ ΔW = 0`` and
    ``ΔW V_k = 0`` up to float rounding, i.e. ``ΔW = (I − U_kU_kᵀ) ΔW (I − V_kV_kᵀ)``.
    Reconstruction choices (not fixed by the description): the energy is that of the *squared*
    singular values; the SVD is of the accumulated sum (not per request); the projection is of the
    factors (exact) rather than of the dense ``ΔW``; a convolution's ``ΔW`` is the reshaped
    ``[out, in·kh·kw]`` matrix (peft's LoRA for ``Conv2d`` has ``A: [r, in, kh, kw]``, ``B: [out, r, 1, 1]``).
``"naive"`` — the same per-request LoRA, fused after every request, without projection (the
    "static fusion" baseline the paper says collapses over long streams).
``"full"`` — sequential full fine-tuning: the same unlearning loss on all trainable weights
    (or on the weights of ``target_modules`` when given).

Example::

    from lightning_unlearn.continual import ContinualUnlearner

    unlearner = ContinualUnlearner(model, strategy="orthogonal", target_modules=["features.3", "penultimate.1"],
                                   rank=8, energy=0.97, method="graddiff", lr=1e-3, steps_per_request=100)
    for forget_set, retain_set in requests:
        unlearner.unlearn(forget_set, retain_set)
    deployed = unlearner.merged_model()      # a plain copy of W₀ + Σ ΔW_t
    unlearner.save("continual.pt")           # fused weights, per-request LoRA factors, protected bases

``peft`` is an optional dependency, imported only by the LoRA strategies.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from lightning_unlearn._errors import check_choice, check_fraction, check_int, check_positive, missing_extra
from lightning_unlearn._weights import read_weights_file
from lightning_unlearn.continual._batches import BatchStream
from lightning_unlearn.engine import FabricStepper, Progress, StepBatch, UnlearningEngine, make_fabric, run_steps
from lightning_unlearn.methods import METHODS, UnlearningMethod
from lightning_unlearn.tasks import ClassificationTask
from lightning_unlearn.tasks.base import Task

#: The continual-unlearning strategies and what they train per request.
STRATEGIES: dict[str, str] = {
    "orthogonal": "a new LoRA per request, kept orthogonal to the SVD subspace of the earlier fused updates (SVD-LoRA)",
    "naive": "a new LoRA per request, fused after each request, no projection (static fusion baseline)",
    "full": "full fine-tuning of the weights with the same unlearning loss, request after request",
}
_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
_LORA_TYPES = (nn.Linear, nn.Conv2d)


# --------------------------------------------------------------------------------------------------
# Subspace helpers (pure functions)
# --------------------------------------------------------------------------------------------------


def as_matrix(weight: Tensor) -> Tensor:
    """A layer's weight (or update) as a matrix ``[out, in·kh·kw]`` (a view for contiguous tensors)."""
    return weight.reshape(weight.shape[0], -1)


def energy_rank(singular_values: Tensor, energy: float) -> int:
    """The smallest ``k`` with ``Σ_{i<k} S_i² ≥ energy · Σ_i S_i²`` (``S`` sorted descending); 0 if ``S`` is all zero."""
    check_fraction("energy", energy)
    s2 = singular_values.double().pow(2)
    total = float(s2.sum())
    if total <= 0.0:
        return 0
    cumulative = torch.cumsum(s2, 0) / total
    # tolerate the rounding of the cumulative sum at energy = 1
    k = int(torch.searchsorted(cumulative, torch.tensor([energy - 1e-12], dtype=cumulative.dtype)).item()) + 1
    return min(k, len(singular_values))


@dataclass
class ProtectedSubspace:
    """Orthonormal bases of a layer's protected subspace: ``U`` ``[out, k]`` (columns) and ``V`` ``[in·kh·kw, k]``."""

    U: Tensor
    V: Tensor
    energy_captured: float

    @property
    def k(self) -> int:
        return int(self.U.shape[1])


def protected_basis(delta: Tensor, energy: float) -> ProtectedSubspace:
    """Top-k left/right singular vectors of ``delta`` (any weight-shaped update) reaching ``energy``.

    The SVD is computed in float64; the bases are returned in ``delta``'s dtype.
    """
    matrix = as_matrix(delta.detach()).double()
    U, S, Vh = torch.linalg.svd(matrix, full_matrices=False)
    k = energy_rank(S, energy)
    total = float(S.pow(2).sum())
    captured = float(S[:k].pow(2).sum() / total) if total > 0 else 1.0
    dtype = delta.dtype if delta.is_floating_point() else torch.float32
    return ProtectedSubspace(U[:, :k].to(dtype).contiguous(), Vh[:k].T.to(dtype).contiguous(), captured)


def project_out(tensor: Tensor, basis: Tensor, side: str) -> Tensor:
    """Remove ``basis``'s span in place: ``side="left"``: ``X ← (I − UUᵀ)X`` on ``X = as_matrix(tensor)``;
    ``side="right"``: ``X ← X(I − VVᵀ)``. Returns ``tensor``."""
    if basis.shape[1] == 0:
        return tensor
    matrix = as_matrix(tensor)
    basis = basis.to(device=tensor.device, dtype=tensor.dtype)
    if side == "left":
        matrix.sub_(basis @ (basis.T @ matrix))
    else:
        matrix.sub_((matrix @ basis) @ basis.T)
    return tensor


def lora_delta(lora_a: Tensor, lora_b: Tensor, scaling: float, weight_shape: Sequence[int]) -> Tensor:
    """``scaling · B A`` as a weight-shaped update (``A``: ``[r, in(, kh, kw)]``, ``B``: ``[out, r(, 1, 1)]``)."""
    return (scaling * as_matrix(lora_b) @ as_matrix(lora_a)).reshape(tuple(weight_shape))


# --------------------------------------------------------------------------------------------------
# The unlearner
# --------------------------------------------------------------------------------------------------


def _import_peft() -> Any:
    try:
        import peft
    except ImportError as err:
        raise missing_extra("peft", "vision") from err
    return peft


class ContinualUnlearner:
    """Serve a stream of deletion requests on one model; after each, the model is a single static network.

    Args:
        model: The trained model. It is deep-copied (``copy_model=True``, the default), so the model
            passed in is never modified; with ``copy_model=False`` it is unlearned *in place*.
        strategy: ``"orthogonal"`` (SVD-LoRA), ``"naive"`` (sequential LoRA fusion) or ``"full"``
            (sequential full fine-tuning); see :data:`STRATEGIES`.
        target_modules: Exact dotted names of the ``nn.Linear`` / ``nn.Conv2d`` modules that get a LoRA
            (e.g. ``["features.3", "penultimate.1"]``). ``None``: every ``Linear`` and ``Conv2d``
            module for the LoRA strategies, every trainable parameter for ``"full"`` (which otherwise
            trains the parameters of the named modules).
        rank: LoRA rank r of each request's adapter.
        alpha: LoRA alpha; the update is scaled by ``alpha / rank`` (``None``: ``alpha = rank``, scale 1).
        energy: Energy threshold of the protected subspace (``"orthogonal"`` only), in ``(0, 1]``.
        method: Name of the unlearning method in :data:`~lightning_unlearn.methods.METHODS`
            (``"graddiff"``, ``"rl"``, ``"ga"``, ``"npo"``, ...), rebuilt fresh for every request.
        method_kwargs: Keyword arguments of the method's constructor. A method that takes a ``seed``
            gets ``seed + request index`` unless one is given.
        task: The task (``ClassificationTask()`` by default).
        lr: Learning rate of every request.
        steps_per_request: Optimizer steps per request; each step draws a forget batch and, when a
            retain set is given, a retain batch.
        batch_size: Forget batch size.
        retain_batch_size: Retain batch size (``None``: ``batch_size``).
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (a fresh optimizer per request).
        max_grad_norm: Clip the gradient norm of the trained parameters (``None``: no clipping).
        seed: Seed of the batch order, the LoRA initialisation and the methods' own randomness.
        device: Device to train on (the model is moved there).
        precision: Lightning Fabric precision of the steps (``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"``, ...):
            every request steps through the library's engine on a single-device Fabric
            (:class:`~lightning_unlearn.engine.FabricStepper`: autocast, scaled backward, clipping).
        copy_model: Deep-copy ``model`` first (default) instead of modifying it in place.
        progress: Show a tqdm progress bar per request.
    """

    def __init__(
        self,
        model: nn.Module,
        strategy: str = "orthogonal",
        *,
        target_modules: Sequence[str] | None = None,
        rank: int = 8,
        alpha: float | None = None,
        energy: float = 0.97,
        method: str = "graddiff",
        method_kwargs: dict[str, Any] | None = None,
        task: Task | None = None,
        lr: float = 1e-3,
        steps_per_request: int = 100,
        batch_size: int = 128,
        retain_batch_size: int | None = None,
        optimizer: str = "adam",
        max_grad_norm: float | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        precision: str = "32-true",
        copy_model: bool = True,
        progress: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` should be a torch.nn.Module, got {type(model).__name__}.")
        check_choice("strategy", strategy, STRATEGIES)
        check_int("rank", rank)
        if alpha is not None:
            check_positive("alpha", alpha)
        check_fraction("energy", energy)
        if not isinstance(method, str):
            raise TypeError(f"`method` should be the name of a registered method {METHODS.names()}, got {type(method).__name__}.")
        METHODS.get(method)  # a clear error listing the registered methods
        if method_kwargs is not None and not isinstance(method_kwargs, dict):
            raise TypeError(f"`method_kwargs` should be a dict or None, got {type(method_kwargs).__name__}.")
        check_positive("lr", lr)
        check_int("steps_per_request", steps_per_request)
        check_int("batch_size", batch_size)
        if retain_batch_size is not None:
            check_int("retain_batch_size", retain_batch_size)
        check_choice("optimizer", optimizer, _OPTIMIZERS)
        if max_grad_norm is not None:
            check_positive("max_grad_norm", max_grad_norm)
        if strategy != "full":
            _import_peft()

        self.strategy = strategy
        self.rank = int(rank)
        self.alpha = float(alpha) if alpha is not None else float(rank)
        self.energy = float(energy)
        self.method_name = method
        self.method_kwargs = dict(method_kwargs or {})
        self.task = task if task is not None else ClassificationTask()
        self.lr = float(lr)
        self.steps_per_request = int(steps_per_request)
        self.batch_size = int(batch_size)
        self.retain_batch_size = int(retain_batch_size) if retain_batch_size is not None else self.batch_size
        self.optimizer_name = optimizer
        self.max_grad_norm = float(max_grad_norm) if max_grad_norm is not None else None
        self.seed = int(seed)
        self.device = torch.device(device)
        self.precision = precision
        self._fabric = make_fabric(self.device, precision)  # a clear Lightning error on an unknown precision
        self.progress = bool(progress)

        self._model = (copy.deepcopy(model) if copy_model else model).to(self.device)
        self.target_modules = self._resolve_targets(target_modules)
        #: Per request: ``{layer: {"A", "B", "scaling"}}`` — the LoRA factors that were fused (LoRA strategies).
        self.adapters: list[dict[str, dict[str, Any]]] = []
        #: Per layer: ``Σ_t ΔW_t`` (weight-shaped, float64) of the LoRA strategies.
        self.accumulated: dict[str, Tensor] = {}
        #: Per layer: the protected subspace of ``accumulated`` (``"orthogonal"`` only).
        self.subspaces: dict[str, ProtectedSubspace] = {}
        #: One JSON-able record per request served.
        self.history: list[dict[str, Any]] = []
        self._requires_grad: dict[str, bool] = {}  # the model's flags, restored after each adapter is fused

    # ------------------------------------------------------------------ configuration
    def _resolve_targets(self, target_modules: Sequence[str] | None) -> list[str]:
        modules = dict(self._model.named_modules())
        lora_capable = sorted(n for n, m in modules.items() if n and isinstance(m, _LORA_TYPES))
        if target_modules is None:
            if self.strategy == "full":
                return []
            if not lora_capable:
                raise ValueError("`target_modules` is None but the model has no nn.Linear or nn.Conv2d module to adapt.")
            return lora_capable
        if isinstance(target_modules, str) or not all(isinstance(n, str) for n in target_modules):
            raise TypeError(f"`target_modules` should be a list of module names, got {target_modules!r}.")
        names = list(dict.fromkeys(target_modules))
        if not names:
            raise ValueError("`target_modules` should name at least one module, got an empty list.")
        for name in names:
            if self.strategy == "full":
                if name not in modules or not name:
                    raise ValueError(f"`target_modules` should name modules of the model {sorted(n for n in modules if n)}, got {name!r}.")
                continue
            if name not in lora_capable:
                what = f"a {type(modules[name]).__name__}" if name in modules else "not a module of the model"
                raise ValueError(
                    f"`target_modules` should name nn.Linear / nn.Conv2d modules of the model {lora_capable}, "
                    f"got {name!r} ({what})."
                )
            module = modules[name]
            if isinstance(module, nn.Conv2d) and module.groups != 1:
                raise ValueError(f"`target_modules`: {name!r} is a grouped convolution (groups={module.groups}), which is not supported.")
        return names

    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-able when ``method_kwargs`` is)."""
        return {
            "strategy": self.strategy,
            "target_modules": list(self.target_modules) or None,
            "rank": self.rank,
            "alpha": self.alpha,
            "energy": self.energy,
            "method": self.method_name,
            "method_kwargs": dict(self.method_kwargs),
            "lr": self.lr,
            "steps_per_request": self.steps_per_request,
            "batch_size": self.batch_size,
            "retain_batch_size": self.retain_batch_size,
            "optimizer": self.optimizer_name,
            "max_grad_norm": self.max_grad_norm,
            "seed": self.seed,
            "precision": self.precision,
        }

    # ------------------------------------------------------------------ the fused model
    @property
    def model(self) -> nn.Module:
        """The live fused model ``W₀ + Σ_t ΔW_t`` (a plain module: no adapter is left between requests)."""
        return self._model

    def merged_model(self) -> nn.Module:
        """An independent copy of the fused static model, in eval mode."""
        return copy.deepcopy(self._model).eval()

    @property
    def num_requests(self) -> int:
        return len(self.history)

    def delta(self, request: int, layer: str) -> Tensor:
        """``ΔW_request`` of ``layer`` (weight-shaped), rebuilt from the stored LoRA factors."""
        if self.strategy == "full":
            raise ValueError("`delta` exists for the LoRA strategies ('orthogonal', 'naive'); strategy is 'full'.")
        if not 0 <= request < len(self.adapters):
            raise IndexError(f"`request` should lie in [0, {len(self.adapters) - 1}], got {request}.")
        check_choice("layer", layer, self.target_modules)
        f = self.adapters[request][layer]
        return lora_delta(f["A"], f["B"], f["scaling"], f["shape"])

    # ------------------------------------------------------------------ serving a request
    def unlearn(self, forget: Dataset, retain: Dataset | None = None, *, steps: int | None = None) -> dict[str, Any]:
        """Serve one deletion request and fuse its update; returns the request's record (also in :attr:`history`).

        Args:
            forget: The samples to forget (a map-style dataset of ``(inputs, targets)``).
            retain: Samples to keep (for the method's retain term); ``None`` for a retain-free method.
            steps: Optimizer steps for this request (default ``steps_per_request``).
        """
        steps = self.steps_per_request if steps is None else check_int("steps", steps)
        t = len(self.history)
        req_seed = self.seed * 1_000_003 + t
        forget_stream = BatchStream(forget, self.batch_size, req_seed, self.device)
        retain_stream = BatchStream(retain, self.retain_batch_size, req_seed + 500_009, self.device) if retain is not None else None

        start = time.perf_counter()
        model = self._model
        adapter = f"request_{t}"
        if self.strategy == "full":
            params = self._full_parameters()
        else:
            params = self._inject(adapter, req_seed)
        method = self._build_method(t)
        method.setup(model, self.task, forget_stream.fixed_order(), retain_stream.fixed_order() if retain_stream else None)
        method.to(self.device)
        method.train()
        params = params + method.parameters()
        engine = UnlearningEngine(method, self.task)
        orthogonal = self.strategy == "orthogonal"
        stepper = FabricStepper(
            self._fabric,
            model,
            _OPTIMIZERS[self.optimizer_name](params, lr=self.lr),
            engine,
            max_grad_norm=self.max_grad_norm,
            before_step=(lambda: self._project(adapter, grads=True)) if orthogonal else None,
            after_step=(lambda: self._project(adapter, grads=False)) if orthogonal else None,
        )
        max_epochs = -(-steps // forget_stream.batches_per_pass)

        def batches() -> Any:
            for step in range(steps):
                forget = next(forget_stream)
                retain = next(retain_stream) if retain_stream is not None else None
                yield StepBatch(forget, retain, Progress(forget_stream.passes, max_epochs, step))

        model.train()
        try:
            result = run_steps(engine, stepper, batches(), total=steps, description=f"request {t} [{self.strategy}]", progress_bar=self.progress)
        except BaseException:
            if self.strategy != "full":
                self._discard(adapter)
            raise
        finally:
            model.eval()
            method.restore_dropout()
        recent = result.recent_parts

        record: dict[str, Any] = {"request": t, "strategy": self.strategy, "steps": steps, "forget_size": forget_stream.size}
        record["retain_size"] = retain_stream.size if retain_stream is not None else 0
        if self.strategy != "full":
            record["update_norm"] = self._fuse(adapter)
            record["protected_rank_used"] = {n: s.k for n, s in self.subspaces.items()} if self.strategy == "orthogonal" else {}
            if self.strategy == "orthogonal":
                self._update_subspaces()
                record["protected_rank_next"] = {n: s.k for n, s in self.subspaces.items()}
                record["energy_captured"] = {n: round(s.energy_captured, 6) for n, s in self.subspaces.items()}
        record["trainable_parameters"] = int(sum(p.numel() for p in params))
        record["final_loss"] = {k: sum(r[k] for r in recent) / len(recent) for k in recent[-1]} if recent else {}
        record["seconds"] = time.perf_counter() - start
        self.history.append(record)
        return record

    def _build_method(self, t: int) -> UnlearningMethod:
        kwargs = dict(self.method_kwargs)
        kwargs.setdefault("seed", self.seed + t)  # every method takes the base arguments, `seed` among them
        return METHODS.get(self.method_name)(**kwargs)

    def _full_parameters(self) -> list[nn.Parameter]:
        if self.target_modules:
            params = {id(p): p for n in self.target_modules for p in self._model.get_submodule(n).parameters() if p.requires_grad}
            out = list(params.values())
        else:
            out = [p for p in self._model.parameters() if p.requires_grad]
        if not out:
            raise ValueError("Strategy 'full' found no trainable parameter (every parameter has requires_grad=False).")
        return out

    # ------------------------------------------------------------------ LoRA plumbing
    def _inject(self, adapter: str, seed: int) -> list[nn.Parameter]:
        peft = _import_peft()
        self._requires_grad = {n: p.requires_grad for n, p in self._model.named_parameters()}
        pattern = "|".join(re.escape(n) for n in self.target_modules)
        config = peft.LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=0.0, bias="none", target_modules=f"(?:{pattern})")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            peft.inject_adapter_in_model(config, self._model, adapter_name=adapter)
        if hasattr(self._model, "peft_config"):
            del self._model.peft_config
        params: list[nn.Parameter] = []
        for name in self.target_modules:
            layer = self._model.get_submodule(name)
            a, b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
            a.requires_grad_(True)
            b.requires_grad_(True)
            params += [a, b]
        if self.strategy == "orthogonal":
            self._project(adapter, grads=False)  # A's random init (B starts at zero)
        return params

    @torch.no_grad()
    def _project(self, adapter: str, *, grads: bool) -> None:
        """Keep B's columns ⟂ U_k and A's rows ⟂ V_k (the factors, or their gradients)."""
        for name, sub in self.subspaces.items():
            if sub.k == 0:
                continue
            layer = self._model.get_submodule(name)
            a, b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
            if grads:
                if b.grad is not None:
                    project_out(b.grad, sub.U, "left")
                if a.grad is not None:
                    project_out(a.grad, sub.V, "right")
            else:
                project_out(b.data, sub.U, "left")
                project_out(a.data, sub.V, "right")

    @torch.no_grad()
    def _fuse(self, adapter: str) -> dict[str, float]:
        """Add ``ΔW`` into each base layer, put the plain layer back, record the factors; returns ‖ΔW‖_F per layer."""
        factors: dict[str, dict[str, Any]] = {}
        norms: dict[str, float] = {}
        for name in self.target_modules:
            layer = self._model.get_submodule(name)
            base = layer.get_base_layer()
            a = layer.lora_A[adapter].weight.detach()
            b = layer.lora_B[adapter].weight.detach()
            scaling = float(layer.scaling[adapter])
            delta = lora_delta(a, b, scaling, base.weight.shape)
            base.weight.add_(delta.to(base.weight.dtype))
            self._replace(name, base)
            factors[name] = {"A": a.cpu().clone(), "B": b.cpu().clone(), "scaling": scaling, "shape": list(base.weight.shape)}
            acc = self.accumulated.get(name)
            delta64 = delta.detach().cpu().double()
            self.accumulated[name] = delta64 if acc is None else acc + delta64
            norms[name] = float(delta.norm())
        self.adapters.append(factors)
        self._restore_requires_grad()
        return norms

    def _discard(self, adapter: str) -> None:
        """Drop an unfinished adapter (the request failed): the fused model is left as it was."""
        for name in self.target_modules:
            layer = self._model.get_submodule(name)
            if hasattr(layer, "get_base_layer"):
                self._replace(name, layer.get_base_layer())
        self._restore_requires_grad()

    def _replace(self, name: str, module: nn.Module) -> None:
        parent_name, _, child = name.rpartition(".")
        parent = self._model.get_submodule(parent_name) if parent_name else self._model
        setattr(parent, child, module)

    def _restore_requires_grad(self) -> None:
        for n, p in self._model.named_parameters():
            if n in self._requires_grad:
                p.requires_grad_(self._requires_grad[n])

    def _update_subspaces(self) -> None:
        for name, acc in self.accumulated.items():
            self.subspaces[name] = protected_basis(acc, self.energy)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to deploy (``model``: the fused weights) and to continue the stream
        (per-request LoRA factors, accumulated updates, protected bases, history, config)."""
        return {
            "config": self.config(),
            "model": {k: v.detach().cpu().clone() for k, v in self._model.state_dict().items()},
            "adapters": copy.deepcopy(self.adapters),
            "accumulated": {k: v.clone() for k, v in self.accumulated.items()},
            "subspaces": {k: {"U": s.U.cpu(), "V": s.V.cpu(), "energy_captured": s.energy_captured} for k, s in self.subspaces.items()},
            "history": copy.deepcopy(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into an unlearner built with the same strategy and target modules."""
        config = state.get("config", {})
        for key in ("strategy", "target_modules"):
            ours = self.config()[key]
            if key in config and config[key] != ours:
                raise ValueError(f"The saved state has {key}={config[key]!r} but this unlearner has {key}={ours!r}.")
        self._model.load_state_dict(state["model"])
        self.adapters = copy.deepcopy(state.get("adapters", []))
        self.accumulated = {k: v.clone() for k, v in state.get("accumulated", {}).items()}
        self.subspaces = {
            k: ProtectedSubspace(v["U"].to(self.device), v["V"].to(self.device), float(v["energy_captured"]))
            for k, v in state.get("subspaces", {}).items()
        }
        self.history = copy.deepcopy(state.get("history", []))

    def save(self, path: str | os.PathLike) -> None:
        """Save :meth:`state_dict` with ``torch.save``."""
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike, model: nn.Module, **overrides: Any) -> ContinualUnlearner:
        """Rebuild a saved unlearner on (a copy of) ``model`` — a module of the same architecture —
        with its saved configuration (``overrides`` replace entries, e.g. ``device`` or ``progress``)."""
        state = read_weights_file(path, argument="path")
        if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
            raise ValueError(
                f"`path` file {str(path)!r} does not hold a saved ContinualUnlearner (a dict with a 'config' entry, "
                f"as `ContinualUnlearner.save` writes); it holds a {type(state).__name__}"
                + (f" with keys {sorted(map(str, state))[:8]}." if isinstance(state, dict) else ".")
            )
        kwargs = {**state["config"], **overrides}
        unlearner = cls(model, **kwargs)
        unlearner.load_state_dict(state)
        return unlearner

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"ContinualUnlearner({args}, requests={self.num_requests})"
