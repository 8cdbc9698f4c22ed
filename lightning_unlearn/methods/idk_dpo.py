"""IdK-DPO: direct preference optimisation with a refusal as the preferred answer and the true answer as the rejected one."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_unlearn._errors import check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.idk import alternative_batch, check_alternative
from lightning_unlearn.methods.masks import ParameterMask


def dpo_loss(win_log_ratio: Tensor, lose_log_ratio: Tensor, beta: float) -> Tensor:
    """``-(2/β)·mean logσ(β·(r_w − r_l))`` with ``r = log π_θ − log π_θ₀``, as ``(2/β)·softplus(−β·(r_w − r_l))``.

    The ``2/β`` scale is open-unlearning's convention (vanilla DPO has none); it makes the gradient
    at ``r_w = r_l`` independent of β.
    """
    return (2.0 / beta) * F.softplus(-beta * (win_log_ratio - lose_log_ratio)).mean()


@register_method(name="idk_dpo")
class IdKDPO(UnlearningMethod):
    """IdK-DPO: prefer a refusal over the true forget answer, relative to the frozen original model.

    DPO (Rafailov, Sharma, Mitchell, Ermon, Manning, Finn, "Direct Preference Optimization: Your
    Language Model is Secretly a Reward Model", NeurIPS 2023, arXiv 2305.18290) as the unlearning
    baseline of TOFU (arXiv 2401.06121) and NPO (arXiv 2404.05868), in open-unlearning's form:
    the preferred answer y_w is a refusal ("I don't know"), the rejected y_l the true forget answer,

    ``L_f = -(2/β)·E_{D_f} logσ(β·[(log π_θ − log π_θ₀)(y_w|x) − (log π_θ − log π_θ₀)(y_l|x)])``

    with *sequence-sum* answer log-probabilities (the task's ``log_likelihood``) and θ₀ the model
    as unlearning found it; ``L = γ·L_f + α·L_r``. The refusals come from the forget batch's
    ``{alternative}_*`` keys: build the loaders with
    ``QACollator(tokenizer, alternatives={"idk": IdkAnswers(seed)})`` (see
    :class:`~lightning_unlearn.methods.IdkAnswers`).

    Args:
        beta: β, the inverse temperature (default 0.1).
        alternative: Name of the refusal answers in the batch (keys ``{alternative}_input_ids``, ...).
        forget_weight: γ, weight of the DPO term.
        retain_weight: α, weight of the retain term.
        retain_loss: ``"nll"`` (CE on D_r), ``"kl"`` or ``"none"``.
        mask: Optional parameter mask.
        seed: Unused here (the refusals are drawn by :class:`~lightning_unlearn.methods.IdkAnswers` in the data);
            accepted like every method's.
    """

    needs_reference = True
    supported_tasks = ("causal_lm", "vision_language")

    def __init__(
        self,
        beta: float = 0.1,
        alternative: str = "idk",
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("beta", beta)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.beta = float(beta)
        self.alternative = check_alternative(alternative)

    def forget_loss(self, ctx: StepContext) -> Tensor:
        task, forget = ctx.task, ctx.batch("forget")
        win = alternative_batch(forget, self.alternative, task)
        reference = ctx.require_reference()
        with torch.no_grad():
            win_reference = task.log_likelihood(task.forward(reference, win), win)
        win_ratio = task.log_likelihood(task.forward(ctx.model, win), win) - win_reference
        lose_ratio = task.log_likelihood(ctx.outputs("forget"), forget) - task.log_likelihood(
            ctx.reference_outputs("forget"), forget
        )
        return dpo_loss(win_ratio, lose_ratio, self.beta)
