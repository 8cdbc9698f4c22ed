"""AdaProb: KL projection of [P_r; pseudo] onto row sums 1 / column sums c, then KL(M ‖ softmax) on D_f."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import optimize

from lightning_unlearn.methods import METHODS, AdaProb, refine_probabilities
from lightning_unlearn.methods.adaprob import marginal_error, pseudo_probabilities, sample_keys, soft_kl
from lightning_unlearn.tasks import ClassificationTask

from ._toy import blobs, context, perturbed, pretrained


def _probs(n: int, c: int, seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    return torch.softmax(torch.randn(n, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale, -1)


def _split(label: int = 3):
    x, y = blobs().tensors
    return (x[y == label], y[y == label]), (x[y != label], y[y != label])


def _loader(data, batch_size: int = 32):
    x, y = data
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(y), batch_size)]


def test_registered():
    assert METHODS.get("adaprob") is AdaProb
    assert AdaProb.uses_forget and not AdaProb.needs_reference
    method = AdaProb()
    assert (method.pseudo, method.marginal, method.num_iter, method.num_newton, method.tol) == (
        "random",
        "retain_prior",
        10,
        30,
        1e-5,
    )
    assert method.retain_loss_kind == "nll"


# ---------------------------------------------------------------------------------------------- the projection
@pytest.mark.parametrize("weighted", [False, True])
def test_projection_reaches_the_marginals(weighted):
    a = _probs(40, 5)
    c = torch.tensor([0.1, 0.3, 0.2, 0.25, 0.15], dtype=torch.float64) * 40
    w = torch.linspace(0.5, 3.0, 40, dtype=torch.float64) if weighted else None
    m = refine_probabilities(a, c, weights=w, num_iter=200, tol=1e-8)
    torch.testing.assert_close(m.sum(1), torch.ones(40, dtype=torch.float64), rtol=0, atol=1e-12)
    assert marginal_error(m, c) <= 1e-8
    assert bool((m > 0).all())


def test_convergence_to_the_tolerance():
    a, c = _probs(60, 4, seed=1), torch.tensor([20.0, 10.0, 25.0, 5.0], dtype=torch.float64)
    errors = [marginal_error(refine_probabilities(a, c, num_iter=n, tol=1e-12), c) for n in (1, 3, 10, 30)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-6 < errors[0]
    # the early stop: converged to `tol` per row, and more iterations change nothing
    for tol in (1e-3, 1e-6):
        m = refine_probabilities(a, c, num_iter=1000, tol=tol)
        assert marginal_error(m, c) <= tol
        torch.testing.assert_close(m, refine_probabilities(a, c, num_iter=2000, tol=tol))


def test_a_feasible_matrix_is_its_own_projection():
    # the released code's target (A's own column sums): the refinement returns A
    a = _probs(30, 6, seed=2)
    torch.testing.assert_close(refine_probabilities(a, a.sum(0), num_iter=100), a, rtol=0, atol=1e-9)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0), (0.5, 2.0, 4.0)])
def test_projection_is_the_kl_closest_on_a_3x2_problem(weights):
    # rows (m_i, 1 − m_i), Σ_i m_i = c_0: two free variables; scipy minimises Σ_i w_i KL(M_i ‖ A_i) directly
    a = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
    c0 = 0.9
    w = np.array(weights)

    def objective(v):
        m1 = np.array([v[0], v[1], c0 - v[0] - v[1]])
        mm = np.stack([m1, 1 - m1], 1)
        return float((w[:, None] * mm * np.log(mm / a)).sum())

    cons = {"type": "ineq", "fun": lambda v: np.array([c0 - v[0] - v[1] - 1e-9, 1 - 1e-9 - (c0 - v[0] - v[1])])}
    best = optimize.minimize(
        objective, [0.3, 0.3], bounds=[(1e-9, 1 - 1e-9)] * 2, constraints=[cons], method="SLSQP", options={"ftol": 1e-14}
    )
    m = refine_probabilities(torch.tensor(a), torch.tensor([c0, 3 - c0]), weights=torch.tensor(w), num_iter=500, tol=1e-12)
    np.testing.assert_allclose(m[:2, 0].numpy(), best.x, atol=1e-5)
    assert objective(m[:2, 0].numpy()) <= best.fun + 1e-9


def test_optimality_condition():
    # stationarity: w_i·log(M_ij / A_ij) = −λ_i − ν_j, i.e. additive in (row, column): its double-centred part is 0
    a = _probs(12, 4, seed=3)
    w = torch.linspace(0.5, 2.0, 12, dtype=torch.float64)
    c = torch.tensor([2.0, 4.0, 3.0, 3.0], dtype=torch.float64)
    for weights in (None, w):
        m = refine_probabilities(a, c, weights=weights, num_iter=500, tol=1e-12)
        ratio = torch.log(m / a) * (1.0 if weights is None else weights[:, None])
        interaction = ratio - ratio.mean(1, keepdim=True) - ratio.mean(0, keepdim=True) + ratio.mean()
        assert float(interaction.abs().max()) < 1e-9
    # with equal weights that is M = diag(x) A diag(y)
    m = refine_probabilities(a, c, num_iter=500, tol=1e-12)
    y = m[0] / a[0]
    x = (m / (a * y)).mean(1)
    torch.testing.assert_close(torch.diag(x) @ a @ torch.diag(y), m)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((torch.ones(3), torch.ones(3)), {}, r"`probs` should be a matrix \[N, C\]"),
        ((torch.ones(3, 2) / 2, torch.tensor([1.0, 1.0])), {}, "row sums total 3 but `col_sums` totals 2"),
        ((torch.ones(3, 2) / 2, torch.tensor([3.0, 0.0])), {}, "`col_sums` should hold 2 positive entries"),
        ((-torch.ones(3, 2), torch.tensor([1.5, 1.5])), {}, "`probs` should be finite and non-negative"),
        ((torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([1.0, 1.0])), {}, "Every row and every column"),
        ((torch.ones(3, 2) / 2, torch.tensor([1.5, 1.5])), {"weights": torch.zeros(3)}, "`weights` should hold 3 positive"),
        ((torch.ones(3, 2) / 2, torch.tensor([1.5, 1.5])), {"num_iter": 0}, "`num_iter` and `num_newton` should be >= 1"),
        ((torch.ones(3, 2) / 2, torch.tensor([1.5, 1.5])), {"tol": 0}, "`tol` should be > 0, got 0"),
    ],
)
def test_projection_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        refine_probabilities(*args, **kwargs)


# ---------------------------------------------------------------------------------------------- pseudo rows, keys
def test_pseudo_probabilities():
    uniform = pseudo_probabilities("uniform", 5, 4)
    torch.testing.assert_close(uniform, torch.full((5, 4), 0.25, dtype=torch.float64))
    rand = pseudo_probabilities("random", 5, 4, seed=7)
    torch.testing.assert_close(rand.sum(1), torch.ones(5, dtype=torch.float64))
    assert bool((rand > 0).all()) and rand.std() > 0.01
    torch.testing.assert_close(rand, pseudo_probabilities("random", 5, 4, seed=7))
    assert not torch.allclose(rand, pseudo_probabilities("random", 5, 4, seed=8))


def test_sample_keys_depend_on_content_only():
    x = torch.randn(6, 3, 2)
    keys = sample_keys(x)
    assert keys.dtype == torch.int64 and len(set(keys.tolist())) == 6
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    assert torch.equal(sample_keys(x[perm]), keys[perm])  # same key in any batch position
    assert torch.equal(sample_keys(x[2:3]), keys[2:3])
    assert torch.equal(sample_keys(x.double()), keys)  # float inputs are hashed as float32
    assert sample_keys(x + 1e-3)[0] != keys[0]


# ---------------------------------------------------------------------------------------------- prepare
def test_prepare_builds_the_projection_of_the_stacked_matrix():
    forget, retain = _split()
    model = pretrained()
    method = AdaProb(seed=3, retain_row_weight=2.0, num_iter=50)
    method.setup(model, ClassificationTask(), _loader(forget, 16), _loader(retain))
    with torch.no_grad():
        p_r = torch.softmax(model(retain[0]).double(), -1)
    pseudo = pseudo_probabilities("random", len(forget[1]), 4, seed=3)
    n_r, n = len(retain[1]), len(retain[1]) + len(forget[1])
    c = p_r.sum(0) * n / n_r
    torch.testing.assert_close(method.class_marginal, c.float())
    w = torch.cat([torch.full((n_r,), 2.0), torch.ones(len(forget[1]))]).double()
    expected = refine_probabilities(torch.cat([p_r, pseudo]), c, weights=w, num_iter=50)
    torch.testing.assert_close(method.refined_targets, expected[n_r:].float())
    # the forgotten class is absent from the retain prior, so the forget targets drop it
    assert float(method.refined_targets[:, 3].max()) < 0.01 and float(pseudo[:, 3].mean()) > 0.15
    torch.testing.assert_close(method.refined_targets.sum(1), torch.ones(len(forget[1])))


def test_uniform_pseudo_rows_are_uniform_before_refinement():
    forget, retain = _split()
    # the released code's marginal is A's own: the forget rows stay the (uniform) pseudo rows
    method = AdaProb(pseudo="uniform", marginal="stacked", num_iter=100)
    method.setup(pretrained(), ClassificationTask(), _loader(forget), _loader(retain))
    torch.testing.assert_close(method.refined_targets, torch.full_like(method.refined_targets, 0.25), rtol=0, atol=1e-6)
    # retain-free: A holds only the pseudo rows, which are returned as they are
    method = AdaProb(pseudo="uniform")
    method.setup(pretrained(), ClassificationTask(), _loader(forget), None)
    torch.testing.assert_close(method.refined_targets, torch.full_like(method.refined_targets, 0.25))


def test_uniform_pseudo_with_fixed_retain_rows_gives_the_retain_prior():
    # retain rows weighing ≫ 1 stay at P_r, so the identical forget rows must carry c − Σ P_r = N_f·prior
    forget, retain = _split()
    model = pretrained()
    method = AdaProb(pseudo="uniform", retain_row_weight=1e6, num_iter=200)
    method.setup(model, ClassificationTask(), _loader(forget), _loader(retain))
    with torch.no_grad():
        prior = torch.softmax(model(retain[0]), -1).mean(0)
    torch.testing.assert_close(method.refined_targets, prior.expand_as(method.refined_targets), rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------------------------- the loss
def test_forget_loss_is_the_kl_to_the_refined_targets():
    forget, retain = _split()
    model = pretrained()
    method = AdaProb(forget_weight=1.5, retain_weight=0.5)
    method.setup(model, ClassificationTask(), _loader(forget), _loader(retain))
    perm = torch.randperm(len(forget[1]), generator=torch.Generator().manual_seed(0))[:10]
    batch, retain_batch = (forget[0][perm], forget[1][perm]), (retain[0][:8], retain[1][:8])
    targets = method.targets_for(batch[0])
    torch.testing.assert_close(targets, method.refined_targets[perm])  # looked up per sample, in any order
    out = method.loss(context(method, model, batch, retain_batch))
    log_p = torch.log_softmax(model(batch[0]), -1)
    kl = (targets * (targets.log() - log_p)).sum(-1).mean()
    torch.testing.assert_close(out.parts["forget_loss"], kl.detach())
    torch.testing.assert_close(out.parts["forget_loss"], F.kl_div(log_p, targets, reduction="batchmean").detach())
    # = soft-label cross-entropy minus the targets' entropy
    soft_ce = -(targets * log_p).sum(-1).mean()
    entropy = -(targets * targets.log()).sum(-1).mean()
    torch.testing.assert_close(out.parts["forget_loss"], (soft_ce - entropy).detach())
    expected = 1.5 * kl + 0.5 * F.cross_entropy(model(retain_batch[0]), retain_batch[1])
    torch.testing.assert_close(out.loss, expected)


def test_soft_kl_is_zero_at_the_target_and_handles_zeros():
    t = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    torch.testing.assert_close(soft_kl(t[1:], t[1:].log()), torch.zeros(1), rtol=0, atol=1e-6)
    logits = torch.tensor([[1.0, 1.0, -2.0]])
    p = torch.softmax(logits, -1)[0]
    torch.testing.assert_close(soft_kl(t[:1], logits), (0.5 * torch.log(0.5 / p[:2])).sum()[None])


def test_unknown_forget_sample_raises():
    forget, retain = _split()
    method = AdaProb()
    method.setup(pretrained(), ClassificationTask(), _loader(forget), _loader(retain))
    with pytest.raises(KeyError, match="not seen when AdaProb built its targets"):
        method.targets_for(forget[0][:2] + 0.5)
    # uniform pseudo rows need no lookup
    method = AdaProb(pseudo="uniform")
    method.setup(pretrained(), ClassificationTask(), _loader(forget), _loader(retain))
    assert method.targets_for(forget[0][:2] + 0.5).shape == (2, 4)


def test_targets_survive_a_checkpoint():
    forget, retain = _split()
    method = AdaProb(seed=1)
    method.setup(pretrained(), ClassificationTask(), _loader(forget), _loader(retain))
    state = method.state_dict()
    assert set(state) == {"state/keys", "state/targets", "state/class_marginal"}
    fresh = AdaProb(seed=2)  # other seed, other model: its own targets differ until the checkpoint is loaded
    fresh.setup(perturbed(pretrained(), 0.5), ClassificationTask(), _loader(forget), _loader(retain))
    assert not torch.allclose(fresh.targets_for(forget[0][:5]), method.targets_for(forget[0][:5]))
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.targets_for(forget[0][:5]), method.targets_for(forget[0][:5]))
    # a checkpoint written before `add_state` (entries "extra/keys", "extra/targets") restores them too
    legacy = AdaProb(seed=2)
    legacy.setup(perturbed(pretrained(), 0.5), ClassificationTask(), _loader(forget), _loader(retain))
    legacy.load_state_dict({"extra/keys": state["state/keys"], "extra/targets": state["state/targets"]})
    torch.testing.assert_close(legacy.targets_for(forget[0][:5]), method.targets_for(forget[0][:5]))


def test_needs_forget_data():
    with pytest.raises(ValueError, match="needs the forget data"):
        AdaProb().setup(pretrained(), ClassificationTask(), None, None)
    with pytest.raises(RuntimeError, match="no refined targets yet"):
        AdaProb().targets_for(torch.zeros(2, 8))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pseudo": "gaussian"}, ValueError, r"`pseudo` should be one of \['random', 'uniform'\], got 'gaussian'"),
        ({"marginal": "train"}, ValueError, r"`marginal` should be one of \['retain_prior', 'stacked'\], got 'train'"),
        ({"retain_row_weight": 0}, ValueError, "`retain_row_weight` should be > 0, got 0"),
        ({"num_iter": 0}, ValueError, "`num_iter` should be an int >= 1, got 0"),
        ({"num_newton": 2.5}, ValueError, "`num_newton` should be an int >= 1, got 2.5"),
        ({"tol": -1e-5}, ValueError, "`tol` should be > 0, got -1e-05"),
        ({"retain_loss": "KL"}, ValueError, r"`retain_loss` should be one of \['kl', 'nll', 'none'\], got 'KL'"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        AdaProb(**kwargs)
