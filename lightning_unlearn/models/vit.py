"""A small Vision Transformer for 28×28 images, built from a ``transformers`` ``ViTConfig`` (nothing downloaded)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightning_unlearn._errors import missing_extra


class ViTClassifier(nn.Module):
    """``transformers.ViTForImageClassification`` built from a config, with named feature points.

    Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at
    Scale", ICLR 2021, arXiv 2010.11929. The defaults make a ViT small enough to train on
    Fashion-MNIST on a CPU: 7×7 patches (16 tokens + [CLS]), 4 layers, 4 heads of width 16.

    ``forward(x)`` takes images ``[B, C, H, W]`` and returns logits ``[B, num_classes]``. The [CLS]
    representation passes through ``penultimate`` (an identity), so ``layer="penultimate"`` captures
    the same feature point as :class:`~lightning_unlearn.models.SmallCNN`'s. The Hugging Face model
    is ``self.vit``; with ``transformers`` 5 its attention projections are
    ``vit.vit.layers.<i>.attention.{q_proj,k_proj,v_proj,o_proj}`` (per-head slices of these are
    what RAZOR edits).

    Args:
        image_size: Height = width of the input images.
        patch_size: Patch side; must divide ``image_size``.
        in_channels: Image channels.
        num_classes: Number of classes.
        hidden_size: Token width.
        num_layers: Transformer blocks.
        num_heads: Attention heads per block; must divide ``hidden_size``.
        mlp_ratio: Width of each block's MLP as a multiple of ``hidden_size``.
        dropout: Dropout in the blocks and attention.
        attn_implementation: ``"sdpa"`` (fast) or ``"eager"`` (returns attention probabilities).
    """

    def __init__(
        self,
        image_size: int = 28,
        patch_size: int = 7,
        in_channels: int = 1,
        num_classes: int = 10,
        hidden_size: int = 64,
        num_layers: int = 4,
        num_heads: int = 4,
        mlp_ratio: int = 2,
        dropout: float = 0.0,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        try:
            from transformers import ViTConfig, ViTForImageClassification
        except ImportError:
            raise missing_extra("transformers", "vision") from None
        if image_size % patch_size:
            raise ValueError(f"`patch_size` should divide `image_size` ({image_size}), got {patch_size}.")
        if hidden_size % num_heads:
            raise ValueError(f"`num_heads` should divide `hidden_size` ({hidden_size}), got {num_heads}.")
        config = ViTConfig(
            image_size=image_size,
            patch_size=patch_size,
            num_channels=in_channels,
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            intermediate_size=mlp_ratio * hidden_size,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            num_labels=num_classes,
        )
        config._attn_implementation = attn_implementation
        self.config = config
        self.vit = ViTForImageClassification(config)
        self.penultimate = nn.Identity()

    @property
    def num_heads(self) -> int:
        return int(self.config.num_attention_heads)

    def forward(self, x: torch.Tensor, **_: Any) -> torch.Tensor:
        hidden = self.vit.vit(pixel_values=x).last_hidden_state
        return self.vit.classifier(self.penultimate(hidden[:, 0]))
