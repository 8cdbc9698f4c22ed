"""Config factories for B2's quick scale (a tiny Llama and its trained tokenizer saved by ``b2_llm.Backbone``).

Importable as ``evaluation._quick`` (``tests/`` is on ``sys.path``), so a LightningCLI config can name them as
``class_path``; they build exactly what ``benchmarks/b2_llm.py``'s ``Backbone`` builds.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def tokenizer(path: str) -> Any:
    """The tokenizer saved under ``path`` (``save_pretrained``), with the toy chat template if it lacks one."""
    from transformers import PreTrainedTokenizerFast

    from lightning_unlearn.models.llm import TOY_CHAT_TEMPLATE

    tok = PreTrainedTokenizerFast.from_pretrained(path)
    if not tok.chat_template:
        tok.chat_template = TOY_CHAT_TEMPLATE
    return tok


def tiny_model(tokenizer_path: str, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4, seed: int = 0) -> nn.Module:
    """A randomly initialised tiny Llama over the tokenizer's vocabulary, as ``b2_llm.Backbone.build``."""
    from lightning_unlearn.models import tiny_llama

    tok = tokenizer(tokenizer_path)
    return tiny_llama(
        len(tok),
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        seed=seed,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
