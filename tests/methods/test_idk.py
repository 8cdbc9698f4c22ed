"""IdK (SFT on refusals), the refusal list and picker, and QACollator's alternative answers, on a tiny Llama."""

from __future__ import annotations

import pytest
import torch
from llm_toys import QA, toy_model, toy_tokenizer

from lightning_unlearn.methods import IDK_ANSWERS, METHODS, IdK, IdkAnswers, alternative_batch
from lightning_unlearn.tasks import CausalLMTask, ClassificationTask

from ._llm import FORGET, RETAIN, TASK, collator, ctx, fit, hand_nll, idk_collator, idk_log_likelihoods, memorised_model


# ---------------------------------------------------------------------------------- refusals
def test_refusal_list():
    assert len(IDK_ANSWERS) == 20 == len(set(IDK_ANSWERS))
    assert all(isinstance(a, str) and a.strip() == a and a for a in IDK_ANSWERS)


def test_idk_answers_are_seeded_and_deterministic():
    pick = IdkAnswers(seed=0)
    first = [pick(e) for e in QA]
    assert all(a in IDK_ANSWERS for a in first)
    assert first == [IdkAnswers(seed=0)(e) for e in QA]  # a fresh picker (another worker, a resumed run) agrees
    assert first == [pick(dict(e, extra=1)) for e in QA]  # only the question and answer matter
    many = [{"question": f"Question number {i}?", "answer": "x"} for i in range(200)]
    by_seed = [[IdkAnswers(seed=s)(e) for e in many] for s in (0, 1)]
    assert by_seed[0] != by_seed[1]
    assert len(set(by_seed[0])) == len(IDK_ANSWERS)  # every refusal gets used
    custom = IdkAnswers(seed=3, answers=["No idea.", "Pass."])
    assert {custom(e) for e in many} == {"No idea.", "Pass."}
    assert repr(custom) == "IdkAnswers(seed=3, answers=<2 refusals>)"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"seed": "0"}, TypeError, "`seed` should be an int, got str '0'"),
        ({"seed": True}, TypeError, "`seed` should be an int, got bool True"),
        ({"answers": []}, ValueError, "`answers` should be a non-empty sequence of strings"),
        ({"answers": "I don't know."}, ValueError, "`answers` should be a non-empty sequence of strings"),
        ({"answers": ["ok", " "]}, ValueError, "`answers` should hold non-empty strings only"),
    ],
)
def test_idk_answers_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        IdkAnswers(**kwargs)


# ---------------------------------------------------------------------------------- QACollator(alternatives=...)
def test_collator_without_alternatives_is_unchanged():
    plain, with_idk = collator()(QA), idk_collator()(QA)
    assert set(plain) == {"input_ids", "attention_mask", "labels"}
    for key, value in plain.items():
        assert torch.equal(with_idk[key], value)
    assert collator().alternatives == {}


def test_collator_alternative_answers_share_the_prompt():
    pick = IdkAnswers(seed=0)
    collate = collator(alternatives={"idk": pick, "alt": "other"})
    examples = [dict(e, other=f"Something else {i}.") for i, e in enumerate(QA[:3])]
    batch = collate(examples)
    assert {f"{n}_{k}" for n in ("idk", "alt") for k in ("input_ids", "attention_mask", "labels")} <= set(batch)
    for name, answers in (("idk", [pick(e) for e in examples]), ("alt", [e["other"] for e in examples])):
        # each row is exactly the collator's encoding of (question, alternative answer), right-padded
        expected = collator()([{"question": e["question"], "answer": a} for e, a in zip(examples, answers)])
        for key in ("input_ids", "attention_mask", "labels"):
            assert torch.equal(batch[f"{name}_{key}"], expected[key]), (name, key)
    tok = toy_tokenizer()
    row = batch["idk_labels"][0]
    assert tok.decode(row[row != -100][:-1]) == pick(examples[0])  # the refusal, then EOS
    n_prompt = len(collate.prompt_ids(QA[0]["question"]))
    assert torch.equal(batch["idk_input_ids"][0, :n_prompt], batch["input_ids"][0, :n_prompt])


@pytest.mark.parametrize(
    ("alternatives", "error", "match"),
    [
        (["idk"], TypeError, "`alternatives` should be a mapping"),
        ({"labels": "x"}, ValueError, "`alternatives` names should be identifiers other than"),
        ({"not a name": "x"}, ValueError, "`alternatives` names should be identifiers"),
        ({"idk": 3}, TypeError, r"`alternatives\['idk'\]` should be an example key \(str\) or a callable"),
    ],
)
def test_collator_alternatives_errors(alternatives, error, match):
    with pytest.raises(error, match=match):
        collator(alternatives=alternatives)


def test_collator_alternative_must_be_a_string():
    with pytest.raises(ValueError, match=r"The alternative answer 'alt' should be a string; example\['missing'\] gave NoneType"):
        collator(alternatives={"alt": "missing"})(QA[:1])
    with pytest.raises(ValueError, match="The alternative answer 'alt' should be a string; .* gave int 3"):
        collator(alternatives={"alt": lambda e: 3})(QA[:1])


# ---------------------------------------------------------------------------------- IdK
def test_registered():
    assert METHODS.get("idk") is IdK
    assert IdK.uses_forget and not IdK.needs_reference and IdK.supported_tasks == ("causal_lm", "vision_language")
    assert IdK().alternative == "idk"


def test_alternative_batch_uses_the_task_keys():
    batch = idk_collator()(FORGET)
    idk = alternative_batch(batch, "idk", TASK)
    assert set(idk) == {"input_ids", "attention_mask", "labels"}
    assert idk["input_ids"] is batch["idk_input_ids"] and idk["labels"] is batch["idk_labels"]
    custom = CausalLMTask(input_key="ids", mask_key=None, label_key="y")
    assert set(alternative_batch(batch, "idk", custom)) == {"ids", "y"}
    with pytest.raises(KeyError, match=r"alternatives=\{'idk': IdkAnswers\(\)\}"):
        alternative_batch(collator()(FORGET), "idk", TASK)


def test_loss_against_the_closed_form():
    model, forget, retain = memorised_model(steps=30), idk_collator()(FORGET), collator()(RETAIN)
    method = IdK(forget_weight=0.7, retain_weight=1.5)
    out = method.loss(ctx(method, model, forget, retain))
    ce_idk = hand_nll(model, forget, prefix="idk_").mean()
    ce_retain = hand_nll(model, retain).mean()
    torch.testing.assert_close(out.parts["forget_loss"], ce_idk.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.parts["retain_loss"], ce_retain.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, 0.7 * ce_idk + 1.5 * ce_retain, rtol=1e-5, atol=1e-6)


def test_the_true_forget_answer_does_not_enter_the_loss():
    model, forget = memorised_model(steps=30), idk_collator()(FORGET)
    method = IdK(retain_loss="none")
    scrambled = dict(forget, input_ids=forget["input_ids"].flip(0), labels=torch.full_like(forget["labels"], -100))
    torch.testing.assert_close(method.loss(ctx(method, model, forget)).loss, method.loss(ctx(method, model, scrambled)).loss)


def test_a_batch_without_refusals_raises():
    method = IdK()
    with pytest.raises(KeyError, match="has no \\['idk_input_ids', 'idk_labels', 'idk_attention_mask'\\] entries"):
        method.loss(ctx(method, memorised_model(steps=30), collator()(FORGET)))


def test_needs_a_causal_lm_task():
    with pytest.raises(TypeError, match="IdK unlearns causal language models or vision-language models: it needs task=CausalLMTask or VisionLanguageTask"):
        IdK().setup(toy_model(), ClassificationTask())


def test_unlearning_module_and_trainer():
    model, collate = memorised_model(steps=30), idk_collator()
    forget = collate(FORGET)
    before, idk_before = idk_log_likelihoods(model, forget)
    fit(model, IdK(), steps=4, collate=collate)  # checks: 4 steps, finite losses
    after, idk_after = idk_log_likelihoods(model, forget)
    assert after < before  # the true answers became less likely
    assert idk_after > idk_before  # the refusals more likely


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"alternative": "the idk"}, ValueError, "`alternative` should be the name of the alternative answers"),
        ({"alternative": 3}, ValueError, "`alternative` should be the name of the alternative answers"),
        ({"retain_weight": -1}, ValueError, "`retain_weight` should be >= 0"),
        ({"retain_loss": "NLL"}, ValueError, r"`retain_loss` should be one of \['kl', 'nll', 'none'\], got 'NLL'"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        IdK(**kwargs)
