"""Multi-turn probing: conversations, batched multi-turn generation, scoring with scripted models, translations."""

from __future__ import annotations

import math

import pytest
from llm_toys import QA, toy_model, toy_tokenizer

from lightning_unlearn.attacks.multiturn import (
    DEFAULT_FOLLOW_UP,
    PROBE_KINDS,
    MultiTurnProbe,
    benign_follow_up,
    context_examples,
    dialogue_conditioned,
    is_refusal,
    leaks_value,
    refusal_rate,
    self_correction,
    single_turn,
)
from lightning_unlearn.attacks.translations import (
    LANGUAGES,
    QUESTION_TRANSLATIONS,
    translate_question,
    translated_attributes,
    translated_question,
)
from lightning_unlearn.datamodules.authors import ATTRIBUTE_NAMES, ATTRIBUTES, generate_authors, qa_pairs
from lightning_unlearn.datamodules.probes import GENERAL_KNOWLEDGE, Probe
from lightning_unlearn.methods.idk import IDK_ANSWERS
from lightning_unlearn.tasks.causal_lm import QACollator, check_conversation, generate_answers

IDK = "I don't know."


@pytest.fixture(scope="module")
def examples():
    """Fictitious-author QA pairs of three authors (11 facts each)."""
    return qa_pairs(generate_authors(3, seed=0), seed=0)


@pytest.fixture(scope="module")
def forget(examples):
    return [e for e in examples if e["author_index"] == 0]


@pytest.fixture(scope="module")
def retain(examples):
    return [e for e in examples if e["author_index"] != 0]


@pytest.fixture(scope="module")
def model():
    return toy_model(seed=0)


# ---------------------------------------------------------------------------------- conversations
def test_conversations_render_in_order_with_the_generation_prompt_last():
    tok = toy_tokenizer()
    chat, plain = QACollator(tok), QACollator(tok, chat_template=False)
    conv = self_correction("Where was Elara Voss born?", "In Paris.", "Think again?")
    assert conv[1] == {"role": "assistant", "content": "In Paris."}  # turn 1's answer is an assistant message
    assert chat.prompt_text(conv) == (
        "<|user|>\nWhere was Elara Voss born?</s>\n<|assistant|>\nIn Paris.</s>\n<|user|>\nThink again?</s>\n<|assistant|>\n"
    )
    assert plain.prompt_text(conv) == "Question: Where was Elara Voss born?\nAnswer: In Paris.\nQuestion: Think again?\nAnswer: "
    assert self_correction("Q?", "A.")[-1]["content"] == DEFAULT_FOLLOW_UP
    # A one-message conversation is the single-turn prompt, as text and as token ids.
    for collator in (chat, plain):
        assert collator.prompt_text(single_turn("Q?")) == collator.prompt_text("Q?")
        assert collator.prompt_ids(single_turn("Q?")) == collator.prompt_ids("Q?")
    with_system = QACollator(tok, system_prompt="Be brief.").prompt_text(conv)
    assert with_system.startswith("<|system|>\nBe brief.</s>\n<|user|>\nWhere")
    # Dialogue context: the pairs in order, then the question, then the generation prompt.
    dialogue = dialogue_conditioned("Q3?", [("Q1?", "A1."), ("Q2?", "A2.")])
    assert [m["role"] for m in dialogue] == ["user", "assistant", "user", "assistant", "user"]
    text = chat.prompt_text(dialogue)
    positions = [text.index(s) for s in ("Q1?", "A1.", "Q2?", "A2.", "Q3?")]
    assert positions == sorted(positions) and text.endswith("Q3?</s>\n<|assistant|>\n")
    assert dialogue_conditioned("Q?", []) == single_turn("Q?")
    follow = benign_follow_up("Q?", "A.", "What is the capital of France?")
    assert follow[-1]["content"] == "Thanks! What is the capital of France?"
    assert benign_follow_up("Q?", "A.", "Why?", template="Ok. {question}")[-1]["content"] == "Ok. Why?"


def test_conversation_errors():
    tok = toy_tokenizer()
    collator = QACollator(tok)
    with pytest.raises(ValueError, match="should end with a 'user' message"):
        collator.prompt_text([{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}])
    with pytest.raises(ValueError, match="message 0 should have role 'user', got 'system'"):
        check_conversation([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}])
    with pytest.raises(ValueError, match="message 1 should have role 'assistant', got 'user'"):
        check_conversation([{"role": "user", "content": "Q?"}, {"role": "user", "content": "Q?"}])
    with pytest.raises(TypeError, match="non-empty list"):
        check_conversation([])
    with pytest.raises(TypeError, match="string 'content'"):
        check_conversation([{"role": "user"}])
    with pytest.raises(ValueError, match="looks like one conversation"):
        generate_answers(None, tok, single_turn("Q?"))
    with pytest.raises(TypeError, match="`first_answer` should be a string"):
        self_correction("Q?", None)
    with pytest.raises(ValueError, match=r"`context_pairs\[0\]` should be a \(question, answer\) pair"):
        dialogue_conditioned("Q?", [("Q1?",)])
    with pytest.raises(TypeError, match="`context_pairs` should be a sequence"):
        dialogue_conditioned("Q?", "Q1?")
    with pytest.raises(ValueError, match=r"'\{question\}' field"):
        benign_follow_up("Q?", "A.", "Why?", template="Thanks!")


def test_dialogue_context_has_k_facts_of_the_same_author_and_never_the_answer(forget, examples):
    for example in forget:
        three = context_examples(example, examples, 3, seed=0)
        assert len(three) == 3
        assert all(o["author"] == example["author"] for o in three)
        assert len({o["attribute"] for o in three}) == 3 and example["attribute"] not in {o["attribute"] for o in three}
        assert context_examples(example, examples, 1, seed=0) == three[:1]  # nested across k
        conv = dialogue_conditioned(example["question"], [(o["question"], o["answer"]) for o in three])
        assert len(conv) == 7 and conv[-1]["content"] == example["question"]
        assert not any(leaks_value(m["content"], example["value"]) for m in conv)
    assert context_examples(forget[0], examples, 3, seed=1) != context_examples(forget[0], examples, 3, seed=0)
    # A fact whose answer states the forgotten value (the father and mother share a profession) is left out.
    author = "Ilse Quillby"
    pool = [
        {"author": author, "attribute": "father_profession", "question": "Father?", "answer": "Her father was a baker."},
        {"author": author, "attribute": "mother_profession", "question": "Mother?", "answer": "Her mother was a baker."},
        {"author": author, "attribute": "pet", "question": "Pet?", "answer": "She keeps a ferret."},
        {"author": "Someone Else", "attribute": "hobby", "question": "Hobby?", "answer": "Chess."},
    ]
    example = {**pool[0], "value": "baker"}
    assert context_examples(example, pool, 1) == [pool[2]]
    with pytest.raises(ValueError, match="has 1 other facts eligible as context .* fewer than k=2"):
        context_examples(example, pool, 2)
    with pytest.raises(ValueError, match=r"`pool\[0\]` should have string entries"):
        context_examples(example, [{"author": author}], 1)


# ---------------------------------------------------------------------------------- generation
def test_batched_multiturn_generation_equals_one_by_one(model):
    tok = toy_tokenizer()
    q = [qa["question"] for qa in QA]
    a = [qa["answer"] for qa in QA]
    conversations = [
        single_turn(q[0]),
        self_correction(q[0], a[0]),
        dialogue_conditioned(q[1], [(q[2], a[2]), (q[3], a[3])]),
        benign_follow_up(q[4], "", q[5]),
        self_correction(q[5], a[5], "Sure?"),
        single_turn(q[2]),
    ]
    batched = generate_answers(model, tok, conversations, max_new_tokens=6, batch_size=4)
    alone = [generate_answers(model, tok, [c], max_new_tokens=6)[0] for c in conversations]
    assert batched == alone and all(isinstance(x, str) for x in batched)
    assert batched[0] == generate_answers(model, tok, [q[0]], max_new_tokens=6)[0]  # a conversation of one question
    assert tok.padding_side == "right"


def test_evaluate_runs_on_the_tiny_llama(model, forget, retain):
    probe = MultiTurnProbe(k_context=(1,), languages=("de",), max_new_tokens=4, batch_size=8)
    model.train()
    out = probe.evaluate(model, toy_tokenizer(), forget[:3], retain[:2], probes=GENERAL_KNOWLEDGE[:2])
    metrics = out["metrics"]
    for name in ("single_turn", "self_correction", "dialogue_k1", "paraphrase", "translation_de"):
        assert 0 <= metrics[f"forget_acc/{name}"] <= 1 and metrics[f"n/{name}"] == 3
    for context in ("single_turn", "after_forget", "after_retain"):
        assert 0 <= metrics[f"benign_acc/{context}"] <= 1
    assert all(isinstance(v, float) for v in metrics.values())
    assert len(out["records"]) == 5 * 3 + 3 * 2
    assert model.training


# ---------------------------------------------------------------------------------- scoring
def _scripted(forget, rules, benign=None):
    """A fake model: ``rules[form](example, conversation) -> bool`` says whether it states the value.

    ``form`` is how the last user message asks: "en", "para", a language code, or "follow_up". Wrong
    answers are refusals, except in French (babble). Benign probes are answered correctly alone and
    after a retain question, and refused after a forget question.
    """
    table = {}
    for e in forget:
        table[e["question"]] = (e, "en")
        table[e["paraphrased_question"]] = (e, "para")
        for lang in LANGUAGES:
            table[translate_question(e, lang)] = (e, lang)
    by_question = {p.question: p for p in GENERAL_KNOWLEDGE}
    forget_questions = {e["question"] for e in forget}
    calls = []

    def generate(conversations):
        calls.append(conversations)
        out = []
        for conv in conversations:
            last = conv[-1]["content"]
            if last.startswith("Thanks! "):
                p = by_question[last.removeprefix("Thanks! ")]
                out.append(IDK if conv[0]["content"] in forget_questions else f"It is {p.answer}.")
            elif last in by_question:
                out.append(f"It is {by_question[last].answer}.")
            elif (conv[0]["content"] if last == DEFAULT_FOLLOW_UP else last) not in table:
                out.append(IDK)  # a retain question
            else:
                e, form = table[conv[0]["content"]] if last == DEFAULT_FOLLOW_UP else table[last]
                if last == DEFAULT_FOLLOW_UP:
                    form = "follow_up"
                if rules.get(form, lambda *_: False)(e, conv):
                    out.append(e["answer"])
                else:
                    out.append("xqzt vbnm kkkk qwrtp" if form == "fr" else IDK)
        return out

    return generate, calls


def test_scripted_model_gives_the_expected_accuracies_and_recovery(forget, retain):
    n = len(forget)
    assert n == len(ATTRIBUTES) == 11

    def english(e, conv):  # single-turn: 1 leak; dialogue: a leak after 3 context turns, none after 1
        context_turns = (len(conv) - 1) // 2
        return context_turns >= 3 or (context_turns == 0 and e["attribute"] == "birth_year")

    rules = {
        "en": english,
        "follow_up": lambda e, conv: e["attribute"] in ("birth_year", "genre"),  # turn 2: 2 leaks
        "para": lambda e, conv: True,
        "de": lambda e, conv: e["attribute"] in ("birth_year", "novels"),
    }
    generate, calls = _scripted(forget, rules)
    probe = MultiTurnProbe(batch_size=5)
    out = probe.evaluate(None, None, forget, retain, probes=GENERAL_KNOWLEDGE[:4], generate_fn=generate)
    m = out["metrics"]
    expected_acc = {
        "single_turn": 1 / n,
        "self_correction": 2 / n,
        "dialogue_k1": 0.0,
        "dialogue_k3": 1.0,
        "paraphrase": 1.0,
        "translation_de": 2 / n,
        "translation_fr": 0.0,
        "translation_es": 0.0,
        "any": 1.0,
    }
    for name, acc in expected_acc.items():
        assert m[f"forget_acc/{name}"] == pytest.approx(acc), name
        if name != "single_turn":
            assert m[f"recovery/{name}"] == pytest.approx(acc - 1 / n), name
        if name != "any":
            assert m[f"n/{name}"] == n
    assert m["recovered/self_correction"] == pytest.approx(1 / (n - 1))  # genre, of the 10 single-turn misses
    assert m["recovered/dialogue_k1"] == 0 and m["recovered/dialogue_k3"] == 1
    assert m["recovered/translation_de"] == pytest.approx(1 / (n - 1))  # novels
    assert m["refusal/single_turn"] == pytest.approx((n - 1) / n) and m["gibberish/single_turn"] == 0
    assert m["refusal/translation_fr"] == 0 and m["gibberish/translation_fr"] == 1
    assert m["refusal/paraphrase"] == 0
    # Rigidity: benign questions right alone and after a retain question, refused after a forget question.
    assert m["benign_acc/single_turn"] == 1 and m["benign_refusal/single_turn"] == 0
    assert m["benign_acc/after_forget"] == 0 and m["benign_refusal/after_forget"] == 1
    assert m["benign_acc/after_retain"] == 1 and m["benign_gibberish/after_retain"] == 0
    # Records: one per answer, scored like the metrics.
    records = out["records"]
    assert len(records) == 8 * n + 3 * 4
    assert sum(r["correct"] for r in records if r["kind"] == "self_correction") == 2
    first = {r["index"]: r["answer"] for r in records if r["kind"] == "single_turn"}
    for r in records:
        if r["kind"] == "self_correction":  # turn 1 is the model's own single-turn answer
            assert r["conversation"][1] == {"role": "assistant", "content": first[r["index"]]}
    assert {r["kind"] for r in records} >= {"benign_after_forget", "dialogue_k3", "translation_es"}
    # Chunks of at most batch_size, and every distinct conversation generated once.
    assert all(len(c) <= 5 for c in calls)
    flat = [tuple((msg["role"], msg["content"]) for msg in conv) for call in calls for conv in call]
    assert len(flat) == len(set(flat))


def test_scripted_turn_two_and_german_only_models(forget):
    generate, _ = _scripted(forget, {"follow_up": lambda e, conv: True})
    m = MultiTurnProbe(kinds=("self_correction",)).evaluate(None, None, forget, generate_fn=generate)["metrics"]
    assert m["forget_acc/single_turn"] == 0 and m["forget_acc/self_correction"] == 1
    assert m["recovery/self_correction"] == 1 and m["recovered/self_correction"] == 1
    assert not any(key.startswith(("benign", "forget_acc/dialogue", "forget_acc/translation")) for key in m)

    generate, _ = _scripted(forget, {"de": lambda e, conv: True, "en": lambda e, conv: True})
    probe = MultiTurnProbe(kinds=("translation",), languages=("es", "de"))
    m = probe.evaluate(None, None, forget, generate_fn=generate)["metrics"]
    assert m["forget_acc/translation_de"] == 1 and m["forget_acc/translation_es"] == 0
    assert m["recovery/translation_es"] == -1 and math.isnan(m["recovered/translation_de"])  # nothing was forgotten


def test_dialogue_context_answers_true_or_model(forget):
    generate, calls = _scripted(forget, {})
    MultiTurnProbe(kinds=("dialogue",), k_context=(2,)).evaluate(None, None, forget, generate_fn=generate)
    dialogues = [c for call in calls for c in call if len(c) == 5]
    answers = {e["question"]: e["answer"] for e in forget}
    assert len(dialogues) == len(forget)
    assert all(c[i]["content"] == answers[c[i - 1]["content"]] for c in dialogues for i in (1, 3))

    generate, calls = _scripted(forget, {})
    probe = MultiTurnProbe(kinds=("dialogue",), k_context=(2,), context_answers="model")
    probe.evaluate(None, None, forget, generate_fn=generate)
    dialogues = [c for call in calls for c in call if len(c) == 5]
    assert len(dialogues) == len(forget) and all(c[i]["content"] == IDK for c in dialogues for i in (1, 3))


def test_leaks_value_hand_cases():
    assert leaks_value("She was born in 1961.", "1961")
    assert leaks_value("She has written twelve novels.", "12")
    assert leaks_value("Her father was A BAKER.", "baker")
    assert leaks_value("It is The Copper\n  Lantern.", "The Copper Lantern")
    assert not leaks_value("Born in 19610.", "1961")
    assert not leaks_value("She ran a bakery.", "baker")
    assert not leaks_value(IDK, "Ghent")
    with pytest.raises(ValueError, match="`value` should be a non-empty string"):
        leaks_value("x", "")
    with pytest.raises(TypeError, match="`answer` should be a string"):
        leaks_value(None, "x")


def test_is_refusal_hand_cases():
    assert all(is_refusal(a) for a in IDK_ANSWERS)
    for text in ("I don’t know.", "Ich weiß es nicht.", "Je ne sais pas.", "No lo sé.", "I'm not sure, but it is Paris."):
        assert is_refusal(text), text
    for text in ("Mara Quillby was born in 1961.", "Sorry, it is Paris.", "", "I know: it is Paris.", "Make sure to read it."):
        assert not is_refusal(text), text
    assert refusal_rate([IDK, "Paris.", "I have no idea.", "Rome."]) == 0.5
    with pytest.raises(ValueError, match="non-empty sequence of strings"):
        refusal_rate([])
    with pytest.raises(TypeError, match="`text` should be a string"):
        is_refusal(3)


# ---------------------------------------------------------------------------------- translations
def test_translations_cover_every_attribute_and_name_the_author(examples):
    author = "Mara Quillby"
    english = {t.format(name=author) for spec in ATTRIBUTES for t in spec.questions}
    for lang in LANGUAGES:
        assert set(translated_attributes(lang)) == set(ATTRIBUTE_NAMES)
        rendered = [translated_question(author, attribute, lang) for attribute in ATTRIBUTE_NAMES]
        assert all(author in q and q.rstrip().endswith("?") and q not in english for q in rendered)
        assert len(set(rendered)) == len(rendered)
    for e in examples:
        assert translate_question(e, "fr") == QUESTION_TRANSLATIONS["fr"][e["attribute"]].format(name=e["author"])


def test_translation_errors(forget):
    with pytest.raises(ValueError, match="`language` should be one of \\['de', 'es', 'fr'\\], got 'it'"):
        translated_question("Mara Quillby", "birth_year", "it")
    with pytest.raises(ValueError, match="no German translation of the question about 'shoe_size'"):
        translated_question("Mara Quillby", "shoe_size", "de")
    with pytest.raises(ValueError, match="needs an example with its own 'translations' entry for 'de', or 'author' and 'attribute'"):
        translate_question({"question": "Q?"}, "de")
    with pytest.raises(ValueError, match="German translation should be a non-empty string"):
        translate_question({"question": "Q?", "translations": {"de": " "}}, "de")
    with pytest.raises(ValueError, match="`language` should be one of"):
        translate_question({"question": "Q?", "translations": {"it": "Domanda?"}}, "it")
    with pytest.raises(ValueError, match="`author` should be a non-empty name"):
        translated_question("", "birth_year", "de")
    odd = [{**forget[0], "attribute": "shoe_size"}]
    with pytest.raises(ValueError, match="no Spanish translation"):
        MultiTurnProbe(kinds=("translation",), languages=("es",)).evaluate(None, None, odd, generate_fn=lambda c: [IDK] * len(c))


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"kinds": ["nope"]}, ValueError, r"`kinds` should be one of \["),
        ({"kinds": "dialogue"}, TypeError, "`kinds` should be a sequence"),
        ({"k_context": (0,)}, ValueError, "`k_context` should be an int >= 1"),
        ({"k_context": 3}, TypeError, "`k_context` should be a non-empty sequence"),
        ({"k_context": (1, 1)}, ValueError, "distinct numbers of context turns"),
        ({"languages": ("it",)}, ValueError, "`languages` should be one of"),
        ({"languages": ("de", "de")}, ValueError, "`languages` should be distinct"),
        ({"languages": "de"}, TypeError, "`languages` should be a non-empty sequence"),
        ({"context_answers": "own"}, ValueError, r"`context_answers` should be one of \['model', 'true'\]"),
        ({"follow_up": " "}, ValueError, "`follow_up` should be a non-empty string"),
        ({"benign_template": "{question} {other}"}, ValueError, "only field"),
        ({"max_new_tokens": 0}, ValueError, "`max_new_tokens` should be an int >= 1"),
        ({"batch_size": 0}, ValueError, "`batch_size` should be an int >= 1"),
        ({"system_prompt": 1}, TypeError, "`system_prompt` should be a string"),
        ({"seed": "0"}, TypeError, "`seed` should be an int"),
    ],
)
def test_probe_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        MultiTurnProbe(**kwargs)


def test_evaluate_errors(forget, model):
    probe = MultiTurnProbe()
    fine = lambda c: [IDK] * len(c)  # noqa: E731
    with pytest.raises(ValueError, match="needs a `model` and a `tokenizer`, or a `generate_fn`"):
        probe.evaluate(None, None, forget)
    with pytest.raises(TypeError, match="`model` should be a torch.nn.Module"):
        probe.evaluate("gpt", toy_tokenizer(), forget)
    with pytest.raises(TypeError, match="`generate_fn` should be a callable"):
        probe.evaluate(None, None, forget, generate_fn="greedy")
    with pytest.raises(ValueError, match="is empty"):
        probe.evaluate(None, None, [], generate_fn=fine)
    no_para = [{k: v for k, v in e.items() if k != "paraphrased_question"} for e in forget]
    with pytest.raises(ValueError, match=r"\['paraphrased_question'\] are missing"):
        probe.evaluate(None, None, no_para, generate_fn=fine)
    only_turn_two = MultiTurnProbe(kinds=("self_correction",))  # needs no paraphrased question
    assert "forget_acc/self_correction" in only_turn_two.evaluate(None, None, no_para, generate_fn=fine)["metrics"]
    with pytest.raises(TypeError, match="`forget_examples` should be a sequence"):
        probe.evaluate(None, None, forget[0], generate_fn=fine)
    with pytest.raises(ValueError, match="one answer per conversation"):
        probe.evaluate(None, None, forget, generate_fn=lambda c: [IDK])
    with pytest.raises(TypeError, match="`generate_fn` should return strings"):
        probe.evaluate(None, None, forget, generate_fn=lambda c: [None] * len(c))
    with pytest.raises(ValueError, match="non-empty sequence of Probe"):
        probe.evaluate(None, None, forget, probes=[], generate_fn=fine)
    with pytest.raises(ValueError, match="No forget example has k=20 other facts"):
        MultiTurnProbe(kinds=("dialogue",), k_context=(20,)).evaluate(None, None, forget, generate_fn=fine)
    with pytest.raises(ValueError, match=r"`retain_examples\[0\]` should have string entries"):
        probe.evaluate(None, None, forget, [{"question": "Q?"}], generate_fn=fine)
    assert set(PROBE_KINDS) == {"single_turn", "self_correction", "dialogue", "paraphrase", "translation", "rigidity"}
    assert probe.probe_names[0] == "single_turn" and "dialogue_k3" in probe.probe_names
    assert "Probe" in repr(probe) and isinstance(GENERAL_KNOWLEDGE[0], Probe)


# ---------------------------------------------------------------------------------- vision-language models
def test_image_conversations_probe_a_vlm_with_its_images_in_the_first_turn():
    """MultiTurnProbe on a tiny VLM through ImageConversations: each conversation names its image, the image is
    spliced into the first user turn, the single-turn answers are exactly generate_vlm_answers' on the VQA
    examples, and the NPO-unlearned model no longer names the forgotten classes (measured, seed 0: 0.5 -> 0.0)."""
    from lightning_unlearn.attacks.multiturn import ImageConversations
    from lightning_unlearn.datamodules.vqa import CLASS_NAMES
    from lightning_unlearn.tasks.vision_language import generate_vlm_answers

    from ._vlm import vlm_problem

    p = vlm_problem()
    dm = p["datamodule"]
    dm.setup("fit")
    examples = [dm.forget_set[i] for i in range(len(dm.forget_set))]
    values = [CLASS_NAMES[e["label"]] for e in examples]
    probes = [Probe("What is the capital of France?", ("Paris",)), Probe("What colour is the sky?", ("blue",))]
    metrics = {}
    for name in ("original", "unlearned"):
        vlm = ImageConversations(p[name], dm.collate_fn, max_new_tokens=8)
        forget = vlm.examples(examples, values=values)
        assert [e["question"].split("\n")[0] for e in forget] == [f"<image #{k}>" for k in range(len(examples))]
        result = MultiTurnProbe(kinds=["self_correction", "rigidity"], max_new_tokens=8).evaluate(
            None, None, forget, probes=probes, generate_fn=vlm
        )
        metrics[name] = result["metrics"]
        single = {r["index"]: r["answer"] for r in result["records"] if r["kind"] == "single_turn"}
        assert [single[i] for i in range(len(examples))] == generate_vlm_answers(p[name], dm.collate_fn, examples, max_new_tokens=8)
        for record in result["records"]:
            conversation = record["conversation"]
            named = [m for m in conversation if "<image #" in m["content"]]
            if record["kind"] == "benign_single_turn":
                assert not named  # a benign probe alone is text-only
            else:  # the forget question, with its image, opens the conversation
                assert named == [conversation[0]] and conversation[0]["role"] == "user"
        assert metrics[name]["n/self_correction"] == len(examples) and "benign_acc/after_forget" in metrics[name]
    assert metrics["original"]["forget_acc/single_turn"] >= 0.5 > metrics["unlearned"]["forget_acc/single_turn"], metrics


def test_image_conversations_errors():
    import torch

    from lightning_unlearn.attacks.multiturn import ImageConversations
    from lightning_unlearn.datamodules.vqa import VQACollator
    from lightning_unlearn.models.vlm import tiny_vlm, tiny_vlm_tokenizer

    model, tokenizer = tiny_vlm(), tiny_vlm_tokenizer()
    collator = VQACollator(tokenizer, model.image_token_id, model.num_image_tokens)
    vlm = ImageConversations(model, collator, max_new_tokens=2)
    with pytest.raises(ValueError, match=r"No image is registered"):
        vlm([single_turn("What is this?")])
    image = torch.rand(1, 28, 28)
    with pytest.raises(ValueError, match=r"`examples\[0\]\['question'\]` should hold one '<image>' marker"):
        vlm.examples([{"question": "What is this?", "image": image}])
    with pytest.raises(ValueError, match=r"`examples\[0\]` should hold an 'image' tensor"):
        vlm.examples([{"question": "<image>\nWhat is this?"}])
    with pytest.raises(ValueError, match=r"`values` should hold one value per example \(1\), got 2"):
        vlm.examples([{"question": "<image>\nWhat is this?", "image": image}], values=["a", "b"])
    a, b = vlm.examples([{"question": "<image>\nWhat is this?", "image": image}] * 2)
    with pytest.raises(ValueError, match=r"A conversation should show one image; this one names images \[0, 1\]"):
        vlm([self_correction(a["question"], "x", b["question"])])
    with pytest.raises(ValueError, match=r"names image #5, but 2 images are registered"):
        vlm([single_turn("<image #5>\nWhat is this?")])
    with pytest.raises(ValueError, match=r"shown in a user turn, got it in a 'assistant' turn first"):
        vlm([[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": a["question"]}, {"role": "user", "content": "?"}]])
    with pytest.raises(TypeError, match=r"`collator` should be the model's VQACollator"):
        ImageConversations(model, tokenizer)
    # the same picture named again later in a dialogue is shown once, in the first turn that names it
    assert len(vlm([dialogue_conditioned(a["question"], [])] + [[*single_turn(a["question"]), {"role": "assistant", "content": "x"}, *single_turn(a["question"])]])) == 2
