"""``UnlearningModule``: paired batches, original/oracle weights, evaluation metrics, masks, failures, resume."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset
from toys import DIM, blobs, fit_plain, make_trainer, mlp, sha256

from lightning_unlearn import ForgetRetainDataModule, UnlearningModule, evaluate
from lightning_unlearn.methods import NPO, GradDiff, GradientAscent, NonFiniteLossError, RandomLabel, SalUn, StepContext
from lightning_unlearn.metrics import js_divergence, output_probabilities


def single(results: list[dict[str, float]]) -> dict[str, float]:
    """The metrics of ``validate``/``test``: logged at epoch end, so every evaluation loader reports the same."""
    assert results and all(r == results[0] for r in results)
    return results[0]


def adam(lr: float) -> Any:
    return functools.partial(torch.optim.Adam, lr=lr)


@pytest.fixture(scope="module")
def train_test() -> tuple[TensorDataset, TensorDataset]:
    return blobs(100, seed=1), blobs(50, seed=2)


@pytest.fixture
def dm(train_test) -> ForgetRetainDataModule:
    train, test = train_test
    return ForgetRetainDataModule(train, test, forget_class=0, batch_size=25, holdout_fraction=0.5)


@pytest.fixture(scope="module")
def weights(train_test, tmp_path_factory) -> dict[str, Path]:
    """``original`` (trained on everything) and ``oracle`` (trained on the retain classes only) weight files."""
    train, _ = train_test
    folder = tmp_path_factory.mktemp("weights")
    retain = TensorDataset(*(t[train.tensors[1] != 0] for t in train.tensors))
    paths = {"original": folder / "original.pt", "oracle": folder / "oracle.pt"}
    torch.save(fit_plain(mlp(0), *train.tensors).state_dict(), paths["original"])
    torch.save(fit_plain(mlp(1), *retain.tensors).state_dict(), paths["oracle"])
    return paths


# ---------------------------------------------------------------------- construction and batches
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "mlp"}, r"`model` should be a torch.nn.Module, got str"),
        ({"method": "ga"}, r"`method` should be an UnlearningMethod \(e.g. GradientAscent\(\)\), got str"),
    ],
)
def test_constructor_rejects_wrong_types(kwargs, match):
    with pytest.raises(TypeError, match=match):
        UnlearningModule(**{"model": mlp(), "method": GradientAscent(), **kwargs})


@pytest.mark.parametrize(
    "batch",
    [(torch.randn(4, DIM), torch.zeros(4, dtype=torch.long)), {"inputs": torch.randn(4, DIM)}, torch.randn(4, DIM)],
    ids=["tuple", "dict-without-splits", "tensor"],
)
def test_training_step_rejects_unpaired_batches(batch):
    with pytest.raises(TypeError, match=r"expects paired batches \{'forget': \.\.\., 'retain': \.\.\.\}"):
        UnlearningModule(mlp(), GradientAscent()).training_step(batch, 0)


@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
def test_fit_on_plain_batches_fails_with_the_paired_batch_error(train_test):
    with pytest.raises(TypeError, match="ForgetRetainDataModule\\(train_on='forget_retain'\\)"):
        make_trainer(max_steps=1).fit(UnlearningModule(mlp(), GradientAscent()), DataLoader(train_test[0], batch_size=8))


@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
def test_fit_on_a_combined_loader_without_datamodule(dm):
    module = UnlearningModule(mlp(), GradDiff(), optimizer=adam(1e-3))
    loader = CombinedLoader({"forget": dm.forget_dataloader(), "retain": dm.retain_dataloader()}, mode="min_size")
    trainer = make_trainer(max_epochs=1)
    trainer.fit(module, loader)
    assert trainer.global_step == 4
    assert {"train/forget_loss", "train/retain_loss", "train/loss", "loss"} <= trainer.callback_metrics.keys()
    assert all(torch.isfinite(trainer.callback_metrics[k]) for k in ("train/forget_loss", "train/retain_loss", "train/loss"))


def test_forward_calls_the_wrapped_model():
    model = mlp()
    x = torch.randn(3, DIM)
    torch.testing.assert_close(UnlearningModule(model, GradientAscent())(x), model(x))


# ---------------------------------------------------------------------- original and oracle weights
def test_original_is_loaded_and_never_written(dm, weights):
    before = sha256(weights["original"])
    state = torch.load(weights["original"], weights_only=True)
    module = UnlearningModule(mlp(seed=7), GradDiff(), original=str(weights["original"]), optimizer=adam(1e-2))
    for name, value in state.items():
        torch.testing.assert_close(module.model.state_dict()[name], value, rtol=0, atol=0)
    trainer = make_trainer(max_epochs=2, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 8
    assert any(not torch.equal(module.model.state_dict()[k], v) for k, v in state.items())
    assert sha256(weights["original"]) == before


def test_oracle_adds_gap_and_oracle_metrics(dm, weights):
    oracle_state = torch.load(weights["oracle"], weights_only=True)
    module = UnlearningModule(mlp(), NPO(), original=str(weights["original"]), oracle=str(weights["oracle"]), optimizer=adam(1e-2))
    assert not any(k.startswith("_oracle") or "oracle" in k for k in module.state_dict())
    make_trainer(max_epochs=2, limit_val_batches=0).fit(module, datamodule=dm)
    assert all(torch.equal(module._oracle[0].state_dict()[k], v) for k, v in oracle_state.items())  # untouched by fit

    metrics = single(make_trainer().test(module, datamodule=dm, verbose=False))
    keys = ("UA", "RA", "TA", "MIA")
    assert {"test/avg_gap", *(f"test/oracle/{k}" for k in (*keys, "forget_acc", "mia_auc"))} <= metrics.keys()
    expected_gap = sum(abs(metrics[f"test/{k}"] - metrics[f"test/oracle/{k}"]) for k in keys) / len(keys)
    assert metrics["test/avg_gap"] == pytest.approx(expected_gap, abs=1e-4)
    assert metrics["test/oracle/UA"] > 90  # the oracle never saw the forget class
    # JS divergence to the oracle's outputs per evaluation split, as the functional form computes it
    loaders = dm.eval_dataloaders()
    assert {f"test/js_to_oracle/{n}" for n in loaders} <= metrics.keys()
    model_probs, oracle_probs = output_probabilities(module.model, loaders["test"]), output_probabilities(module._oracle[0], loaders["test"])
    assert metrics["test/js_to_oracle/test"] == pytest.approx(js_divergence(model_probs, oracle_probs), rel=1e-4)
    assert 0 < metrics["test/js_to_oracle/forget"] <= math.log(2)


def test_validate_and_test_report_the_unlearning_metrics_in_range(dm, weights):
    module = UnlearningModule(mlp(), GradDiff(), original=str(weights["original"]))
    val = single(make_trainer().validate(module, datamodule=dm, verbose=False))
    test = single(make_trainer().test(module, datamodule=dm, verbose=False))
    assert set(val) == {f"val/{k}" for k in ("forget_acc", "UA", "RA", "TA", "holdout_acc", "MIA", "mia_auc")}
    assert val == pytest.approx({k.replace("test/", "val/"): v for k, v in test.items()})
    for key in ("forget_acc", "UA", "RA", "TA", "holdout_acc", "MIA"):
        assert 0 <= val[f"val/{key}"] <= 100, key
    assert 0 <= val["val/mia_auc"] <= 1
    assert val["val/UA"] == pytest.approx(100 - val["val/forget_acc"], abs=1e-4)
    assert val["val/forget_acc"] > 95 and val["val/RA"] > 95  # the original model, before unlearning

    # The callback-free evaluate() on the same loaders gives the same numbers.
    direct = evaluate(module.model, dm.eval_dataloaders())
    assert direct == pytest.approx({k.removeprefix("val/"): v for k, v in val.items()}, abs=1e-4)


def test_more_evaluation_loaders_than_split_names_is_an_error(train_test):
    loaders = [DataLoader(train_test[1], batch_size=64)] * 5
    with pytest.raises(ValueError, match=r"Got evaluation loader #4 but only the splits \['forget', 'retain', 'test', 'holdout'\]"):
        make_trainer().validate(UnlearningModule(mlp(), GradientAscent()), dataloaders=loaders, verbose=False)


def test_unlearning_lowers_forget_accuracy_and_keeps_retain_accuracy(dm, weights):
    module = UnlearningModule(mlp(), GradDiff(), original=str(weights["original"]), optimizer=adam(1e-2))
    make_trainer(max_epochs=3, limit_val_batches=0).fit(module, datamodule=dm)
    val = single(make_trainer().validate(module, datamodule=dm, verbose=False))
    assert val["val/UA"] > 80 and val["val/RA"] > 95


# ---------------------------------------------------------------------- masks, failures, precision
def test_salun_updates_only_the_salient_entries(dm, weights):
    original = torch.load(weights["original"], weights_only=True)
    method = SalUn(threshold=0.3)
    module = UnlearningModule(mlp(), method, original=str(weights["original"]), optimizer=adam(1e-2))
    make_trainer(max_epochs=2, limit_val_batches=0).fit(module, datamodule=dm)
    masks = method.masks
    assert masks is not None and set(masks) == set(original)
    kept = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert kept == pytest.approx(0.3, abs=0.01)
    changed = 0
    for name, start in original.items():
        end, frozen = module.model.state_dict()[name], masks[name] == 0
        assert torch.equal(end[frozen], start[frozen]), name
        changed += int((end[~frozen] != start[~frozen]).sum())
    assert changed > 0


class NaNAtStep(GradientAscent):
    """Gradient ascent whose loss turns NaN at one global step."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def forget_loss(self, ctx: StepContext) -> Tensor:
        loss = super().forget_loss(ctx)
        return loss * float("nan") if ctx.global_step == self.step else loss


def test_non_finite_loss_stops_fit_with_the_last_good_weights(dm, weights):
    good = UnlearningModule(mlp(), GradientAscent(), original=str(weights["original"]), optimizer=adam(1e-2))
    make_trainer(max_steps=3, limit_val_batches=0).fit(good, datamodule=dm)
    bad = UnlearningModule(mlp(), NaNAtStep(3), original=str(weights["original"]), optimizer=adam(1e-2))
    with pytest.raises(NonFiniteLossError, match=r"'ga' loss is not finite at step 3 \(forget_loss=nan\)"):
        make_trainer(max_epochs=2, limit_val_batches=0).fit(bad, datamodule=dm)
    for name, value in good.model.state_dict().items():
        torch.testing.assert_close(bad.model.state_dict()[name], value, rtol=0, atol=0)


def test_a_diverging_fit_says_what_state_the_weights_are_in(dm, weights):
    """A huge learning rate: finite steps blow the weights up before the loss becomes NaN. The error must not claim
    the weights are fine; it gives their largest magnitude and says they diverged, and the original file is intact."""
    before = sha256(weights["original"])
    module = UnlearningModule(
        mlp(), GradientAscent(), original=str(weights["original"]), optimizer=functools.partial(torch.optim.SGD, lr=1e12)
    )
    with pytest.raises(
        NonFiniteLossError, match=r"(?s)largest \|w\| = \d.*e\+\d+.*diverged before the loss did.*`original` file .* is unchanged"
    ):
        make_trainer(max_epochs=3, limit_val_batches=0).fit(module, datamodule=dm)
    assert max(float(p.abs().max()) for p in module.model.parameters()) > 1e4
    assert sha256(weights["original"]) == before


def test_a_model_without_trainable_parameters_is_an_error(dm):
    module = UnlearningModule(mlp().requires_grad_(False), GradientAscent())
    with pytest.raises(ValueError, match="The model has no trainable parameters"):
        make_trainer(max_epochs=1, limit_val_batches=0).fit(module, datamodule=dm)


def test_bf16_mixed_precision_on_cpu(dm, weights):
    module = UnlearningModule(mlp(), NPO(), original=str(weights["original"]), optimizer=adam(1e-2))
    trainer = make_trainer(max_epochs=1, precision="bf16-mixed", limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 4
    assert all(torch.isfinite(trainer.callback_metrics[k]) for k in ("train/forget_loss", "train/retain_loss", "train/loss"))
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in module.model.parameters())


def test_lr_scheduler_factory_is_used(dm):
    module = UnlearningModule(
        mlp(), GradDiff(), optimizer=adam(1e-2), lr_scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    )
    trainer = make_trainer(max_epochs=2, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-2 * 0.25)


# ---------------------------------------------------------------------- resume
METHODS = {
    "ga": GradientAscent,
    "graddiff": GradDiff,
    "npo": NPO,
    "rl": RandomLabel,
    "salun": functools.partial(SalUn, threshold=0.5),
}


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_resume_from_a_checkpoint_matches_an_uninterrupted_run(name, dm, weights, tmp_path):
    def fresh() -> UnlearningModule:
        return UnlearningModule(mlp(seed=5), METHODS[name](), original=str(weights["original"]), optimizer=adam(1e-3))

    full = fresh()
    make_trainer(max_epochs=3, limit_val_batches=0).fit(full, datamodule=dm)
    first = fresh()
    make_trainer(max_epochs=1, limit_val_batches=0, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)]).fit(first, datamodule=dm)
    resumed = fresh()
    trainer = make_trainer(max_epochs=3, limit_val_batches=0, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    trainer.fit(resumed, datamodule=dm, ckpt_path=tmp_path / "last.ckpt")

    assert trainer.global_step == 12
    assert any(not torch.equal(first.model.state_dict()[k], v) for k, v in full.model.state_dict().items())
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0, msg=key)


_KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import functools, torch
torch.set_num_threads(1)  # as the test process (conftest): bit-exactness needs the same kernels' reduction order
import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from toys import blobs, make_trainer, mlp
from lightning_unlearn import ForgetRetainDataModule, UnlearningModule
from lightning_unlearn.methods import {method}

class Kill(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == 13:
            os.kill(os.getpid(), signal.SIGKILL)  # no exception handling, no teardown: a real crash

torch.manual_seed(123)
dm = ForgetRetainDataModule(blobs(100, seed=1), forget_class=0, batch_size=10, num_workers={workers})
module = UnlearningModule(mlp(5, dropout=0.3), {method}(), original={original!r},
                          optimizer=functools.partial(torch.optim.Adam, lr=1e-2), monitor=False)
checkpoints = ModelCheckpoint(dirpath={folder!r}, every_n_train_steps=4, save_top_k=-1)
make_trainer(max_epochs=2, limit_val_batches=0, callbacks=[Kill(), checkpoints]).fit(module, datamodule=dm)
"""


@pytest.mark.parametrize(("method", "workers"), [("GradDiff", 0), ("RandomLabel", 2)])
def test_resume_from_a_mid_epoch_checkpoint_after_a_kill_matches_an_uninterrupted_run(method, workers, tmp_path):
    """SIGKILL at step 13 (epoch 1, batch 3 of 10), resume from the step-12 checkpoint: the resumed run reads the
    epoch's remaining batches in the same order and draws the same dropout masks, so it ends bit for bit where the
    uninterrupted run ends (before the fix it replayed the epoch's start: weights off by up to 4e-2)."""
    import subprocess
    import sys

    from lightning_unlearn import methods

    train = blobs(100, seed=1)
    original = tmp_path / "original.pt"
    torch.save(fit_plain(mlp(0, dropout=0.3), *train.tensors).state_dict(), original)

    def fresh() -> UnlearningModule:
        model = mlp(5, dropout=0.3)
        return UnlearningModule(model, getattr(methods, method)(), original=str(original), optimizer=adam(1e-2), monitor=False)

    def data() -> ForgetRetainDataModule:
        return ForgetRetainDataModule(train, forget_class=0, batch_size=10, num_workers=workers)

    torch.manual_seed(123)
    full = fresh()
    make_trainer(max_epochs=2, limit_val_batches=0).fit(full, datamodule=data())

    folder = tmp_path / "checkpoints"
    script = _KILLED_RUN.format(tests=str(Path(__file__).parent), method=method, original=str(original), folder=str(folder), workers=workers)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=4.ckpt", "epoch=0-step=8.ckpt", "epoch=1-step=12.ckpt"]

    torch.manual_seed(999)  # the resumed process's own random state must not matter: the checkpoint's is restored
    resumed = fresh()
    trainer = make_trainer(max_epochs=2, limit_val_batches=0)
    trainer.fit(resumed, datamodule=data(), ckpt_path=folder / "epoch=1-step=12.ckpt")
    assert trainer.global_step == 20
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0, msg=key)


# ---------------------------------------------------------------------- the method's end-of-run hook
class _RunEndRecorder(GradientAscent):
    """GA that records when ``on_run_end`` is called and with which held-out data (a test-local helper)."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[int] = []
        self.steps = 0

    def forget_loss(self, ctx: StepContext) -> Tensor:
        self.steps += 1
        return super().forget_loss(ctx)

    def on_run_end(self, model, task) -> None:
        self.ends.append(self.steps)
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()  # an edit the saved checkpoint must show


@pytest.mark.parametrize("budget", [{"max_epochs": 2}, {"max_epochs": 5, "max_steps": 3}])
def test_on_run_end_runs_once_after_the_last_step_and_before_the_last_checkpoint(dm, weights, tmp_path, budget):
    method = _RunEndRecorder()
    module = UnlearningModule(mlp(0), method, original=str(weights["original"]), optimizer=adam(1e-3), monitor=False)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = make_trainer(callbacks=[checkpoint], limit_val_batches=0, **budget)
    trainer.fit(module, datamodule=dm)
    assert method.ends == [trainer.global_step]
    saved = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert all(float(v.abs().sum()) == 0 for k, v in saved.items() if k.startswith("model."))


def test_the_method_gets_the_holdout_split_else_the_test_split(train_test, weights):
    train, test = train_test
    for holdout_fraction, expected in ((0.5, "holdout"), (0.0, "test")):
        dm = ForgetRetainDataModule(train, test, forget_class=0, batch_size=25, holdout_fraction=holdout_fraction)
        method = _RunEndRecorder()
        module = UnlearningModule(mlp(0), method, original=str(weights["original"]), optimizer=adam(1e-3), monitor=False)
        make_trainer(max_epochs=1, limit_val_batches=0).fit(module, datamodule=dm)
        loader = method.holdout_loader
        assert loader is not None and len(loader.dataset) == len(getattr(dm, f"{expected}_set"))
