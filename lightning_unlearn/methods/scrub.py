"""SCRUB: a student that moves away from the original on D_f and stays with it on D_r."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from lightning_unlearn._errors import check_choice, check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask

ScrubSchedule = Literal["alternating", "combined"]
SCRUB_SCHEDULES = {
    "alternating": "the paper's: a step with a forget batch in the first `max_epochs` epochs is a max-step (forget KL "
    "only), every other step a min-step (retain only); with mode='max_size' each epoch is a max pass over D_f then "
    "min-steps on the rest of D_r",
    "combined": "one combined step per paired batch: -forget_weight·KL_f + min-step terms (max term only in the first "
    "`max_epochs` epochs)",
}


def check_scrub_arguments(temperature: float, gamma: float, alpha: float, max_epochs: int, schedule: str) -> None:
    """Validate SCRUB's own arguments (shared by SCRUB and SCRUB+R), with an error naming the argument."""
    check_positive("temperature", temperature)
    check_positive("gamma", gamma, allow_zero=True)
    check_positive("alpha", alpha, allow_zero=True)
    check_choice("schedule", schedule, SCRUB_SCHEDULES)
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 0:
        raise ValueError(f"`max_epochs` should be >= 0, got {max_epochs!r}.")


def scrub_kl(ctx: StepContext, split: str, temperature: float) -> Tensor:
    """``T²·KL(p_T ‖ p_S)`` at temperature ``T`` on ``split``, batch mean (the SCRUB authors' ``DistillKL``)."""
    kl = ctx.task.kl_divergence(ctx.outputs(split), ctx.reference_outputs(split), ctx.batch(split), temperature)
    return kl.mean() * temperature**2


def scrub_is_max_step(ctx: StepContext, max_epochs: int) -> bool:
    """Whether this step carries SCRUB's max term: in the first ``max_epochs`` epochs, on a step with a forget batch."""
    return ctx.forget is not None and ctx.epoch < max_epochs


def scrub_forget_loss(ctx: StepContext, max_epochs: int, temperature: float) -> Tensor | None:
    """SCRUB's max-step term ``-T²·KL_f`` on a max step, else ``None``."""
    return -scrub_kl(ctx, "forget", temperature) if scrub_is_max_step(ctx, max_epochs) else None


def scrub_retain_loss(
    ctx: StepContext, schedule: str, max_epochs: int, temperature: float, gamma: float, alpha: float
) -> Tensor | None:
    """SCRUB's min-step term ``γ·CE_r + α·T²·KL_r``; ``None`` on the alternating schedule's max steps."""
    if ctx.retain is None or (schedule == "alternating" and scrub_is_max_step(ctx, max_epochs)):
        return None
    return gamma * ctx.loss("retain").mean() + alpha * scrub_kl(ctx, "retain", temperature)


@register_method(name="scrub")
class SCRUB(UnlearningMethod):
    """SCRUB: teacher–student unlearning.

    Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning",
    NeurIPS 2023, arXiv 2302.09880. Teacher = the frozen original θ₀, student = θ:

    * max-steps on D_f: maximise ``KL(p_T ‖ p_S)`` at distillation temperature ``T_kd``;
    * min-steps on D_r: minimise ``γ·CE(θ; D_r) + α·KL(p_T ‖ p_S)``.

    ``schedule="alternating"`` (default) is the paper's: during the first ``max_epochs`` epochs (``msteps``) a step
    that has a forget batch is a max-step (``-forget_weight·T²·KL_f`` only) and a step without one a min-step; after
    them every step is a min-step. With the datamodule's ``mode="max_size"`` (the shipped configs) an epoch runs over
    the retain set and the forget batches come first, so each of the first ``max_epochs`` epochs is one max pass over
    D_f followed by min-steps on the remaining retain batches (the retain batches paired with the forget batches are
    not used: a min pass covers ``|D_r| − |D_f|·B_r/B_f`` retain samples instead of all of D_r), and the later epochs
    are whole min passes over D_r. With ``mode="min_size"`` every step has a forget batch, so the first
    ``max_epochs`` epochs are max passes only.

    ``schedule="combined"`` is this library's earlier variant: each paired batch takes one step
    ``L = -forget_weight·T²·KL_f + γ·CE_r + α·T²·KL_r``, the max term only during the first ``max_epochs`` epochs.
    KL terms are multiplied by ``T_kd²`` as in the authors' ``DistillKL``. Defaults follow the SCRUB repository.

    Args:
        temperature: ``T_kd``, distillation temperature (4).
        gamma: γ, weight of retain cross-entropy (0.99).
        alpha: α, weight of retain KL to the teacher (0.001).
        max_epochs: Number of epochs with max-steps (``msteps``, 2).
        schedule: ``"alternating"`` (the paper's) or ``"combined"`` (one combined step per paired batch).
        forget_weight: Weight of the forget KL (max-step) term.
        retain_weight: Weight of the whole min-step term ``γ·CE_r + α·KL_r`` (1).
        retain_loss: ``"nll"`` (SCRUB's min-steps, default) or ``"none"`` (max-steps only).
        mask: Optional parameter mask.
        seed: Unused (nothing is drawn at random); accepted like every method's.
    """

    needs_reference = True
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

    def forget_loss(self, ctx: StepContext) -> Tensor | None:
        return scrub_forget_loss(ctx, self.max_epochs, self.temperature)

    def retain_loss(self, ctx: StepContext) -> Tensor | None:
        if not self.uses_retain:
            return None
        return scrub_retain_loss(ctx, self.schedule, self.max_epochs, self.temperature, self.gamma, self.alpha)
