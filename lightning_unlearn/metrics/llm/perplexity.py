"""Perplexity of a causal LM on plain texts (:func:`text_perplexity`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from lightning_unlearn._errors import check_int
from lightning_unlearn.metrics.llm._checks import _check_texts
from lightning_unlearn.tasks.base import evaluating

__all__ = ["text_perplexity"]


@torch.no_grad()
def text_perplexity(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int = 128,
    batch_size: int = 8,
    prefix_token_id: int | None = None,
) -> float:
    r"""Perplexity of a causal LM on plain texts: :math:`\exp` of the mean next-token NLL over every scored token.

    Each text is tokenized on its own with the tokenizer's own special tokens (no chat template),
    optionally preceded by ``prefix_token_id``, truncated to ``max_length`` tokens and scored from its
    second token on; padding is masked out. Token-weighted over all texts, as language-modelling
    perplexity is usually reported (MUSE reports it on held-out text to check utility after unlearning;
    Shi et al., "MUSE: Machine Unlearning Six-Way Evaluation for Language Models", 2024). The model is put
    in eval mode for the computation and restored afterwards.

    Args:
        model: A Hugging Face style causal LM (``model(input_ids=..., attention_mask=...).logits``).
        tokenizer: Its tokenizer (a pad token is not required).
        texts: Non-empty texts.
        max_length: Tokens kept per text, prefix included (at least 2).
        batch_size: Texts per forward pass.
        prefix_token_id: A token put before every text so that its first token is scored too: the
            document separator the model was pretrained with (SmolLM2: ``<|endoftext|>``, id 0; not
            its ``bos_token``, which opens a chat turn). ``None``: no prefix; the first token is context only.

    Returns:
        The perplexity, a ``float`` :math:`\geq 1`.
    """
    texts = _check_texts(texts, "texts")
    if not texts:
        raise ValueError("`texts` should be a non-empty sequence of strings, got an empty sequence.")
    blank = [i for i, t in enumerate(texts) if not t.strip()]
    if blank:
        raise ValueError(f"`texts` should be non-empty strings; texts{blank[:5]} are blank.")
    check_int("max_length", max_length, minimum=2)
    check_int("batch_size", batch_size, minimum=1)
    check_int("prefix_token_id", prefix_token_id, minimum=0, optional=True)
    prefix = [] if prefix_token_id is None else [prefix_token_id]
    encoded = [(prefix + list(tokenizer(text)["input_ids"]))[:max_length] for text in texts]
    short = [i for i, ids in enumerate(encoded) if len(ids) < 2]
    if short:
        raise ValueError(
            f"Every text should tokenize to at least 2 tokens (one to predict from, one to score); texts{short[:5]} "
            f"(e.g. {texts[short[0]]!r:.40}) do not. Pass `prefix_token_id` to score one-token texts."
        )
    total_nll, total_tokens = 0.0, 0
    with evaluating(model) as device:
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            width = max(len(ids) for ids in chunk)
            input_ids = torch.zeros(len(chunk), width, dtype=torch.long)
            mask = torch.zeros(len(chunk), width, dtype=torch.long)
            for row, ids in enumerate(chunk):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                mask[row, : len(ids)] = 1
            input_ids, mask = input_ids.to(device), mask.to(device)
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), input_ids[:, 1:], reduction="none")
            valid = mask[:, 1:].bool()
            total_nll += float(nll[valid].sum())
            total_tokens += int(valid.sum())
    return math.exp(total_nll / total_tokens)
