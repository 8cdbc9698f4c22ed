"""Output and weight distances between an unlearned model and another model: JS divergence to the oracle, ZRF,
activation distance, and per-layer distances to the oracle's weights and activations.

References:
    - V. S. Chundawat, A. K. Tarun, M. Mandal, M. Kankanhalli, "Can Bad Teaching Induce Forgetting? Unlearning in Deep
      Networks using an Incompetent Teacher", AAAI 2023 (arXiv:2205.08096): ZRF (zero retrain forgetting), the
      activation distance and the JS divergence to the retrained model.
    - A. K. Tarun, V. S. Chundawat, M. Mandal, M. Kankanhalli, "Fast Yet Effective Machine Unlearning", IEEE TNNLS 2023
      (arXiv:2111.08947), and A. Golatkar, A. Achille, S. Soatto, "Eternal Sunshine of the Spotless Net", CVPR 2020
      (arXiv:1911.04933): the layer-wise weight distance to the retrained model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn
from torchmetrics import Metric

from lightning_unlearn._errors import check_choice
from lightning_unlearn.tasks.base import Task, evaluating

__all__ = [
    "JSDivergence",
    "activation_distance",
    "feature_distance",
    "js_divergence",
    "kl_divergence",
    "output_probabilities",
    "weight_distance",
    "zrf",
    "zrf_score",
]

Reduction = Literal["mean", "none"]
_REDUCTIONS = {"mean": "the mean over samples (a float)", "none": "one value per sample (a tensor [N])"}
_PROBS_ATOL = 1e-3


def _check_probs(p: Tensor, q: Tensor) -> None:
    for name, value in (("p", p), ("q", q)):
        if not isinstance(value, Tensor):
            raise TypeError(f"`{name}` should be a torch.Tensor of probabilities [N, C], got {type(value).__name__}.")
        if value.ndim != 2 or value.shape[0] == 0:
            raise ValueError(f"`{name}` should be 2-D with shape [N, C] and N > 0, got shape {tuple(value.shape)}.")
        if bool((value < -_PROBS_ATOL).any()) or bool(((value.sum(-1) - 1).abs() > _PROBS_ATOL).any()):
            raise ValueError(f"`{name}` should hold probabilities (rows >= 0 summing to 1); apply a softmax to logits first.")
    if p.shape != q.shape:
        raise ValueError(f"`p` and `q` should have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}.")


def js_divergence(p: Tensor, q: Tensor, reduction: Reduction = "mean") -> Tensor | float:
    r"""Jensen–Shannon divergence between the rows of two probability matrices, in nats.

    .. math::
        \mathrm{JS}(p_n \| q_n) = \tfrac12 \mathrm{KL}(p_n \| m_n) + \tfrac12 \mathrm{KL}(q_n \| m_n),
        \quad m_n = \tfrac12 (p_n + q_n)

    with ``0 log 0 = 0``; it lies in ``[0, ln 2]``. Against the oracle's predictions it measures how far the unlearned
    model's outputs are from retraining (Chundawat et al., AAAI 2023).

    Args:
        p: probabilities ``[N, C]`` (e.g. the unlearned model's softmax outputs).
        q: probabilities ``[N, C]`` (e.g. the oracle's).
        reduction: ``"mean"`` (a float) or ``"none"`` (a tensor ``[N]``).

    Example:
        >>> import torch
        >>> round(js_divergence(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])), 6)  # ln 2
        0.693147
    """
    check_choice("reduction", reduction, _REDUCTIONS)
    values = _js_update(p, q)
    return float(values.mean()) if reduction == "mean" else values.float()


def _js_update(p: Tensor, q: Tensor) -> Tensor:
    """Per-sample JS divergences ``[N]`` (float64), shared by :func:`js_divergence` and :class:`JSDivergence`."""
    _check_probs(p, q)
    p, q = p.detach().double(), q.detach().double()
    m = 0.5 * (p + q)

    def kl(a: Tensor) -> Tensor:
        return torch.where(a > 0, a * (a.clamp_min(1e-300).log() - m.clamp_min(1e-300).log()), torch.zeros_like(a)).sum(-1)

    return (0.5 * kl(p) + 0.5 * kl(q)).clamp_min(0.0)


def kl_divergence(p: Tensor, q: Tensor, reduction: Reduction = "mean", eps: float = 1e-12) -> Tensor | float:
    r"""Kullback–Leibler divergence :math:`\mathrm{KL}(p_n \| q_n) = \sum_c p_{nc} (\log p_{nc} - \log q_{nc})` between the
    rows of two probability matrices, in nats, with ``0 log 0 = 0`` and ``q`` floored at ``eps`` (a softmax that
    underflowed to 0 where ``p`` is positive gives a large finite value, not ``inf``).

    With ``p`` the oracle's outputs and ``q`` the unlearned model's, it is the "KL to the oracle" of the hybrid
    quantum-classical unlearning study (Crivoi et al., ICPR 2026, arXiv 2512.19253).

    Args:
        p: probabilities ``[N, C]`` (the reference, e.g. the oracle's).
        q: probabilities ``[N, C]``.
        reduction: ``"mean"`` (a float) or ``"none"`` (a tensor ``[N]``).
        eps: floor of ``q`` inside the logarithm.

    Example:
        >>> import torch
        >>> round(kl_divergence(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, 0.75]])), 6)  # 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75)
        0.143841
    """
    check_choice("reduction", reduction, _REDUCTIONS)
    _check_probs(p, q)
    p, q = p.detach().double(), q.detach().double()
    values = torch.where(p > 0, p * (p.clamp_min(1e-300).log() - q.clamp_min(eps).log()), torch.zeros_like(p)).sum(-1)
    values = values.clamp_min(0.0)
    return float(values.mean()) if reduction == "mean" else values.float()


class JSDivergence(Metric):
    """Mean JS divergence (nats) between two models' output probabilities over every update, the stateful twin of
    :func:`js_divergence` (sums and counts reduced over DDP ranks). ``UnlearningModule`` logs it against the oracle's
    outputs per evaluation split (``test/js_to_oracle/<split>``).

    Example:
        >>> import torch
        >>> metric = JSDivergence()
        >>> metric.update(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
        >>> metric.update(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.5, 0.5]]))
        >>> round(float(metric.compute()), 6)  # (ln 2 + 0) / 2
        0.346574
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, p: Tensor, q: Tensor) -> None:
        values = _js_update(p, q)
        self.total += values.sum().to(self.total)
        self.count += values.numel()

    def compute(self) -> Tensor:
        """The mean over all samples seen (NaN before any)."""
        return (self.total / self.count).float() if int(self.count) else torch.tensor(float("nan"))


def zrf_score(p: Tensor, random_q: Tensor) -> float:
    r"""ZRF, zero retrain forgetting (Chundawat et al., AAAI 2023): ``1 − mean_n JS(p_n ‖ q_n)``.

    ``p`` are the unlearned model's probabilities on the forget set and ``random_q`` those of a randomly initialised
    model of the same architecture (the incompetent teacher). ZRF lies in ``[1 − ln 2, 1]`` (natural logs): 1 when the
    model answers the forget set exactly like a random model, lower the more its outputs still differ.

    Example:
        >>> import torch
        >>> zrf_score(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.5, 0.5]]))
        1.0
    """
    return 1.0 - js_divergence(p, random_q)  # type: ignore[operator]


def activation_distance(p: Tensor, q: Tensor, reduction: Reduction = "mean") -> Tensor | float:
    r"""Activation distance (Chundawat et al., AAAI 2023): the l2 distance between two models' output probabilities,
    ``‖p_n − q_n‖₂``, averaged over samples (``reduction="mean"``). Some ports report ``sqrt(mean_n ‖p_n − q_n‖²)``
    instead, which is never smaller.

    Example:
        >>> import torch
        >>> activation_distance(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])) == 2 ** 0.5
        True
    """
    check_choice("reduction", reduction, _REDUCTIONS)
    _check_probs(p, q)
    values = torch.linalg.vector_norm(p.double() - q.double(), dim=-1)
    return float(values.mean()) if reduction == "mean" else values.float()


def weight_distance(model: nn.Module, other: nn.Module) -> dict[str, float]:
    r"""Per-layer l2 distance between two models' weights (e.g. the unlearned model and the oracle).

    A *layer* is a module with parameters of its own; its distance is ``sqrt(Σ ‖θ_l − θ*_l‖²)`` over those
    parameters. ``"total"`` is the distance over all parameters (the layer-wise distance of Tarun et al. and Golatkar
    et al. summed in quadrature). The two models must have the same parameter names and shapes.
    """
    mine, theirs = dict(model.named_parameters()), dict(other.named_parameters())
    if mine.keys() != theirs.keys():
        missing = sorted(set(mine) ^ set(theirs))
        raise ValueError(f"`model` and `other` should have the same parameters; they differ in {missing[:8]}.")
    squared: dict[str, float] = {}
    for name, param in mine.items():
        if param.shape != theirs[name].shape:
            raise ValueError(f"Parameter {name!r} has shape {tuple(param.shape)} in `model` and {tuple(theirs[name].shape)} in `other`.")
        layer = name.rpartition(".")[0] or "<root>"
        diff = (param.detach().double() - theirs[name].detach().to(param.device).double()).pow(2).sum()
        squared[layer] = squared.get(layer, 0.0) + float(diff)
    out = {layer: value**0.5 for layer, value in squared.items()}
    out["total"] = sum(squared.values()) ** 0.5
    return out


@torch.no_grad()
def output_probabilities(model: nn.Module, loader: Iterable, task: Task | None = None) -> Tensor:
    """Softmax outputs ``[N, C]`` of ``model`` over ``loader`` (eval mode, on the CPU)."""
    from lightning_unlearn.tasks import ClassificationTask

    task = task or ClassificationTask()
    probs = []
    with evaluating(model) as device:
        for batch in loader:
            batch = move_data_to_device(batch, device)
            probs.append(task.probabilities(task.forward(model, batch)).float().cpu())
    if not probs:
        raise ValueError("`loader` yielded no batches.")
    return torch.cat(probs)


def zrf(model: nn.Module, loader: Iterable, random_model: nn.Module | None = None, seed: int = 0, task: Task | None = None) -> float:
    """:func:`zrf_score` of ``model`` on ``loader`` (the forget set) against ``random_model``, by default a copy of
    ``model`` re-initialised with ``seed`` (:func:`~lightning_unlearn.methods.random_teacher`)."""
    if random_model is None:
        from lightning_unlearn.methods.bad_teacher import random_teacher

        random_model = random_teacher(model, seed)
    return zrf_score(output_probabilities(model, loader, task), output_probabilities(random_model, loader, task))


def feature_distance(
    model: nn.Module, other: nn.Module, loader: Iterable, layers: str | Sequence[str], task: Task | None = None
) -> dict[str, float]:
    """Per-layer distance between two models' activations: for each submodule name in ``layers``, the mean over
    ``loader``'s samples of the l2 distance between the flattened outputs of that submodule in ``model`` and in
    ``other`` (e.g. the oracle)."""
    from lightning_unlearn.metrics.structure import collect_features

    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("`layers` should name at least one submodule, got an empty list.")
    out = {}
    for layer in names:
        a, _ = collect_features(model, loader, layer, task)
        b, _ = collect_features(other, loader, layer, task)
        if a.shape != b.shape:
            raise ValueError(f"The outputs of {layer!r} differ in shape: {tuple(a.shape)} and {tuple(b.shape)}.")
        out[layer] = float(torch.linalg.vector_norm(a.double() - b.double(), dim=-1).mean())
    return out
