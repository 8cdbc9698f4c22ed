"""IU: influence unlearning, one Newton step with a (Wood)Fisher approximation of the inverse Hessian."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn

from lightning_unlearn._errors import check_int, check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.methods.one_shot import all_ranks_sum, apply_edit, edit_once, require_loaders, trainable_params
from lightning_unlearn.methods.ssd import _ONE_SHOT_RETAIN
from lightning_unlearn.tasks.base import Task, evaluating


def fisher_inverse_vector_product(grads: Tensor, vector: Tensor, damping: float) -> Tensor:
    """``F⁻¹ v`` for the damped empirical Fisher ``F = λI + (1/N) Σ_i g_i g_iᵀ`` (rows of ``grads`` ``[N, d]`` are the
    per-sample gradients ``g_i``), exactly, by the Woodbury identity:

    ``F⁻¹ v = (v − Gᵀ (NλI_N + G Gᵀ)⁻¹ G v) / λ``

    (an ``N × N`` solve, in float64). WoodFisher (Singh & Alistarh, NeurIPS 2020) reaches the same inverse by N
    Sherman–Morrison updates.
    """
    n = grads.shape[0]
    if n == 0:
        return vector / damping
    g = grads.double()
    v = vector.double()
    gram = g @ g.T + n * damping * torch.eye(n, dtype=torch.float64, device=g.device)
    correction = g.T @ torch.linalg.solve(gram, g @ v)
    return ((v - correction) / damping).to(vector.dtype)


def _flat(grads: Iterable[Tensor | None], params: list[Tensor]) -> Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).float() for g, p in zip(grads, params)])


def _gradient_sum(model: nn.Module, task: Task, loader: Iterable[Any], params: list[Tensor], max_batches: int | None) -> tuple[Tensor, int]:
    """``Σ_i ∇ℓ_i`` over the loader's samples (flattened) and their number."""
    device = params[0].device
    total = torch.zeros(sum(p.numel() for p in params), device=device)
    count = 0
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        batch = move_data_to_device(batch, device)
        with torch.enable_grad():
            loss = task.per_sample_loss(task.forward(model, batch), batch).sum()
            total += _flat(torch.autograd.grad(loss, params, allow_unused=True), params)
        count += task.batch_size(batch)
    return total, count


def _per_sample_gradients(model: nn.Module, task: Task, loader: Iterable[Any], params: list[Tensor], limit: int) -> Tensor:
    """``[N, d]``: the flattened gradients of the first ``limit`` samples' losses."""
    device = params[0].device
    rows: list[Tensor] = []
    for batch in loader:
        if len(rows) >= limit:
            break
        batch = move_data_to_device(batch, device)
        with torch.enable_grad():
            losses = task.per_sample_loss(task.forward(model, batch), batch)
            for i in range(min(len(losses), limit - len(rows))):
                rows.append(_flat(torch.autograd.grad(losses[i], params, retain_graph=True, allow_unused=True), params))
    return torch.stack(rows) if rows else torch.zeros(0, sum(p.numel() for p in params), device=device)


@register_method(name="iu")
class InfluenceUnlearning(UnlearningMethod):
    """IU: influence unlearning, a one-shot Newton step towards the model retrained without D_f.

    After Koh & Liang, "Understanding Black-box Predictions via Influence Functions", ICML 2017 (arXiv 1703.04730) and
    Izzo, Smart, Chaudhuri, Zou, "Approximate Data Deletion from Machine Learning Models", AISTATS 2021 (arXiv
    2002.10077), in the form Jia et al. use as a baseline ("Model Sparsity Can Simplify Machine Unlearning", NeurIPS
    2023, arXiv 2304.04934), with the WoodFisher approximation of the inverse Hessian (Singh & Alistarh, NeurIPS 2020,
    arXiv 2004.14340). With n = |D|, n_f = |D_f|, n_r = |D_r| and per-sample losses ℓ:

    ``v = (1/n)·Σ_{D_f} ∇ℓ − (n_f/(n·n_r))·Σ_{D_r} ∇ℓ``  (= (1/n_r)·Σ_{D_f} ∇ℓ at a stationary point of the training
    loss, the influence of removing D_f), and ``θ ← θ + s·F_r⁻¹ v``,

    where the Hessian of the retain loss is approximated by the damped empirical Fisher of ``fisher_samples`` retain
    samples, ``F_r = λI + (1/N)·Σ_i g_i g_iᵀ`` (:func:`fisher_inverse_vector_product`, exact by Woodbury; Jia et al.'s
    code applies the Sherman–Morrison recursion with λ = 1 over up to 1,000 samples). ``s`` = ``scale`` (their α, found
    by search). The gradients are taken in eval mode. The edit is made once, at the first step, on the weights the
    model has then (see :mod:`lightning_unlearn.methods.one_shot`). It stores ``fisher_samples`` flattened gradients
    (``fisher_samples × parameters`` floats): lower it for large models.

    Args:
        scale: s, the step size of the Newton step.
        damping: λ, the Fisher's damping (0.1). Jia et al.'s recursion starts from the identity (λ = 1) and tunes ``s``
            instead; with λ = 1 a model trained to a tiny loss hardly moves unless ``s`` is in the hundreds or thousands,
            and a small λ amplifies the part of v outside the span of the N retain gradients by 1/λ (the blobs toy
            forgets a class at λ = 1e-3; the digits CNN is wrecked there, RA 10%).
        fisher_samples: N, retain samples whose gradients form the Fisher.
        max_batches: Cap on the forget and retain batches of the gradient sums (``None``: all).
        forget_weight: Must be > 0: the edit is made in the forget hook (its loss is 0).
        retain_weight: Weight of the optional retain term.
        retain_loss: ``"none"`` (no training after the edit), or ``"nll"`` / ``"kl"`` to fine-tune on D_r after it.
        mask: Optional parameter mask: only its entries move.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    supported_tasks = ("classification",)
    retain_losses = _ONE_SHOT_RETAIN

    def __init__(
        self,
        scale: float = 1.0,
        damping: float = 0.1,
        fisher_samples: int = 128,
        max_batches: int | None = None,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "none",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("scale", scale)
        check_positive("damping", damping)
        check_int("fisher_samples", fisher_samples, minimum=1)
        check_int("max_batches", max_batches, minimum=1, optional=True)
        check_positive("forget_weight", forget_weight)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.scale = float(scale)
        self.damping = float(damping)
        self.fisher_samples = int(fisher_samples)
        self.max_batches = max_batches
        self.add_state("edited", False)
        self.add_state("edit_stats", {})
        self._loaders: tuple[Iterable | None, Iterable | None] = (None, None)

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        self._loaders = require_loaders("IU needs the forget and retain data", (forget_loader, retain_loader))

    def newton_step(self, model: nn.Module, task: Task) -> dict[str, Tensor]:
        """``{name: F_r⁻¹ v}`` on the current weights (before the ``scale``)."""
        forget_loader, retain_loader = require_loaders("IU needs the forget and retain data", self._loaders)
        named = trainable_params(model)
        params = list(named.values())
        with evaluating(model):
            forget_sum, n_f = _gradient_sum(model, task, forget_loader, params, self.max_batches)
            retain_sum, n_r = _gradient_sum(model, task, retain_loader, params, self.max_batches)
            grads = _per_sample_gradients(model, task, retain_loader, params, self.fisher_samples)
        counts = torch.tensor([float(n_f), float(n_r)], device=forget_sum.device)
        distributed = all_ranks_sum([forget_sum, retain_sum, counts])
        n_f, n_r = float(counts[0]), float(counts[1])
        if n_f == 0 or n_r == 0:
            raise ValueError(f"IU needs forget and retain samples; got {int(n_f)} forget and {int(n_r)} retain samples.")
        n = n_f + n_r
        vector = forget_sum / n - retain_sum * (n_f / (n * n_r))
        step = fisher_inverse_vector_product(grads, vector, self.damping)
        if distributed:  # each rank's Fisher saw its own retain samples: average, so every rank makes the same edit
            dist.all_reduce(step)
            step /= dist.get_world_size()
        self.edit_stats = {"forget_samples": int(n_f), "retain_samples": int(n_r), "fisher_samples": int(grads.shape[0]), "step_norm": float(step.norm())}
        out, offset = {}, 0
        for name, param in named.items():
            out[name] = step[offset : offset + param.numel()].view_as(param)
            offset += param.numel()
        return out

    @torch.no_grad()
    def edit(self, model: nn.Module, task: Task) -> None:
        """Take the Newton step in place, where the mask allows."""
        step = self.newton_step(model, task)
        params = dict(model.named_parameters())
        apply_edit(model, {n: params[n].detach() + self.scale * s.to(params[n].dtype) for n, s in step.items()}, self.masks)

    def forget_loss(self, ctx: StepContext) -> Tensor:
        return edit_once(self, ctx)
