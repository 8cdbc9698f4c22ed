"""UNSIR: error-maximising noise for the forget classes, then impair (noise + retain) and repair (retain only)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from lightning_unlearn._errors import check_int, check_positive
from lightning_unlearn.methods.base import _RETAIN_LOSSES, RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.tasks.base import Task, evaluating


def learn_error_maximizing_noise(
    model: nn.Module,
    task: Task,
    classes: Tensor,
    shape: tuple[int, ...],
    *,
    steps: int,
    lr: float,
    l2_weight: float,
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """UNSIR's noise: for each class ``c`` in ``classes``, a batch ``N_c`` of inputs of ``shape`` (``[B, ...]``)
    that maximises the loss of ``c``, learnt with Adam from ``N(0, I)``:

    ``min_N  −CE(f(N_c), c) + λ·mean_i ‖N_{c,i}‖²``   (λ = ``l2_weight``)

    The model is only read (eval mode, no parameter gradients). Returns ``[len(classes), B, ...]``.
    """
    noise = torch.randn((len(classes), *shape), generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)
    noise.requires_grad_(True)
    optimizer = torch.optim.Adam([noise], lr=lr)
    labels = classes.to(device).repeat_interleave(shape[0])
    with evaluating(model):
        with torch.enable_grad():
            for _ in range(steps):
                flat = noise.flatten(0, 1)
                logits = task.forward(model, (flat, labels))
                loss = -F.cross_entropy(logits.float(), labels) + l2_weight * flat.float().pow(2).flatten(1).sum(1).mean()
                (grad,) = torch.autograd.grad(loss, [noise])
                noise.grad = grad
                optimizer.step()
    return noise.detach()


@register_method(name="unsir")
class UNSIR(UnlearningMethod):
    """UNSIR: unlearning by error-maximising noise, impair then repair.

    Tarun, Chundawat, Mandal, Kankanhalli, "Fast Yet Effective Machine Unlearning", IEEE TNNLS 2023, arXiv
    2111.08947. Class-wise unlearning:

    1. **Noise**, at the first step (on the weights the model has then): for each forget class ``c`` a batch of
       ``noise_batch_size`` inputs ``N_c`` maximising the loss of ``c`` (:func:`learn_error_maximizing_noise`;
       ``noise_steps`` Adam steps at ``noise_lr``, L2 weight ``noise_l2`` = the authors' 0.1), seeded by ``seed``.
    2. **Impair**, during the first ``impair_epochs`` epochs: ``L = γ·CE(f(N), c) + α·L_retain``, i.e. train on the
       noise *labelled with its class* together with retain data, which wrecks the weights that carry the class.
    3. **Repair**, in the epochs after: ``L = α·L_retain`` only (the forget term is off).

    The authors run one impair epoch and one repair epoch at lr 1e-4 (Adam) on a retain subset. The noise is
    method state, saved in checkpoints, so a resumed run keeps it.

    **Random-sample forgetting.** UNSIR only knows classes: the forget classes are the labels present in D_f, so a
    random subset (which holds samples of every class) makes it impair *every* class, and the repair step restores
    them from D_r; nothing singles out the forget samples themselves. A warning is raised when D_f holds more than half
    of the classes seen in it and D_r holds those classes too.

    Args:
        noise_batch_size: Noise inputs per forget class (the authors' 32).
        noise_steps: Adam steps that learn the noise.
        noise_lr: Learning rate of the noise (the authors' 0.1).
        noise_l2: λ, weight of the noise's squared norm (the authors' 0.1).
        impair_epochs: Epochs with the noise term (the impair step, 1); later epochs repair.
        forget_weight: γ, weight of the noise term.
        retain_weight: α, weight of the retain term.
        retain_loss: ``"nll"`` (the paper's) or ``"kl"``; the repair step needs one.
        mask: Optional parameter mask.
        seed: Seed of the noise's initialisation.
    """

    supported_tasks = ("classification",)
    retain_losses = {k: v for k, v in _RETAIN_LOSSES.items() if k != "none"}  # the repair step trains on D_r

    def __init__(
        self,
        noise_batch_size: int = 32,
        noise_steps: int = 20,
        noise_lr: float = 0.1,
        noise_l2: float = 0.1,
        impair_epochs: int = 1,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_int("noise_batch_size", noise_batch_size, minimum=1)
        check_int("noise_steps", noise_steps, minimum=0)
        check_positive("noise_lr", noise_lr)
        check_positive("noise_l2", noise_l2, allow_zero=True)
        check_int("impair_epochs", impair_epochs, minimum=0)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.noise_batch_size = int(noise_batch_size)
        self.noise_steps = int(noise_steps)
        self.noise_lr = float(noise_lr)
        self.noise_l2 = float(noise_l2)
        self.impair_epochs = int(impair_epochs)
        self.add_state("forget_classes", None)  # [K] long: the labels present in D_f
        self.add_state("noise", None)  # [K, noise_batch_size, ...]: learnt at the first step

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        if forget_loader is None:
            raise ValueError("UNSIR learns noise for the classes of the forget set; pass the forget loader to `setup`.")
        labels = torch.cat([task.targets(batch).reshape(-1).cpu() for batch in forget_loader])
        if labels.numel() == 0:
            raise ValueError("UNSIR found no forget samples in the forget loader.")
        self.forget_classes = torch.unique(labels)
        if len(self.forget_classes) > 1 and retain_loader is not None:
            first = next(iter(retain_loader), None)
            shared = first is not None and bool(torch.isin(task.targets(first).cpu(), self.forget_classes).any())
            if shared:
                rank_zero_warn(
                    f"UNSIR unlearns classes: the forget set holds {len(self.forget_classes)} classes that the retain set "
                    "also holds (a random-sample request?), so it impairs all of them and repairs them from D_r; it does "
                    "not single out the forget samples."
                )

    def forget_loss(self, ctx: StepContext) -> Tensor | None:
        if ctx.epoch >= self.impair_epochs:
            return None
        if self.forget_classes is None:
            raise RuntimeError("UNSIR has no forget classes; call `setup` with the forget loader first.")
        inputs = ctx.task.inputs(ctx.batch("forget"))
        if self.noise is None:
            generator = torch.Generator().manual_seed(self.seed)
            self.noise = learn_error_maximizing_noise(
                ctx.model,
                ctx.task,
                self.forget_classes,
                (self.noise_batch_size, *inputs.shape[1:]),
                steps=self.noise_steps,
                lr=self.noise_lr,
                l2_weight=self.noise_l2,
                generator=generator,
                device=inputs.device,
                dtype=inputs.dtype if inputs.is_floating_point() else torch.float32,
            )
        classes = self.forget_classes.to(inputs.device)
        labels = classes.repeat_interleave(self.noise_batch_size)
        batch = (self.noise.to(inputs.device).flatten(0, 1), labels)
        return ctx.task.per_sample_loss(ctx.task.forward(ctx.model, batch), batch).mean()
