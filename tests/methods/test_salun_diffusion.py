"""SalUn for diffusion: the remapping loss in closed form, the saliency mask from the ε-loss."""

from __future__ import annotations

import torch

from lightning_unlearn.methods import SalUnDiffusion, StepContext
from tests.methods._diffusion_toy import datamodule, encode, task, tiny_unet


def _batches():
    dm = datamodule()
    dm.setup("fit")
    return dm, next(iter(dm.forget_dataloader(shuffle=False))), next(iter(dm.retain_dataloader(shuffle=False)))


def test_remapping_loss_closed_form_with_a_surrogate_and_with_retain_prompts():
    dm, forget, retain = _batches()
    model, t = tiny_unet(), task()
    method = SalUnDiffusion(threshold=0.3, surrogate="concept 2", retain_loss="none")
    method.setup(model, t, dm.forget_dataloader(shuffle=False))
    out = method.loss(StepContext(model, t, forget, retain))
    with torch.no_grad():
        x_t = t.scheduler.add_noise(forget["pixel_values"], forget["noise"], forget["timesteps"])
        e_c = model(x_t, forget["timesteps"], encoder_hidden_states=forget["encoder_hidden_states"]).sample
        e_s = model(x_t, forget["timesteps"], encoder_hidden_states=encode(["concept 2"]).expand(x_t.shape[0], -1, -1)).sample
    torch.testing.assert_close(out.parts["forget_loss"], ((e_c - e_s) ** 2).mean(), atol=1e-5, rtol=1e-5)
    # without a surrogate, the retain batch's prompts (other concepts) are the targets, sample by sample
    default = SalUnDiffusion(threshold=0.3, retain_loss="none")
    default.setup(model, t, dm.forget_dataloader(shuffle=False))
    out = default.loss(StepContext(model, t, forget, retain))
    with torch.no_grad():
        e_r = model(x_t, forget["timesteps"], encoder_hidden_states=retain["encoder_hidden_states"][: x_t.shape[0]]).sample
    torch.testing.assert_close(out.parts["forget_loss"], ((e_c - e_r) ** 2).mean(), atol=1e-5, rtol=1e-5)


def test_saliency_mask_keeps_the_threshold_fraction():
    dm, _, _ = _batches()
    model = tiny_unet()
    method = SalUnDiffusion(threshold=0.25)
    method.setup(model, task(), dm.forget_dataloader(shuffle=False))
    kept = sum(int(m.sum()) for m in method.masks.values())
    total = sum(p.numel() for p in model.parameters())
    assert kept == round(0.25 * total)
