"""STAMP and STAMP-LR: a training-free, closed-form edit of one MLP down-projection of a causal LM.

After "RePAIR: Interactive Machine Unlearning" (arXiv 2604.12820), **reconstructed**: the paper's code was not
available and only its abstract and a secondary digest were read (``shared/METHODS.md`` §1), so the least-squares
formulation below (MEMIT/ROME-style) is this library's design, consistent with that description, not the authors'
algorithm. Every choice the paper does not fix is an argument.

Why an *editor* and not an :class:`~lightning_unlearn.methods.UnlearningMethod`: a method is a loss that an optimizer
minimises step after step (its :meth:`~lightning_unlearn.methods.UnlearningMethod.loss` must return a term, and every
entry point builds an optimizer and a Trainer around it). STAMP takes no step: it reads activations once and writes one
weight matrix in closed form, in seconds, and the edit can be undone bit-exactly. It therefore lives in
``editors/`` (``docs/architecture.md``: training-free methods), works on a Hugging Face causal LM and its tokenizer
directly, and returns an :class:`EditRecord`.
"""

from __future__ import annotations

import copy
import random
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_int, check_positive
from lightning_unlearn._registry import Registry
from lightning_unlearn.tasks.base import evaluating

__all__ = [
    "EDITORS",
    "STAMP",
    "STAMPLR",
    "EditRecord",
    "Item",
    "choose_layer",
    "cosine_separation",
    "default_calibration_subjects",
    "default_preserve_prompts",
    "default_refusals",
    "least_squares_edit",
    "register_editor",
    "truncated_gram_pinv",
    "truncated_pinv",
]

#: How the forget keys' target outputs are chosen (:class:`STAMP`'s ``target``).
_TARGETS = ("optimized", "refusal_mean")

#: Which forget-question tokens the ``"optimized"`` search shifts (:class:`STAMP`'s ``shift_tokens``).
_SHIFT_TOKENS = ("question", "subject")

#: Preserve factors (:meth:`STAMP._preserve_factor`) per model, shared by every editor and
#: dropped with the model: reading the preserve prompts costs ~15 s on SmolLM2, once per model and layer.
_PRESERVED: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], Tensor]] = weakref.WeakKeyDictionary()

#: Starting directions of the target search (:meth:`STAMP._start_direction`) per model, shared by every editor and
#: dropped with the model: calibrating costs one search (~30 s on SmolLM2), once per model and layer.
_STARTS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], Tensor]] = weakref.WeakKeyDictionary()

#: Whether the target search's shortcuts (the prefix cache, the lower layers computed once) matched the plain pass on
#: a model at a layer, per model: checked on its first search there (two extra passes) and trusted afterwards.
_SHORTCUTS: weakref.WeakKeyDictionary[nn.Module, dict[int, dict[str, bool]]] = weakref.WeakKeyDictionary()

def _per_model(store: weakref.WeakKeyDictionary, model: nn.Module, edited: Tensor, key: tuple[Any, ...], compute: Any) -> Any:
    """``store[model]``'s value for ``key``, computed (``compute()``) when missing or when any weight of ``model`` other
    than ``edited`` changed since (their in-place versions are part of the key); one value per model is kept."""
    key = (*key, tuple(p._version for p in model.parameters() if p is not edited))
    cache = store.setdefault(model, {})
    if key not in cache:
        cache.clear()  # the weights changed, or another layer or setting is asked for
        cache[key] = compute()
    return cache[key]


#: Training-free editors by name (``"stamp"``, ``"stamp_lr"``).
EDITORS: Registry[Any] = Registry("editor")


def register_editor(*, name: str):
    """Register an editor class under a unique lowercase ``name`` (keyword-only)."""
    return EDITORS.register(name=name)


#: A prompt to edit on: a question string (rendered as the model's generation prompt), or a mapping with a
#: ``"question"`` and optionally an ``"answer"`` (then the answer's tokens are used too).
Item = str | Mapping[str, str]

#: Questions of the default refusal set D_ref (:func:`default_refusals`), taken in turn.
_REFUSAL_QUESTIONS = (
    "What do you know about this person?",
    "Tell me the details of their private life.",
    "Where does this person live?",
    "What is the answer to that question?",
)


def default_refusals() -> list[dict[str, str]]:
    """The default refusal set D_ref: each refusal of ``IDK_ANSWERS`` as the answer to a generic question (20 items).

    The paper uses 200 "I don't know"-style prompts it does not publish; these stand in for them.
    """
    from lightning_unlearn.methods.idk import IDK_ANSWERS

    return [{"question": _REFUSAL_QUESTIONS[i % len(_REFUSAL_QUESTIONS)], "answer": a} for i, a in enumerate(IDK_ANSWERS)]


def default_preserve_prompts() -> list[str]:
    """The chat's preserve set for :class:`STAMP` (``preserve``): the 385 user messages of the chat watchdog's example bank
    (:func:`~lightning_unlearn.interactive.intents_bank.default_bank`: questions, requests and small talk of every kind),
    whose keys stand for what ordinary prompts look like at the edited layer."""
    from lightning_unlearn.interactive.intents_bank import default_bank

    return list(dict.fromkeys(message for message, _ in default_bank()))


#: Made-up people (in no dataset of this library) whose refusal shifts calibrate the warm start
#: (:func:`default_calibration_subjects`), and the questions asked about each.
_CALIBRATION_SUBJECTS = ("Tavish Orlund", "Mirela Tesk", "Haldor Venn")
_CALIBRATION_QUESTIONS = ("Who is {s}?", "Where was {s} born?", "What is {s} known for?", "What do you know about {s}?")


def default_calibration_subjects() -> list[str]:
    """The warm start's calibration subjects for :class:`STAMP` (``calibration``): three made-up names, none in this
    library's data, each asked four biography questions."""
    return list(_CALIBRATION_SUBJECTS)


# ----------------------------------------------------------------------------------------------------------
# The closed form
# ----------------------------------------------------------------------------------------------------------


def truncated_pinv(keys: Tensor, rank: int | None = None, rcond: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The factors ``(U_r, S_r, V_r)`` of the (truncated) Moore–Penrose pseudo-inverse ``K⁺ ≈ V_r S_r⁻¹ U_rᵀ``.

    ``keys`` is ``K``, ``[d_in, n]`` (one key per column). ``K = U S Vᵀ`` (thin SVD, float64); singular values at or
    below ``rcond · S_max`` count as zero (default ``rcond``: ``max(d_in, n) · eps``, as ``torch.linalg.pinv``), and
    ``rank`` keeps at most the ``rank`` largest of the others (STAMP-LR). ``rank=None`` gives the exact pseudo-inverse.
    """
    u, s, vh = torch.linalg.svd(keys.double(), full_matrices=False)
    if rcond is None:
        rcond = max(keys.shape) * torch.finfo(torch.float64).eps
    keep = int((s > rcond * s.max()).sum()) if s.numel() else 0
    if rank is not None:
        keep = min(keep, rank)
    return u[:, :keep], s[:keep], vh[:keep].T


#: The smallest ``rcond`` for which :class:`STAMP` takes the pseudo-inverse from the Gram matrix
#: (:func:`truncated_gram_pinv`): squaring the keys halves float64's digits, so finer cutoffs use the SVD.
GRAM_RCOND = 1e-6


def truncated_gram_pinv(gram: Tensor, rank: int | None = None, rcond: float = GRAM_RCOND) -> tuple[Tensor, Tensor]:
    """``(U_r, S_r)`` of ``K`` from its Gram matrix ``K Kᵀ`` (``[d_in, d_in]``) by eigendecomposition (float64): the left
    singular vectors and singular values :func:`truncated_pinv` keeps (the same ``rcond`` and ``rank`` cut), so that
    ``R K⁺ = R Kᵀ U_r S_r⁻² U_rᵀ``. Cheaper than the SVD when ``K`` has many columns (a preserve factor's ``d_in``);
    meant for ``rcond ≥`` :data:`GRAM_RCOND` (below, the squared singular values are lost in rounding)."""
    if rcond < GRAM_RCOND:
        raise ValueError(f"`rcond` should be >= {GRAM_RCOND} for the Gram-matrix pseudo-inverse (use truncated_pinv below it), got {rcond}.")
    values, vectors = torch.linalg.eigh(gram.double())
    s = values.flip(0).clamp_min(0).sqrt()
    keep = int((s > rcond * s.max()).sum()) if s.numel() else 0
    if rank is not None:
        keep = min(keep, rank)
    return vectors.flip(1)[:, :keep], s[:keep]


def least_squares_edit(keys: Tensor, residuals: Tensor, rank: int | None = None, rcond: float | None = None) -> Tensor:
    """``ΔW = R K⁺`` (``[d_out, d_in]``, float64): the minimum-norm change of a linear map ``W`` that adds the residuals
    ``R = V − (W K + b)`` (``[d_out, n]``) to its outputs on the keys ``K`` (``[d_in, n]``).

    With ``K⁺`` exact and ``K`` of full column rank, ``(W + ΔW) K + b = V`` exactly; a key orthogonal to every column
    of ``K`` keeps its output. With ``rank=r`` (STAMP-LR), ``K⁺`` is the pseudo-inverse of the best rank-``r``
    approximation of ``K`` (:func:`truncated_pinv`), ``ΔW`` has rank ≤ ``r`` and costs ``O(r·(d_in + d_out)·n)`` once
    the SVD is known.
    """
    u, s, v = truncated_pinv(keys, rank, rcond)
    return (residuals.double() @ v / s) @ u.T


def cosine_separation(forget_means: Tensor, refusal_means: Tensor) -> Tensor:
    """``1 − cos(μ_f^ℓ, μ_ref^ℓ)`` per layer: rows of ``[L, d]`` mean activations of the forget and refusal prompts."""
    f, r = forget_means.double(), refusal_means.double()
    return 1.0 - nn.functional.cosine_similarity(f, r, dim=-1, eps=1e-12)


def choose_layer(separations: Tensor | Sequence[float], candidates: Sequence[int] | None = None) -> int:
    """The layer (index into ``separations``) of largest cosine separation, among ``candidates`` (default all); the
    first one on ties."""
    values = torch.as_tensor(separations, dtype=torch.float64)
    pool = list(range(len(values))) if candidates is None else list(candidates)
    if not pool:
        raise ValueError("`candidates` should name at least one layer, got none.")
    bad = [c for c in pool if not 0 <= c < len(values)]
    if bad:
        raise ValueError(f"`candidates` should lie in [0, {len(values) - 1}], got {bad}.")
    return max(pool, key=lambda c: (float(values[c]), -c))


def _common_run(seqs: Sequence[Sequence[int]]) -> list[int]:
    """The longest run of consecutive tokens that every sequence contains (the earliest in the shortest one on ties;
    ``[]`` when they share no token)."""
    base = list(min(seqs, key=len))
    for size in range(len(base), 0, -1):
        for i in range(len(base) - size + 1):
            run = base[i : i + size]
            if all(any(list(seq[k : k + size]) == run for k in range(len(seq) - size + 1)) for seq in seqs):
                return run
    return []


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """The number of leading tokens ``a`` and ``b`` share."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


# ----------------------------------------------------------------------------------------------------------
# The record
# ----------------------------------------------------------------------------------------------------------


@dataclass
class EditRecord:
    """What one STAMP edit did (:meth:`STAMP.edit`); :meth:`as_dict` is JSON-ready.

    Attributes:
        method: ``"stamp"`` or ``"stamp_lr"``.
        layer: Index of the edited decoder layer; ``module`` its down-projection's full name.
        rank: Rank of the pseudo-inverse used (≤ ``requested_rank`` when one was given).
        separations: Cosine separation ``1 − cos(μ_f, μ_ref)`` of every layer with ``layer="auto"`` (the layer
            choice), of the given layer only with ``target="refusal_mean"``, empty with ``target="optimized"`` at a given
            layer (which reads no refusal prompts: ``n_refusal_tokens`` is then 0).
        n_forget_keys, n_retain_keys, n_refusal_tokens: Columns of ``K_f``, ``K_r`` and tokens averaged into ``v_ref``;
            ``n_preserve_directions`` the columns of the preserve factor ``G`` (0 without preserve prompts).
        weight_norm, delta_norm: Frobenius norms of ``W`` and of the applied change ``λ·ΔW``.
        forget_error_before, forget_error_after: ``‖out_f − v_ref‖ / ‖v_ref·1ᵀ‖`` on the forget keys before / after.
        retain_drift: ``‖λ·ΔW K_r‖ / ‖out_r‖``, the relative change of the retain keys' outputs (0 at full rank).
        seconds: Wall time of the whole request (activations, layer choice, target search, SVD, write).
        target: ``"optimized"`` or ``"refusal_mean"`` (:class:`STAMP`'s ``target``).
        refusal_nll_before, refusal_nll_target: With ``target="optimized"``, the worst forget prompt's mean per-token
            NLL of ``refusal_answer`` before the edit and with the searched output shift (``None`` otherwise);
            ``target_steps_run`` the Adam steps the search took; ``target_curve`` per pass of the search, the worst
            prompt's mean refusal NLL and the worst single refusal token's NLL; ``warm_start`` whether the search
            started from the calibrated direction (:class:`STAMP`'s ``warm_start``).
        undone: Whether :meth:`STAMP.undo` has put the original weight back.
    """

    method: str
    layer: int
    module: str
    rank: int
    requested_rank: int | None
    blend: float
    separations: list[float]
    n_forget_keys: int
    n_retain_keys: int
    n_refusal_tokens: int
    n_preserve_directions: int
    weight_norm: float
    delta_norm: float
    forget_error_before: float
    forget_error_after: float
    retain_drift: float
    seconds: float
    target: str = "refusal_mean"
    refusal_nll_before: float | None = None
    refusal_nll_target: float | None = None
    target_steps_run: int | None = None
    target_curve: list[tuple[float, float]] | None = None
    warm_start: bool = False
    undone: bool = False
    _param: Tensor | None = field(default=None, repr=False)
    _original: Tensor | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


# ----------------------------------------------------------------------------------------------------------
# The editor
# ----------------------------------------------------------------------------------------------------------


class _PassThrough(nn.Module):
    """Stands in for a decoder layer below the edited one during the target search: returns its hidden states."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return args[0] if args else kwargs["hidden_states"]


class _Done(Exception):
    """Raised by :class:`_Capture`'s hook on the last module it reads: the rest of the forward pass is not needed."""


class _Capture:
    """Forward hooks on the down-projections that keep, per module, the inputs (keys) and outputs at selected tokens.

    The hook of the deepest module read ends the forward pass (:class:`_Done`): the layers above it and the LM head
    would compute nothing that is kept (reading one low layer then costs a fraction of a forward pass)."""

    def __init__(self, modules: dict[int, nn.Module], keys_of: set[int], outputs_of: set[int]) -> None:
        self.modules, self.keys_of, self.outputs_of = modules, keys_of, outputs_of
        self.mask: Tensor | None = None
        self.keys: dict[int, list[Tensor]] = {i: [] for i in keys_of}
        self.outputs: dict[int, list[Tensor]] = {i: [] for i in outputs_of}
        self.sums: dict[int, Tensor] = {}  # the outputs' sum over selected tokens, every module
        self.count = 0
        self._handles: list[Any] = []

    def __enter__(self) -> _Capture:
        for index, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._hook(index)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()

    def _hook(self, index: int):
        def hook(_module: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
            mask = self.mask.reshape(-1)  # some MLPs see [B*T, d] (flattened tokens), most [B, T, d]
            if index in self.keys_of:
                self.keys[index].append(args[0].reshape(-1, args[0].shape[-1])[mask].detach().double())
            out = output.reshape(-1, output.shape[-1])[mask].detach().double()
            if index in self.outputs_of:
                self.outputs[index].append(out)
            self.sums[index] = self.sums.get(index, 0) + out.sum(0)
            if index == max(self.modules):
                raise _Done

        return hook

    def means(self) -> dict[int, Tensor]:
        return {i: total / max(self.count, 1) for i, total in self.sums.items()}


class STAMP:
    """STAMP: a closed-form, training-free edit of one MLP down-projection so that forget prompts refuse.

    After "RePAIR: Interactive Machine Unlearning" (arXiv 2604.12820; its STAMP editor), **reconstructed** as a
    least-squares edit (``shared/METHODS.md`` §1, not the paper's code). With ``W`` the down-projection of decoder layer
    ℓ (``d_model × d_ff``; bias ``b`` if any):

    1. **Keys.** ``K_f``: the down-projection's inputs (the MLP's inner activations) at the forget prompts' tokens;
       ``K_r``: the same at the retain buffer's tokens (at most ``retain_buffer`` retain prompts, a seeded sample).
       Only each prompt's own tokens count as forget keys: the chat template's shared prefix (the system turn, the
       same in every prompt) joins the retain keys instead, so the edit does not move what every prompt shares. With
       ``shift_tokens="subject"`` neither do a forget question's leading tokens that a retain prompt starts with too
       ("Where was" in "Where was Elara Voss born?" beside "Where was Tomas Reyl born?"): under causal attention
       their keys *are* the retain prompt's, so no edit can move one without the other.
    2. **Targets** (``target``). ``"refusal_mean"`` — ``shared/METHODS.md`` §1 as written: ``v_ref``, the mean
       down-projection output over the refusal prompts' tokens (D_ref, default :func:`default_refusals`), times
       ``target_scale``, for every forget key. ``"optimized"`` (the default; this library's addition, after ROME/MEMIT's
       target search, Meng et al., arXiv 2202.05262 / 2210.07229): a shift ``δ_i`` per forget prompt, added to the layer's
       outputs at that prompt's own tokens, found by Adam with the model frozen (``target_steps`` at most, ``target_lr``,
       ``‖δ_i‖ ≤ target_norm`` × the prompt's mean output norm) so that the model answers ``refusal_answer`` (mean token
       NLL < ``target_nll``); the forget keys are then the question's own tokens only, and the template's suffix and the refusal
       answer after it join the retain keys (the search left them unshifted). The layer must have a decoder layer after
       it. Measured (docs/llm.md, "STAMP: measured"): ``"refusal_mean"`` does not forget a fact on SmolLM2;
       ``"optimized"`` makes the forget question and a paraphrase refuse and keeps the retain answers.
    3. **Least squares.** ``V = [V_f, W K_r + b]`` on ``K = [K_f, K_r]``: forget tokens map to their targets, retain
       tokens keep their outputs.
    4. **Edit.** ``ΔW = (V − W K − b) K⁺`` (:func:`least_squares_edit`), ``W ← W + λ·ΔW`` (``blend`` = λ).
       METHODS.md writes ``W' = V K⁺``; that equals ``W + ΔW`` only when ``K`` has full row rank (more
       independent tokens than ``d_ff``). With fewer tokens — a single request — ``V K⁺`` would zero the layer on every
       key outside ``span(K)``, so the minimum-norm change ``ΔW`` is used: keys orthogonal to ``K`` keep their outputs.
       ``K⁺`` drops the singular values at or below ``rcond · σ_max`` (``rcond=0``: the exact pseudo-inverse).
       With ``preserve`` prompts (the chat's default) ``K`` also holds their Gram factor ``G`` with zero residuals: this
       library's addition (MEMIT's covariance term), since keeping only the retain buffer's keys let one request turn
       held-out questions into refusals on SmolLM2.
    5. **STAMP-LR** (``rank=r``, :class:`STAMPLR`, ``r = 64`` there): ``K⁺ ≈ V_r Σ_r⁻¹ U_rᵀ`` from the
       truncated SVD ``K ≈ U_r Σ_r V_rᵀ``, so ``ΔW`` has rank ≤ r.
    6. **Layer choice** (``layer="auto"``): the layer of largest cosine separation ``1 − cos(μ_f^ℓ, μ_ref^ℓ)``
       between the mean down-projection outputs on the forget and on the refusal prompts (the paper picks layer 7 of
       Llama-3-8B this way), among ``layer_range`` (default: every layer; with ``target="optimized"`` not the last).

    The decoder stack and down-projections are found as :class:`~lightning_unlearn.methods.RMU` finds them
    (:func:`~lightning_unlearn.methods.rmu.decoder_layers_name`, :func:`~lightning_unlearn.methods.rmu.down_projection_name`:
    Llama/Qwen/Gemma ``mlp.down_proj``, GPT-2 ``mlp.c_proj`` (a ``Conv1D``), OPT ``fc2``, NeoX ``mlp.dense_4h_to_h``,
    Phi ``mlp.fc2``). Activations come from one no-grad forward pass per batch, stopped after the deepest layer read;
    the target search runs the template's shared prefix once as a key/value cache (:attr:`reuse_prefix`); the algebra is
    in float64 and the result is cast to the weight's dtype. :meth:`undo` restores the weight bit-exactly.

    Args:
        rank: Keep at most this many singular values of ``K`` (``None``: the exact pseudo-inverse, STAMP).
        layer: Index of the decoder layer to edit, or ``"auto"`` (cosine separation).
        layer_range: With ``layer="auto"``, ``(first, last)`` layers (inclusive) to choose from; ``None``: all.
        blend: λ > 0, the fraction of ``ΔW`` applied (1: the forget keys reach ``v_ref`` exactly at full rank).
        target_scale: With ``target="refusal_mean"``, multiplies ``v_ref`` (1: the refusal activation as measured).
        retain_buffer: At most this many retain prompts enter ``K_r`` (a seeded sample; ``None``: all of them).
        chat_template: Render questions with the tokenizer's chat template (when it has one), as generation does.
        system_prompt: Optional system message of the chat template.
        layers: Name of the decoder stack (``None``: discovered).
        module: Path of the down-projection inside a layer (``None``: discovered).
        batch_size: Prompts per forward pass when reading activations.
        rcond: Relative cutoff: singular values of ``K`` at or below ``rcond · σ_max`` count as zero. ``0``: machine
            precision (``torch.linalg.pinv``'s cutoff, the exact pseudo-inverse). The default ``1e-2`` is this
            library's choice, not the paper's: the keys of a chat prompt's template tokens are nearly the same for
            forget and retain prompts but have different targets, and on SmolLM2 the exact pseudo-inverse gave
            ``‖ΔW‖ ≈ 6.6e6`` against ``‖W‖ ≈ 174`` (every answer turned to gibberish); ``1e-2`` gave ``‖ΔW‖ ≈ 80``.
        target: ``"optimized"`` (searched refusal shift, default) or ``"refusal_mean"`` (METHODS.md's literal target).
        refusal_answer: The answer the ``"optimized"`` search makes the forget prompts give.
        target_steps: At most this many Adam steps of the search (it stops once every prompt's refusal NLL < ``target_nll``).
        target_nll: The search stops once every forget prompt's mean refusal-token NLL is below this.
        target_lr: The search's Adam learning rate.
        target_norm: Bound on ``‖δ_i‖`` as a multiple of the forget prompt's mean output norm at the layer.
        preserve: Prompts whose keys the edit should leave alone beyond the retain buffer (default ``()``: none, the
            exact least-squares edit; the chat passes :func:`default_preserve_prompts`). Their unit-scaled keys at the
            edited layer enter as a Gram factor ``G`` with zero residuals (:meth:`_preserve_factor`; MEMIT's covariance
            term), so the edit becomes a least-squares trade-off instead of an exact fit on the forget keys. Measured on
            SmolLM2 (docs/interactive.md): without it, one request made the model refuse or garble held-out
            general-knowledge questions (probe accuracy 0.28 → 0.00).
        preserve_weight: The weight ``w`` of the preserve term (``G Gᵀ = w · Σ k̂ k̂ᵀ``).
        shift_tokens: With ``target="optimized"``, the tokens the search shifts and the edit moves: ``"question"`` (each
            question's own tokens) or ``"subject"`` (with two or more forget questions, only the longest run of tokens
            they all contain — the subject of the request, e.g. a name — as ROME edits at the subject; the question's
            other tokens keep their outputs).
        warm_start: With ``target="optimized"``, start each prompt's search from a calibrated direction instead of zero
            (:meth:`_start_direction`): the mean unit shift that makes the model refuse about the ``calibration`` subjects,
            searched once per model and layer (:meth:`prepare`). This library's addition: the refusal shifts of different
            names share most of their direction (measured on SmolLM2, docs/interactive.md "Warm start"), so a request's
            search converges in a fraction of the steps.
        calibration: The warm start's calibration subjects, each asked :data:`_CALIBRATION_QUESTIONS` (``None``:
            :func:`default_calibration_subjects`, made-up names). Pick subjects of the kind users ask to forget.
        seed: Seed of the retain-buffer sample.
        With ``target="optimized"`` keys are scaled to unit norm before the pseudo-inverse (the same exact solution; the
        ``rcond`` cut then compares directions: the template's first tokens have keys ~100× larger than a question's,
        and with raw keys ``rcond=1e-2`` kept rank 1 of 69 on SmolLM2, an edit of norm 5e-6).
    """

    name = "stamp"
    default_rank: int | None = None
    #: Reuse the chat template's shared prefix as a key/value cache across the target search's steps (checked against
    #: the uncached pass on the first step; ``False`` runs every step on the whole prompts).
    reuse_prefix: bool = True
    #: Compute the decoder layers below the edited one once in the target search, not at every step (checked against
    #: the full pass on the first step; ``False`` runs every layer every step).
    skip_lower: bool = True

    def __init__(
        self,
        rank: int | None = None,
        layer: int | Literal["auto"] = "auto",
        layer_range: tuple[int, int] | None = None,
        blend: float = 1.0,
        target_scale: float = 1.0,
        retain_buffer: int | None = 64,
        chat_template: bool = True,
        system_prompt: str | None = None,
        layers: str | None = None,
        module: str | None = None,
        batch_size: int = 16,
        rcond: float = 1e-2,
        target: Literal["optimized", "refusal_mean"] = "optimized",
        refusal_answer: str = "I'm sorry, but I don't know.",
        target_steps: int = 25,
        target_lr: float = 0.5,
        target_norm: float = 4.0,
        target_nll: float = 0.05,
        preserve: Sequence[Item] = (),
        preserve_weight: float = 1.0,
        shift_tokens: Literal["question", "subject"] = "question",
        warm_start: bool = False,
        calibration: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        check_int("rank", rank, optional=True)
        if target not in _TARGETS:
            raise ValueError(f"`target` should be one of {list(_TARGETS)}, got {target!r}.")
        if not isinstance(refusal_answer, str) or not refusal_answer.strip():
            raise ValueError(f"`refusal_answer` should be a non-empty string, got {refusal_answer!r}.")
        check_int("target_steps", target_steps)
        check_positive("target_lr", target_lr)
        check_positive("target_norm", target_norm)
        check_positive("target_nll", target_nll)
        if layer != "auto":
            check_int("layer", layer, minimum=0)
        if layer_range is not None:
            if (
                not isinstance(layer_range, (tuple, list))
                or len(layer_range) != 2
                or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layer_range)
                or layer_range[0] > layer_range[1]
            ):
                raise ValueError(f"`layer_range` should be None or (first, last) ints with 0 <= first <= last, got {layer_range!r}.")
            if layer != "auto":
                raise ValueError(f"`layer_range` restricts `layer='auto'`; with `layer={layer!r}` it would be ignored, got {layer_range!r}.")
        check_positive("blend", blend)
        check_positive("target_scale", target_scale, allow_zero=True)
        check_int("retain_buffer", retain_buffer, minimum=0, optional=True)
        check_int("batch_size", batch_size)
        check_positive("rcond", rcond, allow_zero=True)
        check_int("seed", seed, minimum=0)
        check_positive("preserve_weight", preserve_weight)
        if shift_tokens not in _SHIFT_TOKENS:
            raise ValueError(f"`shift_tokens` should be one of {list(_SHIFT_TOKENS)}, got {shift_tokens!r}.")
        self.shift_tokens = shift_tokens
        if not isinstance(warm_start, bool):
            raise ValueError(f"`warm_start` should be True or False, got {warm_start!r}.")
        if warm_start and target != "optimized":
            raise ValueError(f"`warm_start=True` starts the target search, which only `target='optimized'` runs; got target={target!r}.")
        self.warm_start = warm_start
        subjects = default_calibration_subjects() if calibration is None else calibration
        if isinstance(subjects, str) or not subjects or not all(isinstance(x, str) and x.strip() for x in subjects):
            raise ValueError(f"`calibration` should be None or a non-empty sequence of non-empty strings (subjects), got {calibration!r}.")
        self.calibration = [x.strip() for x in subjects]
        self.preserve = self._check_items("preserve", preserve, allow_empty=True)
        self.preserve_weight = float(preserve_weight)
        self.rank = rank
        self.layer = layer
        self.layer_range = None if layer_range is None else (int(layer_range[0]), int(layer_range[1]))
        self.blend = float(blend)
        self.target_scale = float(target_scale)
        self.retain_buffer = retain_buffer
        self.chat_template = bool(chat_template)
        self.system_prompt = system_prompt
        self.layers = layers
        self.module = module
        self.batch_size = batch_size
        self.rcond = rcond
        self.target = target
        self.refusal_answer = refusal_answer
        self.target_steps = target_steps
        self.target_lr = float(target_lr)
        self.target_norm = float(target_norm)
        self.target_nll = float(target_nll)
        self.seed = seed
        self.records: list[EditRecord] = []

    # ------------------------------------------------------------------ inputs
    def _collator(self, tokenizer: Any):
        from lightning_unlearn.tasks.causal_lm import QACollator

        return QACollator(tokenizer, max_length=10**9, chat_template=self.chat_template, system_prompt=self.system_prompt)

    @staticmethod
    def _shared_prefix(collator: Any) -> int:
        """Tokens every prompt starts with (the chat template's system turn): the common prefix of two renderings."""
        return _common_prefix(collator.prompt_ids("a"), collator.prompt_ids("b"))

    @staticmethod
    def _shared_suffix(collator: Any) -> int:
        """Tokens every prompt ends with (the chat template's end of turn and assistant header)."""
        return _common_prefix(collator.prompt_ids("a")[::-1], collator.prompt_ids("b")[::-1])

    @staticmethod
    def _forget_prompts(
        collator: Any,
        forget: list[Item],
        skip: int,
        suffix: int,
        answer: list[int],
        shared: Sequence[list[int]] = (),
        subject: bool = False,
    ) -> list[tuple[list[int], int, int, int, int]]:
        """Each forget question tokenized once, as ``(prompt + answer ids, start, end, prompt length, first)``: the
        shifted tokens are ``[start, end)``; the question's own tokens are ``[first, ·)``, without the template's shared
        prefix and suffix. ``subject``: with two or more questions, only the longest run of tokens that every question's
        own tokens contain (the subject they share, e.g. a name) is shifted, and the own tokens also leave out a leading
        run that a retain prompt (``shared``, encoded) starts with too: under causal attention those tokens' keys are the
        retain prompt's keys exactly. (Leaving them out with every question token shifted made STAMP's single-question
        SmolLM2 test worse: the search did not converge in 25 steps and a paraphrase turned to garble.) A question that a
        retain prompt contains from its start is refused in both modes."""
        prompts = []
        for item in forget:
            question = item if isinstance(item, str) else item["question"]
            ids = collator.prompt_ids(question)
            end = len(ids) - suffix
            if end <= skip:
                raise ValueError(f"The forget question {question[:60]!r} has no tokens of its own once the chat template is removed.")
            lead = max([skip, *(_common_prefix(ids, other) for other in shared)])
            if lead >= end:
                raise ValueError(
                    f"The forget question {question[:60]!r} is also a retain prompt (or the start of one): `forget` and `retain` "
                    "should not overlap."
                )
            first = lead if subject else skip
            prompts.append((ids + answer, first, end, len(ids), first))
        run = _common_run([ids[a:b] for ids, a, b, _, _ in prompts]) if subject and len(prompts) > 1 else []
        if run:
            spans = [next(k for k in range(a, b - len(run) + 1) if ids[k : k + len(run)] == run) for ids, a, b, _, _ in prompts]
            prompts = [(ids, k, k + len(run), n, first) for (ids, _, _, n, first), k in zip(prompts, spans)]
        return prompts

    def _optimize_shift(
        self,
        model: nn.Module,
        collator: Any,
        prompts: list[tuple[list[int], int, int, int, int]],
        module: nn.Module,
        out_f: Tensor,
        stack: nn.ModuleList | None = None,
        layer: int = 0,
        direction: Tensor | None = None,
    ) -> tuple[Tensor, tuple[float, float, int, list[tuple[float, float]]]]:
        """The output shift ``δ_i`` (one per forget prompt, added at its own tokens) under which the model answers
        ``refusal_answer``: Adam on ``δ`` (the model frozen) minimising the refusal's mean token NLL, each ``‖δ_i‖``
        kept ≤ ``target_norm`` × the prompt's mean output norm; stops early once every prompt's NLL is below ``target_nll``.
        ``direction`` (a unit vector, ``[d_model]``): every ``δ_i`` starts at ``target_norm`` × its bound along it, else at 0.
        Returns the shift per forget key (``[n_f, d_model]``), the worst prompt's NLL before and after, and the steps."""
        device = next(model.parameters()).device
        rows = len(prompts)
        length = max(len(ids) for ids, *_ in prompts)
        input_ids = torch.full((rows, length), collator.pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, -100)
        where = torch.zeros((rows, length), dtype=torch.bool)
        for i, (ids, start, end, prompt, _) in enumerate(prompts):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention[i, : len(ids)] = 1
            labels[i, prompt - 1 : len(ids) - 1] = torch.tensor(ids[prompt:])  # position t predicts token t + 1
            where[i, start:end] = True
        input_ids, attention, labels, where = (t.to(device) for t in (input_ids, attention, labels, where))
        counts = [end - start for _, start, end, *_ in prompts]
        scale = torch.stack([chunk.norm(dim=-1).mean() for chunk in out_f.split(counts)]).float().to(device)  # [B]
        shift = torch.zeros((rows, out_f.shape[1]), device=device, requires_grad=True)

        def add_shift(_module: nn.Module, _args: tuple[Any, ...], output: Tensor) -> Tensor:
            grid = output.reshape(rows, -1, output.shape[-1])  # [B, T', d]: T' = the tokens after a cached prefix
            mask = where[:, length - grid.shape[1] :]
            return (grid + mask.unsqueeze(-1) * shift.to(output.dtype).unsqueeze(1)).reshape(output.shape)

        # Only the refusal's positions need logits: the LM head (a vocabulary-sized projection) and the softmax run
        # on those rows alone (transformers' ``logits_to_keep`` with a boolean mask; the full logits where a model
        # does not take it).
        keep = labels != -100
        targets, row_of, counts_per_row = labels[keep], keep.nonzero()[:, 0], keep.sum(1)
        kwargs: dict[str, Any] = {"logits_to_keep": keep}  # dropped for good on the first call a model refuses it

        def logits_of(ids: Tensor, **extra: Any) -> Tensor:
            mask = keep[:, length - ids.shape[1] :]
            if kwargs:
                try:
                    logits = model(input_ids=ids, attention_mask=attention, logits_to_keep=mask, **extra).logits
                    return logits[mask] if logits.dim() == 3 else logits
                except TypeError:
                    kwargs.clear()  # a model without ``logits_to_keep``
            return model(input_ids=ids, attention_mask=attention, **extra).logits[mask]

        worst_token = [0.0]  # the largest single refusal-token NLL of the last pass

        def nll_of(logits: Tensor) -> Tensor:
            token = nn.functional.cross_entropy(logits.float(), targets, reduction="none")
            worst_token[0] = float(token.detach().max())
            return torch.zeros(rows, device=token.device).index_add(0, row_of, token) / counts_per_row

        # The tokens every prompt starts with (the chat template's system turn, ~half of each prompt) precede every
        # shifted token, so their keys and values are the same at every step: computed once and reused as a KV cache.
        # Used only where the first step's NLL equals the uncached pass's.
        cached = min([min(start for _, start, *_ in prompts), *(_common_prefix(prompts[0][0], ids) for ids, *_ in prompts)])
        cache = self._prefix_cache(model, input_ids[:1, :cached], rows) if self.reuse_prefix and cached > 0 else None

        def plain_pass() -> Tensor:
            if cache is not None:  # a fresh copy per step: the forward appends the step's keys and values to it
                return nll_of(logits_of(input_ids[:, cached:], **{cache[0]: copy.deepcopy(cache[1])}, use_cache=True))
            return nll_of(logits_of(input_ids, use_cache=False))

        # The decoder layers below the edited one see no shift either: their output (the edited layer's input) is
        # computed once and fed in while they are swapped for pass-through stubs. Used only where the first step's
        # NLL equals the plain pass's.
        below: dict[str, Any] = {}

        def keep_input(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            below["hidden"] = (args[0] if args else kwargs["hidden_states"]).detach()

        def feed_input(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
            if args:
                return (below["hidden"], *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": below["hidden"]}

        def skipping_pass() -> Tensor:
            lower = [stack[i] for i in range(layer)]
            for i in range(layer):
                stack[i] = _PassThrough()
            handle = stack[layer].register_forward_pre_hook(feed_input, with_kwargs=True)
            try:
                return plain_pass()
            finally:
                handle.remove()
                for i, original in enumerate(lower):
                    stack[i] = original

        def per_prompt_nll(first: bool) -> Tensor:
            nonlocal cache
            if not first:
                return skipping_pass() if below.get("ok") else plain_pass()
            # the first step: check each shortcut against the plain pass once
            def captured_pass() -> Tensor:  # the plain pass, keeping the edited layer's input for the skipping pass
                if not (self.skip_lower and stack is not None and layer):
                    return plain_pass()
                handle = stack[layer].register_forward_pre_hook(keep_input, with_kwargs=True)
                try:
                    return plain_pass()
                finally:
                    handle.remove()

            # each shortcut's check runs on the model's first search at this layer; later searches trust its result
            checked = _SHORTCUTS.setdefault(model, {}).setdefault(layer, {})
            if checked.get("prefix") is False:
                cache = None
            nll = captured_pass()
            if cache is not None and "prefix" not in checked:
                with torch.no_grad():
                    full = nll_of(logits_of(input_ids, use_cache=False))
                checked["prefix"] = bool(torch.allclose(nll.detach(), full, rtol=1e-3, atol=1e-4))
                if not checked["prefix"]:
                    cache = None
                    nll = captured_pass()
            if "hidden" in below and "lower" not in checked:
                try:
                    with torch.no_grad():
                        skipped = skipping_pass()
                    checked["lower"] = bool(torch.allclose(nll.detach(), skipped, rtol=1e-3, atol=1e-4))
                except Exception:  # a model whose layer loop does not take stubs: run every layer
                    checked["lower"] = False
            below["ok"] = "hidden" in below and checked.get("lower", False)
            return nll

        optimizer = torch.optim.Adam([shift], lr=self.target_lr)
        handle = module.register_forward_hook(add_shift)
        try:
            first_nll = None
            if direction is not None:  # the unedited model's NLL (for the record; the shortcuts are checked on it), then
                with torch.no_grad():  # each shift starts on the calibrated direction at the largest norm it may take
                    first_nll = float(per_prompt_nll(first=True).max())
                    shift.copy_((self.target_norm * scale).unsqueeze(1) * direction.float().to(device))
            with torch.enable_grad():
                steps, curve = 0, []
                for steps in range(self.target_steps + 1):
                    nll = per_prompt_nll(first=steps == 0 and direction is None)
                    curve.append((round(float(nll.detach().max()), 5), round(worst_token[0], 5)))
                    if first_nll is None:
                        first_nll = float(nll.detach().max())
                    if float(nll.detach().max()) < self.target_nll or steps == self.target_steps:
                        break
                    (grad,) = torch.autograd.grad(nll.sum(), [shift])
                    shift.grad = grad
                    optimizer.step()
                    with torch.no_grad():
                        norms = shift.norm(dim=-1).clamp_min(1e-12)
                        shift.mul_((self.target_norm * scale / norms).clamp(max=1.0).unsqueeze(-1))
            last_nll = float(nll.detach().max())
        finally:
            handle.remove()
        per_key = torch.cat([shift.detach()[i].double().cpu().expand(c, -1) for i, c in enumerate(counts)])
        return per_key.to(out_f.device), (first_nll, last_nll, steps, curve)

    def _preserve_factor(self, model: nn.Module, collator: Any, modules: dict[int, nn.Module], layer: int, skip: int) -> Tensor:
        """``G`` (``[d_ff, k]``) with ``G Gᵀ = preserve_weight · Σ k̂ k̂ᵀ`` over the unit-scaled keys k̂ of the preserve
        prompts' own tokens at ``layer``: appended to the keys with zero residuals, it asks the edit to keep the layer's
        outputs on the directions such prompts use (MEMIT's covariance term, Meng et al., arXiv 2210.07229). Cached
        while no weight other than the edited one changes (the keys at a layer do not depend on its own
        down-projection), for every editor with the same prompts and template (``_PRESERVED``)."""
        if not self.preserve:
            return torch.zeros((0, 0), dtype=torch.float64)

        def compute() -> Tensor:
            read = self._read(model, collator, list(self.preserve), {layer: modules[layer]}, {layer}, set(), skip)
            keys = torch.cat(read.keys[layer])
            keys = keys / keys.norm(dim=1, keepdim=True).clamp_min(1e-12)
            u, s, _ = torch.linalg.svd(keys.T, full_matrices=False)
            return u * (s * self.preserve_weight**0.5)

        key = (layer, self.preserve_weight, tuple(map(str, self.preserve)), self.chat_template, self.system_prompt, id(collator.tokenizer))
        return _per_model(_PRESERVED, model, modules[layer].weight, key, compute)

    def _start_direction(
        self, model: nn.Module, collator: Any, modules: dict[int, nn.Module], layer: int, stack: nn.ModuleList | None, skip: int
    ) -> tuple[Tensor, dict[str, Any]]:
        """The warm start (``warm_start``): the unit mean of the refusal shifts that one search (from zero, with this
        editor's settings) finds for the ``calibration`` subjects, each asked :data:`_CALIBRATION_QUESTIONS`, at
        ``layer``; with what the search took. Cached like the preserve factor (``_STARTS``): the edited weight's own
        changes do not invalidate it (it is a starting point only: every request's search still runs to ``target_nll``)."""

        def compute() -> tuple[Tensor, dict[str, Any]]:
            answer, suffix = collator.answer_ids(self.refusal_answer), self._shared_suffix(collator)
            subject = self.shift_tokens == "subject"
            prompts = [
                prompt
                for name in self.calibration
                for prompt in self._forget_prompts(collator, [q.format(s=name) for q in _CALIBRATION_QUESTIONS], skip, suffix, answer, (), subject)
            ]
            own: list[Any] = [(ids[:end], start) for ids, start, end, *_ in prompts]
            out = torch.cat(self._read(model, collator, own, {layer: modules[layer]}, set(), {layer}, skip).outputs[layer])
            per_key, (_, nll, steps, _) = self._optimize_shift(model, collator, prompts, modules[layer], out, stack, layer)
            rows = torch.stack([chunk[0] for chunk in per_key.split([end - start for _, start, end, *_ in prompts])])
            mean = (rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)).mean(0)
            info = {"calibration_prompts": len(prompts), "calibration_steps": steps, "calibration_nll": nll}
            return mean / mean.norm().clamp_min(1e-12), info

        key = (
            layer, tuple(self.calibration), self.refusal_answer, self.target_norm, self.target_lr, self.target_steps, self.target_nll,
            self.shift_tokens, self.chat_template, self.system_prompt, id(collator.tokenizer),
        )
        return _per_model(_STARTS, model, modules[layer].weight, key, compute)

    def prepare(self, model: nn.Module, tokenizer: Any) -> dict[str, Any]:
        """Compute now what every edit at this editor's ``layer`` reuses — the preserve factor (with ``preserve`` prompts)
        and the warm start's direction (with ``warm_start``) — so that the first request does not wait for them (the
        chat calls this when it starts). Returns the seconds each took (~0 when already cached) and the calibration
        search's prompts, steps and final NLL. Does nothing with ``layer="auto"``, where the layer is chosen per request."""
        report: dict[str, Any] = {"preserve_seconds": 0.0, "calibration_seconds": 0.0}
        if self.layer == "auto":
            return report
        stack_name, names = self.down_projections(model)
        if self.layer >= len(names):
            raise ValueError(f"`layer` should lie in [0, {len(names) - 1}] for this model ({len(names)} decoder layers), got {self.layer}.")
        modules = {i: model.get_submodule(n) for i, n in enumerate(names)}
        collator = self._collator(tokenizer)
        skip = self._shared_prefix(collator)
        with evaluating(model):
            began = time.perf_counter()
            self._preserve_factor(model, collator, modules, self.layer, skip)
            report["preserve_seconds"] = time.perf_counter() - began
            if self.warm_start:
                began = time.perf_counter()
                report.update(self._start_direction(model, collator, modules, self.layer, model.get_submodule(stack_name), skip)[1])
                report["calibration_seconds"] = time.perf_counter() - began
        return report

    @staticmethod
    def _prefix_cache(model: nn.Module, prefix: Tensor, rows: int) -> tuple[str, Any] | None:
        """The model's key/value cache of ``prefix`` (``[1, P]``), repeated for ``rows`` prompts, with the keyword that
        passes it back (``"cache"`` in transformers 5's newer models, ``"past_key_values"`` before); ``None`` where the
        model returns no cache object."""
        with torch.no_grad():
            out = model(input_ids=prefix, attention_mask=torch.ones_like(prefix), use_cache=True)
        name = "cache" if "cache" in out.keys() else "past_key_values"
        cache = out.get(name)
        if not callable(getattr(cache, "batch_repeat_interleave", None)):
            return None
        cache.batch_repeat_interleave(rows)
        return name, cache

    @staticmethod
    def _check_items(name: str, items: Any, allow_empty: bool) -> list[Item]:
        if isinstance(items, (str, Mapping)) or not isinstance(items, Sequence):
            raise TypeError(f"`{name}` should be a list of prompts (strings or {{'question', 'answer'}} mappings), got {type(items).__name__}.")
        items = list(items)
        if not items and not allow_empty:
            raise ValueError(f"`{name}` should hold at least one prompt, got none.")
        for i, item in enumerate(items):
            ok = isinstance(item, str) and item.strip()
            ok = ok or (isinstance(item, Mapping) and isinstance(item.get("question"), str) and isinstance(item.get("answer", ""), str))
            if not ok:
                raise ValueError(f"`{name}[{i}]` should be a non-empty string or a mapping with a string 'question' (and optional 'answer'), got {item!r}.")
        return items

    def _encode(self, collator: Any, item: Item, skip: int) -> tuple[list[int], int]:
        if isinstance(item, str):
            ids = collator.prompt_ids(item)
        else:
            ids = collator.prompt_ids(item["question"])
            if item.get("answer"):
                ids = ids + collator.answer_ids(item["answer"])
        return ids, min(skip, len(ids) - 1)

    @torch.no_grad()
    def _read(
        self,
        model: nn.Module,
        collator: Any,
        items: list[Item] | list[tuple[list[int], int]],
        modules: dict[int, nn.Module],
        keys_of: set[int],
        outputs_of: set[int],
        skip: int,
    ) -> _Capture:
        """Run ``items`` (prompts, or already encoded ``(ids, first selected position)``) through the model."""
        device = next(model.parameters()).device
        capture = _Capture(modules, keys_of, outputs_of)
        with capture:
            for start in range(0, len(items), self.batch_size):
                chunk = items[start : start + self.batch_size]
                encoded = [item if isinstance(item, tuple) else self._encode(collator, item, skip) for item in chunk]
                length = max(len(ids) for ids, _ in encoded)
                input_ids = torch.full((len(encoded), length), collator.pad_token_id, dtype=torch.long)
                attention = torch.zeros_like(input_ids)
                selected = torch.zeros_like(input_ids, dtype=torch.bool)
                for row, (ids, first) in enumerate(encoded):
                    input_ids[row, : len(ids)] = torch.tensor(ids)
                    attention[row, : len(ids)] = 1
                    selected[row, first : len(ids)] = True
                capture.mask = selected.to(device)
                capture.count += int(selected.sum())
                try:
                    model(input_ids=input_ids.to(device), attention_mask=attention.to(device), use_cache=False)
                except _Done:
                    pass
        return capture

    # ------------------------------------------------------------------ the edit
    def down_projections(self, model: nn.Module) -> tuple[str, list[str]]:
        """The decoder stack's name and the full name of every layer's down-projection."""
        from lightning_unlearn.methods.rmu import decoder_layers_name, down_projection_name

        stack_name = decoder_layers_name(model, self.layers)
        stack = model.get_submodule(stack_name)
        return stack_name, [f"{stack_name}.{i}.{down_projection_name(layer, self.module)}" for i, layer in enumerate(stack)]

    def edit(
        self,
        model: nn.Module,
        tokenizer: Any,
        forget: Sequence[Item],
        retain: Sequence[Item] = (),
        refusal: Sequence[Item] | None = None,
    ) -> EditRecord:
        """Edit ``model`` in place so that the ``forget`` prompts land on the refusal activation; returns the record.

        Args:
            model: A Hugging Face causal LM (any family :func:`~lightning_unlearn.methods.rmu.decoder_layers_name`
                finds).
            tokenizer: Its tokenizer.
            forget: The forget prompts (one is enough): questions, or ``{"question", "answer"}`` mappings whose
                answer tokens join the keys.
            retain: Prompts whose outputs at the edited layer must not move (the retain buffer; may be empty).
            refusal: The refusal prompts D_ref (``None``: :func:`default_refusals`).
        """
        start = time.perf_counter()
        forget = self._check_items("forget", forget, allow_empty=False)
        retain = self._check_items("retain", retain, allow_empty=True)
        refusal = self._check_items("refusal", default_refusals() if refusal is None else refusal, allow_empty=False)
        if self.retain_buffer is not None and len(retain) > self.retain_buffer:
            retain = random.Random(self.seed).sample(retain, self.retain_buffer)
        stack_name, names = self.down_projections(model)
        if self.layer != "auto" and self.layer >= len(names):
            raise ValueError(f"`layer` should lie in [0, {len(names) - 1}] for this model ({len(names)} decoder layers), got {self.layer}.")
        if self.layer_range is not None and self.layer_range[1] >= len(names):
            raise ValueError(f"`layer_range` should lie within [0, {len(names) - 1}] for this model, got {self.layer_range}.")
        if self.target == "optimized" and len(names) > 1 and self.layer == len(names) - 1:
            raise ValueError(
                f"`layer` should be below the last decoder layer ({len(names) - 1}) with target='optimized': the last layer's "
                f"output at the forget prompt's tokens reaches no later token, so no shift there changes the answer; got {self.layer}."
            )
        modules = {i: model.get_submodule(n) for i, n in enumerate(names)}
        collator = self._collator(tokenizer)
        skip = self._shared_prefix(collator)
        with evaluating(model):
            # One pass over the forget and refusal prompts reads every layer: means for the layer choice, forget keys.
            every = set(modules) if self.layer == "auto" else {self.layer}
            reads = modules if self.layer == "auto" else {self.layer: modules[self.layer]}
            # "optimized": the forget keys are each question's own tokens (not the template's shared suffix, whose keys
            # every prompt shares, nor an answer); causal attention makes them the same with or without what follows.
            if self.target == "optimized":
                answer = collator.answer_ids(self.refusal_answer)
                shared = [self._encode(collator, item, skip)[0] for item in retain]
                prompts = self._forget_prompts(collator, forget, skip, self._shared_suffix(collator), answer, shared, self.shift_tokens == "subject")
                own: list[Any] = [(ids[:end], start) for ids, start, end, *_ in prompts]
            else:
                own = forget
            f = self._read(model, collator, own, reads, every, every, skip)
            # the refusal prompts serve the layer choice and the refusal-mean target: the searched target at a given
            # layer needs neither (their read, ~0.5 s on SmolLM2, is skipped)
            ref = self._read(model, collator, refusal if self.layer == "auto" or self.target != "optimized" else [], reads, set(), set(), skip)
            f_means, r_means = f.means(), ref.means()
            order = sorted(r_means)
            separations = cosine_separation(torch.stack([f_means[i] for i in order]), torch.stack([r_means[i] for i in order])) if order else torch.zeros(0)
            if self.layer == "auto":
                candidates = list(range(len(names))) if self.layer_range is None else list(range(self.layer_range[0], self.layer_range[1] + 1))
                if self.target == "optimized":  # the last layer's output at a prompt token reaches no later token
                    candidates = [c for c in candidates if c < len(names) - 1] or candidates
                layer = choose_layer(separations, candidates)
            else:
                layer = self.layer
            k_f, out_f = torch.cat(f.keys[layer]), torch.cat(f.outputs[layer])
            n_refusal = ref.count
            nll: tuple[float, float, int, list[tuple[float, float]]] | None = None
            if self.target == "optimized":
                stack = model.get_submodule(stack_name)
                direction = self._start_direction(model, collator, modules, layer, stack, skip)[0] if self.warm_start else None
                shift, nll = self._optimize_shift(model, collator, prompts, modules[layer], out_f, stack, layer, direction)
                target = out_f + shift
            else:
                target = (self.target_scale * r_means[layer]).expand_as(out_f)
            # The retain block: the shared prefix's tokens (the same in every prompt, so they must keep their outputs),
            # the retain buffer's own tokens ...
            prefix = collator.prompt_ids(forget[0] if isinstance(forget[0], str) else forget[0]["question"])[:skip]
            blocks = [(prefix, 0)] if prefix else []
            if self.target == "optimized":
                # ... and each forget prompt's tokens the search left unshifted: its template suffix and refusal answer, and
                # with shift_tokens="subject" its own tokens before and after the subject
                blocks += [(ids, end) for ids, _, end, *_ in prompts]
                blocks += [(ids[:start], first) for ids, start, _, _, first in prompts if start > first]
            r = self._read(model, collator, [*blocks, *retain], {layer: modules[layer]}, {layer}, {layer}, skip)
            if r.keys[layer]:
                k_r, out_r = torch.cat(r.keys[layer]), torch.cat(r.outputs[layer])
            else:
                k_r, out_r = k_f.new_zeros((0, k_f.shape[1])), out_f.new_zeros((0, out_f.shape[1]))

            preserved = self._preserve_factor(model, collator, modules, layer, skip).to(k_f.device)  # [d_ff, k]

        keys = torch.cat([k_f, k_r]).T  # [d_ff, n]
        residuals = torch.cat([target - out_f, torch.zeros_like(out_r)]).T  # [d_model, n]
        # "optimized": each key is scaled to unit norm before the pseudo-inverse (the same exact solution; the cutoff then
        # compares directions, not magnitudes — the template's first tokens have keys ~100x larger than a question's).
        scale = keys.norm(dim=0).clamp_min(1e-12) if self.target == "optimized" else torch.ones(keys.shape[1], dtype=keys.dtype)
        scaled, scaled_residuals = keys / scale, residuals / scale
        # The preserve prompts' directions G join the keys with zero residuals (least squares, no longer exact).
        if self.rcond >= GRAM_RCOND:  # [K, G]⁺ from the Gram matrix K Kᵀ + G Gᵀ: ~3x faster than the SVD of [K, G]
            u, s = truncated_gram_pinv(scaled @ scaled.T + preserved @ preserved.T if preserved.numel() else scaled @ scaled.T, self.rank, self.rcond)
            delta = self.blend * (((scaled_residuals @ scaled.T) @ u / s**2) @ u.T)  # R [K, G]⁺ = R Kᵀ U S⁻² Uᵀ
        else:
            if preserved.numel():
                scaled = torch.cat([scaled, preserved], 1)
                scaled_residuals = torch.cat([scaled_residuals, scaled_residuals.new_zeros((scaled_residuals.shape[0], preserved.shape[1]))], 1)
            u, s, v = truncated_pinv(scaled, self.rank, self.rcond or None)
            delta = self.blend * ((scaled_residuals @ v / s) @ u.T)  # [d_model, d_ff]
        moved = delta @ keys  # the outputs' change on every key
        n_f = k_f.shape[0]

        module = modules[layer]
        weight = module.weight
        original = weight.detach().clone()
        transposed = weight.shape != delta.shape  # transformers' Conv1D stores [d_ff, d_model]
        with torch.no_grad():
            weight.add_((delta.T if transposed else delta).to(device=weight.device, dtype=weight.dtype))
        target_norm = float(target.norm()) or 1.0
        record = EditRecord(
            method=self.name,
            layer=layer,
            module=names[layer],
            rank=int(s.numel()),
            requested_rank=self.rank,
            blend=self.blend,
            separations=[float(x) for x in separations],
            n_forget_keys=n_f,
            n_retain_keys=int(k_r.shape[0]),
            n_refusal_tokens=n_refusal,
            n_preserve_directions=int(preserved.shape[1]) if preserved.numel() else 0,
            weight_norm=float(original.double().norm()),
            delta_norm=float(delta.norm()),
            forget_error_before=float((out_f - target).norm()) / target_norm,
            forget_error_after=float((out_f + moved[:, :n_f].T - target).norm()) / target_norm,
            retain_drift=float(moved[:, n_f:].norm() / out_r.norm()) if out_r.numel() and float(out_r.norm()) > 0 else 0.0,
            seconds=0.0,
            target=self.target,
            refusal_nll_before=None if nll is None else nll[0],
            refusal_nll_target=None if nll is None else nll[1],
            target_steps_run=None if nll is None else int(nll[2]),
            target_curve=None if nll is None else nll[3],
            warm_start=self.warm_start,
            _param=weight,
            _original=original,
        )
        record.seconds = time.perf_counter() - start
        self.records.append(record)
        return record

    def undo(self, record: EditRecord | None = None) -> EditRecord:
        """Put back the weight an edit changed, bit-exactly (default: the latest edit not undone yet).

        Edits are undone last-in, first-out: undoing an earlier edit of a weight that a later, still applied edit
        also changed is an error (it would silently drop the later one).
        """
        applied = [r for r in self.records if not r.undone]
        if not applied:
            raise RuntimeError("STAMP.undo: there is no edit left to undo (call `edit` first).")
        record = applied[-1] if record is None else record
        if record not in applied:
            raise ValueError("`record` should be an edit of this editor that is not undone yet.")
        later = [r for r in applied[applied.index(record) + 1 :] if r._param is record._param]
        if later:
            raise ValueError(f"Undo the later edit of {record.module!r} first: edits of one weight are undone last-in, first-out.")
        with torch.no_grad():
            record._param.copy_(record._original)  # type: ignore[union-attr]
        record.undone = True
        return record

    def hparams(self) -> dict[str, Any]:
        keys = (
            "rank", "layer", "layer_range", "blend", "target", "target_scale", "refusal_answer", "target_steps", "target_lr",
            "target_norm", "target_nll", "retain_buffer", "chat_template", "rcond", "preserve_weight", "shift_tokens", "warm_start",
            "seed",
        )
        return {"editor": self.name, **{k: getattr(self, k) for k in keys}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items() if k != "editor")
        return f"{type(self).__name__}({args})"


register_editor(name="stamp")(STAMP)


@register_editor(name="stamp_lr")
class STAMPLR(STAMP):
    """STAMP-LR: :class:`STAMP` with the truncated-SVD pseudo-inverse of rank ``r`` (default 64, the paper's).

    The same algorithm with another default (``rank=64``); every argument is :class:`STAMP`'s.
    """

    def __init__(self, rank: int | None = 64, **kwargs: Any) -> None:
        super().__init__(rank=rank, **kwargs)
