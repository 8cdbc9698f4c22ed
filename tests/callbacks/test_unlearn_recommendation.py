"""The ``Unlearn`` callback on a recommender LightningModule written here (not the library's): a user deletion on a
MovieLens subset, as a phase before the user's own training continues on the retained interactions."""

from __future__ import annotations

from functools import partial

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from lightning_unlearn import Unlearn
from lightning_unlearn.datamodules.recommendation import RecommendationDataModule
from lightning_unlearn.methods import GradDiff
from lightning_unlearn.tasks import RecommendationTask

QUIET = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")


class MyRecommender(pl.LightningModule):
    """A user's own BPR matrix factorisation, unchanged by unlearning."""

    def __init__(self, num_users: int, num_items: int, dim: int = 16) -> None:
        super().__init__()
        self.users = nn.Embedding(num_users, dim)
        self.items = nn.Embedding(num_items, dim)
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.items.weight, std=0.1)

    def forward(self, users, items):
        return (self.users(users) * self.items(items)).sum(-1)

    def training_step(self, batch, batch_idx):
        return F.softplus(self(batch["user"], batch["neg"]) - self(batch["user"], batch["pos"])).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.02)


def _deleted_preference(model, data):
    task = RecommendationTask()
    with torch.no_grad():
        return float(torch.cat([task.preference(task.forward(model, b)) for b in data.forget_dataloader(shuffle=False)]).mean())


def test_unlearn_phase_on_a_users_own_recommender():
    pl.seed_everything(0)
    data = RecommendationDataModule(forget_users=[1, 2], max_users=60, train_on="all", batch_size=256)
    model = MyRecommender(data.num_users, data.num_items)
    pl.Trainer(max_epochs=8, **QUIET).fit(model, data)
    before = _deleted_preference(model, data)
    assert before > 1.0
    phase = Unlearn(
        GradDiff(), forget=data.forget_set, retain=data.retain_set, task=RecommendationTask(), schedule="before_training",
        epochs=2, batch_size=64, optimizer=partial(torch.optim.Adam, lr=0.05),
    )  # fmt: skip
    pl.Trainer(max_epochs=1, callbacks=[phase], **QUIET).fit(model, data.retain_dataloader())
    assert _deleted_preference(model, data) < before - 0.5
    assert phase.summary["after/forget_acc"] < phase.summary["before/forget_acc"]


def _top20_hits(model, data):
    """Deleted interactions ranked in their user's top 20 (retained items left out), by scoring every pair."""
    from lightning_unlearn.evaluation.recommendation import ranks_of

    users = torch.unique(data.forget_users)
    items = torch.arange(data.num_items)
    with torch.no_grad():
        scores = model(users.repeat_interleave(data.num_items), items.repeat(users.numel())).reshape(users.numel(), -1)
    hits = 0
    for row, user in enumerate(users.tolist()):
        deleted = data.forget_items[data.forget_users == user]
        excluded = torch.zeros(1, data.num_items, dtype=torch.bool)
        excluded[0, data.retain_items[data.retain_users == user]] = True
        ranks = ranks_of(scores[row : row + 1].expand(deleted.numel(), -1), deleted, excluded.expand(deleted.numel(), -1).clone())
        hits += int((ranks <= 20).sum())
    return hits


def test_tru_rec_through_the_unlearn_callback_on_a_users_own_recommender():
    """TRU for recommendation (tru_rec) on a module written here: no item branches (branch scaling off), no
    `score_all` (the gate scores every pair, `num_items` given), layer isolation over the module's own embeddings."""
    from lightning_unlearn.methods import TRURec

    pl.seed_everything(0)
    data = RecommendationDataModule(forget_users=[1, 2], max_users=60, train_on="all", batch_size=256)
    model = MyRecommender(data.num_users, data.num_items)
    pl.Trainer(max_epochs=8, **QUIET).fit(model, data)
    before, hits_before = _deleted_preference(model, data), _top20_hits(model, data)
    method = TRURec(branch_scaling=False, num_items=data.num_items, capacity=0.5, rank_weight=3.0)
    phase = Unlearn(
        method, forget=data.forget_set, retain=data.retain_set, task=RecommendationTask(), schedule="before_training",
        epochs=2, batch_size=64, optimizer=partial(torch.optim.Adam, lr=0.05),
    )  # fmt: skip
    pl.Trainer(max_epochs=1, callbacks=[phase], **QUIET).fit(model, data.retain_dataloader())
    # the user table is the most deletion-sensitive module and the item table (96% of the weights) exceeds the capacity
    assert method.isolated == ["users"] and set(method.sensitivity) == {"users", "items"}
    assert set(method.masks) == {"users.weight"}  # the phase updated the user table only (the item table frozen)
    assert _deleted_preference(model, data) < before - 0.5
    assert _top20_hits(model, data) < hits_before
