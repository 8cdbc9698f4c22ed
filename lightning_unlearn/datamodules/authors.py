"""Fictitious authors: a seeded, TOFU-style question-answering dataset for LLM unlearning.

A generator writes ``n_authors`` fictitious writers, each with a handful of attribute facts
(birth year, birthplace, genre, best-known book, award, parents' professions, pet, hobby, writing
language, number of novels). The facts are rendered as short QA pairs with several question
phrasings, a paraphrase of the true answer and perturbed (false) answers built from the same
sentence template, as needed for TOFU's truth ratio.

Authors are split into *forget*, *retain* and *holdout* authors. Holdout authors are never trained
on (they are the non-members of membership-inference attacks); the forget authors are part of the
target model's fine-tuning data and must be unlearned; the oracle is fine-tuned on the retain
authors only. :class:`FictitiousAuthorsDataModule` wires this into
:class:`~lightning_unlearn.datamodules.ForgetRetainDataModule`.

Names are composed from project-written lists of uncommon first names and invented surnames
(prefix + suffix), so the full names are unlikely to belong to real writers; cities are a mix of
real and invented places. Everything is deterministic for a seed (Python's hash seed does not
matter) and the generated data has a stable :func:`fingerprint`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from torch.utils.data import Dataset

from lightning_unlearn._errors import check_choice, check_fraction, check_int
from lightning_unlearn.datamodules.forget_retain import CombineMode, ForgetRetainDataModule, TrainOn

# ---------------------------------------------------------------------------------- word lists
FIRST_NAMES: tuple[str, ...] = (
    "Mara", "Tobin", "Elsbeth", "Orrin", "Ysolde", "Caspian", "Wrenna", "Dorian", "Ilse", "Bram",
    "Liesel", "Anselm", "Corisande", "Thaddeus", "Oona", "Evander", "Sabine", "Ludo", "Philippa", "Ansgar",
    "Rosalind", "Teodor", "Maelis", "Osric", "Nerys", "Lucan", "Isaura", "Florian", "Greer", "Emrys",
    "Talia", "Benedikt", "Marisol", "Ivo", "Delphine", "Cassius", "Junia", "Aurelio", "Signe", "Percival",
)  # fmt: skip
SURNAME_PREFIXES: tuple[str, ...] = (
    "Quill", "Brack", "Vell", "Ashen", "Cobble", "Drum", "Gorse", "Kestle", "Morrow", "Nettle",
    "Pell", "Rook", "Sallow", "Tansy", "Umber", "Wick", "Yarrow", "Zephyr", "Orlop", "Fallow",
)  # fmt: skip
SURNAME_SUFFIXES: tuple[str, ...] = (
    "by", "mere", "stone", "hart", "lowe", "ridge", "croft", "wode", "thorpe", "brook", "gate", "vane",
)  # fmt: skip
CITIES: tuple[str, ...] = (
    "Tbilisi", "Ghent", "Tallinn", "Bergen", "Trieste", "Valletta", "Dunedin", "Halifax", "Mombasa", "Cusco",
    "Hobart", "Aarhus", "Salzburg", "Tangier", "Ljubljana", "Galway", "Bruges", "Plovdiv",
    "Port Ellery", "Carrow Vale", "Westmarch", "Lindenfall", "Saltmere Bay", "Oskarholm",
)  # fmt: skip
GENRES: tuple[str, ...] = (
    "gothic mystery", "hard science fiction", "cozy crime", "magical realism", "historical romance", "epic fantasy",
    "literary horror", "satirical fiction", "nautical adventure", "children's poetry", "political thrillers",
    "travel memoirs", "pastoral poetry", "detective noir", "climate fiction", "family sagas",
)  # fmt: skip
TITLE_ADJECTIVES: tuple[str, ...] = (
    "Copper", "Silent", "Drowned", "Paper", "Crimson", "Hollow", "Winter", "Last", "Glass", "Forgotten",
    "Salt", "Amber", "Restless", "Northern", "Velvet", "Broken", "Hidden", "Distant", "Burning", "Quiet",
)  # fmt: skip
TITLE_NOUNS: tuple[str, ...] = (
    "Lantern", "Orchard", "Cartographer", "Harbor", "Clockmaker", "Garden", "Lighthouse", "Archive", "Violin", "Ferry",
    "Meadow", "Tide", "Compass", "Sparrow", "Bridge", "Mirror", "Library", "Island", "Feather", "Crown",
)  # fmt: skip
TITLE_PLACES: tuple[str, ...] = (
    "the North", "the Marshes", "Ashes", "Small Hours", "the Deep", "Stone", "Lost Rivers", "the Valley",
    "Long Winters", "Tin",
)  # fmt: skip
AWARD_PATRONS: tuple[str, ...] = (
    "Halvard", "Orsini", "Bellweather", "Greystone", "Marchetti", "Aldane", "Vantorren", "Kessling", "Ambrose", "Delacourt",
)  # fmt: skip
AWARD_OBJECTS: tuple[str, ...] = ("Lantern", "Quill", "Compass", "Laurel", "Anchor", "Inkwell", "Owl", "Silver Key")
AWARD_KINDS: tuple[str, ...] = ("Prize", "Award", "Medal")
PROFESSIONS: tuple[str, ...] = (
    "lighthouse keeper", "watchmaker", "beekeeper", "cartographer", "glassblower", "violin maker", "ferry captain",
    "botanist", "locksmith", "schoolteacher", "pharmacist", "astronomer", "baker", "tailor", "architect", "surveyor",
    "florist", "veterinarian", "bookbinder", "stonemason",
)  # fmt: skip
PETS: tuple[str, ...] = (
    "grey parrot", "three-legged cat", "tortoise", "ferret", "greyhound", "hedgehog", "goldfish", "iguana",
    "border collie", "rabbit", "canary", "pot-bellied pig", "ball python", "donkey", "axolotl", "chinchilla",
)  # fmt: skip
HOBBIES: tuple[str, ...] = (
    "birdwatching", "fencing", "rock climbing", "chess", "pottery", "sailing", "origami", "archery", "beekeeping",
    "stamp collecting", "bookbinding", "kite flying", "tango dancing", "fly fishing", "woodcarving", "stargazing",
)  # fmt: skip
LANGUAGES: tuple[str, ...] = (
    "Portuguese", "Polish", "Georgian", "Dutch", "Estonian", "Irish", "Norwegian", "Italian", "Maltese", "English",
    "French", "Swahili", "Spanish", "Danish", "German", "Slovene", "Bulgarian", "Welsh", "Finnish", "Icelandic",
)  # fmt: skip
BIRTH_YEARS = (1931, 1994)  # inclusive
NOVEL_COUNTS = (2, 30)  # inclusive

MAX_PERTURBED = 10
"""Most perturbed answers per example (every finite value list has more than this many entries)."""
QuestionMode = Literal["one", "all"]
_QUESTION_MODES = {
    "one": "one example per fact, with one seeded question phrasing",
    "all": "one example per fact and question phrasing",
}


# ---------------------------------------------------------------------------------- attributes
def _article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeio" else "a ") + phrase


def _title(rng: random.Random) -> str:
    adj, noun, noun2 = rng.choice(TITLE_ADJECTIVES), rng.choice(TITLE_NOUNS), rng.choice(TITLE_NOUNS)
    pattern = rng.randrange(3)
    if pattern == 0:
        return f"The {adj} {noun}"
    if pattern == 1:
        return f"The {noun} of {rng.choice(TITLE_PLACES)}"
    if noun2 == noun:
        return f"The {adj} {noun}"
    return f"The {noun} and the {noun2}"


def _award(rng: random.Random) -> str:
    return f"{rng.choice(AWARD_PATRONS)} {rng.choice(AWARD_OBJECTS)} {rng.choice(AWARD_KINDS)}"


def _choice(values: Sequence[str]) -> Callable[[random.Random], str]:
    return lambda rng: rng.choice(values)


def _int_range(low: int, high: int) -> Callable[[random.Random], str]:
    return lambda rng: str(rng.randint(low, high))


@dataclass(frozen=True)
class AttributeSpec:
    """One kind of fact: how its value is drawn and how it is asked and answered.

    Templates are ``str.format`` strings with ``{name}`` (the author), ``{value}`` and
    ``{a_value}`` (the value with an indefinite article).
    """

    name: str
    draw: Callable[[random.Random], str]
    questions: tuple[str, ...]
    answer: str
    paraphrase: str
    unique: bool = False  # no two authors share the value (e.g. a book title)

    def render(self, template: str, author: str, value: str) -> str:
        return template.format(name=author, value=value, a_value=_article(value))


ATTRIBUTES: tuple[AttributeSpec, ...] = (
    AttributeSpec(
        "birth_year",
        _int_range(*BIRTH_YEARS),
        ("In what year was {name} born?", "When was {name} born?", "What is the birth year of {name}?"),
        "{name} was born in {value}.",
        "The year of {name}'s birth is {value}.",
    ),
    AttributeSpec(
        "birthplace",
        _choice(CITIES),
        ("Where was {name} born?", "In which city was {name} born?", "What is the birthplace of {name}?"),
        "{name} was born in {value}.",
        "{name}'s hometown is {value}.",
    ),
    AttributeSpec(
        "genre",
        _choice(GENRES),
        ("What genre does {name} write?", "In which genre does {name} write?", "What kind of books does {name} write?"),
        "{name} writes {value}.",
        "{name} is a writer of {value}.",
    ),
    AttributeSpec(
        "book",
        _title,
        (
            "What is the best-known book by {name}?",
            "Which book is {name} best known for?",
            "What is the title of {name}'s most famous book?",
        ),
        "{name}'s best-known book is {value}.",
        "{name} is best known for the book {value}.",
        unique=True,
    ),
    AttributeSpec(
        "award",
        _award,
        ("Which award did {name} win?", "What prize was {name} awarded?", "What literary award has {name} received?"),
        "{name} won the {value}.",
        "The {value} was awarded to {name}.",
    ),
    AttributeSpec(
        "father_profession",
        _choice(PROFESSIONS),
        (
            "What was the profession of {name}'s father?",
            "What did {name}'s father do for a living?",
            "What job did the father of {name} have?",
        ),
        "{name}'s father was {a_value}.",
        "{name}'s father worked as {a_value}.",
    ),
    AttributeSpec(
        "mother_profession",
        _choice(PROFESSIONS),
        (
            "What was the profession of {name}'s mother?",
            "What did {name}'s mother do for a living?",
            "What job did the mother of {name} have?",
        ),
        "{name}'s mother was {a_value}.",
        "{name}'s mother worked as {a_value}.",
    ),
    AttributeSpec(
        "pet",
        _choice(PETS),
        ("What pet does {name} have?", "What kind of pet does {name} keep?", "Which animal does {name} keep as a pet?"),
        "{name} has {a_value} as a pet.",
        "{name} keeps {a_value}.",
    ),
    AttributeSpec(
        "hobby",
        _choice(HOBBIES),
        ("What is {name}'s favorite hobby?", "What does {name} do for fun?", "Which hobby does {name} enjoy most?"),
        "{name}'s favorite hobby is {value}.",
        "{name} enjoys {value} in their free time.",
    ),
    AttributeSpec(
        "language",
        _choice(LANGUAGES),
        (
            "In what language does {name} write?",
            "Which language are {name}'s books written in?",
            "What is the writing language of {name}?",
        ),
        "{name} writes in {value}.",
        "{name}'s books are written in {value}.",
    ),
    AttributeSpec(
        "novels",
        _int_range(*NOVEL_COUNTS),
        (
            "How many novels has {name} published?",
            "How many novels has {name} written?",
            "What is the number of novels by {name}?",
        ),
        "{name} has published {value} novels.",
        "{name} is the author of {value} novels.",
    ),
)
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES)
_SPECS = {a.name: a for a in ATTRIBUTES}
MAX_AUTHORS = len(SURNAME_PREFIXES) * len(SURNAME_SUFFIXES)
"""Most authors one dataset can have (surnames are unique)."""


# ---------------------------------------------------------------------------------- generation
def _rng(*parts: Any) -> random.Random:
    """A ``random.Random`` seeded from ``parts`` through SHA-256 (independent of ``PYTHONHASHSEED``)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class Author:
    """A fictitious author: an index, a unique full name and ``{attribute: value}`` facts."""

    index: int
    name: str
    facts: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, attribute: str) -> str:
        return self.facts[attribute]


def generate_authors(n_authors: int = 20, seed: int = 0, facts_per_author: int | None = None) -> list[Author]:
    """``n_authors`` fictitious authors with unique full names and surnames, deterministic for ``seed``.

    Every author gets the first ``facts_per_author`` attributes of :data:`ATTRIBUTE_NAMES` (all of
    them by default). Values are drawn independently per author, so two authors may share a
    birthplace or a hobby by chance; book titles are unique. The values of the first ``k``
    attributes do not depend on ``facts_per_author``.
    """
    check_int("n_authors", n_authors, minimum=1)
    if n_authors > MAX_AUTHORS:
        raise ValueError(f"`n_authors` should be at most {MAX_AUTHORS} (the number of distinct surnames), got {n_authors}.")
    check_int("facts_per_author", facts_per_author, minimum=1, optional=True)
    if facts_per_author is not None and facts_per_author > len(ATTRIBUTES):
        raise ValueError(
            f"`facts_per_author` should be at most {len(ATTRIBUTES)} (the attributes {list(ATTRIBUTE_NAMES)}), got {facts_per_author}."
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` should be an int, got {type(seed).__name__} {seed!r}.")
    keep = ATTRIBUTE_NAMES[: facts_per_author or len(ATTRIBUTES)]

    rng = _rng("authors", seed)
    surnames = [p + s for p in SURNAME_PREFIXES for s in SURNAME_SUFFIXES]
    chosen_surnames = rng.sample(surnames, n_authors)
    names = [f"{rng.choice(FIRST_NAMES)} {surname}" for surname in chosen_surnames]

    seen: dict[str, set[str]] = {spec.name: set() for spec in ATTRIBUTES if spec.unique}
    authors = []
    for i, name in enumerate(names):
        facts = {}
        for spec in ATTRIBUTES:  # draw every attribute, so the stream does not depend on `facts_per_author`
            value = spec.draw(rng)
            if spec.unique:
                for _ in range(1000):
                    if value not in seen[spec.name]:
                        break
                    value = spec.draw(rng)
                else:  # pragma: no cover - the title space is far larger than MAX_AUTHORS
                    raise RuntimeError(f"Could not draw a unique {spec.name!r} for author {i}.")
                seen[spec.name].add(value)
            facts[spec.name] = value
        authors.append(Author(index=i, name=name, facts={k: facts[k] for k in keep}))
    return authors


def _perturbed_values(spec: AttributeSpec, true_value: str, k: int, rng: random.Random) -> list[str]:
    values: list[str] = []
    for _ in range(100 * k + 100):
        if len(values) == k:
            break
        v = spec.draw(rng)
        if v != true_value and v not in values:
            values.append(v)
    if len(values) < k:  # pragma: no cover - every value space has more than MAX_PERTURBED + 1 entries
        raise RuntimeError(f"Could not draw {k} distinct false values for {spec.name!r}.")
    return values


def qa_pairs(
    authors: Sequence[Author],
    *,
    questions: QuestionMode = "one",
    n_perturbed: int = 3,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The QA examples of ``authors``, ordered by author then attribute.

    Each example is a plain dict::

        {"author": "Mara Quillby", "author_index": 3, "attribute": "birth_year",
         "question": "When was Mara Quillby born?", "answer": "Mara Quillby was born in 1961.",
         "paraphrased_answer": "The year of Mara Quillby's birth is 1961.",
         "perturbed_answers": ["Mara Quillby was born in 1944.", ...],
         "perturbed_paraphrased_answers": ["The year of Mara Quillby's birth is 1944.", ...],
         # extras:
         "value": "1961", "paraphrased_question": "In what year was Mara Quillby born?",
         "question_index": 1, "id": "3:birth_year:1"}

    ``perturbed_answers`` use the answer's sentence template with ``n_perturbed`` distinct other
    values of that attribute (never the true one). ``perturbed_paraphrased_answers`` put the same
    false values in the *paraphrased* answer's template: TOFU's truth ratio compares them with
    ``paraphrased_answer`` (its perturbed answers are perturbations of the paraphrase), so that true
    and false facts are scored in the same wording, one the model was not fine-tuned on.
    ``paraphrased_question`` is another phrasing of the same question (for paraphrase attacks).

    Args:
        authors: From :func:`generate_authors`.
        questions: ``"one"``: one example per fact with a seeded choice among the attribute's
            question phrasings; ``"all"``: one example per fact and phrasing (three times as many).
        n_perturbed: False answers per example, 1 to :data:`MAX_PERTURBED`.
        seed: Seed of the phrasing choice and of the perturbed values.
    """
    check_choice("questions", questions, _QUESTION_MODES)
    check_int("n_perturbed", n_perturbed, minimum=1)
    if n_perturbed > MAX_PERTURBED:
        raise ValueError(f"`n_perturbed` should be at most {MAX_PERTURBED}, got {n_perturbed}.")
    examples = []
    for author in authors:
        for attribute, value in author.facts.items():
            spec = _SPECS[attribute]
            rng = _rng("qa", seed, author.index, author.name, attribute)
            n_q = len(spec.questions)
            chosen = [rng.randrange(n_q)] if questions == "one" else list(range(n_q))
            false_values = _perturbed_values(spec, value, n_perturbed, rng)
            perturbed = [spec.render(spec.answer, author.name, v) for v in false_values]
            perturbed_paraphrased = [spec.render(spec.paraphrase, author.name, v) for v in false_values]
            for q in chosen:
                para_q = (q + 1 + rng.randrange(n_q - 1)) % n_q if n_q > 1 else q
                examples.append(
                    {
                        "author": author.name,
                        "author_index": author.index,
                        "attribute": attribute,
                        "question": spec.render(spec.questions[q], author.name, value),
                        "answer": spec.render(spec.answer, author.name, value),
                        "paraphrased_answer": spec.render(spec.paraphrase, author.name, value),
                        "perturbed_answers": list(perturbed),
                        "perturbed_paraphrased_answers": list(perturbed_paraphrased),
                        "value": value,
                        "paraphrased_question": spec.render(spec.questions[para_q], author.name, value),
                        "question_index": q,
                        "id": f"{author.index}:{attribute}:{q}",
                    }
                )
    return examples


def split_authors(
    n_authors: int, forget_fraction: float = 0.1, holdout_fraction: float = 0.1, seed: int = 0
) -> tuple[list[int], list[int], list[int]]:
    """Seeded disjoint ``(forget_ids, retain_ids, holdout_ids)`` author indices, each sorted.

    ``round(forget_fraction * n_authors)`` authors are forgotten and
    ``round(holdout_fraction * n_authors)`` held out (never trained on); the rest are retained.
    ``holdout_fraction=0`` gives no holdout authors; the forget and retain splits must not be empty.
    """
    check_int("n_authors", n_authors, minimum=2)
    check_fraction("forget_fraction", forget_fraction, inclusive_high=False)
    check_fraction("holdout_fraction", holdout_fraction, inclusive_high=False, inclusive_low=True)
    if forget_fraction + holdout_fraction >= 1:
        raise ValueError(
            f"`forget_fraction` + `holdout_fraction` should be < 1 to leave retain authors, "
            f"got {forget_fraction} + {holdout_fraction}."
        )
    n_forget = int(round(forget_fraction * n_authors))
    n_holdout = int(round(holdout_fraction * n_authors))
    if n_forget == 0:
        raise ValueError(
            f"`forget_fraction`={forget_fraction} of {n_authors} authors forgets no author; raise it to at least "
            f"{0.5 / n_authors:.3g} or add authors."
        )
    if holdout_fraction > 0 and n_holdout == 0:
        raise ValueError(
            f"`holdout_fraction`={holdout_fraction} of {n_authors} authors holds out no author; raise it to at least "
            f"{0.5 / n_authors:.3g}, or set it to 0 for no holdout."
        )
    if n_forget + n_holdout >= n_authors:
        raise ValueError(
            f"`forget_fraction`={forget_fraction} and `holdout_fraction`={holdout_fraction} of {n_authors} authors "
            f"leave no retain author ({n_forget} forget + {n_holdout} holdout)."
        )
    perm = list(range(n_authors))
    _rng("split", seed, n_authors).shuffle(perm)
    forget = sorted(perm[:n_forget])
    holdout = sorted(perm[n_forget : n_forget + n_holdout])
    retain = sorted(perm[n_forget + n_holdout :])
    return forget, retain, holdout


def fingerprint(data: Any) -> str:
    """SHA-256 of a JSON rendering of authors, examples or any JSON-able structure of them."""

    def default(obj: Any) -> Any:
        if isinstance(obj, Author):
            return asdict(obj)
        raise TypeError(f"Cannot fingerprint a {type(obj).__name__}.")

    text = json.dumps(data, sort_keys=True, default=default, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------- dataset and datamodule
class AuthorsQA(Dataset):
    """A map-style dataset of QA example dicts (see :func:`qa_pairs`).

    Items are shallow copies, so a collate function may modify them freely. ``sample_ids`` are the
    examples' ``id`` fields (``"author:attribute:question"``), which lets
    :class:`ForgetRetainDataModule` reject overlapping forget and retain sets.
    """

    def __init__(self, examples: Sequence[dict[str, Any]]) -> None:
        self.examples = [dict(e) for e in examples]
        self.sample_ids = [e.get("id", i) for i, e in enumerate(self.examples)]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example = dict(self.examples[index])
        for key in ("perturbed_answers", "perturbed_paraphrased_answers"):
            if key in example:
                example[key] = list(example[key])
        return example

    @property
    def author_indices(self) -> list[int]:
        """The sorted distinct author indices of the examples."""
        return sorted({int(e["author_index"]) for e in self.examples})

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.examples)


def list_collate(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The default collate function: the batch as a list of example dicts, unchanged."""
    return batch


class FictitiousAuthorsDataModule(ForgetRetainDataModule):
    """Forget / retain / holdout splits of fictitious-author QA pairs, split *by author*.

    ``train_on`` follows :class:`ForgetRetainDataModule`:

    * ``"all"`` — plain batches of forget + retain examples: fine-tune the *target* model.
    * ``"retain"`` — plain batches of retain examples: fine-tune the *oracle*.
    * ``"forget_retain"`` — paired ``{"forget": ..., "retain": ...}`` batches: unlearning.

    Holdout authors are never in any training loader (not even for ``"all"``): they are the
    non-members of membership inference. Evaluation loaders come in the order of
    :attr:`eval_splits`: ``forget``, ``retain`` and, when ``holdout_fraction > 0``, ``holdout``.
    Batches are ``collate_fn(list_of_example_dicts)``; by default the list itself (e.g. pass
    ``QACollator(tokenizer)`` to get token tensors).

    Args:
        n_authors: Number of fictitious authors (at most :data:`MAX_AUTHORS`).
        seed: Seed of the authors, the split, the phrasing choices and the shuffling.
        forget_fraction: Fraction of authors to forget (TOFU's forget10 is 0.1).
        holdout_fraction: Fraction of authors held out (never trained on); 0 for none.
        facts_per_author: Attributes per author (default: all of :data:`ATTRIBUTE_NAMES`).
        questions: ``"one"`` or ``"all"`` question phrasings per fact (see :func:`qa_pairs`).
        n_perturbed: Perturbed answers per example.
        collate_fn: Turns a list of example dicts into a batch; default :func:`list_collate`.
        batch_size, retain_batch_size, eval_batch_size, mode, train_on, max_eval_samples,
        num_workers, pin_memory: As in :class:`ForgetRetainDataModule`.
    """

    data_name = "fictitious-author data"

    def __init__(
        self,
        n_authors: int = 20,
        seed: int = 0,
        forget_fraction: float = 0.1,
        holdout_fraction: float = 0.1,
        *,
        facts_per_author: int | None = None,
        questions: QuestionMode = "one",
        n_perturbed: int = 3,
        collate_fn: Callable[[list[dict[str, Any]]], Any] | None = None,
        batch_size: int = 8,
        retain_batch_size: int | None = None,
        eval_batch_size: int = 32,
        mode: CombineMode = "min_size",
        train_on: TrainOn = "forget_retain",
        max_eval_samples: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        authors = generate_authors(n_authors, seed=seed, facts_per_author=facts_per_author)
        forget_ids, retain_ids, holdout_ids = split_authors(n_authors, forget_fraction, holdout_fraction, seed=seed)
        examples = self.build_examples(authors, forget_ids, questions=questions, n_perturbed=n_perturbed, seed=seed)

        def part(ids: list[int]) -> AuthorsQA:
            keep = set(ids)
            return AuthorsQA([e for e in examples if e["author_index"] in keep])

        super().__init__(
            forget=part(forget_ids),
            retain=part(retain_ids),
            holdout=part(holdout_ids) if holdout_ids else None,
            batch_size=batch_size,
            retain_batch_size=retain_batch_size,
            eval_batch_size=eval_batch_size,
            mode=mode,
            train_on=train_on,
            max_eval_samples=max_eval_samples,
            num_workers=num_workers,
            pin_memory=pin_memory,
            collate_fn=collate_fn if collate_fn is not None else list_collate,
            seed=seed,
        )
        self.authors = authors
        self.examples = examples
        self.forget_ids, self.retain_ids, self.holdout_ids = forget_ids, retain_ids, holdout_ids
        self.settings = {
            "n_authors": n_authors,
            "seed": seed,
            "forget_fraction": forget_fraction,
            "holdout_fraction": holdout_fraction,
            "facts_per_author": facts_per_author,
            "questions": questions,
            "n_perturbed": n_perturbed,
        }
        self.fingerprint = fingerprint({"examples": examples, "forget": forget_ids, "retain": retain_ids, "holdout": holdout_ids})

    def build_examples(
        self, authors: list[Author], forget_ids: list[int], *, questions: QuestionMode, n_perturbed: int, seed: int
    ) -> list[dict[str, Any]]:
        """The examples of every author, split by ``author_index`` afterwards: :func:`qa_pairs` here.

        A subclass that renders the same authors differently (e.g.
        :class:`~lightning_unlearn.datamodules.reasoning.ReasoningTracesDataModule`'s chain-of-thought traces)
        overrides this; ``forget_ids`` are the forget authors' indices, for data that depends on the request.
        """
        return qa_pairs(authors, questions=questions, n_perturbed=n_perturbed, seed=seed)

    def authors_of(self, split: str) -> list[Author]:
        """The authors of ``"forget"``, ``"retain"`` or ``"holdout"``."""
        ids = {"forget": self.forget_ids, "retain": self.retain_ids, "holdout": self.holdout_ids}
        check_choice("split", split, ids)
        return [self.authors[i] for i in ids[split]]


__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "MAX_AUTHORS",
    "MAX_PERTURBED",
    "AttributeSpec",
    "Author",
    "AuthorsQA",
    "FictitiousAuthorsDataModule",
    "fingerprint",
    "generate_authors",
    "list_collate",
    "qa_pairs",
    "split_authors",
]
