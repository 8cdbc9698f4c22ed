"""Retrain: the oracle, trained from scratch on the retain set only."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from lightning_unlearn.methods.base import _RETAIN_LOSSES, RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.tasks.base import Task


@register_method(name="retrain")
class Retrain(UnlearningMethod):
    """Exact unlearning: re-initialise the model and train it on the retain set only.

    The gold standard every approximate method is measured against ("retrain from scratch",
    e.g. Bourtoule et al., "Machine Unlearning", IEEE S&P 2021, arXiv 1912.03817). Its cost is a
    full training run; benchmarks report every other method's time as a fraction of it.

    Args:
        reinitialize: Re-initialise every submodule with a ``reset_parameters`` method before
            training (seeded by ``seed``). ``False`` keeps the starting weights, which makes this
            plain fine-tuning on the retain set.
        forget_weight: Unused (retraining never uses the forget batch); accepted like every method's.
        retain_weight: Weight of the retain loss (the only term).
        retain_loss: ``"nll"`` only: the task's loss on the retain data (distilling the original would leak
            what it knows about the forget set).
        mask: Optional parameter mask: entries outside it keep their re-initialised values (they are not trained).
        seed: Seed of the re-initialisation.
    """

    uses_forget = False
    retain_losses = {"nll": _RETAIN_LOSSES["nll"]}

    def __init__(
        self,
        reinitialize: bool = True,
        forget_weight: float = 0.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.reinitialize = reinitialize

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        if not self.reinitialize:
            return
        devices = {p.device for p in model.parameters()}
        with torch.random.fork_rng(devices=[d for d in devices if d.type == "cuda"]):
            torch.manual_seed(self.seed)
            for module in model.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()

    def forget_loss(self, ctx: StepContext) -> Tensor | None:
        return None
