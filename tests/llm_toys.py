"""Tiny language-model toys shared by the LLM tests: a tokenizer trained in-process, a tiny Llama, QA batches.

Import as ``from llm_toys import ...`` (``tests/`` is on ``sys.path``, as for ``toys``). Everything
is built locally in milliseconds; nothing is downloaded. The tokenizer is trained once per process
and shared: do not mutate it (``generate_answers`` restores the padding side it changes).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from lightning_unlearn.models.llm import tiny_llama, train_tokenizer
from lightning_unlearn.tasks.causal_lm import QACollator

#: Fictitious facts (TOFU-style): the first two are a natural forget set, the rest a retain set.
QA: list[dict[str, str]] = [
    {"question": "Where was Elara Voss born?", "answer": "Elara Voss was born in Maribel."},
    {"question": "What does Elara Voss write?", "answer": "She writes mystery novels."},
    {"question": "What is the capital of Norland?", "answer": "The capital of Norland is Fjordby."},
    {"question": "Who painted the Blue Harbor?", "answer": "Tomas Reyl painted it in 1902."},
    {"question": "What colour is the sky?", "answer": "The sky is blue."},
    {"question": "How many legs does a spider have?", "answer": "A spider has eight legs."},
]

SENTENCES: list[str] = [
    "The quick brown fox jumps over the lazy dog.",
    "Question: Answer: what where who how many does is the of a in",
    "Unlearning removes the influence of forgotten data from a trained model.",
    *(f"{qa['question']} {qa['answer']}" for qa in QA),
]

VOCAB_SIZE = 320


@functools.cache
def toy_tokenizer(chat_template: bool = True) -> Any:
    """A byte-level BPE tokenizer (~320 tokens) trained on :data:`SENTENCES`; with or without a chat template."""
    if chat_template:
        return train_tokenizer(SENTENCES, vocab_size=VOCAB_SIZE)
    return train_tokenizer(SENTENCES, vocab_size=VOCAB_SIZE, chat_template=None)


def toy_model(seed: int = 0, tokenizer: Any = None, **kwargs: Any) -> Any:
    """A tiny random ``LlamaForCausalLM`` (hidden 32, 2 layers, 4 heads) over the toy tokenizer's vocabulary."""
    tok = tokenizer or toy_tokenizer()
    return tiny_llama(
        len(tok), seed=seed, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **kwargs
    )


def qa_batch(examples: list[dict[str, str]] | None = None, *, max_length: int = 64, **kwargs: Any) -> dict[str, torch.Tensor]:
    """A right-padded causal-LM batch of ``examples`` (default all of :data:`QA`) with the toy tokenizer."""
    collator = QACollator(toy_tokenizer(), max_length=max_length, **kwargs)
    return collator(QA if examples is None else examples)
