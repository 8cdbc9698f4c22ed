"""Parameter masks: RegexMask and SalUn's SaliencyMask (gradients, global/layer top fraction, errors)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from llm_toys import toy_model
from torch import nn

from lightning_unlearn.methods import NPO, FineTune, GradDiff, GradientAscent, RegexMask, SaliencyMask
from lightning_unlearn.peft import apply_peft
from lightning_unlearn.tasks import CausalLMTask, ClassificationTask

from ._toy import batch, blobs, pretrained

TASK = ClassificationTask()


def _forget_batches(n_batches: int = 3, size: int = 10):
    x, y = blobs().tensors
    x, y = x[y == 3], y[y == 3]
    return [(x[i * size : (i + 1) * size], y[i * size : (i + 1) * size]) for i in range(n_batches)]


def _hand_gradients(model: nn.Module, batches) -> dict[str, torch.Tensor]:
    """Gradient of the forget loss summed over all samples, computed in one pass."""
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    model.zero_grad()
    F.cross_entropy(model(x), y, reduction="sum").backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    return grads


# ---------------------------------------------------------------------------------- RegexMask
def test_regex_mask_selects_matching_parameters():
    model = pretrained()
    masks = RegexMask(r"^head\.").build(model, TASK)
    assert set(masks) == {"head.weight", "head.bias"}
    for name, mask in masks.items():
        assert torch.equal(mask, torch.ones_like(model.get_parameter(name)))
    assert set(RegexMask("bias").build(model, TASK)) == {"body.0.bias", "head.bias"}
    assert repr(RegexMask("^head")) == "RegexMask(pattern='^head')"


def test_regex_mask_errors():
    with pytest.raises(ValueError, match=r"`pattern` should be a valid regular expression, got '\(head': missing \)"):
        RegexMask("(head")
    with pytest.raises(ValueError, match=r"`pattern` 'fc' matches no parameter; the model has \['body.0.weight', 'body.0.bias', 'head.weight', 'head.bias'\]"):
        RegexMask("fc").build(pretrained(), TASK)


# ---------------------------------------------------------------------------------- a mask must leave something to train
@pytest.mark.parametrize("method", [GradientAscent, GradDiff, NPO, FineTune])
def test_a_mask_over_frozen_parameters_only_is_an_error_at_setup(method):
    model = pretrained()
    model.head.requires_grad_(False)
    with pytest.raises(
        ValueError,
        match=r"The parameter mask RegexMask\(pattern='\^head\\\\.'\) leaves nothing to train: it selects 2 frozen "
        r"parameters \(requires_grad=False\), \['head.bias', 'head.weight'\], while the model's 2 trainable parameters "
        r"are \['body.0.weight', 'body.0.bias'\]\. Unlearning would run and change nothing",
    ):
        method(mask=RegexMask(r"^head\.")).setup(model, TASK, _forget_batches())
    method(mask=RegexMask(r"^body\.")).setup(model, TASK, _forget_batches())  # a mask that keeps a trainable one is fine


def test_a_mask_over_the_frozen_base_of_a_lora_model_is_an_error_at_setup():
    model = apply_peft(toy_model(), {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    with pytest.raises(ValueError, match=r"leaves nothing to train: it selects 2 frozen parameters .*With a LoRA adapter"):
        NPO(mask=RegexMask(r"mlp\.down_proj\.")).setup(model, CausalLMTask())
    NPO(mask=RegexMask(r"q_proj\.lora_")).setup(model, CausalLMTask())  # the adapter's own parameters train


# ---------------------------------------------------------------------------------- SaliencyMask gradients
def test_saliency_gradients_are_the_summed_forget_loss_gradient():
    model = pretrained()
    batches = _forget_batches()
    grads = SaliencyMask().gradients(model, TASK, batches)
    expected = _hand_gradients(pretrained(), batches)
    assert set(grads) == set(expected)
    for name in grads:
        torch.testing.assert_close(grads[name], expected[name], rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())  # nothing is left behind on the model


def test_saliency_gradients_respect_max_batches():
    batches = _forget_batches()
    grads = SaliencyMask(max_batches=1).gradients(pretrained(), TASK, batches)
    expected = _hand_gradients(pretrained(), batches[:1])
    for name in grads:
        torch.testing.assert_close(grads[name], expected[name], rtol=1e-5, atol=1e-6)


def test_saliency_gradients_restore_the_training_mode_and_skip_frozen_parameters():
    model = pretrained().train()
    model.body.requires_grad_(False)
    masks = SaliencyMask().build(model, TASK, _forget_batches(1))
    assert model.training
    assert set(masks) == {"head.weight", "head.bias"}


def test_saliency_mask_needs_forget_data():
    with pytest.raises(ValueError, match="SaliencyMask got an empty forget loader; the forget set must not be empty"):
        SaliencyMask().build(pretrained(), TASK, [])


# ---------------------------------------------------------------------------------- top fraction
@pytest.mark.parametrize("threshold", [0.5, 0.1, 0.9])
def test_global_mask_keeps_the_top_fraction_of_all_entries(threshold):
    model = pretrained()
    batches = _forget_batches()
    masks = SaliencyMask(threshold=threshold).build(model, TASK, batches)
    grads = _hand_gradients(pretrained(), batches)
    kept = torch.cat([grads[n].abs().flatten()[masks[n].flatten() == 1] for n in grads])
    dropped = torch.cat([grads[n].abs().flatten()[masks[n].flatten() == 0] for n in grads])
    total = sum(g.numel() for g in grads.values())
    assert len(kept) == round(threshold * total)
    assert float(kept.min()) >= float(dropped.max())
    for name, mask in masks.items():
        assert mask.shape == model.get_parameter(name).shape and mask.dtype == torch.float32
        assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_global_mask_ranks_across_layers():
    # one tensor with large gradients takes the whole budget; a per-layer ranking would split it
    grads = {"a": torch.tensor([5.0, 6.0, 7.0, 8.0]), "b": torch.tensor([0.1, 0.2, 0.3, 0.4])}
    mask = SaliencyMask(threshold=0.5)
    mask.gradients = lambda *args: grads  # type: ignore[method-assign]
    masks = mask.build(None, TASK, None)
    assert masks["a"].tolist() == [1, 1, 1, 1] and masks["b"].tolist() == [0, 0, 0, 0]


def test_mask_keeps_exactly_the_top_fraction_when_gradients_tie():
    # many zero gradients (e.g. dead ReLU units) must not all enter the mask
    grads = {"a": torch.tensor([3.0, 0.0, 0.0, 0.0]), "b": torch.tensor([0.0, 0.0, -2.0, 1.0])}
    mask = SaliencyMask(threshold=0.5)
    mask.gradients = lambda *args: grads  # type: ignore[method-assign]
    masks = mask.build(None, TASK, None)
    assert int(sum(m.sum() for m in masks.values())) == 4
    assert masks["a"][0] == 1 and masks["b"][2] == 1 and masks["b"][3] == 1


def test_layer_scope_keeps_the_top_fraction_of_each_tensor():
    batches = _forget_batches()
    masks = SaliencyMask(threshold=0.25, scope="layer").build(pretrained(), TASK, batches)
    grads = _hand_gradients(pretrained(), batches)
    for name, g in grads.items():
        mask = masks[name].flatten()
        assert int(mask.sum()) == max(1, round(0.25 * g.numel())), name
        assert float(g.abs().flatten()[mask == 1].min()) >= float(g.abs().flatten()[mask == 0].max())


def test_threshold_one_keeps_everything():
    masks = SaliencyMask(threshold=1.0).build(pretrained(), TASK, [batch(label=3)])
    assert all(bool((m == 1).all()) for m in masks.values())


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("threshold", [0, 1.5, -0.1])
def test_bad_threshold(threshold):
    with pytest.raises(ValueError, match=rf"`threshold` should lie in \(0, 1\], got {threshold!r}"):
        SaliencyMask(threshold=threshold)


def test_threshold_must_be_a_number():
    with pytest.raises(TypeError, match="`threshold` should be a number, got str '0.5'"):
        SaliencyMask(threshold="0.5")  # type: ignore[arg-type]


def test_bad_scope_and_max_batches():
    with pytest.raises(ValueError, match=r"`scope` should be one of \['global', 'layer'\], got 'local'"):
        SaliencyMask(scope="local")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`max_batches` should be >= 1 or None, got 0"):
        SaliencyMask(max_batches=0)


def test_saliency_repr():
    assert repr(SaliencyMask(0.3, "layer", 2)) == "SaliencyMask(threshold=0.3, scope='layer', max_batches=2)"
