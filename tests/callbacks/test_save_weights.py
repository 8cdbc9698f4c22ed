"""``SaveWeights`` never writes over the model a fit starts from: the ``original``/``oracle`` files of an
``UnlearningModule``, and (unless ``overwrite=True``) a file a user's own module was loaded from."""

from __future__ import annotations

import functools

import pytest
import torch
from torch.utils.data import DataLoader
from toys import blobs, make_trainer, mlp, sha256

from lightning_unlearn import ForgetRetainDataModule, SaveWeights, SupervisedModule, UnlearningModule
from lightning_unlearn.methods import GradDiff


def _loader() -> DataLoader:
    return DataLoader(blobs(20, seed=1), batch_size=20)


def _user_module(path=None) -> SupervisedModule:
    """A module the user's own code loaded from ``path`` (``load_state_dict(torch.load(...))``), else fresh."""
    module = SupervisedModule(mlp(1), optimizer=functools.partial(torch.optim.SGD, lr=0.5))
    if path is not None:
        module.model.load_state_dict(torch.load(path, weights_only=True))
    return module


def _fit(module, callback, steps: int = 2):
    trainer = make_trainer(max_steps=steps, limit_val_batches=0, callbacks=[callback])
    trainer.fit(module, train_dataloaders=_loader())
    return trainer


def _saved_equals(path, module) -> bool:
    saved = torch.load(path, weights_only=True)
    return saved.keys() == module.model.state_dict().keys() and all(
        torch.equal(saved[k], v) for k, v in module.model.state_dict().items()
    )


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_refuses_the_file_a_users_module_was_loaded_from(tmp_path):
    # The module was loaded by the user's own code, not through `original=`: SaveWeights overwrote the file.
    source = tmp_path / "model.pt"
    torch.save(mlp(0).state_dict(), source)
    before = sha256(source)
    trainer = make_trainer(max_steps=2, limit_val_batches=0, callbacks=[SaveWeights(str(source))])
    with pytest.raises(
        ValueError,
        match=r"SaveWeights refuses to overwrite '.*model\.pt': it holds exactly the weights this fit starts from .*"
        r"choose another output path, or pass `SaveWeights\('.*model\.pt', overwrite=True\)` to replace it",
    ):
        trainer.fit(_user_module(source), train_dataloaders=_loader())
    assert trainer.global_step == 0  # refused before training
    assert sha256(source) == before


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_refuses_a_lightning_checkpoint_the_module_was_loaded_from(tmp_path):
    source = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in mlp(0).state_dict().items()}, "epoch": 3}, source)
    module = _user_module()
    module.model.load_state_dict(mlp(0).state_dict())
    with pytest.raises(ValueError, match=r"refuses to overwrite '.*last\.ckpt': it holds exactly the weights"):
        _fit(module, SaveWeights(str(source)))


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_overwrite_true_replaces_the_file_the_module_was_loaded_from(tmp_path):
    source = tmp_path / "model.pt"
    torch.save(mlp(0).state_dict(), source)
    module = _user_module(source)
    _fit(module, SaveWeights(str(source), overwrite=True))
    assert _saved_equals(source, module) and not torch.equal(
        module.model.state_dict()["0.weight"], mlp(0).state_dict()["0.weight"]
    )


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_replaces_an_earlier_runs_output_and_its_own(tmp_path):
    # Re-running a config: the file holds other weights (an earlier run's result), which is replaced as before.
    target = tmp_path / "unlearned.pt"
    torch.save(mlp(5).state_dict(), target)
    module = _user_module()
    callback = SaveWeights(str(target))
    _fit(module, callback)
    assert _saved_equals(target, module)
    # A second fit of the same module with the same callback starts from what the first one wrote: not refused.
    _fit(module, callback, steps=4)
    assert _saved_equals(target, module)


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_a_failed_fit_does_not_unlock_the_source(tmp_path):
    source = tmp_path / "model.pt"
    torch.save(mlp(0).state_dict(), source)
    callback = SaveWeights(str(source))
    for _ in range(2):  # the refusal of the first fit does not make the file "written by this callback"
        with pytest.raises(ValueError, match="holds exactly the weights this fit starts from"):
            _fit(_user_module(source), callback)


def test_never_overwrites_the_oracle_of_an_unlearning_module(tmp_path):
    original, oracle = tmp_path / "original.pt", tmp_path / "oracle.pt"
    torch.save(mlp(0).state_dict(), original)
    torch.save(mlp(2).state_dict(), oracle)
    before = sha256(oracle)
    dm = ForgetRetainDataModule(blobs(20, seed=1), forget_class=0, batch_size=20)
    for overwrite in (False, True):
        module = UnlearningModule(mlp(), GradDiff(), original=str(original), oracle=str(oracle), monitor=False)
        trainer = make_trainer(max_steps=1, limit_val_batches=0, callbacks=[SaveWeights(str(oracle), overwrite=overwrite)])
        with pytest.raises(
            ValueError, match=r"Refusing to overwrite the oracle model at '.*oracle\.pt' \(the module's `oracle=`\)"
        ):
            trainer.fit(module, datamodule=dm)
        assert trainer.global_step == 0
    assert sha256(oracle) == before


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_refuses_a_file_that_is_not_weights_unless_overwrite(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("results of run 3\n")
    with pytest.raises(
        ValueError,
        match=r"SaveWeights refuses to overwrite '.*notes\.txt': `path` file '.*notes\.txt' is a text file, not a weights file.*overwrite=True",
    ):
        _fit(_user_module(), SaveWeights(str(notes)))
    assert notes.read_text() == "results of run 3\n"
    module = _user_module()
    _fit(module, SaveWeights(str(notes), overwrite=True))
    assert _saved_equals(notes, module)


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
def test_refuses_a_folder_before_training(tmp_path):
    trainer = make_trainer(max_steps=2, limit_val_batches=0, callbacks=[SaveWeights(str(tmp_path))])
    with pytest.raises(ValueError, match=r"`path` '.*' of SaveWeights is a folder; give a file path such as '.*model\.pt'"):
        trainer.fit(_user_module(), train_dataloaders=_loader())
    assert trainer.global_step == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"path": 3}, r"`path` should be a file path \(str or os.PathLike\), got int 3"),
        ({"path": "w.pt", "overwrite": "yes"}, r"`overwrite` should be a bool, got str 'yes'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(TypeError, match=match):
        SaveWeights(**kwargs)
