"""SimNPO: L_f = -(2/β)·mean logσ(β·(NLL_avg − δ)) = (2/β)·mean softplus(−β·(NLL_avg − δ)), on a tiny Llama."""

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
from lightning_unlearn.methods import METHODS, GradientAscent, SimNPO, simnpo_loss
from lightning_unlearn.methods.base import StepContext
from lightning_unlearn.tasks import CausalLMTask, QACollator

FORGET, RETAIN = QA[:2], QA[2:]
TASK = CausalLMTask()


@functools.cache
def _memorised_state() -> dict[str, torch.Tensor]:
    model, batch = toy_model(seed=0).train(), _batch(QA)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = TASK.per_sample_loss(TASK.forward(model, batch), batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _memorised():
    """A tiny Llama that has (nearly) memorised the QA pairs, so there is something to forget."""
    model = toy_model(seed=0)
    model.load_state_dict(_memorised_state())
    return model


def _batch(examples):
    return QACollator(toy_tokenizer(), max_length=64)(examples)


def _ctx(method, model, forget, retain=None):
    return StepContext(model=model, task=TASK, forget=forget, retain=retain, reference=method.reference)


def _hand_mean_nll(model, batch):
    """Per sample, the mean answer-token NLL by F.cross_entropy on shifted, masked positions."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    out = []
    for row in range(logits.shape[0]):
        keep = batch["labels"][row, 1:] != -100
        out.append(F.cross_entropy(logits[row, :-1][keep], batch["labels"][row, 1:][keep]))
    return torch.stack(out)


@torch.no_grad()
def _forget_log_likelihood(model, batch) -> float:
    return float(TASK.log_likelihood(TASK.forward(model.eval(), batch), batch).mean())


def test_registered_and_reference_free():
    assert METHODS.get("simnpo") is SimNPO
    assert not SimNPO.needs_reference and SimNPO.uses_forget
    assert SimNPO.supported_tasks == ("causal_lm",)
    method = SimNPO()
    assert (method.beta, method.delta, method.forget_weight, method.retain_weight) == (4.5, 0.0, 0.125, 1.0)
    assert method.retain_loss_kind == "nll"


@pytest.mark.parametrize(("beta", "delta"), [(4.5, 0.0), (1.0, 0.5), (0.1, -1.0)])
def test_simnpo_loss_closed_form(beta, delta):
    g = torch.Generator().manual_seed(0)
    nll_avg = torch.rand(16, generator=g) * 4
    expected = -(2.0 / beta) * F.logsigmoid(beta * (nll_avg - delta)).mean()
    torch.testing.assert_close(simnpo_loss(nll_avg, beta, delta), expected)
    # the same in terms of the mean token log-prob, δ inside the β product (the code's convention)
    avg_log_prob = -nll_avg
    by_log_prob = -(2.0 / beta) * F.logsigmoid(-beta * avg_log_prob - beta * delta).mean()
    torch.testing.assert_close(simnpo_loss(nll_avg, beta, delta), by_log_prob)


def test_simnpo_loss_is_bounded_below_and_decreasing_in_the_nll():
    nll = torch.tensor([0.0, 1.0, 5.0, 50.0, 1e4])
    values = [float(simnpo_loss(n[None], 4.5)) for n in nll]
    assert values[0] == pytest.approx(2 / 4.5 * math.log(2))  # at NLL = δ = 0: (2/β)·log 2
    assert all(a > b for a, b in zip(values, values[1:4])) and values[-1] == pytest.approx(0.0, abs=1e-12)
    assert min(values) >= 0.0


def test_forget_loss_on_a_tiny_llama_against_the_closed_form():
    model, forget, retain = _memorised(), _batch(FORGET), _batch(RETAIN)
    method = SimNPO(beta=2.0, delta=0.3, forget_weight=0.5, retain_weight=2.0)
    out = method.loss(_ctx(method, model, forget, retain))
    nll = _hand_mean_nll(model, forget)
    expected_f = -(2.0 / 2.0) * F.logsigmoid(2.0 * (nll - 0.3)).mean()
    expected_r = _hand_mean_nll(model, retain).mean()
    torch.testing.assert_close(out.parts["forget_loss"], expected_f.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.parts["retain_loss"], expected_r.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, 0.5 * expected_f + 2.0 * expected_r, rtol=1e-5, atol=1e-6)


def _grads(loss, model):
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def test_gradient_is_a_sigmoid_weighted_gradient_ascent():
    # ∇L_f = -(2/B)·Σ_i σ(-β·(NLL_i − δ))·∇NLL_i: gradient ascent on each sample's mean NLL, each sample
    # weighted by how likely its answer still is
    model, forget = _memorised(), _batch(FORGET)
    beta, delta = 1.5, 0.2
    method = SimNPO(beta=beta, delta=delta, forget_weight=1.0, retain_loss="none")
    simnpo = _grads(method.loss(_ctx(method, model, forget)).loss, model)
    nll = _hand_mean_nll(model, forget)
    weights = 2 * torch.sigmoid(-beta * (nll.detach() - delta)) / len(nll)
    weighted_ga = _grads(-(weights * nll).sum(), model)
    for a, b in zip(simnpo, weighted_ga):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    # as β → 0 every weight tends to 2·σ(0) = 1: the gradient of gradient ascent on the mean NLL
    ga, near_zero = GradientAscent(), SimNPO(beta=1e-5, retain_loss="none", forget_weight=1.0)
    ga_grads = _grads(ga.loss(_ctx(ga, model, forget)).loss, model)
    limit = _grads(near_zero.loss(_ctx(near_zero, model, forget)).loss, model)
    for a, b in zip(limit, ga_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    assert not all(torch.allclose(a, b, rtol=1e-3) for a, b in zip(simnpo, ga_grads))


def test_gradient_steps_lower_the_forget_likelihood():
    model, forget = _memorised(), _batch(FORGET)
    method = SimNPO(retain_loss="none", forget_weight=1.0)
    before = _forget_log_likelihood(model, forget)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for _ in range(3):
        loss = method.loss(_ctx(method, model, forget)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert _forget_log_likelihood(model, forget) < before - 0.1


class _Losses(Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.values.append(float(outputs["loss"]))


def test_unlearning_module_and_trainer():
    model = _memorised()
    collate = QACollator(toy_tokenizer(), max_length=64)
    loaders = {
        "forget": DataLoader(FORGET, batch_size=2, collate_fn=collate),
        "retain": DataLoader(RETAIN, batch_size=2, collate_fn=collate),
    }
    before = _forget_log_likelihood(model, collate(FORGET))
    module = UnlearningModule(model.train(), SimNPO(beta=2.5), task=TASK, optimizer=functools.partial(torch.optim.Adam, lr=1e-2))
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
    assert trainer.global_step == 4 and len(losses.values) == 4
    assert all(math.isfinite(v) for v in losses.values)
    assert _forget_log_likelihood(model, collate(FORGET)) < before


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"beta": 0}, ValueError, "`beta` should be > 0, got 0"),
        ({"beta": -4.5}, ValueError, "`beta` should be > 0, got -4.5"),
        ({"beta": "4.5"}, TypeError, "`beta` should be a number, got str '4.5'"),
        ({"delta": "0"}, TypeError, "`delta` should be a number, got str '0'"),
        ({"delta": float("nan")}, ValueError, "`delta` should be finite, got nan"),
        ({"forget_weight": -1}, ValueError, "`forget_weight` should be >= 0"),
        ({"retain_loss": "ce"}, ValueError, r"`retain_loss` should be one of \['kl', 'nll', 'none'\], got 'ce'"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        SimNPO(**kwargs)
