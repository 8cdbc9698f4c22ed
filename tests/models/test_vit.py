"""ViTClassifier: a tiny transformers ViT built from a config, with a ``penultimate`` feature point."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.models import ViTClassifier
from lightning_unlearn.tasks import ClassificationTask
from lightning_unlearn.tasks.base import capture_features

TINY = dict(hidden_size=16, num_heads=2, num_layers=1, image_size=8, patch_size=4, in_channels=1)


def _tiny(**kwargs) -> ViTClassifier:
    torch.manual_seed(0)
    return ViTClassifier(**{**TINY, **kwargs})


def test_output_shape_and_config():
    model = _tiny(num_classes=5)
    x = torch.randn(3, 1, 8, 8)
    assert model(x).shape == (3, 5)
    assert model.num_heads == 2 and model.config.hidden_size == 16 and model.config.num_hidden_layers == 1
    assert _tiny(in_channels=3)(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_penultimate_captures_the_cls_features():
    model = _tiny().eval()
    x = torch.randn(4, 1, 8, 8)
    with capture_features(model, "penultimate") as store:
        logits = model(x)
    assert store["out"].shape == (4, 16)
    cls = model.vit.vit(pixel_values=x).last_hidden_state[:, 0]
    torch.testing.assert_close(store["out"], cls)
    torch.testing.assert_close(model.vit.classifier(store["out"]), logits)
    assert ClassificationTask().features(model, (x, torch.zeros(4, dtype=torch.long)), "penultimate").shape == (4, 16)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patch_size": 3}, r"`patch_size` should divide `image_size` \(8\), got 3"),
        ({"num_heads": 3}, r"`num_heads` should divide `hidden_size` \(16\), got 3"),
    ],
)
def test_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _tiny(**kwargs)


def test_a_few_adam_steps_reduce_the_loss():
    model = _tiny(num_classes=3)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 1, 8, 8, generator=g), torch.randint(0, 3, (12,), generator=g)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
