"""The method base: registry, loss combination, retain objectives, masks, non-finite losses, StepContext."""

from __future__ import annotations

import inspect
import re
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
    RandomLabel,
    RegexMask,
    SaliencyMask,
    StepContext,
    UnlearningMethod,
    register_method,
)
from lightning_unlearn.methods.base import frozen_copy
from lightning_unlearn.tasks import ClassificationTask

from ._toy import batch, blobs, context, perturbed, pretrained, setup, snapshot, train_steps


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
    with pytest.raises(
        NonFiniteLossError,
        match=r"The 'ga' loss is not finite at step 7 \(forget_loss=nan\)\. This step was not taken: the weights are as the previous optimizer step left them",
    ):
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
    assert torch.equal(model.head.weight.grad[0], torch.zeros(32))  # partly masked: zero outside the mask
    assert torch.equal(model.head.weight.grad[1:], torch.ones(3, 32))
    # left out of the mask entirely: zero gradient (the optimizer still counts the step; after_optimizer_step
    # undoes what weight decay moves)
    assert torch.equal(model.head.bias.grad, torch.zeros(4)) and not model.body[0].weight.grad.any()
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
    from lightning_unlearn.tasks import CausalLMTask, ClassificationTask, DiffusionTask, RecommendationTask, VisionLanguageTask

    cls = METHODS.get(name)
    classes = {
        "classification": "ClassificationTask", "causal_lm": "CausalLMTask", "recommendation": "RecommendationTask",
        "diffusion": "DiffusionTask", "vision_language": "VisionLanguageTask",
    }  # fmt: skip
    wanted = " or ".join(classes[k] for k in cls.supported_tasks)
    tasks = (
        (ClassificationTask(), "classification"), (CausalLMTask(), "causal_lm"), (RecommendationTask(), "recommendation"),
        (DiffusionTask(), "diffusion"), (VisionLanguageTask(), "vision_language"),
    )  # fmt: skip
    for task, kind in tasks:
        if kind in cls.supported_tasks:
            continue
        method = cls.__new__(cls)  # the check needs no constructor arguments (TRU, Stake the Points need some)
        with pytest.raises(TypeError, match=rf"{cls.__name__} unlearns .*: it needs task={wanted}\(\); .* got {type(task).__name__}\."):
            method.check_task(task)


# ---------------------------------------------------------------------------------- masks freeze for real
def _masked_run(mask, *, after_step: bool):
    """SalUn-style: random labels on the forget batch under ``mask``, 5 AdamW steps with weight decay."""
    model = pretrained()
    before = snapshot(model)
    method = RandomLabel(mask=mask)
    setup(method, model, batch(n=16, seed=3, label=2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    train_steps(method, model, optimizer, batch(n=16, seed=3, label=2), batch(seed=4), 5, after_step=after_step)
    return method, before, snapshot(model)


@pytest.mark.parametrize(
    "mask", [SaliencyMask(threshold=0.3), RegexMask(r"^head\.")], ids=["saliency (partly masked tensors)", "regex (whole tensors)"]
)
def test_masked_out_entries_stay_bit_identical_under_adamw_weight_decay(mask):
    method, before, after = _masked_run(mask, after_step=True)
    changed_inside = 0
    for name, value in before.items():
        keep = method.masks.get(name)
        if keep is None:
            assert torch.equal(after[name], value), f"{name} is outside the mask but moved"
            continue
        outside = keep == 0
        assert torch.equal(after[name][outside], value[outside]), f"masked-out entries of {name} moved"
        changed_inside += int((after[name][~outside] != value[~outside]).sum())
    assert changed_inside > 0


def test_zeroed_gradients_alone_do_not_freeze_under_adamw():
    """Why ``after_optimizer_step`` exists: with the mask applied to the gradients only, AdamW's decoupled
    weight decay still moves the masked-out entries of a partly masked tensor."""
    method, before, after = _masked_run(SaliencyMask(threshold=0.3), after_step=False)
    moved = sum(int((after[n][m == 0] != before[n][m == 0]).sum()) for n, m in method.masks.items())
    assert moved > 0


def test_a_mask_changed_during_the_run_keeps_the_values_from_before_unlearning():
    model = pretrained()
    before = snapshot(model)
    method = _CE(mask=RegexMask(r"^head\.weight$"), retain_loss="none")
    setup(method, model, batch())
    method._masks["head.weight"][0] = 0  # row 0 frozen after setup: kept from before the first step
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
    train_steps(method, model, optimizer, batch(seed=1), None, 3)
    assert torch.equal(model.head.weight[0], before["head.weight"][0])
    assert not torch.equal(model.head.weight[1:], before["head.weight"][1:])
    assert torch.equal(model.head.bias, before["head.bias"]) and torch.equal(model.body[0].weight, before["body.0.weight"])


def test_after_optimizer_step_without_a_mask_is_a_no_op():
    model, method = pretrained(), _CE()
    before = snapshot(model)
    method.after_optimizer_step(model)
    assert all(torch.equal(v, before[k]) for k, v in snapshot(model).items())


# ---------------------------------------------------------------------------------- the base arguments, uniformly
BASE_ARGUMENTS = ("forget_weight", "retain_weight", "retain_loss", "mask", "seed")


@pytest.mark.parametrize("name", sorted(METHODS.names()))
def test_every_method_takes_the_base_arguments(name):
    cls = METHODS.get(name)
    params = inspect.signature(cls).parameters
    assert all(arg in params for arg in BASE_ARGUMENTS), f"{name} lacks {[a for a in BASE_ARGUMENTS if a not in params]}"
    assert all(params[arg].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for arg in BASE_ARGUMENTS)
    assert list(params)[-5:] == list(BASE_ARGUMENTS), "the base arguments come last, in the same order"
    method = cls(seed=3)
    assert method.seed == 3
    with pytest.raises(TypeError, match="`seed` should be an int, got str '3'"):
        cls(seed="3")


@pytest.mark.parametrize("name", sorted(METHODS.names()))
def test_retain_loss_errors_list_the_methods_own_choices(name):
    cls = METHODS.get(name)
    allowed = sorted(cls.retain_losses)
    with pytest.raises(ValueError, match=rf"`retain_loss` should be one of {re.escape(str(allowed))}, got 'bogus'\."):
        cls(retain_loss="bogus")


@pytest.mark.parametrize("name", sorted(METHODS.names()))
def test_needs_reference_is_one_plain_attribute(name):
    """One idiom: a bool attribute on the class (or set on the instance in ``__init__``), never a property."""
    cls = METHODS.get(name)
    assert isinstance(inspect.getattr_static(cls, "needs_reference"), bool)
    assert isinstance(cls().needs_reference, bool)


def test_razor_refuses_a_mask():
    from lightning_unlearn.methods import RAZOR

    with pytest.raises(ValueError, match=r"`mask` should be None for RAZOR, which builds its own mask \(the edit set\); got Regex"):
        RAZOR(mask=RegexMask("head"))


def test_setup_calls_every_prepare_with_the_same_arguments():
    seen = {}

    class Recording(UnlearningMethod):
        def prepare(self, model, task, forget_loader, retain_loader):
            seen.update(model=model, forget=forget_loader, retain=retain_loader)

    model, forget, retain = pretrained(), [batch()], [batch(seed=1)]
    Recording().setup(model, ClassificationTask(), forget, retain)
    assert seen == {"model": model, "forget": forget, "retain": retain}
    assert "inspect" not in vars(__import__("lightning_unlearn.methods.base", fromlist=["_"]))


# ---------------------------------------------------------------------------------- declared state
class _Stateful(UnlearningMethod):
    """A method with one of each kind of declared state."""

    name = "stateful_test"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("table", None)
        self.add_state("counts", {})
        self.add_state("cache", None, persistent=False)
        self.register_module("head", None)
        self.register_module("frozen_head", None, trainable=False)

    def prepare(self, model, task, forget_loader, retain_loader):
        self.table = torch.arange(6.0).view(2, 3)
        self.counts = {"a": torch.ones(2), "steps": 4}
        self.cache = torch.zeros(3)
        self.head = nn.Linear(3, 2)
        self.frozen_head = nn.Linear(3, 2).requires_grad_(False)


def test_declared_state_is_moved_saved_and_restored():
    method = _Stateful()
    assert method.modules() == {} and method.parameters() == []  # nothing built yet
    setup(method, pretrained())
    assert method.modules() == {"head": method.head}  # the trainable one only
    assert [p.shape for p in method.parameters()] == [torch.Size([2, 3]), torch.Size([2])]
    state = method.state_dict()
    assert set(state) == {"module/head", "module/frozen_head", "state/table", "state/counts"}  # `cache` is not persistent
    assert state["state/counts"]["steps"] == 4 and state["state/table"].device.type == "cpu"

    method.to("meta")
    assert method.table.device.type == "meta" and method.counts["a"].device.type == "meta" and method.cache.device.type == "meta"
    assert method.head.weight.device.type == "meta" and method.frozen_head.weight.device.type == "meta"

    fresh = _Stateful()
    setup(fresh, pretrained())
    fresh.table, fresh.counts = torch.zeros(2, 3), {}
    fresh.load_state_dict(state)
    assert torch.equal(fresh.table, torch.arange(6.0).view(2, 3)) and fresh.counts["steps"] == 4
    assert torch.equal(fresh.head.weight, state["module/head"]["weight"])
    assert torch.equal(fresh.frozen_head.weight, state["module/frozen_head"]["weight"])
    fresh.frozen_head.train()
    fresh.train()
    assert not fresh.frozen_head.training
    assert "table" not in fresh.hparams() and "counts" not in fresh.hparams()


def test_checkpoints_of_earlier_versions_load():
    """Before ``add_state``, methods saved ``"extra/<name>"`` entries; named like a declared state they restore it."""
    method = _Stateful()
    setup(method, pretrained())
    method.add_state("_steps", 0)
    method.load_state_dict({"extra/table": torch.ones(2, 3), "extra/steps": 7, "module/head": nn.Linear(3, 2).state_dict()})
    assert torch.equal(method.table, torch.ones(2, 3)) and method._steps == 7  # "steps" restores the private "_steps"
    with pytest.warns(UserWarning, match=r"The checkpoint holds method state \['module/gone', 'state/extra_thing'\] that"):
        method.load_state_dict({"state/extra_thing": 1, "module/gone": {}})


def test_state_declaration_errors():
    method = _Stateful()
    with pytest.raises(ValueError, match="`name` should be a Python identifier, got 'not a name'"):
        method.add_state("not a name", 0)
    with pytest.raises(ValueError, match="_Stateful already declares 'head' as a module; pick another `name`"):
        method.add_state("head", 0)
    with pytest.raises(ValueError, match="_Stateful already declares 'table' as a state; pick another `name`"):
        method.register_module("table", nn.Linear(1, 1))
    with pytest.raises(TypeError, match="`module` should be a torch.nn.Module or None, got Tensor"):
        method.register_module("other", torch.zeros(1))
