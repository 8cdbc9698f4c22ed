"""FOUL's Phase I losses and Phase II's κ-scaled conflict correction against their closed forms."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.federated.foul import (
    client_gradients,
    conflict_corrected_gradient,
    phase_one_loss,
    phase_two,
    prototype_loss,
    reconstruction_loss,
    variance_hinge,
)
from lightning_unlearn.federated.model import FederatedNet


def test_conflict_correction_closed_form():
    g_fl = torch.tensor([3.0, 4.0], dtype=torch.float64)  # norm 5
    g_r = torch.tensor([1.0, 0.0], dtype=torch.float64)
    g_f = torch.tensor([1.0, 2.0], dtype=torch.float64)  # g_r - g_f = [0, -2], norm 2
    out = conflict_corrected_gradient(g_fl, g_r, g_f, kappa=0.5)
    torch.testing.assert_close(out, torch.tensor([3.0, 4.0 + 0.5 * 5 / 2 * -2], dtype=torch.float64))
    # the correction's length is κ‖∇_FL‖ whatever the size of the conflict
    assert float((out - g_fl).norm()) == pytest.approx(0.5 * 5)
    torch.testing.assert_close(conflict_corrected_gradient(g_fl, g_r, g_r, kappa=2.0), g_fl)
    torch.testing.assert_close(conflict_corrected_gradient(g_fl, g_r, g_f, kappa=0.0), g_fl)


def test_prototype_loss_closed_form():
    z = torch.tensor([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0]])
    y = torch.tensor([0, 0, 1])
    # class 0 prototype (1, 0): squared distances 1 and 1; class 1 alone: 0 -> mean 2/3
    assert float(prototype_loss(z, y)) == pytest.approx(2 / 3)


def test_variance_hinge_closed_form():
    z = torch.tensor([[0.0, 0.0], [0.5, 4.0], [9.0, 9.0]])
    y = torch.tensor([0, 0, 1])  # class 1 has one sample: skipped
    var = z[:2].var(dim=0)  # [0.125, 8]
    expected = torch.relu(1 - torch.sqrt(var + 1e-4)).mean()
    assert float(variance_hinge(z, y)) == pytest.approx(float(expected))
    assert float(variance_hinge(torch.tensor([[0.0], [10.0]]), torch.tensor([0, 0]))) == 0.0


def test_reconstruction_loss_closed_form():
    h = torch.tensor([[1.0, 2.0]])
    h_hat = torch.tensor([[0.0, 2.0]])
    z_v = torch.tensor([[1.0], [-1.0]])  # mean 0, var 1: KL 0
    assert float(reconstruction_loss(h, h_hat, z_v, beta_kl=1.0, eps=0.0)) == pytest.approx(0.5)
    z_v = torch.tensor([[2.0], [2.0]])  # mean 2, var eps
    eps = 1e-6
    kl = 0.5 * (eps + 4 - 1 - torch.log(torch.tensor(eps)))
    assert float(reconstruction_loss(h, h_hat, z_v, beta_kl=0.1, eps=eps)) == pytest.approx(0.5 + 0.1 * float(kl), rel=1e-5)


def test_phase_one_loss_is_the_weighted_sum_of_its_parts():
    torch.manual_seed(0)
    model = FederatedNet(in_features=4, hidden=6, latent=3, num_classes=2)
    batch = (torch.randn(8, 4), torch.tensor([0, 1] * 4))
    out = phase_one_loss(model, batch, alpha_v=0.3, alpha_k=0.2, alpha_gtc=0.5, beta_kl=0.01)
    p = out.parts
    expected = p["ce"] + 0.5 * p["gtc"] + 0.2 * p["prototype"] + 0.3 * p["variance"] + p["reconstruction"]
    assert float(out.loss.detach()) == pytest.approx(float(expected), rel=1e-6)
    out.loss.backward()
    assert model.noncausal[0].weight.grad is not None and model.causal[0].weight.grad is not None


def test_phase_two_changes_only_the_noncausal_part_by_the_closed_form():
    torch.manual_seed(0)
    model = FederatedNet(in_features=4, hidden=3, latent=2, num_classes=2)
    state = model.state_dict()
    keys = [k for k in state if k.startswith("noncausal.")]
    d = sum(state[k].numel() for k in keys)
    g = {0: torch.ones(d, dtype=torch.float64), 1: torch.full((d,), 3.0, dtype=torch.float64), 2: -torch.ones(d, dtype=torch.float64)}
    shares = {0: 0.5, 1: 0.25, 2: 0.25}
    out = phase_two(state, [g], shares, leaving=2, kappa=1.0, lr=0.1)
    # Γ over {0, 1}: 2/3 and 1/3 -> ∇_FL = ∇_ΓR = 5/3·1; ∇_ΓR − ∇_ΓF = 8/3·1; correction = ‖∇_FL‖/‖diff‖·diff = 5/3·1
    step = 0.1 * (5 / 3 + 5 / 3)
    for k in state:
        if k in keys:
            torch.testing.assert_close(out[k], state[k] - step)
        else:
            torch.testing.assert_close(out[k], state[k])


def test_client_gradients_are_updates_over_the_learning_rate():
    model = FederatedNet(in_features=4, hidden=3, latent=2, num_classes=2)
    state = model.state_dict()
    moved = {k: v - 0.2 if k.startswith("noncausal.") else v + 1.0 for k, v in state.items()}
    grads = client_gradients(state, {7: moved}, lr=0.1)
    torch.testing.assert_close(grads[7], torch.full_like(grads[7], 2.0))


def test_phase_two_needs_stored_gradients():
    with pytest.raises(ValueError, match="at least one training round"):
        phase_two(FederatedNet(in_features=4, hidden=3, latent=2).state_dict(), [], {0: 1.0}, leaving=0)
