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


def toy_model_folder(folder: Any) -> Any:
    """:func:`toy_model` and :func:`toy_tokenizer` saved with ``save_pretrained`` into ``folder`` (a model folder as
    the chat and B10 load one); returns ``folder``."""
    tok = toy_tokenizer()
    toy_model(tokenizer=tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def qa_batch(examples: list[dict[str, str]] | None = None, *, max_length: int = 64, **kwargs: Any) -> dict[str, torch.Tensor]:
    """A right-padded causal-LM batch of ``examples`` (default all of :data:`QA`) with the toy tokenizer."""
    collator = QACollator(toy_tokenizer(), max_length=max_length, **kwargs)
    return collator(QA if examples is None else examples)


#: The causal-LM families of :func:`tiny_causal_lm` (transformers config class, model class, size keywords).
LM_FAMILIES: tuple[str, ...] = ("gpt2", "opt", "neox", "phi", "qwen2", "qwen3", "gemma", "llama")


def tiny_causal_lm(family: str, seed: int = 0, **config: Any) -> Any:
    """A tiny random causal LM of ``family`` (one of :data:`LM_FAMILIES`: hidden 32, 2 layers, 4 heads) over the toy
    tokenizer's vocabulary, in eval mode; ``config`` overrides the family's config keywords (e.g. dropouts).

    The families keep their own defaults otherwise: GPT-2 and OPT have dropout 0.1, GPT-2 uses transformers'
    ``Conv1D`` layers, OPT/NeoX/Phi have their own MLP names. Nothing is downloaded.
    """
    import transformers as tf

    tok = toy_tokenizer()
    ids = {"vocab_size": len(tok), "pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}
    heads = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 128}
    kv = {**heads, "num_key_value_heads": 2, "head_dim": 8}
    specs = {
        "gpt2": (tf.GPT2Config, tf.GPT2LMHeadModel, {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 128}),
        "opt": (tf.OPTConfig, tf.OPTForCausalLM, {**heads, "ffn_dim": 64, "word_embed_proj_dim": 32}),
        "neox": (tf.GPTNeoXConfig, tf.GPTNeoXForCausalLM, heads),
        "phi": (tf.PhiConfig, tf.PhiForCausalLM, heads),
        "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM, {k: v for k, v in kv.items() if k != "head_dim"}),
        "qwen3": (tf.Qwen3Config, tf.Qwen3ForCausalLM, kv),
        "gemma": (tf.GemmaConfig, tf.GemmaForCausalLM, kv),
        "llama": (tf.LlamaConfig, tf.LlamaForCausalLM, {k: v for k, v in kv.items() if k != "head_dim"}),
    }
    if family not in specs:
        raise ValueError(f"`family` should be one of {list(specs)}, got {family!r}.")
    config_class, model_class, sizes = specs[family]
    torch.manual_seed(seed)
    return model_class(config_class(**ids, **{**sizes, **config})).eval()
