"""General-knowledge probes: the list, answer matching and filtering by a model's generations."""

from __future__ import annotations

import pytest

from lightning_unlearn.datamodules import GENERAL_KNOWLEDGE, Probe, filter_known, probe_correct
from lightning_unlearn.datamodules.probes import numbers_in, probe_accuracy

FRANCE = Probe("What is the capital of France?", ("Paris",))
WEEK = Probe("How many days are there in a week?", ("7",))
CHINA = Probe("What is the capital of China?", ("Beijing", "Peking"))
WATER = Probe("What is the chemical formula of water?", ("H2O",))
DAY = Probe("How many hours are there in a day?", ("24",))


def test_probe_list():
    assert 40 <= len(GENERAL_KNOWLEDGE) <= 70
    questions = [p.question for p in GENERAL_KNOWLEDGE]
    assert len(set(questions)) == len(questions)
    for p in GENERAL_KNOWLEDGE:
        assert isinstance(p.answers, tuple) and p.answers and p.answer == p.answers[0]
        assert all(len(a.split()) <= 3 for a in p.answers)
        # echoing the question is never counted as a correct answer
        assert not probe_correct(p.question, p), p
        assert probe_correct(f"The answer is {p.answer}.", p), p
    assert {p.category for p in GENERAL_KNOWLEDGE} >= {"capital", "arithmetic", "color", "science"}


@pytest.mark.parametrize(
    ("generated", "probe", "correct"),
    [
        ("Paris", FRANCE, True),
        ("The capital of France is paris.", FRANCE, True),
        ("PARIS!", FRANCE, True),
        ("Parisian food is great.", FRANCE, False),
        ("Lyon", FRANCE, False),
        ("", FRANCE, False),
        ("Peking, today called...", CHINA, True),  # alias
        ("beijing", CHINA, True),
        ("A week has 7 days.", WEEK, True),
        ("There are seven days in a week.", WEEK, True),  # number word
        ("7.0", WEEK, True),
        ("17 days", WEEK, False),  # digits are numbers, not substrings
        ("70", WEEK, False),
        ("seventy", WEEK, False),
        ("7th", WEEK, True),
        ("There are twenty-four hours.", DAY, True),
        ("twenty four", DAY, True),
        ("2 and 4", DAY, False),
        ("It is H2O.", WATER, True),
        ("h2o", WATER, True),
        ("H2O2", WATER, False),
    ],
)
def test_probe_correct(generated, probe, correct):
    assert probe_correct(generated, probe) is correct


def test_numbers_in():
    assert numbers_in("2 + 2 = 4. It costs 1,000 or 3.5; H2O and v7 are not numbers") == [2, 2, 4, 1000, 3.5]


def test_probe_validation_and_errors():
    assert Probe("Q?", "A").answers == ("A",)  # a single string becomes a tuple
    assert Probe("Q?", ["A", "B"]).answers == ("A", "B")
    with pytest.raises(ValueError, match=r"`answers` should be one or more non-empty strings, got \(\)"):
        Probe("Q?", ())
    with pytest.raises(ValueError, match=r"`answers` should be one or more non-empty strings"):
        Probe("Q?", ("A", " "))
    with pytest.raises(ValueError, match=r"`question` should be a non-empty string, got ''"):
        Probe("", ("A",))
    with pytest.raises(TypeError, match=r"`probe` should be a Probe, got tuple"):
        probe_correct("Paris", ("Paris",))
    with pytest.raises(TypeError, match=r"`generated` should be a string, got NoneType"):
        probe_correct(None, FRANCE)


def _oracle(question: str) -> str:
    """A fake model that knows France and the week but nothing else."""
    return {"What is the capital of France?": "Paris.", "How many days are there in a week?": "Seven."}.get(
        question, "I don't know."
    )


def test_filter_known_single_and_batched():
    probes = [CHINA, FRANCE, DAY, WEEK]
    assert filter_known(probes, _oracle) == [FRANCE, WEEK]
    calls = []

    def batched(questions):
        calls.append(len(questions))
        return [_oracle(q) for q in questions]

    assert filter_known(probes, batched, batch_size=3) == [FRANCE, WEEK]
    assert calls == [3, 1]
    known = filter_known(GENERAL_KNOWLEDGE, lambda q: next(p.answer for p in GENERAL_KNOWLEDGE if p.question == q))
    assert known == GENERAL_KNOWLEDGE
    assert probe_accuracy(probes, [_oracle(p.question) for p in probes]) == 0.5


def test_filter_known_errors():
    with pytest.raises(TypeError, match=r"`generate_fn` should be a callable"):
        filter_known([FRANCE], "model")
    with pytest.raises(ValueError, match=r"`batch_size` should be an int >= 1 or None, got 0"):
        filter_known([FRANCE], _oracle, batch_size=0)
    with pytest.raises(ValueError, match=r"one answer per question \(2\)"):
        filter_known([FRANCE, WEEK], lambda qs: ["Paris"], batch_size=2)
    with pytest.raises(TypeError, match=r"`generate_fn` should return strings"):
        filter_known([FRANCE], lambda q: None)
    with pytest.raises(ValueError, match=r"`generations` should have one entry per probe \(1\), got 2"):
        probe_accuracy([FRANCE], ["a", "b"])
