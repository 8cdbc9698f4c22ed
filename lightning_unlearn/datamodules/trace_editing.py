"""The analyst and the rewriter of selective forgetting in reasoning traces (RECONSTRUCTED).

After "Selective Forgetting for Large Reasoning Models" (Iowa State, arXiv 2604.03571; no code found, the
spec is ``shared/METHODS.md`` §9): an *analyst* marks the spans of a chain-of-thought trace that reveal
forget knowledge, using retrieval over the forget corpus; a *rewriter* replaces each marked span by a
placeholder that keeps the step's logical role. The paper's analysts are several LLM agents with RAG; here
(reconstructed, offline, on 2 CPU cores) the analyst is

1. **value matching**: every whole-word occurrence of a forget fact's value in the trace is a candidate span;
2. **retrieval** (all-MiniLM-L6-v2, :func:`lightning_unlearn.anchors.text.encode_texts`): each line of the
   trace, prefixed with the question, retrieves its ``top_k`` nearest sentences of the forget corpus (each
   forget fact written in the dataset's answer and paraphrase templates); a candidate is marked when a
   retrieved sentence with cosine similarity at least ``threshold`` states that value.

``retrieval=False`` keeps step 1 alone (the value-matching ablation). :func:`span_scores` measures the
analyst's span precision and recall against the generator's fact annotations
(:func:`lightning_unlearn.datamodules.reasoning.render_trace`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from lightning_unlearn._errors import check_fraction, check_int
from lightning_unlearn.datamodules.authors import _SPECS, Author

#: The rewriter's placeholder per attribute: the step keeps its role ("X was born in [the relevant city]").
PLACEHOLDERS: dict[str, str] = {
    "birth_year": "[the relevant year]",
    "birthplace": "[the relevant city]",
    "genre": "[the relevant genre]",
    "book": "[the relevant book]",
    "award": "[the relevant award]",
    "father_profession": "[the relevant profession]",
    "mother_profession": "[the relevant profession]",
    "pet": "[the relevant animal]",
    "hobby": "[the relevant hobby]",
    "language": "[the relevant language]",
    "novels": "[the relevant number]",
}
GENERIC_PLACEHOLDER = "[the relevant fact]"


def forget_corpus(authors: Sequence[Author]) -> list[dict[str, str]]:
    """The retrieval corpus: every fact of ``authors`` in its answer and paraphrase sentences,
    ``[{"text", "attribute", "value", "author"}]``."""
    docs = []
    for author in authors:
        for attribute, value in author.facts.items():
            spec = _SPECS[attribute]
            for template in (spec.answer, spec.paraphrase):
                docs.append({"text": spec.render(template, author.name, value), "attribute": attribute, "value": value, "author": author.name})
    return docs


def _value_pattern(value: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w]){re.escape(value)}(?![\w])")


class TraceAnalyst:
    """Marks the spans of reasoning traces that state forget facts: value matching gated by MiniLM retrieval.

    Call :meth:`fit` with the forget authors (or :meth:`fit_corpus` with documents), then :meth:`mark` /
    :meth:`mark_all`. A span is ``{"start", "end", "attribute", "value", "score"}`` (character offsets in the
    trace; ``score`` the cosine similarity of the retrieved sentence that supports it, 1.0 without retrieval).

    Args:
        threshold: Least cosine similarity of a supporting retrieved sentence, in ``(0, 1]``.
        top_k: Retrieved sentences per trace line.
        retrieval: ``False``: mark every value match (no encoder is loaded).
        model_path: Sentence encoder folder (default: the installed all-MiniLM-L6-v2).
    """

    def __init__(self, threshold: float = 0.5, top_k: int = 3, retrieval: bool = True, model_path: str | None = None) -> None:
        check_fraction("threshold", threshold)
        check_int("top_k", top_k)
        self.threshold, self.top_k, self.retrieval, self.model_path = float(threshold), top_k, bool(retrieval), model_path
        self.corpus: list[dict[str, str]] = []
        self._embeddings: Any = None

    def fit(self, authors: Sequence[Author]) -> TraceAnalyst:
        """Index the facts of the forget ``authors`` (:func:`forget_corpus`)."""
        return self.fit_corpus(forget_corpus(authors))

    def fit_corpus(self, corpus: Sequence[Mapping[str, str]]) -> TraceAnalyst:
        """Index ``corpus``: ``{"text", "attribute", "value"}`` documents (at least one)."""
        if not corpus or not all(isinstance(d, Mapping) and {"text", "attribute", "value"} <= set(d) for d in corpus):
            raise ValueError("`corpus` should be a non-empty list of {'text', 'attribute', 'value'} documents.")
        self.corpus = [dict(d) for d in corpus]
        if self.retrieval:
            from lightning_unlearn.anchors.text import encode_texts

            self._embeddings = encode_texts([d["text"] for d in self.corpus], self.model_path)
        return self

    def mark(self, example: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The marked spans of one ``{"question", "answer"}`` trace, sorted and non-overlapping."""
        return self.mark_all([example])[0]

    def mark_all(self, examples: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
        """:meth:`mark` for many traces, with one batched encoder pass over their lines."""
        if not self.corpus:
            raise RuntimeError("The analyst has no forget corpus; call `fit(forget_authors)` or `fit_corpus(...)` first.")
        values = sorted({d["value"] for d in self.corpus}, key=len, reverse=True)
        attribute_of = {}
        for d in self.corpus:
            attribute_of.setdefault(d["value"], d["attribute"])
        lines: list[tuple[int, int, str]] = []  # (example, line start, line text)
        for i, example in enumerate(examples):
            text, start = example["answer"], 0
            for line in text.split("\n"):
                lines.append((i, start, line))
                start += len(line) + 1
        supported: list[dict[str, float]] = [{} for _ in lines]  # per line: value -> best supporting similarity
        if self.retrieval and lines:
            from lightning_unlearn.anchors.text import encode_texts

            queries = [f"{examples[i]['question']} {line}" for i, _, line in lines]
            sims = encode_texts(queries, self.model_path) @ self._embeddings.T
            top = sims.topk(min(self.top_k, sims.shape[1]), dim=-1)
            for row, (scores, idx) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
                for score, j in zip(scores, idx):
                    if score >= self.threshold:
                        value = self.corpus[j]["value"]
                        supported[row][value] = max(score, supported[row].get(value, 0.0))
        out: list[list[dict[str, Any]]] = [[] for _ in examples]
        for row, (i, start, line) in enumerate(lines):
            taken: list[tuple[int, int]] = []
            for value in values:  # longest first: "The Salt Lantern" before "Lantern"
                if self.retrieval and value not in supported[row]:
                    continue
                for match in _value_pattern(value).finditer(line):
                    begin, end = start + match.start(), start + match.end()
                    if any(begin < e and b < end for b, e in taken):
                        continue
                    taken.append((begin, end))
                    score = supported[row][value] if self.retrieval else 1.0
                    out[i].append({"start": begin, "end": end, "attribute": attribute_of[value], "value": value, "score": score})
        return [sorted(spans, key=lambda s: s["start"]) for spans in out]


class TraceRewriter:
    """Replaces marked spans by placeholders that keep the step's role ("X was born in [the relevant city].").

    Args:
        placeholders: ``{attribute: placeholder}`` (default :data:`PLACEHOLDERS`); an attribute without one gets
            ``"[the relevant fact]"``.
    """

    def __init__(self, placeholders: Mapping[str, str] | None = None) -> None:
        if placeholders is not None and not (
            isinstance(placeholders, Mapping) and all(isinstance(k, str) and isinstance(v, str) and v for k, v in placeholders.items())
        ):
            raise TypeError(f"`placeholders` should be a mapping {{attribute: non-empty str}} or None, got {placeholders!r}.")
        self.placeholders = dict(PLACEHOLDERS if placeholders is None else placeholders)

    def rewrite(self, text: str, spans: Sequence[Mapping[str, Any]], tokenizer: Any = None) -> dict[str, Any]:
        """The edited trace and where its replacements are.

        Returns ``{"edited_answer", "marked_spans", "placeholder_spans", "token_mask"}``: ``marked_spans`` are the
        replaced ``(start, end)`` of ``text``, ``placeholder_spans`` the placeholders' in the edited text, and
        ``token_mask`` (with a fast ``tokenizer``; else ``None``) is 0/1 per token of ``text``, 1 on the replaced
        spans' tokens: the tokens the unlikelihood term suppresses.
        """
        ordered = sorted(spans, key=lambda s: s["start"])
        for a, b in zip(ordered, ordered[1:]):
            if b["start"] < a["end"]:
                raise ValueError(f"`spans` should not overlap; got {a['start'], a['end']} and {b['start'], b['end']}.")
        pieces, cursor, marked, placed, length = [], 0, [], [], 0
        for span in ordered:
            start, end = int(span["start"]), int(span["end"])
            if not 0 <= start < end <= len(text):
                raise ValueError(f"A span should satisfy 0 <= start < end <= len(text) = {len(text)}; got ({start}, {end}).")
            placeholder = self.placeholders.get(span.get("attribute"), GENERIC_PLACEHOLDER)
            pieces.append(text[cursor:start])
            length += start - cursor
            placed.append((length, length + len(placeholder)))
            pieces.append(placeholder)
            length += len(placeholder)
            marked.append((start, end))
            cursor = end
        pieces.append(text[cursor:])
        token_mask = None
        if tokenizer is not None:
            from lightning_unlearn.datamodules.reasoning import token_span_mask

            token_mask = token_span_mask(tokenizer, text, marked)
        return {"edited_answer": "".join(pieces), "marked_spans": marked, "placeholder_spans": placed, "token_mask": token_mask}


def edit_traces(examples: Sequence[Mapping[str, Any]], analyst: TraceAnalyst, rewriter: TraceRewriter) -> list[dict[str, Any]]:
    """Copies of ``examples`` with ``edited_answer``, ``marked_spans`` and ``analyst_spans`` (the analyst's full spans)."""
    out = []
    for example, spans in zip(examples, analyst.mark_all(examples)):
        edit = rewriter.rewrite(example["answer"], spans)
        out.append({**example, "edited_answer": edit["edited_answer"], "marked_spans": edit["marked_spans"], "analyst_spans": spans})
    return out


def span_scores(
    examples: Sequence[Mapping[str, Any]], marked: Sequence[Sequence[Mapping[str, Any]]], forget_author_indices: Sequence[int]
) -> dict[str, float]:
    """Span precision / recall of ``marked`` against the traces' fact annotations.

    A true span is a fact of a trace whose author is in ``forget_author_indices`` (every fact a forget trace
    states, in the chain of thought and the answer); a retain trace has none, so any span marked there is a
    false positive. A marked span counts as correct only when its ``(start, end)`` equals a true span's.
    """
    if len(examples) != len(marked):
        raise ValueError(f"`examples` and `marked` should have the same length, got {len(examples)} and {len(marked)}.")
    forget = set(forget_author_indices)
    tp = fp = fn = 0
    for example, spans in zip(examples, marked):
        truth = {(f["start"], f["end"]) for f in example["facts"]} if example["author_index"] in forget else set()
        got = {(int(s["start"]), int(s["end"])) for s in spans}
        tp += len(got & truth)
        fp += len(got - truth)
        fn += len(truth - got)
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
    }


__all__ = ["GENERIC_PLACEHOLDER", "PLACEHOLDERS", "TraceAnalyst", "TraceRewriter", "edit_traces", "forget_corpus", "span_scores"]
