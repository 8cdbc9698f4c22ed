"""RAZOR for diffusion: per-head units of diffusers attention, the edit set, the objective in closed form."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.methods import RAZORDiffusion, RegexMask, StepContext
from lightning_unlearn.methods.razor import DIFFUSERS_PROJECTIONS, editing_units
from tests.methods._diffusion_toy import datamodule, encode, task, tiny_unet


def test_units_split_diffusers_attention_into_heads_and_partition_the_parameters():
    model = tiny_unet()
    units = editing_units(model, projections=DIFFUSERS_PROJECTIONS)
    heads = [u for u in units if ".attn2.head" in u]
    assert heads and all(u.rsplit("head", 1)[1].isdigit() for u in heads)
    attn = model.down_blocks[0].attentions[0].transformer_blocks[0].attn2
    assert len([u for u in heads if u.startswith("down_blocks.0.attentions.0.transformer_blocks.0.attn2.")]) == attn.heads
    covered = {}
    for parts in units.values():
        for part in parts:
            covered[part.param] = covered.get(part.param, 0) + part.take(torch.ones(dict(model.named_parameters())[part.param].shape)).numel()
    assert covered == {n: p.numel() for n, p in model.named_parameters()}


def test_edit_set_mask_and_objective_closed_form():
    dm = datamodule()
    dm.setup("fit")
    model, t = tiny_unet(), task()
    method = RAZORDiffusion(top_k=3, rho=0.5, mismatch_weight=2.0, surrogate="concept 2")
    method.setup(model, t, dm.forget_dataloader(shuffle=False), dm.retain_dataloader(shuffle=False))
    assert len(method.selected) == 3
    assert method.selected == sorted(method.scores, key=lambda u: -method.scores[u])[:3]
    kept = sum(int(m.sum()) for m in method.masks.values())
    assert kept == sum(part.take(torch.ones(dict(model.named_parameters())[part.param].shape)).numel() for u in method.selected for part in method.units[u])
    forget = next(iter(dm.forget_dataloader(shuffle=False)))
    retain = next(iter(dm.retain_dataloader(shuffle=False)))
    out = method.loss(StepContext(model, t, forget, retain))
    with torch.no_grad():
        x_t = t.scheduler.add_noise(forget["pixel_values"], forget["noise"], forget["timesteps"])
        e_c = model(x_t, forget["timesteps"], encoder_hidden_states=forget["encoder_hidden_states"]).sample
        e_s = model(x_t, forget["timesteps"], encoder_hidden_states=encode(["concept 2"]).expand(x_t.shape[0], -1, -1)).sample
        r_t = t.scheduler.add_noise(retain["pixel_values"], retain["noise"], retain["timesteps"])
        e_r = model(r_t, retain["timesteps"], encoder_hidden_states=retain["encoder_hidden_states"]).sample
    torch.testing.assert_close(out.parts["forget_loss"], 0.5 * ((e_c - e_s) ** 2).mean(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.parts["retain_loss"], ((e_r - retain["noise"]) ** 2).mean(), atol=1e-5, rtol=1e-5)
    assert float(out.parts["regularizer"]) == pytest.approx(0.0, abs=1e-10)  # θ = θ₀ at the start


def test_razor_diffusion_errors():
    with pytest.raises(ValueError, match="`mask` should be None for RAZOR"):
        RAZORDiffusion(mask=RegexMask("x"))
    with pytest.raises(ValueError, match="`projections` should name"):
        RAZORDiffusion(projections=["to_q"])
    with pytest.raises(ValueError, match="Give either `top_k` or `threshold`"):
        RAZORDiffusion(top_k=2, threshold=0.1)
