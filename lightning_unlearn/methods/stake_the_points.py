"""Stake the Points: structure-faithful instance unlearning with fixed semantic anchors."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn

from lightning_unlearn._errors import check_fraction, check_int, check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.tasks.base import Task, capture_features


@register_method(name="stake_the_points")
class StakeThePoints(UnlearningMethod):
    """Stake the Points (Structguard): forget instances, keep the feature space's semantic structure.

    "Stake the Points: Structure-Faithful Instance Unlearning", CVPR 2026, arXiv 2603.12915.
    Retain-set-free by design; a retain set can be added (``retain_loss="nll"``).

    * **Anchors** ``A`` (``[C, D]``, fixed): one text embedding per class, the mean all-MiniLM-L6-v2
      embedding of hand-written attribute descriptions (:mod:`lightning_unlearn.anchors`; the paper uses
      GPT-4o descriptions and CLIP's text encoder, neither reachable offline).
    * **Proxy retain set**: adversarial variants of each forget batch, made with the frozen original
      θ₀ by ``proxy_steps`` of targeted L∞ PGD (radius ``proxy_eps``) toward θ₀'s runner-up class, and
      labelled with θ₀'s prediction on them; only proxies that crossed to another class are used.
    * **Structure**: ``S_ori = norm(p₀(V_ori)) Aᵀ`` and ``S_unl = norm(p_ω(V_unl)) Aᵀ`` on the proxies, where
      ``V`` are the features at ``layer`` of θ₀ and θ. The paper's CLIP image features live in the
      anchors' space already; for a plain classifier a linear projector is needed on both sides, so
      (RECONSTRUCTED) ``p₀`` is *calibrated* once in :meth:`prepare` — fitted on θ₀'s features of the
      forget samples and their proxies (and retain samples when a retain set is used) to classify by
      anchor similarity — and frozen; the learnable projector ``p_ω`` starts as a copy of it.
    * **Loss** ``L = L_del + L_ret + L_align + L_reg`` (unit weights in the paper; each has a weight here):

      - ``L_del = −CE(f_θ(x_f), y_f)`` (bypasses the projector). With ``stop_when_forgotten`` (default,
        RECONSTRUCTED, as in instance-wise unlearning where the goal is a misclassified forget set) only
        forget samples still classified correctly contribute, which keeps the ascent bounded;
      - ``L_ret = CE(S_unl / τ, ỹ)`` on the proxies (through the projector);
      - ``L_align = −(1/b) Σᵢ cos(S_ori_i, S_unl_i)``;
      - ``L_reg = ½ Σⱼ Iⱼ (ψⱼ − ψⱼ⁰)²`` with ``Iⱼ = |∂L_align/∂ψⱼ|``. The gradient is zero at θ₀ (the
        alignment is at its optimum), so (RECONSTRUCTED) ``I`` is an exponential moving average (momentum
        ``importance_momentum``) of ``|∂L_align/∂ψ|`` over the steps so far, detached.

    ``forget_loss`` returns ``L_del``; ``regularizer`` returns the structure terms, so the method also runs
    inside the :class:`~lightning_unlearn.Unlearn` callback next to a user's own training step.

    Args:
        anchors: A built-in description set (``"fashion_mnist"``, ``"digits"``), a ``.pt`` file with a
            ``[num_classes, dim]`` tensor, or such a tensor.
        layer: Submodule whose output is the feature ``V`` (``"penultimate"`` for SmallCNN/ViTClassifier;
            ``"model.penultimate"`` when the model is wrapped in a LightningModule attribute ``model``).
        forget_weight: Weight of ``L_del``.
        proxy_weight: Weight of ``L_ret``.
        align_weight: Weight of ``L_align``.
        reg_weight: Weight of ``L_reg``.
        temperature: τ of the anchor-similarity logits.
        proxy_eps: L∞ radius of the adversarial proxies, in input units (the datamodules standardise
            images, so 0.3 ≈ 0.1 of the pixel range on Fashion-MNIST).
        proxy_steps: PGD steps per proxy (step size ``2.5 · proxy_eps / proxy_steps``).
        stop_when_forgotten: Ascend only on forget samples that are still classified correctly.
        importance_momentum: Momentum of the importance average, in ``[0, 1)``.
        calibration_steps: Full-batch Adam steps fitting the frozen projector ``p₀``.
        calibration_batches: Forget (and retain) batches used for the calibration.
        retain_weight: Weight of the optional retain term.
        retain_loss: ``"none"`` (the paper's retain-free setting), ``"nll"`` or ``"kl"``.
        mask: Optional parameter mask.
        seed: Seed of the projector's initialisation.
    """

    needs_reference = True
    #: Class anchors and class labels: classifiers only.
    supported_tasks = ("classification",)

    def __init__(
        self,
        anchors: str = "fashion_mnist",
        layer: str = "penultimate",
        proxy_weight: float = 1.0,
        align_weight: float = 1.0,
        reg_weight: float = 1.0,
        temperature: float = 0.1,
        proxy_eps: float = 0.3,
        proxy_steps: int = 3,
        stop_when_forgotten: bool = True,
        importance_momentum: float = 0.9,
        calibration_steps: int = 200,
        calibration_batches: int = 4,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "none",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        for name, value in (("proxy_weight", proxy_weight), ("align_weight", align_weight), ("reg_weight", reg_weight)):
            check_positive(name, value, allow_zero=True)
        check_positive("temperature", temperature)
        check_positive("proxy_eps", proxy_eps, allow_zero=True)
        check_int("proxy_steps", proxy_steps, minimum=0)
        check_int("calibration_steps", calibration_steps)
        check_int("calibration_batches", calibration_batches)
        check_fraction("importance_momentum", importance_momentum, inclusive_low=True, inclusive_high=False)
        self.anchors = anchors if isinstance(anchors, str) else "<tensor>"
        self._anchor_spec = anchors
        self.layer = layer
        self.proxy_weight = float(proxy_weight)
        self.align_weight = float(align_weight)
        self.reg_weight = float(reg_weight)
        self.temperature = float(temperature)
        self.proxy_eps = float(proxy_eps)
        self.proxy_steps = int(proxy_steps)
        self.stop_when_forgotten = bool(stop_when_forgotten)
        self.importance_momentum = float(importance_momentum)
        self.calibration_steps = int(calibration_steps)
        self.calibration_batches = int(calibration_batches)
        # Built by `prepare`: the anchors A, the learnable projector p_ω (trained with the model), its frozen
        # calibrated start p₀, and the importance I of every trainable model parameter.
        self.add_state("_anchors", None, persistent=False)  # rebuilt from `anchors` by `prepare`
        self.register_module("projector", None)
        self.register_module("_projector_ori", None, trainable=False)
        self.add_state("importance", {})
        #: Detached values of the last step's terms, for logging and inspection.
        self.last_terms: dict[str, float] = {}

    # ------------------------------------------------------------------ preparation
    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        from lightning_unlearn.anchors import load_anchors

        if forget_loader is None:
            raise ValueError("StakeThePoints needs the forget data in `setup` to calibrate its projector.")
        anchors = load_anchors(self._anchor_spec)
        assert self.reference is not None
        device = next(model.parameters()).device
        feats, labels = [], []
        sources: list[tuple[Iterable, bool]] = [(forget_loader, True)]
        if retain_loader is not None and self.uses_retain:
            sources.append((retain_loader, False))
        for loader, with_proxies in sources:
            for i, batch in enumerate(loader):
                if i >= self.calibration_batches:
                    break
                batch = move_data_to_device(batch, device)
                x, y = task.inputs(batch), task.targets(batch)
                logits, v = self._forward(self.reference, task, x, y, grad=False)
                self._check_classes(logits, anchors)
                feats.append(v)
                labels.append(y)
                if with_proxies and self.proxy_steps > 0:
                    x_adv, y_adv = self.proxies(task, x, y)
                    feats.append(self._forward(self.reference, task, x_adv, y_adv, grad=False)[1])
                    labels.append(y_adv)
        if not feats:
            raise ValueError("StakeThePoints got an empty forget loader; the forget set must not be empty.")
        v, y = torch.cat(feats), torch.cat(labels)
        self._anchors = anchors.to(device)
        generator = torch.Generator().manual_seed(self.seed)
        projector = nn.Linear(v.shape[1], anchors.shape[1])
        with torch.no_grad():
            projector.weight.copy_(torch.randn(projector.weight.shape, generator=generator) / v.shape[1] ** 0.5)
            projector.bias.zero_()
        projector.to(device)
        opt = torch.optim.Adam(projector.parameters(), lr=1e-2)
        with torch.enable_grad():
            for _ in range(self.calibration_steps):
                loss = F.cross_entropy(self._similarity(projector, v) / self.temperature, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        self._projector_ori = copy.deepcopy(projector).eval().requires_grad_(False)
        self.projector = projector
        self.importance = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}

    def _check_classes(self, logits: Tensor, anchors: Tensor) -> None:
        if logits.shape[-1] != anchors.shape[0]:
            raise ValueError(
                f"`anchors` has {anchors.shape[0]} classes but the model predicts {logits.shape[-1]}; "
                "give one anchor (description set) per class."
            )

    # ------------------------------------------------------------------ pieces
    def _forward(self, model: nn.Module, task: Task, x: Tensor, y: Tensor, grad: bool) -> tuple[Tensor, Tensor]:
        with torch.set_grad_enabled(grad), capture_features(model, self.layer) as store:
            logits = task.forward(model, (x, y))
        return logits, store["out"].flatten(1)

    def _similarity(self, projector: nn.Module, features: Tensor) -> Tensor:
        """``S = norm(p(V)) Aᵀ``: cosine similarity of each projected sample to each class anchor."""
        assert self._anchors is not None
        weight = next(projector.parameters())
        z = F.normalize(projector(features.to(weight.dtype)), dim=-1)
        return z @ self._anchors.to(z.dtype).T

    def proxies(self, task: Task, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Adversarial proxy retain samples: targeted L∞ PGD on θ₀ toward its runner-up class."""
        assert self.reference is not None
        reference = self.reference
        with torch.no_grad():
            logits = task.forward(reference, (x, y))
            target = logits.scatter(1, y.unsqueeze(1), float("-inf")).argmax(1)
        delta = torch.zeros_like(x)
        step = 2.5 * self.proxy_eps / max(1, self.proxy_steps)
        for _ in range(self.proxy_steps):
            delta.requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(task.forward(reference, (x + delta, y)), target)
                (grad,) = torch.autograd.grad(loss, delta)
            delta = (delta.detach() - step * grad.sign()).clamp_(-self.proxy_eps, self.proxy_eps)
        x_adv = (x + delta).detach()
        with torch.no_grad():
            y_adv = task.forward(reference, (x_adv, y)).argmax(1)
        return x_adv, y_adv

    def _terms(self, ctx: StepContext) -> dict[str, Tensor]:
        """All four terms of one step, computed once (one forward of θ on forget + proxies)."""
        if "stp" in ctx._cache:
            return ctx._cache["stp"]
        if self.projector is None or self._projector_ori is None:
            raise RuntimeError("StakeThePoints.setup must run before the first step.")
        task, batch = ctx.task, ctx.batch("forget")
        x, y = task.inputs(batch), task.targets(batch)
        x_adv, y_adv = self.proxies(task, x, y)
        n = len(y)
        logits, v = self._forward(ctx.model, task, torch.cat([x, x_adv]), torch.cat([y, y_adv]), grad=True)
        _, v_ori = self._forward(self.reference, task, x_adv, y_adv, grad=False)
        ce = F.cross_entropy(logits[:n], y, reduction="none")
        if self.stop_when_forgotten:
            ce = ce * (logits[:n].argmax(1) == y).to(ce.dtype)
        # Only proxies that crossed to another class stand for retained data; the rest still look like
        # the forget class to θ₀ and are left out (none crossed: the structure terms are zero this step).
        crossed = y_adv != y
        s_unl = self._similarity(self.projector, v[n:][crossed])
        with torch.no_grad():
            s_ori = self._similarity(self._projector_ori, v_ori[crossed])
        terms = {"delete": -ce.sum() / n}
        if crossed.any():
            terms["proxy"] = F.cross_entropy(s_unl / self.temperature, y_adv[crossed])
            terms["align"] = -F.cosine_similarity(s_ori, s_unl, dim=-1).mean()
        else:
            terms["proxy"] = terms["align"] = v.new_zeros(())
        terms["reg"] = self._importance_penalty(ctx.model, terms["align"] if crossed.any() else None)
        ctx._cache["stp"] = terms
        self.last_terms = {k: float(t.detach()) for k, t in terms.items()}
        return terms

    def _importance_penalty(self, model: nn.Module, align: Tensor | None) -> Tensor:
        """``½ Σ I (ψ − ψ⁰)²`` with ``I`` the running average of ``|∂L_align/∂ψ|`` (updated here, detached;
        ``align=None`` keeps ``I`` as it is)."""
        assert self.reference is not None
        params = {n: p for n, p in model.named_parameters() if p.requires_grad and n in self.importance}
        if align is not None:
            grads = torch.autograd.grad(align, list(params.values()), retain_graph=True, allow_unused=True)
        else:
            grads = (None,) * len(params)
        reference = dict(self.reference.named_parameters())
        penalty = next(iter(params.values())).new_zeros(())
        m = self.importance_momentum
        for (name, p), g in zip(params.items(), grads):
            if g is not None:
                self.importance[name].mul_(m).add_(g.detach().abs(), alpha=1 - m)
            penalty = penalty + (self.importance[name] * (p - reference[name]).pow(2)).sum()
        return 0.5 * penalty

    # ------------------------------------------------------------------ hooks
    def forget_loss(self, ctx: StepContext) -> Tensor:
        return self._terms(ctx)["delete"]

    def regularizer(self, ctx: StepContext) -> Tensor | None:
        if ctx.forget is None:
            return None
        t = self._terms(ctx)
        return self.proxy_weight * t["proxy"] + self.align_weight * t["align"] + self.reg_weight * t["reg"]
