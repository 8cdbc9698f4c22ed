"""``Unlearn``: add unlearning to an existing Trainer without editing the user's LightningModule."""

from __future__ import annotations

import types
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from typing_extensions import override

from lightning_unlearn._errors import check_choice
from lightning_unlearn.callbacks._stream import BatchStream
from lightning_unlearn.methods.base import StepContext, UnlearningMethod
from lightning_unlearn.tasks.base import Task
from lightning_unlearn.tasks.classification import ClassificationTask

Schedule = Literal["interleaved", "before_training", "after_training"]
_SCHEDULES = {
    "interleaved": "add the method's forget objective to every (n-th) step of the user's own training",
    "before_training": "run a separate unlearning phase on the loaded model before the user's training starts",
    "after_training": "run a separate unlearning phase after the user's training ends",
}


class Unlearn(Callback):
    """Make a user's own LightningModule forget a set of samples.

    The module stays untouched: the callback either wraps its ``training_step`` for the run
    (``schedule="interleaved"``: the user's loss plays the retain objective and the method's
    forget term is added to it, inside Lightning's own backward, precision and DDP handling), or
    runs a separate unlearning phase on forget/retain data with its own optimizer before or after
    the user's training (``"before_training"`` / ``"after_training"``). The model is called as
    ``pl_module(inputs)``, i.e. through the user's ``forward``.

    Progress (position in the forget stream, steps done, whether the phase ran) lives in
    :meth:`state_dict`, so a run resumed from a checkpoint continues where it stopped.

    The reference model (NPO, SCRUB, KL retain terms) and parameter masks (SalUn) are taken from the
    weights the module has when ``fit`` starts, also with ``start_epoch > 0``. The
    ``"after_training"`` phase runs after Lightning's last epoch-end checkpoint: save the unlearned
    weights with :class:`~lightning_unlearn.SaveWeights` (it runs at ``on_fit_end``, after the
    phase) or ``trainer.save_checkpoint`` after ``fit``.

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
        max_steps: Phase schedules: stop after this many steps (``None`` = ``epochs`` passes).
        optimizer: Phase schedules: optimizer factory (default ``Adam(lr=1e-3)``).
        seed: Seed of the forget/retain shuffling.
        progress_bar: Show a progress bar during a phase.
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
        epochs: int = 1,
        max_steps: int | None = None,
        optimizer: OptimizerCallable | None = None,
        seed: int = 0,
        progress_bar: bool = True,
    ) -> None:
        if not isinstance(method, UnlearningMethod):
            raise TypeError(f"`method` should be an UnlearningMethod (e.g. GradientAscent()), got {type(method).__name__}.")
        check_choice("schedule", schedule, _SCHEDULES)
        for name, value in (("batch_size", batch_size), ("every_n_steps", every_n_steps), ("epochs", epochs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` should be a positive int, got {value!r}.")
        if start_epoch < 0:
            raise ValueError(f"`start_epoch` should be >= 0, got {start_epoch!r}.")
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"`max_steps` should be a positive int or None, got {max_steps!r}.")
        if schedule != "interleaved" and method.uses_retain and retain is None:
            raise ValueError(
                f"`retain` is needed: schedule={schedule!r} runs its own phase and {type(method).__name__} "
                f"has a retain term (retain_loss={method.retain_loss_kind!r}); pass retain data or set retain_loss='none'."
            )
        self.method = method
        self.task = task if task is not None else ClassificationTask()
        self.schedule = schedule
        self.every_n_steps = every_n_steps
        self.start_epoch = start_epoch
        self.epochs = epochs
        self.max_steps = max_steps
        self.optimizer_factory = optimizer
        self.progress_bar = progress_bar
        self.forget = BatchStream(forget, batch_size, seed)
        self.retain = BatchStream(retain, batch_size, seed + 1) if retain is not None else None
        self.steps = 0
        self.phase_done = False
        self._original_step: Any = None
        self._had_own_step = False
        self._method_ready = False
        self._pending_method_state: dict[str, Any] | None = None

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(method=self.method.name, schedule=self.schedule)

    # ------------------------------------------------------------------ lifecycle
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.forget.distribute(trainer.world_size, trainer.global_rank)
        if self.retain is not None:
            self.retain.distribute(trainer.world_size, trainer.global_rank)
        eval_forget = DataLoader(self.forget.dataset, batch_size=self.forget.batch_size, collate_fn=self.forget.collate)
        eval_retain = (
            DataLoader(self.retain.dataset, batch_size=self.retain.batch_size, collate_fn=self.retain.collate) if self.retain is not None else None
        )
        self.method.setup(pl_module, self.task, eval_forget, eval_retain)
        self._method_ready = True
        if self._pending_method_state is not None:
            self.method.load_state_dict(self._pending_method_state)
            self._pending_method_state = None
        if self.schedule == "interleaved":
            self._wrap_training_step(trainer, pl_module)

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._unwrap_training_step(pl_module)

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # Lightning skips the ``teardown`` hooks when fit raises; the user's module must still be restored.
        self._unwrap_training_step(pl_module)

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.method.to(pl_module.device)
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

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.schedule == "after_training":
            self._run_phase(trainer, pl_module)

    @override
    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer) -> None:
        if self.schedule == "interleaved" and self._active(trainer):
            # DDP averages the module's gradients; the method's own modules are not part of it
            _average_gradients(self.method.parameters(), trainer.world_size)
            self.method.before_optimizer_step(pl_module)

    # ------------------------------------------------------------------ interleaved
    def _active(self, trainer: pl.Trainer) -> bool:
        return trainer.current_epoch >= self.start_epoch and trainer.global_step % self.every_n_steps == 0

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
            extra = callback._forget_term(module)
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

    def _forget_term(self, pl_module: pl.LightningModule) -> Tensor:
        trainer = pl_module.trainer
        batch = move_data_to_device(self.forget.next(), pl_module.device)
        ctx = StepContext(
            model=pl_module,
            task=self.task,
            forget=batch,
            retain=None,
            reference=self.method.reference,
            epoch=trainer.current_epoch - self.start_epoch,
            max_epochs=(trainer.max_epochs - self.start_epoch) if trainer.max_epochs and trainer.max_epochs > 0 else None,
            global_step=trainer.global_step,
        )
        out = self.method.loss(ctx, include_retain=False)
        self.steps += 1
        pl_module.log_dict({f"unlearn/{k}": v for k, v in out.parts.items()}, batch_size=self.task.batch_size(batch))
        return out.loss

    # ------------------------------------------------------------------ phase
    def _run_phase(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.phase_done:
            return
        device = pl_module.device
        params = [p for p in pl_module.parameters() if p.requires_grad]
        factory = self.optimizer_factory or (lambda ps: torch.optim.Adam(ps, lr=1e-3))
        optimizer = factory(params + self.method.parameters())
        plugin = trainer.precision_plugin
        scaler = getattr(plugin, "scaler", None)
        world = trainer.world_size
        total = self.max_steps or self.epochs * self.forget.batches_per_epoch()
        bar = tqdm(total=total, desc=f"unlearning ({self.method.name})", disable=not (self.progress_bar and trainer.is_global_zero), leave=False)
        was_training = pl_module.training
        pl_module.train()
        self.method.train()
        step = 0
        def budget_left() -> bool:
            return self.max_steps is None or step < self.max_steps

        for epoch in range(self.epochs):
            if not budget_left():
                break
            batches = self.forget.epoch_batches()
            while budget_left() and (forget_batch := next(batches, None)) is not None:
                retain_batch = move_data_to_device(self.retain.next(), device) if self.retain is not None else None
                ctx = StepContext(
                    model=pl_module,
                    task=self.task,
                    forget=move_data_to_device(forget_batch, device),
                    retain=retain_batch,
                    reference=self.method.reference,
                    epoch=epoch,
                    max_epochs=self.epochs,
                    global_step=step,
                )
                with plugin.forward_context():
                    out = self.method.loss(ctx)
                optimizer.zero_grad(set_to_none=True)
                (scaler.scale(out.loss) if scaler is not None else out.loss).backward()
                _average_gradients(params + self.method.parameters(), world)
                if scaler is not None:
                    scaler.unscale_(optimizer)
                self.method.before_optimizer_step(pl_module)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                step += 1
                self.steps += 1
                bar.update(1)
                bar.set_postfix({k: f"{v.item():.4f}" for k, v in out.parts.items()})
                if trainer.is_global_zero:
                    for logger in trainer.loggers:
                        logger.log_metrics({f"unlearn/{k}": float(v) for k, v in out.parts.items()}, step=self.steps)
        bar.close()
        pl_module.train(was_training)
        self.phase_done = True
        rank_zero_info(f"Unlearn: {self.method.name} phase finished after {step} steps.")

    # ------------------------------------------------------------------ checkpointing
    @override
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"steps": self.steps, "phase_done": self.phase_done, "forget": self.forget.state_dict()}
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
        if "method" in state_dict:
            if self._method_ready:  # Lightning restores callback state after the `setup` hook
                self.method.load_state_dict(state_dict["method"])
            else:
                self._pending_method_state = state_dict["method"]
        if "forget" in state_dict:
            self.forget.load_state_dict(state_dict["forget"])
        if self.retain is not None and "retain" in state_dict:
            self.retain.load_state_dict(state_dict["retain"])


def _average_gradients(params: list[Tensor], world: int) -> None:
    """All-reduce (mean) the gradients of ``params`` across DDP ranks; a no-op in one process."""
    if world <= 1 or not (dist.is_available() and dist.is_initialized()):
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)
