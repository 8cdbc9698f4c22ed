"""UserPartitionedRecommender (SISA / RecEraser-style exact unlearning): balanced seeded shards, routing, affected
shards."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.models import ContentMF
from lightning_unlearn.models.partition import UserPartitionedRecommender, assign_users


def test_assign_users_is_balanced_and_seeded():
    shard = assign_users(10, 3, seed=4)
    assert sorted(torch.bincount(shard).tolist()) == [3, 3, 4]
    assert torch.equal(shard, assign_users(10, 3, seed=4)) and not torch.equal(shard, assign_users(10, 3, seed=5))
    with pytest.raises(ValueError, match="`num_shards` should be an int in"):
        assign_users(3, 4)


def test_each_user_is_scored_by_their_own_shard():
    torch.manual_seed(0)
    shards = [ContentMF(6, 5, dim=3), ContentMF(6, 5, dim=3)]
    user_shard = torch.tensor([0, 1, 1, 0, 1, 0])
    model = UserPartitionedRecommender(shards, user_shard)
    users, items = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 0, 2, 1])
    expected = torch.stack([shards[int(user_shard[u])](u[None], i[None])[0] for u, i in zip(users, items)])
    torch.testing.assert_close(model(users, items), expected)
    all_scores = model.score_all(users)
    torch.testing.assert_close(all_scores[1], shards[1].score_all(users[1:2])[0])
    torch.testing.assert_close(all_scores[3], shards[0].score_all(users[3:4])[0])
    assert model.affected_shards(torch.tensor([0, 3])) == [0] and model.affected_shards(torch.tensor([0, 2])) == [0, 1]
    with pytest.raises(ValueError, match="`user_shard` should be"):
        UserPartitionedRecommender(shards, torch.tensor([0, 2]))
