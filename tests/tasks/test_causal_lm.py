"""CausalLMTask, QACollator and generate_answers on a tiny Llama with an in-process tokenizer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from llm_toys import QA, qa_batch, toy_model, toy_tokenizer
from torch import nn

from lightning_unlearn.tasks import CausalLMTask, QACollator, Task, generate_answers

IGNORE = -100


@pytest.fixture(scope="module")
def model():
    return toy_model(seed=0)


@pytest.fixture(scope="module")
def batch():
    return qa_batch()


def _hand_nll(logits: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    """Per sample, the NLL of every answer token by F.cross_entropy on shifted, masked positions."""
    out = []
    for row in range(logits.shape[0]):
        keep = labels[row, 1:] != IGNORE
        out.append(F.cross_entropy(logits[row, :-1][keep], labels[row, 1:][keep], reduction="none"))
    return out


def _random_lm_batch(seed: int = 0, b: int = 3, t: int = 7, v: int = 11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g) * 2
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[:, :3] = IGNORE  # prompt
    labels[1, 5:] = IGNORE  # padding of a shorter sample
    return logits, {"input_ids": labels.clamp_min(0), "attention_mask": (labels != IGNORE).long(), "labels": labels}


# ---------------------------------------------------------------------------------- forward
def test_is_a_task_and_forward_returns_logits(model, batch):
    task = CausalLMTask()
    assert isinstance(task, Task) and not task.supports_relabel
    logits = task.forward(model, batch)
    assert logits.shape == (*batch["input_ids"].shape, len(toy_tokenizer()))
    assert task.batch_size(batch) == len(QA)
    assert torch.equal(task.targets(batch), batch["labels"])


def test_forward_accepts_a_model_returning_a_tensor_and_rejects_bad_shapes(model, batch):
    class Plain(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask=None):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    task = CausalLMTask()
    torch.testing.assert_close(task.forward(Plain(model), batch), task.forward(model, batch))

    class Flat(nn.Module):
        def forward(self, input_ids, attention_mask=None):
            return torch.zeros(input_ids.shape[0], 3)

    with pytest.raises(ValueError, match=r"\[batch, length, vocab\]"):
        task.forward(Flat(), batch)
    with pytest.raises(TypeError, match="mapping"):
        task.forward(model, (batch["input_ids"], batch["labels"]))
    with pytest.raises(KeyError, match="labels"):
        task.targets({"input_ids": batch["input_ids"]})


# ---------------------------------------------------------------------------------- losses
def test_per_sample_loss_is_the_mean_answer_token_nll():
    logits, b = _random_lm_batch()
    task = CausalLMTask()
    loss = task.per_sample_loss(logits, b)
    expected = torch.stack([nll.mean() for nll in _hand_nll(logits, b["labels"])])
    assert loss.shape == (3,)
    torch.testing.assert_close(loss, expected)


def test_log_likelihood_is_the_sum_and_relates_to_the_loss():
    logits, b = _random_lm_batch(seed=1)
    task = CausalLMTask()
    lengths = task.answer_lengths(b)
    assert lengths.tolist() == [4, 2, 4]  # labels at positions 3..6, minus the padding of sample 1
    ll = task.log_likelihood(logits, b)
    torch.testing.assert_close(ll, torch.stack([-nll.sum() for nll in _hand_nll(logits, b["labels"])]))
    torch.testing.assert_close(ll, -task.per_sample_loss(logits, b) * lengths)
    tok = task.token_log_probs(logits, b)
    assert tok.shape == (3, 6)
    assert torch.all(tok[~task.answer_mask(b)] == 0) and torch.all(tok[task.answer_mask(b)] < 0)


def test_loss_ignores_the_prompt_and_padding_positions():
    logits, b = _random_lm_batch(seed=2)
    task = CausalLMTask()
    loss = task.per_sample_loss(logits, b)
    # Logits at positions that predict a prompt/padding token do not matter...
    changed = logits.clone()
    off_answer = torch.cat([~task.answer_mask(b), torch.ones(3, 1, dtype=torch.bool)], dim=1)
    changed[off_answer] = torch.randn(int(off_answer.sum()), logits.shape[-1]) * 10
    torch.testing.assert_close(task.per_sample_loss(changed, b), loss)
    # ...and neither does the token sitting at a prompt position of the labels.
    b2 = {**b, "labels": b["labels"].clone()}
    b2["labels"][:, 1] = IGNORE
    torch.testing.assert_close(task.per_sample_loss(logits, b2), loss)
    # A label that does count changes it.
    b3 = {**b, "labels": b["labels"].clone()}
    b3["labels"][0, 4] = (b3["labels"][0, 4] + 1) % logits.shape[-1]
    assert not torch.isclose(task.per_sample_loss(logits, b3)[0], loss[0])


def test_loss_matches_the_hf_model_loss_on_a_single_sample(model):
    task = CausalLMTask()
    one = qa_batch(QA[:1])
    ours = task.per_sample_loss(task.forward(model, one), one)
    torch.testing.assert_close(ours, model(**one).loss.reshape(1))


def test_padding_does_not_change_a_samples_loss(model):
    task = CausalLMTask()
    short, long_ = QA[4], QA[3]  # "The sky is blue." is shorter than the painter's answer
    alone = qa_batch([short])
    together = qa_batch([short, long_])
    assert together["input_ids"].shape[1] > alone["input_ids"].shape[1]
    assert together["attention_mask"][0].sum() == alone["attention_mask"][0].sum()
    loss_alone = task.per_sample_loss(task.forward(model, alone), alone)
    loss_together = task.per_sample_loss(task.forward(model, together), together)
    torch.testing.assert_close(loss_together[:1], loss_alone, atol=1e-5, rtol=1e-5)
    # Extra padding columns at the right (a longer pad) change nothing either.
    pad = 9
    padded = {
        "input_ids": F.pad(alone["input_ids"], (0, pad), value=toy_tokenizer().pad_token_id),
        "attention_mask": F.pad(alone["attention_mask"], (0, pad), value=0),
        "labels": F.pad(alone["labels"], (0, pad), value=IGNORE),
    }
    torch.testing.assert_close(task.per_sample_loss(task.forward(model, padded), padded), loss_alone, atol=1e-5, rtol=1e-5)


def test_a_sample_without_answer_tokens_has_zero_loss():
    logits, b = _random_lm_batch(seed=3)
    b["labels"][2] = IGNORE
    task = CausalLMTask()
    assert task.per_sample_loss(logits, b)[2] == 0 and task.log_likelihood(logits, b)[2] == 0
    assert task.correct(logits, b)[2]


# ---------------------------------------------------------------------------------- KL
def test_kl_is_zero_for_identical_models(model, batch):
    task = CausalLMTask()
    logits = task.forward(model, batch)
    kl = task.kl_divergence(logits, logits.clone(), batch)
    assert kl.shape == (len(QA),)
    torch.testing.assert_close(kl, torch.zeros_like(kl), atol=1e-6, rtol=0)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_kl_matches_a_hand_computation(model, batch, temperature):
    task = CausalLMTask()
    with torch.no_grad():
        logits = task.forward(model, batch)
        ref = task.forward(toy_model(seed=1), batch)
    kl = task.kl_divergence(logits, ref, batch, temperature=temperature)
    expected = []
    for row in range(len(QA)):
        keep = batch["labels"][row, 1:] != IGNORE
        log_p = torch.log_softmax(logits[row, :-1][keep] / temperature, -1)
        log_q = torch.log_softmax(ref[row, :-1][keep] / temperature, -1)
        # KL(p_ref || p_model) per token, then the mean over the answer tokens.
        expected.append(F.kl_div(log_p, log_q, log_target=True, reduction="none").sum(-1).mean())
    torch.testing.assert_close(kl, torch.stack(expected))
    assert torch.all(kl > 0)
    with pytest.raises(ValueError, match="temperature"):
        task.kl_divergence(logits, ref, batch, temperature=0)


# ---------------------------------------------------------------------------------- correct / relabel / features
def test_correct_is_a_teacher_forced_exact_match():
    logits, b = _random_lm_batch(seed=4)
    task = CausalLMTask()
    perfect = torch.full_like(logits, -5.0)
    labels = b["labels"]
    for row in range(labels.shape[0]):
        for t in range(1, labels.shape[1]):
            if labels[row, t] != IGNORE:
                perfect[row, t - 1, labels[row, t]] = 5.0
    assert task.correct(perfect, b).tolist() == [True, True, True]
    wrong = perfect.clone()
    wrong[1, 3] = -wrong[1, 3]  # position 3 predicts answer token 4 of sample 1
    assert task.correct(wrong, b).tolist() == [True, False, True]
    # A wrong guess where the label is ignored (prompt/padding) does not count.
    wrong_prompt = perfect.clone()
    wrong_prompt[:, 0] = -wrong_prompt[:, 0]
    assert task.correct(wrong_prompt, b).all()


def test_memorising_the_answers_makes_them_correct_and_generated():
    task = CausalLMTask()
    model = toy_model(seed=0).train()
    batch = qa_batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = task.per_sample_loss(task.forward(model, batch), batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert task.correct(task.forward(model, batch), batch).all()
    answers = generate_answers(model, toy_tokenizer(), [qa["question"] for qa in QA[:3]], max_new_tokens=24)
    assert answers == [qa["answer"] for qa in QA[:3]]
    assert model.training  # the train/eval mode is restored


def test_relabel_raises_a_clear_error(batch):
    with pytest.raises(NotImplementedError, match="meaningless for a language model"):
        CausalLMTask().relabel(None, batch)


def test_features_at_a_decoder_layer(model, batch):
    task = CausalLMTask()
    b, t = batch["input_ids"].shape
    feats = task.features(model, batch, "model.layers.0")
    assert feats.shape == (b, t * model.config.hidden_size)
    # The hook's capture and `output_hidden_states` agree: hidden_states[1] is layer 0's output.
    torch.testing.assert_close(feats, task.hidden_states(model, batch, 1).flatten(1))
    assert task.features(model, batch, "model.layers.1").shape == (b, t * model.config.hidden_size)
    assert task.hidden_states(model, batch, -1).shape == (b, t, model.config.hidden_size)
    with pytest.raises(ValueError, match="should lie in"):
        task.hidden_states(model, batch, 7)
    with pytest.raises(ValueError, match="`layer` should name a submodule"):
        task.features(model, batch, "model.layers.9")


# ---------------------------------------------------------------------------------- QACollator
def test_collator_masks_exactly_the_prompt_and_right_pads():
    tok = toy_tokenizer()
    collator = QACollator(tok, max_length=64)
    out = collator(QA[:3])
    assert set(out) == {"input_ids", "attention_mask", "labels"} and all(v.dtype == torch.long for v in out.values())
    for row, qa in enumerate(QA[:3]):
        prompt = collator.prompt_ids(qa["question"])
        answer = tok(qa["answer"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        n = len(prompt) + len(answer)
        assert out["input_ids"][row, :n].tolist() == prompt + answer
        assert out["labels"][row].tolist() == [IGNORE] * len(prompt) + answer + [IGNORE] * (out["labels"].shape[1] - n)
        assert out["attention_mask"][row].tolist() == [1] * n + [0] * (out["labels"].shape[1] - n)
        assert torch.all(out["input_ids"][row, n:] == tok.pad_token_id)
        assert tok.decode(out["input_ids"][row, len(prompt) : n], skip_special_tokens=True) == qa["answer"]
    # The chat template wraps the question; the prompt ends with the generation prompt.
    assert collator.prompt_text("Hi?") == "<|user|>\nHi?</s>\n<|assistant|>\n"
    assert out["attention_mask"].sum(1).max() == out["input_ids"].shape[1]  # padded to the longest


def test_collator_prompt_formats_and_extra_keys():
    tok = toy_tokenizer()
    plain = QACollator(tok, chat_template=False)
    assert plain.prompt_text("Why?") == "Question: Why?\nAnswer: "
    # A tokenizer without a chat template falls back to the plain format.
    assert QACollator(toy_tokenizer(chat_template=False)).prompt_text("Why?") == "Question: Why?\nAnswer: "
    system = QACollator(tok, system_prompt="Be brief.")
    assert system.prompt_text("Why?") == "<|system|>\nBe brief.</s>\n<|user|>\nWhy?</s>\n<|assistant|>\n"
    with_extra = QACollator(tok)([{**QA[0], "id": 7, "split": "forget"}])
    torch.testing.assert_close(with_extra, QACollator(tok)([QA[0]]))
    with pytest.raises(ValueError, match="'question' and 'answer'"):
        QACollator(tok)([{"question": "Why?"}])
    with pytest.raises(ValueError, match="empty"):
        QACollator(tok)([])


def test_collator_truncates_the_answer_and_rejects_a_too_long_prompt():
    tok = toy_tokenizer()
    full = QACollator(tok, max_length=64)
    prompt = full.prompt_ids(QA[0]["question"])
    short = QACollator(tok, max_length=len(prompt) + 3)([QA[0]])
    assert short["input_ids"].shape == (1, len(prompt) + 3)
    assert short["input_ids"][0, : len(prompt)].tolist() == prompt  # the whole prompt is kept
    assert (short["labels"][0] != IGNORE).sum() == 3
    with pytest.raises(ValueError, match=r"leaves no room for the answer within `max_length`=\d+"):
        QACollator(tok, max_length=len(prompt))([QA[0]])
    with pytest.raises(ValueError, match="`max_length` should be an int"):
        QACollator(tok, max_length=0)


# ---------------------------------------------------------------------------------- generation
def test_generate_answers_left_pads_consistently(model):
    tok = toy_tokenizer()
    questions = [qa["question"] for qa in QA]
    batched = generate_answers(model, tok, questions, max_new_tokens=6, batch_size=4)
    alone = [generate_answers(model, tok, [q], max_new_tokens=6)[0] for q in questions]
    assert len(batched) == len(questions) and all(isinstance(a, str) for a in batched)
    assert batched == alone
    assert tok.padding_side == "right"
    with pytest.raises(ValueError, match="not one string"):
        generate_answers(model, tok, "What?")


# ---------------------------------------------------------------------------------- the tokenizer
def test_the_tokenizer_belongs_to_the_task(tmp_path):
    assert CausalLMTask().tokenizer is None
    tok = toy_tokenizer()
    assert CausalLMTask(tokenizer=tok).tokenizer is tok
    tok.save_pretrained(tmp_path)
    task = CausalLMTask(tokenizer=tmp_path)  # a path: loaded on first use, locally only
    loaded = task.tokenizer
    assert loaded is task.tokenizer and loaded("Hello")["input_ids"] == tok("Hello")["input_ids"]


def test_a_bad_tokenizer_is_refused():
    with pytest.raises(TypeError, match="`tokenizer` should be a transformers tokenizer, a path to one, or None; got int"):
        CausalLMTask(tokenizer=3)
