"""Stake the Points inside the Unlearn callback, on a user's existing LightningModule (retain-set-free)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from toys import accuracy, make_trainer

from lightning_unlearn import Unlearn
from lightning_unlearn.methods import StakeThePoints

ANCHORS = F.normalize(torch.randn(4, 16, generator=torch.Generator().manual_seed(0)), dim=-1)


def test_callback_phase_on_a_users_module(data, user_module):
    m = StakeThePoints(anchors=ANCHORS, layer="net.0", calibration_steps=100, proxy_eps=3.0)  # the user's module holds the MLP as `net`
    unlearn = Unlearn(
        m, forget=data["forget"], schedule="before_training", epochs=4, batch_size=16,
        optimizer=functools.partial(torch.optim.Adam, lr=1e-2), progress_bar=False,
    )
    before = m.projector
    make_trainer(max_epochs=1, callbacks=[unlearn], limit_train_batches=1).fit(user_module, DataLoader(data["retain"], batch_size=50))
    assert before is None and m.projector is not None
    assert accuracy(user_module, data["forget"]) < 20
    assert accuracy(user_module, data["retain"]) > 90


def test_callback_interleaved_adds_the_projector_to_the_users_optimizer(data, user_module):
    m = StakeThePoints(anchors=ANCHORS, layer="net.0", calibration_steps=100, proxy_eps=3.0)
    unlearn = Unlearn(m, forget=data["forget"], batch_size=16, progress_bar=False)
    trainer = make_trainer(max_epochs=3, callbacks=[unlearn])
    trainer.fit(user_module, DataLoader(data["retain"], batch_size=50))
    (optimizer,) = trainer.optimizers
    assert any(g["params"] == m.parameters() for g in optimizer.param_groups)
    assert not torch.equal(m.projector.weight, m._projector_ori.weight)
    assert accuracy(user_module, data["forget"]) < 20
    assert accuracy(user_module, data["retain"]) > 90
