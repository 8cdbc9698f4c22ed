"""VisionLanguageModel: the real EfficientNet-Lite0 tower, a projector and a tiny Llama, spliced LLaVA-style."""

from __future__ import annotations

import pytest
import torch
from vlm_toys import NUM_IMAGE_TOKENS, image_token_id, tiny_vlm, tower, vlm_tokenizer

from lightning_unlearn.models.vlm import VisionLanguageModel

IMG = image_token_id()


@pytest.fixture(scope="module")
def model():
    return tiny_vlm().eval()


def _images(n: int, seed: int = 0, channels: int = 1) -> torch.Tensor:
    return torch.rand(n, channels, 28, 28, generator=torch.Generator().manual_seed(seed))


def _ids(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


def _text(n: int, start: int = 50) -> list[int]:
    return list(range(start, start + n))


def test_shapes(model):
    assert model.num_image_tokens == NUM_IMAGE_TOKENS == 4  # 64×64 at stride 32
    assert model.projector[0].in_features == 1280 and model.projector[-1].out_features == 32
    assert model.config is model.language_model.config
    assert model.get_input_embeddings() is model.language_model.get_input_embeddings()


def test_image_embeddings_replace_exactly_the_image_positions(model):
    # row 0: a contiguous image block; row 1: image tokens scattered between text; row 2: text only
    rows = [
        _text(3) + [IMG] * 4 + _text(3, 60),
        [51, IMG, 52, IMG, IMG, 53, 54, IMG, 55, 56],
        _text(10, 70),
    ]
    ids, pixels = _ids(rows), _images(3)
    with torch.no_grad():
        spliced = model.embed(ids, pixels)
        manual = model.get_input_embeddings()(ids).clone()
        images = model.image_embeddings(pixels)
        for row in (0, 1):
            manual[row, ids[row] == IMG] = images[row]
        torch.testing.assert_close(spliced, manual)
        # the text positions keep the LM's own embeddings; the image positions do not
        text = model.get_input_embeddings()(ids)
        assert torch.equal(spliced[ids != IMG], text[ids != IMG])
        assert not torch.allclose(spliced[ids == IMG], text[ids == IMG])
        # the forward pass is the LM on those embeddings
        logits = model(ids, attention_mask=torch.ones_like(ids), pixel_values=pixels).logits
        torch.testing.assert_close(logits, model.language_model(inputs_embeds=manual, attention_mask=torch.ones_like(ids)).logits)


def test_image_embeddings_are_the_projected_tower_features(model):
    pixels = _images(2)
    with torch.no_grad():
        images = torch.nn.functional.interpolate(pixels, size=64, mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        features = model.vision_tower.features((images - mean) / std)  # [2, 1280, 2, 2]
        tokens = features.flatten(2).transpose(1, 2)  # row-major 2×2 grid
        torch.testing.assert_close(model.image_embeddings(pixels), model.projector(tokens))
        # a different image gives different image tokens (the tower sees it)
        assert not torch.allclose(model.image_embeddings(pixels[:1]), model.image_embeddings(pixels[1:]))
        # grey and its RGB repeat are the same image
        torch.testing.assert_close(model.image_embeddings(pixels), model.image_embeddings(pixels.expand(-1, 3, -1, -1)))


def test_text_only_rows_ignore_pixel_values(model):
    ids = _ids([_text(6), [IMG] * 4 + _text(2)])
    with torch.no_grad():
        a = model(ids, pixel_values=_images(2, seed=1)).logits
        b = model(ids, pixel_values=_images(2, seed=2)).logits
        text_only = model(ids[:1]).logits  # no image token anywhere: pixel_values may be left out
        plain = model.language_model(input_ids=ids[:1]).logits
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[:1], text_only)
    torch.testing.assert_close(text_only, plain)
    assert not torch.allclose(a[1], b[1])  # the image row does see its image


def test_bad_inputs_raise_clear_errors(model):
    with pytest.raises(ValueError, match=r"Row 1 of `input_ids` holds 3 image tokens .*0 or exactly num_image_tokens=4"):
        model(_ids([[IMG] * 4 + _text(2), [IMG] * 3 + _text(3)]), pixel_values=_images(2))
    with pytest.raises(ValueError, match=r"holds 5 image tokens"):
        model(_ids([[IMG] * 5 + _text(1)]), pixel_values=_images(1))
    with pytest.raises(ValueError, match=r"`input_ids` hold image tokens but no `pixel_values` were given"):
        model(_ids([[IMG] * 4 + _text(2)]))
    with pytest.raises(ValueError, match=r"`pixel_values` should hold one image per row of `input_ids` \(2\), got 3"):
        model(_ids([[IMG] * 4 + _text(2), _text(6)]), pixel_values=_images(3))
    with pytest.raises(TypeError, match=r"`pixel_values` should be a float tensor"):
        model(_ids([[IMG] * 4 + _text(2)]), pixel_values=(_images(1) * 255).long())
    with pytest.raises(TypeError, match=r"`pixel_values` should be a float tensor .*got list"):
        model(_ids([[IMG] * 4 + _text(2)]), pixel_values=[_images(1)[0]])


def test_constructor_errors():
    lm = tiny_vlm().language_model
    with pytest.raises(TypeError, match=r"`language_model` should be a transformers causal LM .*got Linear"):
        VisionLanguageModel(torch.nn.Linear(2, 2), IMG, vision_tower=tower())
    with pytest.raises(TypeError, match=r"`vision_tower` should have a features\(images\) method, got Linear"):
        VisionLanguageModel(lm, IMG, vision_tower=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="`image_token_id`"):
        VisionLanguageModel(lm, -1, vision_tower=tower())
    with pytest.raises(ValueError, match="`image_size`"):
        VisionLanguageModel(lm, IMG, vision_tower=tower(), image_size=4)


def test_the_tower_stays_frozen_and_in_eval_mode():
    model = tiny_vlm()
    tower_state = {k: v.clone() for k, v in model.vision_tower.state_dict().items()}
    model.train()
    assert model.training and model.projector.training and model.language_model.training
    assert not model.vision_tower.training
    assert not any(m.training for m in model.vision_tower.modules())
    assert all(not p.requires_grad for p in model.vision_tower.parameters())
    ids = _ids([[IMG] * 4 + _text(4), _text(8)])
    out = model(ids, pixel_values=_images(2)).logits
    out.logsumexp(-1).mean().backward()
    # gradients reach the projector and the LM, never the tower; the batch-norm statistics are untouched
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.projector.parameters())
    assert model.get_input_embeddings().weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.vision_tower.parameters())
    for key, value in model.vision_tower.state_dict().items():
        assert torch.equal(value, tower_state[key]), key
    # an optimizer over the trainable parameters never sees the tower
    tower_ids = {id(p) for p in model.vision_tower.parameters()}
    assert not tower_ids & {id(p) for p in model.parameters() if p.requires_grad}


def test_an_unfrozen_tower_trains():
    model = tiny_vlm(freeze_vision=False).train()
    assert model.vision_tower.training
    out = model(_ids([[IMG] * 4 + _text(4)]), pixel_values=_images(1)).logits
    out.logsumexp(-1).mean().backward()
    assert model.vision_tower._conv_stem.weight.grad is not None
    assert model.vision_tower._conv_stem.weight.grad.abs().sum() > 0


def _greedy_by_hand(model, prompt: torch.Tensor, pixels: torch.Tensor, steps: int, eos: int) -> list[int]:
    """Greedy decoding with full forward passes: the prompt's spliced embeddings, then the LM's embeddings of the new tokens."""
    new: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            embeds = model.embed(prompt[None], pixels[None])
            if new:
                embeds = torch.cat([embeds, model.get_input_embeddings()(torch.tensor([new]))], dim=1)
            token = int(model.language_model(inputs_embeds=embeds).logits[0, -1].argmax())
            new.append(token)
            if token == eos:
                break
    return new


def test_generate_returns_the_prompt_and_the_greedy_tokens(model):
    eos = vlm_tokenizer().eos_token_id
    prompts = [_text(3) + [IMG] * 4 + _text(2, 60), [IMG] * 4 + _text(4, 80), _text(5, 90)]
    pixels = _images(3, seed=3)
    steps = 5
    for prompt, image in zip(prompts, pixels):
        ids = torch.tensor([prompt])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), pixel_values=image[None], max_new_tokens=steps, do_sample=False)
        assert torch.equal(out[0, : len(prompt)], ids[0])
        assert out.shape[1] - len(prompt) <= steps
        assert out[0, len(prompt) :].tolist() == _greedy_by_hand(model, ids[0], image, steps, eos)
    # a left-padded batch generates what each prompt generates alone (first rows; later tokens may follow padding)
    pad = vlm_tokenizer().pad_token_id
    length = max(len(p) for p in prompts)
    ids = torch.full((3, length), pad)
    mask = torch.zeros((3, length), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, length - len(prompt) :] = torch.tensor(prompt)
        mask[row, length - len(prompt) :] = 1
    out = model.generate(ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=steps, do_sample=False, pad_token_id=pad)
    assert torch.equal(out[:, :length], ids)
    for row, (prompt, image) in enumerate(zip(prompts, pixels)):
        hand = _greedy_by_hand(model, torch.tensor(prompt), image, steps, eos)
        assert out[row, length : length + len(hand)].tolist() == hand


def test_smollm2_image_token_is_one_unused_special_token():
    # the real SmolLM2 tokenizer (no model): smollm2_vlm's image token is a single unused token
    from lightning_unlearn.datamodules.vqa import VQACollator
    from lightning_unlearn.models.llm import smollm2_tokenizer
    from lightning_unlearn.models.vlm import SMOLLM2_IMAGE_TOKEN

    tokenizer = smollm2_tokenizer()
    image = tokenizer.convert_tokens_to_ids(SMOLLM2_IMAGE_TOKEN)
    assert image != tokenizer.unk_token_id and tokenizer(SMOLLM2_IMAGE_TOKEN, add_special_tokens=False)["input_ids"] == [image]
    assert image not in tokenizer("<image> What is the empty output?", add_special_tokens=False)["input_ids"]
    prompt = VQACollator(tokenizer, image, 4).prompt_ids("<image>\nWhat is in the picture?")
    assert prompt.count(image) == 4


@pytest.mark.parametrize("freeze_vision", [True, False])
def test_building_the_model_leaves_the_tower_weights_and_statistics_alone(freeze_vision):
    # a tower handed over in train mode (a fresh EfficientNetLite0 with loaded weights): the shape probe runs in eval mode
    from lightning_unlearn.models.efficientnet import EfficientNetLite0

    vision = EfficientNetLite0()
    vision.load_state_dict(tower().state_dict())
    before = {k: v.clone() for k, v in vision.state_dict().items()}
    model = VisionLanguageModel(tiny_vlm().language_model, IMG, vision_tower=vision, freeze_vision=freeze_vision)
    for key, value in vision.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert model.vision_tower.training is not freeze_vision  # its mode is kept unless frozen
