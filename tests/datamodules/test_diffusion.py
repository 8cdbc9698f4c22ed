"""Captioned Fashion-MNIST: a concept as the forget set, prompt states per sample, empty prompts for CFG."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.datamodules.diffusion import CaptionedImages, FashionMNISTConceptDataModule


def test_forget_set_is_one_concept_with_its_captions():
    torch.manual_seed(0)
    dm = FashionMNISTConceptDataModule(forget_class=7, train_limit=600, batch_size=8, seed=0)
    dm.setup("fit")
    forget = next(iter(dm.forget_dataloader(shuffle=False)))
    assert set(forget["labels"].tolist()) == {7}
    assert forget["pixel_values"].shape[1:] == (1, 16, 16)
    assert float(forget["pixel_values"].min()) >= -1 and float(forget["pixel_values"].max()) <= 1
    assert forget["encoder_hidden_states"].shape[1:] == (12, 384)
    retain = next(iter(dm.retain_dataloader(shuffle=False)))
    assert 7 not in retain["labels"].tolist()
    # a sample's prompt is one of its own concept's captions
    data = dm.forget_set
    states = data[0]["encoder_hidden_states"] if isinstance(data, CaptionedImages) else data.dataset[data.indices[0]]["encoder_hidden_states"]
    table = (data if isinstance(data, CaptionedImages) else data.dataset).caption_states[7]
    assert any(torch.equal(states, row) for row in table)


def test_empty_prompts_at_the_given_rate_and_errors():
    states = torch.randn(2, 3, 4, 8)
    null = torch.zeros(4, 8)
    data = CaptionedImages(torch.zeros(400, 1, 4, 4), torch.arange(400) % 2, states, null, uncond_prob=0.5)
    torch.manual_seed(0)
    empty = sum(bool((data[i]["encoder_hidden_states"] == 0).all()) for i in range(400))
    assert 150 < empty < 250
    with pytest.raises(ValueError, match="`uncond_prob` should lie in"):
        CaptionedImages(torch.zeros(2, 1, 4, 4), torch.arange(2), states, null, uncond_prob=1.0)
    with pytest.raises(ValueError, match="`caption_states` should be"):
        CaptionedImages(torch.zeros(2, 1, 4, 4), torch.tensor([0, 5]), states, null)
