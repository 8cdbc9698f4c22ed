"""tasks.base's shared helpers: the eval-mode context every evaluation loop uses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_unlearn.tasks.base import evaluating


def test_evaluating_restores_each_mode_also_on_errors():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    for mode in (True, False):
        model.train(mode)
        with evaluating(model) as device:
            assert not model.training and not model[1].training and device == torch.device("cpu")
        assert model.training is mode and model[1].training is mode
    model.train()
    with pytest.raises(RuntimeError, match="boom"), evaluating(model):
        raise RuntimeError("boom")
    assert model.training and model[1].training


def test_evaluating_a_module_without_parameters_yields_the_cpu():
    with evaluating(nn.ReLU()) as device:
        assert device == torch.device("cpu")
