"""The ``Unlearn`` callback on a user's own diffusion LightningModule (not the library's): ESD as a phase before the
user's training continues, on the tiny cross-attention UNet."""

from __future__ import annotations

from functools import partial

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from lightning_unlearn import Unlearn
from lightning_unlearn.methods import ESD, StepContext
from tests.methods._diffusion_toy import datamodule, task, tiny_unet

QUIET = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")


class MyDiffusion(pl.LightningModule):
    """A user's own text-conditioned denoiser with its own DDPM training step."""

    def __init__(self, lr: float = 1e-3) -> None:
        super().__init__()
        self.lr = lr
        self.unet = tiny_unet()
        self.noising = task()

    def forward(self, x_t, t, encoder_hidden_states):
        return self.unet(x_t, t, encoder_hidden_states=encoder_hidden_states).sample

    def training_step(self, batch, batch_idx):
        return self.noising.per_sample_loss(self.noising.forward(self, batch), batch).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def test_esd_phase_on_a_users_own_diffusion_module():
    pl.seed_everything(0)
    dm = datamodule()
    dm.setup("fit")
    model = MyDiffusion(lr=0.0)  # the user's own steps change nothing here: what moves is the ESD phase
    probe = dict(next(iter(dm.forget_dataloader(shuffle=False))))
    t = task()
    method = ESD(parameters="xattn")
    phase = Unlearn(method, forget=dm.forget_set, retain=dm.retain_set, task=t, schedule="before_training", epochs=3, batch_size=4, optimizer=partial(torch.optim.Adam, lr=1e-2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pl.Trainer(max_epochs=1, callbacks=[phase], **QUIET).fit(model, DataLoader(dm.retain_set, batch_size=8))
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert moved and all(".attn2." in k for k in moved)  # ESD-x: cross-attention only
    assert phase.summary  # before/after forget scores of the phase
    # ESD's own objective on a fixed probe (same noise) is lower than at θ* (the reference the method kept)
    t.draw(probe)
    at_start = method.loss(StepContext(method.reference, t, dict(probe), None)).loss
    now = method.loss(StepContext(model, t, dict(probe), None)).loss
    assert float(now) < float(at_start)
