"""JS divergence, ZRF, activation distance and per-layer distances: closed forms and SciPy as the outside reference."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
from scipy.spatial import distance
from torch import nn

from lightning_unlearn.metrics import (
    activation_distance,
    feature_distance,
    js_divergence,
    output_probabilities,
    weight_distance,
    zrf,
    zrf_score,
)


def _probs(n: int, c: int, seed: int) -> torch.Tensor:
    return torch.softmax(torch.randn(n, c, generator=torch.Generator().manual_seed(seed)) * 2, dim=-1)


def test_js_divergence_closed_forms():
    one_hot = torch.eye(3)
    assert js_divergence(one_hot, one_hot) == 0.0
    # disjoint supports: ln 2, the maximum
    assert js_divergence(one_hot, one_hot.roll(1, dims=1)) == pytest.approx(math.log(2))
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4); JS = 1/2 ln(4/3) + 1/2 (1/2 ln(2/3) + 1/2 ln 2)
    expected = 0.5 * math.log(4 / 3) + 0.5 * (0.5 * math.log(2 / 3) + 0.5 * math.log(2))
    assert js_divergence(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]])) == pytest.approx(expected)


def test_js_divergence_matches_scipy():
    p, q = _probs(50, 5, 0), _probs(50, 5, 1)
    per_sample = js_divergence(p, q, reduction="none")
    reference = torch.tensor([distance.jensenshannon(a, b) ** 2 for a, b in zip(p.double().numpy(), q.double().numpy())])
    torch.testing.assert_close(per_sample.double(), reference, atol=1e-6, rtol=1e-5)
    assert js_divergence(p, q) == pytest.approx(float(reference.mean()), rel=1e-5)
    assert js_divergence(p, q) == pytest.approx(js_divergence(q, p))  # symmetric


def test_zrf_and_activation_distance_closed_forms():
    uniform = torch.full((4, 2), 0.5)
    assert zrf_score(uniform, uniform) == 1.0
    assert zrf_score(torch.eye(2), torch.eye(2).flip(0)) == pytest.approx(1 - math.log(2))
    assert activation_distance(torch.eye(2), torch.eye(2).flip(0)) == pytest.approx(math.sqrt(2))
    # (1, 0) vs (1/2, 1/2): ‖(1/2, -1/2)‖ = 1/√2; the mean over this and an identical pair is 1/(2√2)
    p = torch.tensor([[1.0, 0.0], [0.3, 0.7]])
    q = torch.tensor([[0.5, 0.5], [0.3, 0.7]])
    assert activation_distance(p, q) == pytest.approx(0.5 / math.sqrt(2))
    assert activation_distance(p, q, reduction="none").tolist() == pytest.approx([1 / math.sqrt(2), 0.0])


def test_divergence_errors():
    with pytest.raises(ValueError, match=r"`reduction` should be one of \['mean', 'none'\], got 'sum'"):
        js_divergence(torch.eye(2), torch.eye(2), reduction="sum")
    with pytest.raises(ValueError, match=r"`p` should hold probabilities .* apply a softmax"):
        js_divergence(torch.tensor([[2.0, -1.0]]), torch.eye(2)[:1])
    with pytest.raises(ValueError, match=r"`p` and `q` should have the same shape, got \(1, 2\) and \(2, 2\)"):
        activation_distance(torch.eye(2)[:1], torch.eye(2))
    with pytest.raises(TypeError, match=r"`q` should be a torch.Tensor of probabilities \[N, C\], got list"):
        js_divergence(torch.eye(2), [[1.0, 0.0]])


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict(body=nn.Linear(3, 4), act=nn.ReLU(), head=nn.Linear(4, 2)))


def test_weight_distance_per_layer():
    a, b = _net(0), _net(0)
    with torch.no_grad():
        b.body.weight.add_(1.0)  # 12 entries moved by 1: distance √12
        b.head.bias.add_(torch.tensor([3.0, 4.0]))  # distance 5
    dist = weight_distance(a, b)
    assert dist["body"] == pytest.approx(math.sqrt(12))
    assert dist["head"] == pytest.approx(5.0)
    assert dist["total"] == pytest.approx(math.sqrt(12 + 25))
    assert weight_distance(a, a) == {"body": 0.0, "head": 0.0, "total": 0.0}
    with pytest.raises(ValueError, match=r"should have the same parameters; they differ in \['extra.bias', 'extra.weight'\]"):
        other = _net(0)
        other.add_module("extra", nn.Linear(1, 1))
        weight_distance(a, other)


def test_model_level_helpers():
    x = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    loader = [(x[:6], torch.zeros(6, dtype=torch.long)), (x[6:], torch.zeros(4, dtype=torch.long))]
    a, b = _net(0), _net(1)
    probs = output_probabilities(a, loader)
    torch.testing.assert_close(probs, torch.softmax(a(x), -1).detach())
    # ZRF against an explicit random model equals the closed form on the outputs; the default draws one from `seed`
    assert zrf(a, loader, random_model=b) == pytest.approx(zrf_score(probs, output_probabilities(b, loader)))
    assert zrf(a, loader, seed=3) == zrf(a, loader, seed=3) <= 1.0
    # activations of `body` differ exactly by the body's output difference
    dist = feature_distance(a, b, loader, ["body", "head"])
    expected = torch.linalg.vector_norm(a.body(x) - b.body(x), dim=-1).mean().detach()
    assert dist["body"] == pytest.approx(float(expected), rel=1e-5)
    assert feature_distance(a, a, loader, "head") == {"head": 0.0}


def test_the_metric_accumulates_like_the_function():
    from lightning_unlearn.metrics import JSDivergence

    p, q = _probs(30, 4, 2), _probs(30, 4, 3)
    metric = JSDivergence()
    assert torch.isnan(metric.compute())
    for lo in range(0, 30, 7):
        metric.update(p[lo : lo + 7], q[lo : lo + 7])
    assert float(metric.compute()) == pytest.approx(js_divergence(p, q), rel=1e-6)
    assert metric.higher_is_better is False


def test_kl_divergence_closed_form_and_floor():
    from lightning_unlearn.metrics import kl_divergence

    p = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    q = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    expected = torch.tensor([0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0), math.log(2.0)])
    torch.testing.assert_close(kl_divergence(p, q, reduction="none"), expected.float())
    assert kl_divergence(p, q) == pytest.approx(float(expected.mean()))
    assert kl_divergence(p, p) == 0.0
    # q = 0 where p > 0: floored at eps, large but finite
    assert kl_divergence(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])) == pytest.approx(-math.log(1e-12))
    with pytest.raises(ValueError, match=r"`reduction` should be one of \['mean', 'none'\], got 'sum'"):
        kl_divergence(p, q, reduction="sum")
