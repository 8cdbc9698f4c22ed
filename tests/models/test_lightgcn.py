"""ContentLightGCN: the normalised adjacency, propagation against a dense closed form, edge removal, weights files
that carry their graph, re-initialisation, and the GraphFromData callback."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from lightning_unlearn.callbacks import GraphFromData
from lightning_unlearn.methods.retrain import reinitialize_model
from lightning_unlearn.models import ContentLightGCN
from lightning_unlearn.models.lightgcn import normalized_adjacency
from lightning_unlearn.models.recommender import scale_gradient

USERS = torch.tensor([0, 0, 1, 2, 2, 2])
ITEMS = torch.tensor([0, 1, 1, 1, 2, 3])


def _model(**kwargs):
    torch.manual_seed(0)
    genres = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    return ContentLightGCN(3, 4, dim=5, genres=genres, title_embeddings=torch.randn(4, 6), users=USERS, items=ITEMS, **kwargs)


def _dense_adjacency(users, items, nu, ni):
    a = torch.zeros(nu + ni, nu + ni)
    a[users, items + nu] = 1.0
    a[items + nu, users] = 1.0
    d = a.sum(1).clamp_min(1.0).rsqrt()
    return d[:, None] * a * d[None, :]


def test_normalized_adjacency_is_d_half_a_d_half_with_duplicates_once():
    dense = _dense_adjacency(USERS, ITEMS, 3, 4)
    doubled = normalized_adjacency(torch.cat([USERS, USERS[:2]]), torch.cat([ITEMS, ITEMS[:2]]), 3, 4)
    torch.testing.assert_close(doubled.to_dense(), dense)
    # user 1 has one neighbour (item 1, degree 3): 1/sqrt(1*3)
    assert dense[1, 3 + 1].item() == pytest.approx(3**-0.5)


def test_propagation_matches_the_dense_layer_mean():
    model = _model()
    with torch.no_grad():
        model.layers[1].weight.copy_(torch.linspace(0.5, 1.5, 5))
        model.item_bias.weight.copy_(torch.arange(4.0)[:, None])
    a = _dense_adjacency(USERS, ITEMS, 3, 4)
    e0 = torch.cat([model.user_embedding.weight, model.item_vectors()])
    e1 = (a @ e0) * model.layers[0].weight
    e2 = (a @ e1) * model.layers[1].weight
    final = (e0 + e1 + e2) / 3
    users, items = torch.tensor([0, 1, 2]), torch.tensor([3, 0, 2])
    expected = (final[users] * final[3 + items]).sum(1) + items.float()
    torch.testing.assert_close(model(users, items), expected)
    torch.testing.assert_close(model.score_all(users).gather(1, items[:, None]).squeeze(1), expected)
    torch.testing.assert_close(model.user_vectors(users), final[users])


def test_removing_interactions_drops_their_edges_and_renormalises():
    model = _model()
    before = model.score_all(torch.tensor([0, 1])).detach()
    assert model.remove_interactions(torch.tensor([1, 2]), torch.tensor([1, 3])) == 2
    assert model.num_edges == 4
    torch.testing.assert_close(model.adjacency().to_dense(), _dense_adjacency(USERS[[0, 1, 3, 4]], ITEMS[[0, 1, 3, 4]], 3, 4))
    after = model.score_all(torch.tensor([0, 1])).detach()
    # user 1 is isolated now: only its layer-0 embedding (divided by L+1) remains on its side
    e_items = model.propagate()[1]
    torch.testing.assert_close(after[1], model.user_embedding.weight[1] / 3 @ e_items.T + model.item_bias.weight.squeeze(-1))
    assert not torch.allclose(before, after)


def test_a_weights_file_carries_its_graph_and_reinitialisation_keeps_it():
    model = _model()
    other = _model()
    other.remove_interactions(USERS[:3], ITEMS[:3])
    other.load_state_dict(model.state_dict())
    assert other.num_edges == 6
    torch.testing.assert_close(other.score_all(torch.arange(3)), model.score_all(torch.arange(3)))
    with torch.no_grad():
        model.layers[0].weight.mul_(3)
    reinitialize_model(model)
    torch.testing.assert_close(model.layers[0].weight.detach(), torch.ones(5))
    assert model.num_edges == 6


def test_plain_lightgcn_and_bad_graphs():
    model = _model(layer_scale=False, num_layers=1)
    assert model.layers is None and not any("layers" in n for n, _ in model.named_parameters())
    with pytest.raises(ValueError, match="`items` should be indices"):
        model.set_graph(torch.tensor([0]), torch.tensor([9]))
    with pytest.raises(ValueError, match="both `users` and `items`"):
        ContentLightGCN(3, 4, dim=2, users=USERS)


def test_scale_gradient_keeps_the_value_and_scales_the_gradient():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = scale_gradient(x, 0.25)
    torch.testing.assert_close(y, x.detach())
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((2,), 0.25))
    model = _model()
    with pytest.raises(ValueError, match="`grad_scale` names branches"):
        model(torch.tensor([0]), torch.tensor([0]), grad_scale={"image": 0.5})


class _Data(pl.LightningDataModule):
    train_on = "forget_retain"
    train_users, train_items = USERS, ITEMS
    retain_users, retain_items = USERS[2:], ITEMS[2:]


class _Module(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = _model()


@pytest.mark.parametrize(("train_on", "edges"), [("forget_retain", 4), ("all", 6)])
def test_graph_from_data_uses_the_retained_interactions_unless_training_on_all(train_on, edges):
    module, data = _Module(), _Data()
    data.train_on = train_on
    module.model.remove_interactions(USERS[:1], ITEMS[:1])
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.datamodule = data  # what Trainer.fit sets before calling the setup hooks
    GraphFromData().setup(trainer, module, "fit")
    assert module.model.num_edges == edges


def _fresh_scores(model, users):
    """The catalogue scores recomputed without the no-grad cache."""
    e_users, e_items = type(model)._propagate(model, None)
    return (e_users[users] @ e_items.T + model.item_bias.weight.squeeze(-1)).detach()


def test_no_grad_scoring_reuses_the_propagation_only_while_weights_and_graph_are_unchanged():
    model = _model()
    users = torch.tensor([0, 2])
    calls = []
    original = model._propagate
    model._propagate = lambda grad_scale: calls.append(1) or original(grad_scale)
    scores = model(USERS, ITEMS)  # a step's forward (with autograd) propagates and keeps the result
    with torch.no_grad():
        first = model.score_all(users)
        again = model.score_all(torch.tensor([1]))
    assert len(calls) == 1  # both rankings reused the forward's propagation
    torch.testing.assert_close(first, _fresh_scores(model, users))
    torch.testing.assert_close(again, _fresh_scores(model, torch.tensor([1])))
    # an optimiser step changes the weights in place: the next ranking propagates again and sees them
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scores.sum().backward()
    optimizer.step()
    with torch.no_grad():
        stepped = model.score_all(users)
    assert len(calls) == 2 and not torch.allclose(stepped, first)
    torch.testing.assert_close(stepped, _fresh_scores(model, users))
    # so do a new graph, loaded weights and a swapped parameter tensor
    model.remove_interactions(torch.tensor([2]), torch.tensor([3]))
    with torch.no_grad():
        torch.testing.assert_close(model.score_all(users), _fresh_scores(model, users))
    other = _model()
    other.user_embedding.weight.data.mul_(3.0)
    model.load_state_dict(other.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.score_all(users), _fresh_scores(model, users))
    model.item_bias.weight.data = torch.randn_like(model.item_bias.weight)
    with torch.no_grad():
        torch.testing.assert_close(model.score_all(users), _fresh_scores(model, users))
    # with autograd on, forward always propagates (gradients need the graph)
    before = len(calls)
    model(USERS, ITEMS).sum().backward()
    model(USERS, ITEMS).sum().backward()
    assert len(calls) == before + 2
