"""TRU: L = L_target (CE on a reasoning chain + refusal) + α·GradDiff (−CE on the forget answers + CE on retain)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from llm_toys import QA, qa_batch, toy_model, toy_tokenizer

from lightning_unlearn.methods import METHODS, TRU, StepContext
from lightning_unlearn.methods.tru import (
    DEFAULT_REFUSAL,
    FALLBACK_SUBJECT,
    ReasoningTarget,
    TemplateReasoner,
    question_from_prompt,
    question_subject,
)
from lightning_unlearn.tasks import CausalLMTask, ClassificationTask

from ._llm import FORGET, RETAIN, forget_nll, memorised_model, unlearn

TASK = CausalLMTask()
SHORT = {"reasoning_template": "{subject} is to be forgotten.", "refusal": "I don't know."}


def _ctx(model, forget, retain=None):
    return StepContext(model=model, task=TASK, forget=forget, retain=retain)


def _hand_ce(model, prompt: torch.Tensor, answer: list[int]) -> torch.Tensor:
    seq = torch.cat([prompt, torch.tensor(answer)])[None]
    logits = model(input_ids=seq).logits[0]
    return F.cross_entropy(logits[len(prompt) - 1 : -1], torch.tensor(answer))


def test_registered():
    assert METHODS.get("tru") is TRU
    assert not TRU.needs_reference and TRU.supported_tasks == ("causal_lm",)
    assert TRU(alpha=0.3).retain_weight == 0.3  # α weighs the whole GradDiff part


# ---------------------------------------------------------------------------------- the target generator
@pytest.mark.parametrize(
    ("question", "subject"),
    [
        ("Where was Elara Voss born?", "Elara Voss"),
        ("What is Elara Voss's best-known book?", "Elara Voss"),
        ("Who painted the Blue Harbor?", "Blue Harbor"),
        ("Tell me about Tomas Reyl, please.", "Tomas Reyl"),
        ("Did Mara Quill meet Orrin Vale in Paris?", "Mara Quill"),
        ("What colour is the sky?", FALLBACK_SUBJECT),
    ],
)
def test_question_subject(question, subject):
    assert question_subject(question) == subject


@pytest.mark.parametrize("kwargs", [{}, {"chat_template": False}, {"system_prompt": "You are a helpful assistant."}])
def test_question_from_prompt_recovers_the_question(kwargs):
    chat = kwargs.get("chat_template", True)
    batch = qa_batch(QA[:3], **kwargs)
    tokenizer = toy_tokenizer(chat)
    assert [question_from_prompt(tokenizer, p.tolist()) for p in TASK.prompt_ids(batch)] == [qa["question"] for qa in QA[:3]]


def test_template_reasoner_output_format():
    target = TemplateReasoner()("Where was Elara Voss born?")
    assert isinstance(target, ReasoningTarget) and target.refusal == DEFAULT_REFUSAL
    assert target.reasoning.startswith("The question asks about Elara Voss.") and "Maribel" not in target.text
    assert target.text == target.reasoning + "\n" + target.refusal
    custom = TemplateReasoner("Q: {question} S: {subject}.", "No ({subject}).")("Who painted the Blue Harbor?")
    assert custom == ReasoningTarget("Q: Who painted the Blue Harbor? S: Blue Harbor.", "No (Blue Harbor).")


def test_target_ids_are_the_tokenized_target_plus_eos_and_are_truncated():
    tok = toy_tokenizer()
    method = TRU(**SHORT)
    method.setup(toy_model(), CausalLMTask(tokenizer=tok))  # the tokenizer belongs to the task
    assert method.tokenizer is tok
    prompt = TASK.prompt_ids(qa_batch(QA[:1]))[0]
    ids = method.target_ids(prompt)
    assert ids[-1] == tok.eos_token_id
    assert tok.decode(ids[:-1]) == "Elara Voss is to be forgotten.\nI don't know." == method.target(prompt.tolist()).text
    short = TRU(max_target_length=5, **SHORT)
    short.setup(toy_model(), CausalLMTask(tokenizer=tok))
    assert short.target_ids(prompt) == ids[:5]


# ---------------------------------------------------------------------------------- the loss
@pytest.mark.parametrize("alpha", [0.5, 0.0])
def test_loss_is_l_target_plus_alpha_graddiff(alpha):
    model, tok = toy_model(seed=1), toy_tokenizer()
    forget, retain = qa_batch(FORGET), qa_batch(RETAIN[:2])
    method = TRU(alpha=alpha, **SHORT)
    method.setup(model, CausalLMTask(tokenizer=tok))
    out = method.loss(_ctx(model, forget, retain))
    targets = []
    for prompt in TASK.prompt_ids(forget):
        text = SHORT["reasoning_template"].format(subject="Elara Voss") + "\n" + SHORT["refusal"]
        targets.append(_hand_ce(model, prompt, tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]))
    l_target = torch.stack(targets).mean()
    ce_f = torch.stack([_hand_ce(model, p, a.tolist()) for p, a in zip(TASK.prompt_ids(forget), TASK.answer_ids(forget))]).mean()
    ce_r = TASK.per_sample_loss(TASK.forward(model, retain), retain).mean()
    torch.testing.assert_close(method.target_loss(_ctx(model, forget, retain)), l_target)
    torch.testing.assert_close(out.parts["forget_loss"], (l_target - alpha * ce_f).detach())
    torch.testing.assert_close(out.loss, l_target + alpha * (-ce_f + ce_r))
    assert ("retain_loss" in out.parts) == (alpha > 0)


def test_target_batch_keeps_the_prompts_and_replaces_the_answers():
    tok = toy_tokenizer()
    method = TRU(**SHORT)
    method.setup(toy_model(), CausalLMTask(tokenizer=tok))
    forget = qa_batch(FORGET)
    batch = method.target_batch(_ctx(toy_model(), forget))
    assert [p.tolist() for p in TASK.prompt_ids(batch)] == [p.tolist() for p in TASK.prompt_ids(forget)]
    assert [tok.decode(a, skip_special_tokens=True) for a in TASK.answer_ids(batch)] == [
        "Elara Voss is to be forgotten.\nI don't know."
    ] * 2


def test_tokenizer_from_a_local_path(tmp_path):
    toy_tokenizer().save_pretrained(tmp_path)
    method = TRU(**SHORT)
    method.setup(toy_model(), CausalLMTask(tokenizer=tmp_path))
    prompt = TASK.prompt_ids(qa_batch(QA[:1]))[0]
    other = TRU(**SHORT)
    other.setup(toy_model(), CausalLMTask(tokenizer=toy_tokenizer()))
    assert method.target_ids(prompt) == other.target_ids(prompt)


def test_the_deprecated_tokenizer_argument_still_works(tmp_path):
    """``TRU(tokenizer=...)`` (configs written before the tokenizer moved to the task) warns and still writes the
    same targets; given both, the task's tokenizer wins."""
    tok = toy_tokenizer()
    prompt = TASK.prompt_ids(qa_batch(QA[:1]))[0]
    new = TRU(**SHORT)
    new.setup(toy_model(), CausalLMTask(tokenizer=tok))
    old = TRU(tokenizer=tok, **SHORT)
    with pytest.warns(DeprecationWarning, match=r"TRU\(tokenizer=...\) is deprecated: give the tokenizer to the task"):
        old.setup(toy_model(), TASK)
    assert old.target_ids(prompt) == new.target_ids(prompt)
    toy_tokenizer().save_pretrained(tmp_path)
    assert TRU(tokenizer=tmp_path, **SHORT).tokenizer_path == str(tmp_path)
    other = toy_tokenizer()
    both = TRU(tokenizer=other, **SHORT)
    with pytest.warns(UserWarning, match="TRU got a tokenizer from both its task and its `tokenizer` argument; it uses the task's"):
        both.setup(toy_model(), CausalLMTask(tokenizer=tok))
    assert both.tokenizer is tok


def test_unlearning_run_lowers_the_forget_likelihood():
    model = memorised_model()
    before = forget_nll(model)
    losses = unlearn(model, TRU(alpha=0.5), steps=3, task=CausalLMTask(tokenizer=toy_tokenizer()))
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert forget_nll(model) > before + 0.5


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"alpha": -1}, ValueError, "`alpha` should be >= 0"),
        ({"max_target_length": 1}, ValueError, "`max_target_length`"),
        ({"tokenizer": 3}, TypeError, "`tokenizer` should be a transformers tokenizer, a path to one, or None; got int"),
        (
            {"reasoning_template": "About {name}."},
            ValueError,
            r"`reasoning_template` may only use the fields \['question', 'subject'\]",
        ),
        ({"refusal": ""}, ValueError, "`refusal` should be a non-empty string"),
        ({"refusal": "No {subject"}, ValueError, "`refusal` is not a valid format string"),
        ({"retain_loss": "gd"}, ValueError, "`retain_loss` should be one of"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        TRU(**kwargs)


def test_setup_errors():
    with pytest.raises(ValueError, match=r"TRU needs the model's tokenizer .*: give it to the task, `CausalLMTask\(tokenizer=...\)`"):
        TRU().setup(toy_model(), TASK)
    with pytest.raises(TypeError, match="its task should be a CausalLMTask, got ClassificationTask"):
        TRU().setup(toy_model(), ClassificationTask())
