"""``UnlearningModule``: wrap any ``nn.Module`` and unlearn it with ``Trainer.fit``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lightning_unlearn._weights import load_weights
from lightning_unlearn.datamodules.forget_retain import EVAL_SPLITS
from lightning_unlearn.evaluation import UnlearningEvaluator, with_gap
from lightning_unlearn.methods.base import StepContext, UnlearningMethod
from lightning_unlearn.metrics import MIAAttack
from lightning_unlearn.peft import apply_peft, enable_gradient_checkpointing
from lightning_unlearn.tasks.base import Task
from lightning_unlearn.tasks.classification import ClassificationTask


class UnlearningModule(pl.LightningModule):
    """A LightningModule that unlearns ``model`` with ``method`` on paired forget/retain batches.

    Train it with a :class:`~lightning_unlearn.ForgetRetainDataModule` (``train_on="forget_retain"``).
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
        self.model = model
        self.method = method
        self.task = task if task is not None else ClassificationTask()
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
        self._prepared = False
        self._pending_method_state: dict[str, Any] | None = None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        if stage != "fit" or self._prepared:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        forget_loader = datamodule.forget_dataloader(shuffle=False) if hasattr(datamodule, "forget_dataloader") else None
        retain_loader = datamodule.retain_dataloader(shuffle=False) if hasattr(datamodule, "retain_dataloader") else None
        self.method.setup(self.model, self.task, forget_loader, retain_loader)
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
        datamodule = getattr(self.trainer, "datamodule", None)
        request = getattr(datamodule, "request", None)
        hparams = {f"method/{k}": v for k, v in self.method.hparams().items()}
        hparams.update({"original": self.original, "oracle": self.oracle_path})
        if request is not None:
            hparams.update({"request/kind": request.kind, "request/size": len(request), "request/fingerprint": request.fingerprint})
        for logger in self.loggers:
            logger.log_hyperparams(hparams)

    def on_train_epoch_start(self) -> None:
        self.method.train()

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
        ctx = StepContext(
            model=self.model,
            task=self.task,
            forget=batch.get("forget"),
            retain=batch.get("retain"),
            reference=self.method.reference,
            epoch=self.current_epoch,
            max_epochs=self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else None,
            global_step=self.global_step,
        )
        out = self.method.loss(ctx)
        batch_size = self.task.batch_size(ctx.forget if ctx.forget is not None else ctx.retain)
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

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("unlearning_method")
        if state is None:
            return
        if self._prepared:  # Trainer.fit(ckpt_path=...): `setup` already built the method's modules
            self.method.load_state_dict(state)
        else:
            self._pending_method_state = state

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.method.before_optimizer_step(self.model)

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
        for oracle in self._oracle:
            oracle.to(self.device)

    def _eval_step(self, batch: Any, dataloader_idx: int) -> None:
        names = self._split_names()
        if dataloader_idx >= len(names):
            raise ValueError(f"Got evaluation loader #{dataloader_idx} but only the splits {names} are named.")
        split = names[dataloader_idx]
        self.evaluator.update(split, self.task.forward(self.model, batch), batch)
        if self._oracle and self.oracle_evaluator is not None:
            self.oracle_evaluator.update(split, self.task.forward(self._oracle[0], batch), batch)

    def _eval_end(self, prefix: str) -> dict[str, float]:
        metrics = self.evaluator.compute()
        oracle = self.oracle_evaluator.compute() if self.oracle_evaluator is not None else None
        metrics = with_gap(metrics, oracle)
        logged = {f"{prefix}/{k}": v for k, v in metrics.items()}
        if oracle:
            logged.update({f"{prefix}/oracle/{k}": v for k, v in oracle.items()})
        # Values are already reduced over ranks by torchmetrics; sync_dist averages identical numbers.
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
