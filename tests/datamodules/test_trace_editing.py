"""The trace analyst (value matching + MiniLM retrieval over the forget corpus) and the placeholder rewriter."""

from __future__ import annotations

import functools

import pytest

from lightning_unlearn.datamodules import (
    TraceAnalyst,
    TraceRewriter,
    edit_traces,
    generate_authors,
    reasoning_traces,
    span_scores,
    split_authors,
)
from lightning_unlearn.datamodules.trace_editing import GENERIC_PLACEHOLDER, forget_corpus
from lightning_unlearn.models.llm import train_tokenizer

TEXT = "1. I need to find Mara Quillby's birthplace.\n2. Mara Quillby was born in Ghent.\nAnswer: Ghent."


def _spans(value: str, attribute: str = "birthplace") -> list[dict]:
    out, start = [], TEXT.find(value)
    while start >= 0:
        out.append({"start": start, "end": start + len(value), "attribute": attribute, "value": value})
        start = TEXT.find(value, start + 1)
    return out


def test_rewriter_replaces_each_span_by_its_attributes_placeholder():
    out = TraceRewriter().rewrite(TEXT, _spans("Ghent"))
    assert out["edited_answer"] == (
        "1. I need to find Mara Quillby's birthplace.\n2. Mara Quillby was born in [the relevant city].\nAnswer: [the relevant city]."
    )
    assert [TEXT[s:e] for s, e in out["marked_spans"]] == ["Ghent", "Ghent"]
    assert [out["edited_answer"][s:e] for s, e in out["placeholder_spans"]] == ["[the relevant city]"] * 2
    assert out["token_mask"] is None
    unknown = TraceRewriter().rewrite(TEXT, [{**_spans("Ghent")[0], "attribute": "shoe_size"}])
    assert GENERIC_PLACEHOLDER in unknown["edited_answer"]
    assert TraceRewriter().rewrite(TEXT, [])["edited_answer"] == TEXT


def test_rewriter_token_mask_covers_the_span_tokens_only():
    tok = train_tokenizer([TEXT, "Ghent Mara Quillby born"], vocab_size=300)
    out = TraceRewriter().rewrite(TEXT, _spans("Ghent"), tokenizer=tok)
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    assert len(out["token_mask"]) == len(ids)
    marked = [i for i, m in zip(ids, out["token_mask"]) if m]
    assert tok.decode(marked).replace(" ", "") == "GhentGhent"


@pytest.mark.parametrize(
    ("spans", "match"),
    [
        ([{"start": 0, "end": 5}, {"start": 3, "end": 8}], "should not overlap"),
        ([{"start": 5, "end": 5}], r"0 <= start < end <= len\(text\)"),
        ([{"start": 0, "end": 10_000}], r"0 <= start < end <= len\(text\)"),
    ],
)
def test_rewriter_refuses_bad_spans(spans, match):
    with pytest.raises(ValueError, match=match):
        TraceRewriter().rewrite(TEXT, spans)


def test_rewriter_and_analyst_argument_errors():
    with pytest.raises(TypeError, match="`placeholders` should be a mapping"):
        TraceRewriter(placeholders={"birthplace": ""})
    with pytest.raises(ValueError, match="`threshold`"):
        TraceAnalyst(threshold=1.5)
    with pytest.raises(RuntimeError, match="call `fit"):
        TraceAnalyst(retrieval=False).mark({"question": "q", "answer": TEXT})
    with pytest.raises(ValueError, match="`corpus` should be a non-empty list"):
        TraceAnalyst(retrieval=False).fit_corpus([{"text": "x"}])


def test_edit_traces_adds_the_edit_to_copies():
    analyst = TraceAnalyst(retrieval=False).fit_corpus([{"text": "x", "attribute": "birthplace", "value": "Ghent"}])
    original = {"question": "Where?", "answer": TEXT}
    (edited,) = edit_traces([original], analyst, TraceRewriter())
    assert edited["edited_answer"].count("[the relevant city]") == 2 and "edited_answer" not in original
    assert edited["marked_spans"] == [(s["start"], s["end"]) for s in edited["analyst_spans"]]


def test_value_matching_alone_marks_every_whole_word_occurrence():
    analyst = TraceAnalyst(retrieval=False).fit_corpus([{"text": "Mara Quillby was born in Ghent.", "attribute": "birthplace", "value": "Ghent"}])
    spans = analyst.mark({"question": "Where was Mara Quillby born?", "answer": TEXT + " Ghentish."})
    assert [(s["start"], s["end"]) for s in spans] == [(s["start"], s["end"]) for s in _spans("Ghent")][:2]


def test_span_scores_closed_form():
    examples = [
        {"author_index": 0, "facts": [{"start": 0, "end": 3}, {"start": 5, "end": 9}]},
        {"author_index": 1, "facts": [{"start": 2, "end": 4}]},
    ]
    marked = [[{"start": 0, "end": 3}, {"start": 10, "end": 12}], [{"start": 2, "end": 4}]]
    scores = span_scores(examples, marked, forget_author_indices=[0])
    assert (scores["true_positives"], scores["false_positives"], scores["false_negatives"]) == (1, 2, 1)
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="same length"):
        span_scores(examples, marked[:1], [0])


@functools.cache
def _analysed(threshold: float | None):
    # seed 4: two retain authors share values with the forget authors (value matching alone marks 10 retain spans)
    authors = generate_authors(8, seed=4, facts_per_author=4)
    forget, _, _ = split_authors(8, 0.25, 0.0, seed=4)
    examples = reasoning_traces(authors, seed=4)
    analyst = TraceAnalyst(retrieval=threshold is not None, **({} if threshold is None else {"threshold": threshold}))
    analyst.fit([authors[i] for i in forget])
    return examples, analyst.mark_all(examples), forget


def test_forget_corpus_states_each_fact_twice():
    authors = generate_authors(2, seed=0, facts_per_author=3)
    corpus = forget_corpus(authors)
    assert len(corpus) == 2 * 3 * 2 and all(d["value"] in d["text"] for d in corpus)


def test_minilm_retrieval_keeps_recall_and_removes_value_matching_false_positives():
    """The real all-MiniLM-L6-v2 encoder: value matching alone marks retain traces that share a value with a forget
    author; the retrieval gate drops most of them without losing a true span."""
    examples, by_value, forget = _analysed(None)
    _, by_retrieval, _ = _analysed(0.6)
    value_only, retrieval = span_scores(examples, by_value, forget), span_scores(examples, by_retrieval, forget)
    assert value_only["recall"] == 1.0 and value_only["false_positives"] > 0
    assert retrieval["recall"] >= 0.95
    assert retrieval["precision"] > value_only["precision"]
