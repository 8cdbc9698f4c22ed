"""VisionLanguageTask: the causal-LM primitives with the batch's images, and the VLM evaluation primitives."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from vlm_toys import image_token_id, tiny_vlm, vlm_tokenizer, vqa_collator, vqa_items

from lightning_unlearn.methods import IdkAnswers, alternative_batch
from lightning_unlearn.tasks import CausalLMTask
from lightning_unlearn.tasks.vision_language import VisionLanguageTask, first_token_logits, generate_vlm_answers

TASK = VisionLanguageTask()


@pytest.fixture(scope="module")
def model():
    return tiny_vlm(seed=1).eval()


@pytest.fixture(scope="module")
def examples():
    items = vqa_items()
    return [items[0], items[1], items[6], items[13]]  # name and mcq questions of three images (prompts of different lengths)


@pytest.fixture(scope="module")
def batch(examples):
    return vqa_collator()(examples)


def test_kind_and_arguments():
    assert TASK.kind == "vision_language" and isinstance(TASK, CausalLMTask)
    assert TASK.carried_keys() == ("pixel_values",)
    with pytest.raises(ValueError, match=r"`image_key` should be a non-empty string, got ''"):
        VisionLanguageTask(image_key="")
    assert TASK.extra_inputs({"input_ids": torch.zeros(1, 2)}) == {}


def _spliced_logits(model, batch):
    embeds = model.embed(batch["input_ids"], batch["pixel_values"])
    return model.language_model(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits


def test_per_sample_loss_is_the_causal_lm_loss_on_the_spliced_model(model, batch):
    with torch.no_grad():
        outputs = TASK.forward(model, batch)
        spliced = _spliced_logits(model, batch)
    torch.testing.assert_close(outputs, spliced)
    text = CausalLMTask()
    torch.testing.assert_close(TASK.per_sample_loss(outputs, batch), text.per_sample_loss(spliced, batch))
    torch.testing.assert_close(TASK.log_likelihood(outputs, batch), text.log_likelihood(spliced, batch))
    # by hand: mean answer-token cross-entropy of the shifted logits
    for row in range(len(batch["labels"])):
        keep = batch["labels"][row, 1:] != -100
        expected = F.cross_entropy(spliced[row, :-1][keep], batch["labels"][row, 1:][keep])
        torch.testing.assert_close(TASK.per_sample_loss(outputs, batch)[row], expected)
    # the images matter: other images, another loss
    other = {**batch, "pixel_values": batch["pixel_values"].flip(0)}
    with torch.no_grad():
        assert not torch.allclose(TASK.per_sample_loss(TASK.forward(model, other), other), TASK.per_sample_loss(outputs, batch))


def test_a_batch_without_images_is_text_only(model):
    # a question without the <image> marker has no image tokens; its (blank) image is never looked at
    text = {"question": "What colour is the sky?", "answer": "The sky is blue.", "image": torch.zeros(1, 28, 28)}
    batch = vqa_collator()([text, text])
    assert image_token_id() not in batch["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(
            TASK.forward(model, batch),
            model.language_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
        )


def test_hidden_states_pass_the_images(model, batch):
    with torch.no_grad():
        states = TASK.hidden_states(model, batch, 1)
        embeds = model.embed(batch["input_ids"], batch["pixel_values"])
        expected = model.language_model(
            inputs_embeds=embeds, attention_mask=batch["attention_mask"], output_hidden_states=True
        ).hidden_states[1]
        other = TASK.hidden_states(model, {**batch, "pixel_values": batch["pixel_values"].flip(0)}, 1)
    torch.testing.assert_close(states, expected)
    assert not torch.allclose(states, other)
    torch.testing.assert_close(TASK.hidden_states(model, batch, 0), embeds)


def test_alternative_batches_keep_the_images(examples):
    batch = vqa_collator(alternatives={"idk": IdkAnswers(seed=0)})(examples)
    alt = alternative_batch(batch, "idk", TASK)
    assert alt["pixel_values"] is batch["pixel_values"]
    assert torch.equal(alt["input_ids"], batch["idk_input_ids"])
    assert "pixel_values" not in alternative_batch(batch, "idk", CausalLMTask())


def _left_padded(collator, examples):
    prompts = [collator.prompt_ids(e["question"]) for e in examples]
    length = max(map(len, prompts))
    ids = torch.full((len(prompts), length), collator.pad_token_id)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, length - len(p) :] = torch.tensor(p)
        mask[row, length - len(p) :] = 1
    return ids, mask, prompts


def test_first_token_logits_are_the_last_position_of_a_left_padded_forward(model, examples):
    collator = vqa_collator()
    ids, mask, prompts = _left_padded(collator, examples)
    assert len({len(p) for p in prompts}) > 1  # some rows really are padded
    pixels = torch.stack([e["image"] for e in examples])
    with torch.no_grad():
        expected = model(ids, attention_mask=mask, pixel_values=pixels).logits[:, -1]
    logits = first_token_logits(model, collator, examples, batch_size=3)  # two batches
    assert logits.shape == (len(examples), len(vlm_tokenizer()))
    torch.testing.assert_close(logits, expected)
    # each row is what its prompt alone gives (the padding is masked)
    for row, (prompt, image) in enumerate(zip(prompts, pixels)):
        with torch.no_grad():
            alone = model(torch.tensor([prompt]), pixel_values=image[None]).logits[0, -1]
        torch.testing.assert_close(logits[row], alone, rtol=1e-4, atol=1e-4)


def test_the_system_prompt_of_an_example_is_used(model, examples):
    collator = vqa_collator()
    plain = first_token_logits(model, collator, examples[:1])
    other = first_token_logits(model, collator, [{**examples[0], "system": "Answer in one word."}])
    assert not torch.allclose(plain, other)


def test_the_mode_is_restored(examples):
    model = tiny_vlm(seed=1).train()
    first_token_logits(model, vqa_collator(), examples[:1])
    generate_vlm_answers(model, vqa_collator(), examples[:1], max_new_tokens=1)
    assert model.training and not model.vision_tower.training


def test_generated_answers_start_with_the_first_token_argmax(model, examples):
    collator, tokenizer = vqa_collator(), vlm_tokenizer()
    greedy = first_token_logits(model, collator, examples).argmax(-1)
    one = generate_vlm_answers(model, collator, examples, max_new_tokens=1, batch_size=3)
    assert one == [tokenizer.decode([int(t)], skip_special_tokens=True).strip() for t in greedy]
    longer = generate_vlm_answers(model, collator, examples, max_new_tokens=4, batch_size=3)
    assert all(a.startswith(b) for a, b in zip(longer, one))
    assert sum(len(a) > len(b) for a, b in zip(longer, one)) >= 1  # it did generate more than one token


def test_argument_errors(model, examples):
    with pytest.raises(ValueError, match="`batch_size`"):
        first_token_logits(model, vqa_collator(), examples, batch_size=0)
    with pytest.raises(ValueError, match="`max_new_tokens`"):
        generate_vlm_answers(model, vqa_collator(), examples, max_new_tokens=0)
