"""Did it forget? The before/after measurement, the summary line, the "barely moved" warning and the stop
criterion, through the callback and the module."""

from __future__ import annotations

import functools
import logging
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from toys import NetClassifier, accuracy, blobs, class_forget_data, make_trainer, mlp

from lightning_unlearn import ForgetRetainDataModule, Unlearn, UnlearningModule
from lightning_unlearn.engine import ForgetMonitor, score
from lightning_unlearn.methods import NPO, GradDiff
from lightning_unlearn.tasks import ClassificationTask


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return class_forget_data(30, 1, 20, 2)


def user(data: dict[str, Any]) -> NetClassifier:
    net = mlp()
    net.load_state_dict(data["pretrained"])
    return NetClassifier(net)


def test_score_is_the_mean_loss_and_accuracy_over_the_whole_loader(data):
    net = mlp()
    net.load_state_dict(data["pretrained"])
    x, y = data["train"].tensors
    got = score(net, ClassificationTask(), DataLoader(data["train"], batch_size=7))
    with torch.no_grad():
        logits = net(x)
    assert got.samples == len(y)
    assert got.loss == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert got.acc == pytest.approx(float((logits.argmax(-1) == y).float().mean()) * 100)


def test_the_default_phase_forgets_a_users_model_and_says_so(data, caplog):
    """The issue's new user: `Unlearn(GradDiff(), forget, retain, schedule="after_training")` at its defaults on a
    30-sample forget set. With the old default (one pass = one step) nothing moved; the default phase now runs 100
    steps, and the summary line reports the before/after numbers."""
    module = user(data)
    unlearn = Unlearn(GradDiff(), forget=data["forget"], retain=data["retain"], schedule="after_training", progress_bar=False)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        make_trainer(max_epochs=1, callbacks=[unlearn]).fit(module, DataLoader(data["retain"], batch_size=30))
    assert unlearn.steps == 100
    summary = unlearn.summary
    assert summary["before/forget_acc"] > 90
    assert summary["after/forget_acc"] == pytest.approx(accuracy(module, data["forget"]), abs=1e-3) and summary["after/forget_acc"] < 10
    assert summary["after/retain_acc"] > 90
    assert summary["after/forget_loss"] > summary["before/forget_loss"] + 1
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Unlearn(graddiff, after_training)"))
    assert f"100 steps; forget acc {summary['before/forget_acc']:.1f}% -> {summary['after/forget_acc']:.1f}%" in line and "retain acc" in line


def test_a_phase_that_barely_moves_the_forget_set_warns(data):
    unlearn = Unlearn(
        GradDiff(), forget=data["forget"], retain=data["retain"], schedule="after_training", epochs=1,
        optimizer=functools.partial(torch.optim.SGD, lr=1e-5), progress_bar=False,
    )
    with pytest.warns(UserWarning, match=r"the forget set barely moved after 1 steps \(forget accuracy (\d+\.\d)% -> \1%"):
        make_trainer(max_epochs=1, callbacks=[unlearn]).fit(user(data), DataLoader(data["retain"], batch_size=30))


def test_the_stop_criterion_ends_a_phase_early(data):
    unlearn = Unlearn(
        GradDiff(), forget=data["forget"], retain=data["retain"], schedule="after_training", batch_size=10,
        max_steps=200, stop_at_forget_acc=50.0, check_every_n_steps=1, progress_bar=False,
        optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
    )
    module = user(data)
    make_trainer(max_epochs=1, callbacks=[unlearn]).fit(module, DataLoader(data["retain"], batch_size=30))
    assert unlearn.phase_done and unlearn.criterion_met
    assert 1 <= unlearn.steps < 200
    assert unlearn.summary["after/forget_acc"] <= 50.0
    assert "stop_at_forget_acc=50" in (unlearn.monitor.stop_reason or "")  # type: ignore[union-attr]
    assert unlearn.state_dict()["criterion_met"] is True


def test_an_interleaved_run_stops_adding_the_forget_term_once_forgotten(data):
    unlearn = Unlearn(NPO(), forget=data["forget"], batch_size=10, stop_at_forget_loss=3.0, check_every_n_steps=1, progress_bar=False)
    make_trainer(max_epochs=3, callbacks=[unlearn]).fit(user(data), DataLoader(data["retain"], batch_size=10))
    assert unlearn.criterion_met
    assert 1 <= unlearn.steps < 27  # 3 epochs x 9 user steps
    assert unlearn.summary["after/forget_loss"] >= 3.0 or unlearn.summary["after/forget_acc"] < 50


def test_the_module_measures_logs_and_stops_on_the_criterion(data, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    dm = ForgetRetainDataModule(data["train"], data["test"], forget_class=0, batch_size=5)
    net = mlp()
    net.load_state_dict(data["pretrained"])
    module = UnlearningModule(net, GradDiff(), optimizer=functools.partial(torch.optim.Adam, lr=1e-2), stop_at_forget_acc=20.0, check_every_n_steps=2)
    trainer = make_trainer(max_epochs=50, logger=CSVLogger(tmp_path), limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step < 50 * 6 and trainer.global_step % 2 == 0
    summary = module.unlearning_summary
    assert summary["before/forget_acc"] == pytest.approx(100.0) and summary["after/forget_acc"] <= 20.0
    assert summary["after/retain_acc"] > 80
    import csv

    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    logged = {k for r in rows for k, v in r.items() if v}
    assert {"unlearn/before/forget_acc", "unlearn/after/forget_acc", "unlearn/after/retain_loss"} <= logged


def test_monitor_false_skips_the_measurement(data):
    unlearn = Unlearn(GradDiff(), forget=data["forget"], retain=data["retain"], schedule="after_training", max_steps=2, monitor=False, progress_bar=False)
    make_trainer(max_epochs=1, callbacks=[unlearn]).fit(user(data), DataLoader(data["retain"], batch_size=30))
    assert unlearn.summary == {} and unlearn.monitor is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stop_at_forget_acc": 120}, r"`stop_at_forget_acc` should be a percentage in \[0, 100\] or None, got 120"),
        ({"stop_at_forget_acc": True}, r"`stop_at_forget_acc` should be a percentage in \[0, 100\] or None, got True"),
        ({"stop_at_forget_loss": float("nan")}, r"`stop_at_forget_loss` should be a finite number or None, got nan"),
        ({"check_every_n_steps": 0}, r"`check_every_n_steps` should be an int >= 1, got 0"),
        ({"monitor_max_samples": 0}, r"`monitor_max_samples` should be a positive int, got 0"),
    ],
)
def test_bad_stop_arguments_are_named(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Unlearn(GradDiff(), forget=data["forget"], retain=data["retain"], schedule="after_training", **kwargs)
    with pytest.raises(ValueError, match=match):
        UnlearningModule(mlp(), GradDiff(), **kwargs)


def test_forgot_needs_a_real_drop():
    monitor = ForgetMonitor(ClassificationTask(), DataLoader(blobs(2, seed=0), batch_size=4))
    from lightning_unlearn.engine import SplitScore

    monitor.before = {"forget": SplitScore(loss=1.0, acc=90.0, samples=8)}
    monitor.after = {"forget": SplitScore(loss=1.05, acc=87.5, samples=8)}
    assert not monitor.forgot()
    monitor.after = {"forget": SplitScore(loss=1.05, acc=80.0, samples=8)}
    assert monitor.forgot()
    monitor.after = {"forget": SplitScore(loss=1.2, acc=90.0, samples=8)}
    assert monitor.forgot()
    # a forget set the model already got wrong has nothing left to fall: no warning
    monitor.before = {"forget": SplitScore(loss=3.0, acc=1.0, samples=8)}
    monitor.after = {"forget": SplitScore(loss=3.05, acc=0.0, samples=8)}
    assert monitor.forgot()
