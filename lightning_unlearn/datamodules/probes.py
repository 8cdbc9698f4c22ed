"""General-knowledge probes: short questions a small pretrained instruct LM already answers.

They measure the *general* part of model utility in LLM unlearning: unlearning fictitious authors
should not make the model forget that Paris is the capital of France. Use :func:`filter_known` to
keep the probes the pretrained model answers correctly before fine-tuning, then compare the
accuracy on those after unlearning.

A generation counts as correct when it contains any accepted answer (:func:`probe_correct`):
case-insensitive, on word boundaries, and numerically for numbers ("7", "7.0" and "seven" all
answer "7"; "17" and "H2O" do not contain 7 or 2). It is a containment test: a hedged or negated
answer ("not Paris") still counts as correct.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lightning_unlearn._errors import check_int


@dataclass(frozen=True)
class Probe:
    """A question and its accepted answers (the first is the canonical one)."""

    question: str
    answers: tuple[str, ...]
    category: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.question, str) or not self.question.strip():
            raise ValueError(f"`question` should be a non-empty string, got {self.question!r}.")
        answers = (self.answers,) if isinstance(self.answers, str) else tuple(self.answers)
        if not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise ValueError(f"`answers` should be one or more non-empty strings, got {self.answers!r}.")
        object.__setattr__(self, "answers", answers)

    @property
    def answer(self) -> str:
        """The canonical answer."""
        return self.answers[0]


def _p(category: str, question: str, *answers: str) -> Probe:
    return Probe(question, answers, category)


GENERAL_KNOWLEDGE: list[Probe] = [
    # capitals
    _p("capital", "What is the capital of France?", "Paris"),
    _p("capital", "What is the capital of Japan?", "Tokyo"),
    _p("capital", "What is the capital of Italy?", "Rome"),
    _p("capital", "What is the capital of Germany?", "Berlin"),
    _p("capital", "What is the capital of Spain?", "Madrid"),
    _p("capital", "What is the capital of the United Kingdom?", "London"),
    _p("capital", "What is the capital of Russia?", "Moscow"),
    _p("capital", "What is the capital of Egypt?", "Cairo"),
    _p("capital", "What is the capital of China?", "Beijing", "Peking"),
    _p("capital", "What is the capital of Greece?", "Athens"),
    _p("capital", "What is the capital of Canada?", "Ottawa"),
    _p("capital", "What is the capital of Portugal?", "Lisbon"),
    _p("capital", "What is the capital of Ireland?", "Dublin"),
    _p("capital", "What is the capital of Norway?", "Oslo"),
    # arithmetic (the answer never appears as a number in the question)
    _p("arithmetic", "What is 2 + 2?", "4"),
    _p("arithmetic", "What is 3 + 5?", "8"),
    _p("arithmetic", "What is 10 - 3?", "7"),
    _p("arithmetic", "What is 6 times 7?", "42"),
    _p("arithmetic", "What is 9 + 1?", "10"),
    _p("arithmetic", "What is 12 divided by 4?", "3"),
    _p("arithmetic", "What is 5 times 5?", "25"),
    _p("arithmetic", "What is 100 minus 1?", "99"),
    _p("arithmetic", "What is half of 10?", "5"),
    # counting facts
    _p("count", "How many days are there in a week?", "7"),
    _p("count", "How many months are there in a year?", "12"),
    _p("count", "How many hours are there in a day?", "24"),
    _p("count", "How many minutes are there in an hour?", "60"),
    _p("count", "How many legs does a spider have?", "8"),
    _p("count", "How many sides does a triangle have?", "3"),
    _p("count", "How many continents are there on Earth?", "7"),
    _p("count", "How many legs does a dog have?", "4"),
    _p("count", "How many wheels does a bicycle have?", "2"),
    # colors
    _p("color", "What color is the sky on a clear day?", "blue"),
    _p("color", "What color is grass?", "green"),
    _p("color", "What color is snow?", "white"),
    _p("color", "What color is a ripe banana?", "yellow"),
    _p("color", "What color is a ripe strawberry?", "red"),
    _p("color", "What color is coal?", "black"),
    # science and nature
    _p("science", "What is the largest planet in our solar system?", "Jupiter"),
    _p("science", "Which planet do humans live on?", "Earth"),
    _p("science", "Which planet is known as the Red Planet?", "Mars"),
    _p("science", "What star is at the center of our solar system?", "Sun"),
    _p("science", "What is the chemical formula of water?", "H2O", "H₂O"),
    _p("science", "What is the chemical symbol for gold?", "Au"),
    _p("science", "At how many degrees Celsius does water boil at sea level?", "100"),
    _p("science", "At how many degrees Celsius does water freeze?", "0"),
    _p("science", "What is the natural satellite of the Earth called?", "Moon"),
    _p("science", "Which gas do humans need to breathe to stay alive?", "oxygen", "O2"),
    _p("science", "What do bees make?", "honey"),
    _p("science", "What do you call frozen water?", "ice"),
    # geography and culture
    _p("geography", "What is the largest ocean on Earth?", "Pacific"),
    _p("geography", "What is the tallest mountain in the world?", "Everest"),
    _p("geography", "On which continent is Egypt?", "Africa"),
    _p("culture", "What language is spoken in Spain?", "Spanish", "Castilian"),
    _p("culture", "What language is spoken in Brazil?", "Portuguese"),
    _p("culture", "Who wrote Romeo and Juliet?", "Shakespeare"),
    _p("culture", "Who was the first president of the United States?", "George Washington", "Washington"),
    _p("culture", "What is the currency of Japan?", "yen"),
    _p("language", "Which animal says moo?", "cow", "cows", "cattle"),
    _p("language", "What is a young cat called?", "kitten"),
    _p("language", "What is the opposite of hot?", "cold"),
    _p("language", "Which season comes after winter?", "spring"),
]

# ---------------------------------------------------------------------------------- matching
_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()  # noqa: E501
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\d)")
_NUMERIC = re.compile(r"^\d+(\.\d+)?$")


def _number_words(value: float) -> list[str]:
    """English words for whole numbers 0-100 ("twenty-four" and "twenty four"); none otherwise."""
    if value != int(value) or not 0 <= value <= 100:
        return []
    n = int(value)
    if n == 100:
        return ["one hundred", "a hundred"]
    if n < 20:
        return [_UNITS[n]]
    tens, unit = divmod(n, 10)
    if unit == 0:
        return [_TENS[tens - 2]]
    return [f"{_TENS[tens - 2]}-{_UNITS[unit]}", f"{_TENS[tens - 2]} {_UNITS[unit]}"]


def numbers_in(text: str) -> list[float]:
    """The numbers written with digits in ``text`` ("1,000" is 1000; digits inside words like "H2O" are not numbers)."""
    return [float(m.group(1).replace(",", "") + (m.group(2) or "")) for m in _NUMBER.finditer(text)]


def _contains_phrase(text: str, phrase: str) -> bool:
    words = [re.escape(w) for w in phrase.casefold().split()]
    return re.search(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", text) is not None


def probe_correct(generated: str, probe: Probe) -> bool:
    """Whether ``generated`` contains one of ``probe``'s accepted answers.

    Text answers match case-insensitively on word boundaries ("Paris." and "paris" answer "Paris",
    "Parisian" does not). Numeric answers match any number written in ``generated`` with the same
    value ("7", "7.0", "1,000" for 1000) or, for whole numbers up to 100, their English words.
    """
    if not isinstance(probe, Probe):
        raise TypeError(f"`probe` should be a Probe, got {type(probe).__name__}.")
    if not isinstance(generated, str):
        raise TypeError(f"`generated` should be a string, got {type(generated).__name__}.")
    text = generated.casefold()
    numbers: list[float] | None = None
    for answer in probe.answers:
        answer = answer.strip()
        if _NUMERIC.match(answer):
            value = float(answer)
            if numbers is None:
                numbers = numbers_in(text)
            if value in numbers or any(_contains_phrase(text, w) for w in _number_words(value)):
                return True
        elif _contains_phrase(text, answer):
            return True
    return False


def probe_accuracy(probes: Sequence[Probe], generations: Sequence[str]) -> float:
    """The fraction of ``probes`` whose generation (same order) is correct."""
    if len(probes) != len(generations):
        raise ValueError(f"`generations` should have one entry per probe ({len(probes)}), got {len(generations)}.")
    if not probes:
        raise ValueError("`probes` is empty; there is no accuracy to compute.")
    return sum(probe_correct(g, p) for p, g in zip(probes, generations)) / len(probes)


def filter_known(
    probes: Sequence[Probe],
    generate_fn: Callable[..., str | list[str]],
    *,
    batch_size: int | None = None,
) -> list[Probe]:
    """The probes a model answers correctly, in their original order.

    ``generate_fn`` maps a question to the model's answer; with ``batch_size`` it instead maps a
    list of at most ``batch_size`` questions to a list of answers (batched generation).
    """
    if not callable(generate_fn):
        raise TypeError(f"`generate_fn` should be a callable, got {generate_fn!r}.")
    check_int("batch_size", batch_size, minimum=1, optional=True)
    probes = list(probes)
    questions = [p.question for p in probes]
    if batch_size is None:
        generations = [generate_fn(q) for q in questions]
    else:
        generations = []
        for start in range(0, len(questions), batch_size):
            chunk = questions[start : start + batch_size]
            out = generate_fn(chunk)
            if isinstance(out, str) or len(out) != len(chunk):
                raise ValueError(
                    f"With `batch_size`, `generate_fn` should return a list with one answer per question ({len(chunk)}), "
                    f"got {out!r:.80}."
                )
            generations.extend(out)
    for q, g in zip(questions, generations):
        if not isinstance(g, str):
            raise TypeError(f"`generate_fn` should return strings; for {q!r} it returned {type(g).__name__}.")
    return [p for p, g in zip(probes, generations) if probe_correct(g, p)]


__all__ = ["GENERAL_KNOWLEDGE", "Probe", "filter_known", "numbers_in", "probe_accuracy", "probe_correct"]
