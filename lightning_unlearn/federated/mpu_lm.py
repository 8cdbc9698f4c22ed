"""The data owner's side of MPU on a causal LM: fictitious-author QA, a tokenizer, local unlearning.

The client holds the forget set (the QA of the first ``forget_authors`` fictitious authors of
:mod:`lightning_unlearn.datamodules.authors`) and runs one of the library's LLM methods (``ga``, ``npo``,
``simnpo``, ``graddiff``, ...: :data:`lightning_unlearn.methods.METHODS`) on a perturbed copy of the server's model
through :class:`~lightning_unlearn.engine.FabricStepper`. Two models (:data:`MODELS`): ``"tiny"``, a randomly
initialised tiny Llama with a byte-level BPE trained on the authors' QA (it stands in for a released model's own
tokenizer, which both sides have), and ``"smollm2"``, SmolLM2-135M-Instruct with its own tokenizer
(:func:`lightning_unlearn.models.smollm2`, offline).

Tied weights (SmolLM2 ties ``lm_head`` to the input embeddings) travel once: :func:`model_state` leaves out every
entry that aliases an earlier one and :func:`load_model_state` loads such a state back, so each perturbed copy
carries one noise draw per real tensor.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_int, check_positive
from lightning_unlearn.engine import FabricStepper, Progress, StepBatch, UnlearningEngine, make_fabric, run_steps
from lightning_unlearn.federated.weights import State
from lightning_unlearn.tasks.base import evaluating

MODELS = ("tiny", "smollm2")
#: The tiny Llama's size settings (keyword arguments of :func:`build_lm`), as configs and messages name them.
TINY_SIZES = ("hidden", "layers", "heads")
#: Tokens per QA sequence (SmolLM2's chat template with its system prompt: up to 68 on the authors' QA).
MAX_LENGTH = 96


def _check_model(model: str) -> str:
    if model not in MODELS:
        raise ValueError(f"`model` should be one of {list(MODELS)}, got {model!r}.")
    return model


@functools.lru_cache(maxsize=4)
def authors_setup(
    n_authors: int = 4, forget_authors: int = 1, seed: int = 0, vocab_size: int = 384, model: str = "tiny"
) -> tuple[Any, tuple, tuple]:
    """``(tokenizer, forget examples, retain examples)`` of ``n_authors`` fictitious authors (deterministic); the
    tokenizer is ``model``'s (a BPE of ``vocab_size`` trained on the QA for ``"tiny"``, SmolLM2's own otherwise)."""
    from lightning_unlearn.datamodules.authors import generate_authors, qa_pairs
    from lightning_unlearn.models.llm import smollm2_tokenizer, train_tokenizer

    _check_model(model)
    check_int("forget_authors", forget_authors, minimum=1)
    if forget_authors >= n_authors:
        raise ValueError(f"`forget_authors` should be < n_authors={n_authors} to leave retain authors, got {forget_authors}.")
    qa = qa_pairs(generate_authors(n_authors, seed), seed=seed)
    if model == "smollm2":
        tokenizer = smollm2_tokenizer()
    else:
        tokenizer = train_tokenizer([f"{e['question']} {e['answer']}" for e in qa], vocab_size=vocab_size)
    forget = tuple(e for e in qa if e["author_index"] < forget_authors)
    retain = tuple(e for e in qa if e["author_index"] >= forget_authors)
    return tokenizer, forget, retain


def build_lm(tokenizer: Any, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0, model: str = "tiny") -> nn.Module:
    """The causal LM MPU runs on: the tiny Llama (built from its config, random weights of ``seed``; ``hidden``,
    ``layers``, ``heads``) or SmolLM2-135M-Instruct's pretrained weights (``model="smollm2"``; the sizes and ``seed``
    are then unused)."""
    from lightning_unlearn.models.llm import smollm2, tiny_llama

    if _check_model(model) == "smollm2":
        return smollm2()
    return tiny_llama(
        len(tokenizer), hidden_size=hidden, num_layers=layers, num_heads=heads, seed=seed,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )


def head_dim(model: nn.Module) -> int:
    """The attention head size of a ``transformers`` Llama-style model (what MPU's attention rotations act on)."""
    config = model.config
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def tied_aliases(model: nn.Module) -> set[str]:
    """The state-dict keys of ``model`` that alias an earlier entry's storage (tied weights, e.g. ``lm_head.weight``)."""
    seen: set[tuple[int, int]] = set()
    aliases = set()
    for key, value in model.state_dict().items():
        where = (value.untyped_storage().data_ptr(), value.storage_offset())
        if where in seen:
            aliases.add(key)
        seen.add(where)
    return aliases


def model_state(model: nn.Module) -> State:
    """``model``'s state dict (detached clones) without its :func:`tied_aliases`, so that every real tensor is sent,
    perturbed and updated once."""
    aliases = tied_aliases(model)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k not in aliases}


def load_model_state(model: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Load a :func:`model_state` into ``model``: every key it leaves out must be one of the model's tied aliases."""
    missing, unexpected = model.load_state_dict(dict(state), strict=False)
    untied = set(missing) - tied_aliases(model)
    if unexpected or untied:
        raise ValueError(f"the state does not fit the model: missing {sorted(untied)}, unexpected {sorted(unexpected)}.")


def _batches(tokenizer: Any, examples: Sequence[Mapping[str, Any]], batch_size: int, epochs: int, seed: int, split: str):
    from lightning_unlearn.tasks.causal_lm import QACollator

    collate = QACollator(tokenizer, max_length=MAX_LENGTH)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(examples), generator=generator).tolist()
        for i in range(0, len(order), batch_size):
            batch = collate([examples[j] for j in order[i : i + batch_size]])
            yield StepBatch(forget=batch if split == "forget" else None, retain=batch if split == "retain" else None, progress=Progress(epoch=epoch, max_epochs=epochs))


def run_method(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[Mapping[str, Any]],
    method: str,
    *,
    lr: float,
    epochs: int,
    batch_size: int = 8,
    seed: int = 0,
    split: str = "forget",
    method_args: Mapping[str, Any] | None = None,
) -> int:
    """Run the library method ``method`` (a :data:`~lightning_unlearn.methods.METHODS` name) on ``examples`` as the
    ``split`` batch, with AdamW through Fabric; returns the number of steps. ``method="ft"`` with ``split="retain"``
    is plain fine-tuning (how the server's model learned the authors)."""
    from lightning_unlearn.methods import METHODS
    from lightning_unlearn.tasks.causal_lm import CausalLMTask

    check_positive("lr", lr)
    torch.manual_seed(seed)
    task = CausalLMTask(tokenizer=tokenizer)
    unlearner = METHODS.get(method)(**dict(method_args or {}))
    unlearner.setup(model, task)
    engine = UnlearningEngine(unlearner, task)
    stepper = FabricStepper(make_fabric("cpu"), model, torch.optim.AdamW(model.parameters(), lr=lr), engine)
    model.train()
    try:
        return run_steps(engine, stepper, _batches(tokenizer, examples, batch_size, epochs, seed, split)).steps
    finally:
        unlearner.restore_dropout()


@torch.no_grad()
def mean_nll(model: nn.Module, tokenizer: Any, examples: Sequence[Mapping[str, Any]]) -> float:
    """Mean per-answer negative log-likelihood of ``examples`` (the B2-style forget / retain loss)."""
    from lightning_unlearn.tasks.causal_lm import CausalLMTask, QACollator

    task = CausalLMTask(tokenizer=tokenizer)
    batch = QACollator(tokenizer, max_length=MAX_LENGTH)(list(examples))
    with evaluating(model):
        return float(task.per_sample_loss(task.forward(model, batch), batch).mean())


def update(before: Mapping[str, Tensor], after: Mapping[str, Tensor]) -> State:
    """``after − before`` per entry (what the client sends back)."""
    return {k: after[k] - before[k] for k in before}
