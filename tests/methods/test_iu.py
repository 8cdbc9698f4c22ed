"""IU: the Fisher-inverse-vector product and the Newton step against explicit matrices."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_unlearn.methods import METHODS, InfluenceUnlearning, RegexMask, fisher_inverse_vector_product
from lightning_unlearn.tasks import ClassificationTask

from ._toy import batch, context, pretrained, snapshot, unlearn_class


def test_registered():
    assert METHODS.get("iu") is InfluenceUnlearning
    assert not InfluenceUnlearning.needs_reference and InfluenceUnlearning().retain_loss_kind == "none"


@pytest.mark.parametrize(("n", "d"), [(3, 7), (9, 4), (0, 5)])
def test_fisher_inverse_vector_product_is_exact(n, d):
    g = torch.Generator().manual_seed(n + d)
    grads, v = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    fisher = 0.1 * torch.eye(d, dtype=torch.float64) + (grads.T @ grads / n if n else 0)
    torch.testing.assert_close(fisher_inverse_vector_product(grads, v, 0.1), torch.linalg.solve(fisher, v))


def _flat_grad(model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()))])


def test_the_edit_is_the_newton_step_once_at_the_first_step():
    model, forget, retain = pretrained(), batch(n=6, seed=1, label=3), batch(n=10, seed=2)
    method = InfluenceUnlearning(scale=2.0, damping=0.01, fisher_samples=4)
    method.setup(model, ClassificationTask(), [forget], [(retain[0][:5], retain[1][:5]), (retain[0][5:], retain[1][5:])])
    before = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    # v = (1/n)·Σ_f ∇ℓ − (n_f/(n·n_r))·Σ_r ∇ℓ with n_f = 6, n_r = 10; F = λI + (1/4)·Σ_{4 retain samples} g gᵀ
    forget_sum = _flat_grad(model, F.cross_entropy(model(forget[0]), forget[1], reduction="sum"))
    retain_sum = _flat_grad(model, F.cross_entropy(model(retain[0]), retain[1], reduction="sum"))
    v = forget_sum / 16 - retain_sum * 6 / (16 * 10)
    g = torch.stack([_flat_grad(model, F.cross_entropy(model(retain[0][i : i + 1]), retain[1][i : i + 1])) for i in range(4)])
    fisher = 0.01 * torch.eye(len(v)) + g.T @ g / 4
    expected = before + 2.0 * torch.linalg.solve(fisher.double(), v.double()).float()
    out = method.loss(context(method, model, forget, retain))
    assert out.loss.item() == 0.0 and method.edited and method.edit_stats["fisher_samples"] == 4
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(after, expected, atol=1e-4, rtol=1e-3)
    method.loss(context(method, model, forget, retain, global_step=1))  # no second edit
    torch.testing.assert_close(torch.cat([p.detach().reshape(-1) for p in model.parameters()]), after, atol=0, rtol=0)


def test_a_mask_limits_the_edit():
    model, forget, retain = pretrained(), batch(n=6, seed=1, label=3), batch(n=10, seed=2)
    method = InfluenceUnlearning(mask=RegexMask(r"^head\."))
    method.setup(model, ClassificationTask(), [forget], [retain])
    before = snapshot(model)
    method.loss(context(method, model, forget, retain))
    after = snapshot(model)
    assert torch.equal(after["body.0.weight"], before["body.0.weight"])
    assert not torch.equal(after["head.weight"], before["head.weight"])


def test_forgets_a_blob_class():
    forget_acc, retain_acc = unlearn_class(InfluenceUnlearning(damping=1e-3), steps=1)
    assert forget_acc <= 0.2 and retain_acc >= 0.9


def test_errors():
    with pytest.raises(ValueError, match=r"`damping` should be > 0, got 0"):
        InfluenceUnlearning(damping=0)
    with pytest.raises(ValueError, match=r"`fisher_samples` should be an int >= 1, got 0"):
        InfluenceUnlearning(fisher_samples=0)
    with pytest.raises(ValueError, match=r"`forget_weight` should be > 0, got 0"):
        InfluenceUnlearning(forget_weight=0)
    with pytest.raises(ValueError, match="pass the forget loader to `setup`"):
        InfluenceUnlearning().setup(pretrained(), ClassificationTask(), None, [batch()])
