"""``UnlearningModule``: wrap any ``nn.Module`` and unlearn it with ``Trainer.fit``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lightning_unlearn._rng import PendingRNG, collect_rng_states
from lightning_unlearn._weights import load_weights
from lightning_unlearn.datamodules.forget_retain import EVAL_SPLITS
from lightning_unlearn.engine import ForgetMonitor, Progress, UnlearningEngine, check_stop_arguments, check_strategy, logging_step
from lightning_unlearn.engine.precision import convert_module, follow_precision
from lightning_unlearn.evaluation import UnlearningEvaluator, with_gap
from lightning_unlearn.evaluation.padding import PaddingTrim, current_eval_loader
from lightning_unlearn.methods.base import NonFiniteLossError, UnlearningMethod
from lightning_unlearn.metrics import JSDivergence, MIAAttack
from lightning_unlearn.peft import apply_peft, enable_gradient_checkpointing
from lightning_unlearn.tasks.base import Task
from lightning_unlearn.tasks.classification import ClassificationTask


class UnlearningModule(pl.LightningModule):
    """A LightningModule that unlearns ``model`` with ``method`` on paired forget/retain batches.

    Train it with a :class:`~lightning_unlearn.ForgetRetainDataModule` (``train_on="forget_retain"``).
    Each step is the engine's (:class:`~lightning_unlearn.engine.UnlearningEngine`); Lightning runs backward,
    precision, accumulation, clipping and DDP. Forget (and retain) loss and accuracy are measured when training
    starts and ends (logged as ``unlearn/before/...``, ``unlearn/after/...``, printed as one line, kept in
    :attr:`unlearning_summary`; on a resumed fit "before" is the model as the fit resumed), with a warning when
    the forget set barely moved; ``stop_at_forget_acc`` /
    ``stop_at_forget_loss`` end the fit early once it is forgotten that far (else ``max_epochs``/``max_steps``).
    ``validate``/``test`` report the unlearning metrics on the datamodule's evaluation splits
    (``forget_acc``, ``UA``, ``RA``, ``TA``, ``MIA``, ``mia_auc``) and, when ``oracle`` weights are
    given, the oracle's metrics (``oracle/...``) and ``avg_gap``.

    Args:
        model: The network to unlearn (any ``nn.Module`` the ``task`` understands).
        method: The unlearning method (e.g. ``GradientAscent()``, ``SalUn(threshold=0.5)``).
        task: What the model is; default :class:`~lightning_unlearn.tasks.ClassificationTask`.
        optimizer: Optimizer factory called with the trainable parameters (default ``torch.optim.Adam``).
        lr_scheduler: Optional learning-rate scheduler factory.
        original: Weights of the trained model to unlearn (``torch.save(state_dict)`` file or a
            Lightning checkpoint), loaded with ``weights_only=True``. The file is only read.
        oracle: Weights of the model retrained without the forget set; enables ``avg_gap``.
        mia_attack: Attack model of MIA-efficacy: ``"logistic"`` or ``"svc"``.
        peft: Train a LoRA adapter instead of the full weights: a dict of ``peft.LoraConfig`` arguments (e.g.
            ``{"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], "lora_dropout": 0.0}``) or a
            ``peft.PeftConfig``. ``model`` is wrapped with ``peft.get_peft_model`` after the ``original`` weights
            are loaded (``self.model`` is then the ``PeftModel``); a method's reference θ₀ is the same network
            with the adapter disabled (see :mod:`lightning_unlearn.peft`). Needs the ``llm`` extra.
        gradient_checkpointing: Recompute activations in the backward pass (a ``transformers`` model): ``True``,
            or a dict of ``torch.utils.checkpoint`` arguments (e.g. ``{"use_reentrant": True}``). Also enables
            input gradients so that an adapter inside checkpointed layers still trains.
        stop_at_forget_acc: Stop the fit once the forget accuracy (percent, on the whole forget set) is at or below this.
        stop_at_forget_loss: Stop the fit once the mean forget loss is at or above this.
        check_every_n_steps: How often (in optimizer steps) the stop criterion scores the forget set.
        monitor: Measure forget/retain loss and accuracy before and after, print the summary and warn when the
            forget set barely moved (``False`` skips the two extra evaluation passes).
        monitor_max_samples: Retain samples scored by the monitor (evenly spaced).
    """

    def __init__(
        self,
        model: nn.Module,
        method: UnlearningMethod,
        task: Task | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        original: str | None = None,
        oracle: str | None = None,
        mia_attack: MIAAttack = "logistic",
        peft: dict[str, Any] | None = None,
        gradient_checkpointing: bool | dict[str, Any] = False,
        stop_at_forget_acc: float | None = None,
        stop_at_forget_loss: float | None = None,
        check_every_n_steps: int = 10,
        monitor: bool = True,
        monitor_max_samples: int = 2048,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` should be a torch.nn.Module, got {type(model).__name__}.")
        if not isinstance(method, UnlearningMethod):
            raise TypeError(f"`method` should be an UnlearningMethod (e.g. GradientAscent()), got {type(method).__name__}.")
        if not isinstance(gradient_checkpointing, (bool, Mapping)):
            raise TypeError(
                "`gradient_checkpointing` should be a bool or a dict of torch.utils.checkpoint arguments, "
                f"got {type(gradient_checkpointing).__name__} {gradient_checkpointing!r}."
            )
        check_stop_arguments(stop_at_forget_acc, stop_at_forget_loss, check_every_n_steps)
        if isinstance(monitor_max_samples, bool) or not isinstance(monitor_max_samples, int) or monitor_max_samples < 1:
            raise ValueError(f"`monitor_max_samples` should be a positive int, got {monitor_max_samples!r}.")
        self.model = model
        self.method = method
        self.task = task if task is not None else ClassificationTask()
        self.engine = UnlearningEngine(method, self.task)
        self.stop_at_forget_acc = stop_at_forget_acc
        self.stop_at_forget_loss = stop_at_forget_loss
        self.check_every_n_steps = check_every_n_steps
        self.monitor_enabled = monitor
        self.monitor_max_samples = monitor_max_samples
        self.monitor: ForgetMonitor | None = None
        #: Forget/retain loss and accuracy before and after unlearning (``before/forget_acc``, ...), after a fit.
        self.unlearning_summary: dict[str, float] = {}
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.original = original
        self.oracle_path = oracle
        if original is not None:
            load_weights(self.model, original, argument="original")
        self._oracle: list[nn.Module] = []  # a list keeps it out of state_dict and the optimizer
        if oracle is not None:
            oracle_model = copy.deepcopy(model)
            load_weights(oracle_model, oracle, argument="oracle")
            self._oracle.append(oracle_model.eval().requires_grad_(False))
        if peft is not None:  # after `original` (plain weights) and the oracle copy (no adapter)
            self.model = apply_peft(self.model, peft)
        if gradient_checkpointing is not False:
            enable_gradient_checkpointing(self.model, None if gradient_checkpointing is True else gradient_checkpointing)
        self.evaluator = UnlearningEvaluator(self.task, mia_attack=mia_attack)
        self.oracle_evaluator = UnlearningEvaluator(self.task, mia_attack=mia_attack) if oracle else None
        self._oracle_js: dict[str, JSDivergence] = {}  # per split, against the oracle's outputs (classifiers)
        self._prepared = False
        self._pending_method_state: dict[str, Any] | None = None
        self._pending_rng = PendingRNG()
        self._padding = PaddingTrim()  # under DDP: the eval samplers' padding repeats are not scored

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        if stage != "fit" or self._prepared:
            return
        check_strategy(self.trainer.strategy, where="UnlearningModule")
        datamodule = getattr(self.trainer, "datamodule", None)
        forget_loader = datamodule.forget_dataloader(shuffle=False) if hasattr(datamodule, "forget_dataloader") else None
        retain_loader = datamodule.retain_dataloader(shuffle=False) if hasattr(datamodule, "retain_dataloader") else None
        holdout_loader = _holdout_loader(datamodule)
        self.method.setup(self.model, self.task, forget_loader, retain_loader, holdout_loader=holdout_loader)
        wants_monitor = self.monitor_enabled or self.stop_at_forget_acc is not None or self.stop_at_forget_loss is not None
        if wants_monitor and forget_loader is not None:
            self.monitor = ForgetMonitor(
                self.task,
                forget_loader,
                retain_loader,
                stop_at_forget_acc=self.stop_at_forget_acc,
                stop_at_forget_loss=self.stop_at_forget_loss,
                check_every_n_steps=self.check_every_n_steps,
                max_samples=self.monitor_max_samples,
                name=f"UnlearningModule({self.method.name})",
            )
        elif self.stop_at_forget_acc is not None or self.stop_at_forget_loss is not None:
            raise ValueError(
                "`stop_at_forget_acc`/`stop_at_forget_loss` need the forget set: train with a datamodule that has "
                f"`forget_dataloader` (e.g. ForgetRetainDataModule), got {type(datamodule).__name__}."
            )
        own = self.method.modules()
        if own:
            # Registered as a submodule so that DDP synchronises their gradients and Lightning moves them and
            # applies the precision plugin, like the model's own layers (the weights are also saved twice in a
            # checkpoint: here and in the method's state, which restores them when `setup` runs before loading).
            self.method_modules = nn.ModuleDict(own)
        self._prepared = True
        if self._pending_method_state is not None:
            self.method.load_state_dict(self._pending_method_state)
            self._pending_method_state = None

    def on_fit_start(self) -> None:
        self.method.to(self.device)
        follow_precision(self.trainer, self.method, self.monitor)  # the reference etc. in the module's precision
        datamodule = getattr(self.trainer, "datamodule", None)
        request = getattr(datamodule, "request", None)
        hparams = {f"method/{k}": v for k, v in self.method.hparams().items()}
        hparams.update({"original": self.original, "oracle": self.oracle_path})
        if request is not None:
            hparams.update({"request/kind": request.kind, "request/size": len(request), "request/fingerprint": request.fingerprint})
        for logger in self.loggers:
            logger.log_hyperparams(hparams)

    def on_train_start(self) -> None:
        if self.monitor is not None and self.monitor_enabled:
            self.monitor.start(self.model, self.device)

    def on_train_epoch_start(self) -> None:
        self.method.train()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._pending_rng.apply()  # a resumed run continues the interrupted run's random numbers from here

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        monitor = self.monitor
        if monitor is not None and monitor.has_criterion and monitor.should_stop(self.model, self.global_step, self.device):
            self.trainer.should_stop = True

    def on_train_epoch_end(self) -> None:
        # The run's last epoch: the method's last edit (e.g. SCRUB+R's rewind), before ModelCheckpoint saves the
        # epoch (monitoring callbacks run after this hook) and before SaveWeights and the report see the model.
        trainer = self.trainer
        last_epoch = trainer.max_epochs is not None and trainer.max_epochs > 0 and self.current_epoch + 1 >= trainer.max_epochs
        last_step = trainer.max_steps is not None and trainer.max_steps > 0 and self.global_step >= trainer.max_steps
        if last_epoch or last_step or trainer.should_stop:
            self.method.on_run_end(self.model, self.task)

    def on_train_end(self) -> None:
        if self.monitor is None or not self.monitor_enabled:
            return
        self.unlearning_summary = self.monitor.finish(self.model, self.global_step, self.device)
        if self.trainer.is_global_zero:
            for logger in self.loggers:
                logger.log_metrics({f"unlearn/{k}": v for k, v in self.unlearning_summary.items()}, step=self.global_step)

    def teardown(self, stage: str) -> None:
        if stage == "fit":
            self.method.restore_dropout()  # methods with a reference set it to 0 for the fit

    def on_exception(self, exception: BaseException) -> None:
        self.method.restore_dropout()  # Lightning skips `teardown` when fit raises

    def configure_optimizers(self) -> Any:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("The model has no trainable parameters (every parameter has requires_grad=False).")
        own = self.method.parameters()
        optimizer = self.optimizer_factory(params + own if own else params)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if not isinstance(batch, dict) or not ({"forget", "retain"} & batch.keys()):
            raise TypeError(
                "UnlearningModule expects paired batches {'forget': ..., 'retain': ...}; use "
                "ForgetRetainDataModule(train_on='forget_retain') or a CombinedLoader of two loaders."
            )
        forget, retain = batch.get("forget"), batch.get("retain")
        max_epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else None
        try:
            out = self.engine.loss(self.model, forget, retain, Progress(self.current_epoch, max_epochs, self.global_step))
        except NonFiniteLossError as err:
            source = (
                f"the `original` file {self.original!r} is unchanged (only read)"
                if self.original
                else "no weights file was written"
            )
            raise NonFiniteLossError(
                f"{err} The fit stopped at global step {self.global_step}; {source}. Resume from a checkpoint written "
                "before the divergence or restart with a lower learning rate."
            ) from None
        if logging_step(self.trainer, batch_idx):  # the loggers only write every `log_every_n_steps`; logging costs time
            batch_size = self.engine.batch_size(forget, retain)
            self.log_dict({f"train/{k}": v for k, v in out.parts.items()}, prog_bar=False, batch_size=batch_size)
            self.log("loss", out.parts["loss"], prog_bar=True, logger=False, batch_size=batch_size)
        return out.loss

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """As ``nn.Module.load_state_dict``; the method's module weights (``method_modules.*``) are skipped while
        the method is not set up (e.g. ``test`` from a checkpoint, or a fresh module): the checkpoint's method
        state restores them when fit sets the method up."""
        if "method_modules" not in self._modules:
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith("method_modules.")}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = self.method.state_dict()
        if state:
            checkpoint["unlearning_method"] = state
        checkpoint["unlearning_rng"] = collect_rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng.load(checkpoint.get("unlearning_rng"))
        state = checkpoint.get("unlearning_method")
        if state is None:
            return
        if self._prepared:  # Trainer.fit(ckpt_path=...): `setup` already built the method's modules
            self.method.load_state_dict(state)
        else:
            self._pending_method_state = state

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.engine.before_optimizer_step(self.model)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self.engine.after_optimizer_step(self.model)

    # ------------------------------------------------------------------ evaluation
    def _split_names(self) -> list[str]:
        datamodule = getattr(self.trainer, "datamodule", None)
        return list(getattr(datamodule, "eval_splits", EVAL_SPLITS))

    def _eval_start(self) -> None:
        names = self._split_names()
        for evaluator in (self.evaluator, self.oracle_evaluator):
            if evaluator is not None:
                evaluator.reset()
                evaluator.expect(names)
        self._padding.reset()
        for oracle in self._oracle:
            convert_module(self.trainer, oracle.to(self.device))
        classifier = getattr(self.task, "kind", None) == "classification"
        self._oracle_js = {n: JSDivergence().to(self.device) for n in names} if self._oracle and classifier else {}

    def _eval_step(self, batch: Any, dataloader_idx: int) -> None:
        names = self._split_names()
        if dataloader_idx >= len(names):
            raise ValueError(f"Got evaluation loader #{dataloader_idx} but only the splits {names} are named.")
        split = names[dataloader_idx]
        keep = self._padding.keep(dataloader_idx, current_eval_loader(self.trainer, dataloader_idx), self.task.batch_size(batch))
        outputs = self.task.forward(self.model, batch)
        self.evaluator.update(split, outputs, batch, keep)
        if self._oracle and self.oracle_evaluator is not None:
            oracle_outputs = self.task.forward(self._oracle[0], batch)
            self.oracle_evaluator.update(split, oracle_outputs, batch, keep)
            if split in self._oracle_js:  # the first `keep` samples only (DDP padding repeats are not scored)
                self._oracle_js[split].update(self.task.probabilities(outputs[:keep]), self.task.probabilities(oracle_outputs[:keep]))

    def _eval_end(self, prefix: str) -> dict[str, float]:
        metrics = self.evaluator.compute()
        oracle = self.oracle_evaluator.compute() if self.oracle_evaluator is not None else None
        metrics = with_gap(metrics, oracle)
        logged = {f"{prefix}/{k}": v for k, v in metrics.items()}
        if oracle:
            logged.update({f"{prefix}/oracle/{k}": v for k, v in oracle.items()})
        for split, js in self._oracle_js.items():  # JS divergence to the oracle's outputs, mean over the split
            logged[f"{prefix}/js_to_oracle/{split}"] = float(js.compute())
        # Values are already reduced over ranks by torchmetrics (every sample once: no padding repeats, see
        # `evaluation.padding`); sync_dist averages identical numbers.
        self.log_dict(logged, sync_dist=True)
        return metrics

    def on_validation_epoch_start(self) -> None:
        self._eval_start()

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_start(self) -> None:
        self._eval_start()

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")


def _holdout_loader(datamodule: Any) -> Any:
    """Data the model never trained on, for methods that compare the forget set with unseen data (SCRUB+R): the
    datamodule's ``holdout`` split, else its ``test`` split; ``None`` when it has neither."""
    loaders = getattr(datamodule, "eval_dataloaders", None)
    if loaders is None:
        return None
    named = loaders()
    return named.get("holdout") if named.get("holdout") is not None else named.get("test")
