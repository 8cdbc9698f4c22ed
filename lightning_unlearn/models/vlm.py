"""A LLaVA-style vision-language model assembled from real offline parts.

Liu et al., *Visual Instruction Tuning* (LLaVA, NeurIPS 2023) and *Improved Baselines with Visual
Instruction Tuning* (LLaVA-1.5, the ``mlp2x_gelu`` projector): a vision tower's feature map is
projected into the language model's embedding space, and the projected vectors replace the
embeddings of image placeholder tokens in the prompt. :class:`VisionLanguageModel` does exactly
that with any vision tower that has a ``features(images) -> [B, C, h, w]`` method (default:
:class:`~lightning_unlearn.models.efficientnet.EfficientNetLite0` with its ImageNet weights, frozen)
and any ``transformers`` causal LM (default: SmolLM2-135M-Instruct): ``h·w`` image tokens per image.

Its ``forward`` takes the causal LM's arguments plus ``pixel_values`` and returns the LM's output
(logits aligned with ``input_ids``), so :class:`~lightning_unlearn.tasks.VisionLanguageTask` is a
causal-LM task whose batches also carry images, and the LLM unlearning methods (GA, GradDiff, NPO,
SimNPO, RMU, IdK, ...) run on it unchanged. :func:`fashion_vlm` is the cached model of the B9
benchmark: the projector and a LoRA on SmolLM2, trained in-process on visual QA over
Fashion-MNIST (:mod:`lightning_unlearn.datamodules.vqa`), the LoRA merged into the LM.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_unlearn._errors import check_int
from lightning_unlearn.models.efficientnet import efficientnet_lite0, normalize_images
from lightning_unlearn.tasks.base import evaluating

#: SmolLM2's unused special token ``<empty_output>`` stands for one image position (its embedding is replaced).
SMOLLM2_IMAGE_TOKEN = "<empty_output>"


class VisionLanguageModel(nn.Module):
    """Vision tower → MLP projector → image embeddings spliced into a causal LM's input embeddings.

    Every row of ``input_ids`` holds either no ``image_token_id`` (a text-only sample, its image
    ignored) or exactly :attr:`num_image_tokens` of them (not necessarily contiguous); their
    embeddings are replaced, in order, by the projected ``h × w`` feature vectors of the row's image.
    Grey images are repeated to RGB; images are resized to ``image_size`` and normalised with the
    ImageNet statistics before the tower.

    Args:
        language_model: A ``transformers`` causal LM (``inputs_embeds`` in ``forward`` and ``generate``).
        image_token_id: The token id of an image position (a token that never occurs in text).
        vision_tower: A module with ``features(images) -> [B, C, h, w]``; ``None``: EfficientNet-Lite0 with its
            ImageNet weights.
        image_size: Side of the square image fed to the tower (EfficientNet-Lite0: stride 32, so 64 → 2×2 = 4 tokens).
        freeze_vision: Keep the tower frozen and in eval mode (batch-norm statistics untouched), as in LLaVA.
    """

    def __init__(
        self,
        language_model: nn.Module,
        image_token_id: int,
        vision_tower: nn.Module | None = None,
        image_size: int = 64,
        freeze_vision: bool = True,
    ) -> None:
        super().__init__()
        check_int("image_token_id", image_token_id, minimum=0)
        check_int("image_size", image_size, minimum=8)
        if not callable(getattr(language_model, "get_input_embeddings", None)):
            raise TypeError(
                f"`language_model` should be a transformers causal LM (with get_input_embeddings), got {type(language_model).__name__}."
            )
        self.vision_tower = efficientnet_lite0() if vision_tower is None else vision_tower
        if not callable(getattr(self.vision_tower, "features", None)):
            raise TypeError(f"`vision_tower` should have a features(images) method, got {type(self.vision_tower).__name__}.")
        self.language_model = language_model
        self.image_token_id = int(image_token_id)
        self.image_size = int(image_size)
        self.freeze_vision = bool(freeze_vision)
        with evaluating(self.vision_tower), torch.no_grad():  # the shape probe must not touch batch-norm statistics
            probe = self.vision_tower.features(torch.zeros(1, 3, self.image_size, self.image_size))
        channels, self.num_image_tokens = int(probe.shape[1]), int(probe.shape[2] * probe.shape[3])
        hidden = int(language_model.get_input_embeddings().weight.shape[1])
        self.projector = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        if self.freeze_vision:
            self.vision_tower.requires_grad_(False)
            self.vision_tower.eval()

    @property
    def config(self) -> Any:
        """The language model's config (methods and ``generate`` read it)."""
        return self.language_model.config

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def train(self, mode: bool = True) -> VisionLanguageModel:
        super().train(mode)
        if self.freeze_vision:
            self.vision_tower.eval()
        return self

    def image_embeddings(self, pixel_values: Tensor) -> Tensor:
        """Projected image tokens ``[B, num_image_tokens, hidden]`` of images ``[B, 1 or 3, H, W]`` in ``[0, 1]``."""
        if not isinstance(pixel_values, Tensor) or not pixel_values.is_floating_point():
            raise TypeError(f"`pixel_values` should be a float tensor [batch, 1 or 3, H, W] in [0, 1], got {pixel_values!r:.80}.")
        images = F.interpolate(pixel_values.float(), size=self.image_size, mode="bilinear", align_corners=False)
        images = normalize_images(images).to(next(self.vision_tower.parameters()).dtype)
        if self.freeze_vision:
            with torch.no_grad():
                features = self.vision_tower.features(images)
        else:
            features = self.vision_tower.features(images)
        tokens = features.flatten(2).transpose(1, 2)  # [B, h*w, C]
        return self.projector(tokens.to(self.projector[0].weight.dtype))

    def embed(self, input_ids: Tensor, pixel_values: Tensor | None = None) -> Tensor:
        """The LM's input embeddings of ``input_ids`` with the image positions replaced by :meth:`image_embeddings`."""
        embeddings = self.get_input_embeddings()(input_ids)
        is_image = input_ids == self.image_token_id
        counts = is_image.sum(1)
        if not bool(is_image.any()):
            return embeddings
        bad = ((counts != 0) & (counts != self.num_image_tokens)).nonzero()
        if len(bad):
            row = int(bad[0])
            raise ValueError(
                f"Row {row} of `input_ids` holds {int(counts[row])} image tokens (id {self.image_token_id}); a row should hold "
                f"0 or exactly num_image_tokens={self.num_image_tokens}."
            )
        if pixel_values is None:
            raise ValueError("`input_ids` hold image tokens but no `pixel_values` were given.")
        if not isinstance(pixel_values, Tensor):
            raise TypeError(f"`pixel_values` should be a float tensor [batch, 1 or 3, H, W] in [0, 1], got {type(pixel_values).__name__}.")
        if pixel_values.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"`pixel_values` should hold one image per row of `input_ids` ({input_ids.shape[0]}), got {pixel_values.shape[0]}."
            )
        with_image = counts > 0
        image = self.image_embeddings(pixel_values[with_image]).to(embeddings.dtype)
        return embeddings.masked_scatter(is_image.unsqueeze(-1), image.reshape(-1, image.shape[-1]))

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        pixel_values: Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        """The language model's output (``logits [B, T, V]`` aligned with ``input_ids``) on the spliced embeddings."""
        return self.language_model(inputs_embeds=self.embed(input_ids, pixel_values), attention_mask=attention_mask, **kwargs)

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        pixel_values: Tensor | None = None,
        **kwargs: Any,
    ) -> Tensor:
        """``input_ids`` followed by the generated tokens, like a text model's ``generate`` (left-padded prompts)."""
        new = self.language_model.generate(
            inputs_embeds=self.embed(input_ids, pixel_values), attention_mask=attention_mask, **kwargs
        )
        return torch.cat([input_ids, new.to(input_ids.device)], dim=1)


def fashion_vlm(seed: int = 0) -> VisionLanguageModel:
    """Benchmark B9's trained VLM (Fashion-MNIST visual QA, LoRA merged), for configs; trained on first use and cached.

    See :func:`lightning_unlearn.benchmarking.b9.original_vlm`: the first call trains it in-process (about 70 min on
    2 busy CPU cores: 3,359 s + 740 s measured; 2,122 s on 2 idle ones), later calls load the cache (``$LIGHTNING_UNLEARN_CACHE/b9``). A config names it as a model::

        model:
          class_path: lightning_unlearn.UnlearningModule
          init_args:
            model:
              class_path: lightning_unlearn.models.fashion_vlm
    """
    from lightning_unlearn.benchmarking.b9 import original_vlm

    model, _, _ = original_vlm(seed=seed)
    return model.train()


def smollm2_vlm(cache_dir: str | None = None, image_size: int = 64) -> tuple[VisionLanguageModel, Any]:
    """An untrained VLM: EfficientNet-Lite0 (ImageNet) + a fresh projector + SmolLM2-135M-Instruct, and its tokenizer.

    The image token is SmolLM2's unused ``<empty_output>`` special token. Offline (see
    :func:`~lightning_unlearn.models.load_smollm2`).
    """
    from lightning_unlearn.models.llm import load_smollm2

    lm, tokenizer = load_smollm2(cache_dir)
    image_token_id = tokenizer.convert_tokens_to_ids(SMOLLM2_IMAGE_TOKEN)
    return VisionLanguageModel(lm, image_token_id=image_token_id, image_size=image_size), tokenizer


@functools.cache
def _tiny_vlm_tokenizer(vocab_size: int) -> Any:
    from lightning_unlearn.datamodules.vqa import DEFAULT_SYSTEM_PROMPT, KINDS, REFUSAL, vqa_examples
    from lightning_unlearn.models.llm import train_tokenizer

    texts = [DEFAULT_SYSTEM_PROMPT, REFUSAL]
    texts += [t for e in vqa_examples(list(range(10)) * 3, KINDS, seed=0) for t in (e["question"], e["answer"])]
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    tokenizer.add_tokens([SMOLLM2_IMAGE_TOKEN], special_tokens=True)
    return tokenizer


def tiny_vlm_tokenizer(vocab_size: int = 512) -> Any:
    """A byte-level BPE tokenizer trained in-process on the Fashion-MNIST VQA templates, with the image token
    ``<empty_output>`` (:data:`SMOLLM2_IMAGE_TOKEN`) and a chat template: the tokenizer of :func:`tiny_vlm`, for
    tests and smoke runs of the ``configs/fashion_vqa`` configs (``--data.init_args.tokenizer``). Deterministic;
    trained once per process and vocabulary size (do not mutate it)."""
    check_int("vocab_size", vocab_size, minimum=300)
    return _tiny_vlm_tokenizer(int(vocab_size))


def tiny_vlm(hidden_size: int = 32, num_layers: int = 2, num_heads: int = 4, seed: int = 0, image_size: int = 64) -> VisionLanguageModel:
    """A tiny random VLM for tests and smoke runs: EfficientNet-Lite0 (ImageNet weights, frozen) → a fresh projector →
    a random :func:`~lightning_unlearn.models.tiny_llama` over :func:`tiny_vlm_tokenizer`'s vocabulary, in train mode.

    A config swaps it in for :func:`fashion_vlm` with ``--model.init_args.model lightning_unlearn.models.vlm.tiny_vlm``
    and ``--data.init_args.tokenizer lightning_unlearn.models.vlm.tiny_vlm_tokenizer``. ``seed`` fixes the language
    model's and the projector's initialisation without touching the global RNG.
    """
    from lightning_unlearn.models.llm import tiny_llama

    tokenizer = tiny_vlm_tokenizer()
    lm = tiny_llama(
        len(tokenizer), hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, seed=seed,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VisionLanguageModel(lm, tokenizer.convert_tokens_to_ids(SMOLLM2_IMAGE_TOKEN), image_size=image_size)
    return model.train()
