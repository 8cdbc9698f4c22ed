"""One-shot methods (SSD, IU) through the ``Unlearn`` callback: the edit is made on the weights the model has when the
phase starts, here after the user's training, not on those ``setup`` saw."""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader
from toys import accuracy, make_trainer

from lightning_unlearn import Unlearn
from lightning_unlearn.methods import SSD, InfluenceUnlearning
from lightning_unlearn.tasks import ClassificationTask

from ._toy import UserClassifier


class LastEpochWeights(Callback):
    """The module's weights at the end of the user's last epoch (before the ``after_training`` phase)."""

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.state = copy.deepcopy(pl_module.state_dict())


@pytest.mark.parametrize(
    ("make", "forgets"), [(lambda: SSD(), True), (lambda: InfluenceUnlearning(damping=1.0, scale=100.0), False)], ids=["ssd", "iu"]
)
def test_the_after_training_phase_edits_the_trained_weights(data, pretrained, make, forgets):
    module = UserClassifier(lr=1e-3)
    module.load_state_dict(pretrained)
    method = make()
    unlearn = Unlearn(
        method,
        forget=data["forget"],
        retain=data["retain"],
        schedule="after_training",
        max_steps=1,
        batch_size=16,
        optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
        progress_bar=False,
    )
    probe = LastEpochWeights()
    trainer = make_trainer(max_epochs=2, callbacks=[unlearn, probe])
    trainer.fit(module, DataLoader(data["train"], batch_size=50, shuffle=True))  # the user trains on all the data
    assert any(not torch.equal(v, pretrained[k]) for k, v in probe.state.items())
    assert method.edited and unlearn.steps == 1
    if forgets:
        assert accuracy(module, data["forget"]) < 30 and accuracy(module, data["retain"]) > 90

    # the same edit made by hand on the weights the user's training ended with
    expected = UserClassifier()
    expected.load_state_dict(probe.state)
    again = make()
    again.setup(expected, ClassificationTask(), unlearn.forget.loader(), unlearn.retain.loader())
    again.edit(expected, ClassificationTask())
    for name, value in expected.state_dict().items():
        torch.testing.assert_close(module.state_dict()[name], value, msg=name)
