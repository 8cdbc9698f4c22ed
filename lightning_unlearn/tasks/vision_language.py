"""Vision-language modelling: a causal LM whose prompts also hold an image (LLaVA-style VQA).

A batch is a causal-LM batch (:mod:`lightning_unlearn.tasks.causal_lm`) plus the images::

    {"input_ids": [B, T], "attention_mask": [B, T], "labels": [B, T], "pixel_values": [B, C, H, W]}

where the prompt holds the model's image placeholder tokens (see
:class:`~lightning_unlearn.models.vlm.VisionLanguageModel`) and ``labels`` are ``-100`` except on the
answer tokens. :class:`VisionLanguageTask` is :class:`~lightning_unlearn.tasks.CausalLMTask` with the
images passed to every forward pass, so the per-sample answer NLL, the NPO log-likelihood, the
token KL and the hidden states are the causal-LM ones and the LLM methods (GA, GradDiff, NPO,
SimNPO, RMU, IdK, IdK-DPO, ASU) run on a VLM unchanged. Methods that write new answers from the
prompt text alone (PMC, TRU) refuse it: they would drop the image.

:class:`~lightning_unlearn.datamodules.vqa.VQACollator` builds such batches from
``{"image", "question", "answer"}`` examples, and :func:`generate_vlm_answers` /
:func:`first_token_logits` are the evaluation primitives (greedy answers; the next-token
distribution at the start of the answer, for multiple-choice questions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_int
from lightning_unlearn.tasks.base import evaluating
from lightning_unlearn.tasks.causal_lm import IGNORE_INDEX, CausalLMTask


class VisionLanguageTask(CausalLMTask):
    """A VLM (``model(input_ids=..., attention_mask=..., pixel_values=...)`` → logits ``[B, T, V]``) trained on answers.

    Everything a causal-LM task computes is computed on the answer tokens, with the batch's images
    given to the model. A batch without ``image_key`` is a text-only batch (no images passed).

    Args:
        image_key: Key of the images in a batch.
        ignore_index, input_key, mask_key, label_key, tokenizer: As in :class:`CausalLMTask`.
    """

    kind = "vision_language"

    def __init__(
        self,
        image_key: str = "pixel_values",
        ignore_index: int = IGNORE_INDEX,
        input_key: str = "input_ids",
        mask_key: str | None = "attention_mask",
        label_key: str = "labels",
        tokenizer: Any = None,
    ) -> None:
        if not isinstance(image_key, str) or not image_key:
            raise ValueError(f"`image_key` should be a non-empty string, got {image_key!r}.")
        super().__init__(ignore_index=ignore_index, input_key=input_key, mask_key=mask_key, label_key=label_key, tokenizer=tokenizer)
        self.image_key = image_key

    def extra_inputs(self, batch: Any) -> dict[str, Tensor]:
        """``{"pixel_values": images}`` when the batch holds images (also carried into alternative-answer batches)."""
        if isinstance(batch, Mapping) and self.image_key in batch:
            return {"pixel_values": batch[self.image_key]}
        return {}

    def carried_keys(self) -> tuple[str, ...]:
        return (self.image_key,)


def _prompt_batch(collator: Any, examples: Sequence[Mapping[str, Any]], device: torch.device) -> dict[str, Tensor]:
    """Left-padded prompts (no answers) with their images, for generation and next-token scoring."""
    prompts = [collator.prompt_ids(e["question"], system_prompt=e.get("system")) for e in examples]
    length = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), length), collator.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, length - len(ids) :] = torch.tensor(ids)
        attention_mask[row, length - len(ids) :] = 1
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": attention_mask.to(device),
        "pixel_values": collator.images(examples).to(device),
    }


@torch.no_grad()
def first_token_logits(model: nn.Module, collator: Any, examples: Sequence[Mapping[str, Any]], batch_size: int = 16) -> Tensor:
    """Logits ``[N, V]`` of the first answer token after each example's prompt (image + question).

    The greedy answer's first token is their argmax; a multiple-choice answer is read from them
    (see :func:`~lightning_unlearn.evaluation.vlm.multiple_choice`). The model's train/eval mode is restored.
    """
    check_int("batch_size", batch_size)
    rows = []
    with evaluating(model) as device:
        for start in range(0, len(examples), batch_size):
            batch = _prompt_batch(collator, examples[start : start + batch_size], device)
            out = model(**batch)
            rows.append(getattr(out, "logits", out)[:, -1].float().cpu())
    return torch.cat(rows) if rows else torch.empty(0, 0)


@torch.no_grad()
def generate_vlm_answers(
    model: nn.Module, collator: Any, examples: Sequence[Mapping[str, Any]], max_new_tokens: int = 24, batch_size: int = 16
) -> list[str]:
    """Greedy answers (decoded, stripped) of a VLM to ``{"image", "question"[, "system"]}`` examples."""
    check_int("max_new_tokens", max_new_tokens)
    check_int("batch_size", batch_size)
    answers: list[str] = []
    tokenizer = collator.tokenizer
    with evaluating(model) as device:
        for start in range(0, len(examples), batch_size):
            batch = _prompt_batch(collator, examples[start : start + batch_size], device)
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=collator.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new = out[:, batch["input_ids"].shape[1] :]
            answers.extend(text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True))
    return answers
