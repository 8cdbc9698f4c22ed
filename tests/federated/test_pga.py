"""Projected gradient ascent (Halimi et al. 2022): the reference model, the radius and the projection."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_unlearn.federated.pga import ball_radius, project_to_ball, reference_state


def test_reference_is_the_other_clients_average():
    # FedAvg of three equal clients: w = (a + b + c) / 3; removing c must give (a + b) / 2.
    a, b, c = torch.tensor([1.0, 0.0]), torch.tensor([3.0, 2.0]), torch.tensor([-4.0, 7.0])
    w = {"p": (a + b + c) / 3}
    out = reference_state(w, {"p": c}, share=1 / 3)
    torch.testing.assert_close(out["p"], (a + b) / 2)


def test_reference_refuses_a_share_of_one():
    with pytest.raises(ValueError, match="share"):
        reference_state({"p": torch.zeros(1)}, {"p": torch.zeros(1)}, share=1.0)


def test_radius_is_a_third_of_the_mean_distance_to_random_models():
    ref = {"p": torch.zeros(2)}
    randoms = [{"p": torch.tensor([3.0, 4.0])}, {"p": torch.tensor([0.0, 1.0])}]  # distances 5 and 1
    assert ball_radius(ref, randoms) == pytest.approx(1.0)


def test_projection_onto_the_ball_closed_form():
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.bias.fill_(4.0)
    center = {"weight": torch.zeros(1, 1), "bias": torch.zeros(1)}
    before = project_to_ball(model, center, radius=1.0)
    assert before == pytest.approx(5.0)
    torch.testing.assert_close(model.weight, torch.tensor([[0.6]]))
    torch.testing.assert_close(model.bias, torch.tensor([0.8]))
    # inside the ball nothing moves
    project_to_ball(model, center, radius=2.0)
    torch.testing.assert_close(model.bias, torch.tensor([0.8]))
    total = math.hypot(float(model.weight.detach()), float(model.bias.detach()))
    assert total == pytest.approx(1.0)
