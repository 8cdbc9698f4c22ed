"""SCRUB+R: SCRUB with its rewind to the checkpoint whose forget error looks like unseen data's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.methods.one_shot import all_ranks_sum
from lightning_unlearn.methods.scrub import ScrubSchedule, check_scrub_arguments, scrub_forget_loss, scrub_retain_loss
from lightning_unlearn.tasks.base import Task, evaluating


@torch.no_grad()
def per_class_errors(model: nn.Module, task: Task, loader: Iterable[Any], num_classes: int) -> tuple[Tensor, Tensor]:
    """``(errors, counts)`` per class over ``loader`` (eval mode, summed over DDP ranks), each of shape ``[num_classes]``."""
    device = next(model.parameters()).device
    errors = torch.zeros(num_classes, device=device)
    counts = torch.zeros(num_classes, device=device)
    with evaluating(model):
        for batch in loader:
            batch = move_data_to_device(batch, device)
            outputs = task.forward(model, batch)
            wrong = (~task.correct(outputs, batch)).float()
            targets = task.targets(batch)
            errors.index_add_(0, targets, wrong)
            counts.index_add_(0, targets, torch.ones_like(wrong))
    all_ranks_sum([errors, counts])
    return errors, counts


def rewind_target(forget_counts: Tensor, holdout_errors: Tensor, holdout_counts: Tensor) -> float:
    """The error unseen data of the forget set's distribution has: the held-out per-class error rates weighted by the
    forget set's class frequencies (classes without held-out samples left out, the weights renormalised)."""
    present = (holdout_counts > 0) & (forget_counts > 0)
    if not bool(present.any()):
        raise ValueError("SCRUB+R's held-out data has no sample of the forget set's classes; it cannot set the rewind target.")
    weights = forget_counts[present] / forget_counts[present].sum()
    return float((weights * holdout_errors[present] / holdout_counts[present]).sum())


@register_method(name="scrub_r")
class SCRUBR(UnlearningMethod):
    """SCRUB+R: SCRUB (the paper's alternating max/min schedule) followed by its rewind.

    Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023,
    arXiv 2302.09880 ("SCRUB+R"); one of the eleven methods of the hybrid quantum–classical study (Crivoi et al.,
    arXiv 2512.19253). The steps are SCRUB's (:func:`~lightning_unlearn.methods.scrub.scrub_forget_loss` and
    :func:`~lightning_unlearn.methods.scrub.scrub_retain_loss`; see :class:`~lightning_unlearn.methods.SCRUB`).
    The model is kept at the end of every epoch; when the run ends (:meth:`on_run_end`) the forget error of every
    kept model and of the final one is compared with the *rewind target*, the error of held-out data of the forget
    set's distribution, and the model whose forget error is closest to it is restored (ties: the latest). SCRUB
    alone may push the forget error above that of data never seen, which a membership attack notices; the rewind
    undoes that overshoot.

    Without held-out data (``holdout_loader=None``) it warns and runs as SCRUB (no rewind).

    Our choices (documented in docs/methods.md): the held-out data is the datamodule's ``holdout`` split, else its
    ``test`` split (:attr:`~lightning_unlearn.methods.UnlearningMethod.holdout_loader`; B1 has no holdout split, so
    there the target uses the test split: one scalar per kept model); "of the forget set's distribution" is realised
    by weighting the held-out per-class errors with the forget set's class frequencies (:func:`rewind_target`), so a
    class-wise request compares with held-out samples of the forgotten class and a random one with all classes; the
    target is measured on the same candidate model as its forget error (the model at that checkpoint), not once on
    the original.

    Args:
        temperature: ``T_kd``, distillation temperature (4).
        gamma: γ, weight of retain cross-entropy (0.99).
        alpha: α, weight of retain KL to the teacher (0.001).
        max_epochs: Number of epochs with max-steps (``msteps``, 2).
        schedule: ``"alternating"`` (the paper's) or ``"combined"`` (see SCRUB).
        forget_weight: Weight of the forget KL (max-step) term.
        retain_weight: Weight of the whole min-step term.
        retain_loss: ``"nll"`` (SCRUB's min-steps) or ``"none"`` (max-steps only).
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    needs_reference = True
    supported_tasks = ("classification",)
    retain_losses = {"nll": "SCRUB's min-steps: γ·CE(θ; D_r) + α·T²·KL(p_T ‖ p_S) on D_r", "none": "max-steps only"}

    def __init__(
        self,
        temperature: float = 4.0,
        gamma: float = 0.99,
        alpha: float = 0.001,
        max_epochs: int = 2,
        schedule: ScrubSchedule = "alternating",
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_scrub_arguments(temperature, gamma, alpha, max_epochs, schedule)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.temperature = float(temperature)
        self.gamma = float(gamma)
        self.alpha = float(alpha)
        self.max_epochs = int(max_epochs)
        self.schedule = schedule
        self.add_state("checkpoints", [])  # [(epoch, {name: tensor on the CPU})]: the model at the end of each epoch
        self.add_state("rewind_stats", {})
        self._forget_loader: Iterable | None = None

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        if forget_loader is None:
            raise ValueError("SCRUB+R's rewind measures the forget error; pass the forget loader to `setup`.")
        if self.holdout_loader is None:
            rank_zero_warn(
                "SCRUB+R got no held-out data (`setup(..., holdout_loader=...)`: a datamodule with a holdout or test "
                "split gives it), so it cannot set its rewind target: the rewind is skipped and it runs as SCRUB."
            )
        self._forget_loader = forget_loader

    def _keep_epoch_end(self, ctx: StepContext) -> None:
        """At the first step of a new epoch the model is as the previous epoch left it: keep it."""
        last = self.checkpoints[-1][0] if self.checkpoints else 0
        if ctx.epoch > last:
            state = {k: v.detach().to("cpu", copy=True) for k, v in ctx.model.state_dict().items()}
            self.checkpoints = [*self.checkpoints, (int(ctx.epoch), state)]

    def forget_loss(self, ctx: StepContext) -> Tensor | None:
        self._keep_epoch_end(ctx)
        return scrub_forget_loss(ctx, self.max_epochs, self.temperature)

    def retain_loss(self, ctx: StepContext) -> Tensor | None:
        self._keep_epoch_end(ctx)
        if not self.uses_retain:
            return None
        return scrub_retain_loss(ctx, self.schedule, self.max_epochs, self.temperature, self.gamma, self.alpha)

    @torch.no_grad()
    def on_run_end(self, model: nn.Module, task: Task) -> None:
        """Rewind: restore the kept model (or keep the final one) whose forget error is closest to the rewind target."""
        if self._forget_loader is None:
            raise RuntimeError("SCRUB+R's rewind needs `setup` with the forget data first.")
        if self.holdout_loader is None:  # warned in `prepare`
            self.rewind_stats = {"chosen": "final", "skipped": "no held-out data"}
            return
        final = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        candidates = [*self.checkpoints, ("final", final)]
        with evaluating(model) as device:
            num_classes = int(task.forward(model, move_data_to_device(next(iter(self._forget_loader)), device)).shape[-1])
        scores = []
        for tag, state in candidates:
            model.load_state_dict(state)
            f_err, f_cnt = per_class_errors(model, task, self._forget_loader, num_classes)
            h_err, h_cnt = per_class_errors(model, task, self.holdout_loader, num_classes)
            forget_error = float(f_err.sum() / f_cnt.sum().clamp_min(1))
            target = rewind_target(f_cnt, h_err, h_cnt)
            scores.append((abs(forget_error - target), tag, forget_error, target))
        best = min(range(len(scores)), key=lambda i: (scores[i][0], -i))
        model.load_state_dict(candidates[best][1])
        self.rewind_stats = {
            "chosen": scores[best][1],
            "candidates": [{"epoch": s[1], "forget_error": s[2], "target": s[3]} for s in scores],
        }
