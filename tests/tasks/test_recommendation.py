"""RecommendationTask: BPR loss, correct, log-likelihood and KL in closed form; what methods it refuses."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_unlearn.methods import METHODS, NPO, GradDiff, GradientAscent, RandomLabel, Retrain
from lightning_unlearn.methods.base import StepContext
from lightning_unlearn.tasks import RecommendationTask


class ScoreTable(nn.Module):
    """A recommender whose score of (u, i) is the entry of a learnable table."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.as_tensor(table, dtype=torch.float32))

    def forward(self, users, items):
        return self.table[users, items]


def batch(users, pos, neg):
    return {"user": torch.tensor(users), "pos": torch.tensor(pos), "neg": torch.tensor(neg)}


@pytest.fixture
def model():
    # user 0: item 0 scores 2, item 1 scores 0 -> x = 2; user 1: item 2 scores -1, item 0 scores 1 -> x = -2; a tie
    return ScoreTable([[2.0, 0.0, 0.5], [1.0, 3.0, -1.0]])


def test_bpr_loss_correct_and_log_likelihood_in_closed_form(model):
    task = RecommendationTask()
    b = batch([0, 1, 0], [0, 2, 2], [1, 0, 2])
    out = task.forward(model, b)
    torch.testing.assert_close(out, torch.tensor([[2.0, 0.0], [-1.0, 1.0], [0.5, 0.5]]))
    loss = task.per_sample_loss(out, b)
    expected = torch.tensor([math.log1p(math.exp(-2.0)), math.log1p(math.exp(2.0)), math.log(2.0)])
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(task.log_likelihood(out, b), -expected)  # log σ(x) = −BPR
    assert task.correct(out, b).tolist() == [True, False, False]  # a tie is not a correct ranking
    assert task.batch_size(b) == 3 and torch.equal(task.targets(b), torch.tensor([0, 2, 2]))


def test_kl_is_the_bernoulli_kl_of_the_preferences():
    task = RecommendationTask()
    x, x_ref = torch.tensor([1.0, -0.5]), torch.tensor([0.0, 2.0])
    out, ref = torch.stack([x, torch.zeros(2)], 1), torch.stack([x_ref, torch.zeros(2)], 1)
    p, q = torch.sigmoid(x), torch.sigmoid(x_ref)
    expected = q * (q / p).log() + (1 - q) * ((1 - q) / (1 - p)).log()
    torch.testing.assert_close(task.kl_divergence(out, ref, None), expected)
    torch.testing.assert_close(task.kl_divergence(out, out, None), torch.zeros(2))
    p2, q2 = torch.sigmoid(x / 2), torch.sigmoid(x_ref / 2)
    expected2 = q2 * (q2 / p2).log() + (1 - q2) * ((1 - q2) / (1 - p2)).log()
    torch.testing.assert_close(task.kl_divergence(out, ref, None, temperature=2.0), expected2)


def test_gradient_ascent_lowers_the_forgotten_preference(model):
    """GA on a BPR triple pushes the positive below the negative: the method's code is unchanged."""
    task = RecommendationTask()
    b = batch([0], [0], [1])
    method = GradientAscent()
    method.setup(model, task)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    before = float(task.preference(task.forward(model, b)).detach())
    for _ in range(3):
        optimizer.zero_grad()
        method.loss(StepContext(model=model, task=task, forget=b, retain=None)).loss.backward()
        optimizer.step()
    assert float(task.preference(task.forward(model, b)).detach()) < before - 0.5
    assert model.table[1].tolist() == [1.0, 3.0, -1.0]  # another user's scores are untouched


def test_npo_and_graddiff_run_on_triples(model):
    task = RecommendationTask()
    forget, retain = batch([0], [0], [1]), batch([1, 1], [1, 0], [2, 2])
    for method in (NPO(beta=0.5), GradDiff()):
        method.setup(model, task)
        out = method.loss(StepContext(model=model, task=task, forget=forget, retain=retain, reference=method.reference))
        assert torch.isfinite(out.loss) and {"forget_loss", "retain_loss"} <= set(out.parts)
    # NPO at the start: log π_θ = log π_θ0, so the loss is (2/β)·log 2 (plus the retain term)
    npo = NPO(beta=0.5, retain_weight=0.0)
    npo.setup(model, task)
    out = npo.loss(StepContext(model=model, task=task, forget=forget, retain=None, reference=npo.reference))
    torch.testing.assert_close(out.parts["forget_loss"], torch.tensor(4 * math.log(2.0)))


def test_methods_that_need_labels_are_refused(model):
    task = RecommendationTask()
    with pytest.raises(TypeError, match=r"RandomLabel unlearns classifiers: it needs task=ClassificationTask\(\); .* got RecommendationTask"):
        RandomLabel().setup(model, task)
    Retrain().check_task(task)  # the generic methods accept it
    with pytest.raises(NotImplementedError, match=r"RecommendationTask has no labels to relabel"):
        task.relabel(None, batch([0], [0], [1]))
    out = task.forward(model, batch([0], [0], [1]))
    with pytest.raises(ValueError, match=r"takes no replacement `targets` \(got a tensor of shape \(1,\)\)"):
        task.per_sample_loss(out, batch([0], [0], [1]), targets=torch.tensor([1]))


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        ((torch.tensor([0]), torch.tensor([0])), TypeError, r"should be a mapping with keys \['user', 'pos', 'neg'\]"),
        ({"user": torch.tensor([0]), "pos": torch.tensor([0])}, KeyError, r"should have the key 'neg'; it has \['pos', 'user'\]"),
        ({"user": torch.tensor([0.0]), "pos": torch.tensor([0]), "neg": torch.tensor([1])}, TypeError,
         r"`batch\['user'\]` should be a 1-D integer tensor of indices, got a torch.float32 tensor of shape \(1,\)"),
        ({"user": torch.tensor([0, 1]), "pos": torch.tensor([0]), "neg": torch.tensor([1])}, ValueError, r"should have one length"),
    ],
)
def test_bad_batches(model, bad, error, match):
    with pytest.raises(error, match=match):
        RecommendationTask().forward(model, bad)


def test_bad_outputs_and_arguments(model):
    task = RecommendationTask()
    with pytest.raises(ValueError, match=r"outputs should be \[batch, 2\] .* got \(3,\)"):
        task.per_sample_loss(torch.zeros(3), None)
    with pytest.raises(ValueError, match=r"should differ, got 'user', 'user', 'neg'"):
        RecommendationTask(pos_key="user")

    class OneScore(nn.Module):
        def forward(self, users, items):
            return torch.zeros(1)

    with pytest.raises(ValueError, match=r"model\(users, items\) on 2 pairs should return 2 scores, got \(1,\)"):
        task.forward(OneScore(), batch([0], [0], [1]))


def test_scores_rank_the_catalogue_with_or_without_score_all(model):
    task = RecommendationTask()
    users = torch.tensor([1, 0])
    torch.testing.assert_close(task.scores(model, users, num_items=3), model.table.detach()[users])
    with pytest.raises(ValueError, match=r"`num_items` is needed"):
        task.scores(model, users)


@pytest.mark.parametrize("name", sorted(n for n in METHODS.names() if "recommendation" in METHODS.get(n).supported_tasks))
def test_every_method_that_claims_recommendation_takes_a_step(name):
    """Each method whose ``supported_tasks`` include recommendation finds every primitive it asks for."""
    from lightning_unlearn.models import ContentMF

    torch.manual_seed(0)
    model = ContentMF(4, 6, dim=3, genres=torch.eye(6)[:, :3])
    task = RecommendationTask()
    method = METHODS.get(name)()
    forget, retain = batch([0, 1], [0, 1], [2, 3]), batch([2, 3, 3], [4, 5, 0], [1, 2, 3])
    method.setup(model, task, [forget], [retain])  # the loaders: methods that prepare from data (tru_rec) need them
    with torch.no_grad():  # a model one step away from its reference: KL-to-reference terms (SCRUB's max step) have a gradient
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    out = method.loss(StepContext(model=model, task=task, forget=forget, retain=retain, reference=method.reference))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
