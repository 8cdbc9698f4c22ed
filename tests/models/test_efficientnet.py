"""EfficientNet-Lite0: the package's ImageNet weights load into the plain-torch definition and classify a real photo."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_unlearn.models.efficientnet import (
    EfficientNetLite0,
    SameConv2d,
    efficientnet_lite0,
    efficientnet_lite0_weights_path,
    normalize_images,
)

EGYPTIAN_CAT = 285


@pytest.fixture(scope="module")
def pretrained():
    return efficientnet_lite0(pretrained=True)


def test_chelsea_is_an_egyptian_cat(pretrained):
    data = pytest.importorskip("skimage.data")
    photo = torch.tensor(data.chelsea()).permute(2, 0, 1)[None].float() / 255  # [1, 3, 300, 451] RGB
    image = F.interpolate(photo, size=224, mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        probs = pretrained(normalize_images(image)).softmax(-1)[0]
    assert int(probs.argmax()) == EGYPTIAN_CAT
    assert 0.78 <= float(probs[EGYPTIAN_CAT]) <= 0.82  # measured 0.800
    # a random init knows no cat: the weights, not the architecture, give the answer
    torch.manual_seed(0)
    with torch.no_grad():
        random_probs = efficientnet_lite0(pretrained=False)(normalize_images(image)).softmax(-1)[0]
    assert float(random_probs[EGYPTIAN_CAT]) < 0.05


def test_every_weight_of_the_package_is_used(pretrained):
    state = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    own = pretrained.state_dict()
    assert set(state) == set(own)
    for key, value in state.items():
        assert torch.equal(own[key], value), key
    assert sum(p.numel() for p in pretrained.parameters()) == pytest.approx(4.65e6, rel=0.01)
    assert not pretrained.training


def test_the_weights_are_loaded_with_weights_only(monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    efficientnet_lite0(pretrained=True)
    assert calls == [True]


@pytest.mark.parametrize(("size", "kernel", "stride"), [(7, 3, 2), (8, 3, 2), (9, 5, 2), (10, 5, 2), (7, 5, 1), (64, 3, 2), (65, 3, 2)])
def test_same_padding_output_size(size, kernel, stride):
    conv = SameConv2d(2, 3, kernel, stride=stride, bias=False)
    out = conv(torch.randn(1, 2, size, size + 1))
    assert tuple(out.shape[-2:]) == (math.ceil(size / stride), math.ceil((size + 1) / stride))


def test_same_padding_puts_the_extra_pixel_at_the_end():
    # TensorFlow's SAME: an even input, stride 2, kernel 3 pads 0 before and 1 after, so the first output reads
    # pixels 0..2 and the last one reads the last pixel and the zero padding
    conv = SameConv2d(1, 1, 3, stride=2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    conv.requires_grad_(False)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = conv(x)
    assert out.shape == (1, 1, 2, 2)
    assert float(out[0, 0, 0, 0]) == float(x[0, 0, :3, :3].sum())
    assert float(out[0, 0, 1, 1]) == float(x[0, 0, 2:, 2:].sum())
    # an odd input pads symmetrically: 5 → 3 outputs, one zero pixel on each side
    out = conv(torch.ones(1, 1, 5, 5))
    assert float(out[0, 0, 0, 0]) == 4.0 and float(out[0, 0, 1, 1]) == 9.0 and float(out[0, 0, 2, 2]) == 4.0


@pytest.mark.parametrize(("size", "grid"), [(64, 2), (65, 3), (32, 1), (96, 3)])
def test_feature_map_shape(size, grid):
    model = EfficientNetLite0().eval()
    with torch.no_grad():
        features = model.features(torch.randn(2, 3, size, size))
    assert features.shape == (2, 1280, grid, grid)
    assert float(features.min()) >= 0.0 and float(features.max()) <= 6.0  # ReLU6


def test_forward_is_the_classifier_on_pooled_features(pretrained):
    x = normalize_images(torch.rand(2, 3, 64, 64))
    with torch.no_grad():
        expected = pretrained._fc(pretrained.features(x).mean((2, 3)))
        torch.testing.assert_close(pretrained(x), expected)
    assert pretrained(x).shape == (2, 1000)


def test_normalize_images():
    grey = torch.rand(2, 1, 5, 5)
    out = normalize_images(grey)
    assert out.shape == (2, 3, 5, 5)
    torch.testing.assert_close(out[:, 1], (grey[:, 0] - 0.456) / 0.224)
    torch.testing.assert_close(normalize_images(torch.full((1, 3, 2, 2), 0.485))[:, 0], torch.zeros(1, 2, 2))
    for bad in (torch.rand(3, 5, 5), torch.rand(1, 2, 5, 5)):
        with pytest.raises(ValueError, match=r"`images` should be \[batch, 1 or 3, height, width\]"):
            normalize_images(bad)
