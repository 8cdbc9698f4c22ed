"""Recommendation: a model that scores (user, item) pairs, trained with the BPR pairwise ranking loss.

Rendle, Freudenthaler, Gantner, Schmidt-Thieme, "BPR: Bayesian Personalized Ranking from Implicit Feedback",
UAI 2009 (arXiv 1205.2618). A sample is a triple ``(u, i, j)``: user ``u`` interacted with item ``i`` (the positive)
and not with ``j`` (a sampled negative). The model's preference is ``x_uij = s(u, i) − s(u, j)`` and BPR models
``p(i ≻_u j) = σ(x_uij)``, so every primitive a method needs has a natural meaning:

* per-sample loss: ``−log σ(x_uij)`` (BPR); log-likelihood: ``log σ(x_uij)``, so gradient ascent, NPO and
  GradDiff push the deleted positive *below* its sampled negative with no change to their code;
* ``correct``: ``x_uij > 0``, the positive ranked above the sampled negative (averaged over a split it is the
  sampled AUC of the split's interactions); the top-k ranking metrics are
  :mod:`lightning_unlearn.evaluation.recommendation`;
* KL: between the Bernoulli preference distributions ``σ(x_uij / T)`` of the reference and the model.

There is no label to relabel (random labelling is a classification method): methods that need
:meth:`~lightning_unlearn.tasks.base.Task.relabel` are refused by their ``supported_tasks``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_unlearn.tasks.base import Task

__all__ = ["RecommendationTask"]


class RecommendationTask(Task):
    """BPR triples ``{"user", "pos", "neg"}`` scored by a model called as ``model(users, items) -> [B]`` scores.

    :meth:`forward` returns ``[B, 2]``: the scores of the positive and of the negative item of every triple.
    :meth:`scores` ranks whole catalogues (a model's ``score_all(users) -> [B, num_items]`` when it has one).

    Args:
        user_key, pos_key, neg_key: Keys of the user, positive-item and negative-item indices in a batch.
    """

    kind = "recommendation"
    supports_relabel = False

    def __init__(self, user_key: str = "user", pos_key: str = "pos", neg_key: str = "neg") -> None:
        for name, value in (("user_key", user_key), ("pos_key", pos_key), ("neg_key", neg_key)):
            if not isinstance(value, str) or not value:
                raise TypeError(f"`{name}` should be a non-empty string, got {value!r}.")
        if len({user_key, pos_key, neg_key}) != 3:
            raise ValueError(f"`user_key`, `pos_key` and `neg_key` should differ, got {user_key!r}, {pos_key!r}, {neg_key!r}.")
        self.user_key, self.pos_key, self.neg_key = user_key, pos_key, neg_key

    # ------------------------------------------------------------------ batch access
    def _column(self, batch: Any, key: str) -> Tensor:
        if not isinstance(batch, Mapping):
            raise TypeError(
                f"A recommendation batch should be a mapping with keys {[self.user_key, self.pos_key, self.neg_key]} "
                f"(BPR triples, e.g. from RecommendationDataModule); got {type(batch).__name__}."
            )
        if key not in batch:
            raise KeyError(f"A recommendation batch should have the key {key!r}; it has {sorted(batch)}.")
        value = batch[key]
        if not isinstance(value, Tensor) or value.dim() != 1 or value.is_floating_point() or value.dtype == torch.bool:
            shown = f"a {value.dtype} tensor of shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
            raise TypeError(f"`batch[{key!r}]` should be a 1-D integer tensor of indices, got {shown}.")
        return value.long()

    def users(self, batch: Any) -> Tensor:
        return self._column(batch, self.user_key)

    def targets(self, batch: Any) -> Tensor:
        """The positive items of the batch (what the user interacted with)."""
        return self._column(batch, self.pos_key)

    def negatives(self, batch: Any) -> Tensor:
        return self._column(batch, self.neg_key)

    def batch_size(self, batch: Any) -> int:
        return int(self.users(batch).shape[0])

    # ------------------------------------------------------------------ primitives
    def forward(self, model: nn.Module, batch: Any) -> Tensor:
        """``[B, 2]``: ``s(u, pos)`` and ``s(u, neg)`` of every triple (one call on the concatenated pairs)."""
        users, pos, neg = self.users(batch), self.targets(batch), self.negatives(batch)
        if not users.shape == pos.shape == neg.shape:
            raise ValueError(
                f"The batch's users, positives and negatives should have one length, got {tuple(users.shape)}, "
                f"{tuple(pos.shape)}, {tuple(neg.shape)}."
            )
        scores = model(torch.cat([users, users]), torch.cat([pos, neg]))
        n = users.shape[0]
        if not isinstance(scores, Tensor) or tuple(scores.shape) not in ((2 * n,), (2 * n, 1)):
            shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise ValueError(f"A recommender called as model(users, items) on {2 * n} pairs should return {2 * n} scores, got {shape}.")
        return scores.reshape(2, n).T

    @staticmethod
    def _check_outputs(outputs: Tensor) -> Tensor:
        if not isinstance(outputs, Tensor) or outputs.dim() != 2 or outputs.shape[1] != 2:
            shape = tuple(outputs.shape) if isinstance(outputs, Tensor) else type(outputs).__name__
            raise ValueError(f"Recommendation outputs should be [batch, 2] (positive and negative scores, from `forward`), got {shape}.")
        return outputs.float()

    def preference(self, outputs: Tensor) -> Tensor:
        """``x_uij = s(u, pos) − s(u, neg)``, shape ``[B]``."""
        outputs = self._check_outputs(outputs)
        return outputs[:, 0] - outputs[:, 1]

    def per_sample_loss(self, outputs: Tensor, batch: Any, targets: Tensor | None = None) -> Tensor:
        """BPR loss ``−log σ(s_pos − s_neg) = softplus(s_neg − s_pos)``, shape ``[B]``."""
        self._refuse_targets(targets)
        return F.softplus(-self.preference(outputs))

    def log_likelihood(self, outputs: Tensor, batch: Any, targets: Tensor | None = None) -> Tensor:
        """``log σ(s_pos − s_neg)``: the log-probability BPR gives to the observed preference, shape ``[B]``."""
        self._refuse_targets(targets)
        return F.logsigmoid(self.preference(outputs))

    def kl_divergence(self, outputs: Tensor, reference_outputs: Tensor, batch: Any, temperature: float = 1.0) -> Tensor:
        """``KL(Bern(σ(x_ref / T)) || Bern(σ(x / T)))`` per triple, shape ``[B]``."""
        x = self.preference(outputs) / temperature
        x_ref = self.preference(reference_outputs) / temperature
        q = torch.sigmoid(x_ref)
        # KL = q·(log q − log p) + (1−q)·(log(1−q) − log(1−p)), with log σ(z) and log σ(−z) for stability
        return q * (F.logsigmoid(x_ref) - F.logsigmoid(x)) + (1 - q) * (F.logsigmoid(-x_ref) - F.logsigmoid(-x))

    def correct(self, outputs: Tensor, batch: Any) -> Tensor:
        """Whether the positive item scores above the sampled negative (``x_uij > 0``; ties are wrong)."""
        return self.preference(outputs) > 0

    def relabel(self, outputs: Any, batch: Any, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError(
            "RecommendationTask has no labels to relabel: a BPR triple's target is the preference of the positive over "
            "the negative item. Use a method that ascends or reweights the BPR loss (GradientAscent, GradDiff, NPO)."
        )

    def _refuse_targets(self, targets: Tensor | None) -> None:
        if targets is not None:
            raise ValueError(
                "RecommendationTask scores BPR triples and takes no replacement `targets` (got a tensor of shape "
                f"{tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__}); methods that relabel "
                "samples do not apply to recommendation."
            )

    # ------------------------------------------------------------------ ranking
    @torch.no_grad()
    def scores(self, model: nn.Module, users: Tensor, num_items: int | None = None) -> Tensor:
        """``[B, num_items]`` scores of every item for each user: ``model.score_all(users)`` when the model has it,
        else ``model(users, items)`` on every pair (``num_items`` needed then)."""
        score_all = getattr(model, "score_all", None)
        if callable(score_all):
            return score_all(users).float()
        if num_items is None:
            raise ValueError("`num_items` is needed to rank with a model that has no `score_all(users)` method.")
        items = torch.arange(num_items, device=users.device)
        pairs_u = users.repeat_interleave(num_items)
        pairs_i = items.repeat(users.shape[0])
        return model(pairs_u, pairs_i).reshape(users.shape[0], num_items).float()
