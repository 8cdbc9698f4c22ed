"""The one step engine: the module, the callback's phases and the continual loop give the same weights; the
Trainer's clipping and Fabric's precision apply; unsupported strategies are refused."""

from __future__ import annotations

import functools
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.utils.data import DataLoader
from toys import class_forget_data, make_trainer, mlp

from lightning_unlearn import ForgetRetainDataModule, Unlearn, UnlearningModule
from lightning_unlearn.continual import ContinualUnlearner
from lightning_unlearn.engine import SUPPORTED_STRATEGIES, FabricStepper, UnlearningEngine, check_strategy, make_fabric
from lightning_unlearn.methods import NPO, GradDiff
from lightning_unlearn.tasks import ClassificationTask

STEPS = 6
LR = 1e-2


class NoTrainingUser(pl.LightningModule):
    """A user's module whose own training does nothing (``training_step`` returns None: no optimizer step), so a
    fit with an ``Unlearn`` phase is the phase alone."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        return None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return class_forget_data(40, 1, 20, 2)


def pretrained_net(data: dict[str, Any]) -> nn.Module:
    net = mlp()
    net.load_state_dict(data["pretrained"])
    return net


def via_module(data: dict[str, Any], method: Any) -> dict[str, torch.Tensor]:
    # full batches (40 forget, 120 retain samples): each epoch is one step on the whole forget and retain sets
    dm = ForgetRetainDataModule(data["train"], data["test"], forget_class=0, batch_size=40, retain_batch_size=120)
    module = UnlearningModule(pretrained_net(data), method, optimizer=functools.partial(torch.optim.Adam, lr=LR), monitor=False)
    make_trainer(max_epochs=STEPS, limit_val_batches=0).fit(module, datamodule=dm)
    return module.model.state_dict()


def via_phase(data: dict[str, Any], method: Any, schedule: str) -> dict[str, torch.Tensor]:
    user = NoTrainingUser(pretrained_net(data))
    phase = Unlearn(
        method,
        forget=DataLoader(data["forget"], batch_size=40),
        retain=DataLoader(data["retain"], batch_size=120),
        schedule=schedule,  # type: ignore[arg-type]
        max_steps=STEPS,
        optimizer=functools.partial(torch.optim.Adam, lr=LR),
        progress_bar=False,
        monitor=False,
    )
    make_trainer(max_epochs=1, callbacks=[phase]).fit(user, DataLoader(data["retain"], batch_size=120))
    assert phase.steps == STEPS
    return user.net.state_dict()


def via_continual(data: dict[str, Any], name: str, kwargs: dict[str, Any]) -> dict[str, torch.Tensor]:
    unlearner = ContinualUnlearner(
        pretrained_net(data), "full", method=name, method_kwargs=kwargs, lr=LR, steps_per_request=STEPS, batch_size=40, retain_batch_size=120
    )
    unlearner.unlearn(data["forget"], data["retain"])
    return unlearner.model.state_dict()


@pytest.mark.parametrize(("name", "kwargs", "cls"), [("graddiff", {}, GradDiff), ("npo", {"beta": 0.5}, NPO)])
def test_module_callback_phases_and_continual_give_the_same_weights(data, name, kwargs, cls):
    """The same seeded unlearning through every loop. The loops draw the (full) batches in different sample orders,
    so the sums inside a batch mean differ in float rounding: equal within 1e-5, while the unlearning moved the
    weights by orders of magnitude more."""
    reference = via_module(data, cls(**kwargs))
    moved = max(float((reference[k] - data["pretrained"][k]).abs().max()) for k in reference)
    assert moved > 1e-2
    results = {
        "before_training": via_phase(data, cls(**kwargs), "before_training"),
        "after_training": via_phase(data, cls(**kwargs), "after_training"),
        "continual": via_continual(data, name, kwargs),
    }
    for loop, state in results.items():
        assert state.keys() == reference.keys()
        for key in state:
            torch.testing.assert_close(state[key], reference[key], rtol=0, atol=1e-5, msg=f"{loop}: {key}")


class GradNormRecorder(pl.Callback):
    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if not grads:  # the user's own (skipped) training step
            return
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))


def _sgd_phase(data, **trainer_kwargs) -> tuple[list[float], dict[str, torch.Tensor]]:
    """A 3-step SGD GradDiff phase after a user's (no-op) training; the gradient norms each step saw and the weights."""
    user = NoTrainingUser(pretrained_net(data))
    phase = Unlearn(GradDiff(), forget=data["forget"], retain=data["retain"], schedule="after_training", max_steps=3,
                    optimizer=functools.partial(torch.optim.SGD, lr=0.1), progress_bar=False, monitor=False)
    recorder = GradNormRecorder()
    make_trainer(max_epochs=1, callbacks=[phase, recorder], **trainer_kwargs).fit(user, DataLoader(data["retain"], batch_size=120))
    return recorder.norms, user.net.state_dict()


def test_a_phase_clips_with_the_trainers_gradient_clip_val(data):
    """A phase steps through the Trainer's strategy: its `gradient_clip_val` clips the phase's gradients (and the
    user's `on_before_optimizer_step` hooks see them, as in a training step)."""

    free_norms, free = _sgd_phase(data)
    clipped_norms, clipped = _sgd_phase(data, gradient_clip_val=1e-3)
    assert len(free_norms) == len(clipped_norms) == 3 and free_norms[0] > 1e-2
    # the recorder runs before clipping: the first step's gradients are the same; the clipped step moves ~1e-4
    assert clipped_norms[0] == pytest.approx(free_norms[0])
    first = "0.weight"
    moved = float((clipped[first] - data["pretrained"][first]).norm())
    assert moved < 3 * 0.1 * 1e-3 + 1e-7 < float((free[first] - data["pretrained"][first]).norm())


def test_a_phase_says_it_does_not_accumulate_and_takes_one_step_per_forget_batch(data):
    """`accumulate_grad_batches` is Lightning's for training steps; a phase steps once per forget batch, with the same
    result as without accumulation, and warns instead of accumulating silently or not at all."""

    plain_norms, plain = _sgd_phase(data)
    with pytest.warns(UserWarning, match=r"one optimizer step per forget batch: Trainer\(accumulate_grad_batches=4\)"):
        norms, weights = _sgd_phase(data, accumulate_grad_batches=4)
    assert len(norms) == len(plain_norms) == 3
    for key, value in plain.items():
        torch.testing.assert_close(weights[key], value, rtol=0, atol=0)


def test_fabric_stepper_runs_the_method_hooks_and_clips(data):
    net = pretrained_net(data)
    method = GradDiff()
    task = ClassificationTask()
    method.setup(net, task)
    engine = UnlearningEngine(method, task)
    calls: list[str] = []
    fabric = make_fabric("cpu")
    stepper = FabricStepper(fabric, net, torch.optim.SGD(net.parameters(), lr=1.0), engine, max_grad_norm=1e-3,
                            before_step=lambda: calls.append("before"), after_step=lambda: calls.append("after"))
    x, y = next(iter(DataLoader(data["forget"], batch_size=40)))
    xr, yr = next(iter(DataLoader(data["retain"], batch_size=120)))
    start = {k: v.clone() for k, v in net.state_dict().items()}
    from lightning_unlearn.engine import Progress

    out = stepper.step(lambda model: engine.loss(model, (x, y), (xr, yr), Progress()))
    assert calls == ["before", "after"] and torch.isfinite(out.loss)
    delta = torch.cat([(net.state_dict()[k] - start[k]).flatten() for k in start])
    assert float(delta.norm()) == pytest.approx(1e-3, rel=1e-3)  # lr 1 x the clipped norm


def test_continual_bf16_precision_runs_through_fabric(data):
    unlearner = ContinualUnlearner(pretrained_net(data), "full", method="graddiff", lr=LR, steps_per_request=2, batch_size=40, precision="bf16-mixed")
    record = unlearner.unlearn(data["forget"], data["retain"])
    assert record["steps"] == 2 and all(torch.isfinite(torch.tensor(list(record["final_loss"].values()))))
    assert unlearner.config()["precision"] == "bf16-mixed"
    with pytest.raises(ValueError, match="Precision"):
        ContinualUnlearner(pretrained_net(data), "full", precision="17-bits")


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed"])
def test_unsupported_strategies_are_refused_with_the_supported_ones_named(strategy):
    fake = type({"fsdp": "FSDPStrategy", "deepspeed": "DeepSpeedStrategy"}[strategy], (), {})()
    with pytest.raises(MisconfigurationException, match=r"supports the strategies \['DDPStrategy', 'SingleDeviceStrategy'\].*got (FSDP|DeepSpeed)Strategy"):
        check_strategy(fake, where="The Unlearn callback")
    assert set(SUPPORTED_STRATEGIES) == {"DDPStrategy", "SingleDeviceStrategy"}


def test_the_callback_and_the_module_refuse_an_unsupported_trainer_strategy(data, monkeypatch):
    """Checked in `setup`, before any weight moves (a sharded strategy is faked by the class name: FSDP needs CUDA)."""
    from lightning.pytorch.strategies import SingleDeviceStrategy

    class FSDPStrategy(SingleDeviceStrategy):
        pass

    net = pretrained_net(data)
    user = NoTrainingUser(net)
    phase = Unlearn(GradDiff(), forget=data["forget"], retain=data["retain"], schedule="after_training", progress_bar=False)
    trainer = make_trainer(max_epochs=1, callbacks=[phase], strategy=FSDPStrategy(device=torch.device("cpu")))
    with pytest.raises(MisconfigurationException, match="The Unlearn callback supports the strategies"):
        trainer.fit(user, DataLoader(data["retain"], batch_size=120))
    for key, value in net.state_dict().items():
        assert torch.equal(value, data["pretrained"][key])
    dm = ForgetRetainDataModule(data["train"], data["test"], forget_class=0, batch_size=40)
    module = UnlearningModule(pretrained_net(data), GradDiff())
    trainer = make_trainer(max_epochs=1, strategy=FSDPStrategy(device=torch.device("cpu")))
    with pytest.raises(MisconfigurationException, match="UnlearningModule supports the strategies"):
        trainer.fit(module, datamodule=dm)


def test_a_multi_process_fabric_is_refused(data):
    class TwoRanks:
        world_size = 2

    fabric = make_fabric("cpu")
    net = pretrained_net(data)
    method = GradDiff()
    engine = UnlearningEngine(method, ClassificationTask())
    fake = type("F", (), {"strategy": fabric.strategy, "world_size": 2})()
    with pytest.raises(MisconfigurationException, match="runs in one process, got a Fabric with world_size=2"):
        FabricStepper(fake, net, torch.optim.SGD(net.parameters(), lr=0.1), engine)  # type: ignore[arg-type]


def test_loss_parts_are_logged_only_on_the_steps_loggers_write(data):
    """`self.log` on every step costs time (B7); values are logged on Lightning's logging steps and each epoch's
    last batch, so the loggers and `callback_metrics` see the same values as with logging on every step."""
    from lightning.pytorch.loggers import CSVLogger

    dm = ForgetRetainDataModule(data["train"], data["test"], forget_class=0, batch_size=4, retain_batch_size=12)
    calls: list[int] = []
    module = UnlearningModule(pretrained_net(data), GradDiff(), monitor=False)
    original = module.log_dict

    def counting_log_dict(*args: Any, **kwargs: Any) -> None:
        calls.append(module.global_step)
        original(*args, **kwargs)

    module.log_dict = counting_log_dict  # type: ignore[method-assign]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(max_epochs=1, logger=CSVLogger(tmp), log_every_n_steps=3, limit_val_batches=0)
        trainer.fit(module, datamodule=dm)
        assert trainer.global_step == 10
        # Lightning writes at steps 3, 6, 9 (1-based); the epoch's last batch is logged too
        assert calls == [2, 5, 8, 9]
        assert {"train/loss", "train/forget_loss", "train/retain_loss"} <= trainer.callback_metrics.keys()
        import csv
        from pathlib import Path

        rows = list(csv.DictReader(open(next(Path(tmp).rglob("metrics.csv")))))
        assert [int(r["step"]) for r in rows if r.get("train/loss")] == [2, 5, 8]  # what Lightning writes


class AutocastProbe(nn.Module):
    """Records whether CPU autocast was on at each forward."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.autocast: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.autocast.append(torch.is_autocast_enabled("cpu"))
        return self.net(x)


def test_a_phase_runs_under_the_trainers_precision(data):
    probe = AutocastProbe(pretrained_net(data))
    user = NoTrainingUser(probe)
    phase = Unlearn(GradDiff(), forget=data["forget"], retain=data["retain"], schedule="after_training", max_steps=2, progress_bar=False, monitor=False)
    make_trainer(max_epochs=1, callbacks=[phase], precision="bf16-mixed").fit(user, DataLoader(data["retain"], batch_size=120))
    assert phase.steps == 2
    assert probe.autocast == [True] * 4  # 2 steps x (forget + retain forward), all under bf16 autocast


def test_a_mask_freezes_weights_exactly_through_every_loop_under_adamw(data):
    """Zeroed gradients alone still move weights under AdamW's decoupled weight decay; every loop calls the
    engine's after-step hook, which puts the masked-out entries back."""
    from lightning_unlearn.methods import RegexMask

    adamw = functools.partial(torch.optim.AdamW, lr=LR, weight_decay=0.5)

    def method() -> GradDiff:
        return GradDiff(mask=RegexMask(r"(^|\.)2\."))  # only the last Linear layer may move

    dm = ForgetRetainDataModule(data["train"], data["test"], forget_class=0, batch_size=40, retain_batch_size=120)
    module = UnlearningModule(pretrained_net(data), method(), optimizer=adamw, monitor=False)
    make_trainer(max_epochs=3, limit_val_batches=0).fit(module, datamodule=dm)
    user = NoTrainingUser(pretrained_net(data))
    phase = Unlearn(method(), forget=data["forget"], retain=data["retain"], schedule="after_training", max_steps=3, optimizer=adamw, progress_bar=False, monitor=False)
    make_trainer(max_epochs=1, callbacks=[phase]).fit(user, DataLoader(data["retain"], batch_size=120))
    unlearner = ContinualUnlearner(pretrained_net(data), "full", method="graddiff", method_kwargs={"mask": RegexMask(r"(^|\.)2\.")},
                                   optimizer="adamw", lr=LR, steps_per_request=3, batch_size=40)
    unlearner.unlearn(data["forget"], data["retain"])
    for loop, net in (("module", module.model), ("phase", user.net), ("continual", unlearner.model)):
        state = net.state_dict()
        for key in ("0.weight", "0.bias"):
            assert torch.equal(state[key], data["pretrained"][key]), f"{loop}: {key} moved"
        assert not torch.equal(state["2.weight"], data["pretrained"]["2.weight"]), loop


class FirstLayerRecorder(pl.Callback):
    """After the Unlearn callback in the list: the first layer before each optimizer step and after it."""

    def __init__(self) -> None:
        self.before: list[torch.Tensor] = []
        self.after: list[torch.Tensor] = []

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        self.before.append(pl_module.net[0].weight.detach().clone())

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.after.append(pl_module.net[0].weight.detach().clone())


class TrainingUser(NoTrainingUser):
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=LR, weight_decay=0.5)


def test_an_interleaved_mask_freezes_only_the_steps_that_carry_the_forget_term(data):
    from lightning_unlearn.methods import RegexMask

    unlearn = Unlearn(NPO(mask=RegexMask(r"net\.2\.")), forget=data["forget"], batch_size=20, every_n_steps=2, progress_bar=False, monitor=False)
    recorder = FirstLayerRecorder()
    make_trainer(max_epochs=1, callbacks=[unlearn, recorder]).fit(TrainingUser(pretrained_net(data)), DataLoader(data["retain"], batch_size=20))
    assert len(recorder.before) == len(recorder.after) == 6
    for step, (before, after) in enumerate(zip(recorder.before, recorder.after)):
        if step % 2 == 0:  # the forget term was added: the masked-out first layer did not move, weight decay included
            assert torch.equal(before, after), step
        else:  # the user's own step: the user's training moves every weight
            assert not torch.equal(before, after), step
