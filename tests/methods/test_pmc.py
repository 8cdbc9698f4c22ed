"""PMC: sample the current model's answers, keep the least revealing one, train on it (never on the true answer)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from llm_toys import QA, qa_batch, toy_model, toy_tokenizer
from torch import nn

from lightning_unlearn.methods import METHODS, PMC, StepContext
from lightning_unlearn.methods import pmc as pmc_module
from lightning_unlearn.methods.pmc import generate_continuations, pmc_score, rouge_l_recall, select_least_overlap
from lightning_unlearn.tasks import CausalLMTask, ClassificationTask, QACollator
from lightning_unlearn.tasks.causal_lm import left_pad

from ._llm import FORGET, RETAIN, forget_nll, memorised_model, unlearn

TASK = CausalLMTask()


def _ctx(model, forget, retain=None, step=0):
    return StepContext(model=model, task=TASK, forget=forget, retain=retain, global_step=step)


def _ready(method, model):
    method.setup(model, TASK)
    return method


def _hand_ce(model, prompt: torch.Tensor, answer: list[int]) -> torch.Tensor:
    """Mean NLL of ``answer`` after ``prompt``, by F.cross_entropy on one unpadded sequence."""
    seq = torch.cat([prompt, torch.tensor(answer)])[None]
    logits = model(input_ids=seq).logits[0]
    return F.cross_entropy(logits[len(prompt) - 1 : -1], torch.tensor(answer))


# ---------------------------------------------------------------------------------- registry, helpers
def test_registered():
    assert METHODS.get("pmc") is PMC
    assert PMC.needs_reference and PMC.uses_forget and PMC.supported_tasks == ("causal_lm",)


def test_prompt_and_answer_ids_round_trip_through_with_answers():
    batch = qa_batch(QA[:3])
    prompts, answers = TASK.prompt_ids(batch), TASK.answer_ids(batch)
    collator = QACollator(toy_tokenizer())
    for row, qa in enumerate(QA[:3]):
        assert prompts[row].tolist() == collator.prompt_ids(qa["question"])
        assert answers[row].tolist() == collator.answer_ids(qa["answer"])
    rebuilt = TASK.with_answers(prompts, answers, pad_token_id=toy_tokenizer().pad_token_id)
    for key in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(rebuilt[key], batch[key]), key


def test_prompt_ids_of_a_left_padded_batch_and_left_pad():
    prompts = [torch.tensor([5, 6, 7]), torch.tensor([8])]
    ids, mask = left_pad(prompts, pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    batch = {"input_ids": torch.cat([ids, torch.tensor([[9], [9]])], 1), "attention_mask": torch.ones(2, 4, dtype=torch.long)}
    batch["attention_mask"][:, :3] = mask
    batch["labels"] = torch.tensor([[-100, -100, -100, 9], [-100, -100, -100, 9]])
    assert [p.tolist() for p in TASK.prompt_ids(batch)] == [[5, 6, 7], [8]]
    with pytest.raises(ValueError, match="non-empty and of equal length"):
        TASK.with_answers(prompts, [torch.tensor([1])])


def test_rouge_l_recall():
    assert rouge_l_recall([1, 2, 3, 4], [1, 3, 4, 9]) == 0.75  # LCS 1 3 4
    assert rouge_l_recall([1, 2, 3, 4], [4, 3, 2, 1]) == 0.25
    assert rouge_l_recall([1, 2], [1, 2]) == 1.0 == rouge_l_recall([1, 2], [7, 1, 8, 2, 9])
    assert rouge_l_recall([1, 2], [3, 4]) == 0.0 == rouge_l_recall([], [1]) == rouge_l_recall([1], [])


def test_pmc_score_adds_the_short_answer_penalty_capped_at_one():
    assert pmc_score([1, 2, 3, 4], [1, 9, 9], min_length=0) == 0.25
    assert pmc_score([1, 2, 3, 4], [1, 9, 9], min_length=5) == pytest.approx(0.25 + math.exp(-3))
    assert pmc_score([1, 2, 3, 4], [1, 9, 9], min_length=3) == 0.25  # long enough
    assert pmc_score([1, 2], [1], min_length=3) == pytest.approx(0.5 + math.exp(-1))
    assert pmc_score([1, 2], [1, 2], min_length=3) == 1.0  # 1 + e^-2 > 1: capped
    assert pmc_score([1, 2], [], min_length=1) == 1.0


def test_selection_picks_the_least_overlapping_sample():
    original = [5, 6, 7, 8]
    candidates = [[5, 6, 7, 8], [5, 9, 7], [1, 2, 3], [5, 1]]  # recall 1, 0.5, 0, 0.25
    assert select_least_overlap(original, candidates) == (2, 0.0)
    assert select_least_overlap(original, [[5, 6, 7], [6, 8, 1, 1]]) == (1, 0.5)  # 0.75 vs 0.5
    # ties go to the first; the length penalty keeps an empty answer from winning
    assert select_least_overlap(original, [[], [1, 2, 3]]) == (0, 0.0)
    index, score = select_least_overlap(original, [[], [1, 2, 3]], min_length=2)
    assert index == 1 and score == 0.0
    with pytest.raises(ValueError, match="at least one sampled answer"):
        select_least_overlap(original, [])


def test_generation_is_seeded_and_leaves_the_global_rng_and_mode_alone():
    model = toy_model(seed=1).train()
    prompts = TASK.prompt_ids(qa_batch(QA[:2]))
    state = torch.random.get_rng_state()
    a = generate_continuations(model, prompts, 8, num_samples=3, do_sample=True, seed=4)
    b = generate_continuations(model, prompts, 8, num_samples=3, do_sample=True, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state) and model.training
    assert a == b and len(a) == 2 and all(len(group) == 3 for group in a)
    assert a != generate_continuations(model, prompts, 8, num_samples=3, do_sample=True, seed=5)
    wrapped = nn.ModuleDict({"lm": model})  # e.g. a LightningModule holding the LM: its `generate` is found
    assert generate_continuations(wrapped, prompts, 8, num_samples=3, do_sample=True, seed=4) == a
    eos = toy_tokenizer().eos_token_id
    for answer in (ans for group in a for ans in group):
        assert 1 <= len(answer) <= 8 and eos not in answer[:-1]  # cut after the first EOS


# ---------------------------------------------------------------------------------- the targets
def test_original_answers_are_the_reference_greedy_answers():
    model = memorised_model()
    method = _ready(PMC(num_samples=2, max_new_tokens=32), model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)  # the current model no longer knows the facts: θ₀ (the reference) does
    batch = qa_batch(FORGET)
    method.training_batch(_ctx(model, batch))
    eos = toy_tokenizer().eos_token_id
    for prompt, answer in zip(TASK.prompt_ids(batch), TASK.answer_ids(batch)):
        assert method.original_answer(prompt) == [t for t in answer.tolist() if t != eos]


def test_never_trains_on_the_true_forget_answers():
    model = toy_model(seed=3)
    batch = qa_batch(FORGET)
    trained = _ready(PMC(num_samples=3, max_new_tokens=10, seed=1), model).training_batch(_ctx(model, batch))
    # the training batch holds the same prompts with other answers
    assert [p.tolist() for p in TASK.prompt_ids(trained)] == [p.tolist() for p in TASK.prompt_ids(batch)]
    for new, true in zip(TASK.answer_ids(trained), TASK.answer_ids(batch)):
        assert new.tolist() != true.tolist()
    assert not torch.equal(trained["labels"], batch["labels"])
    # and it does not depend on the answers at all: the same prompts with other answers give the same batch
    other = qa_batch([{"question": qa["question"], "answer": "Nothing at all here."} for qa in FORGET])
    again = _ready(PMC(num_samples=3, max_new_tokens=10, seed=1), model).training_batch(_ctx(model, other))
    for key in trained:
        assert torch.equal(trained[key], again[key]), key


def test_cache_keeps_the_best_pick_resamples_on_schedule_and_stops_at_zero(monkeypatch):
    model = toy_model(seed=0)
    batch = qa_batch(FORGET[:1])
    (prompt,) = TASK.prompt_ids(batch)
    key = prompt.tolist()
    method = _ready(PMC(num_samples=3, resample_every=2), model)
    method.load_state_dict({"extra/original": [[key, [5, 6, 7, 8]]]})  # the format of checkpoints before `add_state`
    rounds = iter([
        [[[5, 6, 7, 8, 2], [5, 6, 9, 2], [5, 1, 2]]],  # step 0: recall 1, 0.5, 0.25: pick [5, 1] (+ EOS)
        [[[5, 6, 7, 2], [5, 6, 7, 8, 2], [5, 6, 7, 2]]],  # step 2: best 0.75 > 0.25: keep the old pick
        [[[9, 9, 2], [5, 2], [6, 2]]],  # step 4: [9, 9] scores 0: replace, and never resample again
    ])  # fmt: skip
    calls = []

    def fake(model, prompts, max_new_tokens, num_samples=1, do_sample=False, **kwargs):
        calls.append(kwargs["seed"])
        assert do_sample and num_samples == 3 and [p.tolist() for p in prompts] == [key]
        return next(rounds)

    monkeypatch.setattr(pmc_module, "generate_continuations", fake)
    picks = []
    for step in range(7):
        trained = method.training_batch(_ctx(model, batch, step=step))
        picks.append((TASK.answer_ids(trained)[0].tolist(), method.picked_answer(prompt)[1]))
    assert len(calls) == 3 and calls[0] != calls[1]  # sampled at steps 0, 2 and 4 only, each with its own seed
    assert picks[:4] == [([5, 1, 2], 0.25)] * 4
    assert picks[4:] == [([9, 9, 2], 0.0)] * 3


@pytest.mark.parametrize("replace_ties", [True, False])
def test_a_tie_replaces_the_cached_pick_as_in_the_authors_code(monkeypatch, replace_ties):
    model = toy_model(seed=0)
    batch = qa_batch(FORGET[:1])
    (prompt,) = TASK.prompt_ids(batch)
    method = _ready(PMC(num_samples=2, replace_ties=replace_ties), model)
    method.load_state_dict({"extra/original": [[prompt.tolist(), [5, 6, 7, 8]]]})
    rounds = iter([[[[5, 6, 1, 2], [5, 6, 7, 2]]], [[[5, 9, 6, 2], [5, 6, 7, 8, 2]]]])  # both best picks score 0.5
    monkeypatch.setattr(pmc_module, "generate_continuations", lambda *args, **kwargs: next(rounds))
    method.training_batch(_ctx(model, batch, step=0))
    method.training_batch(_ctx(model, batch, step=1))
    assert method.picked_answer(prompt) == (([5, 9, 6, 2] if replace_ties else [5, 6, 1, 2]), 0.5)


def test_forget_loss_is_the_ce_on_the_picked_answer():
    model = toy_model(seed=2)
    batch, retain = qa_batch(FORGET), qa_batch(RETAIN[:2])
    prompts = TASK.prompt_ids(batch)
    method = _ready(PMC(forget_weight=0.7, retain_weight=1.25), model)
    picks = [[40, 41, 42, 2], [50, 2]]
    method.load_state_dict(
        {
            "state/_original": {tuple(p.tolist()): [1, 1] for p in prompts},
            "state/_picked": {tuple(p.tolist()): a for p, a in zip(prompts, picks)},
            "state/_scores": {tuple(p.tolist()): 0.0 for p in prompts},  # score 0: fixed, never resampled
            "state/_sampled_at": {tuple(p.tolist()): 0 for p in prompts},
        }
    )
    out = method.loss(_ctx(model, batch, retain, step=5))
    expected = torch.stack([_hand_ce(model, p, a) for p, a in zip(prompts, picks)]).mean()
    retain_ce = TASK.per_sample_loss(TASK.forward(model, retain), retain).mean()
    torch.testing.assert_close(out.parts["forget_loss"], expected.detach())
    torch.testing.assert_close(out.loss, 0.7 * expected + 1.25 * retain_ce)


def test_state_round_trips():
    model = toy_model(seed=0)
    method = _ready(PMC(num_samples=2, max_new_tokens=6), model)
    batch = qa_batch(FORGET)
    method.training_batch(_ctx(model, batch, step=3))
    state = method.state_dict()
    restored = _ready(PMC(num_samples=2, max_new_tokens=6), model)
    restored.load_state_dict(state)
    for prompt in TASK.prompt_ids(batch):
        assert restored.original_answer(prompt) == method.original_answer(prompt) is not None
        assert restored.picked_answer(prompt) == method.picked_answer(prompt) is not None
    assert restored.state_dict() == method.state_dict()
    assert set(state) == {"state/_original", "state/_picked", "state/_scores", "state/_sampled_at"}


# ---------------------------------------------------------------------------------- training
def test_unlearning_run_lowers_the_forget_likelihood():
    model = memorised_model()
    before = forget_nll(model)
    losses = unlearn(model, PMC(num_samples=4, max_new_tokens=12), steps=3)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert forget_nll(model) > before + 0.5


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_samples": 0}, ValueError, "`num_samples`"),
        ({"max_new_tokens": 1.5}, (TypeError, ValueError), "`max_new_tokens`"),
        ({"temperature": 0}, ValueError, "`temperature` should be > 0"),
        ({"top_p": 1.5}, ValueError, r"`top_p` should lie in \(0, 1\]"),
        ({"min_length": -1}, ValueError, "`min_length`"),
        ({"resample_every": 0}, ValueError, "`resample_every`"),
        ({"replace_ties": "yes"}, TypeError, "`replace_ties` should be True or False"),
        ({"retain_loss": "ce"}, ValueError, "`retain_loss` should be one of"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        PMC(**kwargs)


def test_setup_errors():
    with pytest.raises(TypeError, match="its task should be a CausalLMTask, got ClassificationTask"):
        PMC().setup(toy_model(), ClassificationTask())
    with pytest.raises(TypeError, match="PMC samples answers with `generate`"):
        PMC().setup(nn.Linear(2, 2), TASK)
