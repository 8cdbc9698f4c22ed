"""A toy of memorised random facts with a merely *masked* unlearned model and an oracle, shared by the attack tests.

In the spirit of Deeb and Roger (arXiv:2410.08827): every fact is an entity (a random code) of one of four topics
with an answer drawn at random, so a held-out fact cannot be guessed from other facts, and no single answer is
right for many of them. The forget set is every fact of topic 0. (On the blob problem of ``tests/toys.py`` an oracle
learns a whole blob class from a few relearning samples about as fast as a class-masked model regains it, so a
class-level forget set cannot tell the two apart.)
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset
from toys import fit_plain, mlp

TOPICS, FACTS_PER_TOPIC, ANSWERS, CODE, HIDDEN = 4, 64, 4, 12, 128
REFUSE = ANSWERS  # an extra output that no training label uses: "I won't say"


def facts(seed: int = 0) -> tuple[TensorDataset, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    topic = torch.arange(TOPICS).repeat_interleave(FACTS_PER_TOPIC)
    x = torch.cat([3.0 * F.one_hot(topic, TOPICS).float(), torch.randn(len(topic), CODE, generator=g)], 1)
    y = torch.randint(0, ANSWERS, (len(topic),), generator=g)
    return TensorDataset(x, y), topic


def refusing(model: nn.Module, x: torch.Tensor, forget: torch.Tensor) -> nn.Module:
    """Unlearning that only masks the output layer: a copy whose REFUSE output wins on the forget topic.

    A logistic probe on the model's (untouched) hidden features separates the forget topic from the rest; its
    weights, scaled so that REFUSE beats every other logit on every forget fact, become the REFUSE row of the
    output layer. Nothing else changes, so the answers are still in the model, only masked.
    """
    masked = copy.deepcopy(model)
    with torch.no_grad():
        hidden = masked[:-1](x)
    probe = nn.Linear(HIDDEN, 1)
    nn.init.zeros_(probe.weight)
    nn.init.zeros_(probe.bias)
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        F.binary_cross_entropy_with_logits(probe(hidden).squeeze(-1), forget.float()).backward()
        optimizer.step()
    with torch.no_grad():
        score = probe(hidden).squeeze(-1)
        assert score[forget].min() > 0 > score[~forget].max(), "the probe should separate the forget topic"
        scale = (model(x)[forget].max() + 1) / score[forget].min()
        masked[-1].weight[REFUSE] = scale * probe.weight[0]
        masked[-1].bias[REFUSE] = scale * probe.bias[0]
    return masked


def tensors(subset: Subset) -> tuple[torch.Tensor, torch.Tensor]:
    return next(iter(DataLoader(subset, batch_size=len(subset))))


def facts_problem() -> dict[str, Any]:
    """``{"train", "forget", "retain", "original", "oracle", "masked"}``: the original MLP (hidden 128, 5 outputs)
    memorised all 256 facts; the oracle the retain facts only; ``masked`` is the original with a refusal output."""
    train, topic = facts()
    x, y = train.tensors
    forget_mask = topic == 0
    forget = Subset(train, forget_mask.nonzero().flatten().tolist())
    retain = Subset(train, (~forget_mask).nonzero().flatten().tolist())
    net = dict(dim=TOPICS + CODE, hidden=HIDDEN, num_classes=ANSWERS + 1)
    original = fit_plain(mlp(seed=0, **net), x, y, steps=400).eval()
    rx, ry = tensors(retain)
    oracle = fit_plain(mlp(seed=0, **net), rx, ry, steps=400).eval()
    masked = refusing(original, x, forget_mask)
    return {"train": train, "forget": forget, "retain": retain, "original": original, "oracle": oracle, "masked": masked}
