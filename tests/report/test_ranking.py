"""The report's ranking view for recommenders: a forgotten user's top-k before / after / oracle, deleted items
marked, on a small MovieLens subset."""

from __future__ import annotations

import json

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lightning_unlearn import UnlearningModule
from lightning_unlearn.datamodules import RecommendationDataModule
from lightning_unlearn.methods import GradDiff
from lightning_unlearn.models import ContentMF
from lightning_unlearn.report import UnlearningReport, validate_report
from lightning_unlearn.report.html import render_html
from lightning_unlearn.report.ranking import ranking_section, top_k_of
from lightning_unlearn.tasks import ClassificationTask, RecommendationTask

from .conftest import make_trainer


@pytest.fixture(scope="module")
def data():
    return RecommendationDataModule(forget_users=[1], max_users=40, batch_size=256, seed=0)


def _fit(model, data, users, items, epochs=6):
    triples = {"user": users, "pos": items}
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    task = RecommendationTask()
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs * 4):
        neg = torch.randint(0, data.num_items, users.shape, generator=generator)
        loss = task.per_sample_loss(task.forward(model, {**triples, "neg": neg}), None).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def test_top_k_leaves_out_retained_items_and_marks_deleted_ones(data):
    torch.manual_seed(0)
    model = _fit(ContentMF(data.num_users, data.num_items, dim=8), data, data.train_users, data.train_items)
    users = torch.unique(data.forget_users)
    top = top_k_of(model, data, users, 10)
    retained = set(data.retain_items[data.retain_users == int(users[0])].tolist())
    assert top.shape == (1, 10) and not retained & set(top[0].tolist())  # the forgotten user keeps nothing
    deleted = set(data.forget_items.tolist())
    section = ranking_section({"original": top}, data, users, 10)
    entries = section["users"][0]["lists"]["original"]
    assert [e["deleted"] for e in entries] == [i in deleted for i in top[0].tolist()]
    assert entries[0]["title"] == data.item_titles([int(top[0, 0])])[0]
    assert section["users"][0]["deleted"] == len(deleted) and section["users"][0]["label"] == "forgotten user 1"
    assert any(e["deleted"] for e in entries), "the original should rank some of the user's own (deleted) items first"


def test_the_report_shows_the_forgotten_users_top_k_before_and_after(data, tmp_path):
    torch.manual_seed(0)
    original = _fit(ContentMF(data.num_users, data.num_items, dim=8), data, data.train_users, data.train_items)
    torch.save(original.state_dict(), tmp_path / "original.pt")
    torch.manual_seed(1)
    oracle = _fit(ContentMF(data.num_users, data.num_items, dim=8), data, data.retain_users, data.retain_items)
    torch.save(oracle.state_dict(), tmp_path / "oracle.pt")
    model = ContentMF(data.num_users, data.num_items, dim=8)
    module = UnlearningModule(
        model, GradDiff(), task=RecommendationTask(), original=str(tmp_path / "original.pt"), oracle=str(tmp_path / "oracle.pt"),
        optimizer=lambda params: torch.optim.Adam(params, lr=0.05), monitor=False,
    )  # fmt: skip
    report = UnlearningReport(dirpath=tmp_path / "report", ranking_top_k=5, structure_layer=None)
    pl.seed_everything(0)
    make_trainer(max_epochs=8, callbacks=[report]).fit(module, datamodule=data)
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    validate_report(written)
    view = written["ranking"]
    assert view["k"] == 5 and list(view["users"][0]["lists"]) == ["original", "unlearned", "oracle"]
    lists = view["users"][0]["lists"]
    expected = top_k_of(model, data, torch.unique(data.forget_users), 5)[0].tolist()
    assert [e["title"] for e in lists["unlearned"]] == data.item_titles(expected)
    deleted_before = sum(e["deleted"] for e in lists["original"])
    assert deleted_before > sum(e["deleted"] for e in lists["unlearned"])
    html = render_html(written)
    assert "Ranking of forgotten users" in html and "Before (original)" in html and "(deleted)" in html
    assert "ranking" not in validate_report({k: v for k, v in written.items() if k != "ranking"})


def test_the_ranking_view_needs_a_recommender(data):
    report = UnlearningReport(ranking_top_k=5)
    with pytest.raises(MisconfigurationException, match="needs a RecommendationTask"):
        report._ranked_users(ClassificationTask(), data)
    with pytest.raises(ValueError, match="ranking_top_k"):
        UnlearningReport(ranking_top_k=0)
