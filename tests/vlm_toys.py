"""Tiny vision-language toys shared by the VLM tests: a tokenizer with an image token, a tiny VLM, VQA examples.

Import as ``from vlm_toys import ...`` (``tests/`` is on ``sys.path``, as for ``llm_toys``). The VLM is the real
:class:`~lightning_unlearn.models.vlm.VisionLanguageModel` with the real EfficientNet-Lite0 tower (its ImageNet
weights, loaded once per process) in front of a tiny random Llama (hidden 32, 2 layers); at 64×64 the tower gives
2×2 = 4 image tokens. The images are real Fashion-MNIST digits (3 per class). Nothing is downloaded.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from llm_toys import SENTENCES

from lightning_unlearn.datamodules.vqa import (
    ATTACK_OPENINGS,
    BENIGN_HOW,
    CLASS_NAMES,
    DEFAULT_SYSTEM_PROMPT,
    HARMFUL_INTENTS,
    NAME_QUESTIONS,
    REFUSAL,
    VQACollator,
    fashion_vqa,
)
from lightning_unlearn.models.efficientnet import efficientnet_lite0
from lightning_unlearn.models.llm import tiny_llama, train_tokenizer
from lightning_unlearn.models.vlm import VisionLanguageModel

IMAGE_TOKEN = "<|image|>"
NUM_IMAGE_TOKENS = 4  # EfficientNet-Lite0 at 64×64: a 2×2 feature map

_TEXTS = [
    *SENTENCES,
    DEFAULT_SYSTEM_PROMPT,
    REFUSAL,
    *NAME_QUESTIONS,
    "Which item is shown in the picture? A. B. C. D. Answer with the letter of the correct option.",
    " ".join(CLASS_NAMES),
    *(f"{vp} {answer}" for vp, answer, _ in HARMFUL_INTENTS),
    *(f"{q} {a}" for q, a in BENIGN_HOW),
    *ATTACK_OPENINGS,
]


@functools.cache
def vlm_tokenizer() -> Any:
    """A byte-level BPE tokenizer (384 tokens) with the toy chat template and an ``<|image|>`` special token."""
    return train_tokenizer(_TEXTS, vocab_size=384, roles=("system", "user", "assistant", "image"))


def image_token_id() -> int:
    return int(vlm_tokenizer().convert_tokens_to_ids(IMAGE_TOKEN))


@functools.cache
def _tower_state() -> dict[str, torch.Tensor]:
    return efficientnet_lite0(pretrained=True).state_dict()


def tower() -> torch.nn.Module:
    """A fresh EfficientNet-Lite0 with its ImageNet weights (eval mode)."""
    model = efficientnet_lite0(pretrained=False)
    model.load_state_dict(_tower_state())
    return model.eval()


def tiny_vlm(seed: int = 0, freeze_vision: bool = True, **llama: Any) -> VisionLanguageModel:
    """The real VLM wrapper: EfficientNet-Lite0 (ImageNet) → projector → a tiny random Llama over :func:`vlm_tokenizer`."""
    tok = vlm_tokenizer()
    lm = tiny_llama(
        len(tok), seed=seed, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **llama
    )
    vision = tower()
    torch.manual_seed(seed)  # the projector's initialisation
    return VisionLanguageModel(lm, image_token_id(), vision_tower=vision, image_size=64, freeze_vision=freeze_vision)


def vqa_collator(**kwargs: Any) -> VQACollator:
    return VQACollator(vlm_tokenizer(), image_token_id(), NUM_IMAGE_TOKENS, **kwargs)


@functools.cache
def _dataset(kinds: tuple[str, ...]) -> Any:
    return fashion_vqa("train", per_class=3, kinds=kinds, seed=0)


def vqa_items(kinds: tuple[str, ...] = ("name", "mcq")) -> list[dict[str, Any]]:
    """Every example of a 3-images-per-class Fashion-MNIST VQA set of ``kinds``, each with its ``"image"``."""
    data = _dataset(tuple(kinds))
    return [data[i] for i in range(len(data))]
