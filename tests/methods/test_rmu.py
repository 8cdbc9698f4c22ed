"""RMU: steer layer-ℓ activations on forget tokens to c·û, keep them on retain tokens, on a tiny Llama."""

from __future__ import annotations

import re

import pytest
import torch
from llm_toys import LM_FAMILIES, QA, qa_batch, tiny_causal_lm, toy_model, toy_tokenizer

from lightning_unlearn.methods import METHODS, RMU, RegexMask, rmu_control_vector
from lightning_unlearn.methods.rmu import decoder_layers_name, layer_output, masked_activation_mse
from lightning_unlearn.peft import apply_peft
from lightning_unlearn.tasks import ClassificationTask

from ._llm import FORGET, RETAIN, TASK, ctx, fit, log_likelihood, memorised_model


def _hidden(model, batch, layer):
    """Output of decoder layer ``layer`` (< the last one) from ``output_hidden_states``."""
    return TASK.hidden_states(model, batch, layer + 1)


def _hand_mse(hidden, target, token_mask):
    """Per sample: mean over the selected tokens of mean_d (h − target)²; then the mean over samples."""
    per_sample = []
    for row in range(hidden.shape[0]):
        h = hidden[row][token_mask[row].bool()]
        t = target if target.dim() == 1 else target[row][token_mask[row].bool()]
        per_sample.append(((h - t) ** 2).mean())
    return torch.stack(per_sample).mean()


# ---------------------------------------------------------------------------------- the control vector
def test_registered_and_defaults():
    assert METHODS.get("rmu") is RMU
    assert RMU.needs_reference and RMU.uses_forget and RMU.supported_tasks == ("causal_lm", "vision_language")
    method = RMU()
    assert (method.layer, method.steering_coeff, method.forget_weight, method.retain_weight) == (7, 2.0, 1.0, 1.0)
    assert (method.tokens, method.trainable, method.retain_loss_kind, method.mask) == ("answer", "all", "activation", None)
    assert method.uses_retain and not RMU(retain_loss="none").uses_retain and not RMU(retain_weight=0).uses_retain


def test_control_vector_is_fixed_and_seeded():
    v = rmu_control_vector(32, 2.0, seed=0)
    assert v.shape == (32,) and v.dtype == torch.float32
    assert float(v.norm()) == pytest.approx(2.0) and bool((v >= 0).all())
    u = torch.rand(32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(v, 2.0 * u / u.norm())  # u ~ U[0, 1)^d, normalised, scaled by c
    assert torch.equal(v, rmu_control_vector(32, 2.0, seed=0))
    assert not torch.allclose(v, rmu_control_vector(32, 2.0, seed=1))
    method = RMU(steering_coeff=6.5, seed=3)
    c = method.control_vector(32)
    assert c is method.control_vector(32)  # cached: one vector for the whole run
    assert torch.equal(c, RMU(steering_coeff=6.5, seed=3).control_vector(32)) and float(c.norm()) == pytest.approx(6.5)
    # carried in the method's state, for resumed runs
    fresh = RMU(steering_coeff=6.5, seed=3)
    fresh.load_state_dict(method.state_dict())
    assert torch.equal(fresh.control, c)


def test_control_vector_is_fixed_during_training():
    model, forget = memorised_model(steps=30), qa_batch(FORGET)
    method = RMU(layer=0, retain_loss="none")
    method.setup(model, TASK)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(2):
        loss = method.loss(ctx(method, model, forget)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = method.control_vector(32).clone() if first is None else first
    assert torch.equal(method.control_vector(32), first)
    assert torch.equal(first, rmu_control_vector(32, 2.0, seed=0))


# ---------------------------------------------------------------------------------- activations
def test_layer_output_hooks_the_decoder_layer_and_stops_the_forward():
    model, batch = memorised_model(steps=30), qa_batch(QA)
    assert decoder_layers_name(model) == "model.layers"
    torch.testing.assert_close(layer_output(model, "model.layers", 0, TASK, batch), _hidden(model, batch, 0))
    heads = []
    handle = model.lm_head.register_forward_hook(lambda *_: heads.append(1))
    last = layer_output(model, "model.layers", 1, TASK, batch)
    assert heads == []  # the LM head never ran
    assert last.shape == (len(QA), batch["input_ids"].shape[1], 32)
    full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    handle.remove()
    assert heads == [1] and full.logits.shape[-1] == len(toy_tokenizer())  # the hook is gone afterwards
    # hidden_states[-1] of a Llama has the final norm applied; the hook returns the raw layer output
    torch.testing.assert_close(model.model.norm(last), full.hidden_states[-1])


@pytest.mark.parametrize("tokens", ["answer", "all"])
def test_loss_against_the_closed_form(tokens):
    model, forget, retain = memorised_model(steps=30), qa_batch(FORGET), qa_batch(RETAIN)
    method = RMU(layer=0, steering_coeff=3.0, forget_weight=0.5, retain_weight=4.0, tokens=tokens, seed=5)
    method.setup(model, TASK)
    with torch.no_grad():
        for p in model.parameters():  # move away from θ₀ so that the retain term is not 0
            p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    out = method.loss(ctx(method, model, forget, retain))
    pick = (lambda b: b["labels"] != -100) if tokens == "answer" else (lambda b: b["attention_mask"])
    control = 3.0 * (u := torch.rand(32, generator=torch.Generator().manual_seed(5))) / u.norm()
    expected_f = _hand_mse(_hidden(model, forget, 0), control, pick(forget))
    with torch.no_grad():
        reference = _hidden(method.reference, retain, 0)
    expected_r = _hand_mse(_hidden(model, retain, 0), reference, pick(retain))
    assert float(expected_r) > 1e-6
    torch.testing.assert_close(out.parts["forget_loss"], expected_f.detach())
    torch.testing.assert_close(out.parts["retain_loss"], expected_r.detach())
    torch.testing.assert_close(out.loss, 0.5 * expected_f + 4.0 * expected_r)


def test_masked_activation_mse_weights_samples_equally():
    hidden = torch.zeros(2, 3, 4)
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]])
    target = torch.ones(4)
    hidden[0, 0] = 3.0  # sample 0: one token, MSE 4; sample 1: three tokens, MSE 1
    assert float(masked_activation_mse(hidden, target, mask)) == pytest.approx((4 + 1) / 2)
    assert float(masked_activation_mse(hidden, target, torch.zeros(2, 3))) == 0.0


def test_adam_steps_move_the_forget_activations_to_the_control_vector():
    model, forget, retain = memorised_model(steps=30), qa_batch(FORGET), qa_batch(RETAIN)
    method = RMU(layer=1, steering_coeff=4.0)
    method.setup(model, TASK)
    control = method.control_vector(32)
    answer = forget["labels"] != -100

    def distance_and_cosine():
        with torch.no_grad():
            h = layer_output(model, "model.layers", 1, TASK, forget)[answer]
        return float((h - control).pow(2).mean()), float(torch.cosine_similarity(h, control[None], dim=-1).mean())

    distance, cosine = distance_and_cosine()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(8):
        loss = method.loss(ctx(method, model, forget, retain)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    new_distance, new_cosine = distance_and_cosine()
    assert new_distance < 0.5 * distance and new_cosine > cosine + 0.2


# ---------------------------------------------------------------------------------- training
def test_unlearning_module_and_trainer():
    model, forget = memorised_model(steps=30), qa_batch(FORGET)
    before = log_likelihood(model, forget)
    losses = fit(model, RMU(layer=0, steering_coeff=4.0), steps=6)
    assert losses[-1] < losses[0]
    assert log_likelihood(model, forget) < before


def test_down_proj_trains_only_the_wmdp_parameters():
    model = toy_model(seed=0, num_layers=4)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    method = RMU(layer=3, trainable="down_proj")
    fit(model, method, steps=2)
    wanted = {f"model.layers.{i}.mlp.down_proj.weight" for i in (1, 2, 3)}
    assert set(method.masks) == wanted and method.mask.pattern == r"^model\.layers\.(1|2|3)\.mlp\.down_proj\."
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, start[k])}
    assert moved == wanted
    # layers ℓ−2..ℓ clipped at 0
    method = RMU(layer=1, trainable="down_proj")
    method.setup(toy_model(seed=0, num_layers=4), TASK)
    assert set(method.masks) == {"model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"}


def test_a_user_mask_composes():
    model = toy_model(seed=0)
    method = RMU(layer=0, mask=RegexMask(r"^model\.layers\.0\.self_attn\."))
    method.setup(model, TASK)
    assert set(method.masks) == {f"model.layers.0.self_attn.{p}_proj.weight" for p in "qkvo"}


def test_setup_errors():
    with pytest.raises(
        ValueError, match=r"`layer` should lie in \[0, 1\] for this model \(2 decoder layers in 'model.layers'\), got 2"
    ):
        RMU(layer=2).setup(toy_model(), TASK)
    with pytest.raises(TypeError, match="RMU unlearns causal language models or vision-language models: it needs task=CausalLMTask or VisionLanguageTask"):
        RMU(layer=0).setup(toy_model(), ClassificationTask())
    with pytest.raises(ValueError, match=r"RMU could not find the decoder layers of Linear: none of \['model.layers', "):
        decoder_layers_name(torch.nn.Linear(2, 2))


# ---------------------------------------------------------------------------------- other model families
#: family -> (its stack of decoder layers, its MLP down-projection inside a layer)
_FAMILY_NAMES = {
    "gpt2": ("transformer.h", "mlp.c_proj"),
    "opt": ("model.decoder.layers", "fc2"),
    "neox": ("gpt_neox.layers", "mlp.dense_4h_to_h"),
    "phi": ("model.layers", "mlp.fc2"),
    "qwen2": ("model.layers", "mlp.down_proj"),
    "qwen3": ("model.layers", "mlp.down_proj"),
    "gemma": ("model.layers", "mlp.down_proj"),
    "llama": ("model.layers", "mlp.down_proj"),
}


@pytest.mark.parametrize("family", LM_FAMILIES)
def test_rmu_finds_the_layers_and_the_down_projection_of_each_family_and_trains_them(family):
    stack, module = _FAMILY_NAMES[family]
    model = tiny_causal_lm(family)
    assert decoder_layers_name(model) == stack
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    method = RMU(layer=1, steering_coeff=4.0, trainable="down_proj")
    fit(model, method, steps=2)
    wanted = {n for n in start if re.match(rf"{re.escape(stack)}\.[01]\.{re.escape(module)}\.(weight|bias)$", n)}
    assert wanted and set(method.masks) == wanted
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, start[n])}
    assert moved == wanted  # the down-projections of layers 0 and 1 changed, nothing else


@pytest.mark.parametrize("family", ["gpt2", "opt"])
def test_rmu_trains_every_parameter_below_the_layer_on_other_families(family):
    model = tiny_causal_lm(family)
    stack = _FAMILY_NAMES[family][0]
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = fit(model, RMU(layer=0, steering_coeff=4.0), steps=3)
    assert losses[-1] < losses[0]
    assert any(not torch.equal(p, start[n]) for n, p in model.named_parameters() if n.startswith(f"{stack}.0."))


def test_the_layer_stack_and_the_trained_module_can_be_named():
    model = tiny_causal_lm("gpt2")
    method = RMU(layer=1, layers="h", trainable="down_proj", trainable_module="attn.c_proj")  # a suffix is enough
    method.setup(model, TASK)
    assert set(method.masks) == {f"transformer.h.{i}.attn.c_proj.{p}" for i in (0, 1) for p in ("weight", "bias")}
    # a stack with a name no family uses: named, it is used; not named, the error lists the ModuleLists
    custom = tiny_causal_lm("llama")
    custom.model.blocks = custom.model.layers
    del custom.model.layers
    with pytest.raises(ValueError, match=r"its ModuleLists are \['model.blocks'\]\. Name the stack with `layers=`"):
        RMU(layer=0).setup(custom, TASK)
    assert decoder_layers_name(custom, "model.blocks") == "model.blocks"
    with pytest.raises(
        ValueError, match=r"`layers` should name an nn.ModuleList of decoder layers in GPT2LMHeadModel, got 'model.layers'; "
        r"its ModuleLists are \['transformer.h'\]"
    ):
        RMU(layer=0, layers="model.layers").setup(tiny_causal_lm("gpt2"), TASK)
    with pytest.raises(ValueError, match=r"`trainable_module` should name a module of each decoder layer \(GPT2Block\), got "
                       r"'mlp.down_proj'; the layer's modules are \['ln_1', 'attn', 'attn.c_attn'"):
        RMU(layer=0, trainable="down_proj", trainable_module="mlp.down_proj").setup(tiny_causal_lm("gpt2"), TASK)


def test_a_layer_without_a_known_down_projection_is_an_error_listing_its_modules():
    model = tiny_causal_lm("gpt2")
    for block in model.transformer.h:
        block.mlp.out = block.mlp.c_proj
        del block.mlp.c_proj
    with pytest.raises(ValueError, match=r"RMU could not find the MLP down-projection of GPT2Block .* Name it with `trainable_module=`"):
        RMU(layer=0, trainable="down_proj").setup(model, TASK)


# ---------------------------------------------------------------------------------- with a LoRA adapter
def test_down_proj_under_a_lora_on_other_modules_is_an_error():
    model = apply_peft(toy_model(), {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    with pytest.raises(ValueError, match=r"leaves nothing to train: it selects 2 frozen parameters \(requires_grad=False\), "
                       r"\['base_model.model.model.layers.0.mlp.down_proj.weight', .*the model's 8 trainable parameters are "
                       r"\['base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight'"):
        RMU(layer=1, trainable="down_proj").setup(model, TASK)


def test_down_proj_under_a_lora_on_the_down_projections_trains_their_adapters():
    model = apply_peft(toy_model(), {"r": 4, "lora_alpha": 8, "target_modules": ["down_proj"]})
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    method = RMU(layer=1, steering_coeff=4.0, trainable="down_proj")
    fit(model, method, steps=2)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, start[n])}
    assert moved and all(".mlp.down_proj.lora_" in n for n in moved)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(method.masks) & trainable == {
        f"base_model.model.model.layers.{i}.mlp.down_proj.lora_{ab}.default.weight" for i in (0, 1) for ab in "AB"
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layer": -1}, ValueError, "`layer` should be an int >= 0, got -1"),
        ({"layer": "7"}, ValueError, "`layer` should be an int >= 0, got '7'"),
        ({"steering_coeff": 0}, ValueError, "`steering_coeff` should be > 0, got 0"),
        ({"retain_loss": "nll"}, ValueError, r"`retain_loss` should be one of \['activation', 'none'\], got 'nll'"),
        ({"tokens": "prompt"}, ValueError, r"`tokens` should be one of \['all', 'answer'\], got 'prompt'"),
        ({"trainable": "mlp"}, ValueError, r"`trainable` should be one of \['all', 'down_proj'\], got 'mlp'"),
        ({"trainable": "down_proj", "mask": RegexMask("mlp")}, ValueError, "Pass either `trainable='down_proj'` or a `mask`"),
        ({"trainable_module": "mlp.c_proj"}, ValueError, r"`trainable_module` names the module `trainable='down_proj'` trains; "),
        ({"layers": ""}, ValueError, "`layers` should be a dotted module name or None, got ''"),
        ({"trainable": "down_proj", "trainable_module": 3}, ValueError, "`trainable_module` should be a dotted module name"),
        ({"retain_weight": -1}, ValueError, "`retain_weight` should be >= 0"),
        ({"seed": -1}, ValueError, "`seed` should be >= 0, got -1"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        RMU(**kwargs)
