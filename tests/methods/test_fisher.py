"""Fisher forgetting: θ ← θ + sqrt(v)·ε with v = α·min(1/(F + 1e-8), cap) (row-averaged, ×10 on the output layer and
1-D tensors); the output rows of a forgotten class are set to 0 (variance 1e-4)."""

from __future__ import annotations

import pytest
import torch

from lightning_unlearn.methods import METHODS, FisherForgetting, fisher_noise_variance, forgotten_classes
from lightning_unlearn.methods.one_shot import diagonal_importance
from lightning_unlearn.tasks import ClassificationTask

from ._toy import batch, blobs, context, pretrained, snapshot


def test_registered():
    assert METHODS.get("fisher") is FisherForgetting
    assert FisherForgetting.uses_forget and not FisherForgetting.needs_reference


def test_noise_variance_closed_form():
    fisher = torch.tensor([[1.0, 1e-12], [4.0, 0.5]])
    var = fisher_noise_variance(fisher, 0.1, output_layer=False)
    # 1/(F + 1e-8) capped at 1e3, × α, then the mean over each row
    row0 = 0.1 * (1 / (1 + 1e-8) + 1e3) / 2
    row1 = 0.1 * (1 / (4 + 1e-8) + 1 / (0.5 + 1e-8)) / 2
    torch.testing.assert_close(var, torch.tensor([[row0, row0], [row1, row1]]))
    head = fisher_noise_variance(fisher, 0.1, output_layer=True)  # cap 1e2, ×10
    row0 = 10 * 0.1 * (1 / (1 + 1e-8) + 1e2) / 2
    torch.testing.assert_close(head[0], torch.tensor([row0, row0]))
    bias = fisher_noise_variance(torch.tensor([2.0, 1e-12]), 0.1, output_layer=False)  # 1-D: no row mean, ×10
    torch.testing.assert_close(bias, torch.tensor([10 * 0.1 * 0.5 / (1 + 0.5e-8), 10 * 0.1 * 1e3]))


def test_forgotten_classes_are_those_without_retain_samples():
    x, y = blobs().tensors
    task = ClassificationTask()
    forget, retain = (x[y == 3], y[y == 3]), (x[y != 3], y[y != 3])
    assert forgotten_classes(task, [forget], [retain], torch.device("cpu")) == [3]
    assert forgotten_classes(task, [(x[:5], y[:5])], [(x[5:], y[5:])], torch.device("cpu")) == []


@pytest.mark.parametrize("label", [3, None])
def test_edit_against_the_closed_form(label):
    model = pretrained()
    x, y = blobs().tensors
    if label is None:  # a random request: no class is forgotten
        forget, retain = (x[:12], y[:12]), (x[12:], y[12:])
    else:
        forget, retain = (x[y == label], y[y == label]), (x[y != label], y[y != label])
    task = ClassificationTask()
    method = FisherForgetting(alpha=1e-6, seed=7)
    method.setup(model, task, [forget], [retain])
    before = snapshot(model)
    fisher, _, _ = diagonal_importance(model, task, [retain], "fisher")
    out = method.loss(context(method, model, forget, retain))
    assert float(out.loss.detach()) == 0.0 and method.edited
    generator = torch.Generator().manual_seed(7)
    for name, param in model.named_parameters():
        head = name.startswith("head.")
        var = fisher_noise_variance(fisher[name], 1e-6, output_layer=head)
        mean = before[name].clone()
        if head and label is not None:
            mean[label], var[label] = 0.0, 1e-4
        torch.testing.assert_close(param.detach(), mean + var.sqrt() * torch.randn(param.shape, generator=generator))
    assert method.edit_stats["forgotten_classes"] == ([] if label is None else [label])
    edited = snapshot(model)
    method.loss(context(method, model, forget, retain))  # the edit is made once
    assert all(torch.equal(edited[k], v) for k, v in snapshot(model).items())


def test_needs_both_loaders():
    method = FisherForgetting()
    with pytest.raises(ValueError, match="Fisher forgetting needs the forget and retain data; pass the retain loader"):
        method.setup(pretrained(), ClassificationTask(), [batch()], None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"alpha": 0}, "`alpha` should be > 0, got 0"), ({"max_batches": 0}, "`max_batches` should be an int >= 1 or None, got 0"), ({"forget_weight": 0}, "`forget_weight` should be > 0")],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FisherForgetting(**kwargs)
