"""ESD: the negatively guided target and the loss in closed form on a tiny UNet."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.methods import ESD, StepContext, esd_target
from lightning_unlearn.tasks import ClassificationTask
from tests.methods._diffusion_toy import datamodule, encode, task, tiny_unet


def test_esd_target_closed_form():
    null, concept = torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0])
    torch.testing.assert_close(esd_target(null, concept, 1.0), torch.tensor([-1.0, 5.0]))  # 2·ε(∅) − ε(c)
    torch.testing.assert_close(esd_target(null, concept, 0.0), null)


def test_esd_loss_matches_the_paper_formula_on_a_tiny_unet():
    dm = datamodule()
    dm.setup("fit")
    model, t = tiny_unet(), task()
    method = ESD(negative_guidance=0.7, parameters="full")
    method.setup(model, t, dm.forget_dataloader(shuffle=False))
    batch = next(iter(dm.forget_dataloader(shuffle=False)))
    out = method.loss(StepContext(model, t, batch, None))
    with torch.no_grad():
        ref = method.reference
        x_t = t.scheduler.add_noise(batch["pixel_values"], batch["noise"], batch["timesteps"])
        null = encode([""]).expand(x_t.shape[0], -1, -1)
        e_null = ref(x_t, batch["timesteps"], encoder_hidden_states=null).sample
        e_c = ref(x_t, batch["timesteps"], encoder_hidden_states=batch["encoder_hidden_states"]).sample
        e_model = model(x_t, batch["timesteps"], encoder_hidden_states=batch["encoder_hidden_states"]).sample
        expected = ((e_model - (e_null - 0.7 * (e_c - e_null))) ** 2).mean()
    torch.testing.assert_close(out.loss.detach(), expected, atol=1e-5, rtol=1e-5)
    assert set(out.parts) == {"forget_loss", "loss"}  # the paper has no retain term


def test_esd_parameter_choices_select_the_papers_layers():
    model, t = tiny_unet(), task()
    dm = datamodule()
    dm.setup("fit")
    x = ESD(parameters="xattn")
    x.setup(model, t, dm.forget_dataloader(shuffle=False))
    assert x.masks and all("attn2." in n for n in x.masks)
    u = ESD(parameters="noxattn")
    u.setup(tiny_unet(), t, dm.forget_dataloader(shuffle=False))
    assert u.masks and not any("attn2." in n or n.startswith(("time_embedding", "conv_out")) for n in u.masks)


def test_esd_errors():
    with pytest.raises(ValueError, match="`parameters` should be one of"):
        ESD(parameters="unet")
    with pytest.raises(ValueError, match="`negative_guidance` should be >= 0"):
        ESD(negative_guidance=-1.0)
    with pytest.raises(TypeError, match="ESD unlearns text-conditioned diffusion models: it needs task=DiffusionTask"):
        ESD().setup(torch.nn.Linear(2, 2), ClassificationTask())
