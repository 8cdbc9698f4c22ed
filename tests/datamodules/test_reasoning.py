"""Reasoning traces of the fictitious authors: rendering, fact annotations, the datamodule and the collator."""

from __future__ import annotations

import functools

import pytest
import torch

from lightning_unlearn.datamodules import (
    FictitiousAuthorsDataModule,
    ReasoningTracesDataModule,
    TraceAnalyst,
    TraceCollator,
    generate_authors,
    qa_pairs,
    reasoning_traces,
)
from lightning_unlearn.datamodules.reasoning import (
    ANSWER_PREFIX,
    ATTRIBUTE_LABELS,
    QUESTION_STEPS,
    STEP_FORMATS,
    render_trace,
    split_trace,
    states_value,
)
from lightning_unlearn.models.llm import train_tokenizer
from lightning_unlearn.tasks.causal_lm import IGNORE_INDEX

AUTHORS = generate_authors(6, seed=0)


@functools.cache
def _tokenizer():
    return train_tokenizer([f"{e['question']} {e['answer']}" for e in reasoning_traces(AUTHORS, seed=0)], vocab_size=400)


def test_every_annotated_fact_is_stated_where_the_trace_says():
    examples = reasoning_traces(AUTHORS, seed=0)
    assert len(examples) == len(AUTHORS) * len(AUTHORS[0].facts)
    for e in examples:
        roles = [s["role"] for s in e["steps"]]
        assert roles == ["question", "context", "fact", "conclusion", "answer"]
        for fact in e["facts"]:
            assert e["answer"][fact["start"] : fact["end"]] == fact["value"] == AUTHORS[e["author_index"]].facts[fact["attribute"]]
            step = e["steps"][fact["step"]]
            assert step["start"] <= fact["start"] < fact["end"] <= step["end"]
        # the context step states another fact of the same author; the others state the asked one
        context = e["steps"][1]["facts"][0]
        assert context["attribute"] != e["attribute"]
        assert all(f["attribute"] == e["attribute"] for s in e["steps"][2:] for f in s["facts"])
        assert e["answer"][e["cot_end"] :] == f"{ANSWER_PREFIX} {e['value']}."
        assert e["short_answer"] == next(q for q in qa_pairs(AUTHORS, seed=0) if q["id"] == e["id"])["answer"]


def test_traces_are_seeded_and_use_varied_templates():
    a, b, c = reasoning_traces(AUTHORS, seed=0), reasoning_traces(AUTHORS, seed=0), reasoning_traces(AUTHORS, seed=1)
    assert a == b and [e["answer"] for e in a] != [e["answer"] for e in c]
    used_questions, used_formats = set(), set()
    for e in a:
        name, label = AUTHORS[e["author_index"]].name, ATTRIBUTE_LABELS[e["attribute"]]
        first = e["steps"][0]["text"]
        used_questions |= {t for t in QUESTION_STEPS if first.endswith(t.format(name=name, label=label))}
        used_formats |= {f for f in STEP_FORMATS if first.startswith(f.format(i=1, text=""))}
    assert used_questions == set(QUESTION_STEPS) and used_formats == set(STEP_FORMATS)


def test_a_number_valued_fact_is_never_matched_in_the_step_number():
    author = generate_authors(40, seed=0)
    for a in author:
        trace = render_trace(a, "novels", seed=0)
        for fact in trace["facts"]:
            assert trace["answer"][fact["start"] : fact["end"]] == fact["value"]
            assert trace["answer"][fact["start"] - 1] not in "0123456789"


def test_render_trace_errors():
    with pytest.raises(ValueError, match=r"`attribute` should be one of .* got 'height'"):
        render_trace(AUTHORS[0], "height")
    with pytest.raises(ValueError, match=r"`context` should be another fact .* got 'genre'"):
        render_trace(AUTHORS[0], "genre", context="genre")


@pytest.mark.parametrize(
    ("text", "cot", "answer"),
    [("1. x\nAnswer: Ghent.", "1. x\n", " Ghent."), ("no answer", "no answer", ""), ("Answer: a Answer: b", "Answer: a ", " b")],
)
def test_split_trace(text, cot, answer):
    assert split_trace(text) == (cot, answer)


def test_states_value_matches_whole_words_only():
    assert states_value("born in 1912.", "1912") and not states_value("born in 1912.", "12")
    assert states_value("writes Gothic Mystery novels", "gothic mystery") and not states_value("chessboard", "chess")


def test_the_datamodule_is_the_authors_split_with_traces_as_answers():
    kwargs = dict(n_authors=6, seed=2, forget_fraction=0.34, holdout_fraction=0.0, facts_per_author=3)
    plain, traces = FictitiousAuthorsDataModule(**kwargs), ReasoningTracesDataModule(**kwargs)
    assert (traces.forget_ids, traces.retain_ids) == (plain.forget_ids, plain.retain_ids)
    assert [e["id"] for e in traces.forget_set.examples] == [e["id"] for e in plain.forget_set.examples]
    assert all(e["answer"].endswith(f"{ANSWER_PREFIX} {e['value']}.") for e in traces.forget_set.examples)
    assert not any("edited_answer" in e for e in traces.examples)


def test_with_an_analyst_only_the_forget_traces_are_edited():
    dm = ReasoningTracesDataModule(
        n_authors=6, seed=2, forget_fraction=0.34, holdout_fraction=0.0, facts_per_author=3, analyst=TraceAnalyst(retrieval=False)
    )
    assert all("edited_answer" in e for e in dm.forget_set.examples)
    assert not any("edited_answer" in e for e in dm.retain_set.examples)
    for e in dm.forget_set.examples:
        assert e["value"] not in e["edited_answer"] and "[the relevant" in e["edited_answer"]
        assert sorted(e["marked_spans"]) == sorted((f["start"], f["end"]) for f in e["facts"])
    with pytest.raises(TypeError, match="`analyst` should be a TraceAnalyst"):
        ReasoningTracesDataModule(n_authors=6, analyst="minilm")


def test_collator_marks_exactly_the_replaced_spans_tokens():
    dm = ReasoningTracesDataModule(n_authors=6, seed=0, forget_fraction=0.34, holdout_fraction=0.0, facts_per_author=3, analyst=TraceAnalyst(retrieval=False))
    tok = _tokenizer()
    collator = TraceCollator(tok)
    forget, retain = list(dm.forget_set.examples[:2]), list(dm.retain_set.examples[:2])
    batch = collator(forget + retain)
    assert {"input_ids", "labels", "edited_input_ids", "edited_labels", "span_mask"} <= set(batch)
    assert batch["span_mask"].shape == batch["labels"].shape
    assert not bool((batch["span_mask"].bool() & (batch["labels"] == IGNORE_INDEX)).any())
    for row, example in enumerate(forget):
        marked = batch["input_ids"][row][batch["span_mask"][row].bool()]
        text = tok.decode(marked)
        for start, end in example["marked_spans"]:
            assert example["answer"][start:end] in text
        # every trace token carries a label: chain of thought and answer
        answer_tokens = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX]
        assert tok.decode(answer_tokens, skip_special_tokens=True) == example["answer"]
        edited = batch["edited_labels"][row][batch["edited_labels"][row] != IGNORE_INDEX]
        assert tok.decode(edited, skip_special_tokens=True) == example["edited_answer"]
    for row in (2, 3):  # retain traces: nothing marked, the edited trace is the trace itself
        assert int(batch["span_mask"][row].sum()) == 0
        edited = batch["edited_input_ids"][row][batch["edited_attention_mask"][row].bool()]
        assert torch.equal(edited, batch["input_ids"][row][batch["attention_mask"][row].bool()])


def test_collator_needs_a_fast_tokenizer():
    class Slow:
        eos_token_id, is_fast = 0, False

    with pytest.raises(TypeError, match="`tokenizer` should be a fast tokenizer"):
        TraceCollator(Slow())
