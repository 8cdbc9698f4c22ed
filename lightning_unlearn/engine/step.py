"""The unlearning step: one place that turns forget/retain batches into a method's loss and an optimizer step.

Every loop that steps a method goes through :class:`UnlearningEngine`:

* **inside Lightning's own training step** (``UnlearningModule.training_step`` and the ``Unlearn``
  callback's interleaved schedule) the engine only computes the loss; Lightning runs backward,
  precision, gradient accumulation, clipping (``Trainer(gradient_clip_val=...)``) and DDP, and calls
  :meth:`UnlearningEngine.before_optimizer_step` / :meth:`UnlearningEngine.after_optimizer_step`
  around its optimizer step;
* **inside a fit but outside the training step** (the ``Unlearn`` callback's ``before_training`` /
  ``after_training`` phases) :class:`TrainerStepper` steps through the Trainer's own strategy: the
  forward runs through the strategy's (DDP-wrapped) model, backward through ``strategy.backward`` and
  the step through ``strategy.optimizer_step``, so the precision plugin, the gradient scaler, the
  Trainer's clipping and DDP's gradient reduction apply exactly as in a training step (one optimizer step per
  forget batch: the Trainer's ``accumulate_grad_batches`` is not applied there, and a warning says so);
* **outside any fit** (continual unlearning, and the federated clients and diffusion loops to come)
  :class:`FabricStepper` steps through Lightning Fabric (``fabric.autocast``, ``fabric.backward``,
  ``fabric.clip_gradients`` and Fabric's optimizer wrapper).

:func:`run_steps` is the loop both steppers share: batches in, a progress bar, logging, the stop criterion.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.fabric import Fabric
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import Tensor, nn

from lightning_unlearn.methods.base import LossOutput, NonFiniteLossError, StepContext, UnlearningMethod
from lightning_unlearn.tasks.base import Task

#: Lightning strategies the engine supports (by class name), and how it uses each.
SUPPORTED_STRATEGIES: dict[str, str] = {
    "SingleDeviceStrategy": "one process on one device (CPU or one GPU)",
    "DDPStrategy": "data-parallel processes ('ddp', 'ddp_spawn', 'ddp_notebook'); gradients reduced by DDP",
}


def check_strategy(strategy: Any, *, where: str) -> None:
    """Raise a ``MisconfigurationException`` unless ``strategy`` is one the engine supports.

    FSDP, DeepSpeed and model-parallel strategies shard parameters: the reference copy, parameter masks and a
    phase's own optimizer would see shards, so they are refused rather than silently wrong.
    """
    name = type(strategy).__name__
    if name not in SUPPORTED_STRATEGIES:
        raise MisconfigurationException(
            f"{where} supports the strategies {sorted(SUPPORTED_STRATEGIES)} "
            f"({'; '.join(f'{k}: {v}' for k, v in SUPPORTED_STRATEGIES.items())}), got {name}. "
            "Use Trainer(strategy='ddp') or a single device."
        )


@dataclass
class Progress:
    """Where a step sits in its run, for methods with schedules (``StepContext.progress``)."""

    epoch: int = 0
    max_epochs: int | None = None
    global_step: int = 0


class UnlearningEngine:
    """Computes a method's loss on a step's batches and runs the method's hooks around optimizer steps.

    Args:
        method: The unlearning method.
        task: What the model is (its primitives).
    """

    def __init__(self, method: UnlearningMethod, task: Task) -> None:
        self.method = method
        self.task = task
        #: The latest step's loss parts (detached): what the report's loss curve records on every step, also on
        #: the steps where nothing is ``self.log``ged.
        self.last_parts: dict[str, Tensor] = {}

    def loss(self, model: nn.Module, forget: Any, retain: Any, progress: Progress, *, include_retain: bool = True) -> LossOutput:
        """``method.loss`` on one step's batches (``retain=None`` and ``include_retain=False`` in the interleaved
        schedule, where the user's own loss is the retain objective)."""
        ctx = StepContext(
            model=model,
            task=self.task,
            forget=forget,
            retain=retain,
            reference=self.method.reference,
            epoch=progress.epoch,
            max_epochs=progress.max_epochs,
            global_step=progress.global_step,
        )
        try:
            out = self.method.loss(ctx, include_retain=include_retain)
        except NonFiniteLossError as err:
            raise NonFiniteLossError(f"{err} {describe_weights(model)}") from None
        self.last_parts = out.parts
        return out

    def before_optimizer_step(self, model: nn.Module) -> None:
        """After backward, before the step: the method's gradient edits (the parameter mask, projections)."""
        self.method.before_optimizer_step(model)

    def after_optimizer_step(self, model: nn.Module) -> None:
        """After the step: the method's weight edits (re-imposing the entries a parameter mask freezes, which
        AdamW's weight decay and Adam's momentum would otherwise still move)."""
        self.method.after_optimizer_step(model)

    def batch_size(self, forget: Any, retain: Any) -> int:
        return self.task.batch_size(forget if forget is not None else retain)


@torch.no_grad()
def describe_weights(model: nn.Module) -> str:
    """What state a model's weights are in, for an error raised mid-run: the largest magnitude and how many values
    are NaN or infinite (one pass over the parameters)."""
    largest, bad, total = 0.0, 0, 0
    for p in model.parameters():
        finite = torch.isfinite(p)
        total += p.numel()
        bad += int(p.numel() - finite.sum())
        if finite.any():
            largest = max(largest, float(p.detach()[finite].abs().max()))
    state = f"The weights now: largest |w| = {largest:.3g}, {bad} of {total} values NaN or infinite"
    if bad or largest > 1e4:
        return state + " — they diverged before the loss did."
    return state + "."


def average_gradients(params: Sequence[Tensor]) -> None:
    """All-reduce (mean) the gradients of parameters that DDP does not wrap (a callback's method-owned modules);
    a no-op in one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


@contextlib.contextmanager
def swapped_training_step(pl_module: pl.LightningModule, step: Callable[..., Any]) -> Iterator[None]:
    """Temporarily make ``step`` the module instance's ``training_step`` (restored on exit, also on errors)."""
    had_own = "training_step" in vars(pl_module)
    previous = pl_module.training_step
    pl_module.training_step = types.MethodType(step, pl_module)  # type: ignore[method-assign]
    try:
        yield
    finally:
        if had_own:
            pl_module.training_step = previous  # type: ignore[method-assign]
        else:
            del pl_module.training_step


class TrainerStepper:
    """Optimizer steps inside a running fit, through the Trainer's strategy (precision, clipping, DDP).

    The forward runs as a training step of the strategy's model (so DDP's reducer averages the module's
    gradients), backward through ``strategy.backward`` and the step through ``strategy.optimizer_step``, which
    calls the ``on_before_optimizer_step`` hooks (the ``Unlearn`` callback's runs the engine's
    :meth:`~UnlearningEngine.before_optimizer_step` there) and clips gradients with the Trainer's
    ``gradient_clip_val``; the engine's :meth:`~UnlearningEngine.after_optimizer_step` follows the step. ``extra_params`` (trainable tensors outside the module, e.g. a method's own
    projector) have their gradients averaged across ranks by hand, since DDP does not wrap them.
    """

    def __init__(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        optimizer: torch.optim.Optimizer,
        engine: UnlearningEngine,
        extra_params: Sequence[Tensor] = (),
    ) -> None:
        check_strategy(trainer.strategy, where="An unlearning phase")
        accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
        if accumulate > 1:
            rank_zero_warn(
                f"An unlearning phase takes one optimizer step per forget batch: Trainer(accumulate_grad_batches={accumulate}) "
                "applies to your own training steps (and to the interleaved schedule), not to the phase. For a larger "
                "phase batch, pass Unlearn(batch_size=...)."
            )
        self.engine = engine
        self.trainer = trainer
        self.module = pl_module
        self.optimizer = optimizer
        self.extra_params = list(extra_params)

    def step(self, compute: Callable[[nn.Module], LossOutput]) -> LossOutput:
        result: list[LossOutput] = []
        strategy = self.trainer.strategy

        def training_step(module: pl.LightningModule) -> Tensor:
            out = compute(module)
            result.append(out)
            return out.loss

        def closure() -> Tensor:
            with swapped_training_step(self.module, training_step):
                loss = strategy.training_step()
            self.optimizer.zero_grad(set_to_none=True)
            strategy.backward(loss, self.optimizer)
            average_gradients(self.extra_params)
            return loss

        strategy.optimizer_step(self.optimizer, closure, model=self.module)
        self.engine.after_optimizer_step(self.module)
        return result[-1]


class FabricStepper:
    """Optimizer steps outside a Trainer, through Lightning Fabric (autocast, scaled backward, clipping).

    Args:
        fabric: A launched single-process ``Fabric`` (its precision decides autocast and gradient scaling).
        model: The module being unlearned (given to the method's hooks).
        optimizer: A plain optimizer; it is wrapped with ``fabric.setup_optimizers``.
        max_grad_norm: Clip the gradient norm of the optimizer's parameters (``None``: no clipping).
        before_step: Extra gradient edits after the method's own (e.g. continual SVD-LoRA's projection).
        after_step: Extra weight edits after the method's own.
    """

    def __init__(
        self,
        fabric: Fabric,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        engine: UnlearningEngine,
        *,
        max_grad_norm: float | None = None,
        before_step: Callable[[], None] | None = None,
        after_step: Callable[[], None] | None = None,
    ) -> None:
        check_strategy(fabric.strategy, where="Unlearning outside a Trainer")
        if fabric.world_size > 1:
            raise MisconfigurationException(
                f"Unlearning outside a Trainer runs in one process, got a Fabric with world_size={fabric.world_size}; "
                "use the Unlearn callback or UnlearningModule with Trainer(strategy='ddp') for several processes."
            )
        self.fabric = fabric
        self.model = model
        self.optimizer = fabric.setup_optimizers(optimizer)
        self.engine = engine
        self.max_grad_norm = max_grad_norm
        self.before_step = before_step
        self.after_step = after_step

    def step(self, compute: Callable[[nn.Module], LossOutput]) -> LossOutput:
        with self.fabric.autocast():
            out = compute(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        self.fabric.backward(out.loss)
        self.engine.before_optimizer_step(self.model)
        if self.before_step is not None:
            self.before_step()
        if self.max_grad_norm is not None:
            self.fabric.clip_gradients(self.model, self.optimizer, max_norm=self.max_grad_norm)
        self.optimizer.step()
        self.engine.after_optimizer_step(self.model)
        if self.after_step is not None:
            self.after_step()
        return out


def make_fabric(device: str | torch.device = "cpu", precision: str = "32-true") -> Fabric:
    """A single-device Fabric for ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...)."""
    device = torch.device(device)
    if device.type == "cpu":
        return Fabric(accelerator="cpu", devices=1, precision=precision)  # type: ignore[arg-type]
    index = device.index if device.index is not None else 0
    return Fabric(accelerator=device.type, devices=[index], precision=precision)  # type: ignore[arg-type]


@dataclass
class StepBatch:
    """One step's data: the forget and retain batches (already on the device) and where the step sits."""

    forget: Any
    retain: Any
    progress: Progress


@dataclass
class RunResult:
    """What :func:`run_steps` did."""

    steps: int = 0
    stopped_early: bool = False
    last_parts: dict[str, float] = field(default_factory=dict)
    recent_parts: list[dict[str, float]] = field(default_factory=list)


def run_steps(
    engine: UnlearningEngine,
    stepper: TrainerStepper | FabricStepper,
    batches: Iterable[StepBatch],
    *,
    total: int | None = None,
    description: str = "unlearning",
    progress_bar: bool = False,
    log: Callable[[dict[str, Tensor], int], None] | None = None,
    log_every_n_steps: int = 1,
    should_stop: Callable[[int], bool] | None = None,
    on_step_end: Callable[[int], None] | None = None,
    keep_recent: int = 10,
) -> RunResult:
    """The unlearning loop: step ``stepper`` on each of ``batches`` until they run out or ``should_stop(step)``.

    Args:
        engine: Computes the loss.
        stepper: Runs backward and the optimizer step (:class:`TrainerStepper` or :class:`FabricStepper`).
        batches: The steps' data, in order.
        total: Number of steps expected (for the progress bar).
        progress_bar: Show a tqdm bar with the latest loss parts.
        log: Called with the loss parts (detached tensors) and the 1-based step, every ``log_every_n_steps``.
        should_stop: Called after every step with the number of steps done; ``True`` ends the loop.
        on_step_end: Called after every step with the number of steps done (e.g. to advance a counter).
        keep_recent: How many recent steps' parts :class:`RunResult` keeps.
    """
    from tqdm.auto import tqdm

    result = RunResult()
    bar = tqdm(total=total, desc=description, disable=not progress_bar, leave=False)
    try:
        for item in batches:
            out = stepper.step(lambda model, item=item: engine.loss(model, item.forget, item.retain, item.progress))
            result.steps += 1
            if on_step_end is not None:
                on_step_end(result.steps)
            if log is not None and result.steps % log_every_n_steps == 0:
                log(out.parts, result.steps)
            if keep_recent:
                parts = {k: float(v) for k, v in out.parts.items()}
                result.last_parts = parts
                result.recent_parts = (result.recent_parts + [parts])[-keep_recent:]
            if progress_bar:
                bar.update(1)
                bar.set_postfix({k: f"{float(v):.4f}" for k, v in out.parts.items()})
            if should_stop is not None and should_stop(result.steps):
                result.stopped_early = True
                break
    finally:
        bar.close()
    return result


def logging_step(trainer: pl.Trainer, batch_idx: int | None = None) -> bool:
    """Whether to ``self.log`` in this training step: on the steps whose values reach the loggers (Lightning writes
    every ``log_every_n_steps``) and on an epoch's last batch (so ``callback_metrics`` hold the epoch's final
    values). Per-step ``self.log`` calls on the other steps cost time and are never written."""
    connector = getattr(trainer, "_logger_connector", None)
    if bool(getattr(connector, "should_update_logs", True)):
        return True
    return batch_idx is not None and batch_idx + 1 >= trainer.num_training_batches
