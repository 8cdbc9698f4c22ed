"""Semantic anchors: fixed per-class text embeddings from a real sentence encoder.

Used by Stake the Points (:class:`~lightning_unlearn.methods.StakeThePoints`) to describe the
semantic structure of a classifier's feature space; see :func:`class_anchors`.
"""

from lightning_unlearn.anchors.descriptions import DESCRIPTION_SETS, DIGITS, FASHION_MNIST
from lightning_unlearn.anchors.text import class_anchors, encode_texts, load_anchors

__all__ = ["DESCRIPTION_SETS", "DIGITS", "FASHION_MNIST", "class_anchors", "encode_texts", "load_anchors"]
