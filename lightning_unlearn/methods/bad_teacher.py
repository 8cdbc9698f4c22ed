"""Bad Teacher: distil an incompetent (random) teacher on D_f and the competent original on D_r."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_positive
from lightning_unlearn._weights import frozen_copy
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.methods.retrain import reinitialize_model
from lightning_unlearn.tasks.base import Task


def random_teacher(model: nn.Module, seed: int) -> nn.Module:
    """A frozen copy of ``model`` with every parameter re-initialised (seeded by ``seed``; the global RNG is left as it
    was): the incompetent teacher of Bad Teacher, and the random model ZRF compares against."""
    teacher = frozen_copy(model)
    devices = {p.device for p in teacher.parameters()}
    with torch.random.fork_rng(devices=[d for d in devices if d.type == "cuda"]):
        torch.manual_seed(seed)
        try:
            reinitialize_model(teacher)
        except ValueError as err:
            raise ValueError(f"The random (incompetent) model cannot be built: {err}") from None
    return teacher.eval().requires_grad_(False)


@register_method(name="bad_teacher")
class BadTeacher(UnlearningMethod):
    """Bad Teacher: knowledge distillation from a competent and an incompetent teacher.

    Chundawat, Tarun, Mandal, Kankanhalli, "Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks using an
    Incompetent Teacher", AAAI 2023, arXiv 2205.08096. The student θ starts from the original; the competent teacher
    is the frozen original θ₀ (the reference), the incompetent teacher T_d a randomly initialised copy of the model
    (:func:`random_teacher`, seeded by ``seed``). With softmax temperature ``T``:

    ``L = γ·E_{x∈D_f} KL(p_{T_d}(x) ‖ p_θ(x)) + α·E_{x∈D_r} KL(p_{θ₀}(x) ‖ p_θ(x))``

    (γ = ``forget_weight``, α = ``retain_weight``). The authors draw one stream of samples from D_f and a random 30%
    of D_r and pick each sample's teacher by its origin; here each step takes a forget and a retain batch, which is
    the same objective with the two parts weighted explicitly. KL is summed over classes and averaged over samples
    (the authors' ``kl_div(reduction="mean")`` also averages over classes, a constant factor ``1/C``). Defaults follow
    their code: ``T = 1``, Adam at lr 1e-4, one epoch.

    Args:
        temperature: ``T``, the distillation temperature (1).
        forget_weight: γ, weight of the KL to the incompetent teacher on D_f.
        retain_weight: α, weight of the KL to the competent teacher on D_r.
        retain_loss: ``"kl"`` (the paper's: KL to the original on D_r) or ``"none"``.
        mask: Optional parameter mask.
        seed: Seed of the incompetent teacher's initialisation.
    """

    supported_tasks = ("classification",)
    needs_reference = True
    retain_losses = {"kl": "KL(p_θ₀ ‖ p_θ) on D_r at the distillation temperature (the competent teacher)", "none": "no retain term"}

    def __init__(
        self,
        temperature: float = 1.0,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "kl",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("temperature", temperature)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.temperature = float(temperature)
        # rebuilt from `seed` by `prepare`, so kept out of checkpoints
        self.register_module("incompetent_teacher", None, trainable=False, persistent=False)

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        self.incompetent_teacher = random_teacher(model, self.seed)

    def forget_loss(self, ctx: StepContext) -> Tensor:
        if self.incompetent_teacher is None:
            raise RuntimeError("BadTeacher has no incompetent teacher; call `setup` first.")
        batch = ctx.batch("forget")
        with torch.no_grad():
            teacher = ctx.task.forward(self.incompetent_teacher, batch)
        return ctx.task.kl_divergence(ctx.outputs("forget"), teacher, batch, self.temperature).mean()

    def retain_loss(self, ctx: StepContext) -> Tensor | None:
        if not self.uses_retain or ctx.retain is None:
            return None
        return ctx.task.kl_divergence(ctx.outputs("retain"), ctx.reference_outputs("retain"), ctx.retain, self.temperature).mean()
