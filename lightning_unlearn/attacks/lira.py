r"""Per-example membership inference with shadow models: LiRA, and U-LiRA for unlearning.

**LiRA** — N. Carlini, S. Chien, M. Nasr, S. Song, A. Terzis, F. Tramèr, "Membership Inference Attacks From First
Principles", IEEE S&P 2022 (arXiv:2112.03570). For an example :math:`(x, y)` and a model with logits :math:`z`,
the statistic is the logit-scaled confidence

.. math::
    \phi(x, y) = \log\frac{p_y}{1 - p_y} = z_y - \log\sum_{j \ne y} e^{z_j}

(:func:`logit_confidence`, :func:`model_stats`).

Shadow models are trained on random halves of a candidate pool, so every pool example is IN (trained on) for
half of them and OUT for the other half. Per example, Gaussians :math:`\mathcal N(\mu_{in}, \sigma_{in}^2)` and
:math:`\mathcal N(\mu_{out}, \sigma_{out}^2)` are fit to :math:`\phi` under the IN and the OUT shadows, and the
target model's :math:`\phi_t` is scored (:func:`lira_scores`; higher = "member")

.. math::
    \text{online:}\quad s = \log \mathcal N(\phi_t; \mu_{in}, \sigma_{in}^2) - \log \mathcal N(\phi_t; \mu_{out}, \sigma_{out}^2),
    \qquad
    \text{offline:}\quad s = -\log \Pr_{Z \sim \mathcal N(\mu_{out}, \sigma_{out}^2)}[Z \ge \phi_t].

The offline score is a monotone transform of the paper's one-sided test :math:`\Pr[Z < \phi_t]`, kept in log space
so that the tail keeps its resolution. The attack is summarised by the ROC AUC and the TPR at a low FPR
(:func:`attack_roc`).

**U-LiRA** — J. Hayes, I. Shumailov, E. Triantafillou, A. Khalifa, N. Papernot, "Inexact Unlearning Needs More
Careful Evaluations to Avoid a False Sense of Privacy", SaTML 2025 (arXiv:2403.01218). The question for unlearning
is whether an unlearned model can be told apart from one that never trained on the example (retraining). Every
shadow trains on a random half of the pool and then *unlearns* a random subset of its members with the method
under test. Per example, the IN distribution is :math:`\phi` under the shadows that trained on the example and
unlearned it, the OUT distribution is :math:`\phi` under the shadows that never trained on it; shadows that
trained on it and kept it are not used for that example. The target's forget examples (positives) are scored
against pool examples it never trained on (negatives). AUC 0.5 = indistinguishable from retraining = ideal.

What is reconstructed and what is simplified here:

- **Few shadows.** Both papers use many more shadow models than the 8–16 that fit a CPU run; with few shadows
  the per-example variances are unreliable, so ``fixed_variance=True`` (the paper's "global variance" variant) is
  the default. The shared variance is the *pooled within-example* variance
  :math:`\sum_{n}\sum_{s \in S_n}(\phi_{s,n} - \mu_n)^2 / \sum_n (|S_n| - 1)`; per-example variances use
  ``ddof=1`` too. Gaussian means are sample means (the authors' released code uses medians).
- **One query per example**: no augmented (flipped/shifted) queries; :math:`\phi` is a scalar per example.
- **Balanced membership** (as in the authors' code): every pool example is IN for exactly :math:`\lfloor S/2
  \rfloor` shadows; for U-LiRA every forget candidate is unlearned by exactly
  :math:`\operatorname{round}(f \cdot \lfloor S/2 \rfloor)` of them (``forget_fraction`` :math:`f`).
- **Evaluation**: either on separate target models (:func:`lira`, :func:`ulira`), or leave-one-out over the
  shadows (:func:`leave_one_out`): each shadow in turn is the target and the others the references, and the
  scores of all targets are pooled into one ROC curve (as both papers evaluate). Our addition: by default one
  more reference is dropped per scored example so that members and non-members are fit to equally many
  references; with few shadows, plain leave-one-out is biased below AUC 0.5 (see :func:`leave_one_out`).
- Only the shadows' :math:`\phi` on the pool is kept (an ``[S, N]`` matrix), never the shadow models.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from lightning_unlearn._errors import check_choice, check_fraction, check_int, check_positive
from lightning_unlearn.tasks.base import evaluating
from lightning_unlearn.tasks.classification import ClassificationTask

__all__ = [
    "DEFAULT_FPRS",
    "LiRAVariant",
    "MethodUnlearn",
    "ShadowStats",
    "SupervisedFit",
    "attack_roc",
    "leave_one_out",
    "lira",
    "lira_scores",
    "logit_confidence",
    "model_stats",
    "train_shadows",
    "ulira",
]

#: ``unlearn_fn(model, forget, retain) -> model`` of :func:`train_shadows`.
UnlearnFn = Callable[[nn.Module, Dataset, Dataset], nn.Module]

LiRAVariant = Literal["online", "offline"]
_VARIANTS: dict[str, str] = {
    "online": "log N(phi; mu_in, sigma_in^2) - log N(phi; mu_out, sigma_out^2): needs IN and OUT shadows per example",
    "offline": "-log Pr[Z >= phi], Z ~ N(mu_out, sigma_out^2): needs only OUT shadows per example",
}

#: The default FPR levels of :func:`attack_roc` (1% and 0.1%).
DEFAULT_FPRS: tuple[float, ...] = (0.01, 0.001)


# --------------------------------------------------------------------------------------------------------------
# the statistic
# --------------------------------------------------------------------------------------------------------------


def logit_confidence(logits: Tensor, targets: Tensor) -> Tensor:
    r"""LiRA's logit-scaled confidence :math:`\phi = \log(p_y / (1 - p_y))` per example, computed stably.

    .. math::
        \phi_n = z_{n, y_n} - \log \sum_{j \ne y_n} e^{z_{n,j}}

    which equals :math:`\log p_y - \log(1 - p_y)` for :math:`p = \operatorname{softmax}(z)` without forming
    :math:`1 - p_y` (which rounds to 0 for a confident model).

    Args:
        logits: Finite logits ``[N, C]`` with ``C >= 2``; computed in float64 if given in float64, else float32.
        targets: Integer class indices ``[N]`` in ``[0, C)``.

    Returns:
        :math:`\phi`, shape ``[N]``.

    Raises:
        TypeError: If an input is not a tensor.
        ValueError: On wrong shapes or dtypes, non-finite logits or out-of-range targets.

    Example:
        >>> import torch
        >>> logit_confidence(torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0]))
        tensor([1.3069])

    """
    for name, value in (("logits", logits), ("targets", targets)):
        if not isinstance(value, Tensor):
            raise TypeError(f"`{name}` should be a torch.Tensor, got {type(value).__name__}.")
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"`logits` should be 2-D with shape [N, C] and C >= 2, got shape {tuple(logits.shape)}.")
    if not logits.is_floating_point():
        raise ValueError(f"`logits` should be a floating-point tensor, got dtype {logits.dtype}.")
    if targets.shape != logits.shape[:1]:
        raise ValueError(f"`targets` should have shape ({logits.shape[0]},) to match `logits`, got {tuple(targets.shape)}.")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"`targets` should be an integer tensor of class indices, got dtype {targets.dtype}.")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= logits.shape[1]):
        raise ValueError(
            f"`targets` should be class indices in [0, {logits.shape[1] - 1}], got values in "
            f"[{int(targets.min())}, {int(targets.max())}]."
        )
    if not torch.isfinite(logits).all():
        raise ValueError("`logits` contains NaN or infinite values.")
    z = logits.detach().double() if logits.dtype == torch.float64 else logits.detach().float()
    index = targets.long()[:, None]
    others = z.scatter(1, index, float("-inf"))
    return z.gather(1, index).squeeze(1) - torch.logsumexp(others, dim=1)


@torch.no_grad()
def model_stats(model: nn.Module, dataset: Dataset, *, batch_size: int = 512, task: ClassificationTask | None = None) -> Tensor:
    r""":math:`\phi` (:func:`logit_confidence`) of ``model`` on every example of ``dataset``, in order: ``[N]`` float32.

    The model runs in eval mode (its mode is restored afterwards) on the device of its parameters.

    Args:
        model: A classifier returning logits ``[B, C]`` (or an object with a ``logits`` attribute).
        dataset: Examples ``(inputs, targets)`` (or mappings, see ``task``).
        batch_size: Batch size of the forward passes.
        task: How to read batches and call the model (default :class:`~lightning_unlearn.ClassificationTask`).
    """
    from lightning.fabric.utilities.apply_func import move_data_to_device

    check_int("batch_size", batch_size)
    task = task if task is not None else ClassificationTask()
    with evaluating(model) as device:
        out = []
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):  # type: ignore[arg-type]
            batch = move_data_to_device(batch, device)
            out.append(logit_confidence(task.forward(model, batch), task.targets(batch)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


# --------------------------------------------------------------------------------------------------------------
# per-example Gaussians and scores
# --------------------------------------------------------------------------------------------------------------


_SHAPES = {(1,): "[N]", (2,): "[S, N]", (1, 2): "[N] or [T, N]"}


def _check_stats(name: str, value: Any, ndims: tuple[int, ...]) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"`{name}` should be a torch.Tensor, got {type(value).__name__}.")
    if value.ndim not in ndims:
        raise ValueError(f"`{name}` should have shape {_SHAPES[ndims]}, got shape {tuple(value.shape)}.")
    if not value.is_floating_point():
        raise ValueError(f"`{name}` should be a floating-point tensor, got dtype {value.dtype}.")
    if not torch.isfinite(value).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")


def _check_mask(name: str, value: Any, shape: torch.Size, like: str) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"`{name}` should be a boolean torch.Tensor, got {type(value).__name__}.")
    if value.dtype != torch.bool:
        raise ValueError(f"`{name}` should be a boolean tensor, got dtype {value.dtype}.")
    if value.shape != shape:
        raise ValueError(f"`{name}` should have the shape of `{like}` {tuple(shape)}, got {tuple(value.shape)}.")


def _few(columns: list[int]) -> str:
    shown = ", ".join(map(str, columns[:5]))
    return f"{shown}, ... ({len(columns)} in all)" if len(columns) > 5 else shown


def _gaussian(
    stats: Tensor, mask: Tensor, side: str, fixed_variance: bool, min_std: float, variant: str, index: Tensor
) -> tuple[Tensor, Tensor]:
    """Per-column mean and standard deviation of ``stats`` over the rows selected by ``mask`` (float64)."""
    count = mask.sum(0)
    need = 1 if fixed_variance else 2
    short = torch.nonzero(count < need).flatten()
    if short.numel():
        hint = "" if fixed_variance else " (or use `fixed_variance=True`)"
        raise ValueError(
            f"The {variant} attack needs at least {need} {side} shadow model{'s' if need > 1 else ''} per example{hint}; "
            f"examples with fewer: {_few(index[short].tolist())}. Train more shadows."
        )
    mean = torch.where(mask, stats, 0.0).sum(0) / count
    squares = torch.where(mask, (stats - mean) ** 2, 0.0)
    if fixed_variance:
        dof = int(count.sum()) - count.numel()
        if dof < 1:
            raise ValueError(
                f"The shared {side} variance needs at least one example with 2 or more {side} shadow models; every "
                "scored example has exactly one. Train more shadows."
            )
        var = (squares.sum() / dof).expand_as(mean)
    else:
        var = squares.sum(0) / (count - 1)
    return mean, var.sqrt().clamp_min(min_std)


def _scores(
    target_stats: Tensor,
    shadow_stats: Tensor,
    in_mask: Tensor,
    out_mask: Tensor,
    variant: str,
    fixed_variance: bool,
    min_std: float,
    index: Tensor,
) -> Tensor:
    """Scores of already validated inputs; ``index`` maps columns to example numbers for error messages."""
    phi = target_stats.double()
    stats = shadow_stats.double()
    mu_out, sd_out = _gaussian(stats, out_mask, "OUT", fixed_variance, min_std, variant, index)
    if variant == "offline":
        return -torch.special.log_ndtr(-(phi - mu_out) / sd_out)
    mu_in, sd_in = _gaussian(stats, in_mask, "IN", fixed_variance, min_std, variant, index)
    log_in = -torch.log(sd_in) - 0.5 * ((phi - mu_in) / sd_in) ** 2
    log_out = -torch.log(sd_out) - 0.5 * ((phi - mu_out) / sd_out) ** 2
    return log_in - log_out


def _check_score_args(variant: str, fixed_variance: bool, min_std: float) -> None:
    check_choice("variant", variant, _VARIANTS)
    if not isinstance(fixed_variance, bool):
        raise TypeError(f"`fixed_variance` should be a bool, got {type(fixed_variance).__name__} {fixed_variance!r}.")
    check_positive("min_std", min_std)


def lira_scores(
    target_stats: Tensor,
    shadow_stats: Tensor,
    in_mask: Tensor,
    out_mask: Tensor | None = None,
    *,
    variant: LiRAVariant = "online",
    fixed_variance: bool = True,
    min_std: float = 1e-3,
) -> Tensor:
    r"""Per-example LiRA scores of target models (higher = more likely a member).

    For example :math:`n`, :math:`\mu_{in,n}` / :math:`\mu_{out,n}` are the means of ``shadow_stats[:, n]`` over
    the shadows with ``in_mask[:, n]`` / ``out_mask[:, n]``; the standard deviations are per example (``ddof=1``)
    or, with ``fixed_variance``, one pooled within-example value per side
    :math:`\sigma^2 = \sum_n \sum_{s \in S_n} (\phi_{s,n} - \mu_n)^2 / \sum_n (|S_n| - 1)`, floored at
    ``min_std``. Then, with :math:`\phi` = ``target_stats[..., n]``:

    .. math::
        \text{online:}\quad s_n = \log \mathcal N(\phi; \mu_{in,n}, \sigma_{in,n}^2)
            - \log \mathcal N(\phi; \mu_{out,n}, \sigma_{out,n}^2)
        \qquad
        \text{offline:}\quad s_n = -\log\bigl(1 - \Phi((\phi - \mu_{out,n}) / \sigma_{out,n})\bigr)

    Args:
        target_stats: :math:`\phi` of the target model(s) on the ``N`` examples: ``[N]``, or ``[T, N]`` for ``T``
            targets scored against the same shadows.
        shadow_stats: :math:`\phi` of ``S`` shadow models on the same examples, ``[S, N]``.
        in_mask: Boolean ``[S, N]``: shadow ``s`` is IN for example ``n`` (for U-LiRA: trained on it and
            unlearned it).
        out_mask: Boolean ``[S, N]``: shadow ``s`` is OUT for example ``n``; default ``~in_mask``. Shadows in
            neither mask are not used for that example. Must not overlap ``in_mask``.
        variant: ``"online"`` (IN and OUT Gaussians) or ``"offline"`` (OUT only; ``in_mask`` then only defines the
            default ``out_mask``).
        fixed_variance: Share one variance per side across examples (the paper's choice with few shadows).
        min_std: Floor of every standard deviation.

    Returns:
        Scores of the shape of ``target_stats``, float64.

    Raises:
        TypeError: If an input is not a tensor (or ``fixed_variance`` not a bool).
        ValueError: On wrong shapes or dtypes, non-finite values, overlapping masks, an unknown ``variant``, or too
            few IN/OUT shadows for an example (1 per side, 2 without ``fixed_variance``).

    Example:
        >>> import torch
        >>> shadows = torch.tensor([[4.0, 1.0], [2.0, 0.0], [0.0, 3.0], [1.0, 5.0]])
        >>> in_mask = torch.tensor([[True, False], [True, False], [False, True], [False, True]])
        >>> lira_scores(torch.tensor([3.0, 0.5]), shadows, in_mask)
        tensor([ 5.5569, -3.7556], dtype=torch.float64)

    """
    _check_score_args(variant, fixed_variance, min_std)
    _check_stats("target_stats", target_stats, (1, 2))
    _check_stats("shadow_stats", shadow_stats, (2,))
    if shadow_stats.shape[1] != target_stats.shape[-1]:
        raise ValueError(
            f"`shadow_stats` should have one column per example of `target_stats` ({target_stats.shape[-1]}), "
            f"got shape {tuple(shadow_stats.shape)}."
        )
    _check_mask("in_mask", in_mask, shadow_stats.shape, "shadow_stats")
    if out_mask is None:
        out_mask = ~in_mask
    else:
        _check_mask("out_mask", out_mask, shadow_stats.shape, "shadow_stats")
        if (in_mask & out_mask).any():
            raise ValueError("`in_mask` and `out_mask` overlap: a shadow cannot be both IN and OUT for an example.")
    index = torch.arange(shadow_stats.shape[1])
    return _scores(target_stats, shadow_stats, in_mask, out_mask, variant, fixed_variance, min_std, index)


# --------------------------------------------------------------------------------------------------------------
# ROC summary
# --------------------------------------------------------------------------------------------------------------


def _tpr_key(fpr: float) -> str:
    return f"tpr_at_{fpr * 100:g}pct_fpr"


def attack_roc(member_scores: Tensor, nonmember_scores: Tensor, *, fprs: Sequence[float] = DEFAULT_FPRS) -> dict[str, Any]:
    r"""ROC AUC and TPR at low FPR of a membership attack (members = positives, higher score = "member").

    The TPR at FPR :math:`\alpha` is the largest true-positive rate over thresholds whose false-positive rate is at
    most :math:`\alpha`; it is ``None`` when there are fewer than :math:`1/\alpha` non-members (one false positive
    would already exceed :math:`\alpha`). The AUC and the curve are the package's one ROC (:func:`lightning_unlearn.metrics.auroc`,
    :func:`~lightning_unlearn.metrics.roc_curve`; ties count one half).

    Args:
        member_scores: Scores of members, 1-D.
        nonmember_scores: Scores of non-members, 1-D.
        fprs: FPR levels in ``(0, 1)``.

    Returns:
        ``{"auc": float, "tpr_at_1pct_fpr": float | None, "tpr_at_0.1pct_fpr": ..., "n_members": int, "n_nonmembers": int}``
        (one ``tpr_at_`` key per level, named ``f"tpr_at_{100 * α:g}pct_fpr"``): flat numbers, ready for
        :meth:`UnlearningReport.add_attack <lightning_unlearn.report.callback.UnlearningReport.add_attack>`.

    Raises:
        TypeError: If a score input is not a tensor.
        ValueError: If scores are not 1-D finite floats, a side is empty, or an FPR level is outside ``(0, 1)``.

    Example:
        >>> import torch
        >>> attack_roc(torch.tensor([3.0, 2.0, 0.5]), torch.tensor([1.0, 0.0]), fprs=(0.5,))
        {'auc': 0.8333333333333333, 'tpr_at_50pct_fpr': 1.0, 'n_members': 3, 'n_nonmembers': 2}

    """
    from lightning_unlearn.metrics import auroc, roc_curve

    for name, value in (("member_scores", member_scores), ("nonmember_scores", nonmember_scores)):
        _check_stats(name, value, (1,))
        if value.numel() == 0:
            raise ValueError(f"`{name}` is empty; the ROC curve needs at least one member and one non-member.")
    if isinstance(fprs, (int, float)) or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in fprs):
        raise TypeError(f"`fprs` should be a sequence of numbers in (0, 1), got {fprs!r}.")
    for a in fprs:
        check_fraction("fprs", a, inclusive_high=False)
    n_m, n_n = member_scores.numel(), nonmember_scores.numel()
    members, nonmembers = member_scores.detach().double().cpu(), nonmember_scores.detach().double().cpu()
    out: dict[str, Any] = {"auc": auroc(members, nonmembers)}
    fpr, tpr, _ = roc_curve(members, nonmembers)
    for a in fprs:
        out[_tpr_key(a)] = float(tpr[fpr <= a + 1e-12].max()) if a * n_n >= 1 - 1e-9 else None
    out["n_members"], out["n_nonmembers"] = n_m, n_n
    return out


# --------------------------------------------------------------------------------------------------------------
# shadow models
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ShadowStats:
    r"""What is kept of ``S`` shadow models: their :math:`\phi` on the ``N`` pool examples and who saw what.

    Args:
        stats: :math:`\phi` of each shadow on each pool example, float ``[S, N]``.
        in_mask: Boolean ``[S, N]``: shadow ``s`` trained on example ``n``.
        unlearned_mask: Boolean ``[S, N]`` (U-LiRA only): shadow ``s`` trained on example ``n`` and then unlearned
            it; a subset of ``in_mask``. ``None`` for plain LiRA shadows.
    """

    stats: Tensor
    in_mask: Tensor
    unlearned_mask: Tensor | None = None

    def __post_init__(self) -> None:
        _check_stats("stats", self.stats, (2,))
        _check_mask("in_mask", self.in_mask, self.stats.shape, "stats")
        if self.unlearned_mask is not None:
            _check_mask("unlearned_mask", self.unlearned_mask, self.stats.shape, "stats")
            if (self.unlearned_mask & ~self.in_mask).any():
                raise ValueError(
                    "`unlearned_mask` should be a subset of `in_mask`: a shadow can only unlearn what it trained on."
                )

    @property
    def n_shadows(self) -> int:
        return int(self.stats.shape[0])

    @property
    def n_examples(self) -> int:
        return int(self.stats.shape[1])

    @property
    def candidates(self) -> Tensor | None:
        """Boolean ``[N]``: examples unlearned by at least one shadow (``None`` for LiRA shadows)."""
        return None if self.unlearned_mask is None else self.unlearned_mask.any(0)

    def without(self, index: int) -> ShadowStats:
        """The same shadows minus shadow ``index`` (the references when that shadow is the target)."""
        check_int("index", index, minimum=0)
        if index >= self.n_shadows:
            raise ValueError(f"`index` should be < {self.n_shadows} (the number of shadows), got {index}.")
        keep = torch.arange(self.n_shadows) != index
        unlearned = None if self.unlearned_mask is None else self.unlearned_mask[keep]
        return ShadowStats(self.stats[keep], self.in_mask[keep], unlearned)


def _check_callable(name: str, value: Any, signature: str) -> None:
    if not callable(value):
        raise TypeError(f"`{name}` should be a callable {signature}, got {type(value).__name__} {value!r}.")


def _checked_model(name: str, value: Any) -> nn.Module:
    if not isinstance(value, nn.Module):
        raise TypeError(f"`{name}` should return the model (an nn.Module), got {type(value).__name__}.")
    return value


def _membership(n_shadows: int, n_examples: int, candidates: Tensor | None, k_forget: int, generator: torch.Generator):
    """Balanced masks: every example IN for exactly ``S // 2`` shadows, every candidate unlearned by ``k_forget``."""
    # rank[s, n]: the position of shadow s in an independent random permutation of the shadows for example n
    rank = torch.rand(n_shadows, n_examples, generator=generator).argsort(dim=0).argsort(dim=0)
    in_mask = rank < n_shadows // 2
    unlearned = None if candidates is None else (rank < k_forget) & candidates[None, :]
    return in_mask, unlearned


def train_shadows(
    pool: Dataset,
    make_model: Callable[[], nn.Module],
    train_fn: Callable[[nn.Module, Dataset], nn.Module],
    *,
    n_shadows: int = 8,
    seed: int = 0,
    unlearn_fn: UnlearnFn | Mapping[str, UnlearnFn] | None = None,
    forget_fraction: float = 0.5,
    forget_candidates: Sequence[int] | Tensor | None = None,
    batch_size: int = 512,
    task: ClassificationTask | None = None,
    log: Callable[[str], None] | None = None,
) -> Any:
    r"""Train ``n_shadows`` shadow models on balanced random halves of ``pool`` and keep only their :math:`\phi`.

    Every pool example is IN for exactly ``n_shadows // 2`` shadows (drawn independently per example). For shadow
    ``s``, in a forked RNG seeded from ``seed`` (so runs are reproducible and the caller's RNG is untouched):
    ``model = train_fn(make_model(), Subset(pool, IN_s))``; with ``unlearn_fn`` (U-LiRA) then, with the RNG
    re-seeded, ``model = unlearn_fn(model, Subset(pool, F_s), Subset(pool, IN_s \ F_s))``, where every forget
    candidate is in ``F_s`` for exactly ``round(forget_fraction * (n_shadows // 2))`` of the shadows it is IN for;
    finally :func:`model_stats` on the whole pool. The model is then dropped.

    Args:
        pool: The candidate examples ``(inputs, targets)``.
        make_model: Builds a freshly initialised model (called in the shadow's seeded RNG).
        train_fn: Trains a model on a dataset and returns it (e.g. :class:`SupervisedFit`).
        n_shadows: Number of shadow models ``S`` (at least 2).
        seed: Seed of the memberships and of every shadow's RNG.
        unlearn_fn: For U-LiRA: unlearns ``(model, forget, retain)`` and returns the model (e.g.
            :class:`MethodUnlearn`). A mapping ``{name: unlearn_fn}`` evaluates several methods on the same trained
            shadows (each unlearns its own copy, from the same RNG state, so a method's result does not depend on
            the others). ``None`` trains plain LiRA shadows.
        forget_fraction: Fraction ``f`` of the shadows that are IN for a candidate which unlearn it. The balanced
            :func:`leave_one_out` needs ``round(f * (n_shadows // 2)) >= 3`` (e.g. 16 shadows with 0.5).
        forget_candidates: Indices into ``pool`` that may be unlearned (default: all). Only the candidates can be
            scored by :func:`ulira`; restricting them makes each shadow's forget set smaller.
        batch_size: Batch size of :func:`model_stats`.
        task: How to read batches (default classification).
        log: Called with one progress line per shadow (e.g. ``print``).

    Returns:
        :class:`ShadowStats` with ``stats`` ``[S, N]`` float32, ``in_mask`` and (with ``unlearn_fn``)
        ``unlearned_mask``; a dict ``{name: ShadowStats}`` (same masks) when ``unlearn_fn`` is a mapping.

    Raises:
        TypeError: If a callable argument is not callable or ``train_fn``/``unlearn_fn`` return no ``nn.Module``.
        ValueError: On invalid numbers, ``forget_candidates`` without ``unlearn_fn`` or out of range, or a
            membership draw that leaves some shadow without training or forget examples.
    """
    _check_callable("make_model", make_model, "() -> nn.Module")
    _check_callable("train_fn", train_fn, "(model, dataset) -> nn.Module")
    unlearn_fns = _unlearn_fns(unlearn_fn)
    check_int("n_shadows", n_shadows, minimum=2)
    check_int("seed", seed, minimum=0)
    check_fraction("forget_fraction", forget_fraction)
    check_int("batch_size", batch_size)
    n = len(pool)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("`pool` is empty; there is nothing to attack.")
    candidates: Tensor | None = None
    k_forget = 0
    if not unlearn_fns:
        if forget_candidates is not None:
            raise ValueError("`forget_candidates` only applies with an `unlearn_fn` (U-LiRA); got no `unlearn_fn`.")
    else:
        candidates = torch.ones(n, dtype=torch.bool)
        if forget_candidates is not None:
            idx = torch.as_tensor(forget_candidates).flatten()
            if idx.numel() == 0 or idx.is_floating_point() or idx.dtype == torch.bool:
                raise ValueError(
                    f"`forget_candidates` should be a non-empty sequence of int indices into `pool`, got {forget_candidates!r}."
                )
            bad = idx[(idx < 0) | (idx >= n)]
            if bad.numel():
                raise ValueError(f"`forget_candidates` should lie in [0, {n - 1}]; got {_few(bad.tolist())}.")
            candidates = torch.zeros(n, dtype=torch.bool)
            candidates[idx] = True
        k_forget = int(forget_fraction * (n_shadows // 2) + 0.5)
        if k_forget < 1:
            raise ValueError(
                f"`forget_fraction`={forget_fraction} of the {n_shadows // 2} shadows that train on each example rounds to "
                "0 shadows that unlearn it; raise `forget_fraction` or `n_shadows`."
            )
    generator = torch.Generator().manual_seed(seed)
    in_mask, unlearned = _membership(n_shadows, n, candidates, k_forget, generator)
    train_seeds, unlearn_seeds = torch.randint(0, 2**31 - 1, (2, n_shadows), generator=generator).tolist()
    if not in_mask.any(1).all():
        empty = torch.nonzero(~in_mask.any(1)).flatten().tolist()
        raise ValueError(f"Shadows {_few(empty)} drew no training examples from a pool of {n}; use a larger pool.")
    if unlearned is not None and candidates is not None and not unlearned.any(1).all():
        empty = torch.nonzero(~unlearned.any(1)).flatten().tolist()
        raise ValueError(
            f"Shadows {_few(empty)} drew no forget examples from the {int(candidates.sum())} forget candidates; "
            "use more `forget_candidates` or a larger `forget_fraction`."
        )
    stats = {name: torch.zeros(n_shadows, n) for name in (unlearn_fns or {None: None})}
    for s in range(n_shadows):
        train_idx = torch.nonzero(in_mask[s]).flatten().tolist()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(train_seeds[s])
            model = _checked_model("train_fn", train_fn(make_model(), Subset(pool, train_idx)))
            if unlearned is None:
                stats[None][s] = model_stats(model, pool, batch_size=batch_size, task=task)
            else:
                forget = Subset(pool, torch.nonzero(unlearned[s]).flatten().tolist())
                retain = Subset(pool, torch.nonzero(in_mask[s] & ~unlearned[s]).flatten().tolist())
                for name, fn in unlearn_fns.items():
                    torch.manual_seed(unlearn_seeds[s])
                    start = model if len(unlearn_fns) == 1 else copy.deepcopy(model)
                    result = _checked_model("unlearn_fn", fn(start, forget, retain))
                    stats[name][s] = model_stats(result, pool, batch_size=batch_size, task=task)
                    del start, result
        del model
        if log is not None:
            done = f", unlearned {int(unlearned[s].sum())}" if unlearned is not None else ""
            log(f"[shadows] {s + 1}/{n_shadows}: trained on {len(train_idx)}{done}")
    out = {name: ShadowStats(value, in_mask, unlearned) for name, value in stats.items()}
    return out if isinstance(unlearn_fn, Mapping) else next(iter(out.values()))


def _unlearn_fns(unlearn_fn: Any) -> dict[Any, UnlearnFn]:
    """``unlearn_fn`` as a dict (empty for ``None``; key ``None`` for a single callable), validated."""
    signature = "(model, forget, retain) -> nn.Module"
    if unlearn_fn is None:
        return {}
    if not isinstance(unlearn_fn, Mapping):
        _check_callable("unlearn_fn", unlearn_fn, signature)
        return {None: unlearn_fn}
    if not unlearn_fn:
        raise ValueError("`unlearn_fn` is an empty mapping; give at least one {name: unlearn_fn}.")
    for name, fn in unlearn_fn.items():
        if not isinstance(name, str):
            raise TypeError(f"The keys of `unlearn_fn` should be method names (str), got {type(name).__name__} {name!r}.")
        _check_callable(f"unlearn_fn[{name!r}]", fn, signature)
    return dict(unlearn_fn)


# --------------------------------------------------------------------------------------------------------------
# attacks
# --------------------------------------------------------------------------------------------------------------


def _attack(
    target_stats: Tensor,
    positives: Tensor,
    negatives: Tensor,
    shadow_stats: Tensor,
    in_mask: Tensor,
    out_mask: Tensor,
    names: tuple[str, str],
    variant: str,
    fixed_variance: bool,
    min_std: float,
) -> tuple[Tensor, Tensor]:
    """Scores of the positive and negative entries of ``target_stats`` (only their columns are fitted)."""
    _check_score_args(variant, fixed_variance, min_std)
    _check_stats("target_stats", target_stats, (1, 2))
    if target_stats.shape[-1] != shadow_stats.shape[1]:
        raise ValueError(
            f"`target_stats` should have one value per pool example ({shadow_stats.shape[1]}), got shape {tuple(target_stats.shape)}."
        )
    for name, mask in zip(names, (positives, negatives), strict=True):
        _check_mask(name, mask, target_stats.shape, "target_stats")
        if not mask.any():
            raise ValueError(f"`{name}` selects no examples.")
    if (positives & negatives).any():
        raise ValueError(f"`{names[0]}` and `{names[1]}` overlap: an example cannot be both.")
    used = (positives | negatives).reshape(-1, target_stats.shape[-1]).any(0)
    index = torch.nonzero(used).flatten()
    scores = _scores(
        target_stats[..., index],
        shadow_stats[:, index],
        in_mask[:, index],
        out_mask[:, index],
        variant,
        fixed_variance,
        min_std,
        index,
    )
    return scores[positives[..., index]], scores[negatives[..., index]]


def lira(
    target_stats: Tensor,
    members: Tensor,
    nonmembers: Tensor,
    shadows: ShadowStats,
    *,
    variant: LiRAVariant = "online",
    fixed_variance: bool = True,
    min_std: float = 1e-3,
    fprs: Sequence[float] = DEFAULT_FPRS,
) -> dict[str, Any]:
    r"""LiRA against target model(s): :func:`lira_scores` with the shadows' IN/OUT split, then :func:`attack_roc`.

    Args:
        target_stats: :math:`\phi` of the target(s) on the pool (:func:`model_stats`), ``[N]`` or ``[T, N]``.
        members: Boolean mask of the shape of ``target_stats``: the target trained on the example.
        nonmembers: Boolean mask, disjoint from ``members``: the target never trained on it. Examples in neither
            mask are not scored.
        shadows: The references (:func:`train_shadows` without ``unlearn_fn``, or any :class:`ShadowStats`).
        variant, fixed_variance, min_std: See :func:`lira_scores`.
        fprs: FPR levels of :func:`attack_roc`.

    Returns:
        The :func:`attack_roc` dict (``auc``, ``tpr_at_1pct_fpr``, ...).
    """
    if not isinstance(shadows, ShadowStats):
        raise TypeError(f"`shadows` should be a ShadowStats (see `train_shadows`), got {type(shadows).__name__}.")
    pos, neg = _attack(
        target_stats, members, nonmembers, shadows.stats, shadows.in_mask, ~shadows.in_mask,
        ("members", "nonmembers"), variant, fixed_variance, min_std,
    )  # fmt: skip
    return attack_roc(pos, neg, fprs=fprs)


def ulira(
    target_stats: Tensor,
    forgotten: Tensor,
    nonmembers: Tensor,
    shadows: ShadowStats,
    *,
    variant: LiRAVariant = "online",
    fixed_variance: bool = True,
    min_std: float = 1e-3,
    fprs: Sequence[float] = DEFAULT_FPRS,
) -> dict[str, Any]:
    r"""U-LiRA (Hayes et al., arXiv:2403.01218) against unlearned target model(s).

    IN = shadows that trained on and unlearned the example (``shadows.unlearned_mask``), OUT = shadows that never
    trained on it (``~shadows.in_mask``); shadows that kept it are ignored for it. The positives (``forgotten``)
    are scored against the negatives (``nonmembers``); AUC 0.5 means the unlearned model cannot be told apart
    from retraining.

    Args:
        target_stats: :math:`\phi` of the unlearned target(s) on the pool, ``[N]`` or ``[T, N]``.
        forgotten: Boolean mask of the shape of ``target_stats``: the target trained on and then unlearned it.
        nonmembers: Boolean mask, disjoint from ``forgotten``: the target never trained on it. Both masks may only
            select forget candidates (examples some shadow unlearned).
        shadows: U-LiRA references: :func:`train_shadows` with the same ``unlearn_fn`` as the target.
        variant, fixed_variance, min_std: See :func:`lira_scores`.
        fprs: FPR levels of :func:`attack_roc`.

    Returns:
        The :func:`attack_roc` dict (``auc``, ``tpr_at_1pct_fpr``, ...).
    """
    if not isinstance(shadows, ShadowStats):
        raise TypeError(f"`shadows` should be a ShadowStats (see `train_shadows`), got {type(shadows).__name__}.")
    if shadows.unlearned_mask is None:
        raise ValueError("`shadows` have no `unlearned_mask`; train them with `train_shadows(..., unlearn_fn=...)` for U-LiRA.")
    pos, neg = _attack(
        target_stats, forgotten, nonmembers, shadows.stats, shadows.unlearned_mask, ~shadows.in_mask,
        ("forgotten", "nonmembers"), variant, fixed_variance, min_std,
    )  # fmt: skip
    return attack_roc(pos, neg, fprs=fprs)


def _drop_one(mask: Tensor, columns: Tensor, priority: Tensor) -> Tensor:
    """``mask`` with, in every selected column, its selected row of lowest ``priority`` deselected."""
    lowest = torch.where(mask, priority, float("inf")).argmin(0)
    drop = torch.zeros_like(mask)
    drop[lowest, torch.arange(mask.shape[1])] = True
    return mask & ~(drop & columns[None, :])


def leave_one_out(
    shadows: ShadowStats,
    *,
    variant: LiRAVariant = "online",
    fixed_variance: bool = True,
    min_std: float = 1e-3,
    balanced: bool = True,
    seed: int = 0,
    fprs: Sequence[float] = DEFAULT_FPRS,
) -> dict[str, Any]:
    r"""Each shadow in turn is the target, the others the references; scores of all targets share one ROC curve.

    LiRA shadows (no ``unlearned_mask``): positives are each target's IN examples, negatives its OUT examples.
    U-LiRA shadows: positives are the examples the target unlearned, negatives the forget candidates it never
    trained on (:func:`ulira`).

    With few shadows, plain leave-one-out is biased: a positive's Gaussians are fit to one IN reference fewer and
    one OUT reference more than a negative's (the target itself is missing from its own side), so positives score
    lower even when nothing leaks (on the toy of the tests, exact retraining gave AUC 0.46 with 12 shadows). With
    ``balanced`` (default), every scored example also loses one reference of the *other* side (a seeded random
    one), so positives and negatives are fit to the same numbers of IN and OUT references: ``k - 1`` IN and
    ``S - k_{in} - 1`` OUT, where ``k`` is the number of shadows that are IN (for U-LiRA: unlearned it) per
    example. ``k - 1`` must be at least 2 (the shared variance needs two references of some example), so ``k >= 3``:
    ``n_shadows >= 6`` for LiRA, and for U-LiRA ``round(forget_fraction * (n_shadows // 2)) >= 3`` (e.g. 16 shadows with
    ``forget_fraction=0.5``, or 8 with 0.75).

    Args:
        shadows: Shadows from :func:`train_shadows` (or any :class:`ShadowStats`).
        variant, fixed_variance, min_std: See :func:`lira_scores`.
        balanced: Drop one reference of the other side per example, as above.
        seed: Seed of which reference ``balanced`` drops.
        fprs: FPR levels of :func:`attack_roc`.

    Returns:
        The :func:`attack_roc` dict plus ``"n_targets"``.
    """
    if not isinstance(shadows, ShadowStats):
        raise TypeError(f"`shadows` should be a ShadowStats (see `train_shadows`), got {type(shadows).__name__}.")
    if not isinstance(balanced, bool):
        raise TypeError(f"`balanced` should be a bool, got {type(balanced).__name__} {balanced!r}.")
    check_int("seed", seed, minimum=0)
    # U-LiRA: IN = unlearned, negatives = candidates the target never trained on; LiRA: IN = trained on
    in_mask = shadows.unlearned_mask if shadows.unlearned_mask is not None else shadows.in_mask
    out_mask = ~shadows.in_mask
    names = ("forgotten", "nonmembers") if shadows.unlearned_mask is not None else ("members", "nonmembers")
    candidates = shadows.candidates if shadows.candidates is not None else torch.ones(shadows.n_examples, dtype=torch.bool)
    priority = torch.rand(shadows.stats.shape, generator=torch.Generator().manual_seed(seed))
    pos, neg = [], []
    for t in range(shadows.n_shadows):
        keep = torch.arange(shadows.n_shadows) != t
        positives, negatives = in_mask[t], candidates & out_mask[t]
        ref_in, ref_out = in_mask[keep], out_mask[keep]
        if balanced:
            ref_in = _drop_one(ref_in, negatives, priority[keep])
            ref_out = _drop_one(ref_out, positives, priority[keep])
        p, q = _attack(
            shadows.stats[t], positives, negatives, shadows.stats[keep], ref_in, ref_out, names, variant, fixed_variance,
            min_std,
        )  # fmt: skip
        pos.append(p)
        neg.append(q)
    out = attack_roc(torch.cat(pos), torch.cat(neg), fprs=fprs)
    out["n_targets"] = shadows.n_shadows
    return out


# --------------------------------------------------------------------------------------------------------------
# framework-native train / unlearn functions for train_shadows
# --------------------------------------------------------------------------------------------------------------


def _quiet_trainer(max_epochs: int, overrides: dict[str, Any] | None) -> Any:
    import lightning.pytorch as pl

    options: dict[str, Any] = dict(
        accelerator="cpu", devices=1, max_epochs=max_epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
    )  # fmt: skip
    options.update(overrides or {})
    return pl.Trainer(**options)


class SupervisedFit:
    """A ``train_fn`` for :func:`train_shadows`: :class:`~lightning_unlearn.SupervisedModule` and a quiet Trainer.

    Trains on shuffled batches of the dataset (the order follows the shadow's seeded RNG) and returns the model.

    Args:
        epochs: Trainer ``max_epochs``.
        lr: Learning rate.
        batch_size: Training batch size.
        optimizer: Optimizer class or factory called as ``optimizer(params, lr=lr)``.
        trainer_kwargs: Overrides of the Trainer options (default: one CPU device, no logger, checkpoints,
            progress bar or validation).
    """

    def __init__(
        self,
        epochs: int = 30,
        lr: float = 1e-3,
        batch_size: int = 32,
        optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.Adam,
        trainer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        check_int("epochs", epochs)
        check_positive("lr", lr)
        check_int("batch_size", batch_size)
        _check_callable("optimizer", optimizer, "(params, lr=...) -> torch.optim.Optimizer")
        self.epochs, self.lr, self.batch_size = epochs, lr, batch_size
        self.optimizer = optimizer
        self.trainer_kwargs = dict(trainer_kwargs or {})

    def __call__(self, model: nn.Module, dataset: Dataset) -> nn.Module:
        from lightning_unlearn.training import SupervisedModule

        loader = DataLoader(dataset, batch_size=self.batch_size, shuffle=True)
        module = SupervisedModule(model, optimizer=functools.partial(self.optimizer, lr=self.lr))
        _quiet_trainer(self.epochs, self.trainer_kwargs).fit(module, train_dataloaders=loader)
        return module.model


class MethodUnlearn:
    """An ``unlearn_fn`` for :func:`train_shadows`: an :class:`~lightning_unlearn.UnlearningModule` run.

    Builds a fresh method per shadow, pairs forget and retain batches with a
    :class:`~lightning_unlearn.ForgetRetainDataModule` (its shuffling seed drawn from the shadow's RNG) and runs
    ``Trainer.fit``; returns the unlearned model.

    Args:
        method: A registered method name (``"npo"``) or a zero-argument factory returning a new
            :class:`~lightning_unlearn.UnlearningMethod` (e.g. ``functools.partial(NPO, beta=0.1)``).
        epochs: Trainer ``max_epochs`` (with ``mode="min_size"`` one epoch is one pass over the forget set).
        lr: Learning rate.
        batch_size: Forget batch size (and retain batch size unless ``retain_batch_size`` is set).
        retain_batch_size: Retain batch size.
        mode: How forget and retain batches are paired (see :class:`~lightning_unlearn.ForgetRetainDataModule`).
        optimizer: Optimizer class or factory called as ``optimizer(params, lr=lr)``.
        trainer_kwargs: Overrides of the Trainer options.
    """

    def __init__(
        self,
        method: str | Callable[[], Any],
        epochs: int = 1,
        lr: float = 1e-3,
        batch_size: int = 32,
        retain_batch_size: int | None = None,
        mode: Literal["min_size", "max_size_cycle", "max_size"] = "min_size",
        optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.Adam,
        trainer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        from lightning_unlearn.methods import METHODS, UnlearningMethod

        if isinstance(method, UnlearningMethod):
            raise TypeError(
                f"`method` should be a method name or a factory that builds a fresh method per shadow (e.g. "
                f"`lambda: {type(method).__name__}(...)`), got an instance {method!r}."
            )
        if isinstance(method, str):
            METHODS.get(method)  # fail fast on an unknown name
        else:
            _check_callable("method", method, "() -> UnlearningMethod, or a registered method name")
        check_int("epochs", epochs)
        check_positive("lr", lr)
        check_int("batch_size", batch_size)
        check_int("retain_batch_size", retain_batch_size, optional=True)
        check_choice("mode", mode, ("min_size", "max_size_cycle", "max_size"))
        _check_callable("optimizer", optimizer, "(params, lr=...) -> torch.optim.Optimizer")
        self.method = method
        self.epochs, self.lr, self.batch_size, self.retain_batch_size, self.mode = epochs, lr, batch_size, retain_batch_size, mode
        self.optimizer = optimizer
        self.trainer_kwargs = dict(trainer_kwargs or {})

    def build_method(self) -> Any:
        """A fresh method instance."""
        from lightning_unlearn.methods import METHODS, UnlearningMethod

        method = METHODS.build(self.method) if isinstance(self.method, str) else self.method()
        if not isinstance(method, UnlearningMethod):
            raise TypeError(f"The `method` factory should return an UnlearningMethod, got {type(method).__name__}.")
        return method

    def __call__(self, model: nn.Module, forget: Dataset, retain: Dataset) -> nn.Module:
        from lightning_unlearn.datamodules.forget_retain import ForgetRetainDataModule
        from lightning_unlearn.module import UnlearningModule

        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        datamodule = ForgetRetainDataModule(
            forget=forget, retain=retain, batch_size=self.batch_size, retain_batch_size=self.retain_batch_size,
            mode=self.mode, seed=seed,
        )  # fmt: skip
        module = UnlearningModule(model, self.build_method(), optimizer=functools.partial(self.optimizer, lr=self.lr), monitor=False)
        _quiet_trainer(self.epochs, self.trainer_kwargs).fit(module, datamodule=datamodule)
        return module.model
