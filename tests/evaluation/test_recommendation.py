"""Ranking metrics of a recommender (torchmetrics retrieval metrics), and a small end-to-end unlearning run on
MovieLens: train the original, unlearn one user with GA and GradDiff through UnlearningModule."""

from __future__ import annotations

import copy
import math
from functools import partial
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lightning_unlearn import UnlearningModule
from lightning_unlearn.datamodules.recommendation import RecommendationDataModule
from lightning_unlearn.evaluation.recommendation import membership_auc, membership_pairs, ranking_metrics, ranks_of, top_k_items
from lightning_unlearn.methods import GradDiff, GradientAscent
from lightning_unlearn.models import ContentMF
from lightning_unlearn.tasks import RecommendationTask
from lightning_unlearn.training import SupervisedModule

QUIET = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")


class ScoreTable(nn.Module):
    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.as_tensor(table, dtype=torch.float32))

    def forward(self, users, items):
        return self.table[users, items]


def test_ranks_exclude_the_users_own_items_and_count_ties_against_the_item():
    scores = torch.tensor([[5.0, 4.0, 3.0, 3.0, 1.0]])
    excluded = torch.tensor([[True, False, False, False, False]])
    assert ranks_of(scores, torch.tensor([2]), excluded).tolist() == [3]  # item 1, then its tie item 3
    assert ranks_of(scores, torch.tensor([1]), excluded).tolist() == [1]
    assert ranks_of(scores, torch.tensor([4]), torch.zeros_like(excluded)).tolist() == [5]


def test_ranking_metrics_in_closed_form():
    # 2 users, 6 items. User 0 trained on items 0 and 1 (excluded from its ranking), held out item 3, deleted item 2.
    # User 1 trained on item 5, held out item 0.
    model = ScoreTable([[9.0, 8.0, 1.0, 5.0, 6.0, 0.0], [1.0, 5.0, 4.0, 3.0, 2.0, 9.0]])
    data = SimpleNamespace(
        num_users=2, num_items=6,
        retain_users=torch.tensor([0, 0, 1]), retain_items=torch.tensor([0, 1, 5]),
        test_users=torch.tensor([0, 1]), test_items=torch.tensor([3, 0]),
        forget_users=torch.tensor([0]), forget_items=torch.tensor([2]),
    )  # fmt: skip
    out = ranking_metrics(model, data, k=2)
    # user 0's candidates 2..5 rank 4 (6), 3 (5), 2 (1), 5 (0): held-out item 3 is 2nd; user 1's: 1, 2, 3, 4, 0 -> 5th
    assert out["recall@2"] == pytest.approx(0.5)
    assert out["ndcg@2"] == pytest.approx((1 / math.log2(3) + 0.0) / 2)
    assert out["forget_recall@2"] == 0.0 and out["forget_mean_rank"] == out["forget_median_rank"] == 3.0
    assert out["forget_hit@2"] == 0.0 and ranking_metrics(model, data, k=3)["forget_hit@3"] == 1.0
    assert (out["test_users"], out["forget_users"]) == (2.0, 1.0)
    assert top_k_items(model, torch.tensor([0]), 2, excluded=torch.tensor([[True, True] + [False] * 4])).tolist() == [[4, 3]]
    with pytest.raises(ValueError, match=r"`k` should be at most the number of items \(6\), got 7"):
        ranking_metrics(model, data, k=7)
    with pytest.raises(TypeError, match=r"`data` should be a RecommendationDataModule \(it has no `test_users`\)"):
        ranking_metrics(model, SimpleNamespace(), k=2)


def test_membership_auc_in_closed_form():
    # user 0 lost items 2 and 4 (members); its never-seen held-out item is 3 (non-member); user 1 lost nothing
    model = ScoreTable([[9.0, 8.0, 1.0, 5.0, 6.0, 0.0], [1.0, 5.0, 4.0, 3.0, 2.0, 9.0]])
    empty = torch.zeros(0, dtype=torch.long)
    data = SimpleNamespace(
        num_users=2, num_items=6,
        retain_users=torch.tensor([0, 0, 1]), retain_items=torch.tensor([0, 1, 5]),
        test_users=torch.tensor([0, 1]), test_items=torch.tensor([3, 0]),
        forget_users=torch.tensor([0, 0]), forget_items=torch.tensor([2, 4]),
        deleted_heldout_users=empty, deleted_heldout_items=empty,
    )  # fmt: skip
    # interactions deleted: the non-members are the held-out items of the users that lost them (user 0's item 3)
    assert [t.tolist() for t in membership_pairs(data)] == [[0, 0], [2, 4], [0], [3]]
    # user 0's 4 candidates (2..5) by score: 4 (6), 3 (5), 2 (1), 5 (0); percentiles 1 − (rank − 1)/4
    # members: item 2 -> 0.5, item 4 -> 1.0; non-member item 3 -> 0.75: one of two pairs ordered
    assert membership_auc(model, data) == pytest.approx(0.5)
    data.deleted_heldout_users, data.deleted_heldout_items = torch.tensor([0]), torch.tensor([5])  # a deleted user's
    assert membership_auc(model, data) == pytest.approx(1.0)  # item 5 -> 0.25, below both members


# ---------------------------------------------------------------------------------------------- end to end
USERS = 60  # a MovieLens subset: the first 60 users (~6k interactions)
FORGET = [1, 2]  # MovieLens users 1 and 2


@pytest.fixture(scope="module")
def original():
    pl.seed_everything(0)
    data = RecommendationDataModule(forget_users=FORGET, max_users=USERS, train_on="all", batch_size=256)
    model = ContentMF(data.num_users, data.num_items, dim=16, genres=data.data.genres)
    module = SupervisedModule(model, task=RecommendationTask(), optimizer=partial(torch.optim.Adam, lr=0.02))
    pl.Trainer(max_epochs=8, **QUIET).fit(module, data)
    return model


def _forget_preference(model, data):
    task = RecommendationTask()
    with torch.no_grad():
        outs = [task.forward(model, b) for b in data.eval_dataloaders()["forget"]]
    return float(torch.cat([task.preference(o) for o in outs]).mean())


@pytest.mark.parametrize("method", [GradientAscent(), GradDiff()], ids=["ga", "graddiff"])
def test_unlearning_a_user_lowers_their_deleted_interactions(original, method):
    data = RecommendationDataModule(forget_users=FORGET, max_users=USERS, batch_size=64, retain_batch_size=256)
    before = ranking_metrics(original, data)
    assert _forget_preference(original, data) > 1.0  # the original learned the users' interactions
    model = copy.deepcopy(original)
    module = UnlearningModule(model, method, task=RecommendationTask(), optimizer=partial(torch.optim.Adam, lr=0.05))
    pl.Trainer(max_epochs=2, **QUIET).fit(module, data)
    after = ranking_metrics(model, data)
    # the deleted positives' margin over their negatives shrinks (GA: 4.9 -> 2.8, GradDiff: 4.9 -> 4.5 here)
    assert _forget_preference(model, data) < _forget_preference(original, data) - 0.3
    assert after["forget_mean_rank"] > before["forget_mean_rank"] and after["forget_recall@20"] < before["forget_recall@20"]
    summary = module.unlearning_summary  # the monitor's before/after pairwise accuracy on the forget triples
    assert summary["after/forget_acc"] < summary["before/forget_acc"]
    results = pl.Trainer(**QUIET).test(module, data, verbose=False)[0]
    assert {"test/forget_acc", "test/RA", "test/TA", "test/mia_auc"} <= set(results)
