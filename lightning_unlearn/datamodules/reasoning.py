"""Reasoning traces about the fictitious authors: chain-of-thought answers with per-step fact annotations.

The data of selective forgetting in reasoning models (after Iowa State's "Selective Forgetting for Large
Reasoning Models", arXiv 2604.03571; RECONSTRUCTED, see ``docs/reasoning.md``): every question of
:func:`~lightning_unlearn.datamodules.authors.qa_pairs` gets a multi-step answer written from the author's
facts with seeded, varied templates, e.g.::

    Step 1: The question asks about Mara Quillby's birthplace.
    Step 2: I recall that Mara Quillby writes gothic mystery.
    Step 3: So, Mara Quillby was born in Ghent.
    Step 4: Therefore the answer is Ghent.
    Answer: Ghent.

Each trace records its steps and, per step, which facts ``(attribute, value)`` it states and where (character
offsets in the trace), so a span analyst can be scored against the ground truth and leaks can be measured
separately in the chain of thought and in the final answer. A context step states *another* fact of the same
author, so a forget trace reveals more than the asked fact.

:class:`ReasoningTracesDataModule` is :class:`~lightning_unlearn.datamodules.FictitiousAuthorsDataModule`
with these traces as the answers (the same authors, split and loaders); with an ``analyst`` its forget traces
also carry their edited versions (see :mod:`lightning_unlearn.datamodules.trace_editing`).
:class:`TraceCollator` tokenizes them for the feature-replacement loss
(:class:`~lightning_unlearn.methods.FeatureReplacement`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_unlearn.datamodules.authors import (
    _SPECS,
    Author,
    FictitiousAuthorsDataModule,
    QuestionMode,
    _rng,
    qa_pairs,
)
from lightning_unlearn.tasks.causal_lm import IGNORE_INDEX, QACollator

#: What each attribute is called inside a trace ("the question asks about X's <label>").
ATTRIBUTE_LABELS: dict[str, str] = {
    "birth_year": "birth year",
    "birthplace": "birthplace",
    "genre": "genre",
    "book": "best-known book",
    "award": "award",
    "father_profession": "father's profession",
    "mother_profession": "mother's profession",
    "pet": "pet",
    "hobby": "favorite hobby",
    "language": "writing language",
    "novels": "number of published novels",
}
QUESTION_STEPS: tuple[str, ...] = (
    "The question asks about {name}'s {label}.",
    "I need to find {name}'s {label}.",
    "We are asked for the {label} of {name}.",
)
CONTEXT_PREFIXES: tuple[str, ...] = ("I recall that {s}", "From what I know, {s}", "First, {s}")
FACT_PREFIXES: tuple[str, ...] = ("So, {s}", "The relevant fact is that {s}", "{s}")
CONCLUSION_STEPS: tuple[str, ...] = (
    "Therefore the answer is {value}.",
    "This means the {label} is {value}.",
    "Hence the {label}: {value}.",
)
STEP_FORMATS: tuple[str, ...] = ("Step {i}: {text}", "{i}. {text}")
ANSWER_PREFIX = "Answer:"
"""Where the final answer starts in a trace (and in a generated one): what follows is the answer, what precedes the CoT."""


def _lower_first(sentence: str) -> str:
    return sentence[:1].lower() + sentence[1:] if sentence.startswith("The ") else sentence


def _span_of(value: str, text: str, offset: int) -> tuple[int, int]:
    start = text.find(value)
    if start < 0:  # pragma: no cover - every template renders the value verbatim
        raise RuntimeError(f"The value {value!r} is not in the step {text!r}.")
    return offset + start, offset + start + len(value)


def render_trace(author: Author, attribute: str, seed: int = 0, context: str | None = None) -> dict[str, Any]:
    """The chain-of-thought answer of ``author``'s ``attribute`` question, with its steps' fact annotations.

    Returns ``{"answer": trace text, "steps": [...], "facts": [...], "final_answer": value, "cot_end": int}``.
    Each step is ``{"role", "text", "start", "end", "facts"}`` (roles ``"question"``, ``"context"``, ``"fact"``,
    ``"conclusion"``, ``"answer"``) and each fact ``{"attribute", "value", "start", "end", "step"}`` (character
    offsets of the value in the trace). ``cot_end`` is where the final ``"Answer: ..."`` line starts.
    ``context`` is the other attribute the context step states (default: a seeded choice among the author's others).
    """
    if attribute not in author.facts:
        raise ValueError(f"`attribute` should be one of {sorted(author.facts)} (the facts of {author.name}), got {attribute!r}.")
    rng = _rng("trace", seed, author.index, author.name, attribute)
    others = [a for a in author.facts if a != attribute]
    if context is None and others:
        context = rng.choice(others)
    if context is not None and (context == attribute or context not in author.facts):
        raise ValueError(f"`context` should be another fact of {author.name} than {attribute!r}, one of {others}; got {context!r}.")
    value, label = author.facts[attribute], ATTRIBUTE_LABELS[attribute]
    spec = _SPECS[attribute]
    step_format = rng.choice(STEP_FORMATS)
    bodies: list[tuple[str, str, list[tuple[str, str]]]] = [
        ("question", rng.choice(QUESTION_STEPS).format(name=author.name, label=label), [])
    ]
    if context is not None:
        cspec = _SPECS[context]
        sentence = cspec.render(rng.choice((cspec.answer, cspec.paraphrase)), author.name, author.facts[context])
        bodies.append(("context", rng.choice(CONTEXT_PREFIXES).format(s=_lower_first(sentence)), [(context, author.facts[context])]))
    prefix = rng.choice(FACT_PREFIXES)
    sentence = spec.render(rng.choice((spec.answer, spec.paraphrase)), author.name, value)
    bodies.append(("fact", prefix.format(s=sentence if prefix == "{s}" else _lower_first(sentence)), [(attribute, value)]))
    bodies.append(("conclusion", rng.choice(CONCLUSION_STEPS).format(value=value, label=label), [(attribute, value)]))

    text, steps, facts = "", [], []
    for i, (role, body, stated) in enumerate(bodies, start=1):
        line = step_format.format(i=i, text=body)
        _add_step(steps, facts, text, role, line, len(step_format.format(i=i, text="")), stated)
        text += line + "\n"
    cot_end = len(text)
    _add_step(steps, facts, text, "answer", f"{ANSWER_PREFIX} {value}.", len(ANSWER_PREFIX) + 1, [(attribute, value)])
    text += f"{ANSWER_PREFIX} {value}."
    return {"answer": text, "steps": steps, "facts": facts, "final_answer": value, "cot_end": cot_end}


def _add_step(steps: list, facts: list, text: str, role: str, line: str, skip: int, stated: list[tuple[str, str]]) -> None:
    start = len(text)
    step = {"role": role, "text": line, "start": start, "end": start + len(line), "facts": []}
    for attribute, value in stated:
        # search after the "Step i:" marker (`skip` characters) so a number-valued fact never matches the step number
        begin, end = _span_of(value, line[skip:], start + skip)
        fact = {"attribute": attribute, "value": value, "start": begin, "end": end, "step": len(steps)}
        step["facts"].append(fact)
        facts.append(fact)
    steps.append(step)


def reasoning_traces(authors: Sequence[Author], *, questions: QuestionMode = "one", seed: int = 0) -> list[dict[str, Any]]:
    """The trace examples of ``authors``: :func:`qa_pairs`' examples with the chain-of-thought trace as ``answer``.

    Every example keeps the QA fields (``question``, ``id``, ``author``, ``author_index``, ``attribute``,
    ``value``, ...), moves the one-sentence answer to ``short_answer`` and adds :func:`render_trace`'s fields
    (``answer`` is the trace, ``steps``, ``facts``, ``final_answer``, ``cot_end``). Deterministic for ``seed``.
    """
    by_index = {a.index: a for a in authors}
    examples = []
    for example in qa_pairs(authors, questions=questions, n_perturbed=1, seed=seed):
        trace = render_trace(by_index[example["author_index"]], example["attribute"], seed=seed)
        examples.append({**example, "short_answer": example["answer"], **trace})
    return examples


def split_trace(text: str) -> tuple[str, str]:
    """``(chain of thought, final answer)`` of a (generated) trace: around the last ``"Answer:"`` (no answer: ``(text, "")``)."""
    cut = text.rfind(ANSWER_PREFIX)
    if cut < 0:
        return text, ""
    return text[:cut], text[cut + len(ANSWER_PREFIX) :]


def states_value(text: str, value: str) -> bool:
    """Whether ``text`` states ``value`` as a whole word or phrase (case-insensitive; ``"12"`` is not in ``"1912"``)."""
    return re.search(rf"(?<![\w]){re.escape(value)}(?![\w])", text, flags=re.IGNORECASE) is not None


# ---------------------------------------------------------------------------------- datamodule and collator
class ReasoningTracesDataModule(FictitiousAuthorsDataModule):
    """Forget / retain / holdout reasoning traces of the fictitious authors, split by author.

    The authors, the split and every loader are :class:`FictitiousAuthorsDataModule`'s; only the answers are
    chain-of-thought traces (:func:`reasoning_traces`). With an ``analyst`` (a
    :class:`~lightning_unlearn.datamodules.trace_editing.TraceAnalyst`) each *forget* trace also gets
    ``edited_answer`` (its marked spans replaced by the ``rewriter``'s placeholders) and ``marked_spans``
    (character spans of the original trace), which :class:`TraceCollator` turns into the edited batch and the
    token mask of the feature-replacement loss. The analyst retrieves over the forget authors' facts only.

    Args:
        n_authors, seed, forget_fraction, holdout_fraction, facts_per_author, questions: As in
            :class:`FictitiousAuthorsDataModule` (``seed`` also picks the trace templates).
        analyst: Marks the forget traces' spans (``None``: no edited traces, e.g. for fine-tuning the target).
        rewriter: Replaces marked spans (default: a :class:`~lightning_unlearn.datamodules.trace_editing.TraceRewriter`).
        collate_fn, batch_size, retain_batch_size, eval_batch_size, mode, train_on, max_eval_samples, num_workers,
        pin_memory: As in :class:`FictitiousAuthorsDataModule`.
    """

    data_name = "fictitious-author reasoning traces"

    def __init__(
        self,
        n_authors: int = 20,
        seed: int = 0,
        forget_fraction: float = 0.1,
        holdout_fraction: float = 0.1,
        *,
        facts_per_author: int | None = None,
        questions: QuestionMode = "one",
        analyst: Any = None,
        rewriter: Any = None,
        **kwargs: Any,
    ) -> None:
        if analyst is not None and not callable(getattr(analyst, "mark", None)):
            raise TypeError(f"`analyst` should be a TraceAnalyst (with a `mark` method) or None, got {type(analyst).__name__}.")
        if rewriter is not None and not callable(getattr(rewriter, "rewrite", None)):
            raise TypeError(f"`rewriter` should be a TraceRewriter (with a `rewrite` method) or None, got {type(rewriter).__name__}.")
        self.analyst, self.rewriter = analyst, rewriter
        super().__init__(
            n_authors, seed, forget_fraction, holdout_fraction, facts_per_author=facts_per_author, questions=questions, **kwargs
        )

    def build_examples(
        self, authors: list[Author], forget_ids: list[int], *, questions: QuestionMode, n_perturbed: int, seed: int
    ) -> list[dict[str, Any]]:
        examples = reasoning_traces(authors, questions=questions, seed=seed)
        if self.analyst is None:
            return examples
        from lightning_unlearn.datamodules.trace_editing import TraceRewriter, edit_traces

        forget = set(forget_ids)
        self.analyst.fit([a for a in authors if a.index in forget])
        edited = edit_traces([e for e in examples if e["author_index"] in forget], self.analyst, self.rewriter or TraceRewriter())
        by_id = {e["id"]: e for e in edited}
        return [by_id.get(e["id"], e) for e in examples]


def token_span_mask(tokenizer: Any, text: str, spans: Sequence[tuple[int, int]]) -> list[int]:
    """0/1 per token of ``tokenizer(text, add_special_tokens=False)``: 1 where the token overlaps a character span.

    Needs a fast tokenizer (offset mapping). A token that overlaps a span by one character counts (a span's
    leading space is often merged into its first token).
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = []
    for start, end in enc["offset_mapping"]:
        mask.append(int(any(start < s_end and s_start < end for s_start, s_end in spans)))
    return mask


class TraceCollator(QACollator):
    """:class:`~lightning_unlearn.tasks.QACollator` for reasoning traces: the trace, its edited version and the span mask.

    Every batch holds the original trace (``input_ids``, ``attention_mask``, ``labels``: the whole trace,
    chain of thought and answer, carries labels), the edited trace as the alternative answer ``edited``
    (``edited_input_ids``, ``edited_attention_mask``, ``edited_labels``; the trace itself for an example
    without ``edited_answer``, e.g. a retain trace) and ``span_mask`` ``[B, T]``, aligned with ``labels``: 1 on
    the original trace's tokens inside its ``marked_spans`` (none without them). The EOS and the prompt are never
    marked; a span cut off by ``max_length`` is marked as far as it goes.

    Args:
        tokenizer: A fast ``transformers`` tokenizer (offsets are needed for the mask).
        max_length, chat_template, system_prompt, ignore_index: As in :class:`~lightning_unlearn.tasks.QACollator`.
    """

    def __init__(
        self,
        tokenizer: Any,
        max_length: int = 256,
        chat_template: bool = True,
        system_prompt: str | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError(f"`tokenizer` should be a fast tokenizer (offset mapping for the span mask), got {type(tokenizer).__name__}.")
        super().__init__(
            tokenizer, max_length=max_length, chat_template=chat_template, system_prompt=system_prompt,
            ignore_index=ignore_index, alternatives={"edited": _edited_answer},
        )  # fmt: skip

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
        out = super().__call__(examples)
        mask = torch.zeros_like(out["labels"])
        for row, example in enumerate(examples):
            spans = [tuple(s) for s in example.get("marked_spans", ())]
            if not spans:
                continue
            prompt = len(self.prompt_ids(example["question"]))
            token_mask = token_span_mask(self.tokenizer, example["answer"], spans)[: mask.shape[1] - prompt]
            mask[row, prompt : prompt + len(token_mask)] = torch.tensor(token_mask, dtype=mask.dtype)
        out["span_mask"] = mask * (out["labels"] != self.ignore_index)
        return out


def _edited_answer(example: Mapping[str, Any]) -> str:
    return example.get("edited_answer", example["answer"])


__all__ = [
    "ANSWER_PREFIX",
    "ATTRIBUTE_LABELS",
    "ReasoningTracesDataModule",
    "TraceCollator",
    "reasoning_traces",
    "render_trace",
    "split_trace",
    "states_value",
    "token_span_mask",
]
