"""The concept UNet, MiniLM prompt states and the DDIM pipeline (tiny UNet; the real encoder once)."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.models.diffusion import (
    CONCEPTS,
    PARAPHRASE_TEMPLATES,
    TRAIN_TEMPLATES,
    ConceptDiffusionPipeline,
    captions,
    concept_unet,
    prompt_embeddings,
)
from tests.methods._diffusion_toy import encode, tiny_unet


def test_captions_and_paraphrases_are_disjoint():
    assert captions(7) == [t.format("sneaker") for t in TRAIN_TEMPLATES]
    assert not set(captions(7)) & set(captions(7, PARAPHRASE_TEMPLATES))
    assert len(CONCEPTS) == 10


def test_concept_unet_has_cross_attention_to_384_d_states_and_checks_widths():
    unet = concept_unet()
    assert unet.config.cross_attention_dim == 384 and unet.config.sample_size == 16
    assert any(n.endswith("attn2.to_k") for n, _ in unet.named_modules())
    out = unet(torch.zeros(2, 1, 16, 16), torch.tensor([10, 500]), encoder_hidden_states=torch.zeros(2, 5, 384)).sample
    assert out.shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="`block_out_channels` should be"):
        concept_unet(block_out_channels=(30, 64))


def test_pipeline_generates_images_in_unit_range_per_prompt():
    pipe = ConceptDiffusionPipeline(tiny_unet(), num_train_timesteps=100, encode=encode)
    images = pipe(["concept 0", "concept 1"], num_images=3, num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (6, 1, 8, 8) and float(images.min()) >= 0 and float(images.max()) <= 1
    again = pipe(["concept 0", "concept 1"], num_images=3, num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(images, again)  # seeded
    with pytest.raises(ValueError, match="Give `prompt`"):
        pipe()


def test_minilm_prompt_states_are_token_sequences_and_differ_by_concept(tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTNING_UNLEARN_CACHE", str(tmp_path))
    states = prompt_embeddings(["a photo of a sneaker", "a photo of a bag", ""])
    assert states.shape == (3, 12, 384)
    assert not torch.allclose(states[0], states[1])
    assert list(tmp_path.rglob("prompts-*.pt"))  # cached on disk
    with pytest.raises(ValueError, match="`prompts` should be a non-empty list"):
        prompt_embeddings("a photo")
