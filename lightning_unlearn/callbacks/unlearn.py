"""``Unlearn``: add unlearning to an existing Trainer without editing the user's LightningModule."""

from __future__ import annotations

import types
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from lightning_unlearn._errors import check_choice
from lightning_unlearn._rng import PendingRNG, collect_rng_states
from lightning_unlearn.callbacks._stream import BatchStream
from lightning_unlearn.engine import (
    ForgetMonitor,
    Progress,
    StepBatch,
    TrainerStepper,
    UnlearningEngine,
    average_gradients,
    check_stop_arguments,
    check_strategy,
    logging_step,
    run_steps,
)
from lightning_unlearn.engine.precision import follow_precision, to_module
from lightning_unlearn.methods.base import NonFiniteLossError, UnlearningMethod
from lightning_unlearn.tasks.base import Task
from lightning_unlearn.tasks.classification import ClassificationTask

Schedule = Literal["interleaved", "before_training", "after_training"]
_SCHEDULES = {
    "interleaved": "add the method's forget objective to every (n-th) step of the user's own training",
    "before_training": "run a separate unlearning phase on the loaded model before the user's training starts",
    "after_training": "run a separate unlearning phase after the user's training ends",
}


#: The phase budget when neither ``epochs`` nor ``max_steps`` is given: enough steps to move a small forget set
#: (one pass over a 30-sample forget set is a single step), few enough to stay cheap on a large one.
DEFAULT_PHASE_STEPS = 100


class Unlearn(Callback):
    """Make a user's own LightningModule forget a set of samples.

    The module stays untouched: the callback either wraps its ``training_step`` for the run
    (``schedule="interleaved"``: the user's loss plays the retain objective and the method's
    forget term is added to it, inside Lightning's own backward, precision and DDP handling), or
    runs a separate unlearning phase on forget/retain data with its own optimizer before or after
    the user's training (``"before_training"`` / ``"after_training"``). A phase steps through the
    Trainer's own strategy (:class:`~lightning_unlearn.engine.TrainerStepper`): its precision, gradient
    scaler, ``gradient_clip_val`` and DDP gradient reduction apply as in a training step. The model is
    called as ``pl_module(inputs)``, i.e. through the user's ``forward``.

    **Did it forget?** Forget (and retain) loss and accuracy are measured when unlearning starts and when
    it ends (a phase's start and end; the fit's start and end for ``"interleaved"``), logged as
    ``unlearn/before/...`` and ``unlearn/after/...``, printed as one line, and a warning is raised when the
    forget set barely moved. ``stop_at_forget_acc`` / ``stop_at_forget_loss`` end a phase early (interleaved:
    stop adding the forget term) once the forget set is forgotten that far; the numbers are in
    :attr:`summary` after the fit.

    Progress (position in the forget stream, steps done, whether the phase ran) lives in
    :meth:`state_dict`, so a run resumed from a checkpoint continues where it stopped.

    The reference model (NPO, SCRUB, KL retain terms) and parameter masks (SalUn) are taken from the
    weights the module has when ``fit`` starts, also with ``start_epoch > 0``. The
    ``"after_training"`` phase runs after Lightning's last epoch-end checkpoint: save the unlearned
    weights with :class:`~lightning_unlearn.SaveWeights` (it runs at ``on_fit_end``, after the
    phase) or ``trainer.save_checkpoint`` after ``fit``. A run that stopped inside that phase (a crash, a kill) and is
    resumed from its last checkpoint runs the whole phase again from the weights it started from: Lightning skips
    ``on_train_end`` when no epoch is left, so the callback runs the phase at ``on_fit_end``, before any other
    callback's ``on_fit_end`` (``Unlearn`` callbacks are moved to the front of ``trainer.callbacks``).

    **Exact resume.** The stream positions, the method's state and the global random state (torch, NumPy, Python;
    restored as the first resumed batch starts) are in the checkpoint. A run resumed from a checkpoint written
    mid-epoch matches the uninterrupted run bit for bit on the CPU when the Trainer's own train loader is resumable
    too (``state_dict``/``load_state_dict``, e.g. :class:`~lightning_unlearn.ResumableDataLoader`; Lightning warns
    when it is not).

    **A diverging phase.** If the loss becomes NaN or infinite in a phase, the callback restores the weights the
    module had when the phase started and raises :class:`~lightning_unlearn.methods.NonFiniteLossError`.

    Args:
        method: The unlearning method, e.g. ``NPO(beta=0.1)``.
        forget: Forget data (a map-style ``Dataset`` or a ``DataLoader``).
        retain: Retain data for the phase schedules (the interleaved schedule uses the user's batches).
        task: What the model is; default :class:`~lightning_unlearn.tasks.ClassificationTask`.
        schedule: ``"interleaved"``, ``"before_training"`` or ``"after_training"``.
        batch_size: Batch size for forget/retain datasets (a DataLoader keeps its own).
        every_n_steps: Interleaved: add the forget term on every n-th training step.
        start_epoch: Interleaved: first epoch in which the forget term is added (a deletion request
            arriving mid-training).
        epochs: Phase schedules: passes over the forget set.
        max_steps: Phase schedules: stop after this many steps. With neither ``epochs`` nor ``max_steps``, a phase
            runs ``DEFAULT_PHASE_STEPS`` (100) steps, cycling over the forget set.
        optimizer: Phase schedules: optimizer factory (default ``Adam(lr=1e-3)``).
        seed: Seed of the forget/retain shuffling.
        progress_bar: Show a progress bar during a phase.
        stop_at_forget_acc: Stop once the forget accuracy (percent, on the whole forget set) is at or below this.
        stop_at_forget_loss: Stop once the mean forget loss is at or above this.
        check_every_n_steps: How often the stop criterion scores the forget set.
        monitor: Measure forget/retain loss and accuracy before and after, print the summary and warn when the
            forget set barely moved (``False`` skips the two extra evaluation passes).
        monitor_max_samples: Retain samples scored by the monitor (evenly spaced).
    """

    def __init__(
        self,
        method: UnlearningMethod,
        forget: Dataset | DataLoader,
        retain: Dataset | DataLoader | None = None,
        task: Task | None = None,
        schedule: Schedule = "interleaved",
        batch_size: int = 64,
        every_n_steps: int = 1,
        start_epoch: int = 0,
        epochs: int | None = None,
        max_steps: int | None = None,
        optimizer: OptimizerCallable | None = None,
        seed: int = 0,
        progress_bar: bool = True,
        stop_at_forget_acc: float | None = None,
        stop_at_forget_loss: float | None = None,
        check_every_n_steps: int = 10,
        monitor: bool = True,
        monitor_max_samples: int = 2048,
    ) -> None:
        if not isinstance(method, UnlearningMethod):
            raise TypeError(f"`method` should be an UnlearningMethod (e.g. GradientAscent()), got {type(method).__name__}.")
        check_choice("schedule", schedule, _SCHEDULES)
        for name, value in (("batch_size", batch_size), ("every_n_steps", every_n_steps), ("monitor_max_samples", monitor_max_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` should be a positive int, got {value!r}.")
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise ValueError(f"`epochs` should be a positive int or None, got {epochs!r}.")
        if start_epoch < 0:
            raise ValueError(f"`start_epoch` should be >= 0, got {start_epoch!r}.")
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
            raise ValueError(f"`max_steps` should be a positive int or None, got {max_steps!r}.")
        check_stop_arguments(stop_at_forget_acc, stop_at_forget_loss, check_every_n_steps)
        if schedule != "interleaved" and method.uses_retain and retain is None:
            raise ValueError(
                f"`retain` is needed: schedule={schedule!r} runs its own phase and {type(method).__name__} "
                f"has a retain term (retain_loss={method.retain_loss_kind!r}); pass retain data or set retain_loss='none'."
            )
        self.method = method
        self.task = task if task is not None else ClassificationTask()
        self.engine = UnlearningEngine(method, self.task)
        self.schedule = schedule
        self.every_n_steps = every_n_steps
        self.start_epoch = start_epoch
        self.epochs = epochs
        self.max_steps = max_steps if (max_steps is not None or epochs is not None) else DEFAULT_PHASE_STEPS
        self.optimizer_factory = optimizer
        self.progress_bar = progress_bar
        self.stop_at_forget_acc = stop_at_forget_acc
        self.stop_at_forget_loss = stop_at_forget_loss
        self.check_every_n_steps = check_every_n_steps
        self.monitor_enabled = monitor
        self.monitor_max_samples = monitor_max_samples
        self.forget = BatchStream(forget, batch_size, seed)
        self.retain = BatchStream(retain, batch_size, seed + 1) if retain is not None else None
        self.steps = 0
        self.phase_done = False
        self.criterion_met = False
        #: Forget/retain loss and accuracy before and after unlearning (``before/forget_acc``, ...), after the fit.
        self.summary: dict[str, float] = {}
        self.monitor: ForgetMonitor | None = None
        self._original_step: Any = None
        self._had_own_step = False
        self._method_ready = False
        self._in_phase = False
        self._masked_step = False
        self._pending_method_state: dict[str, Any] | None = None
        self._pending_rng = PendingRNG()

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(method=self.method.name, schedule=self.schedule)

    # ------------------------------------------------------------------ lifecycle
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        check_strategy(trainer.strategy, where="The Unlearn callback")
        # Unlearning callbacks act first at every hook, so that callbacks which save or score the model at the
        # fit's end (SaveWeights, the report, evaluations) see the unlearned model, also after a pending phase.
        # (A new list: Lightning is iterating the current one to call this hook.)
        trainer.callbacks = sorted(trainer.callbacks, key=lambda c: not isinstance(c, Unlearn))
        self.forget.distribute(trainer.world_size, trainer.global_rank)
        if self.retain is not None:
            self.retain.distribute(trainer.world_size, trainer.global_rank)
        eval_forget = self.forget.loader()
        eval_retain = self.retain.loader() if self.retain is not None else None
        self.method.setup(pl_module, self.task, eval_forget, eval_retain)
        self._method_ready = True
        if self._pending_method_state is not None:
            self.method.load_state_dict(self._pending_method_state)
            self._pending_method_state = None
        if self.monitor_enabled or self.stop_at_forget_acc is not None or self.stop_at_forget_loss is not None:
            self.monitor = ForgetMonitor(
                self.task,
                eval_forget,
                eval_retain,
                stop_at_forget_acc=self.stop_at_forget_acc,
                stop_at_forget_loss=self.stop_at_forget_loss,
                check_every_n_steps=self.check_every_n_steps,
                max_samples=self.monitor_max_samples,
                name=f"Unlearn({self.method.name}, {self.schedule})",
            )
        if self.schedule == "interleaved":
            self._wrap_training_step(trainer, pl_module)

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._unwrap_training_step(pl_module)
        self.method.restore_dropout()  # methods with a reference set it to 0 for the fit

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # Lightning skips the ``teardown`` hooks when fit raises; the user's module must still be restored.
        self._unwrap_training_step(pl_module)
        self.method.restore_dropout()

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.method.to(pl_module.device)
        follow_precision(trainer, self.method, self.monitor)  # the reference etc. in the module's precision
        own = self.method.parameters()
        if own and self.schedule == "interleaved" and trainer.optimizers:
            # The method's own modules (e.g. a projector) train with the user's (first) optimizer, at its default
            # lr. Added before Lightning restores optimizer states, so a resumed run finds the same groups; an lr
            # scheduler of that optimizer learns the new group's base lr.
            optimizer = trainer.optimizers[0]
            optimizer.add_param_group({"params": own})
            group = optimizer.param_groups[-1]
            group.setdefault("initial_lr", group["lr"])
            for config in trainer.lr_scheduler_configs:
                scheduler = config.scheduler
                if getattr(scheduler, "optimizer", None) is optimizer and isinstance(getattr(scheduler, "base_lrs", None), list):
                    scheduler.base_lrs.append(group["initial_lr"])

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.schedule == "before_training":
            self._run_phase(trainer, pl_module)
        elif self.schedule == "interleaved" and self.monitor_enabled and self.monitor is not None and not self.monitor.before:
            self.monitor.start(pl_module, pl_module.device)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.schedule == "after_training":
            self._run_phase(trainer, pl_module)
        elif self.schedule == "interleaved":
            if self.steps:
                self.method.on_run_end(pl_module, self.task)  # the method's last edit (SCRUB+R's rewind)
            if self.monitor_enabled and self.monitor is not None and self.monitor.before:
                self._finish_monitor(trainer, pl_module, self.steps)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.schedule == "after_training" and not self.phase_done:
            # A run resumed from a checkpoint written after its last epoch (e.g. ``last.ckpt`` of a run that crashed
            # inside the phase) has no epochs left, so Lightning skips ``on_train_end``: the phase runs here.
            rank_zero_info(
                f"Unlearn({self.method.name}): the run resumed after its training had ended and the after_training "
                "phase had not finished; running it now."
            )
            self._run_phase(trainer, pl_module)

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._pending_rng.apply()  # a resumed run continues the interrupted run's random numbers from here

    @override
    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer) -> None:
        if self._in_phase:
            self.engine.before_optimizer_step(pl_module)
        elif self.schedule == "interleaved" and self._active(trainer):
            average_gradients(self.method.parameters())  # DDP averages the module's gradients, not the method's own
            # the user's training moved the weights since the last unlearning step: the mask freezes them as they are now
            self.method.release_frozen()
            self.engine.before_optimizer_step(pl_module)
            self._masked_step = True

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int) -> None:
        if self.schedule != "interleaved":
            return
        if self._masked_step:  # only the steps that carried the forget term are the method's to edit
            self.engine.after_optimizer_step(pl_module)
            self._masked_step = False
        if self.criterion_met:
            return
        monitor = self.monitor
        if monitor is not None and monitor.has_criterion and self.steps and monitor.should_stop(pl_module, self.steps, pl_module.device):
            self.criterion_met = True  # the forget term is no longer added; the user's own training goes on

    # ------------------------------------------------------------------ interleaved
    def _active(self, trainer: pl.Trainer) -> bool:
        return (
            not self.criterion_met
            and trainer.current_epoch >= self.start_epoch
            and trainer.global_step % self.every_n_steps == 0
        )

    def _wrap_training_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._original_step is not None:
            return
        original = pl_module.training_step
        callback = self

        def training_step(module: pl.LightningModule, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
            out = original(*args, **kwargs)
            if out is None or not callback._active(module.trainer):
                return out
            user_loss = out if isinstance(out, Tensor) else out["loss"]
            batch_idx = args[1] if len(args) > 1 else kwargs.get("batch_idx")
            extra = callback._forget_term(module, batch_idx)
            total = user_loss + extra
            if isinstance(out, Tensor):
                return total
            return {**out, "loss": total}

        self._original_step = original
        self._had_own_step = "training_step" in vars(pl_module)
        pl_module.training_step = types.MethodType(training_step, pl_module)  # type: ignore[method-assign]

    def _unwrap_training_step(self, pl_module: pl.LightningModule) -> None:
        if self._original_step is None:
            return
        if self._had_own_step:
            pl_module.training_step = self._original_step  # type: ignore[method-assign]
        else:
            del pl_module.training_step  # the class's own method shows through again
        self._original_step = None

    def _forget_term(self, pl_module: pl.LightningModule, batch_idx: int | None) -> Tensor:
        trainer = pl_module.trainer
        batch = to_module(self.forget.next(), pl_module)
        progress = Progress(
            epoch=trainer.current_epoch - self.start_epoch,
            max_epochs=(trainer.max_epochs - self.start_epoch) if trainer.max_epochs and trainer.max_epochs > 0 else None,
            global_step=trainer.global_step,
        )
        out = self.engine.loss(pl_module, batch, None, progress, include_retain=False)
        self.steps += 1
        if logging_step(trainer, batch_idx):
            pl_module.log_dict({f"unlearn/{k}": v for k, v in out.parts.items()}, batch_size=self.task.batch_size(batch))
        return out.loss

    # ------------------------------------------------------------------ phase
    def _phase_batches(self, pl_module: pl.LightningModule) -> Any:
        """Forget batches pass after pass (each with the next retain batch) until the budget is spent."""
        done = 0
        epoch = 0
        while self.epochs is None or epoch < self.epochs:
            batches = self.forget.epoch_batches()
            while self.max_steps is None or done < self.max_steps:
                forget_batch = next(batches, None)
                if forget_batch is None:
                    break
                retain_batch = to_module(self.retain.next(), pl_module) if self.retain is not None else None
                yield StepBatch(to_module(forget_batch, pl_module), retain_batch, Progress(epoch, self.epochs, done))
                done += 1
            if self.max_steps is not None and done >= self.max_steps:
                return
            epoch += 1

    def _run_phase(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.phase_done:
            return
        self._pending_rng.apply()
        params = [p for p in pl_module.parameters() if p.requires_grad]
        factory = self.optimizer_factory or (lambda ps: torch.optim.Adam(ps, lr=1e-3))
        optimizer = factory(params + self.method.parameters())
        stepper = TrainerStepper(trainer, pl_module, optimizer, self.engine, extra_params=self.method.parameters())
        monitor = self.monitor
        if monitor is not None and self.monitor_enabled:
            monitor.start(pl_module, pl_module.device)
        budgets = [self.max_steps, self.epochs * self.forget.batches_per_epoch() if self.epochs is not None else None]
        total = min(b for b in budgets if b is not None)  # __init__ guarantees at least one

        def log(parts: dict[str, Tensor], step: int) -> None:
            if trainer.is_global_zero:
                for logger in trainer.loggers:
                    logger.log_metrics({f"unlearn/{k}": float(v) for k, v in parts.items()}, step=self.steps)

        def advance(step: int) -> None:
            self.steps += 1

        def should_stop(step: int) -> bool:
            return monitor is not None and monitor.should_stop(pl_module, step, pl_module.device)

        was_training = pl_module.training
        start_weights = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}
        pl_module.train()
        self.method.train()
        self._in_phase = True
        try:
            result = run_steps(
                self.engine,
                stepper,
                self._phase_batches(pl_module),
                total=total,
                description=f"unlearning ({self.method.name})",
                progress_bar=self.progress_bar and trainer.is_global_zero,
                log=log,
                log_every_n_steps=max(1, trainer.log_every_n_steps),
                should_stop=should_stop,
                on_step_end=advance,
                keep_recent=0,
            )
        except NonFiniteLossError as err:
            pl_module.load_state_dict(start_weights)
            raise NonFiniteLossError(
                f"{err} The Unlearn callback restored the weights the module had when the {self.schedule} phase started."
            ) from None
        finally:
            self._in_phase = False
            pl_module.train(was_training)
        self.criterion_met = result.stopped_early
        self.method.on_run_end(pl_module, self.task)
        self.phase_done = True
        if monitor is not None and self.monitor_enabled:
            self._finish_monitor(trainer, pl_module, result.steps)

    def _finish_monitor(self, trainer: pl.Trainer, pl_module: pl.LightningModule, steps: int) -> None:
        assert self.monitor is not None
        self.summary = self.monitor.finish(pl_module, steps, pl_module.device)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics({f"unlearn/{k}": v for k, v in self.summary.items()}, step=trainer.global_step)

    # ------------------------------------------------------------------ checkpointing
    @override
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "steps": self.steps,
            "phase_done": self.phase_done,
            "criterion_met": self.criterion_met,
            "forget": self.forget.state_dict(),
            "rng": collect_rng_states(),
        }
        method_state = self.method.state_dict()
        if method_state:
            state["method"] = method_state
        if self.retain is not None:
            state["retain"] = self.retain.state_dict()
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.steps = int(state_dict.get("steps", 0))
        self.phase_done = bool(state_dict.get("phase_done", False))
        self.criterion_met = bool(state_dict.get("criterion_met", False))
        self._pending_rng.load(state_dict.get("rng"))
        if "method" in state_dict:
            if self._method_ready:  # Lightning restores callback state after the `setup` hook
                self.method.load_state_dict(state_dict["method"])
            else:
                self._pending_method_state = state_dict["method"]
        if "forget" in state_dict:
            self.forget.load_state_dict(state_dict["forget"])
        if self.retain is not None and "retain" in state_dict:
            self.retain.load_state_dict(state_dict["retain"])

