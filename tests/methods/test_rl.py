"""RL: L = γ·CE(θ; x_f, ỹ) + α·CE(θ; D_r), ỹ uniform over the other classes, seeded by (seed, step)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from toys import NUM_CLASSES

from lightning_unlearn.methods import METHODS, RandomLabel, StepContext
from lightning_unlearn.tasks import ClassificationTask

from ._toy import batch, context, pretrained


class _SpyTask(ClassificationTask):
    """Records the relabelled targets."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[torch.Tensor] = []

    def relabel(self, outputs, batch, generator=None):
        labels = super().relabel(outputs, batch, generator)
        self.labels.append(labels)
        return labels


def _labels(method: RandomLabel, forget, step: int) -> torch.Tensor:
    task = _SpyTask()
    method.loss(StepContext(model=pretrained(), task=task, forget=forget, retain=None, global_step=step))
    (labels,) = task.labels
    return labels


def test_registered():
    assert METHODS.get("rl") is RandomLabel
    assert RandomLabel.uses_forget and not RandomLabel.needs_reference


def test_labels_differ_from_the_true_ones():
    forget = batch(n=64, seed=1)
    for step in range(5):
        labels = _labels(RandomLabel(), forget, step)
        assert bool((labels != forget[1]).all())
        assert int(labels.min()) >= 0 and int(labels.max()) < NUM_CLASSES


def test_labels_are_identical_for_the_same_global_step():
    forget = batch(n=64, seed=1)
    assert torch.equal(_labels(RandomLabel(), forget, 3), _labels(RandomLabel(), forget, 3))
    assert not torch.equal(_labels(RandomLabel(), forget, 3), _labels(RandomLabel(), forget, 4))
    assert not torch.equal(_labels(RandomLabel(seed=0), forget, 3), _labels(RandomLabel(seed=1), forget, 3))


def test_loss_against_the_closed_form():
    model, forget, retain = pretrained(), batch(n=16, seed=1, label=3), batch(seed=2)
    method = RandomLabel(forget_weight=0.5, retain_weight=2.0, seed=7)
    out = method.loss(context(method, model, forget, retain, global_step=11))
    generator = torch.Generator().manual_seed(7 * 1_000_003 + 11)
    labels = (forget[1] + torch.randint(1, NUM_CLASSES, forget[1].shape, generator=generator)) % NUM_CLASSES
    ce_f = F.cross_entropy(model(forget[0]), labels)
    ce_r = F.cross_entropy(model(retain[0]), retain[1])
    torch.testing.assert_close(out.parts["forget_loss"], ce_f.detach())
    torch.testing.assert_close(out.loss, 0.5 * ce_f + 2.0 * ce_r)


def test_needs_a_task_with_labels():
    class NoLabels(ClassificationTask):
        supports_relabel = False

    method = RandomLabel()
    ctx = StepContext(model=pretrained(), task=NoLabels(), forget=batch(), retain=None)
    with pytest.raises(ValueError, match="Random labeling needs a task with labels; NoLabels has none"):
        method.loss(ctx)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"forget_weight": -1}, "`forget_weight` should be >= 0, got -1"),
        ({"retain_weight": -1}, "`retain_weight` should be >= 0, got -1"),
        ({"retain_loss": "l2"}, r"`retain_loss` should be one of \['kl', 'nll', 'none'\], got 'l2'"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandomLabel(**kwargs)
