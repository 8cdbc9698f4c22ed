"""Exact unlearning by partition (SISA / RecEraser style): one recommender per shard of users; a deletion retrains
only the shards that held the deleted interactions.

Bourtoule et al., "Machine Unlearning" (SISA), IEEE S&P 2021 (arXiv 1912.03817); Chen, Sun, Zhang, Ma, Zhang,
"Recommendation Unlearning" (RecEraser), WWW 2022 (arXiv 2201.06820). The users are split into ``S`` shards (a seeded,
balanced random assignment: :func:`assign_users`); shard ``s``'s model is trained only on the interactions of its
users (and, for a graph model, on their graph). Every user lives in exactly one shard, so **aggregation is routing**:
a user's scores are those of their own shard's model. RecEraser instead learns an attention aggregator over all
shards' embeddings; that aggregator is trained on every user's data and would itself have to be retrained after a
deletion, so here the simpler exact rule is used (each shard's model sees every item, only its users' interactions).
Deleting a user retrains their shard; deleting an item or interactions retrains every shard that held one of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["UserPartitionedRecommender", "assign_users"]


def assign_users(num_users: int, num_shards: int, seed: int = 0) -> Tensor:
    """``[num_users]`` shard of every user: a seeded random permutation dealt round-robin (sizes differ by ≤ 1)."""
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or not 1 <= num_shards <= num_users:
        raise ValueError(f"`num_shards` should be an int in [1, num_users={num_users}], got {num_shards!r}.")
    order = torch.randperm(num_users, generator=torch.Generator().manual_seed(seed))
    shard = torch.empty(num_users, dtype=torch.long)
    shard[order] = torch.arange(num_users) % num_shards
    return shard


class UserPartitionedRecommender(nn.Module):
    """``S`` recommenders, one per shard of users; a user is scored by their shard's model (module docstring).

    Args:
        shards: The shard models (each called as ``model(users, items)`` with ``score_all(users)``).
        user_shard: ``[num_users]`` shard index of every user (:func:`assign_users`).
    """

    def __init__(self, shards: Sequence[nn.Module], user_shard: Tensor) -> None:
        super().__init__()
        if not shards:
            raise ValueError("`shards` should hold at least one model, got none.")
        user_shard = torch.as_tensor(user_shard).long()
        if user_shard.dim() != 1 or int(user_shard.min()) < 0 or int(user_shard.max()) >= len(shards):
            raise ValueError(f"`user_shard` should be a 1-D tensor of shard indices in [0, {len(shards)}).")
        self.shards = nn.ModuleList(shards)
        self.register_buffer("user_shard", user_shard)

    def affected_shards(self, users: Tensor) -> list[int]:
        """The shards holding interactions of these users (what a deletion of them has to retrain)."""
        return sorted(set(self.user_shard[torch.as_tensor(users).long()].tolist()))

    def _route(self, users: Tensor, score) -> Tensor:  # noqa: ANN001
        shard = self.user_shard[users]
        out: Tensor | None = None
        for s in torch.unique(shard).tolist():
            rows = torch.nonzero(shard == s).flatten()
            part = score(self.shards[s], rows)
            if out is None:
                out = part.new_empty((users.shape[0], *part.shape[1:]))
            out[rows] = part
        assert out is not None
        return out

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        return self._route(users, lambda model, rows: model(users[rows], items[rows]))

    def score_all(self, users: Tensor) -> Tensor:
        return self._route(users, lambda model, rows: model.score_all(users[rows]))
