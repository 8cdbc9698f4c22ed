"""ROKA: gradient ascent on the most target-like samples, with "Neural Healing" of their siblings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_int, check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.tasks.base import Task, _find_module, evaluating

Variant = Literal["targeted", "non_targeted"]
_VARIANTS = {
    "targeted": "forget each sample's own label; pick the samples with the highest p(label | x)",
    "non_targeted": "forget the original model's predicted label; pick the samples closest (cosine) to the forget set's contribution centroid",
}
Selection = Literal["top", "sample"]
_SELECTIONS = {
    "top": "the num_forget highest-scoring forget samples (deterministic)",
    "sample": "num_forget forget samples drawn without replacement with probability ∝ score (the paper's rule)",
}


# ---------------------------------------------------------------------------------------------- contributions
def contribution_vectors(model: nn.Module, task: Task, batch: Any, layer: str, classes: Tensor) -> Tensor:
    """Input×gradient at a hidden layer: ``R(h) = h ⊙ ∂f_c/∂h``, flattened per sample.

    ``h`` is the output of the submodule ``layer`` and ``f_c`` the logit of class ``c``. ``classes``
    is ``[B]`` (one class per sample) → ``[B, D]``, or ``[K, B]`` (K class assignments, e.g. one
    per forget target) → ``[K, B, D]``. The gradient is taken with respect to ``h`` alone (``h`` is
    detached and made a leaf, so nothing below ``layer`` is differentiated and no parameter gradient
    is touched). The model runs in eval mode (its mode is restored after), so dropout adds no noise,
    batch-norm statistics are not updated and samples do not interact. The result carries no graph.
    """
    module = _find_module(model, layer)
    store: dict[str, Tensor] = {}

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Tensor:
        if not isinstance(output, Tensor):
            raise ValueError(
                f"`layer` {layer!r} should output a tensor to take contributions at; it returns {type(output).__name__}."
            )
        store["h"] = output.detach().requires_grad_(True)
        return store["h"]

    handle = module.register_forward_hook(hook)
    try:
        with evaluating(model), torch.enable_grad():
            logits = task.forward(model, batch)
    finally:
        handle.remove()
    h = store["h"]
    many = classes.dim() == 2
    rows = classes if many else classes[None]
    out = []
    for k, row in enumerate(rows):
        picked = logits.gather(1, row.to(logits.device)[:, None]).sum()
        (grad,) = torch.autograd.grad(picked, h, retain_graph=k < len(rows) - 1)
        out.append((h.detach() * grad).flatten(1))
    result = torch.stack(out)
    return result if many else result[0]


def nearest_siblings(queries: Tensor, pool: Tensor, k: int) -> Tensor:
    """Indices ``[Q, min(k, P)]`` of the ``k`` pool rows nearest (Euclidean) to each query.

    ``queries`` is ``[Q, D]`` against a shared ``pool`` ``[P, D]``, or ``[Q, D]`` against one pool
    per query ``[Q, P, D]``. Ties are broken by ``torch.topk``.
    """
    if pool.dim() == 2:
        pool = pool[None].expand(queries.shape[0], -1, -1)
    dist = (pool - queries[:, None, :]).pow(2).sum(-1)
    return torch.topk(dist, min(k, dist.shape[1]), dim=1, largest=False).indices


# ---------------------------------------------------------------------------------------------- the method
@register_method(name="roka")
class ROKA(UnlearningMethod):
    """ROKA: robust knowledge unlearning by gradient ascent with Neural Healing.

    arXiv 2603.00436 (no code found; reconstructed from Algorithm 1). Per step, on the forget batch
    ``B_f`` and the retain batch ``B_r``:

    1. Pick ``num_forget`` forget samples ``x_f``. Targeted: ``l_target`` is each sample's own label
       and the score is ``p_θ(l_target | x)`` (the most target-like samples, i.e. those still
       remembered). Non-targeted: ``l_target`` is the pseudo-label ``argmax f_θ₀(x)`` of the
       original model and the score is the cosine similarity of ``R(x)`` to the contribution
       centroid of ``D_f``, both fixed at θ₀ (computed in :meth:`prepare`; the pseudo-labels are
       read from the frozen reference θ₀, which is the same as precomputing them and needs no
       per-sample lookup). ``selection="top"`` takes the highest scores, ``"sample"`` draws
       ∝ score (the paper; non-targeted scores are mapped to ``(1 + cos)/2``).
    2. Contribution vectors ``R(h) = h ⊙ ∂f_c/∂h`` at the hidden layer ``layer``
       (:func:`contribution_vectors`), ``c = l_target`` of the forget sample. Siblings: for every
       picked ``x_f`` the ``k`` retain samples of ``B_r`` nearest (Euclidean) to ``R(x_f)`` in
       contribution space towards the same class (:func:`nearest_siblings`); ``B_sib`` is their
       union. The retain batch is the paper's batch pool; other forget samples are never siblings.
    3. ``L_forget = CE(f(x_f), l_target)``, ``ŷ = argmax f(B_sib)`` (self-labels, no gradient),
       ``L_heal = CE(f(B_sib), ŷ)``; the paper ascends ``L_unlearn = L_forget − α·L_heal``, so this
       method minimises ``forget_weight · (−L_forget + α·L_heal)`` (η is the optimizer's learning
       rate). Without a retain batch the healing term is skipped.

    The base's retain term defaults to ``"none"`` (healing is ROKA's retain term) and stays
    selectable. Defaults (the paper's α, η, k and N were not found): ``alpha=1``, ``k=4``,
    ``num_forget=8``; ``L_forget`` is unbounded, so, as with gradient ascent, limit the number of
    epochs.

    Args:
        layer: Hidden layer (a name in ``model.named_modules()``) where contributions are taken:
            ``"penultimate"`` for the project's ``SmallCNN`` and ``ViTClassifier``.
        variant: ``"targeted"`` or ``"non_targeted"``.
        alpha: α, weight of the healing loss.
        k: Siblings per picked forget sample.
        num_forget: Forget samples picked per step (``None``: the whole forget batch).
        selection: ``"top"`` (highest scores) or ``"sample"`` (∝ score, seeded by ``seed`` and the step).
        forget_weight: Weight of ``−L_forget + α·L_heal``.
        retain_weight: Weight of the base's retain term.
        retain_loss: The base's retain term: ``"none"`` (default), ``"nll"`` or ``"kl"``.
        mask: Optional parameter mask.
        seed: Seed of ``selection="sample"``.
    """

    #: Class labels / class probabilities: not defined for causal LMs.
    supported_tasks = ("classification",)

    def __init__(
        self,
        layer: str = "penultimate",
        variant: Variant = "targeted",
        alpha: float = 1.0,
        k: int = 4,
        num_forget: int | None = 8,
        selection: Selection = "top",
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "none",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(layer, str) or not layer:
            raise ValueError(f"`layer` should name a submodule of the model (e.g. 'penultimate'), got {layer!r}.")
        check_choice("variant", variant, _VARIANTS)
        check_positive("alpha", alpha, allow_zero=True)
        check_int("k", k)
        check_int("num_forget", num_forget, optional=True)  # None: the whole forget batch
        check_choice("selection", selection, _SELECTIONS)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.layer = layer
        self.variant = variant
        self.alpha = float(alpha)
        self.k = int(k)
        self.num_forget = num_forget
        self.selection = selection
        self.needs_reference = variant == "non_targeted"  # only it needs θ₀ (its pseudo-labels)
        #: Non-targeted: the mean contribution vector of D_f at θ₀ (fixed by :meth:`prepare`).
        self.add_state("centroid", None)

    # ------------------------------------------------------------------ preparation
    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        _find_module(model, self.layer)  # a clear error naming the layer, before the first step
        if self.variant != "non_targeted":
            return
        if forget_loader is None:
            raise ValueError(
                "ROKA(variant='non_targeted') needs the forget data in `setup` to compute its contribution centroid."
            )
        total: Tensor | None = None
        count = 0
        with evaluating(model) as device:
            for batch in forget_loader:
                batch = move_data_to_device(batch, device)
                with torch.no_grad():
                    pseudo = task.forward(model, batch).argmax(-1)
                r = contribution_vectors(model, task, batch, self.layer, pseudo).double().sum(0)
                total = r if total is None else total + r
                count += int(pseudo.shape[0])
        if total is None or count == 0:
            raise ValueError("ROKA got an empty forget loader; the forget set must not be empty.")
        self.centroid = (total / count).float()

    # ------------------------------------------------------------------ the step
    def forget_targets(self, ctx: StepContext) -> Tensor:
        """``l_target`` of every forget sample: its label (targeted) or θ₀'s prediction (non-targeted)."""
        if self.variant == "targeted":
            return ctx.task.targets(ctx.batch("forget"))
        return ctx.reference_outputs("forget").argmax(-1)

    def selection_scores(self, ctx: StepContext, targets: Tensor) -> tuple[Tensor, Tensor | None]:
        """Scores in ``[0, 1]`` of the forget samples (higher = picked first), and their contributions if computed."""
        if self.variant == "targeted":
            probs = torch.softmax(ctx.outputs("forget").detach().float(), dim=-1)
            return probs.gather(1, targets[:, None]).squeeze(1), None
        if self.centroid is None:
            raise RuntimeError("ROKA(variant='non_targeted') has no centroid yet; call `setup` (the Trainer does) first.")
        contrib = contribution_vectors(ctx.model, ctx.task, ctx.batch("forget"), self.layer, targets)
        cos = F.cosine_similarity(contrib.float(), self.centroid.to(contrib.device)[None].float(), dim=-1)
        return (1.0 + cos) / 2.0, contrib

    def pick(self, scores: Tensor, global_step: int = 0) -> Tensor:
        """Indices of the forget samples to unlearn this step."""
        n = scores.shape[0] if self.num_forget is None else min(self.num_forget, scores.shape[0])
        if self.selection == "top":
            return torch.topk(scores, n).indices
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + global_step)
        weights = scores.detach().double().cpu().clamp_min(0) + 1e-12
        return torch.multinomial(weights, n, replacement=False, generator=generator).to(scores.device)

    def siblings(self, ctx: StepContext, picked_contrib: Tensor, picked_targets: Tensor) -> Tensor:
        """Indices into the retain batch of the union of the ``k`` nearest siblings of every picked sample."""
        classes = torch.unique(picked_targets)
        retain = ctx.batch("retain")
        n_retain = ctx.task.batch_size(retain)
        pool = contribution_vectors(ctx.model, ctx.task, retain, self.layer, classes[:, None].expand(-1, n_retain))
        which = torch.searchsorted(classes, picked_targets)
        idx = nearest_siblings(picked_contrib.to(pool.dtype), pool[which.to(pool.device)], self.k)
        return torch.unique(idx.flatten())

    def forget_loss(self, ctx: StepContext) -> Tensor:
        targets = self.forget_targets(ctx)
        scores, contrib = self.selection_scores(ctx, targets)
        picked = self.pick(scores, ctx.global_step)
        logits = ctx.outputs("forget")
        loss = -F.cross_entropy(logits[picked].float(), targets[picked])
        if ctx.retain is None or self.alpha == 0:
            return loss
        if contrib is None:
            contrib = contribution_vectors(ctx.model, ctx.task, _subset(ctx.batch("forget"), picked), self.layer, targets[picked])
        else:
            contrib = contrib[picked]
        sib = self.siblings(ctx, contrib, targets[picked])
        retain_logits = ctx.outputs("retain")[sib]
        self_labels = retain_logits.detach().argmax(-1)
        return loss + self.alpha * F.cross_entropy(retain_logits.float(), self_labels)


def _subset(batch: Any, index: Tensor) -> Any:
    """Rows ``index`` of a tuple/list/mapping batch of tensors."""
    if isinstance(batch, dict):
        return {k: v[index] if isinstance(v, Tensor) else v for k, v in batch.items()}
    return type(batch)(v[index] if isinstance(v, Tensor) else v for v in batch)
