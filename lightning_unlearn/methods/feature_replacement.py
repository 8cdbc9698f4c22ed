"""Feature replacement: selective forgetting of the spans of a reasoning trace that reveal forget knowledge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from lightning_unlearn._errors import check_choice, check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.idk import alternative_batch, check_alternative
from lightning_unlearn.methods.masks import ParameterMask

_REDUCTIONS = {"sum": "Σ over a trace's marked tokens (the spec's)", "mean": "mean over a trace's marked tokens"}


def unlikelihood_loss(
    logits: Tensor, labels: Tensor, span_mask: Tensor, ignore_index: int = -100, reduction: Literal["sum", "mean"] = "sum"
) -> Tensor:
    """``−Σ_{t: m_t=1} log(1 − p_θ(y_t | y_<t))`` per sample, ``[B]`` (``reduction="mean"``: divided by the marked count).

    ``logits`` ``[B, T, V]`` predict the next token; ``labels`` and ``span_mask`` ``[B, T]`` are aligned with the
    input tokens (as a causal-LM batch's labels), so position ``t``'s label is scored by the logits at ``t − 1``.
    ``log(1 − p_y)`` is computed exactly as ``logsumexp_{v≠y} z_v − logsumexp_v z_v`` (no ``log(0)`` when
    ``p_y → 1``, only a large finite value). A sample without marked tokens gives 0.
    """
    check_choice("reduction", reduction, _REDUCTIONS)
    if labels.shape != logits.shape[:2] or span_mask.shape != labels.shape:
        raise ValueError(
            f"`labels` and `span_mask` should have the logits' [batch, length] shape {tuple(logits.shape[:2])}; "
            f"got {tuple(labels.shape)} and {tuple(span_mask.shape)}."
        )
    targets = labels[:, 1:]
    marked = span_mask[:, 1:].bool() & (targets != ignore_index)
    chosen = logits[:, :-1][marked].float()  # [N, V]: only the marked positions
    y = targets[marked]
    log_z = chosen.logsumexp(-1)
    log_rest = chosen.scatter(-1, y[:, None], float("-inf")).logsumexp(-1)
    per_token = log_z - log_rest  # −log(1 − p_y)
    rows = marked.nonzero()[:, 0]
    total = torch.zeros(logits.shape[0], dtype=per_token.dtype, device=logits.device).index_add(0, rows, per_token)
    if reduction == "mean":
        total = total / marked.sum(-1).clamp_min(1)
    return total


@register_method(name="feature_replacement")
class FeatureReplacement(UnlearningMethod):
    """Feature replacement: unlearn the marked spans of chain-of-thought traces, train the rest normally.

    After "Selective Forgetting for Large Reasoning Models" (Iowa State University, arXiv 2604.03571),
    RECONSTRUCTED from ``shared/METHODS.md`` §9 (no code or numbers of the paper were found). An analyst marks
    the spans of each forget trace y that reveal forget knowledge (token mask m_t = 1), a rewriter replaces them
    by placeholders that keep each step's role (edited trace y′; see
    :mod:`lightning_unlearn.datamodules.trace_editing`), and

    ``L = −Σ_{t: m_t=1} log(1 − p_θ(y_t | x, y_<t)) + λ₁·CE(θ; x → y′) + λ₂·CE(θ; D_r)``

    The first term (unlikelihood) suppresses the original span tokens; the second teaches the structurally valid
    edited trace, so the unmarked chain-of-thought tokens are trained normally (never unlearned) and the
    placeholders take the spans' place; the third is the retain traces' CE (the base ``"nll"`` retain loss,
    weight λ₂ = ``retain_weight``). CE is the mean token NLL per trace, averaged over the batch; the
    unlikelihood is summed over a trace's marked tokens (``reduction="sum"``, the spec) and averaged over the
    batch. The forget batch needs ``span_mask`` and the ``{alternative}_*`` keys of the edited traces: build
    it with :class:`~lightning_unlearn.datamodules.reasoning.TraceCollator`.

    Args:
        edit_weight: λ₁, weight of the CE on the edited traces.
        reduction: ``"sum"`` (the spec's Σ over marked tokens) or ``"mean"`` (per marked token).
        alternative: Name of the edited traces in the batch (keys ``{alternative}_input_ids``, ...).
        span_key: Batch key of the ``[B, T]`` span mask (aligned with ``labels``).
        forget_weight: Weight of the whole forget term (unlikelihood + λ₁·CE on y′); 1 in the spec.
        retain_weight: λ₂, weight of the retain traces' CE.
        retain_loss: ``"nll"`` (the spec's CE on D_r), ``"kl"`` or ``"none"``.
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    supported_tasks = ("causal_lm",)

    def __init__(
        self,
        edit_weight: float = 1.0,
        reduction: Literal["sum", "mean"] = "sum",
        alternative: str = "edited",
        span_key: str = "span_mask",
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("edit_weight", edit_weight, allow_zero=True)
        check_choice("reduction", reduction, _REDUCTIONS)
        if not isinstance(span_key, str) or not span_key:
            raise ValueError(f"`span_key` should be the batch key of the span mask (a non-empty str), got {span_key!r}.")
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.edit_weight = float(edit_weight)
        self.reduction = reduction
        self.alternative = check_alternative(alternative)
        self.span_key = span_key

    def _span_mask(self, batch: Any) -> Tensor:
        if not isinstance(batch, Mapping) or self.span_key not in batch:
            keys = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
            raise KeyError(
                f"The forget batch has no {self.span_key!r} entry (its keys are {keys}); build the batches with "
                "TraceCollator(tokenizer) on traces edited by a TraceAnalyst (ReasoningTracesDataModule(analyst=...))."
            )
        return batch[self.span_key]

    def forget_loss(self, ctx: StepContext) -> Tensor:
        batch = ctx.batch("forget")
        task = ctx.task
        loss = unlikelihood_loss(
            ctx.outputs("forget"), task.targets(batch), self._span_mask(batch), task.ignore_index, self.reduction
        ).mean()
        if self.edit_weight > 0:
            edited = alternative_batch(batch, self.alternative, task)
            loss = loss + self.edit_weight * task.per_sample_loss(task.forward(ctx.model, edited), edited).mean()
        return loss
