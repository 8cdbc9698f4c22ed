"""ClassificationTask: the primitives against torch / scipy references, relabelling, features, errors."""

from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import log_softmax as scipy_log_softmax
from scipy.stats import entropy as scipy_kl
from torch import nn

from lightning_unlearn.tasks import ClassificationTask, Task, capture_features

C = 5


def _logits(n: int = 16, c: int = C, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed)) * 3


def _targets(n: int = 16, c: int = C, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed))


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(body=nn.Sequential(nn.Linear(3, 6), nn.ReLU()), head=nn.Linear(6, C)))


# ---------------------------------------------------------------------------------- losses
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_per_sample_loss_is_cross_entropy(smoothing):
    task = ClassificationTask(label_smoothing=smoothing)
    logits, y = _logits(), _targets()
    loss = task.per_sample_loss(logits, (None, y))
    assert loss.shape == (16,)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y, reduction="none", label_smoothing=smoothing))


def test_per_sample_loss_with_other_targets():
    task = ClassificationTask()
    logits, y, other = _logits(), _targets(), _targets(seed=7)
    torch.testing.assert_close(task.per_sample_loss(logits, (None, y), other), F.cross_entropy(logits, other, reduction="none"))


def test_per_sample_loss_upcasts_half_precision():
    task = ClassificationTask()
    logits, y = _logits().to(torch.bfloat16), _targets()
    loss = task.per_sample_loss(logits, (None, y))
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, F.cross_entropy(logits.float(), y, reduction="none"))


def test_log_likelihood_against_scipy():
    task = ClassificationTask()
    logits, y = _logits(), _targets()
    expected = scipy_log_softmax(logits.numpy(), axis=-1)[np.arange(16), y.numpy()]
    ll = task.log_likelihood(logits, (None, y))
    np.testing.assert_allclose(ll.numpy(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ll, -task.per_sample_loss(logits, (None, y)))
    other = _targets(seed=3)
    expected_other = scipy_log_softmax(logits.numpy(), axis=-1)[np.arange(16), other.numpy()]
    np.testing.assert_allclose(task.log_likelihood(logits, (None, y), other).numpy(), expected_other, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 4.0, 0.5])
def test_kl_divergence_is_kl_reference_to_model(temperature):
    task = ClassificationTask()
    model_logits, reference_logits = _logits(seed=0), _logits(seed=1)
    kl = task.kl_divergence(model_logits, reference_logits, None, temperature=temperature)
    p_model = torch.softmax(model_logits.double() / temperature, -1).numpy()
    p_reference = torch.softmax(reference_logits.double() / temperature, -1).numpy()
    expected = scipy_kl(p_reference, p_model, axis=-1)  # KL(p_reference || p_model)
    assert kl.shape == (16,)
    np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-4, atol=1e-6)
    assert bool((kl >= 0).all())


def test_kl_divergence_is_zero_for_the_same_outputs_and_asymmetric():
    task = ClassificationTask()
    a, b = _logits(seed=0), _logits(seed=1)
    torch.testing.assert_close(task.kl_divergence(a, a, None), torch.zeros(16), atol=1e-6, rtol=0)
    assert not torch.allclose(task.kl_divergence(a, b, None), task.kl_divergence(b, a, None))


def test_kl_divergence_temperature_flattens():
    task = ClassificationTask()
    a, b = _logits(seed=0), _logits(seed=1)
    assert float(task.kl_divergence(a, b, None, temperature=10.0).mean()) < float(task.kl_divergence(a, b, None).mean())


# ---------------------------------------------------------------------------------- relabelling
def test_relabel_never_returns_the_true_label():
    task = ClassificationTask()
    y = torch.arange(C).repeat(200)
    new = task.relabel(torch.zeros(len(y), C), (None, y), torch.Generator().manual_seed(0))
    assert new.shape == y.shape and new.dtype == y.dtype
    assert bool((new != y).all())
    assert int(new.min()) >= 0 and int(new.max()) < C
    # every other class is drawn, roughly uniformly
    for c in range(C):
        counts = torch.bincount(new[y == c], minlength=C)
        assert counts[c] == 0 and bool((counts[torch.arange(C) != c] > 25).all())


def test_relabel_is_reproducible_with_a_generator():
    task = ClassificationTask()
    y = _targets(n=64)
    a = task.relabel(_logits(64), (None, y), torch.Generator().manual_seed(5))
    b = task.relabel(_logits(64), (None, y), torch.Generator().manual_seed(5))
    c = task.relabel(_logits(64), (None, y), torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_relabel_uses_num_classes_over_the_logits():
    y = torch.zeros(300, dtype=torch.long)
    new = ClassificationTask(num_classes=3).relabel(torch.zeros(300, 7), (None, y), torch.Generator().manual_seed(0))
    assert set(new.tolist()) == {1, 2}
    assert ClassificationTask.supports_relabel and not Task.supports_relabel


# ---------------------------------------------------------------------------------- features
def test_features_via_forward_hook():
    task, model = ClassificationTask(), _mlp()
    x = torch.randn(4, 3)
    body = task.features(model, (x, torch.zeros(4, dtype=torch.long)), "body")
    torch.testing.assert_close(body, model.body(x))
    first = task.features(model, (x, None), "body.0")
    torch.testing.assert_close(first, model.body[0](x))
    assert not model.body._forward_hooks and not model.body[0]._forward_hooks  # hooks removed


def test_features_are_flattened_per_sample():
    task = ClassificationTask()
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3, padding=1), flat=nn.Flatten(), head=nn.Linear(2 * 4 * 4, C)))
    x = torch.randn(3, 1, 4, 4)
    assert task.features(model, (x, None), "conv").shape == (3, 32)


def test_features_of_a_layer_returning_a_tuple():
    class Pair(nn.Module):
        def forward(self, x):
            return x * 2, x * 3

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = Pair()
            self.head = nn.Linear(3, C)

        def forward(self, x):
            return self.head(self.pair(x)[0])

    x = torch.randn(2, 3)
    torch.testing.assert_close(ClassificationTask().features(Net(), (x, None), "pair"), x * 2)


def test_features_of_a_missing_layer_lists_the_layers():
    with pytest.raises(ValueError, match=r"`layer` should name a submodule of the model, one of \['body', 'body.0', 'body.1', 'head'\]; got 'fc'"):
        ClassificationTask().features(_mlp(), (torch.randn(2, 3), None), "fc")
    with pytest.raises(ValueError, match="got 'tail'"):
        with capture_features(_mlp(), "tail"):
            pass


def test_features_error_truncates_long_layer_lists():
    model = nn.Sequential(*[nn.Identity() for _ in range(30)])
    with pytest.raises(ValueError, match=r"'19', '\.\.\.'\]; got 'x'"):
        capture_features(model, "x").__enter__()


# ---------------------------------------------------------------------------------- label space
def test_forward_checks_num_classes_against_logits():
    task = ClassificationTask(num_classes=3)
    with pytest.raises(ValueError, match="The model returns 5 logits per sample but `num_classes` is 3"):
        task.forward(_mlp(), (torch.randn(2, 3), None))
    assert ClassificationTask(num_classes=C).forward(_mlp(), (torch.randn(2, 3), None)).shape == (2, C)


def test_forward_rejects_non_logits():
    with pytest.raises(ValueError, match=r"should return logits of shape \[batch, classes\]; got \(2,\)"):
        ClassificationTask().forward(lambda x: x.sum(-1), (torch.randn(2, 3), None))
    with pytest.raises(ValueError, match="got dict"):
        ClassificationTask().forward(lambda x: {"x": x}, (torch.randn(2, 3), None))


def test_forward_reads_logits_attribute():
    logits = _logits(2)
    out = ClassificationTask().forward(lambda x: SimpleNamespace(logits=logits), (torch.randn(2, 3), None))
    assert out is logits


@pytest.mark.parametrize("bad", [-1, C])
@pytest.mark.parametrize("primitive", ["per_sample_loss", "log_likelihood"])
def test_targets_out_of_range(primitive, bad):
    task = ClassificationTask()
    y = torch.tensor([0, 1, bad])
    with pytest.raises(ValueError, match=rf"Targets should lie in \[0, 4\] for a model with 5 classes; got labels in \[{min(bad, 0)}, {max(bad, 1)}\]"):
        getattr(task, primitive)(_logits(3), (None, y))


# ---------------------------------------------------------------------------------- dtypes and shapes
@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_integer_targets_of_any_width_are_cast_to_int64(dtype):
    # int32 labels failed inside cross_entropy ("expected target dtype to be Long or Byte, but got Int").
    task, logits, y = ClassificationTask(), _logits(), _targets()
    batch = (None, y.to(dtype))
    assert task.targets(batch).dtype == torch.int64
    torch.testing.assert_close(task.per_sample_loss(logits, batch), F.cross_entropy(logits, y, reduction="none"))
    torch.testing.assert_close(task.log_likelihood(logits, batch), -F.cross_entropy(logits, y, reduction="none"))
    torch.testing.assert_close(task.per_sample_loss(logits, (None, None), targets=y.to(dtype)), F.cross_entropy(logits, y, reduction="none"))


@pytest.mark.parametrize(
    ("targets", "error", "match"),
    [
        pytest.param(
            torch.tensor([0.0, 1.0, 2.0]),
            TypeError,
            r"targets should be integer class indices \(int64, shape \[batch\]\); got a torch.float32 tensor of shape \(3,\) "
            r"\(whole-number labels stored as floats: convert them with `.long\(\)`\)",
            id="float",
        ),
        pytest.param(F.one_hot(torch.tensor([0, 1, 2]), C).float(), TypeError, r"got a torch.float32 tensor of shape \(3, 5\) \(one-hot or soft labels", id="one-hot"),
        pytest.param(torch.tensor([True, False, True]), TypeError, r"got a torch.bool tensor .*booleans are not class indices", id="bool"),
        pytest.param(torch.tensor([[0], [1], [2]]), ValueError, r"targets should have shape \[batch\] \(one class index per sample\); got shape \(3, 1\)", id="column"),
        pytest.param([0, 1, 2], TypeError, r"targets should be a tensor of class indices \(int64, shape \[batch\]\); got list", id="list"),
    ],
)
def test_targets_that_are_not_class_indices(targets, error, match):
    task = ClassificationTask()
    for primitive in ("per_sample_loss", "log_likelihood"):
        with pytest.raises(error, match=match):
            getattr(task, primitive)(_logits(3), (None, targets))
    with pytest.raises(error, match=match):
        task.per_sample_loss(_logits(3), (None, None), targets=targets)


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        pytest.param(
            torch.randn(4, 3, dtype=torch.float64),
            r"The model failed on inputs of dtype torch.float64 \(shape \(4, 3\)\); its parameters are torch.float32: convert the inputs with `x.to\(torch.float32\)`",
            id="float64",
        ),
        pytest.param(
            torch.randint(0, 256, (4, 3), dtype=torch.uint8),
            r"inputs of dtype torch.uint8 .*its parameters are torch.float32: convert images before batching, e.g. `x.float\(\) / 255`",
            id="uint8",
        ),
    ],
)
def test_inputs_of_another_dtype_than_the_model_are_named(inputs, match):
    # Before: "mat1 and mat2 must have the same dtype, but got Double and Float" from inside the model.
    with pytest.raises(TypeError, match=match) as info:
        ClassificationTask().forward(_mlp(), (inputs, torch.zeros(4, dtype=torch.long)))
    assert "must have the same dtype" in str(info.value)  # the model's own error is quoted (and chained)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_model_that_takes_uint8_or_float64_itself_is_not_refused():
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _mlp()

        def forward(self, x):
            return self.net(x.float() / 255)

    x = torch.randint(0, 256, (4, 3), dtype=torch.uint8)
    assert ClassificationTask().forward(Scaled(), (x, torch.zeros(4, dtype=torch.long))).shape == (4, C)
    assert ClassificationTask().forward(_mlp().double(), (x.double(), torch.zeros(4, dtype=torch.long))).dtype == torch.float64


def test_other_model_errors_pass_through_unchanged():
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"):
        ClassificationTask().forward(_mlp(), (torch.randn(4, 7), torch.zeros(4, dtype=torch.long)))


def test_transposed_logits_are_refused_when_the_batch_size_differs_from_the_class_count():
    # Before: [C, B] logits from a batch of B != C samples failed inside cross_entropy, or (B == C) trained silently.
    model = _mlp()

    def transposed(x):
        return model(x).T

    task = ClassificationTask()
    with pytest.raises(ValueError, match=r"returned logits of shape \(5, 3\) for a batch of 3 samples; a classifier should return \[batch, classes\] = \[3, C\] \(this looks like \[classes, batch\]"):
        task.forward(transposed, (torch.randn(3, 3), torch.zeros(3, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"shape \(4, 5\) for a batch of 3 samples.*= \[3, C\]\.$"):
        task.per_sample_loss(_logits(4), (None, torch.zeros(3, dtype=torch.long)))
    # B == C: the shapes agree, which is not detectable (documented); the next batch of another size is refused.
    assert task.forward(transposed, (torch.randn(C, 3), torch.zeros(C, dtype=torch.long))).shape == (C, C)


def test_transposed_logits_are_caught_before_unlearning_starts():
    # The user's batch size equals the class count; the monitor's forget-set pass (another size) refuses the model.
    import lightning.pytorch as pl

    from lightning_unlearn import ForgetRetainDataModule, UnlearningModule
    from lightning_unlearn.datamodules import LabeledTensorDataset
    from lightning_unlearn.methods import GradientAscent

    class Transposed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _mlp()

        def forward(self, x):
            return self.net(x).T

    x, y = torch.randn(60, 3), torch.arange(60) % C
    dm = ForgetRetainDataModule(LabeledTensorDataset(x, y), forget_class=0, batch_size=C)
    trainer = pl.Trainer(max_steps=3, logger=False, enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0)
    with pytest.raises(ValueError, match=r"for a batch of 12 samples.*\(this looks like \[classes, batch\]"):
        trainer.fit(UnlearningModule(Transposed(), GradientAscent()), datamodule=dm)
    assert trainer.global_step == 0


# ---------------------------------------------------------------------------------- batches
def test_dict_batches():
    task, model = ClassificationTask(), _mlp()
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 3])
    batch = {"inputs": x, "targets": y, "meta": "ignored"}
    assert task.batch_size(batch) == 4 and task.targets(batch) is y and task.inputs(batch) is x
    torch.testing.assert_close(task.per_sample_loss(task.forward(model, batch), batch), F.cross_entropy(model(x), y, reduction="none"))
    custom = ClassificationTask(input_key="pixel_values", target_key="labels")
    torch.testing.assert_close(custom.forward(model, {"pixel_values": x, "labels": y}), model(x))


def test_tuple_and_list_batches_with_extras():
    task = ClassificationTask()
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 3])
    for batch in ((x, y, "id"), [x, y]):
        assert task.inputs(batch) is x and task.targets(batch) is y and task.batch_size(batch) == 4


@pytest.mark.parametrize("batch", [torch.randn(2, 3), (torch.randn(2, 3),)])
def test_bad_batches(batch):
    task = ClassificationTask()
    with pytest.raises(TypeError, match=r"A classification batch should be a \(inputs, targets\) tuple/list or a mapping"):
        task.targets(batch)


def test_bad_batch_inputs():
    with pytest.raises(TypeError, match="got Tensor"):
        ClassificationTask().inputs(torch.randn(2, 3))


def test_correct_and_probabilities():
    task = ClassificationTask()
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0]])
    assert task.correct(logits, (None, torch.tensor([0, 1]))).tolist() == [True, False]
    probs = task.probabilities(logits)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    torch.testing.assert_close(probs, torch.softmax(logits, -1))


# ---------------------------------------------------------------------------------- constructor and the base class
@pytest.mark.parametrize("num_classes", [1, 0, True, 2.0])
def test_bad_num_classes(num_classes):
    with pytest.raises(ValueError, match=rf"`num_classes` should be an int >= 2 or None, got {num_classes!r}"):
        ClassificationTask(num_classes=num_classes)


@pytest.mark.parametrize("smoothing", [1.0, -0.1])
def test_bad_label_smoothing(smoothing):
    with pytest.raises(ValueError, match=r"`label_smoothing` should lie in \[0, 1\)"):
        ClassificationTask(label_smoothing=smoothing)


class _Regression(Task):
    """A minimal task, to check the base class defaults."""

    def forward(self, model, batch):
        return model(batch[0]).squeeze(-1)

    def targets(self, batch):
        return batch[1]

    def per_sample_loss(self, outputs, batch, targets=None):
        return (outputs - (self.targets(batch) if targets is None else targets)) ** 2

    def kl_divergence(self, outputs, reference_outputs, batch, temperature=1.0):
        return torch.zeros_like(outputs)

    def correct(self, outputs, batch):
        return (outputs - self.targets(batch)).abs() < 0.5

    def batch_size(self, batch):
        return len(batch[1])


def test_task_base_defaults():
    task = _Regression()
    out, batch = torch.tensor([1.0, 2.0]), (None, torch.tensor([0.0, 4.0]))
    torch.testing.assert_close(task.log_likelihood(out, batch), torch.tensor([-1.0, -4.0]))
    with pytest.raises(NotImplementedError, match="_Regression does not support relabelled targets"):
        task.relabel(out, batch)
    model = nn.Sequential(OrderedDict(lin=nn.Linear(2, 1)))
    x = torch.randn(3, 2)
    torch.testing.assert_close(task.features(model, (x, torch.zeros(3)), "lin"), model(x))
