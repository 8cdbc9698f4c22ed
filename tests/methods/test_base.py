"""The method base: registry, loss combination, retain objectives, masks, non-finite losses, StepContext."""

from __future__ import annotations

import inspect
import threading

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_unlearn import ForgetRetainDataModule, UnlearningModule
from lightning_unlearn._registry import Registry
from lightning_unlearn.datamodules import LabeledTensorDataset
from lightning_unlearn.methods import (
    METHODS,
    GradientAscent,
    NonFiniteLossError,
    RegexMask,
    SaliencyMask,
    StepContext,
    UnlearningMethod,
    register_method,
)
from lightning_unlearn.methods.base import frozen_copy
from lightning_unlearn.tasks import ClassificationTask

from ._toy import batch, blobs, context, perturbed, pretrained, setup, snapshot


class _CE(UnlearningMethod):
    """Forget term = CE on the forget batch, plus a constant 0.5 regulariser: easy closed forms."""

    name = "ce_test"

    def forget_loss(self, ctx: StepContext) -> Tensor:
        return ctx.loss("forget").mean()

    def regularizer(self, ctx: StepContext) -> Tensor:
        return torch.tensor(0.5)


class _Exploding(UnlearningMethod):
    name = "exploding_test"

    def forget_loss(self, ctx: StepContext) -> Tensor:
        raise AssertionError("the forget hook should not be called")


# ---------------------------------------------------------------------------------- registry
def test_unknown_method_suggests_the_closest_name():
    with pytest.raises(ValueError, match=r"Unknown method 'npoo'; registered methods are \[.*'npo'.*\]\. Did you mean 'npo'\?"):
        METHODS.get("npoo")
    with pytest.raises(ValueError, match=r"Did you mean 'salun'\?"):
        METHODS.get("SalUn")


def test_unknown_method_without_a_close_match():
    with pytest.raises(ValueError, match=r"Unknown method 'zzzzzz'; registered methods are \[.*\]\.$"):
        METHODS.get("zzzzzz")


def test_duplicate_registration_is_refused():
    class Other(UnlearningMethod):
        pass

    with pytest.raises(ValueError, match="The method name 'ga' is already registered by lightning_unlearn.methods.gradient_ascent.GradientAscent"):
        register_method(name="ga")(Other)
    assert METHODS.get("ga") is GradientAscent
    assert register_method(name="ga")(GradientAscent) is GradientAscent  # re-registering the same class is harmless


@pytest.mark.parametrize("name", ["GA", "1ga", "g-a", "", "_ga", 3])
def test_bad_registration_names(name):
    with pytest.raises(ValueError, match="A method name should be lowercase letters, digits and underscores"):
        register_method(name=name)


def test_registry_basics():
    registry: Registry[UnlearningMethod] = Registry("method")

    @registry.register(name="zeta")
    class Zeta(UnlearningMethod):
        pass

    @registry.register(name="alpha")
    class Alpha(UnlearningMethod):
        pass

    assert registry.names() == ["alpha", "zeta"] == list(registry)
    assert len(registry) == 2 and "zeta" in registry and "beta" not in registry
    assert registry.get("zeta") is Zeta and Zeta.name == "zeta"
    built = registry.build("alpha", forget_weight=0.5)
    assert isinstance(built, Alpha) and built.forget_weight == 0.5


@pytest.mark.parametrize("name", METHODS.names())
def test_registered_methods_follow_the_conventions(name):
    cls = METHODS.get(name)
    assert issubclass(cls, UnlearningMethod) and cls.name == name
    assert all(base is UnlearningMethod for base in cls.__bases__), "methods compose, they do not inherit from each other"
    doc = inspect.getdoc(cls)
    assert "arXiv" in doc, "the docstring names the paper"
    for param in inspect.signature(cls).parameters:
        assert f"{param}:" in doc, f"argument {param!r} is not documented under Args:"
    method = cls()
    assert method.hparams()["method"] == name
    assert repr(method).startswith(f"{cls.__name__}(")


# ---------------------------------------------------------------------------------- constructor
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"forget_weight": -1}, ValueError, "`forget_weight` should be >= 0, got -1"),
        ({"retain_weight": -0.5}, ValueError, "`retain_weight` should be >= 0, got -0.5"),
        ({"forget_weight": "1"}, TypeError, "`forget_weight` should be a number, got str '1'"),
        ({"retain_weight": True}, TypeError, "`retain_weight` should be a number, got bool True"),
        ({"retain_loss": "KL"}, ValueError, r"`retain_loss` should be one of \['kl', 'nll', 'none'\], got 'KL'"),
        ({"mask": "head"}, TypeError, "`mask` should be a ParameterMask or None, got str"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        _CE(**kwargs)


# ---------------------------------------------------------------------------------- loss combination
def test_loss_is_the_weighted_sum_of_the_parts():
    model, forget, retain = pretrained(), batch(seed=1), batch(seed=2)
    perturbed(model, 0.5)
    method = _CE(forget_weight=0.3, retain_weight=2.0)
    out = method.loss(context(method, model, forget, retain))
    ce_f = F.cross_entropy(model(forget[0]), forget[1])
    ce_r = F.cross_entropy(model(retain[0]), retain[1])
    torch.testing.assert_close(out.loss, 0.3 * ce_f + 2.0 * ce_r + 0.5)
    assert set(out.parts) == {"forget_loss", "retain_loss", "regularizer", "loss"}
    torch.testing.assert_close(out.parts["forget_loss"], ce_f.detach())  # parts are unweighted
    torch.testing.assert_close(out.parts["retain_loss"], ce_r.detach())
    assert out.loss.requires_grad and not any(v.requires_grad for v in out.parts.values())


def test_include_retain_false_drops_the_retain_term():
    model, forget, retain = pretrained(), batch(seed=1), batch(seed=2)
    perturbed(model, 0.5)
    method = _CE(forget_weight=1.5, retain_weight=2.0)
    method.retain_loss = lambda ctx: pytest.fail("the retain hook should not be called")  # type: ignore[method-assign]
    out = method.loss(context(method, model, forget, retain), include_retain=False)
    torch.testing.assert_close(out.loss, 1.5 * F.cross_entropy(model(forget[0]), forget[1]) + 0.5)
    assert "retain_loss" not in out.parts


def test_zero_weight_skips_the_hook():
    method = _Exploding(forget_weight=0.0)
    out = method.loss(context(method, pretrained(), batch(seed=1), batch(seed=2)))
    assert "forget_loss" not in out.parts and "retain_loss" in out.parts


def test_methods_that_do_not_use_the_forget_set_never_call_the_hook():
    class RetainOnly(_Exploding):
        uses_forget = False

    method = RetainOnly()
    out = method.loss(context(method, pretrained(), batch(seed=1), batch(seed=2)))
    assert set(out.parts) == {"retain_loss", "loss"}


def test_missing_batches():
    method = _CE(retain_loss="none")
    model = pretrained()
    out = method.loss(context(method, model, batch(seed=1), None))  # only the forget batch: fine
    assert "retain_loss" not in out.parts
    ga = GradientAscent()
    with pytest.raises(ValueError, match="Method 'ga' produced no loss term for this batch"):
        ga.loss(context(ga, model, None, batch(seed=2)))


def test_retain_loss_none():
    method = _CE(retain_loss="none", retain_weight=3.0)
    assert not method.uses_retain
    out = method.loss(context(method, pretrained(), batch(seed=1), batch(seed=2)))
    assert "retain_loss" not in out.parts
    assert not _CE(retain_weight=0.0).uses_retain and _CE().uses_retain


def test_retain_loss_kl_builds_a_reference():
    model = pretrained()
    method = _CE(retain_loss="kl", retain_weight=1.0)
    assert method.reference is None
    setup(method, model)
    reference = method.reference
    assert reference is not None and reference is not model
    assert not reference.training and not any(p.requires_grad for p in reference.parameters())
    perturbed(model, 0.3)
    retain = batch(seed=2)
    out = method.loss(context(method, model, None, retain))
    with torch.no_grad():
        p_ref = torch.softmax(reference(retain[0]), -1)
        expected = (p_ref * (p_ref.log() - torch.log_softmax(model(retain[0]), -1))).sum(-1).mean()
    torch.testing.assert_close(out.parts["retain_loss"], expected)
    assert float(expected) > 0


# ---------------------------------------------------------------------------------- non-finite losses
def test_nan_loss_raises_before_anything_changes():
    model = pretrained()
    method = GradientAscent()
    x, y = batch(seed=1)
    x[0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"The 'ga' loss is not finite at step 7 \(forget_loss=nan\)\. .*the weights are unchanged"):
        method.loss(context(method, model, (x, y), None, global_step=7))
    assert issubclass(NonFiniteLossError, FloatingPointError)


def test_nan_loss_in_training_leaves_the_weights_unchanged():
    data = blobs()
    x, y = data.tensors
    poisoned = x.clone()
    poisoned[y == 3] = float("nan")  # the forget samples
    forget = LabeledTensorDataset(poisoned[y == 3], y[y == 3])
    retain = LabeledTensorDataset(x[y != 3], y[y != 3])
    model = pretrained()
    before = snapshot(model)
    module = UnlearningModule(model, GradientAscent())
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0
    )
    with pytest.raises(NonFiniteLossError, match="loss is not finite at step 0"):
        trainer.fit(module, datamodule=ForgetRetainDataModule(forget=forget, retain=retain, batch_size=8))
    for key, value in snapshot(model).items():
        assert torch.equal(value, before[key])


# ---------------------------------------------------------------------------------- StepContext
class _Counting(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_outputs_are_computed_once_per_split():
    model = _Counting(pretrained())
    reference = _Counting(pretrained())
    ctx = StepContext(model=model, task=ClassificationTask(), forget=batch(seed=1), retain=batch(seed=2), reference=reference)
    a, b = ctx.outputs("forget"), ctx.outputs("forget")
    ctx.loss("forget")
    assert a is b and model.calls == 1
    ctx.outputs("retain")
    assert model.calls == 2
    ref = ctx.reference_outputs("forget")
    assert ctx.reference_outputs("forget") is ref and reference.calls == 1 and not ref.requires_grad


def test_step_context_errors():
    ctx = StepContext(model=pretrained(), task=ClassificationTask(), forget=batch(), retain=None)
    with pytest.raises(ValueError, match="This method needs a 'retain' batch but none was given"):
        ctx.outputs("retain")
    with pytest.raises(RuntimeError, match="This method needs a reference model; set `needs_reference = True`"):
        ctx.reference_outputs("forget")


@pytest.mark.parametrize(("epoch", "max_epochs", "progress"), [(0, 4, 0.0), (2, 4, 0.5), (5, 4, 1.0), (3, None, 0.0), (1, 0, 0.0)])
def test_progress(epoch, max_epochs, progress):
    ctx = StepContext(model=nn.Identity(), task=ClassificationTask(), forget=None, retain=None, epoch=epoch, max_epochs=max_epochs)
    assert ctx.progress == progress


# ---------------------------------------------------------------------------------- lifecycle
def test_setup_with_a_saliency_mask_needs_the_forget_data():
    method = _CE(mask=SaliencyMask())
    with pytest.raises(ValueError, match="The SaliencyMask mask needs the forget data to be built"):
        method.setup(pretrained(), ClassificationTask(), None)


def test_setup_with_a_regex_mask_needs_no_forget_data():
    method = _CE(mask=RegexMask("^head\\."))
    method.setup(pretrained(), ClassificationTask(), None)
    assert method.masks is not None and set(method.masks) == {"head.weight", "head.bias"}


def test_train_keeps_the_reference_in_eval_mode():
    method = _CE(retain_loss="kl")
    setup(method, pretrained())
    method.reference.train()
    method.train()
    assert not method.reference.training
    assert method.to("cpu") is method


def test_apply_mask():
    model = pretrained()
    method = _CE(mask=RegexMask(r"^head\.weight$"))
    setup(method, model, batch())
    method._masks["head.weight"][0] = 0  # keep row 0 of the head frozen too
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    model.body[0].bias.grad = None  # a parameter without gradient is left alone
    method.apply_mask(model)
    assert torch.equal(model.head.weight.grad[0], torch.zeros(32))
    assert torch.equal(model.head.weight.grad[1:], torch.ones(3, 32))
    assert torch.equal(model.head.bias.grad, torch.zeros(4))
    assert torch.equal(model.body[0].weight.grad, torch.zeros_like(model.body[0].weight))
    assert model.body[0].bias.grad is None


def test_apply_mask_without_a_mask_is_a_no_op():
    model, method = pretrained(), _CE()
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    method.apply_mask(model)
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())
    assert method.masks is None


def test_hparams_and_repr():
    method = GradientAscent(forget_weight=0.5, mask=RegexMask("head"))
    hp = method.hparams()
    assert hp["method"] == "ga" and hp["forget_weight"] == 0.5 and hp["retain_weight"] == 0.0
    assert hp["retain_loss_kind"] == "nll" and hp["mask"] == "RegexMask(pattern='head')"
    assert repr(method).startswith("GradientAscent(forget_weight=0.5, retain_weight=0.0")


def test_frozen_copy_leaves_the_trainer_behind():
    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(2, 2)

    module = Module()
    lock = threading.Lock()  # cannot be deep-copied: copying the trainer would fail
    module._trainer = lock
    clone = frozen_copy(module)
    assert module._trainer is lock and clone._trainer is None
    assert module.training and not clone.training
    assert all(p.requires_grad for p in module.parameters()) and not any(p.requires_grad for p in clone.parameters())
    assert torch.equal(clone.layer.weight, module.layer.weight) and clone.layer.weight is not module.layer.weight


@pytest.mark.parametrize("name", sorted(METHODS.names()))
def test_setup_refuses_a_task_kind_the_method_does_not_support(name):
    """One check in ``UnlearningMethod.setup`` for every method: its ``supported_tasks`` against the task's ``kind``."""
    from lightning_unlearn.tasks import CausalLMTask, ClassificationTask

    cls = METHODS.get(name)
    for task, kind, wanted in ((ClassificationTask(), "classification", "CausalLMTask"), (CausalLMTask(), "causal_lm", "ClassificationTask")):
        if kind in cls.supported_tasks:
            continue
        method = cls.__new__(cls)  # the check needs no constructor arguments (TRU, Stake the Points need some)
        with pytest.raises(TypeError, match=rf"{cls.__name__} unlearns .*: it needs task={wanted}\(\); .* got {type(task).__name__}\."):
            method.check_task(task)
