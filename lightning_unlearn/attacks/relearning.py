"""Relearning attack: do a few fine-tuning steps on a little forget data bring the rest back?

A model that only *hides* the forget data (a suppressed output, an obfuscated representation)
keeps what it needs to answer, and a handful of gradient steps on a small, even partial or merely
related, sample unlocks it again, including on forget samples the attacker never used. A model that
really does not know them (the retrained oracle) has to learn them from scratch and regains far less
from the same steps. Papers:

- Hu, Fu, Wu, Smith, "Jogging the Memory of Unlearned LLMs Through Targeted Relearning Attacks"
  (arXiv:2406.13356; later versions titled "Unlearning or Obfuscating? Jogging the Memory of
  Unlearned LLMs via Benign Relearning", ICLR 2025): small relearning sets, part of the forget set or
  loosely related public text, restore unlearned knowledge on WMDP, TOFU and Who's Harry Potter.
- Deeb, Roger, "Do Unlearning Methods Remove Information from Language Model Weights?"
  (arXiv:2410.08827): fine-tuning on some of the forgotten facts and measuring the *other* facts
  (retraining on T) recovers 88% of the pre-unlearning accuracy for current LLM unlearning methods.
  :func:`split_forget` builds that split.

:class:`RelearningAttack` fine-tunes a copy for a fixed number of optimizer steps on the task's own
loss; :func:`split_forget` splits a forget set into the part the attacker fine-tunes on and the
held-out part on which recovery is measured (:func:`~lightning_unlearn.attacks.recovery.recovery`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler, Subset

from lightning_unlearn._errors import check_choice, check_fraction, check_int, check_positive
from lightning_unlearn.tasks.base import Task

__all__ = ["RELEARNING_OPTIMIZERS", "RelearningAttack", "RelearningOptimizer", "split_forget"]

RelearningOptimizer = Literal["adam", "sgd", "adamw"]
#: The optimizers :class:`RelearningAttack` can use, by name (constructed with ``lr`` only).
RELEARNING_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
    "adamw": torch.optim.AdamW,
}


def _check_map_style(name: str, data: Any) -> None:
    if isinstance(data, IterableDataset):
        raise TypeError(
            f"`{name}` should be a map-style dataset (with __len__ and __getitem__); got an IterableDataset "
            f"({type(data).__name__}). Wrap it in a DataLoader instead."
        )
    if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        raise TypeError(f"`{name}` should be a map-style dataset (with __len__ and __getitem__), got {type(data).__name__}.")


def split_forget(dataset: Dataset, relearn_fraction: float = 0.5, seed: int = 0) -> tuple[Subset, Subset]:
    """Split a forget set at random into a relearning part and a held-out part.

    The attacker fine-tunes on the first part; recovery is measured on the second, so that what
    comes back is knowledge the attacker did not feed in again. The parts are disjoint, cover the
    dataset, hold ``round(relearn_fraction * len(dataset))`` and the remaining samples, and depend
    only on ``seed`` (indices within each part are sorted).

    Args:
        dataset: A map-style dataset (anything with ``__len__`` and ``__getitem__``).
        relearn_fraction: Share of the samples in the relearning part, in (0, 1).
        seed: Seed of the random permutation.

    Returns:
        ``(relearn_subset, heldout_subset)`` as :class:`torch.utils.data.Subset`.

    Raises:
        ValueError: If either part would be empty.
    """
    _check_map_style("dataset", dataset)
    check_fraction("relearn_fraction", relearn_fraction, inclusive_high=False)
    check_int("seed", seed, minimum=0)
    size = len(dataset)
    relearn_size = round(relearn_fraction * size)
    if relearn_size < 1 or relearn_size > size - 1:
        raise ValueError(
            f"`relearn_fraction` = {relearn_fraction!r} of a forget set of {size} samples leaves "
            f"{relearn_size} to relearn on and {size - relearn_size} held out; both parts should be non-empty."
        )
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    relearn, heldout = order[:relearn_size].sort().values, order[relearn_size:].sort().values
    return Subset(dataset, relearn.tolist()), Subset(dataset, heldout.tolist())


class RelearningAttack:
    r"""Fine-tune a copy of the model for a few steps on (part of) the forget data: ``attack(model, task, data)``.

    The fine-tuning attacker of Hu et al., "Jogging the Memory of Unlearned LLMs Through Targeted
    Relearning Attacks" (arXiv:2406.13356, ICLR 2025 as "Unlearning or Obfuscating? ... Benign
    Relearning") and of Deeb and Roger's retraining on part of the forget set (arXiv:2410.08827), on
    any :class:`~lightning_unlearn.tasks.base.Task`: a deep copy of ``model`` takes exactly ``steps``
    optimizer steps on the mean loss of each batch,

    .. math:: \mathcal{L}(\theta) = \frac{1}{B} \sum_{i=1}^{B} \ell_\theta(x_i, y_i),

    with ``ℓ = task.per_sample_loss(task.forward(model, batch), batch)`` (cross-entropy for
    classification, the mean answer-token NLL for a causal LM), cycling over ``data`` as often as
    needed. What this reconstructs is the papers' plain fine-tuning attacker; their relearning sets
    (public articles, partial forget answers) are whatever ``data`` the caller passes, e.g. the
    relearning part of :func:`split_forget`. It is a plain PyTorch loop, no Trainer: the copy stays on
    the model's device and dtype, is in train mode during the steps (dropout active) and is returned in
    eval mode. The attacker owns the weights, so *every* floating-point parameter of the copy is
    trained, whatever its ``requires_grad`` flag (flags that froze parts of the unlearned model are
    restored on the returned copy). ``model`` itself is never modified.

    Runs are reproducible: a map-style dataset is shuffled with a ``torch.Generator`` seeded with
    ``seed``, and the whole loop runs under a forked global RNG seeded with ``seed`` (dropout, and the
    shuffling of a ``DataLoader`` passed in without its own generator), which leaves the caller's
    global RNG untouched.

    Args:
        steps: Number of optimizer steps.
        lr: Learning rate.
        batch_size: Samples per step when ``data`` is a dataset (a ``DataLoader`` keeps its own).
        optimizer: ``"adam"``, ``"sgd"`` (no momentum) or ``"adamw"`` (PyTorch's default weight decay),
            built with ``lr`` only.
        seed: Seed of the shuffling and of the global RNG during the steps.
        collate_fn: How a dataset passed as ``data`` is batched (default: PyTorch's default collation); e.g. the
            :class:`~lightning_unlearn.tasks.QACollator` of a causal LM or the
            :class:`~lightning_unlearn.datamodules.vqa.VQACollator` of a vision-language model.

    Raises:
        RuntimeError: From a call, if the loss is not finite at some step.
    """

    def __init__(
        self,
        steps: int = 10,
        lr: float = 1e-3,
        batch_size: int = 16,
        optimizer: RelearningOptimizer = "adam",
        seed: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"`collate_fn` should be a callable(samples) -> batch or None, got {type(collate_fn).__name__}.")
        self.collate_fn = collate_fn
        self.steps = check_int("steps", steps)
        self.lr = check_positive("lr", lr)
        self.batch_size = check_int("batch_size", batch_size)
        self.optimizer = check_choice("optimizer", optimizer, RELEARNING_OPTIMIZERS)
        self.seed = check_int("seed", seed, minimum=0)

    @property
    def name(self) -> str:
        """A short label, e.g. ``"relearn-adam-10steps-lr0.001"``."""
        return f"relearn-{self.optimizer}-{self.steps}steps-lr{self.lr:g}"

    def _loader(self, data: Any) -> DataLoader:
        if isinstance(data, DataLoader):
            return data
        _check_map_style("data", data)
        if len(data) == 0:
            raise ValueError("`data` should hold at least one sample to relearn on; it is empty.")
        sampler = RandomSampler(data, generator=torch.Generator().manual_seed(self.seed))
        return DataLoader(data, batch_size=self.batch_size, sampler=sampler, collate_fn=self.collate_fn)

    def __call__(self, model: nn.Module, task: Task, data: Dataset | DataLoader) -> nn.Module:
        """Return a copy of ``model`` fine-tuned for ``steps`` steps on ``data`` (see the class docstring).

        Args:
            model: The (unlearned) model to attack; it is not modified.
            task: How to run the model on a batch and score it.
            data: The relearning data: a map-style dataset (batched with ``batch_size`` and ``collate_fn``)
                or a ``DataLoader`` (used as it is, e.g. with a ``QACollator``).
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` should be a torch.nn.Module, got {type(model).__name__}.")
        if not isinstance(task, Task):
            raise TypeError(f"`task` should be a lightning_unlearn Task, got {type(task).__name__}.")
        loader = self._loader(data)
        attacked = copy.deepcopy(model)
        parameters = [p for p in attacked.parameters() if p.is_floating_point()]
        if not parameters:
            raise ValueError("`model` has no floating-point parameters to fine-tune.")
        device = parameters[0].device
        flags = [p.requires_grad for p in parameters]
        for p in parameters:
            p.requires_grad_(True)
        optimizer = RELEARNING_OPTIMIZERS[self.optimizer](parameters, lr=self.lr)
        cuda = [device.index or 0] if device.type == "cuda" else []
        attacked.train()
        with torch.random.fork_rng(devices=cuda):
            torch.default_generator.manual_seed(self.seed)  # only the RNGs forked here (not every GPU's)
            if cuda:
                with torch.cuda.device(device):
                    torch.cuda.manual_seed(self.seed)
            batches = iter(loader)
            for step in range(self.steps):
                batch = next(batches, None)
                if batch is None:  # end of an epoch: start the next one
                    batches = iter(loader)
                    batch = next(batches, None)
                    if batch is None:
                        raise ValueError("`data` should yield at least one batch; its DataLoader is empty.")
                batch = move_data_to_device(batch, device)
                loss = task.per_sample_loss(task.forward(attacked, batch), batch).mean()
                if not torch.isfinite(loss):
                    raise RuntimeError(
                        f"The relearning loss is not finite ({loss.item()}) at step {step + 1} of {self.steps}; "
                        f"lower `lr` ({self.lr:g}) or check the model and the data."
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for p, flag in zip(parameters, flags):
            p.requires_grad_(flag)
        return attacked.eval()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(steps={self.steps}, lr={self.lr}, batch_size={self.batch_size}, "
            f"optimizer={self.optimizer!r}, seed={self.seed})"
        )
