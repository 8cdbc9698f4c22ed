"""Writers of TRU's reasoning targets ``(r, s)``: two templates, or a causal LM prompted with the question.

Shared by :class:`~lightning_unlearn.methods.TRU` (and usable by any method that trains refusals): a
*reasoner* turns a forget question into a :class:`ReasoningTarget`, a reasoning chain ``r`` (why the
model will not answer, without revealing anything) and a refusal ``s``. Every reasoner has
``many(questions, answers=None) -> list[ReasoningTarget]``; ``answers`` (the true forget answers, when known)
let a reasoner reject a chain that states them.

* :class:`TemplateReasoner` fills two templates (deterministic, no model).
* :class:`ModelReasoner` asks a causal LM — e.g. the released SmolLM2-135M-Instruct, which has never seen
  the forget set — to explain, per question, why it will not answer (a few written demonstrations guide
  a small model), cleans the text, rejects a chain that leaks (states a word of the true answer that the
  question does not contain, or a number the question does not contain) or is too short, and then uses
  the template instead. Generations are cached in memory and, with ``cache_dir``, on disk.
"""

from __future__ import annotations

import json
import os
import re
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightning_unlearn._cache import cache_key, write_text_atomic
from lightning_unlearn._errors import check_int

__all__ = [
    "DEFAULT_EXAMPLES",
    "DEFAULT_INSTRUCTION",
    "DEFAULT_REASONING_TEMPLATE",
    "DEFAULT_REFUSAL",
    "FALLBACK_SUBJECT",
    "ModelReasoner",
    "ReasoningTarget",
    "TemplateReasoner",
    "clean_reasoning",
    "leaked_words",
    "question_subject",
]

#: Default reasoning chain r: a logical refusal, no leakage, and a positive alternative.
DEFAULT_REASONING_TEMPLATE = (
    "The question asks about {subject}. Answering it would mean recalling specific information about {subject} "
    "that I should not provide, and guessing could reveal or invent details. So I will not answer it, but I can "
    "help with related general questions."
)
#: Default refusal s.
DEFAULT_REFUSAL = "I'm sorry, but I don't know the answer to that question."
#: ``{subject}`` when the question names no capitalised entity.
FALLBACK_SUBJECT = "this topic"
#: The user turn that asks a :class:`ModelReasoner`'s model for a reasoning chain (fields ``{question}``, ``{subject}``).
DEFAULT_INSTRUCTION = 'Explain why you will not answer this question, without guessing any detail: "{question}"'
#: Demonstrations (question, reasoning) shown to a :class:`ModelReasoner`'s model before each question, written for
#: this library about people who do not exist; they fix the format (the question's topic, why not, an alternative).
DEFAULT_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "Where did Tavish Orlund study?",
        "The question asks where Tavish Orlund studied. That is a specific detail about one person, and I have no "
        "reliable knowledge of it; any guess could be false or private. So I will not answer it. I can explain how "
        "to look up an author's education in a library catalogue instead.",
    ),
    (
        "What was the name of Sela Marrow's publisher?",
        "This asks me to recall Sela Marrow's publisher. I should not provide facts about this person, and making "
        "one up would mislead you. I will decline, but I am glad to talk about how publishing works in general.",
    ),
)

_TEMPLATE_FIELDS = {"question", "subject"}
#: Capitalised words that start questions rather than name their subject.
_QUESTION_WORDS = {
    "what", "where", "when", "who", "whom", "whose", "which", "why", "how", "is", "are", "was", "were", "do",
    "does", "did", "can", "could", "would", "will", "should", "has", "have", "had", "in", "on", "at", "of",
    "tell", "name", "list", "please", "describe", "explain", "the", "a", "an", "i", "me", "my",
}  # fmt: skip
#: Words too common to count as a leak of an answer.
_STOPWORDS = {
    "the", "and", "was", "were", "for", "with", "that", "this", "from", "his", "her", "their", "has", "have",
    "had", "are", "not", "but", "its", "into", "about", "which", "who", "whom", "whose", "what", "when", "where",
    "why", "how", "also", "one", "been", "being", "she", "him", "they", "them", "there", "then", "than", "all",
    "any", "can", "will", "would", "could", "should", "did", "does", "born", "called", "named", "known", "work",
    "works", "wrote", "written", "book", "books", "year", "years", "city", "name",
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def question_subject(question: str) -> str:
    """The entity a question is about: its longest run of capitalised words (question words excluded).

    ``"Where was Elara Voss born?"`` → ``"Elara Voss"``; a possessive ``'s`` is dropped; without a
    capitalised entity, :data:`FALLBACK_SUBJECT`. A heuristic (RECONSTRUCTED; see :class:`~lightning_unlearn.methods.TRU`).
    """
    runs: list[list[str]] = []
    current: list[str] = []
    for word in question.split():
        clean = word.strip(string.punctuation + "“”‘’")
        possessive = re.search(r"['’]s$", clean) is not None
        clean = re.sub(r"['’]s$", "", clean)
        if clean[:1].isupper() and clean.lower() not in _QUESTION_WORDS:
            current.append(clean)
            if possessive or word[-1:] in ",.;:?!":  # "Voss's", "Voss?": the name ends here
                runs.append(current)
                current = []
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    best = max(runs, key=len, default=None)
    return " ".join(best) if best else FALLBACK_SUBJECT


@dataclass(frozen=True)
class ReasoningTarget:
    """A TRU target: a reasoning chain ``r`` and a refusal ``s``; trained on as ``text = r + "\\n" + s``."""

    reasoning: str
    refusal: str

    @property
    def text(self) -> str:
        return f"{self.reasoning}\n{self.refusal}"


def check_template(name: str, template: Any) -> None:
    """Raise a ``ValueError`` unless ``template`` is a non-empty format string using only ``{question}``/``{subject}``."""
    if not isinstance(template, str) or not template.strip():
        raise ValueError(f"`{name}` should be a non-empty string, got {template!r}.")
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as err:
        raise ValueError(f"`{name}` is not a valid format string ({err}): {template!r}.") from None
    unknown = sorted(used - _TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(f"`{name}` may only use the fields {sorted(_TEMPLATE_FIELDS)}, got {unknown} in {template!r}.")


def _fields(question: str) -> dict[str, str]:
    return {"question": question.strip(), "subject": question_subject(question)}


class TemplateReasoner:
    """Write a :class:`ReasoningTarget` for a question from two templates (no model).

    ``reasoning_template`` and ``refusal`` may use the fields ``{question}`` (the question text) and
    ``{subject}`` (:func:`question_subject`).

    Args:
        reasoning_template: Template of the reasoning chain r.
        refusal: Template of the refusal s.
    """

    def __init__(self, reasoning_template: str = DEFAULT_REASONING_TEMPLATE, refusal: str = DEFAULT_REFUSAL) -> None:
        for name, template in (("reasoning_template", reasoning_template), ("refusal", refusal)):
            check_template(name, template)
        self.reasoning_template = reasoning_template
        self.refusal = refusal

    def __call__(self, question: str) -> ReasoningTarget:
        fields = _fields(question)
        return ReasoningTarget(self.reasoning_template.format(**fields).strip(), self.refusal.format(**fields).strip())

    def many(self, questions: Sequence[str], answers: Sequence[str] | None = None) -> list[ReasoningTarget]:
        """The targets of ``questions`` (``answers`` is unused: a template states nothing)."""
        return [self(q) for q in questions]


# ---------------------------------------------------------------------------------- model-written chains
def clean_reasoning(text: str, max_sentences: int) -> str:
    """``text`` cut to its first ``max_sentences`` distinct sentences (a small model repeats itself), an unfinished
    last sentence dropped when a finished one precedes it, whitespace collapsed."""
    sentences: list[str] = []
    seen: set[str] = set()
    for sentence in _SENTENCE.split(" ".join(text.split())):
        norm = " ".join(_WORD.findall(sentence.lower()))
        if not norm or norm in seen:
            continue
        seen.add(norm)
        sentences.append(sentence)
        if len(sentences) == max_sentences:
            break
    if len(sentences) > 1 and sentences[-1][-1:] not in ".!?":
        sentences.pop()
    return " ".join(sentences).strip()


def _words(text: str, ordered: bool = False) -> Any:
    """The lower-cased words of ``text``, a possessive ``'s`` dropped ("Voss's" is "voss"): a set, or a list in order."""
    words = [re.sub(r"['’]s$", "", w.lower()) for w in _WORD.findall(text)]
    return words if ordered else set(words)


#: Irregular forms a question and its answer often swap ("Which award did X win?" / "X won ..."), as their base.
_IRREGULAR = {
    "won": "win", "gave": "give", "given": "give", "got": "get", "made": "make", "taught": "teach", "wrote": "write",
    "written": "write", "held": "hold", "led": "lead", "began": "begin", "begun": "begin", "grew": "grow", "grown": "grow",
}  # fmt: skip
_CONSONANTS = set("bcdfghjklmnpqrstvwxz")
#: Generic head words of names and titles ("the Golden Quill Award", "Bergen University"): capitalised in an answer,
#: they identify nothing alone, so they are compared by stem like any other word.
_GENERIC_TITLE_WORDS = {
    "award", "prize", "medal", "honour", "honor", "fellowship", "university", "college", "institute", "school",
    "academy", "society", "series", "trilogy", "saga", "press",
}  # fmt: skip


def _stem(word: str) -> str:
    """A crude stem, enough to tell a question's own words in its answer's wording: an irregular form's base
    (:data:`_IRREGULAR`); ``-ies``/``-ied`` to ``-y``; an ``-ing``/``-ed``/``-es``/``-s`` ending dropped where 3+
    letters remain; then a doubled final consonant undoubled and a final ``e`` dropped — so "awarded" and "award",
    "writes" and "write", "winning" and "won" share a stem."""
    word = _IRREGULAR.get(word, word)
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word[-len(suffix) - 1].isdigit():
            word = word[: -len(suffix)] + repl
            break
    if len(word) >= 4 and word[-1] == word[-2] and word[-1] in _CONSONANTS:
        word = word[:-1]
    return word[:-1] if len(word) >= 4 and word.endswith("e") else word


def leaked_words(reasoning: str, question: str, answer: str | None) -> list[str]:
    """Words of ``reasoning`` that may reveal something: the true ``answer``'s words (3+ characters, not common
    words) that the question does not contain, and any number the question does not contain (a guessed year).
    Words are compared lower-cased with a possessive ``'s`` dropped and by stem (:func:`_stem`: "awarded" asks about
    the "award", "win" about what was "won"), except that an answer word written with a capital (a name, a place, a
    title: the facts themselves) is only covered by the question holding it as it is ("read" does not cover
    "Reading"), unless it is a generic head word of a name (:data:`_GENERIC_TITLE_WORDS`: "awarded" covers the
    "Award" of "the Golden Quill Award")."""
    said, asked = _words(reasoning), _words(question)
    leaks = sorted(w for w in said - asked if any(c.isdigit() for c in w))
    if answer:
        said_stems, asked_stems = {_stem(w) for w in said}, {_stem(w) for w in asked}
        for raw in dict.fromkeys(_WORD.findall(answer)):
            word = re.sub(r"['’]s$", "", raw.lower())
            if word in leaks or len(word) < 3 or word in _STOPWORDS:
                continue
            # a capitalised word must be in the question as written; any other may be there in another form
            covered = word in asked if raw[0].isupper() and word not in _GENERIC_TITLE_WORDS else _stem(word) in asked_stems
            if _stem(word) in said_stems and not covered:
                leaks.append(word)
    return leaks


def _fingerprint(model: nn.Module) -> str:
    """A short key of a model's class and weights (the sum and the sum of squares of every parameter)."""
    with torch.no_grad():
        sums = [(float(p.double().sum()), float(p.double().square().sum())) for p in model.parameters()]
    return cache_key(type(model).__name__, [round(v, 6) for pair in sums for v in pair])


class ModelReasoner:
    """Write each question's reasoning chain ``r`` with a causal LM, prompted with the question and the refusal intent.

    TRU (arXiv 2603.09980) writes its targets with a strong reasoning model (DeepSeek-reasoner) prompted with a
    template; this is that step with a model that runs offline (RECONSTRUCTED): ``model`` answers, greedily, a chat
    that shows ``examples`` (written demonstrations) and then asks ``instruction`` (fields ``{question}``,
    ``{subject}``). The answer is cleaned (:func:`clean_reasoning`) and kept as ``r`` unless it is shorter than
    ``min_words`` words or leaks (:func:`leaked_words`: a word of the true answer, when ``many`` is given it, or
    a number the question does not hold); then ``fallback`` (a :class:`TemplateReasoner`) writes the target. ``s``
    is ``refusal``. Use a model that has *not* learnt the forget set (the released model, not the one being
    unlearned): it cannot state what it never knew, and the leak check catches a guess that hits.

    :attr:`sources` records, per question, ``"model"`` or ``"template"`` and, for a rejected chain, why;
    :attr:`generation_seconds` the time spent generating (cache hits cost none).

    Args:
        model: A ``transformers`` causal LM (e.g. :func:`lightning_unlearn.models.smollm2`); it is only run, never
            trained, in eval mode on its own device.
        tokenizer: Its tokenizer (with a chat template for chat models).
        instruction: The user turn asking for a reasoning chain (fields ``{question}``, ``{subject}``).
        examples: Demonstrations ``(question, reasoning)`` shown before the question (``()``: none).
        refusal: Template of the refusal ``s`` (fields ``{question}``, ``{subject}``).
        max_new_tokens: Most tokens generated per chain.
        max_sentences: Most sentences kept per chain.
        min_words: A cleaned chain with fewer words is rejected.
        batch_size: Questions generated together.
        cache_dir: A folder for the generated chains (one JSON file per question, keyed by the model's weights,
            the prompt, ``max_new_tokens`` and ``batch_size``, since padding can change a greedy answer);
            ``None``: memory only.
        fallback: The reasoner used for a rejected chain; ``None``: the default :class:`TemplateReasoner` with
            this ``refusal``.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        instruction: str = DEFAULT_INSTRUCTION,
        examples: Sequence[Sequence[str]] = DEFAULT_EXAMPLES,
        refusal: str = DEFAULT_REFUSAL,
        max_new_tokens: int = 96,
        max_sentences: int = 4,
        min_words: int = 6,
        batch_size: int = 8,
        cache_dir: str | os.PathLike | None = None,
        fallback: TemplateReasoner | None = None,
    ) -> None:
        if not callable(getattr(model, "generate", None)):
            raise TypeError(f"`model` should be a transformers causal LM with `generate`, got {type(model).__name__}.")
        if tokenizer is None or not callable(tokenizer):
            raise TypeError(f"`tokenizer` should be the model's transformers tokenizer, got {type(tokenizer).__name__}.")
        check_template("instruction", instruction)
        check_template("refusal", refusal)
        examples = tuple(tuple(e) for e in examples)
        for i, example in enumerate(examples):
            if len(example) != 2 or not all(isinstance(t, str) and t.strip() for t in example):
                raise ValueError(f"`examples[{i}]` should be a (question, reasoning) pair of non-empty strings, got {example!r}.")
        for name, value in (("max_new_tokens", max_new_tokens), ("max_sentences", max_sentences), ("batch_size", batch_size)):
            check_int(name, value)
        check_int("min_words", min_words, minimum=0)
        if fallback is not None and not isinstance(fallback, TemplateReasoner):
            raise TypeError(f"`fallback` should be a TemplateReasoner or None, got {type(fallback).__name__}.")
        self.model = model
        self.tokenizer = tokenizer
        self.instruction = instruction
        self.examples = examples
        self.refusal = refusal
        self.max_new_tokens = max_new_tokens
        self.max_sentences = max_sentences
        self.min_words = min_words
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.fallback = fallback if fallback is not None else TemplateReasoner(refusal=refusal)
        self.sources: dict[str, str] = {}
        self.generation_seconds = 0.0
        self._written: dict[str, str] = {}
        self._key: str | None = None

    def conversation(self, question: str) -> list[dict[str, str]]:
        """The chat the model answers for ``question``: the demonstrations, then the instruction."""
        turns: list[dict[str, str]] = []
        for q, r in self.examples:
            turns += [{"role": "user", "content": self.instruction.format(**_fields(q))}, {"role": "assistant", "content": r}]
        return turns + [{"role": "user", "content": self.instruction.format(**_fields(question))}]

    def _file(self, question: str) -> Path | None:
        if self.cache_dir is None:
            return None
        if self._key is None:
            self._key = cache_key(_fingerprint(self.model), self.instruction, self.examples, self.max_new_tokens, self.batch_size)
        return self.cache_dir / f"{cache_key(self._key, question)}.json"

    def _read(self, question: str) -> str | None:
        file = self._file(question)
        if file is None or not file.is_file():
            return None
        try:
            entry = json.loads(file.read_text())
        except (OSError, ValueError):
            return None  # a corrupt cache file: write the chain again
        return entry.get("generated") if isinstance(entry, dict) and entry.get("question") == question else None

    def _write(self, question: str, generated: str) -> None:
        file = self._file(question)
        if file is not None:
            write_text_atomic(file, json.dumps({"question": question, "generated": generated}))

    def generated(self, questions: Sequence[str]) -> list[str]:
        """The model's raw answers to ``questions`` (from the caches where written before)."""
        from lightning_unlearn.tasks.causal_lm import generate_answers

        for question in dict.fromkeys(questions):
            if question not in self._written and (text := self._read(question)) is not None:
                self._written[question] = text
        todo = [q for q in dict.fromkeys(questions) if q not in self._written]
        if todo:
            start = time.perf_counter()
            texts = generate_answers(
                self.model, self.tokenizer, [self.conversation(q) for q in todo], self.max_new_tokens, self.batch_size
            )
            self.generation_seconds += time.perf_counter() - start
            for question, text in zip(todo, texts):
                self._written[question] = text
                self._write(question, text)
        return [self._written[q] for q in questions]

    def many(self, questions: Sequence[str], answers: Sequence[str] | None = None) -> list[ReasoningTarget]:
        """The targets of ``questions``; ``answers`` (the true answers, same order) let the leak check reject a chain."""
        if answers is not None and len(answers) != len(questions):
            raise ValueError(f"`answers` should hold one answer per question ({len(questions)}), got {len(answers)}.")
        targets = []
        for i, (question, text) in enumerate(zip(questions, self.generated(questions))):
            reasoning = clean_reasoning(text, self.max_sentences)
            leaks = leaked_words(reasoning, question, answers[i] if answers is not None else None)
            if leaks or len(reasoning.split()) < max(self.min_words, 1):
                why = f"leaks {leaks}" if leaks else f"{len(reasoning.split())} words"
                self.sources[question] = f"template ({why})"
                targets.append(self.fallback(question))
                continue
            self.sources[question] = "model"
            targets.append(ReasoningTarget(reasoning, self.refusal.format(**_fields(question)).strip()))
        return targets

    def __call__(self, question: str) -> ReasoningTarget:
        return self.many([question])[0]
