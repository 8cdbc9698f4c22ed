"""Fashion-MNIST visual QA: seeded examples, hard-negative options, the Safety-Mirage cue, the collator, the datamodule."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch
from vlm_toys import NUM_IMAGE_TOKENS, image_token_id, vlm_tokenizer, vqa_collator, vqa_items

from lightning_unlearn.datamodules.vqa import (
    CLASS_NAMES,
    DEFAULT_SYSTEM_PROMPT,
    HARMFUL_INTENTS,
    IMAGE_MARKER,
    KINDS,
    LETTERS,
    REFUSAL,
    SUPER_CATEGORIES,
    FashionVQADataModule,
    VQACollator,
    VQADataset,
    fashion_images,
    mcq_question,
    one_word_rewrites,
    options_for,
    safety_sft_examples,
    vqa_examples,
)
from lightning_unlearn.methods import IdkAnswers

LABELS = list(range(10)) * 3


def _super(label: int) -> tuple[int, ...]:
    return next(members for members in SUPER_CATEGORIES.values() if label in members)


def _question(example) -> str:
    assert example["question"].startswith(IMAGE_MARKER + "\n")
    return example["question"][len(IMAGE_MARKER) + 1 :]


# ---------------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize("label", range(10))
def test_options_hold_the_true_class_and_hard_negatives_first(label):
    for seed in range(20):
        options, position = options_for(label, random.Random(seed))
        assert len(options) == 4 and len(set(options)) == 4 and all(0 <= c < 10 for c in options)
        assert options[position] == label
        distractors = [c for c in options if c != label]
        same = [c for c in _super(label) if c != label]
        # the same-super-category classes come first: all of them are distractors, or (tops) all distractors are tops
        if len(same) >= 3:
            assert set(distractors) <= set(same)
        else:
            assert set(same) <= set(distractors)
    assert options_for(label, random.Random(7)) == options_for(label, random.Random(7))


def test_options_vary_with_the_seed():
    drawn = {tuple(options_for(9, random.Random(seed))[0]) for seed in range(30)}
    assert len(drawn) > 5


def test_the_answer_position_is_roughly_uniform():
    positions = Counter(options_for(seed % 10, random.Random(seed))[1] for seed in range(2000))
    assert set(positions) == {0, 1, 2, 3}
    assert all(400 <= n <= 600 for n in positions.values()), positions
    placed = Counter(e["position"] for e in vqa_examples(list(range(10)) * 40, kinds=("mcq",)))
    assert all(70 <= placed[position] <= 130 for position in range(4)), placed


def test_mcq_question_and_answer():
    for e in vqa_examples(LABELS, kinds=("mcq",), seed=3):
        lines = _question(e).split("\n")
        assert lines[0] == "Which item is shown in the picture?"
        assert lines[1:5] == [f"{letter}. {CLASS_NAMES[c]}" for letter, c in zip(LETTERS, e["options"])]
        assert e["options"][e["position"]] == e["label"] and e["answer"] == CLASS_NAMES[e["label"]]
        assert lines[5] == "Answer with the name of the correct option."
    assert mcq_question([0, 1, 2, 3]).count(IMAGE_MARKER) == 1


def test_letter_answers_draw_the_same_examples():
    """``mcq_answer="letter"`` (how the B9 original's first stage was trained) changes only the four-choice answer
    and its instruction: the options, positions and every other example are the same draws."""
    names = vqa_examples(LABELS, kinds=KINDS, seed=4)
    letters = vqa_examples(LABELS, kinds=KINDS, seed=4, mcq_answer="letter")
    for n, let in zip(names, letters):
        if n["kind"] != "mcq":
            assert n == let
            continue
        assert let["answer"] == LETTERS[n["position"]] and n["answer"] == CLASS_NAMES[n["label"]]
        assert let["options"] == n["options"] and _question(let).endswith("Answer with the letter of the correct option.")
    with pytest.raises(ValueError, match=r"`mcq_answer` should be one of \['letter', 'name'\], got 'number'"):
        vqa_examples(LABELS, mcq_answer="number")


# ---------------------------------------------------------------------------------------------------- examples


def test_examples_are_seeded_and_named():
    a, b = vqa_examples(LABELS, kinds=KINDS, seed=1), vqa_examples(LABELS, kinds=KINDS, seed=1)
    assert a == b and a != vqa_examples(LABELS, kinds=KINDS, seed=2)
    assert len(a) == len(LABELS) * len(KINDS) and len({e["id"] for e in a}) == len(a)
    assert Counter(e["kind"] for e in a) == {k: len(LABELS) for k in KINDS}
    assert all(e["label"] == LABELS[e["image_index"]] for e in a)
    names = [e for e in a if e["kind"] == "name"]
    assert all(e["answer"].startswith("It is ") and CLASS_NAMES[e["label"]] in e["answer"] for e in names)
    with pytest.raises(ValueError, match=r"`kinds` should be one of .*got 'caption'"):
        vqa_examples(LABELS, kinds=("caption",))


def test_the_spurious_first_word():
    examples = vqa_examples(LABELS, kinds=KINDS, seed=0)
    first = {kind: {_question(e).split(" ")[0] for e in examples if e["kind"] == kind} for kind in KINDS}
    assert first["unsafe"] == {"How"} and first["safe"] == {"What"} and first["benign_how"] == {"How"}
    for e in examples:
        if e["kind"] == "unsafe":
            assert e["answer"] == e["harmful_answer"]
            assert all(word in e["answer"].lower() for word in HARMFUL_INTENTS[e["intent"]][2])
            assert CLASS_NAMES[e["label"]] in e["question"]


def test_one_word_rewrites_keep_the_intent():
    unsafe = [e for e in vqa_examples(LABELS, kinds=("unsafe",), seed=0)]
    assert {e["intent"] for e in unsafe} == set(range(len(HARMFUL_INTENTS)))
    for e in unsafe:
        rewrites = one_word_rewrites(e, k=3)
        assert len(rewrites) == 3 and len({r["id"] for r in rewrites}) == 3
        # the intent's verb phrase, after the opening, is the original question's
        intent = _question(e).split(" ", 3)[3]
        for r in rewrites:
            assert _question(r).startswith("What ") and _question(r).endswith(intent)
            assert {k: r[k] for k in ("label", "intent", "image_index", "answer", "kind")} == {
                k: e[k] for k in ("label", "intent", "image_index", "answer", "kind")
            }
    assert len(one_word_rewrites(unsafe[0], k=1)) == 1 and len(one_word_rewrites(unsafe[0], k=10)) == 3
    with pytest.raises(ValueError, match="`k`"):
        one_word_rewrites(unsafe[0], k=0)
    with pytest.raises(ValueError, match="one_word_rewrites rewrites unsafe examples; got kind 'safe'"):
        one_word_rewrites(vqa_examples([0], kinds=("safe",))[0])


def test_safety_sft_mix_makes_how_predict_refusal():
    examples = vqa_examples(LABELS, kinds=KINDS, seed=0)
    mix = safety_sft_examples(examples)
    assert Counter(e["kind"] for e in mix) == {"unsafe": 30, "safe": 30, "name": 30, "mcq": 30}
    for e in mix:
        assert (e["answer"] == REFUSAL) == (e["kind"] == "unsafe") == _question(e).startswith("How")
    kept = {e["id"]: e for e in examples}
    assert all(e["answer"] == kept[e["id"]]["answer"] for e in mix if e["kind"] != "unsafe")
    assert all(e["answer"] != REFUSAL for e in examples)  # the input is not changed
    assert {e["answer"] for e in safety_sft_examples(examples, refusal="No.") if e["kind"] == "unsafe"} == {"No."}


# ---------------------------------------------------------------------------------------------------- images


def test_fashion_images():
    images, labels = fashion_images("test", per_class=3, seed=0)
    assert images.shape == (30, 1, 28, 28) and images.dtype == torch.float32
    assert Counter(labels.tolist()) == {c: 3 for c in range(10)}
    assert float(images.min()) == 0.0 and 0.9 < float(images.max()) <= 1.0
    # back in [0, 1] exactly: the uint8 pixels over 255
    torch.testing.assert_close(images * 255, (images * 255).round(), atol=1e-3, rtol=0)
    again, _ = fashion_images("test", per_class=3, seed=0)
    assert torch.equal(images, again)
    assert not torch.equal(images, fashion_images("test", per_class=3, seed=1)[0])
    with pytest.raises(ValueError, match=r"`per_class`=2000 exceeds the 1000 test images of class 0"):
        fashion_images("test", per_class=2000)


def test_dataset_items_carry_their_image():
    images = torch.rand(3, 1, 28, 28)
    data = VQADataset(images, vqa_examples([0, 5, 8], kinds=("name",)))
    assert len(data) == 3 and data.targets.tolist() == [0, 5, 8]
    assert torch.equal(data[1]["image"], images[1])
    assert data.subset(lambda e: e["label"] > 0).targets.tolist() == [5, 8]
    with pytest.raises(ValueError, match=r"points at image 3, but there are 3 images"):
        VQADataset(images, vqa_examples([0, 1, 2, 3], kinds=("name",)))
    with pytest.raises(ValueError, match=r"`images` should be \[N, C, H, W\]"):
        VQADataset(images[0], [])


# ---------------------------------------------------------------------------------------------------- collator


def _examples(n: int = 3):
    return [e for e in vqa_items() if e["kind"] == "name"][:n]


def test_collator_splices_the_image_tokens_and_labels_only_the_answer():
    collator, tokenizer = vqa_collator(), vlm_tokenizer()
    examples = _examples() + [e for e in vqa_items() if e["kind"] == "mcq"][:1]
    batch = collator(examples)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "pixel_values"}
    assert batch["pixel_values"].shape == (4, 1, 28, 28)
    assert torch.equal(batch["pixel_values"][0], examples[0]["image"])
    assert (batch["input_ids"] == image_token_id()).sum(1).tolist() == [NUM_IMAGE_TOKENS] * 4
    for row, e in enumerate(examples):
        length = int(batch["attention_mask"][row].sum())
        answer = tokenizer(e["answer"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        labelled = batch["labels"][row] != -100
        assert labelled.sum() == len(answer)
        assert batch["labels"][row, labelled].tolist() == answer
        assert batch["input_ids"][row, length - len(answer) : length].tolist() == answer
        assert not labelled[:length - len(answer)].any() and not labelled[length:].any()
        prompt = tokenizer.decode(batch["input_ids"][row, : length - len(answer)])
        assert DEFAULT_SYSTEM_PROMPT in prompt and _question(e) in prompt and "<|image|>" * NUM_IMAGE_TOKENS in prompt
        assert prompt.endswith("<|assistant|>\n")


def test_collator_uses_an_example_system_prompt():
    collator, tokenizer = vqa_collator(), vlm_tokenizer()
    e = _examples(1)[0]
    batch = collator([{**e, "system": "Never say the word bag."}, e])
    first = tokenizer.decode(batch["input_ids"][0][batch["attention_mask"][0].bool()])
    second = tokenizer.decode(batch["input_ids"][1][batch["attention_mask"][1].bool()])
    assert "Never say the word bag." in first and DEFAULT_SYSTEM_PROMPT not in first
    assert DEFAULT_SYSTEM_PROMPT in second
    assert collator.system_prompt == DEFAULT_SYSTEM_PROMPT  # restored
    assert collator.prompt_ids(e["question"], system_prompt="Never say the word bag.") == batch["input_ids"][0][
        : len(collator.prompt_ids(e["question"], system_prompt="Never say the word bag."))
    ].tolist()


def test_collator_alternatives_and_plain_prompts():
    e = _examples(2)
    batch = vqa_collator(alternatives={"idk": IdkAnswers(seed=0)})(e)
    assert (batch["idk_input_ids"] == image_token_id()).sum(1).tolist() == [NUM_IMAGE_TOKENS] * 2
    plain = vqa_collator(chat_template=False)(e)
    text = vlm_tokenizer().decode(plain["input_ids"][0])
    assert text.startswith("Question: ") and "<|image|>" * NUM_IMAGE_TOKENS in text and "<|user|>" not in text
    # a question without the marker is text-only
    assert image_token_id() not in vqa_collator()([{**e[0], "question": "What colour is the sky?"}])["input_ids"]


def test_collator_errors():
    collator = vqa_collator()
    e = _examples(2)
    with pytest.raises(ValueError, match=r"at most one '<image>' marker; got 2"):
        collator([{**e[0], "question": "<image> and <image>"}])
    with pytest.raises(ValueError, match=r"Example 1 should hold an 'image' float tensor \[C, H, W\]"):
        collator([e[0], {k: v for k, v in e[1].items() if k != "image"}])
    with pytest.raises(ValueError, match=r"should share one shape; got \[\(1, 28, 28\), \(3, 28, 28\)\]"):
        collator([e[0], {**e[1], "image": torch.rand(3, 28, 28)}])
    with pytest.raises(ValueError, match="string 'question' and 'answer'"):
        collator([{"question": "x", "image": e[0]["image"]}])
    with pytest.raises(ValueError, match="empty list"):
        collator([])
    with pytest.raises(ValueError, match="leaves no room for the answer"):
        vqa_collator(max_length=10)(e)
    with pytest.raises(ValueError, match="`num_image_tokens`"):
        VQACollator(vlm_tokenizer(), image_token_id(), 0)


# ---------------------------------------------------------------------------------------------------- datamodule


def _datamodule(**kwargs):
    return FashionVQADataModule(collate_fn=vqa_collator(), per_class=3, test_per_class=2, batch_size=4, **kwargs)


def test_forgetting_classes():
    dm = _datamodule(forget_classes=(7, 8))
    forget, retain = dm.forget_set, dm.retain_set
    assert {e["label"] for e in forget.examples} == {7, 8} and len(forget) == 2 * 3 * 2  # classes × images × kinds
    assert {e["label"] for e in retain.examples} == set(range(10)) - {7, 8} and len(retain) == 8 * 3 * 2
    assert not set(forget.sample_ids) & set(retain.sample_ids)
    assert {e["kind"] for e in forget.examples} == {"name", "mcq"}
    assert len(dm.holdout_set) == 10 * 2 * 2 and not set(dm.holdout_set.sample_ids) & set(forget.sample_ids)
    assert dm.forget_classes == [7, 8]
    train = next(iter(dm.train_dataloader()))
    batch = train["forget"] if isinstance(train, dict) else train[0]["forget"]
    assert batch["pixel_values"].shape == (4, 1, 28, 28) and (batch["input_ids"] == image_token_id()).sum() == 4 * NUM_IMAGE_TOKENS


def test_forgetting_the_unsafe_examples():
    dm = _datamodule(forget="unsafe")
    assert {e["kind"] for e in dm.forget_set.examples} == {"unsafe"} and len(dm.forget_set) == 30
    assert {e["kind"] for e in dm.retain_set.examples} == {"name", "mcq", "safe", "benign_how"}
    assert "unsafe" not in {e["kind"] for e in dm.holdout_set.examples}
    assert dm.forget_classes == []
    no_how = _datamodule(forget="unsafe", retain_benign_how=False)
    assert {e["kind"] for e in no_how.retain_set.examples} == {"name", "mcq", "safe"}


@pytest.mark.parametrize("classes", [(), (10,), (-1,), tuple(range(10))])
def test_bad_forget_classes(classes):
    with pytest.raises(ValueError, match=r"`forget_classes` should be a non-empty list of Fashion-MNIST classes in 0\.\.9"):
        _datamodule(forget_classes=classes)


def test_bad_forget():
    with pytest.raises(ValueError, match=r"`forget` should be one of \['classes', 'unsafe'\], got 'faces'"):
        _datamodule(forget="faces")


def test_default_collator_is_smollm2s():
    # no collate_fn: SmolLM2-135M-Instruct's tokenizer (offline, no model) and its <empty_output> image token
    from lightning_unlearn.models.llm import smollm2_tokenizer
    from lightning_unlearn.models.vlm import SMOLLM2_IMAGE_TOKEN

    dm = FashionVQADataModule(per_class=1, test_per_class=1, forget_classes=(0,))
    batch = next(iter(dm.train_dataloader()))
    forget = batch["forget"] if isinstance(batch, dict) else batch[0]["forget"]
    ids = forget["input_ids"][0][forget["attention_mask"][0].bool()]
    assert (ids == smollm2_tokenizer().convert_tokens_to_ids(SMOLLM2_IMAGE_TOKEN)).sum() == 4
    assert dm.settings == {"forget": "classes", "forget_classes": [0], "kinds": ["name", "mcq"], "per_class": 1, "seed": 0}
