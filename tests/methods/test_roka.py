"""ROKA: L = −CE(f(x_f), l_target) + α·CE(f(B_sib), argmax f(B_sib)), siblings by kNN in h ⊙ ∂f_c/∂h."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_unlearn.methods import METHODS, ROKA
from lightning_unlearn.methods.roka import contribution_vectors, nearest_siblings
from lightning_unlearn.tasks import ClassificationTask

from ._toy import batch, blobs, context, perturbed, pretrained


def _linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict(body=nn.Linear(3, 4), head=nn.Linear(4, 2)))


def _contrib_by_hand(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """h ⊙ ∂f_c/∂h with h = body(x), differentiated through the head only, one sample at a time."""
    rows = []
    for xi, ci in zip(x, classes):
        h = model.body(xi[None]).detach().requires_grad_(True)
        model.head(h)[0, ci].backward()
        rows.append((h * h.grad)[0].detach())
    return torch.stack(rows)


def test_registered():
    assert METHODS.get("roka") is ROKA
    method = ROKA()
    assert (method.layer, method.variant, method.alpha, method.k, method.num_forget) == ("penultimate", "targeted", 1.0, 4, 8)
    assert method.retain_loss_kind == "none" and not method.uses_retain
    assert not method.needs_reference and ROKA(variant="non_targeted").needs_reference
    assert ROKA(retain_loss="nll").uses_retain


# ---------------------------------------------------------------------------------------------- contributions
def test_contributions_of_a_linear_head_are_h_times_the_class_weights():
    model = _linear()
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([0, 1, 1, 0, 1])
    got = contribution_vectors(model, ClassificationTask(), (x, classes), "body", classes)
    with torch.no_grad():
        expected = model.body(x) * model.head.weight[classes]
    torch.testing.assert_close(got, expected)
    # K class assignments at once: [K, B, D]
    both = contribution_vectors(model, ClassificationTask(), (x, classes), "body", torch.tensor([[0] * 5, [1] * 5]))
    for c in (0, 1):
        torch.testing.assert_close(both[c], (model.body(x) * model.head.weight[c]).detach())
    assert all(p.grad is None for p in model.parameters())  # no parameter gradient is touched


def test_contributions_match_autograd_on_the_toy_mlp():
    model = pretrained()
    x, y = batch(n=6, seed=3)
    classes = (y + 1) % 4
    got = contribution_vectors(model, ClassificationTask(), (x, y), "body", classes)
    torch.testing.assert_close(got, _contrib_by_hand(model, x, classes))


def test_contributions_run_in_eval_mode_and_restore_the_mode():
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(body=nn.Linear(3, 4), drop=nn.Dropout(0.5), head=nn.Linear(4, 2))).train()
    x, c = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    first = contribution_vectors(model, ClassificationTask(), (x, c), "body", c)
    torch.testing.assert_close(first, contribution_vectors(model, ClassificationTask(), (x, c), "body", c))  # no dropout noise
    assert model.training


def test_a_missing_layer_is_named():
    with pytest.raises(
        ValueError,
        match=r"`layer` should name a submodule of the model, one of \['body', 'body.0', 'body.1', 'head'\]; got 'penultimate'",
    ):
        ROKA().setup(pretrained(), ClassificationTask(), None, None)


# ---------------------------------------------------------------------------------------------- siblings and picks
def test_nearest_siblings_on_a_hand_made_case():
    pool = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [0.0, 2.0], [6.0, 5.0]])
    queries = torch.tensor([[0.1, 0.1], [5.5, 5.2]])
    got = nearest_siblings(queries, pool, 2)
    assert [sorted(r) for r in got.tolist()] == [[0, 1], [2, 4]]
    assert nearest_siblings(queries, pool, 10).shape == (2, 5)  # k is capped at the pool size
    # one pool per query
    per_query = torch.stack([pool, -pool])
    assert nearest_siblings(torch.tensor([[0.9, 0.0], [-6.0, -5.0]]), per_query, 1).flatten().tolist() == [1, 4]


def test_targeted_pick_prefers_the_most_target_like_samples():
    model = pretrained()
    x, y = batch(n=8, seed=4, label=2)
    wrong = y.clone()
    wrong[:3] = 0  # three samples whose "target" the model finds unlikely
    method = ROKA(layer="body", num_forget=5)
    ctx = context(method, model, (x, wrong), None)
    scores, _ = method.selection_scores(ctx, wrong)
    with torch.no_grad():
        torch.testing.assert_close(scores, torch.softmax(model(x), -1).gather(1, wrong[:, None]).squeeze(1))
    assert sorted(method.pick(scores).tolist()) == [3, 4, 5, 6, 7]
    # sampling ∝ score: zero-score samples are never drawn, and the draw is seeded by (seed, step)
    sampler = ROKA(layer="body", num_forget=2, selection="sample", seed=1)
    s = torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0])
    assert sorted(sampler.pick(s, global_step=3).tolist()) == [1, 3]
    s = torch.tensor([0.1, 0.4, 0.2, 0.3, 0.6])
    assert torch.equal(sampler.pick(s, global_step=3), sampler.pick(s, global_step=3))
    assert ROKA(num_forget=None).pick(s).numel() == 5


# ---------------------------------------------------------------------------------------------- the loss
def test_loss_closed_form():
    model = perturbed(pretrained(), 0.3)
    forget, retain = batch(n=8, seed=1, label=3), batch(n=12, seed=2)
    method = ROKA(layer="body", alpha=0.7, k=2, num_forget=3, forget_weight=1.5)
    out = method.loss(context(method, model, forget, retain))
    # by hand: the 3 most target-like forget samples, their 2 nearest retain siblings towards class 3
    with torch.no_grad():
        p = torch.softmax(model(forget[0]), -1)[:, 3]
    picked = torch.topk(p, 3).indices
    r_f = _contrib_by_hand(model, forget[0][picked], forget[1][picked])
    r_r = _contrib_by_hand(model, retain[0], torch.full((12,), 3))
    dist = torch.cdist(r_f, r_r)
    sib = sorted({int(i) for row in dist.argsort(1)[:, :2] for i in row})
    ce_f = F.cross_entropy(model(forget[0][picked]), forget[1][picked])
    logits_sib = model(retain[0][sib])
    ce_heal = F.cross_entropy(logits_sib, logits_sib.argmax(-1))
    expected = 1.5 * (-ce_f + 0.7 * ce_heal)
    torch.testing.assert_close(out.loss, expected)
    assert set(out.parts) == {"forget_loss", "loss"}  # retain_loss="none": healing is the retain term
    assert 2 <= len(sib) <= 6


def test_siblings_towards_each_forget_target_class():
    # random forgetting: forget samples of two classes, each with siblings in its own contribution space
    model = pretrained()
    x, y = blobs().tensors
    forget = (x[[0, 200]], y[[0, 200]])  # classes 0 and 3
    retain = batch(n=16, seed=5)
    method = ROKA(layer="body", k=3, num_forget=None)
    ctx = context(method, model, forget, retain)
    contrib = contribution_vectors(model, ClassificationTask(), forget, "body", forget[1])
    got = method.siblings(ctx, contrib, forget[1])
    r0 = _contrib_by_hand(model, retain[0], torch.zeros(16, dtype=torch.long))
    r3 = _contrib_by_hand(model, retain[0], torch.full((16,), 3))
    near0 = torch.cdist(contrib[:1], r0).argsort(1)[0, :3].tolist()
    near3 = torch.cdist(contrib[1:], r3).argsort(1)[0, :3].tolist()
    assert sorted(got.tolist()) == sorted(set(near0) | set(near3))


def test_without_retain_batch_healing_is_skipped():
    model = pretrained()
    forget = batch(n=8, seed=1, label=3)
    method = ROKA(layer="body", num_forget=None)
    out = method.loss(context(method, model, forget, None))
    torch.testing.assert_close(out.loss, -F.cross_entropy(model(forget[0]), forget[1]))
    zero_alpha = ROKA(layer="body", alpha=0.0, num_forget=None)
    torch.testing.assert_close(zero_alpha.loss(context(zero_alpha, model, forget, batch(seed=2))).loss, out.loss)


def test_a_step_ascends_the_forget_loss():
    model = pretrained()
    forget = batch(n=8, seed=1, label=3)
    method = ROKA(layer="body", num_forget=None)
    with torch.no_grad():
        before = float(F.cross_entropy(model(forget[0]), forget[1]))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    method.loss(context(method, model, forget, None)).loss.backward()
    optimizer.step()
    with torch.no_grad():
        assert float(F.cross_entropy(model(forget[0]), forget[1])) > before


# ---------------------------------------------------------------------------------------------- non-targeted
def test_non_targeted_centroid_is_fixed_at_the_original_weights():
    model = pretrained()
    x, y = blobs().tensors
    forget = (x[y == 1][:20], y[y == 1][:20])
    method = ROKA(layer="body", variant="non_targeted")
    method.setup(model, ClassificationTask(), [(forget[0][:8], forget[1][:8]), (forget[0][8:], forget[1][8:])])
    with torch.no_grad():
        pseudo = model(forget[0]).argmax(-1)
    expected = _contrib_by_hand(model, forget[0], pseudo).mean(0)
    torch.testing.assert_close(method.centroid, expected)
    centroid = method.centroid.clone()
    perturbed(model, 0.5)  # the model moves, the centroid and the θ₀ pseudo-labels do not
    ctx = context(method, model, forget, None)
    method.loss(ctx)
    torch.testing.assert_close(method.centroid, centroid)
    torch.testing.assert_close(method.forget_targets(ctx), pseudo)
    # it is saved in checkpoints
    fresh = ROKA(layer="body", variant="non_targeted")
    fresh.load_state_dict(method.state_dict())
    torch.testing.assert_close(fresh.centroid, centroid)


def test_non_targeted_picks_by_cosine_to_the_centroid():
    model = pretrained()
    forget = batch(n=10, seed=6)
    method = ROKA(layer="body", variant="non_targeted", num_forget=3)
    method.setup(model, ClassificationTask(), [batch(n=12, seed=7, label=1)])
    perturbed(model, 0.2)
    ctx = context(method, model, forget, None)
    targets = method.forget_targets(ctx)
    scores, contrib = method.selection_scores(ctx, targets)
    expected = F.cosine_similarity(_contrib_by_hand(model, forget[0], targets), method.centroid[None], dim=-1)
    torch.testing.assert_close(scores, (1 + expected) / 2)
    out = method.loss(ctx)
    picked = torch.topk(expected, 3).indices
    torch.testing.assert_close(out.loss, -F.cross_entropy(model(forget[0][picked]), targets[picked]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"variant": "untargeted"}, ValueError, r"`variant` should be one of \['non_targeted', 'targeted'\], got 'untargeted'"),
        ({"alpha": -1}, ValueError, "`alpha` should be >= 0, got -1"),
        ({"k": 0}, ValueError, "`k` should be an int >= 1, got 0"),
        ({"num_forget": 0}, ValueError, r"`num_forget` should be an int >= 1 or None, got 0"),
        ({"selection": "best"}, ValueError, r"`selection` should be one of \['sample', 'top'\], got 'best'"),
        ({"layer": ""}, ValueError, "`layer` should name a submodule of the model"),
        ({"retain_loss": "NLL"}, ValueError, r"`retain_loss` should be one of \['kl', 'nll', 'none'\], got 'NLL'"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        ROKA(**kwargs)
