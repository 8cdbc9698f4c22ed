"""IdK (SFT on refusals), the refusal list and picker, and QACollator's alternative answers, on a tiny Llama."""

from __future__ import annotations

import functools
import math

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import CombinedLoader
from llm_toys import QA, toy_model, toy_tokenizer
from torch.utils.data import DataLoader

from lightning_unlearn import UnlearningModule
from lightning_unlearn.methods import IDK_ANSWERS, METHODS, IdK, IdkAnswers, alternative_batch
from lightning_unlearn.methods.base import StepContext
from lightning_unlearn.tasks import CausalLMTask, ClassificationTask, QACollator

FORGET, RETAIN = QA[:2], QA[2:]
TASK = CausalLMTask()


def _collator(**kwargs):
    return QACollator(toy_tokenizer(), max_length=64, **kwargs)


def _idk_collator(seed: int = 0):
    return _collator(alternatives={"idk": IdkAnswers(seed=seed)})


@functools.cache
def _memorised_state() -> dict[str, torch.Tensor]:
    model, batch = toy_model(seed=0).train(), _collator()(QA)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = TASK.per_sample_loss(TASK.forward(model, batch), batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _memorised():
    model = toy_model(seed=0)
    model.load_state_dict(_memorised_state())
    return model


def _ctx(method, model, forget, retain=None):
    return StepContext(model=model, task=TASK, forget=forget, retain=retain, reference=method.reference)


def _hand_mean_nll(model, input_ids, attention_mask, labels):
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    out = []
    for row in range(logits.shape[0]):
        keep = labels[row, 1:] != -100
        out.append(F.cross_entropy(logits[row, :-1][keep], labels[row, 1:][keep]))
    return torch.stack(out)


@torch.no_grad()
def _log_likelihood(model, batch) -> float:
    return float(TASK.log_likelihood(TASK.forward(model.eval(), batch), batch).mean())


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
    plain, with_idk = _collator()(QA), _idk_collator()(QA)
    assert set(plain) == {"input_ids", "attention_mask", "labels"}
    for key, value in plain.items():
        assert torch.equal(with_idk[key], value)
    assert _collator().alternatives == {}


def test_collator_alternative_answers_share_the_prompt():
    pick = IdkAnswers(seed=0)
    collator = _collator(alternatives={"idk": pick, "alt": "other"})
    examples = [dict(e, other=f"Something else {i}.") for i, e in enumerate(QA[:3])]
    batch = collator(examples)
    assert {f"{n}_{k}" for n in ("idk", "alt") for k in ("input_ids", "attention_mask", "labels")} <= set(batch)
    for name, answers in (("idk", [pick(e) for e in examples]), ("alt", [e["other"] for e in examples])):
        # each row is exactly the collator's encoding of (question, alternative answer), right-padded
        expected = _collator()([{"question": e["question"], "answer": a} for e, a in zip(examples, answers)])
        for key in ("input_ids", "attention_mask", "labels"):
            assert torch.equal(batch[f"{name}_{key}"], expected[key]), (name, key)
    tok = toy_tokenizer()
    row = batch["idk_labels"][0]
    assert tok.decode(row[row != -100][:-1]) == pick(examples[0])  # the refusal, then EOS
    n_prompt = len(collator.prompt_ids(QA[0]["question"]))
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
        _collator(alternatives=alternatives)


def test_collator_alternative_must_be_a_string():
    with pytest.raises(ValueError, match=r"The alternative answer 'alt' should be a string; example\['missing'\] gave NoneType"):
        _collator(alternatives={"alt": "missing"})(QA[:1])
    with pytest.raises(ValueError, match="The alternative answer 'alt' should be a string; .* gave int 3"):
        _collator(alternatives={"alt": lambda e: 3})(QA[:1])


# ---------------------------------------------------------------------------------- IdK
def test_registered():
    assert METHODS.get("idk") is IdK
    assert IdK.uses_forget and not IdK.needs_reference and IdK.supported_tasks == ("causal_lm",)
    assert IdK().alternative == "idk"


def test_alternative_batch_uses_the_task_keys():
    batch = _idk_collator()(FORGET)
    idk = alternative_batch(batch, "idk", TASK)
    assert set(idk) == {"input_ids", "attention_mask", "labels"}
    assert idk["input_ids"] is batch["idk_input_ids"] and idk["labels"] is batch["idk_labels"]
    custom = CausalLMTask(input_key="ids", mask_key=None, label_key="y")
    assert set(alternative_batch(batch, "idk", custom)) == {"ids", "y"}
    with pytest.raises(KeyError, match=r"alternatives=\{'idk': IdkAnswers\(\)\}"):
        alternative_batch(_collator()(FORGET), "idk", TASK)


def test_loss_against_the_closed_form():
    model, forget, retain = _memorised(), _idk_collator()(FORGET), _collator()(RETAIN)
    method = IdK(forget_weight=0.7, retain_weight=1.5)
    out = method.loss(_ctx(method, model, forget, retain))
    ce_idk = _hand_mean_nll(model, forget["idk_input_ids"], forget["idk_attention_mask"], forget["idk_labels"]).mean()
    ce_retain = _hand_mean_nll(model, retain["input_ids"], retain["attention_mask"], retain["labels"]).mean()
    torch.testing.assert_close(out.parts["forget_loss"], ce_idk.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.parts["retain_loss"], ce_retain.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, 0.7 * ce_idk + 1.5 * ce_retain, rtol=1e-5, atol=1e-6)


def test_the_true_forget_answer_does_not_enter_the_loss():
    model, forget = _memorised(), _idk_collator()(FORGET)
    method = IdK(retain_loss="none")
    scrambled = dict(forget, input_ids=forget["input_ids"].flip(0), labels=torch.full_like(forget["labels"], -100))
    torch.testing.assert_close(method.loss(_ctx(method, model, forget)).loss, method.loss(_ctx(method, model, scrambled)).loss)


def test_a_batch_without_refusals_raises():
    method = IdK()
    with pytest.raises(KeyError, match="has no \\['idk_input_ids', 'idk_labels', 'idk_attention_mask'\\] entries"):
        method.loss(_ctx(method, _memorised(), _collator()(FORGET)))


def test_needs_a_causal_lm_task():
    with pytest.raises(TypeError, match="IdK unlearns causal language models: it needs task=CausalLMTask"):
        IdK().setup(toy_model(), ClassificationTask())


class _Losses(Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values.append(float(outputs["loss"]))


def test_unlearning_module_and_trainer():
    model, collate = _memorised(), _idk_collator()
    loaders = {
        "forget": DataLoader(FORGET, batch_size=2, collate_fn=collate),
        "retain": DataLoader(RETAIN, batch_size=2, collate_fn=collate),
    }
    forget = collate(FORGET)
    before, idk_before = _log_likelihood(model, forget), _log_likelihood(model, alternative_batch(forget, "idk", TASK))
    module = UnlearningModule(model.train(), IdK(), task=TASK, optimizer=functools.partial(torch.optim.Adam, lr=1e-2))
    losses = _Losses()
    trainer = pl.Trainer(
        max_steps=4,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        devices=1,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[losses],
    )
    trainer.fit(module, train_dataloaders=CombinedLoader(loaders, mode="min_size"))
    assert trainer.global_step == 4 and all(math.isfinite(v) for v in losses.values)
    assert _log_likelihood(model, forget) < before  # the true answers became less likely
    assert _log_likelihood(model, alternative_batch(forget, "idk", TASK)) > idk_before  # the refusals more likely


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
