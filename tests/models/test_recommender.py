"""ContentMF: separable ID / genre / title-text branches, fusion, ranking, re-initialisation; MovieLens title texts."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.datamodules.movielens import load_movielens_100k
from lightning_unlearn.methods.retrain import reinitialize_model
from lightning_unlearn.models import ContentMF, MovieLensMF
from lightning_unlearn.models.recommender import movielens_title_embeddings, title_text


def _model(fusion="gated", **kwargs):
    torch.manual_seed(0)
    genres = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    titles = torch.randn(4, 6)
    return ContentMF(3, 4, dim=5, genres=genres, title_embeddings=titles, fusion=fusion, **kwargs)


def test_scores_are_the_dot_product_of_the_user_and_the_fused_item_vector():
    model = _model()
    with torch.no_grad():
        model.item_bias.weight.copy_(torch.arange(4.0)[:, None])
        model.gate_logits.copy_(torch.tensor([0.0, 2.0]))
    branches = model.item_branches()
    assert set(branches) == {"id", "genre", "text"} == set(model.branches) and branches["text"].shape == (4, 5)
    # the genre branch averages an item's genres; an item without genres contributes nothing
    torch.testing.assert_close(branches["genre"][1], model.genre_proj.weight.sum(1) / 2)
    torch.testing.assert_close(branches["genre"][2], torch.zeros(5))
    gates = model.gates()
    torch.testing.assert_close(gates["genre"], torch.tensor(0.5))
    torch.testing.assert_close(gates["text"], torch.sigmoid(torch.tensor(2.0)))
    q = branches["id"] + 0.5 * branches["genre"] + torch.sigmoid(torch.tensor(2.0)) * branches["text"]
    users, items = torch.tensor([0, 2, 1]), torch.tensor([3, 0, 1])
    expected = (model.user_embedding.weight[users] * q[items]).sum(1) + items.float()
    torch.testing.assert_close(model(users, items), expected)
    torch.testing.assert_close(model.score_all(users).gather(1, items[:, None]).squeeze(1), expected)


def test_sum_fusion_and_missing_branches():
    model = _model(fusion="sum")
    assert model.gate_logits is None and all(float(g) == 1.0 for g in model.gates().values())
    plain = ContentMF(3, 4, dim=5)
    assert plain.branches == ("id",) and plain.gate_logits is None and not plain.has_branch("text")
    assert plain.score_all(torch.tensor([0])).shape == (1, 4)


def test_branches_have_their_own_parameters():
    """A method can scale or freeze one modality by name (TRU's branch-wise scaling builds on this)."""
    names = dict(_model().named_parameters())
    assert {"user_embedding.weight", "item_embedding.weight", "item_bias.weight", "genre_proj.weight", "text_proj.weight", "gate_logits"} == set(names)
    assert "genres" not in _model().state_dict()  # the features are data, not weights: rebuilt from the config


def test_retrain_reinitialises_every_parameter_to_a_small_start():
    model = _model()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(5.0)
    reinitialize_model(model)
    weights = {n: p.detach() for n, p in model.named_parameters()}
    assert float(weights["user_embedding.weight"].std()) < 0.3 and float(weights["item_bias.weight"].abs().max()) == 0.0
    assert float(weights["gate_logits"].abs().max()) == 0.0 and float(weights["text_proj.weight"].abs().max()) < 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_users": 0, "num_items": 4}, r"`num_users` should be a positive int, got 0"),
        ({"num_users": 3, "num_items": 4, "fusion": "concat"}, r"`fusion` should be one of \['gated', 'sum'\], got 'concat'"),
        ({"num_users": 3, "num_items": 4, "genres": torch.zeros(5, 2)}, r"`genres` should be a \[num_items=4, features\] tensor, got \(5, 2\)"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ContentMF(**kwargs)


def test_title_text_puts_the_article_first():
    assert title_text("Hunt for Red October, The", 1990) == "The Hunt for Red October (1990)"
    assert title_text("Enfer, L'", 1994) == "L'Enfer (1994)"
    assert title_text("Toy Story", 1995) == "Toy Story (1995)" and title_text("", 0) == "unknown movie"


def test_movielens_mf_without_text_is_sized_from_the_data():
    model = MovieLensMF(dim=8, titles=False)
    data = load_movielens_100k()
    assert (model.num_users, model.num_items, model.branches) == (943, 1682, ("id", "genre"))
    assert torch.equal(model.genres > 0, data.genres > 0)


@pytest.mark.slow
def test_title_embeddings_are_semantic_and_cached(tmp_path, monkeypatch):
    """The real all-MiniLM-L6-v2 embeddings of the 1,682 titles (~45 s on 2 busy cores the first time)."""
    monkeypatch.setenv("LIGHTNING_UNLEARN_CACHE", str(tmp_path))
    data = load_movielens_100k()
    embeddings = movielens_title_embeddings()
    assert embeddings.shape == (1682, 384) and len(list((tmp_path / "recsys").glob("titles-*.pt"))) == 1
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(1682))
    star_wars, jedi, toy_story = (data.item_index(i) for i in (50, 181, 1))  # Star Wars, Return of the Jedi, Toy Story
    assert float(embeddings[star_wars] @ embeddings[jedi]) > float(embeddings[star_wars] @ embeddings[toy_story])
    torch.testing.assert_close(movielens_title_embeddings(), embeddings, rtol=0, atol=0)  # from the cache
