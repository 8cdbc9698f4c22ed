"""The dropout convention of methods with a frozen reference θ₀ (issue 13): θ₀ runs in eval mode, so the model's
dropout is set to 0 while unlearning, and at the first step the model and θ₀ are the same function (NPO's
log-ratio, IdK-DPO's ratios, KL and activation terms exactly 0) on GPT-2 and OPT with their default dropout 0.1."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from llm_toys import LM_FAMILIES, QA, tiny_causal_lm

from lightning_unlearn._weights import disable_dropout, dropout_disabled, dropout_settings, restore_dropout
from lightning_unlearn.methods import NPO, RMU, SCRUB, GradDiff, GradientAscent, IdKDPO, UnlearningMethod

from ._llm import FORGET, RETAIN, TASK, collator, ctx, idk_collator, unlearn

#: Every dropout of each family, at 0.3 (transformers config keywords).
_DROPOUTS = {
    "gpt2": {"resid_pdrop": 0.3, "embd_pdrop": 0.3, "attn_pdrop": 0.3},
    "opt": {"dropout": 0.3, "attention_dropout": 0.3, "activation_dropout": 0.3, "layerdrop": 0.3},
    "neox": {"attention_dropout": 0.3, "hidden_dropout": 0.3},
    "phi": {"resid_pdrop": 0.3, "embd_pdrop": 0.3, "attention_dropout": 0.3},
    "qwen2": {"attention_dropout": 0.3},
    "qwen3": {"attention_dropout": 0.3},
    "gemma": {"attention_dropout": 0.3},
    "llama": {"attention_dropout": 0.3},
}


def _logits(model, batch):
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@pytest.mark.parametrize("family", LM_FAMILIES)
def test_disabling_dropout_makes_training_mode_compute_the_eval_function(family):
    model, batch = tiny_causal_lm(family, **_DROPOUTS[family]), collator()(QA)
    expected = _logits(model.eval(), batch)
    model.train()
    assert not torch.allclose(_logits(model, batch), expected)  # dropout is active
    before = [(name, attribute, value) for name, _, attribute, value in dropout_settings(model)]
    with dropout_disabled(model):
        torch.testing.assert_close(_logits(model, batch), expected, rtol=0, atol=1e-6)
        assert model.training and dropout_settings(model) == []  # the flags are untouched; the probabilities are 0
    assert [(name, attribute, value) for name, _, attribute, value in dropout_settings(model)] == before
    settings = disable_dropout(model)
    torch.testing.assert_close(_logits(model, batch), expected, rtol=0, atol=1e-6)
    restore_dropout(settings)
    assert not torch.allclose(_logits(model, batch), expected)


def _step_zero(method: UnlearningMethod, family: str = "gpt2", collate=None):
    """``method``'s loss parts at the first step on a tiny ``family`` model in training mode (its default dropout)."""
    model = tiny_causal_lm(family).train()
    assert dropout_settings(model)  # GPT-2 and OPT have dropout 0.1 by default
    collate = collate or collator()
    forget, retain = collate(FORGET), collate(RETAIN[:2])
    with pytest.warns(UserWarning, match=rf"{type(method).__name__} compares the model with its frozen reference θ₀"):
        method.setup(model, TASK)
    assert model.training and dropout_settings(model) == []
    return method.loss(ctx(method, model, forget, retain)).parts, model


@pytest.mark.parametrize("family", ["gpt2", "opt"])
def test_npo_log_ratio_is_exactly_zero_at_the_first_step(family):
    method = NPO(beta=0.1, retain_loss="none")
    model = tiny_causal_lm(family).train()
    forget = collator()(FORGET)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        method.setup(model, TASK)
    step = ctx(method, model, forget)
    parts = method.loss(step).parts
    ratio = TASK.log_likelihood(step.outputs("forget"), forget) - TASK.log_likelihood(step.reference_outputs("forget"), forget)
    torch.testing.assert_close(ratio, torch.zeros_like(ratio), rtol=0, atol=1e-5)
    assert parts["forget_loss"].item() == pytest.approx(2 / 0.1 * math.log(2), abs=1e-4)  # (2/β)·softplus(0)
    assert any("dropout is set to 0 while unlearning" in str(w.message) for w in caught)


def test_idk_dpo_ratios_cancel_at_the_first_step():
    parts, _ = _step_zero(IdKDPO(beta=0.1, retain_loss="none"), collate=idk_collator())
    assert parts["forget_loss"].item() == pytest.approx(2 / 0.1 * math.log(2), abs=1e-4)


def test_kl_terms_are_zero_at_the_first_step():
    parts, _ = _step_zero(SCRUB(alpha=1.0, gamma=0.0, schedule="combined"))  # both KL terms in one step
    assert abs(parts["forget_loss"].item()) < 1e-6 and abs(parts["retain_loss"].item()) < 1e-6
    parts, _ = _step_zero(GradDiff(retain_loss="kl"), family="opt")
    assert abs(parts["retain_loss"].item()) < 1e-6


def test_rmu_retain_activations_match_the_reference_at_the_first_step():
    parts, _ = _step_zero(RMU(layer=1, steering_coeff=4.0))
    assert abs(parts["retain_loss"].item()) < 1e-10


def test_restore_dropout_puts_the_probabilities_back_and_methods_without_a_reference_leave_them_alone():
    model = tiny_causal_lm("gpt2").train()
    before = [(name, attribute, value) for name, _, attribute, value in dropout_settings(model)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: GA has no reference, the dropout stays
        GradientAscent().setup(model, TASK)
    assert [(n, a, v) for n, _, a, v in dropout_settings(model)] == before
    method = NPO()
    with pytest.warns(UserWarning, match=r"\(7 probabilities: \['transformer.drop.p=0.1', "):
        method.setup(model, TASK)
    assert dropout_settings(model) == []
    method.restore_dropout()
    assert [(n, a, v) for n, _, a, v in dropout_settings(model)] == before


def test_the_first_trainer_step_of_npo_sees_no_dropout_noise():
    model = tiny_causal_lm("gpt2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = unlearn(model, NPO(beta=0.1, retain_loss="none"), steps=1)
    assert losses[0] == pytest.approx(2 / 0.1 * math.log(2), abs=1e-4)
    assert any("dropout is set to 0 while unlearning" in str(w.message) for w in caught)


@pytest.mark.filterwarnings("ignore:NPO compares the model with its frozen reference")
def test_the_model_gets_its_dropout_back_when_a_fit_ends(tmp_path):
    """The dropout convention lasts for the run only: ``UnlearningModule`` and the ``Unlearn`` callback put every
    probability back at teardown (a user's model must not come back changed beyond its weights)."""
    from toys import NetClassifier, blobs, make_trainer, mlp

    from lightning_unlearn import ForgetRetainDataModule, Unlearn, UnlearningModule

    train = blobs(20, seed=1)
    module = UnlearningModule(mlp(0, dropout=0.3), NPO(), monitor=False)
    make_trainer(max_steps=2, limit_val_batches=0).fit(module, datamodule=ForgetRetainDataModule(train, forget_class=0, batch_size=8))
    assert module.model[2].p == 0.3

    user = NetClassifier(mlp(0, dropout=0.3))
    dm = ForgetRetainDataModule(train, forget_class=0, batch_size=8)
    unlearn = Unlearn(NPO(retain_loss="none"), dm.forget_set, batch_size=8, progress_bar=False, monitor=False)
    seen: list[float] = []
    user.on_train_batch_end = lambda *args: seen.append(user.net[2].p)  # type: ignore[method-assign]
    make_trainer(max_steps=2, callbacks=[unlearn]).fit(user, torch.utils.data.DataLoader(dm.retain_set, batch_size=8))
    assert seen == [0.0, 0.0] and user.net[2].p == 0.3
