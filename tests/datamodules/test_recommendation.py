"""MovieLens-100k loading and the recommendation DataModule: deletion regimes, held-out split, negative sampling."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from lightning_unlearn.datamodules.movielens import INSTALL_HINT, load_movielens_100k, movielens_dir
from lightning_unlearn.datamodules.recommendation import (
    InteractionTriples,
    RecommendationDataModule,
    leave_latest_out,
    sample_negatives,
)
from lightning_unlearn.privacy import redact_config

SMALL = 100  # the first 100 users: ~10k interactions, fast


@pytest.fixture(scope="module")
def data():
    return load_movielens_100k()


def _pairs(users, items):
    return set(zip(users.tolist(), items.tolist()))


# ---------------------------------------------------------------------------------------------- the files
def test_movielens_100k_is_read_whole(data):
    assert (len(data), data.num_users, data.num_items) == (100_000, 943, 1682)
    assert len(data.genre_names) == 18 and "unknown" not in data.genre_names
    toy_story = data.item_index(1)
    assert data.titles[toy_story] == "Toy Story" and int(data.years[toy_story]) == 1995
    genres = {data.genre_names[g] for g in torch.nonzero(data.genres[toy_story]).flatten().tolist()}
    assert genres == {"Animation", "Children's", "Comedy"}
    first = data.user_index(1)
    assert (int(data.ages[first]), data.genders[first], data.occupations[first], data.zip_codes[first]) == (24, "M", "technician", "85711")
    # the first row of ml-100k.inter: user 196 rated item 242 with 3 at 881250949
    assert (data.user_ids[int(data.users[0])], data.item_ids[int(data.items[0])]) == (196, 242)
    assert float(data.ratings[0]) == 3.0 and int(data.timestamps[0]) == 881250949
    unknown = data.item_index(267)  # RecBole's file spells its title and year "unkonwn"
    assert data.titles[unknown] == "" and int(data.years[unknown]) == 0
    with pytest.raises(ValueError, match=r"`item_id` 99999 is not a MovieLens item id; ids run from 1 to 1682"):
        data.item_index(99999)


def test_missing_files_name_the_install_command(tmp_path, monkeypatch):
    (tmp_path / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
    with pytest.raises(FileNotFoundError, match=r"\['ml-100k.item', 'ml-100k.user'\] are missing .*`pip install --no-deps recbole==1.2.1`"):
        movielens_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"missing from `data_path` .* as `data_path`\."):
        RecommendationDataModule(forget_users=[1], data_path=tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "recbole" else real(name, *a))
    with pytest.raises(FileNotFoundError, match=rf"recbole wheel, which is not installed: run `{INSTALL_HINT}`"):
        movielens_dir()


# ---------------------------------------------------------------------------------------------- held-out split
def test_leave_latest_out_holds_out_each_users_latest_interaction():
    users = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])
    stamps = torch.tensor([5, 9, 1, 3, 3, 7, 2, 8])
    # user 0: latest is row 1; user 1: a tie, the last row wins (row 4); user 2 has one interaction: kept for training
    assert leave_latest_out(users, stamps).tolist() == [False, True, False, False, True, False, False, True]


def test_held_out_items_are_never_trained_on(data):
    dm = RecommendationDataModule(forget_fraction=0.05, max_users=SMALL)
    train, held = _pairs(dm.train_users, dm.train_items), _pairs(dm.heldout_users, dm.heldout_items)
    assert not train & held and len(held) == SMALL  # every user of the subset has one held-out item
    assert torch.equal(torch.unique(dm.heldout_users), torch.arange(SMALL))
    # the held-out interaction is the user's latest
    stamps = {(int(u), int(i)): int(t) for u, i, t in zip(data.users, data.items, data.timestamps) if u < SMALL}
    for u, i in held:
        assert stamps[(u, i)] == max(t for (uu, _), t in stamps.items() if uu == u)
    assert _pairs(dm.test_users, dm.test_items) == held  # nothing deleted from the test split by a random request
    assert dm.holdout_set is None and dm.eval_splits == ["forget", "retain", "test"]


# ---------------------------------------------------------------------------------------------- deletion regimes
def test_forgetting_a_user_removes_all_their_interactions():
    dm = RecommendationDataModule(forget_users=[1, 5], max_users=SMALL)
    gone = {dm.data.user_index(1), dm.data.user_index(5)}
    assert set(dm.forget_users.tolist()) == gone
    assert not gone & set(dm.retain_users.tolist())
    assert not gone & set(dm.test_users.tolist())  # their held-out interactions leave the test split too
    expected = sum(int((dm.train_users == u).sum()) for u in gone)
    assert len(dm.forget_set) == expected == len(dm.request)
    assert len(dm.forget_set) + len(dm.retain_set) == len(dm.train_users)
    assert dm.request.kind == "forget_users" and dm.request.description == f"2 users ({expected} interactions)"
    assert set(dm.forget_set.dataset.sample_ids[i][0] for i in dm.forget_set.indices) == {1, 5}
    assert dm.sizes() == {"forget": expected, "retain": len(dm.train_users) - expected, "test": SMALL - 2, "holdout": 2}


def test_forgetting_an_item_removes_every_interaction_with_it():
    dm = RecommendationDataModule(forget_items=[50], max_users=SMALL)  # Star Wars (1977)
    star_wars = dm.data.item_index(50)
    assert set(dm.forget_items.tolist()) == {star_wars} and star_wars not in dm.retain_items.tolist()
    assert star_wars not in dm.test_items.tolist()
    assert len(dm.forget_set) == int((dm.train_items == star_wars).sum()) > 10
    assert dm.request.description.startswith("1 item (")


def test_forgetting_interactions():
    dm = RecommendationDataModule(forget_interactions=[[1, 61], [2, 292]], max_users=SMALL)
    assert _pairs(dm.forget_users, dm.forget_items) == {(0, dm.data.item_index(61)), (1, dm.data.item_index(292))}
    assert not _pairs(dm.forget_users, dm.forget_items) & _pairs(dm.retain_users, dm.retain_items)
    assert len(dm.test_users) == SMALL and dm.request.kind == "forget_interactions"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, r"Give exactly one deletion request among \['forget_users', 'forget_items', 'forget_interactions', "
         r"'forget_fraction', 'forget_indices'\]; got none"),
        ({"forget_users": [1], "forget_items": [1]}, ValueError, r"got \['forget_users', 'forget_items'\]"),
        ({"forget_users": [1, 4242]}, ValueError, r"`forget_users` names 1 user ids that are not in the loaded data, e\.g\. \[4242\]"),
        ({"forget_users": [101]}, ValueError, r"`forget_users` names 1 user ids .* \[101\]"),  # outside the 100-user subset
        ({"forget_users": ["a"]}, TypeError, r"`forget_users` should be a list of MovieLens user ids"),
        ({"forget_users": []}, ValueError, r"`forget_users` is empty"),
        ({"forget_interactions": [[1, 1, 1]]}, ValueError, r"`forget_interactions` should be a list of \[user_id, item_id\] pairs"),
        ({"forget_interactions": [[1, 1500]]}, ValueError, r"names 1 pairs that are not interactions of the loaded data, e\.g\. \[\[1, 1500\]\]"),
        ({"forget_users": [1], "max_users": 1}, ValueError, r"`max_users` should be an int >= 2 or None, got 1"),
    ],
)
def test_bad_requests(kwargs, error, match):
    with pytest.raises(error, match=match):
        RecommendationDataModule(**{"max_users": SMALL, **kwargs})


def test_requests_by_reference(tmp_path):
    (tmp_path / "users.txt").write_text("# users who asked to leave\n1, 5\n")
    (tmp_path / "pairs.txt").write_text("1 61\n2 292\n")
    (tmp_path / "pairs.json").write_text("[[1, 61], [2, 292]]")
    (tmp_path / "odd.txt").write_text("1 61 2\n")
    by_file = RecommendationDataModule(forget_users_file=tmp_path / "users.txt", max_users=SMALL)
    assert by_file.request.indices == RecommendationDataModule(forget_users=[1, 5], max_users=SMALL).request.indices
    inline = RecommendationDataModule(forget_interactions=[[1, 61], [2, 292]], max_users=SMALL).request.indices
    for name in ("pairs.txt", "pairs.json"):
        assert RecommendationDataModule(forget_interactions_file=tmp_path / name, max_users=SMALL).request.indices == inline
    with pytest.raises(ValueError, match=r"should hold \[user_id, item_id\] pairs .* it holds 3 ids, an odd number"):
        RecommendationDataModule(forget_interactions_file=tmp_path / "odd.txt", max_users=SMALL)
    with pytest.raises(ValueError, match=r"Give `forget_users` or `forget_users_file`, not both"):
        RecommendationDataModule(forget_users=[1], forget_users_file=tmp_path / "users.txt", max_users=SMALL)


def test_a_held_out_interaction_cannot_be_forgotten():
    dm = RecommendationDataModule(forget_users=[1], max_users=SMALL)
    u, i = int(dm.heldout_users[0]), int(dm.heldout_items[0])
    pair = [dm.data.user_ids[u], dm.data.item_ids[i]]
    with pytest.raises(ValueError, match=r"names 1 held-out interactions.*never trained on"):
        RecommendationDataModule(forget_interactions=[pair], max_users=SMALL)


def test_the_request_is_redacted_from_configs():
    config = {"data": {"init_args": {"forget_users": [1, 5], "forget_items": None}}}
    assert redact_config(config)["data"]["init_args"] == {"forget_users": "<redacted: 2 user ids>", "forget_items": None}


# ---------------------------------------------------------------------------------------------- negatives
def test_sample_negatives_never_draws_an_excluded_item():
    num_items = 5
    users = torch.tensor([0] * 200 + [1] * 200)
    exclude = torch.tensor(sorted([0 * num_items + i for i in (0, 1, 2, 3)] + [1 * num_items + 4]))
    negatives = sample_negatives(users, exclude, num_items, torch.Generator().manual_seed(0))
    assert set(negatives[:200].tolist()) == {4}  # user 0's only non-positive item
    assert set(negatives[200:].tolist()) == {0, 1, 2, 3}


def test_a_user_with_every_item_is_refused():
    with pytest.raises(ValueError, match=r"Users \[0\] have interacted with all 2 items: no negative item"):
        InteractionTriples(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0]), num_items=2)


def test_negative_sampling_is_seeded_per_epoch_and_never_samples_a_positive():
    dm = RecommendationDataModule(forget_items=[50], max_users=SMALL, seed=3)
    again = RecommendationDataModule(forget_items=[50], max_users=SMALL, seed=3)
    other = RecommendationDataModule(forget_items=[50], max_users=SMALL, seed=4)

    def epoch_negatives(module, epoch):
        loader = module.retain_dataloader()
        loader.sampler.set_epoch(epoch)
        return torch.cat([b["neg"] for b in loader]), torch.cat([b["user"] for b in loader]), torch.cat([b["pos"] for b in loader])

    first, users, positives = epoch_negatives(dm, 0)
    assert torch.equal(first, epoch_negatives(again, 0)[0])
    assert not torch.equal(first, epoch_negatives(other, 0)[0])
    second, second_users, _ = epoch_negatives(dm, 1)
    assert not torch.equal(first, second)  # redrawn every epoch
    retained = _pairs(dm.retain_users, dm.retain_items)
    for negatives, their_users in ((first, users), (second, second_users)):
        assert not _pairs(their_users, negatives) & retained  # never a positive of the data it trains on
    assert _pairs(users, positives) == retained
    # the retain set's negatives may be the deleted item (it is unobserved after deletion, as for a retrained model)
    star_wars = dm.data.item_index(50)
    all_negatives = torch.cat([epoch_negatives(dm, e)[0] for e in range(2, 12)])
    assert (all_negatives == star_wars).any()


def test_evaluation_triples_have_fixed_negatives_the_user_never_touched():
    dm = RecommendationDataModule(forget_users=[1], max_users=SMALL)
    loaders = dm.eval_dataloaders()
    assert list(loaders) == ["forget", "retain", "test", "holdout"] == dm.eval_splits
    # the holdout (non-members of the loss-MIA) is the deleted user's own held-out interaction
    assert [b["user"].tolist() for b in loaders["holdout"]] == [[0]] and dm.sizes()["holdout"] == 1
    everything = _pairs(dm._all_users, dm._all_items)
    for name, loader in loaders.items():
        batches = list(loader)
        users, negatives = torch.cat([b["user"] for b in batches]), torch.cat([b["neg"] for b in batches])
        assert not _pairs(users, negatives) & everything, name
        assert torch.equal(negatives, torch.cat([b["neg"] for b in loader]))  # the same on every pass
    monitor = dm.forget_dataloader(shuffle=False)  # what UnlearningModule's before/after monitor scores
    assert torch.equal(torch.cat([b["neg"] for b in monitor]), torch.cat([b["neg"] for b in loaders["forget"]]))


def test_training_batches_are_paired_for_unlearning_and_plain_for_the_original():
    dm = RecommendationDataModule(forget_users=[1], max_users=SMALL, batch_size=64, retain_batch_size=256)
    batch, _, _ = next(iter(dm.train_dataloader()))
    assert set(batch) == {"forget", "retain"} and batch["forget"]["user"].shape == (64,) and batch["retain"]["pos"].shape == (256,)
    assert set(batch["forget"]["user"].tolist()) == {0}
    plain = RecommendationDataModule(forget_users=[1], max_users=SMALL, train_on="all", batch_size=64)
    assert set(next(iter(plain.train_dataloader()))) == {"user", "pos", "neg"}
    assert sum(b["user"].shape[0] for b in plain.train_dataloader()) == len(plain.train_users)


def test_a_lightning_fit_trains_on_each_epochs_own_negatives():
    """The Trainer sets the sampler's epoch, and with it the epoch whose negatives the triples serve."""
    import lightning.pytorch as pl

    from lightning_unlearn.models import ContentMF
    from lightning_unlearn.tasks import RecommendationTask
    from lightning_unlearn.training import SupervisedModule

    class Record(pl.Callback):
        def __init__(self):
            self.seen = {}

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            triples = zip(batch["user"].tolist(), batch["pos"].tolist(), batch["neg"].tolist())
            self.seen.setdefault(trainer.current_epoch, set()).update(triples)

    dm = RecommendationDataModule(forget_users=[1], max_users=20, train_on="all", batch_size=512)
    record = Record()
    module = SupervisedModule(ContentMF(dm.num_users, dm.num_items, dim=4), task=RecommendationTask())
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    pl.Trainer(max_epochs=2, callbacks=[record], accelerator="cpu", **quiet).fit(module, dm)
    train = dm.all_set.dataset
    for epoch in (0, 1):
        train.set_epoch(epoch)
        expected = set(zip(train.users.tolist(), train.items.tolist(), train.negatives().tolist()))
        assert record.seen[epoch] == expected
    assert record.seen[0] != record.seen[1]
