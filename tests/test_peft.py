"""LoRA (peft) unlearning: adapter-only training, the adapter-disabled reference, gradient checkpointing, saving."""

from __future__ import annotations

import math
import sys
import warnings
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from llm_toys import qa_batch, toy_model
from methods._llm import FORGET, RETAIN, forget_nll, loader, memorised_model
from torch import nn
from toys import make_trainer

from lightning_unlearn import UnlearningModule
from lightning_unlearn._weights import load_weights
from lightning_unlearn.methods import ASU, NPO, RMU, GradDiff, smoothed_attention
from lightning_unlearn.methods.base import StepContext, frozen_copy, reference_model
from lightning_unlearn.methods.pmc import generate_continuations
from lightning_unlearn.methods.rmu import layer_output
from lightning_unlearn.peft import (
    AdapterDisabledReference,
    SaveMergedWeights,
    adapter_disabled_reference,
    apply_peft,
    enable_gradient_checkpointing,
    is_peft_model,
    lora_config,
    merged_model,
)
from lightning_unlearn.tasks import CausalLMTask
from lightning_unlearn.training import SaveWeights

peft = pytest.importorskip("peft")

TASK = CausalLMTask()
LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}


class _Record(pl.Callback):
    """Losses, and the adapter's gradient norms seen just before each optimizer step."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.grad_norms: list[float] = []

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        grads = [p.grad for n, p in pl_module.model.named_parameters() if "lora_" in n and p.grad is not None]
        self.grad_norms.append(float(sum(g.norm() ** 2 for g in grads)) ** 0.5 if grads else 0.0)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.losses.append(float(outputs["loss"]))


def _module(method, model=None, lr: float = 2e-2, **kwargs: Any) -> UnlearningModule:
    model = memorised_model() if model is None else model
    kwargs.setdefault("peft", LORA)
    return UnlearningModule(model.train(), method, task=TASK, optimizer=lambda p: torch.optim.Adam(p, lr=lr), **kwargs)


def _fit(module: UnlearningModule, steps: int = 3, callbacks: list[pl.Callback] | None = None) -> _Record:
    record = _Record()
    trainer = make_trainer(max_steps=steps, max_epochs=steps, limit_val_batches=0, callbacks=[record, *(callbacks or [])])
    trainer.fit(module, train_dataloaders=CombinedLoader({"forget": loader(FORGET), "retain": loader(RETAIN)}, mode="min_size"))
    return record


def _plain_name(name: str) -> str:
    """The plain model's key of a PeftModel parameter/buffer key (``base_model.model.`` and ``.base_layer`` dropped)."""
    return name.removeprefix("base_model.model.").replace(".base_layer.", ".")


def _logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return TASK.forward(model, batch)


# ---------------------------------------------------------------------------------- configuration
def test_a_dict_selects_lora_and_only_the_adapter_trains():
    module = _module(GradDiff())
    assert is_peft_model(module.model)
    trainable = [n for n, p in module.model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    optimised = {id(p) for group in module.configure_optimizers().param_groups for p in group["params"]}
    assert optimised == {id(p) for n, p in module.model.named_parameters() if p.requires_grad}


def test_a_peft_config_object_is_accepted():
    config = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"])
    assert lora_config(config) is config
    module = _module(GradDiff(), peft=config)
    assert {n.split(".")[-4] for n, p in module.model.named_parameters() if p.requires_grad} == {"q_proj"}


@pytest.mark.parametrize(
    "spec, error, match",
    [
        ({"r": 4, "rank": 4}, ValueError, r"unknown LoraConfig argument\(s\) \['rank'\]"),
        ({"r": 0, "target_modules": ["q_proj"]}, ValueError, r"`peft\['r'\]`.*int >= 1"),
        ({"r": 2.5, "target_modules": ["q_proj"]}, ValueError, r"`peft\['r'\]`"),
        ({"lora_alpha": -1, "target_modules": ["q_proj"]}, ValueError, r"lora_alpha"),
        ({"lora_dropout": 1.0, "target_modules": ["q_proj"]}, ValueError, r"lora_dropout.*\[0, 1\)"),
        ({"r": 4, "target_modules": ["no_such_layer"]}, ValueError, r"Could not add the LORA adapter.*target_modules"),
        ("r=4", TypeError, r"`peft` should be a dict of peft.LoraConfig arguments"),
    ],
)
def test_bad_configs_raise_clear_errors(spec, error, match):
    with pytest.raises(error, match=match):
        _module(GradDiff(), model=toy_model(), peft=spec)


def test_an_already_wrapped_model_is_refused():
    wrapped = apply_peft(toy_model(), LORA)
    with pytest.raises(ValueError, match="already a peft.PeftModel"):
        _module(GradDiff(), model=wrapped)


def test_bad_gradient_checkpointing_arguments():
    with pytest.raises(TypeError, match="`gradient_checkpointing` should be a bool or a dict"):
        _module(GradDiff(), model=toy_model(), gradient_checkpointing="yes")
    with pytest.raises(TypeError, match="needs a transformers model"):
        UnlearningModule(nn.Linear(3, 2), GradDiff(), gradient_checkpointing=True)


def test_missing_peft_names_the_llm_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now raises ImportError
    assert not is_peft_model(toy_model())
    with pytest.raises(ImportError, match=r"lightning-unlearn\[llm\]"):
        _module(GradDiff(), model=toy_model())


def test_without_peft_nothing_changes():
    model = toy_model()
    module = UnlearningModule(model, GradDiff(), task=TASK)
    assert module.model is model and not is_peft_model(model)
    assert adapter_disabled_reference(model) is None
    reference = reference_model(model)
    assert not isinstance(reference, AdapterDisabledReference)
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(reference.parameters(), model.parameters()))


# ---------------------------------------------------------------------------------- training and the reference
def test_only_the_adapter_changes_and_the_reference_is_the_disabled_base():
    original = memorised_model()
    plain = {k: v.clone() for k, v in original.state_dict().items()}
    batch = qa_batch()
    before = _logits(original, batch)
    module = _module(NPO(beta=0.5))
    lora = {n: p.detach().clone() for n, p in module.model.named_parameters() if p.requires_grad}
    nll = forget_nll(module.model)
    record = _fit(module, steps=3)

    assert all(math.isfinite(v) for v in record.losses) and forget_nll(module.model) > nll + 0.05
    changed = [n for n, p in module.model.named_parameters() if n in lora and not torch.equal(p, lora[n])]
    assert any(".lora_B." in n for n in changed) and any(".lora_A." in n for n in changed)
    for name, value in module.model.state_dict().items():  # the base weights are bit-identical
        if "lora_" not in name:
            assert torch.equal(value, plain[_plain_name(name)]), name

    reference = module.method.reference
    assert isinstance(reference, AdapterDisabledReference) and reference.model is module.model
    # no second copy: the reference owns nothing, and what it computes with is the model's own storage
    assert reference.state_dict() == {} and list(reference.children()) == []
    shared = {p.data_ptr() for p in module.model.parameters()}
    assert {p.data_ptr() for p in reference.parameters()} <= shared
    assert not any("lora_" in n for n, _ in reference.named_parameters())
    # θ₀'s outputs, after training as before it; the adapter-enabled model has moved away from them
    torch.testing.assert_close(_logits(reference, batch), before, rtol=0, atol=0)
    assert not torch.allclose(_logits(module.model, batch), before)


def test_the_reference_leaves_the_models_mode_and_adapters_alone():
    module = _module(NPO())
    model = module.model.train()
    reference = adapter_disabled_reference(model)
    assert reference is not None
    reference.eval()  # what `method.train()` does: must not switch the trained model to eval mode
    reference.to("cpu")
    reference.requires_grad_(False)
    assert model.training and all(m.training for m in model.modules())
    assert any(p.requires_grad for p in model.parameters())
    seen: list[bool] = []
    handle = model.get_base_model().model.layers[0].register_forward_hook(lambda m, a, o: seen.append(m.training))
    try:
        reference(**{k: v for k, v in qa_batch().items() if k != "labels"})
    finally:
        handle.remove()
    assert seen == [False] and model.training and all(m.training for m in model.modules())
    assert model.get_model_status().enabled is True  # adapters on again
    with pytest.raises(RuntimeError, match="frozen"):
        reference.requires_grad_(True)


@pytest.mark.parametrize(
    "method",
    [
        pytest.param(lambda: NPO(beta=0.5), id="npo"),
        pytest.param(lambda: GradDiff(), id="graddiff"),
        pytest.param(lambda: NPO(beta=0.5, retain_loss="kl"), id="npo-kl"),
        pytest.param(lambda: RMU(layer=1, steering_coeff=4.0), id="rmu"),
        pytest.param(lambda: ASU(temperature=4.0), id="asu"),
    ],
)
def test_methods_unlearn_with_lora(method):
    module = _module(method())
    before = forget_nll(module.model)
    record = _fit(module, steps=3)
    assert len(record.losses) == 3 and all(math.isfinite(v) for v in record.losses)
    assert forget_nll(module.model) > before + 0.05
    if module.method.reference is not None:
        assert isinstance(module.method.reference, AdapterDisabledReference)


def test_rmu_reads_the_reference_activations_of_the_base():
    original, batch = memorised_model(), qa_batch(RETAIN)
    module = _module(RMU(layer=1, steering_coeff=4.0))
    _fit(module, steps=2)
    method, model = module.method, module.model
    assert method._layers_name == "base_model.model.model.layers"
    with torch.no_grad():
        got = layer_output(method.reference, method._layers_name, 1, TASK, batch)
        want = layer_output(original, "model.layers", 1, TASK, batch)
        trained = layer_output(model, method._layers_name, 1, TASK, batch)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert not torch.allclose(trained, want)


def test_asu_smooths_the_disabled_base_and_restores_the_shared_attention():
    original, batch = memorised_model(), qa_batch(FORGET)
    module = _module(ASU(temperature=4.0))
    _fit(module, steps=2)
    method, model = module.method, module.model
    scalings = [m.scaling for m in model.modules() if isinstance(getattr(m, "scaling", None), float)]
    with torch.no_grad(), smoothed_attention(original, 4.0):
        want = TASK.forward(original, batch)
    got = method.teacher_outputs(StepContext(model=model, task=TASK, forget=batch, retain=None))
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert [m.scaling for m in model.modules() if isinstance(getattr(m, "scaling", None), float)] == scalings


def test_generate_runs_the_disabled_base():
    original = memorised_model()
    module = _module(GradDiff())
    _fit(module, steps=3)
    prompts = TASK.prompt_ids(qa_batch(FORGET))
    reference = AdapterDisabledReference(module.model)
    assert generate_continuations(reference, prompts, 6) == generate_continuations(original, prompts, 6)


# ---------------------------------------------------------------------------------- fallback to a full copy
@pytest.mark.parametrize(
    "extra, reason",
    [({"init_lora_weights": False}, "LoRA B matrices are not zero"), ({"bias": "all"}, "trains the base biases")],
)
def test_a_non_identity_adapter_falls_back_to_a_frozen_copy(extra, reason):
    model = apply_peft(toy_model(), {**LORA, **extra})
    with pytest.warns(UserWarning, match=reason):
        reference = reference_model(model)
    assert not isinstance(reference, AdapterDisabledReference) and is_peft_model(reference)
    batch = qa_batch()
    torch.testing.assert_close(_logits(reference, batch), _logits(model, batch))


def test_trainable_base_parameters_fall_back_to_a_frozen_copy():
    model = apply_peft(toy_model(), LORA)
    model.get_base_model().lm_head.weight.requires_grad_(True)
    with pytest.warns(UserWarning, match="base parameters are trainable"):
        assert adapter_disabled_reference(model) is None


# ---------------------------------------------------------------------------------- gradient checkpointing
def _lora_grads(model: nn.Module, batch: dict[str, torch.Tensor]) -> list[torch.Tensor | None]:
    model.train()
    loss = TASK.per_sample_loss(TASK.forward(model, batch), batch).mean()
    if loss.requires_grad:
        loss.backward()
    return [p.grad for n, p in model.named_parameters() if "lora_" in n]


def test_reentrant_checkpointing_needs_input_grads_for_the_adapter():
    """The pitfall, reproduced with transformers 5: re-entrant checkpointing without input grads trains no LoRA weight."""
    batch = qa_batch()
    model = apply_peft(toy_model(), {**LORA, "init_lora_weights": False})
    enable_gradient_checkpointing(model, {"use_reentrant": True})
    assert all(g is not None and g.abs().sum() > 0 for g in _lora_grads(model, batch))

    broken = apply_peft(toy_model(), {**LORA, "init_lora_weights": False})
    enable_gradient_checkpointing(broken, {"use_reentrant": True})
    broken.get_base_model().disable_input_require_grads()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="None of the inputs have requires_grad")
        assert all(g is None for g in _lora_grads(broken, batch))


@pytest.mark.parametrize("setting", [True, {"use_reentrant": True}], ids=["default", "reentrant"])
def test_gradient_checkpointing_trains_the_adapter(setting):
    module = _module(NPO(beta=0.5), gradient_checkpointing=setting)
    base = module.model.get_base_model()
    assert base.is_activation_checkpointing and len(base._require_grads_hooks) == 1
    lora = {n: p.detach().clone() for n, p in module.model.named_parameters() if p.requires_grad}
    record = _fit(module, steps=2)
    assert record.grad_norms and all(g > 0 for g in record.grad_norms)
    changed = {n for n, p in module.model.named_parameters() if n in lora and not torch.equal(p, lora[n])}
    assert changed == set(lora)  # every layer's adapter, inside the checkpointed blocks too
    assert all(math.isfinite(v) for v in record.losses)


def test_gradient_checkpointing_without_peft_still_trains_the_full_model():
    model = memorised_model()
    module = _module(GradDiff(), model=model, peft=None, gradient_checkpointing={"use_reentrant": True})
    assert module.model is model and model.is_activation_checkpointing
    weight = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    _fit(module, steps=1)
    assert not torch.equal(model.model.layers[0].self_attn.q_proj.weight, weight)


# ---------------------------------------------------------------------------------- saving
def test_merged_weights_are_the_plain_architecture(tmp_path):
    module = _module(GradDiff())
    merged_path, peft_path = tmp_path / "merged.pt", tmp_path / "peft.pt"
    _fit(module, steps=2, callbacks=[SaveMergedWeights(str(merged_path)), SaveWeights(str(peft_path))])
    assert is_peft_model(module.model) and any("lora_" in k for k in torch.load(peft_path, weights_only=True))
    plain = toy_model(seed=1)
    load_weights(plain, merged_path)  # strict: same keys and shapes as the plain model
    batch = qa_batch()
    torch.testing.assert_close(_logits(plain.eval(), batch), _logits(module.model.eval(), batch), rtol=1e-4, atol=1e-5)
    assert merged_model(plain) is plain
    assert is_peft_model(module.model) and any(".lora_A." in n for n, _ in module.model.named_parameters())


def test_frozen_copy_is_still_what_non_peft_methods_get():
    model = toy_model()
    method = NPO()
    method.setup(model, TASK)
    assert not isinstance(method.reference, AdapterDisabledReference)
    assert type(method.reference) is type(frozen_copy(model))
