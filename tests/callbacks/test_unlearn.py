"""The ``Unlearn`` callback on a user's own LightningModule: interleaved and phase schedules, resume, errors."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torch.utils.data.distributed import DistributedSampler
from toys import accuracy, make_trainer, mlp

from lightning_unlearn import Unlearn
from lightning_unlearn.methods import NPO, GradDiff, GradientAscent, NonFiniteLossError, StepContext

from ._toy import UserClassifier


def retain_loader(data: dict[str, Dataset], batch_size: int = 50) -> DataLoader:
    """The user's own training data: the retain set, in a seeded order (Lightning calls ``set_epoch``)."""
    sampler = DistributedSampler(data["retain"], num_replicas=1, rank=0, shuffle=True, seed=0)
    return DataLoader(data["retain"], batch_size=batch_size, sampler=sampler)


class RecordingGA(GradientAscent):
    """Gradient ascent that records ``(global_step, epoch)`` of every forget term it computes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[int, int]] = []

    def forget_loss(self, ctx: StepContext) -> Tensor:
        self.calls.append((ctx.global_step, ctx.epoch))
        return super().forget_loss(ctx)


class CountingGradDiff(GradDiff):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def forget_loss(self, ctx: StepContext) -> Tensor:
        self.calls += 1
        return super().forget_loss(ctx)


class NaNForget(GradientAscent):
    def forget_loss(self, ctx: StepContext) -> Tensor:
        return super().forget_loss(ctx) * float("nan")


class WrapProbe(Callback):
    """Records, during training, whether the module's ``training_step`` is an instance attribute."""

    def __init__(self, unlearn: Unlearn | None = None) -> None:
        self.unlearn = unlearn
        self.wrapped: list[bool] = []
        self.phase_done_during_training: list[bool] = []

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.wrapped.append("training_step" in vars(pl_module))
        if self.unlearn is not None:
            self.phase_done_during_training.append(self.unlearn.phase_done)


# ---------------------------------------------------------------------- interleaved
def test_interleaved_adds_forget_term_without_editing_the_users_module(data, pretrained):
    original_function = UserClassifier.training_step
    baseline = UserClassifier()
    baseline.load_state_dict(pretrained)
    make_trainer(max_epochs=2).fit(baseline, retain_loader(data))

    module = UserClassifier()
    module.load_state_dict(pretrained)
    assert "training_step" not in vars(module)
    unlearn = Unlearn(NPO(), forget=data["forget"], batch_size=16, progress_bar=False)
    probe = WrapProbe()
    # the parts are logged on the steps Lightning writes to its loggers (every `log_every_n_steps`)
    trainer = make_trainer(max_epochs=2, callbacks=[unlearn, probe], log_every_n_steps=1)
    trainer.fit(module, retain_loader(data))

    assert all(probe.wrapped) and len(probe.wrapped) == trainer.global_step == 12
    assert UserClassifier.training_step is original_function
    assert "training_step" not in vars(module)  # the instance attribute is gone again
    assert module.training_step.__func__ is original_function
    assert {"unlearn/forget_loss", "unlearn/loss", "user_loss"} <= trainer.callback_metrics.keys()
    assert unlearn.steps == 12

    forget_base, retain_base = accuracy(baseline, data["forget"]), accuracy(baseline, data["retain"])
    forget_acc, retain_acc = accuracy(module, data["forget"]), accuracy(module, data["retain"])
    assert forget_acc < 40 and forget_acc < forget_base - 25, (forget_acc, forget_base)
    assert retain_acc >= retain_base - 2 and retain_acc > 95, (retain_acc, retain_base)


def test_interleaved_keeps_a_dict_output_and_its_other_keys(data, pretrained):
    module = UserClassifier(dict_output=True)
    module.load_state_dict(pretrained)
    outputs: list[Any] = []

    class Outputs(Callback):
        def on_train_batch_end(self, trainer, pl_module, out, batch, batch_idx):
            outputs.append(out)

    unlearn = Unlearn(GradientAscent(), forget=data["forget"], batch_size=16, progress_bar=False)
    make_trainer(max_epochs=1, callbacks=[unlearn, Outputs()]).fit(module, retain_loader(data))
    assert all(set(out) == {"loss", "n"} and out["n"] == 50 for out in outputs)
    assert unlearn.steps == len(outputs) == 6


def test_interleaved_respects_start_epoch_and_every_n_steps(data, user_module):
    method = RecordingGA()
    unlearn = Unlearn(method, forget=data["forget"], batch_size=16, every_n_steps=4, start_epoch=1, progress_bar=False)
    trainer = make_trainer(max_epochs=3, callbacks=[unlearn])
    trainer.fit(user_module, retain_loader(data))
    # 6 steps per epoch: epoch 1 holds global steps 6..11, epoch 2 holds 12..17; every 4th step from epoch 1 on.
    # ``ctx.epoch`` counts from ``start_epoch``.
    assert trainer.global_step == 18
    assert method.calls == [(8, 0), (12, 1), (16, 1)]
    assert unlearn.steps == 3


def test_interleaved_restores_the_module_when_fit_fails(data, user_module):
    unlearn = Unlearn(NaNForget(), forget=data["forget"], batch_size=16, progress_bar=False)
    with pytest.raises(NonFiniteLossError, match="not finite at step 0"):
        make_trainer(max_epochs=1, callbacks=[unlearn]).fit(user_module, retain_loader(data))
    assert "training_step" not in vars(user_module)


def test_interleaved_keeps_a_training_step_the_user_set_on_the_instance(data, user_module):
    own_step = user_module.training_step  # e.g. a user who patched the instance themselves
    user_module.training_step = own_step
    unlearn = Unlearn(GradientAscent(), forget=data["forget"], batch_size=16, progress_bar=False)
    make_trainer(max_epochs=1, callbacks=[unlearn]).fit(user_module, retain_loader(data))
    assert vars(user_module)["training_step"] is own_step
    assert unlearn.steps == 6


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_interleaved_resume_matches_an_uninterrupted_run(data, pretrained, tmp_path):
    def fresh() -> tuple[UserClassifier, Unlearn]:
        module = UserClassifier()
        module.load_state_dict(pretrained)
        # 100 forget samples in batches of 16: the forget stream wraps around mid-epoch of the user's run.
        return module, Unlearn(NPO(), forget=data["forget"], batch_size=16, progress_bar=False)

    full_module, full_unlearn = fresh()
    make_trainer(max_epochs=4, callbacks=[full_unlearn]).fit(full_module, retain_loader(data))

    first_module, first_unlearn = fresh()
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    make_trainer(max_epochs=2, callbacks=[first_unlearn, checkpoint]).fit(first_module, retain_loader(data))
    resumed_module, resumed_unlearn = fresh()
    trainer = make_trainer(max_epochs=4, callbacks=[resumed_unlearn, ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    trainer.fit(resumed_module, retain_loader(data), ckpt_path=tmp_path / "last.ckpt")

    assert trainer.global_step == 24
    assert resumed_unlearn.steps == full_unlearn.steps == 24
    assert resumed_unlearn.forget.state_dict() == full_unlearn.forget.state_dict() == {"epoch": 3, "position": 3}
    for name, value in full_module.state_dict().items():
        torch.testing.assert_close(resumed_module.state_dict()[name], value, rtol=0, atol=0, msg=name)


# ---------------------------------------------------------------------- phases
@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
@pytest.mark.parametrize("schedule", ["before_training", "after_training"])
def test_phase_unlearns_an_already_trained_model_once(data, pretrained, schedule, tmp_path):
    def run(callbacks: list[Callback], max_epochs: int = 1, **fit_kwargs: Any) -> tuple[UserClassifier, Any]:
        module = UserClassifier(lr=1e-3)
        module.load_state_dict(pretrained)
        trainer = make_trainer(max_epochs=max_epochs, callbacks=callbacks)
        trainer.fit(module, retain_loader(data), **fit_kwargs)
        return module, trainer

    baseline, _ = run([])
    method = CountingGradDiff()
    unlearn = Unlearn(
        method,
        forget=data["forget"],
        retain=data["retain"],
        schedule=schedule,
        epochs=2,
        batch_size=16,
        optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
        progress_bar=False,
    )
    probe = WrapProbe(unlearn)
    module, trainer = run([unlearn, probe, ModelCheckpoint(dirpath=tmp_path, save_last=True)])

    assert method.calls == unlearn.steps == 2 * 7  # two passes over 100 forget samples in batches of 16
    assert unlearn.state_dict()["phase_done"] is True
    assert not any(probe.wrapped)  # phases never wrap the user's training_step
    assert probe.phase_done_during_training == [schedule == "before_training"] * 6
    assert accuracy(baseline, data["forget"]) > 90
    assert accuracy(module, data["forget"]) < 30
    assert accuracy(module, data["retain"]) > 90

    # The phase must not run again when the run is resumed from a checkpoint written after it.
    if schedule == "after_training":  # epoch-end checkpoints predate the phase; save one after it
        trainer.save_checkpoint(tmp_path / "last.ckpt")
    resumed_method = CountingGradDiff()
    resumed = Unlearn(resumed_method, forget=data["forget"], retain=data["retain"], schedule=schedule, progress_bar=False)
    _, resumed_trainer = run([resumed, ModelCheckpoint(dirpath=tmp_path, save_last=True)], max_epochs=2, ckpt_path=tmp_path / "last.ckpt")
    assert resumed_trainer.global_step == 12
    assert resumed_method.calls == 0
    assert resumed.phase_done and resumed.steps == 14


class CrashAtStep(GradDiff):
    """GradDiff that raises (a stand-in for an out-of-memory error or a kill) at phase step ``at``."""

    def __init__(self, at: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.at = at

    def forget_loss(self, ctx: StepContext) -> Tensor:
        if ctx.global_step == self.at:
            raise RuntimeError("crashed inside the phase")
        return super().forget_loss(ctx)


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_a_run_that_crashed_inside_the_after_training_phase_finishes_the_phase_when_resumed(data, pretrained, tmp_path):
    """The last checkpoint predates the phase; resuming it leaves no epoch to run, so Lightning skips ``on_train_end``.
    The phase must still run (from the checkpoint's weights and stream positions: the same result as a run that never
    crashed), and a ``SaveWeights`` listed before ``Unlearn`` must save the unlearned weights. Before the fix the
    resumed run returned the un-unlearned model without a word."""
    from lightning_unlearn import SaveWeights

    def unlearn(method: GradDiff) -> Unlearn:
        optimizer = functools.partial(torch.optim.Adam, lr=1e-2)
        return Unlearn(
            method,
            data["forget"],
            data["retain"],
            schedule="after_training",
            epochs=2,
            batch_size=16,
            optimizer=optimizer,
            progress_bar=False,
        )

    def run(method: GradDiff, callbacks: list[Callback], **fit_kwargs: Any) -> UserClassifier:
        module = UserClassifier(lr=1e-3)
        module.load_state_dict(pretrained)
        make_trainer(max_epochs=2, callbacks=[*callbacks, unlearn(method)]).fit(module, retain_loader(data), **fit_kwargs)
        return module

    full = run(GradDiff(), [])
    with pytest.raises(RuntimeError, match="crashed inside the phase"):
        run(CrashAtStep(5), [ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    saved = tmp_path / "unlearned.pt"
    resumed = run(
        GradDiff(), [SaveWeights(str(saved)), ModelCheckpoint(dirpath=tmp_path, save_last=True)], ckpt_path=tmp_path / "last.ckpt"
    )

    assert accuracy(full, data["forget"]) < 30
    for name, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=0, msg=name)
    written = torch.load(saved, weights_only=True)
    assert written.keys() == full.state_dict().keys()  # a user's module without a `.model` is saved whole
    for name, value in full.state_dict().items():
        torch.testing.assert_close(written[name], value, rtol=0, atol=0, msg=name)


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_interleaved_resume_from_a_mid_epoch_checkpoint_is_exact_with_a_resumable_loader(data, pretrained, tmp_path):
    """A checkpoint every 4 steps, a crash at step 9 (epoch 1, batch 3 of 6), resume from step 8: with the user's loader a
    ``ResumableDataLoader`` the run ends bit for bit where the uninterrupted run ends, dropout included."""
    from lightning_unlearn import ResumableDataLoader

    class Crash(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 9:
                raise RuntimeError("crash")

    def loader() -> ResumableDataLoader:
        sampler = DistributedSampler(data["retain"], num_replicas=1, rank=0, shuffle=True, seed=0)
        return ResumableDataLoader(data["retain"], batch_size=50, sampler=sampler)

    def run(callbacks: list[Callback], **fit_kwargs: Any) -> UserClassifier:
        module = UserClassifier(lr=1e-3)
        module.net = mlp(0, dropout=0.3)
        module.net.load_state_dict(
            {k.removeprefix("net.").replace("2.", "3."): v for k, v in pretrained.items()}
        )  # 3: after the Dropout
        unlearn = Unlearn(GradientAscent(forget_weight=0.2), data["forget"], batch_size=16, progress_bar=False)
        make_trainer(max_epochs=2, callbacks=[unlearn, *callbacks]).fit(module, loader(), **fit_kwargs)
        return module

    torch.manual_seed(7)
    full = run([])
    with pytest.raises(RuntimeError, match="crash"):
        run([Crash(), ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=4, save_top_k=-1)])
    torch.manual_seed(8)
    resumed = run([], ckpt_path=tmp_path / "epoch=1-step=8.ckpt")
    for name, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_a_phase_whose_loss_diverges_restores_the_weights_it_started_from(data, user_module):
    """A huge learning rate blows the weights up over finite steps before the loss becomes NaN: the error says what
    state the weights were in, and the phase hands back the weights it started from."""
    before = {k: v.clone() for k, v in user_module.state_dict().items()}
    unlearn = Unlearn(
        GradientAscent(),
        data["forget"],
        schedule="before_training",
        max_steps=50,
        batch_size=16,
        optimizer=functools.partial(torch.optim.SGD, lr=1e12),
        progress_bar=False,
    )
    with pytest.raises(NonFiniteLossError, match=r"(?s)largest \|w\| = .*diverged before the loss did.*restored the weights"):
        make_trainer(max_epochs=1, callbacks=[unlearn]).fit(user_module, retain_loader(data))
    for name, value in before.items():
        assert torch.equal(user_module.state_dict()[name], value), name


def test_phase_stops_after_max_steps(data, user_module):
    method = CountingGradDiff()
    unlearn = Unlearn(
        method, data["forget"], data["retain"], schedule="before_training", epochs=3, max_steps=5, batch_size=16, progress_bar=False
    )
    make_trainer(max_epochs=1, limit_train_batches=1, callbacks=[unlearn]).fit(user_module, retain_loader(data))
    assert method.calls == unlearn.steps == 5
    # The forget stream records exactly what was consumed: 100 forget samples in batches of 16 are 7 batches
    # per epoch, so 5 steps leave it at epoch 0, position 5 (not fast-forwarded through the unused epochs).
    assert unlearn.state_dict()["forget"] == {"epoch": 0, "position": 5}


def test_phase_accepts_dataloaders_and_keeps_their_batch_size(data, user_module):
    method = CountingGradDiff()
    forget = DataLoader(data["forget"], batch_size=25)
    unlearn = Unlearn(method, forget, DataLoader(data["retain"], batch_size=30), schedule="after_training", epochs=1, progress_bar=False)
    assert unlearn.forget.batch_size == 25 and unlearn.retain is not None and unlearn.retain.batch_size == 30
    make_trainer(max_epochs=1, limit_train_batches=1, callbacks=[unlearn]).fit(user_module, retain_loader(data))
    assert method.calls == 4  # one pass over 100 forget samples in batches of 25


def test_state_dict_round_trip_and_older_checkpoints(data):
    unlearn = Unlearn(GradDiff(), data["forget"], data["retain"], schedule="before_training")
    unlearn.load_state_dict({"steps": 7, "phase_done": True, "forget": {"epoch": 2, "position": 3}, "retain": {"epoch": 1, "position": 4}})
    state = unlearn.state_dict()
    assert set(state.pop("rng")) == {"torch", "python", "numpy"}  # the global random state, for an exact resume
    assert state == {
        "steps": 7,
        "phase_done": True,
        "criterion_met": False,
        "forget": {"epoch": 2, "position": 3},
        "retain": {"epoch": 1, "position": 4},
    }
    unlearn.load_state_dict({})  # a checkpoint written before the callback kept any state
    assert unlearn.state_dict()["steps"] == 0 and unlearn.state_dict()["phase_done"] is False


# ---------------------------------------------------------------------- errors
def _forget() -> TensorDataset:
    return TensorDataset(torch.randn(4, 8), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"schedule": "during"},
            ValueError,
            r"`schedule` should be one of \['after_training', 'before_training', 'interleaved'\], got 'during'",
        ),
        ({"method": "ga"}, TypeError, r"`method` should be an UnlearningMethod \(e.g. GradientAscent\(\)\), got str"),
        ({"method": GradientAscent}, TypeError, r"`method` should be an UnlearningMethod .* got type"),
        ({"method": GradDiff(), "schedule": "before_training"}, ValueError, r"`retain` is needed: schedule='before_training' .* GradDiff"),
        ({"method": NPO(), "schedule": "after_training"}, ValueError, r"`retain` is needed: .*\(retain_loss='nll'\)"),
        ({"forget": TensorDataset(torch.empty(0, 8), torch.empty(0, dtype=torch.long))}, ValueError, "forget set is empty"),
        ({"every_n_steps": 0}, ValueError, r"`every_n_steps` should be a positive int, got 0"),
        ({"every_n_steps": 2.5}, ValueError, r"`every_n_steps` should be a positive int, got 2.5"),
        ({"every_n_steps": True}, ValueError, r"`every_n_steps` should be a positive int, got True"),
        ({"batch_size": 0}, ValueError, r"`batch_size` should be a positive int, got 0"),
        ({"epochs": -1}, ValueError, r"`epochs` should be a positive int or None, got -1"),
        ({"start_epoch": -1}, ValueError, r"`start_epoch` should be >= 0, got -1"),
        ({"max_steps": 0}, ValueError, r"`max_steps` should be a positive int or None, got 0"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"method": GradientAscent(), "forget": _forget(), **kwargs}
    with pytest.raises(error, match=match):
        Unlearn(**arguments)


def test_phase_without_a_retain_term_needs_no_retain_data():
    unlearn = Unlearn(GradDiff(retain_loss="none"), _forget(), schedule="before_training")
    assert unlearn.retain is None
    assert Unlearn(GradientAscent(), _forget(), schedule="after_training").retain is None  # GA: retain_weight=0


class _RunEndGA(GradientAscent):
    """GA recording the number of its steps when ``on_run_end`` is called (a test-local helper)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps, self.ends = 0, []

    def forget_loss(self, ctx: StepContext) -> Tensor:
        self.steps += 1
        return super().forget_loss(ctx)

    def on_run_end(self, model, task) -> None:
        self.ends.append(self.steps)


@pytest.mark.parametrize("schedule", ["after_training", "interleaved"])
def test_on_run_end_runs_once_after_the_unlearning_steps(data, pretrained, schedule):
    module = UserClassifier()
    module.load_state_dict(pretrained)
    method = _RunEndGA()
    extra = {"epochs": 1} if schedule == "after_training" else {}
    unlearn = Unlearn(method, forget=data["forget"], batch_size=16, schedule=schedule, progress_bar=False, **extra)
    make_trainer(max_epochs=1, callbacks=[unlearn]).fit(module, retain_loader(data))
    assert method.steps > 0 and method.ends == [method.steps]
