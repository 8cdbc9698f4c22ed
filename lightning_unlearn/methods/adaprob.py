"""AdaProb: fit the model to refined pseudo-probabilities on the forget set."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_int, check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.tasks.base import Task, evaluating

Pseudo = Literal["random", "uniform"]
_PSEUDO = {
    "random": "uniform random vectors normalised to sum 1 (the authors' refine_prediction.py)",
    "uniform": "the uniform distribution 1/C (the paper's abstract)",
}
Marginal = Literal["retain_prior", "stacked"]
_MARGINALS = {
    "retain_prior": "the retain data's predicted class marginal, rescaled to the number of stacked rows",
    "stacked": "the column sums of the stacked matrix itself (the released code; then the refinement is a no-op)",
}


# ---------------------------------------------------------------------------------------------- the projection
def refine_probabilities(
    probs: Tensor,
    col_sums: Tensor,
    *,
    row_sums: Tensor | None = None,
    weights: Tensor | None = None,
    num_iter: int = 10,
    num_newton: int = 30,
    tol: float = 1e-5,
) -> Tensor:
    """The weighted-KL projection of ``probs`` onto the matrices with given row and column sums.

    Solves ``min_M Σ_i w_i Σ_j M_ij·log(M_ij / A_ij)`` subject to ``Σ_j M_ij = r_i`` and
    ``Σ_i M_ij = c_j`` (``A = probs`` ``[N, C]``, non-negative; ``r`` defaults to ones, ``w`` to ones).
    Setting the Lagrangian's derivative to zero gives ``M_ij = A_ij · x_i · exp(u_j / w_i)``: a row
    factor ``x_i`` and, per class, one dual variable ``u_j`` (the released code's ``A/e`` and
    ``exp(-ν_j/w_i)``; the constant ``1/e`` is absorbed into ``x``). The solver alternates

    * rows: ``x_i = r_i / Σ_j A_ij·exp(u_j/w_i)`` (closed form), and
    * columns: for every class ``j`` a Newton solve of ``log Σ_i A_ij·x_i·exp(u_j/w_i) = log c_j``
      for ``u_j`` (at most ``num_newton`` steps, stopping when the step is below ``tol``).

    With equal weights the column solve is closed form and the loop is Sinkhorn scaling (one Newton
    step is exact because the equation is linear in ``u_j`` in log space); unequal weights are why
    the authors solve it per class by Newton. Everything runs in float64, in log space.

    Convergence: the outer loop runs at most ``num_iter`` times (10 in the released code) and stops
    early once the largest column-sum error, per row, ``max_j |Σ_i M_ij − c_j| / N``, is at most
    ``tol``. The returned ``M`` ends with a row update, so its rows sum to ``r`` exactly (to float64
    rounding) and its columns to ``c`` within that tolerance when converged; raise ``num_iter`` if
    :func:`marginal_error` of the result is above ``tol``.

    Args:
        probs: ``A`` ``[N, C]``, non-negative; every row and every column needs a positive entry.
        col_sums: ``c`` ``[C]``, positive, with ``Σ c = Σ r``.
        row_sums: ``r`` ``[N]``, positive (default: ones, i.e. rows are distributions).
        weights: ``w`` ``[N]``, positive per-row weights of the KL (default: ones).
        num_iter: Maximum number of outer (row, column) iterations.
        num_newton: Maximum Newton steps per column solve.
        tol: Newton step tolerance and outer column-sum tolerance (per row).

    Returns:
        ``M`` ``[N, C]`` in the dtype of ``probs``.
    """
    if probs.dim() != 2:
        raise ValueError(f"`probs` should be a matrix [N, C], got shape {tuple(probs.shape)}.")
    n, c = probs.shape
    if int(num_iter) < 1 or int(num_newton) < 1:
        raise ValueError(f"`num_iter` and `num_newton` should be >= 1, got {num_iter!r} and {num_newton!r}.")
    check_positive("tol", tol)
    a = probs.detach().to(torch.float64)
    if bool((a < 0).any()) or not bool(torch.isfinite(a).all()):
        raise ValueError("`probs` should be finite and non-negative.")
    if bool((a.sum(1) <= 0).any()) or bool((a.sum(0) <= 0).any()):
        raise ValueError("Every row and every column of `probs` needs a positive entry.")
    cols = col_sums.detach().to(torch.float64).reshape(-1)
    if cols.numel() != c or bool((cols <= 0).any()):
        raise ValueError(f"`col_sums` should hold {c} positive entries, got {cols.tolist()}.")
    rows = torch.ones(n, dtype=torch.float64) if row_sums is None else row_sums.detach().to(torch.float64).reshape(-1)
    if rows.numel() != n or bool((rows <= 0).any()):
        raise ValueError(f"`row_sums` should hold {n} positive entries.")
    if abs(float(rows.sum() - cols.sum())) > 1e-6 * float(rows.sum()):
        raise ValueError(
            f"The row sums total {float(rows.sum()):.6g} but `col_sums` totals {float(cols.sum()):.6g}; they must agree."
        )
    w = torch.ones(n, dtype=torch.float64) if weights is None else weights.detach().to(torch.float64).reshape(-1)
    if w.numel() != n or bool((w <= 0).any()):
        raise ValueError(f"`weights` should hold {n} positive entries.")
    a, rows, cols, w = (t.to(probs.device) for t in (a, rows, cols, w))

    log_a, log_r, log_c, inv_w = a.log(), rows.log(), cols.log(), (1.0 / w)[:, None]
    u = torch.zeros(c, dtype=torch.float64, device=a.device)

    def row_update(u: Tensor) -> Tensor:
        return log_r - torch.logsumexp(log_a + u[None, :] * inv_w, dim=1)

    for _ in range(int(num_iter)):
        log_x = row_update(u)
        base = log_a + log_x[:, None]
        for _ in range(int(num_newton)):
            terms = base + u[None, :] * inv_w
            h = torch.logsumexp(terms, dim=0) - log_c
            slope = (torch.softmax(terms, dim=0) * inv_w).sum(0)
            step = h / slope
            u = u - step
            if float(step.abs().max()) <= tol:
                break
        log_x = row_update(u)
        m = torch.exp(log_a + log_x[:, None] + u[None, :] * inv_w)
        if float((m.sum(0) - cols).abs().max()) / n <= tol:
            break
    m = torch.exp(log_a + row_update(u)[:, None] + u[None, :] * inv_w)
    return m.to(probs.dtype)


def marginal_error(matrix: Tensor, col_sums: Tensor) -> float:
    """``max_j |Σ_i M_ij − c_j| / N``: the column-sum error per row that :func:`refine_probabilities` stops at."""
    return float((matrix.double().sum(0) - col_sums.double().to(matrix.device)).abs().max()) / matrix.shape[0]


# ---------------------------------------------------------------------------------------------- sample keys
def sample_keys(inputs: Tensor) -> Tensor:
    """A 64-bit content hash of every sample of a batch ``[B, ...]``, as an int64 tensor ``[B]``.

    Forget batches carry no sample index, and training batches are shuffled, so AdaProb finds each
    forget sample's refined target by the bytes of its input: BLAKE2b (8 bytes) of the sample's
    values as float32 (floating inputs) or int64 (integer inputs), on the CPU. The key is the same
    whatever the device or the batch the sample arrives in, but it changes if the input changes:
    random data augmentation, or a precision plugin that casts inputs (``"bf16-true"``), break the
    lookup (use ``pseudo="uniform"``, which needs none).
    """
    x = inputs.detach()
    x = x.to(torch.float32) if x.is_floating_point() else x.to(torch.int64)
    flat = x.cpu().contiguous().reshape(x.shape[0], -1).numpy()
    return torch.tensor(
        [int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little", signed=True) for row in flat],
        dtype=torch.int64,
    )


def pseudo_probabilities(kind: Pseudo, n: int, num_classes: int, seed: int = 0) -> Tensor:
    """AdaProb's pseudo-probabilities ``[n, C]`` (float64) for the forget rows.

    ``"uniform"``: every row ``1/C``. ``"random"``: i.i.d. ``U[0, 1)`` entries, each row divided by
    its sum (the released code's ``rand_like`` / ``sum``), drawn from a generator seeded by ``seed``.
    """
    check_choice("pseudo", kind, _PSEUDO)
    if kind == "uniform":
        return torch.full((n, num_classes), 1.0 / num_classes, dtype=torch.float64)
    draws = torch.rand(n, num_classes, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return draws / draws.sum(1, keepdim=True)


@torch.no_grad()
def _predicted_probs(model: nn.Module, task: Task, loader: Iterable, device: torch.device) -> tuple[Tensor, Tensor]:
    """Softmax of the model over a loader ``[N, C]`` (float64, CPU) and the inputs' :func:`sample_keys` ``[N]``."""
    probs, keys = [], []
    for batch in loader:
        keys.append(sample_keys(task.inputs(batch) if hasattr(task, "inputs") else batch[0]))  # type: ignore[attr-defined]
        batch = move_data_to_device(batch, device)
        probs.append(torch.softmax(task.forward(model, batch).double(), dim=-1).cpu())
    if not probs:
        return torch.zeros(0, 0, dtype=torch.float64), torch.zeros(0, dtype=torch.int64)
    return torch.cat(probs), torch.cat(keys)


# ---------------------------------------------------------------------------------------------- the method
@register_method(name="adaprob")
class AdaProb(UnlearningMethod):
    """AdaProb: adaptive (refined) pseudo-probabilities for the forget set.

    Zhao, Yang, Field, Cao, "AdaProb: Efficient Machine Unlearning via Adaptive Probability",
    arXiv 2411.02622 (preprint; v1 titled "Pseudo-Probability Unlearning", PPU, by Zhao, Li, Yang,
    Zhang, Vasconcelos, Cao); code basis ``zzhao71/AdaProb`` (``refine_prediction.py``).

    1. ``A = [P_r; P̃_f]``: the original model's softmax on the retain data (``P_r``, one pass over
       the retain loader in :meth:`prepare`) stacked on pseudo-probabilities for the forget samples
       (``pseudo="random"``: uniform random vectors normalised to sum 1, seeded by ``seed``, as in
       the released code; ``"uniform"``: ``1/C``, as in the abstract).
    2. Target class marginal ``c``.
    3. ``M = argmin Σ_i w_i·KL(M_i ‖ A_i)`` with rows summing to 1 and columns to ``c``
       (:func:`refine_probabilities`: alternating row scaling and per-class Newton solves).
    4. Train the model towards ``M``: ``L_f = mean_i KL(M_i ‖ softmax f(x_i))`` on forget batches
       (soft-label cross-entropy minus the constant entropy of ``M_i``, so ``L_f ≥ 0`` with equality
       at the target), plus the base's retain term (``"nll"`` on retain batches by default).

    What is reconstructed, and why. In the released code ``c`` is the column sum of ``A`` itself,
    which ``A`` already satisfies, so the projection returns ``A`` (``marginal="stacked"`` keeps that
    behaviour: the forget targets are just the pseudo-probabilities). A commented-out line there
    moves mass out of the forgotten class, i.e. ``c`` is meant to be the class distribution *after*
    unlearning. The default ``marginal="retain_prior"`` makes that explicit:
    ``c = (N / N_r)·Σ_{i∈r} P_r[i]``, the retain data's predicted class marginal rescaled to the
    ``N = N_r + N_f`` stacked rows. Since the retain rows already contribute ``N_r/N`` of ``c``, the
    forget rows are pushed to the retained-class prior (with forgotten classes absent from the
    retain data, their mass on those classes goes to ≈ 0). The row weights ``w`` (retain rows
    ``retain_row_weight``, forget rows 1; all 1 in the released code) set how much the retain rows
    move versus the forget rows. Refined *retain* rows are not used: the loss is not published, and
    the retain term is the base's. Without a retain loader, ``A`` holds only the pseudo rows and
    ``c`` is their own column sum (nothing tells the retained prior), so the targets are the
    pseudo-probabilities.

    Targets are computed once, in :meth:`prepare`, keyed by :func:`sample_keys` (a hash of each
    forget input; batches carry no index) and saved in checkpoints (declared with :meth:`add_state`), so a
    resumed run uses the same targets. With ``pseudo="uniform"`` and all forget rows weighing the
    same, every refined forget row is the same vector, so no lookup is needed (robust to data
    augmentation). Identical forget inputs share one target.

    Args:
        pseudo: Pseudo-probabilities of the forget samples: ``"random"`` (released code) or ``"uniform"`` (abstract).
        marginal: Target class marginal ``c``: ``"retain_prior"`` (reconstruction, default) or
            ``"stacked"`` (the released code's column sums of ``A``, a no-op refinement).
        retain_row_weight: ``w`` of the retain rows in the weighted KL (forget rows weigh 1). Larger
            keeps the retain rows at the model's predictions so the forget rows absorb the change.
        num_iter: Maximum outer iterations of the projection (10 in the released code).
        num_newton: Maximum Newton steps per class and iteration (30 in the released code).
        tol: Newton step tolerance and column-sum tolerance per row (1e-5 in the released code).
        forget_weight: Weight of the forget KL.
        retain_weight: Weight of the retain term.
        retain_loss: ``"nll"``, ``"kl"`` or ``"none"``.
        mask: Optional parameter mask.
        seed: Seed of the random pseudo-probabilities.
    """

    #: Class labels / class probabilities: not defined for causal LMs.
    supported_tasks = ("classification",)

    def __init__(
        self,
        pseudo: Pseudo = "random",
        marginal: Marginal = "retain_prior",
        retain_row_weight: float = 1.0,
        num_iter: int = 10,
        num_newton: int = 30,
        tol: float = 1e-5,
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_choice("pseudo", pseudo, _PSEUDO)
        check_choice("marginal", marginal, _MARGINALS)
        check_positive("retain_row_weight", retain_row_weight)
        check_int("num_iter", num_iter)
        check_int("num_newton", num_newton)
        check_positive("tol", tol)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.pseudo = pseudo
        self.marginal = marginal
        self.retain_row_weight = float(retain_row_weight)
        self.num_iter = int(num_iter)
        self.num_newton = int(num_newton)
        self.tol = float(tol)
        # The refined targets of the forget samples and their keys (input hashes), in forget-loader order.
        self.add_state("keys", None)
        self.add_state("targets", None)
        self.add_state("class_marginal", None)
        self._index: dict[int, int] = {}  # key -> row of `targets`, rebuilt from `keys` when they change
        self._indexed: Tensor | None = None

    # ------------------------------------------------------------------ preparation
    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        if forget_loader is None:
            raise ValueError("AdaProb needs the forget data in `setup` to build its refined targets; pass the forget loader.")
        device = next(model.parameters()).device
        with evaluating(model):
            forget_probs, keys = _predicted_probs(model, task, forget_loader, device)
            retain_probs = _predicted_probs(model, task, retain_loader, device)[0] if retain_loader is not None else None
        if keys.numel() == 0:
            raise ValueError("AdaProb got an empty forget loader; the forget set must not be empty.")
        n_f, num_classes = forget_probs.shape
        pseudo = pseudo_probabilities(self.pseudo, n_f, num_classes, self.seed)
        if retain_probs is None or retain_probs.numel() == 0:
            stacked, weights, n_r = pseudo, torch.ones(n_f, dtype=torch.float64), 0
            col_sums = pseudo.sum(0)
        else:
            n_r = retain_probs.shape[0]
            stacked = torch.cat([retain_probs, pseudo])
            weights = torch.cat(
                [torch.full((n_r,), self.retain_row_weight, dtype=torch.float64), torch.ones(n_f, dtype=torch.float64)]
            )
            col_sums = stacked.sum(0) if self.marginal == "stacked" else retain_probs.sum(0) * (stacked.shape[0] / n_r)
        refined = refine_probabilities(
            stacked, col_sums, weights=weights, num_iter=self.num_iter, num_newton=self.num_newton, tol=self.tol
        )
        self.class_marginal = col_sums.float()
        self.keys, self.targets = keys, refined[n_r:].float()

    # ------------------------------------------------------------------ targets and loss
    @property
    def refined_targets(self) -> Tensor:
        """Refined targets of the forget samples ``[N_f, C]``, in forget-loader order."""
        if self.targets is None:
            raise RuntimeError("AdaProb has no refined targets yet; call `setup` (the Trainer does) first.")
        return self.targets

    def _row_index(self) -> dict[int, int]:
        """``{key: row}``, rebuilt whenever ``keys`` was replaced (by :meth:`prepare` or a checkpoint)."""
        if self._indexed is not self.keys:
            self._index = {int(k): i for i, k in enumerate(self.keys.tolist())} if self.keys is not None else {}
            self._indexed = self.keys
        return self._index

    def targets_for(self, inputs: Tensor) -> Tensor:
        """The refined target of every sample of a forget batch's inputs ``[B, ...]`` → ``[B, C]``."""
        table = self.refined_targets
        if self.pseudo == "uniform":
            # every forget row has the same pseudo row and weight, hence the same refined row
            return table[:1].expand(inputs.shape[0], -1)
        rows = []
        index = self._row_index()
        for key in sample_keys(inputs).tolist():
            row = index.get(int(key))
            if row is None:
                raise KeyError(
                    "A forget sample was not seen when AdaProb built its targets (its input hash is unknown). "
                    "Random data augmentation or an input-casting precision plugin changes the inputs; "
                    "train the forget set without them, or use pseudo='uniform', which needs no lookup."
                )
            rows.append(row)
        return table[torch.tensor(rows, device=table.device)]

    def forget_loss(self, ctx: StepContext) -> Tensor:
        logits = ctx.outputs("forget")
        inputs = ctx.task.inputs(ctx.forget) if hasattr(ctx.task, "inputs") else ctx.forget[0]  # type: ignore[attr-defined]
        targets = self.targets_for(inputs).to(logits.device)
        return soft_kl(targets, logits).mean()


def soft_kl(targets: Tensor, logits: Tensor) -> Tensor:
    """``KL(t ‖ softmax(logits))`` per row ``[B]`` (``0·log 0 = 0``)."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    t = targets.float()
    return (torch.xlogy(t, t) - t * log_p).sum(-1)
