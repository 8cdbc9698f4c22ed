"""TRU for recommendation: targeted reverse update with a ranking fusion gate, branch-wise modality scaling and
capacity-aware layer isolation (RECONSTRUCTED from the abstract)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_fraction, check_int, check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask, SaliencyMask
from lightning_unlearn.methods.npo import npo_loss
from lightning_unlearn.tasks.base import Task, evaluating

__all__ = ["TRURec", "branch_scales", "deletion_sensitivity", "module_groups", "ranking_gate", "select_modules"]

_REVERSES = {"ga": "gradient ascent on the deleted interactions' BPR loss", "npo": "NPO on their BPR log-likelihood"}


def ranking_gate(deleted_scores: Tensor, kth_scores: Tensor, temperature: float) -> Tensor:
    """``g = σ((s_{u,i_del} − τ_u) / T)``: close to 1 while a deleted item is still above the user's top-k cut-off
    ``τ_u`` (the k-th highest score), close to 0 once it has left the top k. Detached (a weight, not a target)."""
    return torch.sigmoid((deleted_scores - kth_scores) / temperature).detach()


def branch_scales(shares: dict[str, float], power: float = 1.0) -> dict[str, float]:
    """``λ_b = (min_b' π_b' / π_b)^power``: the branch carrying the least retained utility ``π`` gets the whole
    reverse gradient, a branch carrying ``m`` times more gets ``m^-power`` of it (a branch with no share: 1)."""
    positive = [v for v in shares.values() if v > 0]
    if not positive:
        return {b: 1.0 for b in shares}
    low = min(positive)
    return {b: (low / v) ** power if v > 0 else 1.0 for b, v in shares.items()}


def module_groups(model: nn.Module) -> dict[str, list[str]]:
    """Trainable parameters grouped by the module that owns them (``"user_embedding"``, ``"layers.0"``, ...); a
    parameter held directly by the top module (e.g. ``gate_logits``) is its own group."""
    groups: dict[str, list[str]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            owner = name.rpartition(".")[0] or name
            groups.setdefault(owner, []).append(name)
    return groups


def deletion_sensitivity(grads: list[Tensor], params: list[Tensor], floor: float = 1e-3) -> float:
    """``‖∇_m‖ / (‖θ_m‖ + floor·√n_m)``: a module's forget-gradient norm relative to its weight norm (the floor, an
    RMS of ``floor`` per entry, keeps a module at zero, e.g. biases initialised to 0, from dividing by zero)."""
    grad = torch.sqrt(sum(g.detach().float().pow(2).sum() for g in grads))
    weight = torch.sqrt(sum(p.detach().float().pow(2).sum() for p in params))
    return float(grad / (weight + floor * sum(p.numel() for p in params) ** 0.5))


def select_modules(sensitivity: dict[str, float], sizes: dict[str, int], capacity: float) -> list[str]:
    """Capacity-aware isolation: the modules in decreasing ``sensitivity`` while their parameters fit in
    ``capacity`` × all parameters (a module that does not fit is skipped, smaller ones after it may still fit);
    the most sensitive module is always kept."""
    budget = capacity * sum(sizes.values())
    order = sorted(sensitivity, key=lambda m: (-sensitivity[m], m))
    chosen, used = [order[0]], sizes[order[0]]
    for module in order[1:]:
        if used + sizes[module] <= budget:
            chosen.append(module)
            used += sizes[module]
    return chosen


@register_method(name="tru_rec")
class TRURec(UnlearningMethod):
    """TRU (recommendation): a targeted plug-in over a reverse-update unlearner for multimodal recommenders.

    "Targeted Reverse Update for multimodal recommendation unlearning", arXiv 2604.02183. **RECONSTRUCTED — not from
    the paper**: only the abstract was available (no code, no equations, no numbers); the component names are the
    paper's, the maths below is this library's design (shared/METHODS.md §6). The loss on a forget batch of deleted
    ``(u, i_del)`` pairs with sampled negatives ``j`` and a retain batch of BPR triples is

        L = γ · [ L_rev(θ; D_f) + ρ · mean g · softplus(s_{u,i_del} − s_{u,j}) ] + α · BPR(θ; D_r)

    1. **Ranking fusion gate** (``rank_gate``): the penalty ``softplus(s_del − s_neg)`` pushes a deleted item below
       the negative with a gradient that does *not* vanish for confidently ranked items (BPR ascent's
       ``σ(s_neg − s_del)`` does), weighted by ``g = σ((s_del − τ_u)/T)`` with ``τ_u`` the user's current k-th highest
       score over the catalogue, so it acts on deleted items still in the user's top k and fades once they left it.
    2. **Branch-wise modality scaling** (``branch_scaling``): before unlearning, each item branch's share ``π_b`` of the
       retained users' utility is measured as ``Σ_{(u,i)∈D_r} |g_b⟨p_u, v_{b,i}⟩|`` (``v_b`` the branch's item
       representation, ``g_b`` its fusion gate, ``p_u`` the user representation; exact for MF, first order through
       LightGCN's propagation); the forget terms' gradient into branch ``b`` is multiplied by
       ``λ_b = (min π / π_b)^power`` (:func:`branch_scales`), so branches that carry retained utility move less. Needs a
       model with ``item_branches`` / ``gates`` / ``user_vectors`` and a ``grad_scale`` argument
       (:class:`~lightning_unlearn.models.ContentMF`, :class:`~lightning_unlearn.models.ContentLightGCN`).
    3. **Capacity-aware layer isolation** (``layer_isolation``): each module's deletion sensitivity
       ``‖∇_m BPR(θ₀; D_f)‖ / ‖θ_m‖`` (:func:`deletion_sensitivity`) is measured once; the most sensitive modules within a parameter budget of
       ``capacity`` × all parameters are updated (:func:`select_modules`), every other one is frozen exactly (the base's
       parameter mask; the retain term moves only the isolated modules too).
    4. ``L_rev``: gradient ascent (``reverse="ga"``: ``−BPR``) or NPO (``reverse="npo"``, with ``beta``).

    Each part is switchable, for the ablation table of benchmark B5.

    Args:
        reverse: ``"ga"`` or ``"npo"``: the base reverse update.
        beta: NPO's β (``reverse="npo"``).
        rank_gate: Use the ranking fusion gate term.
        rank_weight: ρ, its weight.
        top_k: k of the gate's cut-off (20 in B5).
        gate_temperature: T of the gate.
        branch_scaling: Scale the forget gradient per modality branch.
        scaling_power: The exponent of :func:`branch_scales`.
        layer_isolation: Update only the most deletion-sensitive modules.
        capacity: Their parameter budget, a fraction of all parameters.
        max_batches: Batches used to measure the branch shares and the sensitivities (``None``: all).
        num_items: Catalogue size, for the gate's cut-off with a model that has no ``score_all(users)`` (it is then
            scored on every (user, item) pair); not needed otherwise.
        forget_weight: γ, weight of the forget terms (reverse update and gate).
        retain_weight: α, weight of the retain term.
        retain_loss: ``"nll"`` (BPR on the retained triples), ``"kl"`` or ``"none"``.
        mask: Optional parameter mask, intersected with layer isolation's.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    supported_tasks = ("recommendation",)

    def __init__(
        self,
        reverse: Literal["ga", "npo"] = "ga",
        beta: float = 0.1,
        rank_gate: bool = True,
        rank_weight: float = 1.0,
        top_k: int = 20,
        gate_temperature: float = 1.0,
        branch_scaling: bool = True,
        scaling_power: float = 1.0,
        layer_isolation: bool = True,
        capacity: float = 0.5,
        max_batches: int | None = 20,
        num_items: int | None = None,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_choice("reverse", reverse, _REVERSES)
        check_positive("beta", beta)
        check_positive("rank_weight", rank_weight, allow_zero=True)
        check_int("top_k", top_k)
        check_positive("gate_temperature", gate_temperature)
        check_positive("scaling_power", scaling_power, allow_zero=True)
        check_fraction("capacity", capacity)
        check_int("max_batches", max_batches, optional=True)
        check_int("num_items", num_items, optional=True)
        for name, value in (("rank_gate", rank_gate), ("branch_scaling", branch_scaling), ("layer_isolation", layer_isolation)):
            if not isinstance(value, bool):
                raise TypeError(f"`{name}` should be True or False, got {value!r}.")
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.reverse, self.beta = reverse, float(beta)
        self.rank_gate, self.rank_weight, self.top_k, self.gate_temperature = rank_gate, float(rank_weight), top_k, float(gate_temperature)
        self.branch_scaling, self.scaling_power = branch_scaling, float(scaling_power)
        self.layer_isolation, self.capacity, self.max_batches = layer_isolation, float(capacity), max_batches
        self.num_items = num_items
        self.needs_reference = reverse == "npo"
        self.add_state("branch_shares", None)  # {branch: π_b}
        self.add_state("scales", None)  # {branch: λ_b}
        self.add_state("sensitivity", None)  # {module: ‖∇‖/‖θ‖}
        self.add_state("isolated", None)  # the modules updated

    # ------------------------------------------------------------------ preparation
    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        if self.rank_gate and self.num_items is None and not callable(getattr(model, "score_all", None)):
            raise ValueError(
                f"TRURec's rank_gate ranks the catalogue: {type(model).__name__} has no `score_all(users)`, so pass "
                "`num_items` (the catalogue size), or rank_gate=False."
            )
        if self.branch_scaling:
            for attribute in ("item_branches", "gates", "user_vectors"):
                if not callable(getattr(model, attribute, None)):
                    raise TypeError(
                        f"TRURec's branch_scaling needs a multimodal recommender with `item_branches`, `gates` and "
                        f"`user_vectors` (e.g. ContentMF, ContentLightGCN); {type(model).__name__} has no `{attribute}`. "
                        "Pass branch_scaling=False for other models."
                    )
            if retain_loader is None:
                raise ValueError("TRURec's branch_scaling measures the retained utility of each branch: it needs the retain loader.")
            self.branch_shares = self._branch_shares(model, task, retain_loader)
            self.scales = branch_scales(self.branch_shares, self.scaling_power)
        if self.layer_isolation:
            if forget_loader is None:
                raise ValueError("TRURec's layer_isolation measures deletion sensitivity: it needs the forget loader.")
            grads = SaliencyMask(max_batches=self.max_batches).gradients(model, task, forget_loader)
            params = dict(model.named_parameters())
            groups = module_groups(model)
            sizes = {m: sum(params[n].numel() for n in names) for m, names in groups.items()}
            self.sensitivity = {m: deletion_sensitivity([grads[n] for n in names], [params[n] for n in names]) for m, names in groups.items()}
            self.isolated = select_modules(self.sensitivity, sizes, self.capacity)
            self.set_masks({n: torch.ones_like(params[n]) for m in self.isolated for n in groups[m]})

    @torch.no_grad()
    def _branch_shares(self, model: nn.Module, task: Task, retain_loader: Iterable) -> dict[str, float]:
        device = next(model.parameters()).device
        totals: dict[str, float] = {}
        with evaluating(model):
            for k, batch in enumerate(retain_loader):
                if self.max_batches is not None and k >= self.max_batches:
                    break
                batch = move_data_to_device(batch, device)
                users, items = task.users(batch), task.targets(batch)
                p = model.user_vectors(users)
                gates = model.gates()
                for branch, v in model.item_branches(items).items():
                    weight = gates[branch] if branch in gates else 1.0
                    totals[branch] = totals.get(branch, 0.0) + float((weight * (p * v).sum(-1)).abs().sum())
        total = sum(totals.values())
        if not totals:
            raise ValueError("TRURec got an empty retain loader; the retain set must not be empty.")
        return {b: (v / total if total > 0 else 1.0 / len(totals)) for b, v in totals.items()}

    # ------------------------------------------------------------------ the loss
    def forget_loss(self, ctx: StepContext) -> Tensor:
        batch = ctx.batch("forget")
        scorer = functools.partial(ctx.model, grad_scale=self.scales) if self.branch_scaling and self.scales else ctx.model
        outputs = ctx.task.forward(scorer, batch)
        if self.reverse == "ga":
            loss = -ctx.task.per_sample_loss(outputs, batch).mean()
        else:
            log_prob = ctx.task.log_likelihood(outputs, batch)
            loss = npo_loss(log_prob, ctx.task.log_likelihood(ctx.reference_outputs("forget"), batch), self.beta)
        if self.rank_gate and self.rank_weight > 0:
            users = ctx.task.users(batch)
            with torch.no_grad():
                scores = ctx.task.scores(ctx.model, users, self.num_items)
                kth = scores.topk(min(self.top_k, scores.shape[1]), dim=1).values[:, -1]
            gate = ranking_gate(outputs[:, 0], kth, self.gate_temperature)
            loss = loss + self.rank_weight * (gate * F.softplus(outputs[:, 0] - outputs[:, 1])).mean()
        return loss
