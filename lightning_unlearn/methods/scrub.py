"""SCRUB: a student that moves away from the original on D_f and stays with it on D_r."""

from __future__ import annotations

from torch import Tensor

from lightning_unlearn._errors import check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask


@register_method(name="scrub")
class SCRUB(UnlearningMethod):
    """SCRUB: teacher–student unlearning.

    Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning",
    NeurIPS 2023, arXiv 2302.09880. Teacher = the frozen original θ₀, student = θ:

    * max-steps on D_f: maximise ``KL(p_T ‖ p_S)`` at distillation temperature ``T_kd``;
    * min-steps on D_r: minimise ``γ·CE(θ; D_r) + α·KL(p_T ‖ p_S)``.

    The paper alternates whole passes; here each paired batch takes one combined step
    ``L = -forget_weight·KL_f + γ·CE_r + α·KL_r`` and the max term is active only during the first
    ``max_epochs`` epochs (the paper's ``msteps``), after which only min-steps remain. KL terms are
    multiplied by ``T_kd²`` as in the authors' ``DistillKL``. Defaults follow the SCRUB repository.

    Args:
        temperature: ``T_kd``, distillation temperature (4).
        gamma: γ, weight of retain cross-entropy (0.99).
        alpha: α, weight of retain KL to the teacher (0.001).
        forget_weight: Weight of the forget KL (max-step) term.
        max_epochs: Number of epochs with max-steps (``msteps``, 2).
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
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("temperature", temperature)
        check_positive("gamma", gamma, allow_zero=True)
        check_positive("alpha", alpha, allow_zero=True)
        if max_epochs < 0:
            raise ValueError(f"`max_epochs` should be >= 0, got {max_epochs!r}.")
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.temperature = float(temperature)
        self.gamma = float(gamma)
        self.alpha = float(alpha)
        self.max_epochs = int(max_epochs)

    def _kl(self, ctx: StepContext, split: str) -> Tensor:
        kl = ctx.task.kl_divergence(ctx.outputs(split), ctx.reference_outputs(split), ctx.batch(split), self.temperature)
        return kl.mean() * self.temperature**2

    def forget_loss(self, ctx: StepContext) -> Tensor | None:
        if ctx.epoch >= self.max_epochs:
            return None
        return -self._kl(ctx, "forget")

    def retain_loss(self, ctx: StepContext) -> Tensor | None:
        if not self.uses_retain or ctx.retain is None:
            return None
        return self.gamma * ctx.loss("retain").mean() + self.alpha * self._kl(ctx, "retain")
