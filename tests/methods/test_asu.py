"""ASU: distil the forget answers towards θ₀ with attention softmax on QKᵀ/(τ√d_k); retain KL (ASU_KL) or CE (ASU_GD)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from llm_toys import qa_batch, toy_model
from torch import nn

from lightning_unlearn.methods import ASU, METHODS, StepContext, smoothed_attention
from lightning_unlearn.methods.asu import attention_modules
from lightning_unlearn.tasks import CausalLMTask, ClassificationTask

from ._llm import FORGET, RETAIN, forget_nll, memorised_model, unlearn

TASK = CausalLMTask()


def _ctx(model, forget, retain=None):
    return StepContext(model=model, task=TASK, forget=forget, retain=retain)


def _logits(model, batch):
    with torch.no_grad():
        return TASK.forward(model, batch)


def _scaled_copy(model, tau):
    """θ₀ with its attention scaling divided by τ for good: the teacher written out by hand."""
    teacher = copy.deepcopy(model)
    for module in teacher.modules():
        if type(module).__name__ == "LlamaAttention":
            module.scaling = module.head_dim**-0.5 / tau
    return teacher


def _hand_kl(student, teacher, batch):
    """Mean over samples of the mean over answer tokens of Σ_v p_T (log p_T − log p_S)."""
    s, t = TASK.forward(student, batch).float(), _logits(teacher, batch).float()
    labels = batch["labels"]
    per_sample = []
    for row in range(labels.shape[0]):
        keep = labels[row, 1:] != -100
        log_s = torch.log_softmax(s[row, :-1][keep], -1)
        log_t = torch.log_softmax(t[row, :-1][keep], -1)
        per_sample.append((log_t.exp() * (log_t - log_s)).sum(-1).mean())
    return torch.stack(per_sample).mean()


def test_registered():
    assert METHODS.get("asu") is ASU
    assert ASU.needs_reference and ASU.supported_tasks == ("causal_lm", "vision_language")
    assert ASU().retain_loss_kind == "kl"  # ASU_KL by default


# ---------------------------------------------------------------------------------- the smoothed teacher
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_smoothing_changes_the_outputs_only_for_tau_above_one_and_is_undone(attn):
    model, batch = toy_model(attn_implementation=attn), qa_batch(FORGET)
    model.load_state_dict(memorised_model().state_dict())
    assert model.config._attn_implementation == attn
    original = _logits(model, batch)
    with smoothed_attention(model, 1.0) as names:
        torch.testing.assert_close(_logits(model, batch), original, rtol=0, atol=0)
    assert names == ["model.layers.0.self_attn", "model.layers.1.self_attn"]
    with smoothed_attention(model, 3.0):
        smooth = _logits(model, batch)
        assert all(m.scaling == pytest.approx(m.head_dim**-0.5 / 3) for _, m in attention_modules(model))
    assert (smooth - original).abs().max() > 0.1
    torch.testing.assert_close(smooth, _logits(_scaled_copy(model, 3.0), batch))
    torch.testing.assert_close(_logits(model, batch), original, rtol=0, atol=0)  # restored
    with pytest.raises(RuntimeError, match="boom"), smoothed_attention(model, 3.0):
        raise RuntimeError("boom")
    assert all(m.scaling == m.head_dim**-0.5 for _, m in attention_modules(model))


def test_layers_select_the_attention_modules():
    model, batch = memorised_model(), qa_batch(FORGET)
    assert [n for n, _ in attention_modules(model, r"layers\.1\.")] == ["model.layers.1.self_attn"]
    original = _logits(model, batch)
    with smoothed_attention(model, 3.0, layers=r"layers\.1\.") as names:
        one = _logits(model, batch)
    assert names == ["model.layers.1.self_attn"]
    with smoothed_attention(model, 3.0):
        both = _logits(model, batch)
    assert not torch.allclose(one, original) and not torch.allclose(one, both)
    with pytest.raises(ValueError, match=r"Found no attention module matching `layers`='layers\\\\.9\\\\.'"):
        with smoothed_attention(model, 2.0, layers=r"layers\.9\."):
            pass


def test_teacher_is_the_smoothed_reference_and_the_reference_is_left_alone():
    model = memorised_model()
    method = ASU(temperature=2.5)
    method.setup(model, TASK)
    forget = qa_batch(FORGET)
    teacher = method.teacher_outputs(_ctx(model, forget))
    torch.testing.assert_close(teacher, _logits(_scaled_copy(model, 2.5), forget))
    assert not torch.allclose(teacher, _logits(model, forget), atol=1e-3)
    torch.testing.assert_close(_logits(method.reference, forget), _logits(model, forget))
    plain = ASU(temperature=1.0)
    plain.setup(model, TASK)
    torch.testing.assert_close(plain.teacher_outputs(_ctx(model, forget)), _logits(model, forget), rtol=0, atol=0)


# ---------------------------------------------------------------------------------- the loss
def test_forget_loss_is_the_token_kl_to_the_teacher():
    model = memorised_model()
    method = ASU(temperature=2.0, forget_weight=0.5, retain_loss="nll", retain_weight=2.0)
    method.setup(model, TASK)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # move the student away from θ₀
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    forget, retain = qa_batch(FORGET), qa_batch(RETAIN[:2])
    out = method.loss(_ctx(model, forget, retain))
    expected = _hand_kl(model, _scaled_copy(method.reference, 2.0), forget)
    retain_ce = TASK.per_sample_loss(TASK.forward(model, retain), retain).mean()
    torch.testing.assert_close(out.parts["forget_loss"], expected.detach())
    torch.testing.assert_close(out.loss, 0.5 * expected + 2.0 * retain_ce)
    assert float(expected.detach()) > 0


def test_kl_is_zero_when_the_model_equals_the_teacher():
    model = memorised_model()
    forget, retain = qa_batch(FORGET), qa_batch(RETAIN[:2])
    at_one = ASU(temperature=1.0)  # teacher = θ₀ = the model: both terms vanish (ASU_KL)
    at_one.setup(model, TASK)
    out = at_one.loss(_ctx(model, forget, retain))
    assert float(out.parts["forget_loss"]) == pytest.approx(0.0, abs=1e-6)
    assert float(out.parts["retain_loss"]) == pytest.approx(0.0, abs=1e-6)
    method = ASU(temperature=3.0)
    method.setup(model, TASK)
    student = _scaled_copy(model, 3.0)  # a model that *is* the smoothed teacher
    assert float(method.forget_loss(_ctx(student, forget))) == pytest.approx(0.0, abs=1e-6)
    assert float(method.forget_loss(_ctx(model, forget))) > 1e-3


def test_unlearning_run_lowers_the_forget_likelihood():
    model = memorised_model()
    before = forget_nll(model)
    losses = unlearn(model, ASU(temperature=4.0), steps=3)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert forget_nll(model) > before + 0.05


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"temperature": 0.5}, ValueError, r"`temperature` should be >= 1 \(τ > 1 smooths the attention"),
        ({"temperature": 0}, ValueError, "`temperature` should be > 0"),
        ({"temperature": "2"}, TypeError, "`temperature` should be a number"),
        ({"layers": "layers.(1"}, ValueError, "`layers` is not a valid regular expression"),
        ({"layers": 3}, TypeError, "`layers` should be a regular expression string or None"),
        ({"retain_loss": "gd"}, ValueError, "`retain_loss` should be one of"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        ASU(**kwargs)


def test_setup_errors():
    with pytest.raises(ValueError, match="Found no attention module with a float `scaling` attribute in Sequential"):
        ASU().setup(nn.Sequential(nn.Embedding(4, 4)), TASK)
    with pytest.raises(ValueError, match="Found no attention module matching `layers`='nothing'"):
        ASU(layers="nothing").setup(toy_model(), TASK)
    with pytest.raises(TypeError, match="its task should be a CausalLMTask or VisionLanguageTask, got ClassificationTask"):
        ASU().setup(toy_model(), ClassificationTask())
