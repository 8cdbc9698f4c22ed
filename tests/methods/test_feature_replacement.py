"""Feature replacement (selective forgetting in reasoning traces, §9 RECONSTRUCTED): the unlikelihood term in closed
form, the full loss against a hand computation, and a short unlearning run of a tiny Llama on real traces."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from torch.utils.data import DataLoader
from toys import make_trainer

from lightning_unlearn import UnlearningModule
from lightning_unlearn.datamodules import (
    TraceAnalyst,
    TraceCollator,
    TraceRewriter,
    edit_traces,
    generate_authors,
    reasoning_traces,
)
from lightning_unlearn.methods import METHODS, FeatureReplacement, GradDiff, unlikelihood_loss
from lightning_unlearn.methods.base import StepContext
from lightning_unlearn.models.llm import tiny_llama, train_tokenizer
from lightning_unlearn.tasks import CausalLMTask

from ._llm import hand_nll

TASK = CausalLMTask()


# ---------------------------------------------------------------------------------- the unlikelihood term
def test_unlikelihood_closed_form():
    logits = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]]])  # [1, 3, 3]
    labels = torch.tensor([[-100, 1, 0]])
    p = logits.softmax(-1)
    only_first = unlikelihood_loss(logits, labels, torch.tensor([[0, 1, 0]]))
    assert only_first.item() == pytest.approx(-math.log(1 - p[0, 0, 1].item()), rel=1e-6)
    both = unlikelihood_loss(logits, labels, torch.tensor([[0, 1, 1]]))
    expected = -math.log(1 - p[0, 0, 1].item()) - math.log(1 - p[0, 1, 0].item())
    assert both.item() == pytest.approx(expected, rel=1e-6)
    mean = unlikelihood_loss(logits, labels, torch.tensor([[0, 1, 1]]), reduction="mean")
    assert mean.item() == pytest.approx(expected / 2, rel=1e-6)
    # a mask on an ignored label or the first position (never predicted) adds nothing; no mark gives 0
    assert unlikelihood_loss(logits, labels, torch.tensor([[1, 1, 0]])).item() == pytest.approx(only_first.item())
    assert unlikelihood_loss(logits, labels, torch.zeros(1, 3, dtype=torch.long)).item() == 0.0


def test_unlikelihood_is_finite_when_the_token_is_certain():
    logits = torch.tensor([[[0.0, 100.0, 0.0], [0.0, 0.0, 0.0]]], requires_grad=True)
    loss = unlikelihood_loss(logits, torch.tensor([[-100, 1]]), torch.tensor([[0, 1]]))
    # -log(1 - p) with 1 - p = 2 / (e^100 + 2): 100 - log 2 (to float precision)
    assert loss.item() == pytest.approx(100 - math.log(2), rel=1e-5)
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[0, 0, 1] > 0  # pushes the certain token down


def test_unlikelihood_only_touches_marked_positions():
    logits = torch.randn(2, 5, 7, requires_grad=True, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 7, (2, 5), generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[0, 0, 1, 0, 0], [0, 1, 0, 0, 1]])
    unlikelihood_loss(logits, labels, mask).sum().backward()
    touched = logits.grad.abs().sum(-1) > 0  # logits at t - 1 score the label at t
    assert touched.tolist() == [[False, True, False, False, False], [True, False, False, True, False]]


def test_unlikelihood_errors():
    with pytest.raises(ValueError, match=r"`labels` and `span_mask` should have the logits' \[batch, length\] shape"):
        unlikelihood_loss(torch.zeros(1, 3, 4), torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"`reduction` should be one of \['mean', 'sum'\], got 'max'"):
        unlikelihood_loss(torch.zeros(1, 3, 4), torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3), reduction="max")


def test_constructor_errors():
    with pytest.raises(ValueError, match="`edit_weight` should be >= 0, got -1"):
        FeatureReplacement(edit_weight=-1)
    with pytest.raises(ValueError, match="`reduction` should be one of"):
        FeatureReplacement(reduction="token")
    with pytest.raises(ValueError, match="`span_key` should be the batch key"):
        FeatureReplacement(span_key="")
    assert METHODS.get("feature_replacement") is FeatureReplacement and FeatureReplacement.supported_tasks == ("causal_lm",)


# ---------------------------------------------------------------------------------- on real traces
@functools.cache
def _data():
    authors = generate_authors(3, seed=0, facts_per_author=2)
    examples = reasoning_traces(authors, seed=0)
    forget = edit_traces([e for e in examples if e["author_index"] == 0], TraceAnalyst(retrieval=False).fit(authors[:1]), TraceRewriter())
    retain = [e for e in examples if e["author_index"] != 0]
    tok = train_tokenizer([f"{e['question']} {e['answer']} {e.get('edited_answer', '')}" for e in examples + forget], vocab_size=360)
    return forget, retain, tok


def _model(seed: int = 0):
    tok = _data()[2]
    return tiny_llama(len(tok), seed=seed, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)


def _batches():
    forget, retain, tok = _data()
    collate = TraceCollator(tok)
    return collate(forget), collate(retain)


def test_loss_is_unlikelihood_plus_edited_and_retain_ce_by_hand():
    model = _model()
    forget, retain = _batches()
    method = FeatureReplacement(edit_weight=0.7, retain_weight=0.3)
    method.setup(model, TASK)
    out = method.loss(StepContext(model=model, task=TASK, forget=forget, retain=retain))
    logits = model(input_ids=forget["input_ids"], attention_mask=forget["attention_mask"]).logits
    ul = []
    for row in range(logits.shape[0]):
        keep = forget["span_mask"][row, 1:].bool()
        p = logits[row, :-1][keep].softmax(-1).gather(-1, forget["labels"][row, 1:][keep][:, None]).squeeze(-1)
        ul.append(-torch.log1p(-p).sum())
    assert all(int(forget["span_mask"][r].sum()) > 0 for r in range(logits.shape[0]))
    expected_forget = torch.stack(ul).mean() + 0.7 * hand_nll(model, forget, prefix="edited_").mean()
    assert out.parts["forget_loss"].item() == pytest.approx(expected_forget.item(), rel=1e-5)
    assert out.parts["retain_loss"].item() == pytest.approx(hand_nll(model, retain).mean().item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(expected_forget.item() + 0.3 * out.parts["retain_loss"].item(), rel=1e-5)


def test_without_the_span_mask_the_error_says_how_to_build_the_batch():
    model = _model()
    forget, _ = _batches()
    method = FeatureReplacement(retain_loss="none")
    method.setup(model, TASK)
    batch = {k: v for k, v in forget.items() if k != "span_mask"}
    with pytest.raises(KeyError, match="no 'span_mask' entry .* TraceCollator"):
        method.loss(StepContext(model=model, task=TASK, forget=batch, retain=None))


def _fit(model, method, forget_examples, retain_examples, steps, lr):
    collate = TraceCollator(_data()[2])
    loaders = {
        "forget": DataLoader(forget_examples, batch_size=len(forget_examples), collate_fn=collate),
        "retain": DataLoader(retain_examples, batch_size=len(retain_examples), collate_fn=collate),
    }
    model.train()
    module = UnlearningModule(model, method, task=TASK, optimizer=lambda p: torch.optim.Adam(p, lr=lr), monitor=False)
    trainer = make_trainer(max_steps=steps, max_epochs=steps, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=CombinedLoader(loaders, mode="min_size"))


@torch.no_grad()
def _span_and_rest(model, batch):
    """Mean probability of the marked (original span) tokens, and mean NLL of the unmarked trace tokens."""
    logits = model.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels, marked = batch["labels"][:, 1:], batch["span_mask"][:, 1:].bool()
    logp = torch.log_softmax(logits, -1).gather(-1, labels.clamp_min(0)[..., None]).squeeze(-1)
    rest = (labels != -100) & ~marked
    return float(logp[marked].exp().mean()), float(-logp[rest].mean())


def test_unlearning_suppresses_the_spans_but_keeps_the_rest_of_the_trace():
    """A tiny Llama memorises 6 traces, then 15 feature-replacement steps: the forget spans' tokens become unlikely
    while the unmarked tokens of the same forget traces stay likely; GradDiff from the same start (ascent on the whole
    trace) lowers the spans too but makes the unmarked reasoning tokens unlikely as well."""
    forget, retain, tok = _data()
    model = _model()
    batch = TraceCollator(tok)(forget + retain)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(120):
        loss = TASK.per_sample_loss(TASK.forward(model, batch), batch).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    forget_batch = TraceCollator(tok)(forget)
    span_before, rest_before = _span_and_rest(model, forget_batch)
    assert span_before > 0.9 and rest_before < 0.1

    _fit(model, FeatureReplacement(), forget, retain, steps=15, lr=3e-3)
    span_fr, rest_fr = _span_and_rest(model, forget_batch)
    model.load_state_dict(start)
    _fit(model, GradDiff(), forget, retain, steps=15, lr=3e-3)
    span_gd, rest_gd = _span_and_rest(model, forget_batch)
    assert span_fr < 0.2, span_fr
    assert rest_fr < 0.5 < rest_gd, (rest_fr, rest_gd)
    assert span_gd < span_before


def test_the_classifier_matrix_leaves_it_out():
    """The shared matrix (test_matrix.py) runs classifiers on Gaussian blobs; feature replacement needs reasoning traces
    with span masks and edited traces (TraceCollator), so it is excluded there by ``supported_tasks`` and tested here."""
    from .test_matrix import ALL_METHODS

    assert "feature_replacement" not in ALL_METHODS and "graddiff" in ALL_METHODS
