"""``SupervisedModule`` (original and oracle training) and the ``SaveWeights`` callback."""

from __future__ import annotations

import functools
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from toys import DIM, NUM_CLASSES, blobs, make_trainer, mlp, sha256

from lightning_unlearn import ForgetRetainDataModule, SaveWeights, SupervisedModule, UnlearningModule, evaluate
from lightning_unlearn._weights import load_weights
from lightning_unlearn.methods import GradDiff


def datamodule(train_on: str) -> ForgetRetainDataModule:
    train, test = blobs(100, seed=1), blobs(50, seed=2)
    return ForgetRetainDataModule(train, test, forget_class=0, batch_size=50, train_on=train_on)  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
@pytest.mark.parametrize("train_on", ["all", "retain"])
def test_supervised_training_of_the_original_and_the_oracle(train_on, tmp_path):
    dm = datamodule(train_on)
    module = SupervisedModule(mlp(), optimizer=functools.partial(torch.optim.Adam, lr=1e-2))
    trainer = make_trainer(max_epochs=5, callbacks=[SaveWeights(str(tmp_path / "out" / "model.pt"))])
    trainer.fit(module, train_dataloaders=dm.train_dataloader())
    assert trainer.global_step == 5 * (8 if train_on == "all" else 6)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])

    metrics = evaluate(module.model, dm.eval_dataloaders())
    assert metrics["RA"] > 95
    if train_on == "all":
        assert metrics["forget_acc"] > 95  # the original model knows the forget class
    else:
        assert metrics["forget_acc"] == 0  # the oracle never saw it

    saved = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    assert saved.keys() == module.model.state_dict().keys()  # the network's keys, no "model." prefix
    reloaded = mlp(seed=9)
    load_weights(reloaded, tmp_path / "out" / "model.pt")
    x = torch.randn(5, DIM)
    torch.testing.assert_close(reloaded(x), module(x), rtol=0, atol=0)


def test_supervised_module_uses_the_task_loss_and_the_optimizer_factory():
    module = SupervisedModule(mlp(), optimizer=functools.partial(torch.optim.SGD, lr=0.5))
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["lr"] == 0.5
    x, y = blobs(2, seed=3).tensors
    module.log = lambda *args, **kwargs: None  # type: ignore[method-assign]  # no Trainer attached
    torch.testing.assert_close(module.training_step((x, y), 0), F.cross_entropy(module(x), y))


def test_save_weights_refuses_to_overwrite_the_original(tmp_path):
    original = tmp_path / "original.pt"
    torch.save(mlp().state_dict(), original)
    before = sha256(original)
    dm = datamodule("forget_retain")
    for target in (original, tmp_path / "sub" / ".." / "original.pt"):
        module = UnlearningModule(mlp(), GradDiff(), original=str(original))
        trainer = make_trainer(max_steps=1, limit_val_batches=0, callbacks=[SaveWeights(str(target))])
        with pytest.raises(ValueError, match=r"Refusing to overwrite the original model at '.*original\.pt'"):
            trainer.fit(module, datamodule=dm)
        assert trainer.global_step == 0  # refused before training, not after it
        assert sha256(original) == before

    module = UnlearningModule(mlp(), GradDiff(), original=str(original))
    make_trainer(max_steps=1, limit_val_batches=0, callbacks=[SaveWeights(str(tmp_path / "unlearned.pt"))]).fit(module, datamodule=dm)
    unlearned = torch.load(tmp_path / "unlearned.pt", weights_only=True)
    assert all(torch.equal(unlearned[k], v) for k, v in module.model.state_dict().items())
    assert sha256(original) == before


class PlainModule(pl.LightningModule):
    """A LightningModule without a ``model`` attribute: SaveWeights saves the module itself."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(DIM, NUM_CLASSES)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.layer(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_save_weights_of_a_module_without_a_model_attribute(tmp_path):
    module = PlainModule()
    trainer = make_trainer(max_steps=2, callbacks=[SaveWeights(str(tmp_path / "plain.pt"))])
    trainer.fit(module, datamodule(train_on="all").train_dataloader())
    saved = torch.load(tmp_path / "plain.pt", weights_only=True)
    assert saved.keys() == {"layer.weight", "layer.bias"}
    assert torch.equal(saved["layer.weight"], module.layer.weight.detach())
