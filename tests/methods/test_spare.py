"""SPARE: module selection by saliency, LoRA only there, self-distillation in closed form (adapter-disabled teacher)."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.methods import SPARE, RegexMask, StepContext
from lightning_unlearn.methods.spare import select_modules
from tests.methods._diffusion_toy import datamodule, encode, task, tiny_unet


def test_select_modules_closed_form():
    saliency = {"a": 0.1, "b": 0.9, "c": 0.5, "d": 0.2}
    assert select_modules(saliency, 0.5) == ["b", "c"]  # top half, in model order
    assert select_modules(saliency, 0.1) == ["b"]


def test_lora_goes_only_on_the_most_salient_attention_modules_and_the_losses_match_the_closed_form():
    dm = datamodule()
    dm.setup("fit")
    model, t = tiny_unet(), task()
    method = SPARE(module_fraction=0.5, surrogate="concept 1", rank=2, lora_alpha=4)
    candidates = method.candidates(model)
    method.setup(model, t, dm.forget_dataloader(shuffle=False), dm.retain_dataloader(shuffle=False))
    assert len(method.selected) == round(0.5 * len(candidates))
    assert method.selected == select_modules(method.saliency, 0.5)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    adapted = {n.rsplit(".lora_", 1)[0] for n in trainable}
    assert adapted == set(method.selected)
    forget = next(iter(dm.forget_dataloader(shuffle=False)))
    retain = next(iter(dm.retain_dataloader(shuffle=False)))
    out = method.loss(StepContext(model, t, forget, retain))
    with torch.no_grad():  # LoRA's B starts at 0: student = teacher, so L_r = 0 and L_f is the prompt swap
        x_t = t.scheduler.add_noise(forget["pixel_values"], forget["noise"], forget["timesteps"])
        e_c = model(x_t, forget["timesteps"], encoder_hidden_states=forget["encoder_hidden_states"]).sample
        e_s = model(x_t, forget["timesteps"], encoder_hidden_states=encode(["concept 1"]).expand(x_t.shape[0], -1, -1)).sample
    torch.testing.assert_close(out.parts["forget_loss"], ((e_c - e_s) ** 2).mean(), atol=1e-5, rtol=1e-5)
    assert float(out.parts["retain_loss"]) == pytest.approx(0.0, abs=1e-10)
    torch.testing.assert_close(out.loss.detach(), 0.3 * out.parts["forget_loss"], atol=1e-6, rtol=1e-6)
    # after a step the student differs from the adapter-disabled teacher
    out.loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0).step()
    with torch.no_grad():
        student = model(x_t, forget["timesteps"], encoder_hidden_states=forget["encoder_hidden_states"]).sample
        with method.teacher(model):
            teacher = model(x_t, forget["timesteps"], encoder_hidden_states=forget["encoder_hidden_states"]).sample
    torch.testing.assert_close(teacher, e_c)
    assert not torch.allclose(student, e_c)


def test_spare_errors():
    with pytest.raises(ValueError, match="`mask` should be None for SPARE"):
        SPARE(mask=RegexMask("x"))
    with pytest.raises(ValueError, match="`retain_loss` should be one of"):
        SPARE(retain_loss="nll")
    dm = datamodule()
    dm.setup("fit")
    with pytest.raises(ValueError, match="match no nn.Linear"):
        SPARE(target_modules=["nothing"]).setup(tiny_unet(), task(), dm.forget_dataloader(shuffle=False))
