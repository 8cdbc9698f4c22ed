"""Real entities from Wikipedia: forget what a *pretrained* LM knows about one (benchmark B3).

Fictitious authors (:mod:`~lightning_unlearn.datamodules.authors`) are learnt in a fine-tuning the
benchmark controls, so an oracle retrained without them exists. A real entity was learnt in
pretraining: no oracle exists, and forgetting must be shown on what the model answered correctly
*before* unlearning. This module supplies the three parts of that setting, in the spirit of
real-entity unlearning benchmarks such as RWKU (Jin et al., "RWKU: Benchmarking Real-World Knowledge
Unlearning for Large Language Models", NeurIPS 2024 Datasets and Benchmarks) and of MUSE's
unlearning on raw text (Shi et al., "MUSE: Machine Unlearning Six-Way Evaluation for Language
Models", 2024):

* **Text** — the 104 long Wikipedia articles that install with ``gensim`` as test data
  (:func:`wikipedia_articles`; CC BY-SA), cleaned of markup (:func:`clean_wikitext`) and cut into
  passages of whole sentences (:func:`article_passages`). The forget set is the forget entity's
  article as chat examples ("Tell me about Albert Einstein." → a passage); the retain set the
  articles of other entities; the holdout set passages of articles about nothing probed, for
  perplexity and membership inference.
* **Probes** — short questions about each entity with accepted answers (:data:`ENTITY_FACTS`),
  hand-written for this project; every answer is stated in the entity's article (a test checks it).
  Keep the ones the model answers before unlearning
  (:func:`~lightning_unlearn.datamodules.probes.filter_known`). The forget probes are never
  trained on: forgetting them must generalise from the article text.
* **Facts as examples** (:func:`fact_examples`) — each probe as a QA example with a one-sentence
  answer, a paraphrased question and a German translation, in the format the attacks read
  (:class:`~lightning_unlearn.attacks.MultiTurnProbe`, relearning on some facts and measuring the
  others).

The probe facts of :data:`ENTITY_FACTS` were chosen once, against SmolLM2-135M-Instruct's answers,
from a larger hand-written list; entities it knows nothing about were left out.
"""

from __future__ import annotations

import bz2
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightning_unlearn._errors import check_int
from lightning_unlearn.datamodules.authors import AuthorsQA, fingerprint, list_collate
from lightning_unlearn.datamodules.forget_retain import CombineMode, ForgetRetainDataModule, TrainOn
from lightning_unlearn.datamodules.probes import Probe

#: The gensim test-data file holding the articles (``gensim.test.utils.datapath(WIKIPEDIA_DUMP)``).
WIKIPEDIA_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

#: Chat prompts of the passage examples, used in turn (``{entity}`` is the article's title).
PASSAGE_PROMPTS: tuple[str, ...] = (
    "Tell me about {entity}.",
    "What do you know about {entity}?",
    "Write a short passage about {entity}.",
    "Give me some information about {entity}.",
)


# ---------------------------------------------------------------------------------- articles
def _dump_path() -> str:
    try:
        from gensim.test.utils import datapath
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The Wikipedia articles ship with gensim's test data; install it with `pip install 'lightning-unlearn[wiki]'` "
            "(or `pip install gensim`)."
        ) from err
    return datapath(WIKIPEDIA_DUMP)


_HEADING = re.compile(r"^\s*=+[^=].*=+\s*$")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?$")


def clean_wikitext(text: str) -> str:
    """Plain paragraphs from an article's wiki markup (gensim's ``filter_wiki`` plus a clean-up).

    Headings, image captions, list and table leftovers (lines that are not sentences: fewer than 8
    words or no final punctuation) are dropped; bold/italic quotes, empty parentheses left by removed
    templates ("(; ; 14 March 1879" → "(14 March 1879") and repeated spaces are removed. Paragraphs
    are separated by one blank line.
    """
    from gensim.corpora.wikicorpus import filter_wiki

    plain = filter_wiki(text)
    paragraphs = []
    for line in plain.splitlines():
        line = line.replace("'''", "").replace("''", "").strip()
        if not line or _HEADING.match(line):
            continue
        line = re.sub(r"\(\s*(?:[;,]\s*)+", "(", line)
        line = re.sub(r"\(\s*\)", "", line)
        line = re.sub(r"\s+([,.;:])", r"\1", line)
        line = re.sub(r"\s{2,}", " ", line).strip()
        if len(line.split()) < 8 or not _SENTENCE_END.search(line):
            continue
        paragraphs.append(line)
    return "\n\n".join(paragraphs)


@functools.cache
def _articles(min_words: int) -> dict[str, str]:
    from gensim.corpora.wikicorpus import extract_pages

    articles = {}
    with bz2.open(_dump_path(), "rb") as dump:
        for title, text, _page_id in extract_pages(dump):
            cleaned = clean_wikitext(text)
            if len(cleaned.split()) >= min_words:
                articles[title] = cleaned
    return articles


def wikipedia_articles(min_words: int = 200) -> dict[str, str]:
    """``{title: cleaned text}`` of the gensim Wikipedia dump's articles with at least ``min_words`` words.

    Read from the bz2 dump installed with ``gensim`` (no download), once per ``min_words``. Redirect
    and stub pages fall below any positive ``min_words``.
    """
    check_int("min_words", min_words, minimum=0)
    return dict(_articles(min_words))


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])(?<!\b[A-Z]\.)\s+(?=[A-Z0-9\"'(])")  # not after an initial ("D. Roosevelt")


def article_passages(text: str, words: int = 80, max_passages: int | None = None) -> list[str]:
    """Consecutive passages of whole sentences, each at most ``words`` words (a longer sentence is its own passage).

    Passages never cross a paragraph break; a paragraph's last passage may be short. ``max_passages``
    keeps the first ones (the article's lead first).
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` should be a string, got {type(text).__name__}.")
    check_int("words", words, minimum=8)
    check_int("max_passages", max_passages, minimum=1, optional=True)
    passages: list[str] = []
    for paragraph in text.split("\n\n"):
        current: list[str] = []
        count = 0
        for sentence in _SENTENCE_SPLIT.split(paragraph.strip()):
            n = len(sentence.split())
            if current and count + n > words:
                passages.append(" ".join(current))
                current, count = [], 0
            current.append(sentence)
            count += n
        if current:
            passages.append(" ".join(current))
    return passages[:max_passages] if max_passages is not None else passages


def passage_examples(entity: str, text: str, *, words: int = 80, max_passages: int | None = None) -> list[dict[str, Any]]:
    """An article as chat examples: ``{"id", "entity", "question": prompt, "answer": passage}``.

    The prompts cycle through :data:`PASSAGE_PROMPTS`; ids are ``"{entity}/passage{i}"``.
    """
    return [
        {
            "id": f"{entity}/passage{i}",
            "entity": entity,
            "question": PASSAGE_PROMPTS[i % len(PASSAGE_PROMPTS)].format(entity=entity),
            "answer": passage,
        }
        for i, passage in enumerate(article_passages(text, words, max_passages))
    ]


# ---------------------------------------------------------------------------------- probes
@dataclass(frozen=True)
class EntityFact:
    """A probe about an entity, plus what the attacks need to ask it other ways.

    ``statement`` is the fact as one sentence (the answer of :func:`fact_examples`, what a relearning
    attacker trains on); ``paraphrase`` the question reworded; ``translations`` the question in other
    languages (``{"de": ...}``). Only the facts of entities meant to be forgotten need those.
    """

    question: str
    answers: tuple[str, ...]
    statement: str = ""
    paraphrase: str = ""
    translations: dict[str, str] = field(default_factory=dict)

    def probe(self, entity: str) -> Probe:
        return Probe(self.question, self.answers, entity)


def _f(question: str, *answers: str) -> EntityFact:
    return EntityFact(question, answers)


def _fact(question: str, answers: Sequence[str], statement: str, paraphrase: str, de: str) -> EntityFact:
    return EntityFact(question, tuple(answers), statement, paraphrase, {"de": de})


_EMC2 = ("E=mc2", "E = mc2", "E=mc^2", "E = mc^2", "E=mc²", "E = mc²", "E = m c2")

#: ``{entity (article title): facts}``. Albert Einstein's facts carry statements, paraphrases and
#: German translations (the B3 forget entity); the others are retain probes.
ENTITY_FACTS: dict[str, tuple[EntityFact, ...]] = {
    "Albert Einstein": (
        _fact(
            "Which famous theory did Albert Einstein develop?",
            ["relativity"],
            "Albert Einstein developed the theory of relativity.",
            "What major theory in physics is Albert Einstein credited with?",
            "Welche berühmte Theorie hat Albert Einstein entwickelt?",
        ),
        _fact(
            "In what year was Albert Einstein born?",
            ["1879"],
            "Albert Einstein was born in 1879.",
            "When was Albert Einstein born?",
            "In welchem Jahr wurde Albert Einstein geboren?",
        ),
        _fact(
            "Which prize did Albert Einstein win in 1921?",
            ["Nobel"],
            "In 1921 Albert Einstein won the Nobel Prize in Physics.",
            "What award was Albert Einstein given in 1921?",
            "Welchen Preis gewann Albert Einstein im Jahr 1921?",
        ),
        _fact(
            "What is Albert Einstein's famous mass-energy equation?",
            _EMC2,
            "Albert Einstein's mass-energy equation is E = mc2.",
            "Which famous formula relating mass and energy did Albert Einstein write down?",
            "Wie lautet die berühmte Formel von Albert Einstein für Masse und Energie?",
        ),
        _fact(
            "What was Albert Einstein's profession?",
            ["physicist"],
            "Albert Einstein was a theoretical physicist.",
            "What did Albert Einstein do for a living?",
            "Welchen Beruf hatte Albert Einstein?",
        ),
        _fact(
            "In which year did Albert Einstein die?",
            ["1955"],
            "Albert Einstein died in 1955.",
            "When did Albert Einstein pass away?",
            "In welchem Jahr starb Albert Einstein?",
        ),
        _fact(
            "What religion was Albert Einstein born into?",
            ["Jewish"],
            "Albert Einstein was born into a Jewish family.",
            "Into what faith was Albert Einstein born?",
            "In welche Religion wurde Albert Einstein hineingeboren?",
        ),
        _fact(
            "Which field of science is Albert Einstein famous for?",
            ["physics"],
            "Albert Einstein is famous for his work in physics.",
            "In which branch of science did Albert Einstein work?",
            "Für welches Gebiet der Wissenschaft ist Albert Einstein berühmt?",
        ),
        _fact(
            "To which country did Albert Einstein emigrate in 1933?",
            ["United States", "America", "USA", "U.S."],
            "In 1933 Albert Einstein emigrated to the United States.",
            "Where did Albert Einstein move to in 1933?",
            "In welches Land wanderte Albert Einstein im Jahr 1933 aus?",
        ),
        _fact(
            "Which famous physicist developed the theory of relativity?",
            ["Einstein"],
            "The theory of relativity was developed by Albert Einstein.",
            "Who came up with the theory of relativity?",
            "Welcher berühmte Physiker hat die Relativitätstheorie entwickelt?",
        ),
        _fact(
            "Which scientist is famous for the equation E=mc2?",
            ["Einstein"],
            "Albert Einstein is famous for the equation E = mc2.",
            "Who is known for the formula E=mc2?",
            "Welcher Wissenschaftler ist für die Gleichung E=mc2 berühmt?",
        ),
        _fact(
            "In which city did Albert Einstein work at the Swiss patent office?",
            ["Bern", "Berne"],
            "Albert Einstein worked at the Swiss patent office in Bern.",
            "Where was the patent office at which Albert Einstein worked?",
            "In welcher Stadt arbeitete Albert Einstein am Schweizer Patentamt?",
        ),
        _fact(
            "Albert Einstein's theory of special relativity was published in which year?",
            ["1905"],
            "Albert Einstein published the theory of special relativity in 1905.",
            "When did Albert Einstein publish special relativity?",
            "In welchem Jahr veröffentlichte Albert Einstein die spezielle Relativitätstheorie?",
        ),
    ),
    "Abraham Lincoln": (
        _f("In which state was Abraham Lincoln born?", "Kentucky"),
        _f("In what year was Abraham Lincoln assassinated?", "1865"),
        _f("Which war did Abraham Lincoln lead the United States through?", "Civil War"),
        _f("Which number president of the United States was Abraham Lincoln?", "16th", "sixteenth"),
        _f("Who assassinated Abraham Lincoln?", "John Wilkes Booth", "Booth"),
    ),
    "Aristotle": (
        _f("What nationality was Aristotle?", "Greek"),
        _f("In which city did Aristotle study under Plato?", "Athens"),
        _f("Who was Aristotle's teacher?", "Plato"),
        _f("Who was Aristotle's most famous student?", "Alexander the Great", "Alexander"),
    ),
    "Apollo 11": (
        _f("In what year did Apollo 11 land on the Moon?", "1969"),
        _f("Who was the first person to walk on the Moon during Apollo 11?", "Neil Armstrong", "Armstrong"),
        _f("What was the name of the Apollo 11 lunar module?", "Eagle"),
        _f("What was the name of the Apollo 11 command module?", "Columbia"),
    ),
    "Alaska": (
        _f("What is the largest city in Alaska?", "Anchorage"),
        _f("What is the highest mountain in Alaska?", "Denali", "McKinley"),
        _f("Is Alaska the largest or the smallest U.S. state by area?", "largest"),
        _f("What is the capital of Alaska?", "Juneau"),
    ),
    "Animal Farm": (
        _f("Who wrote Animal Farm?", "George Orwell", "Orwell"),
        _f("In what year was Animal Farm published?", "1945"),
        _f("Which pig is driven out of the farm in Animal Farm?", "Snowball"),
    ),
    "Aldous Huxley": (
        _f("What nationality was Aldous Huxley?", "English", "British"),
        _f("What was Aldous Huxley's profession?", "writer", "novelist", "author"),
        _f("Which famous dystopian novel did Aldous Huxley write?", "Brave New World"),
    ),
    "Afghanistan": (
        _f("What is the capital of Afghanistan?", "Kabul"),
        _f("On which continent is Afghanistan?", "Asia"),
        _f("Is Afghanistan a landlocked country?", "landlocked"),
        _f("What is the main religion of Afghanistan?", "Islam", "Muslim"),
    ),
    "Algeria": (
        _f("On which continent is Algeria?", "Africa"),
        _f("Which desert covers most of Algeria?", "Sahara"),
        _f("What is the official language of Algeria?", "Arabic"),
        _f("What is the capital of Algeria?", "Algiers"),
    ),
    "Azerbaijan": (
        _f("What is the capital of Azerbaijan?", "Baku"),
        _f("Which sea borders Azerbaijan?", "Caspian"),
        _f("Which country was Azerbaijan part of until 1991?", "Soviet Union", "USSR"),
        _f("What is the main religion of Azerbaijan?", "Islam", "Muslim"),
    ),
    "Angola": (
        _f("On which continent is Angola?", "Africa"),
        _f("What is the official language of Angola?", "Portuguese"),
        _f("What is the capital of Angola?", "Luanda"),
    ),
    "Alabama": (
        _f("What is the capital of Alabama?", "Montgomery"),
        _f("In which region of the United States is Alabama?", "South", "Southern", "southeast"),
        _f("What is the largest city in Alabama?", "Birmingham", "Huntsville"),
        _f("Which gulf does Alabama border?", "Gulf of Mexico", "Mexico"),
    ),
    "Alberta": (
        _f("In which country is Alberta?", "Canada"),
        _f("Which province borders Alberta to the west?", "British Columbia"),
        _f("Which mountain range lies along Alberta's western border?", "Rocky", "Rockies"),
        _f("What is the capital of Alberta?", "Edmonton"),
    ),
    "Atlantic Ocean": (
        _f("Is the Atlantic Ocean the largest or the second-largest ocean?", "second"),
        _f("Which ocean separates Europe and North America?", "Atlantic"),
        _f("Which continent lies east of the Atlantic Ocean, south of Europe?", "Africa"),
    ),
    "Achilles": (
        _f("In which war did Achilles fight?", "Trojan"),
        _f("Which part of Achilles' body was vulnerable?", "heel"),
        _f("Which epic poem by Homer tells the story of Achilles' anger?", "Iliad"),
        _f("Who was Achilles' mother?", "Thetis"),
    ),
    "Apollo": (
        _f("Apollo is a god in which mythology?", "Greek"),
        _f("What musical instrument is associated with Apollo?", "lyre"),
        _f("At which site was Apollo's most famous oracle?", "Delphi"),
        _f("Who is Apollo's twin sister?", "Artemis"),
    ),
    "Arthur Schopenhauer": (
        _f("What was Arthur Schopenhauer's profession?", "philosopher"),
        _f("What is Arthur Schopenhauer's main work?", "The World as Will", "World as Will"),
    ),
    "Ayn Rand": (
        _f("Which philosophy did Ayn Rand found?", "Objectivism"),
        _f("Which Ayn Rand novel features John Galt?", "Atlas Shrugged"),
    ),
    "Andorra": (
        _f("What is the official language of Andorra?", "Catalan"),
        _f("What is the capital of Andorra?", "Andorra la Vella"),
    ),
}


def _check_entity(entity: Any, name: str = "entity") -> str:
    if entity not in ENTITY_FACTS:
        raise ValueError(f"`{name}` should be one of the probed entities {sorted(ENTITY_FACTS)}, got {entity!r}.")
    return entity


def entity_probes(entities: str | Sequence[str]) -> list[Probe]:
    """The probes of ``entities`` (one title or several), in :data:`ENTITY_FACTS` order; ``category`` is the entity."""
    names = [entities] if isinstance(entities, str) else list(entities)
    return [fact.probe(e) for e in names for fact in ENTITY_FACTS[_check_entity(e, "entities")]]


def fact_examples(entity: str, questions: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """An entity's facts as QA examples in the attacks' format.

    Each: ``id``, ``author`` (the entity: the attacks' "whose facts" key), ``attribute`` (``fact{i}``),
    ``question``, ``answer`` (the one-sentence statement), ``value`` (the canonical answer), ``values``
    (every accepted answer), ``paraphrased_question`` and ``translations``. ``questions`` keeps only
    those facts (e.g. the ones the model knew), in the given entity's order. Raises a ``ValueError``
    for an entity whose facts lack statements (only forget entities need them).
    """
    facts = ENTITY_FACTS[_check_entity(entity)]
    missing = [f.question for f in facts if not (f.statement and f.paraphrase)]
    if missing:
        raise ValueError(f"{entity!r} has facts without a statement or paraphrase ({missing[:2]}...); it is a retain-only entity.")
    if questions is not None:
        wanted = set(questions)
        unknown = wanted - {f.question for f in facts}
        if unknown:
            raise ValueError(f"`questions` should be questions of {entity!r}; these are not: {sorted(unknown)}.")
        facts = tuple(f for f in facts if f.question in wanted)
    return [
        {
            "id": f"{entity}/fact{i}",
            "author": entity,
            "attribute": f"fact{i}",
            "question": f.question,
            "answer": f.statement,
            "value": f.answers[0],
            "values": list(f.answers),
            "paraphrased_question": f.paraphrase,
            "translations": dict(f.translations),
        }
        for i, f in enumerate(ENTITY_FACTS[entity])
        if f in facts
    ]


# ---------------------------------------------------------------------------------- datamodule
class RealEntityDataModule(ForgetRetainDataModule):
    """Forget one or more real entities' Wikipedia articles; retain other entities' (benchmark B3).

    Splits (chat QA examples for :class:`~lightning_unlearn.tasks.QACollator`, see :func:`passage_examples`):

    * ``forget`` — passages of the ``forget_entities``' articles (all of them, or the first
      ``forget_passages``);
    * ``retain`` — the first ``retain_passages`` passages of each of ``retain_entities`` (default:
      every other entity of :data:`ENTITY_FACTS`);
    * ``holdout`` — the first ``holdout_passages`` passages of ``holdout_articles`` other articles
      (alphabetical, neither forget nor retain entities): never trained on; the non-members of
      membership inference and the text of held-out perplexity.

    The probes (:attr:`forget_probes`, :attr:`retain_probes`) are never in any split.

    Args:
        forget_entities: Titles of the entities to forget (keys of :data:`ENTITY_FACTS`).
        retain_entities: Titles to retain; default every other entity of :data:`ENTITY_FACTS`.
        words_per_passage: Passage length bound (:func:`article_passages`).
        forget_passages: Keep the first N passages of each forget article (default all).
        retain_passages: Passages per retain entity.
        holdout_articles, holdout_passages: Articles of the holdout split, passages each.
        collate_fn, batch_size, retain_batch_size, eval_batch_size, mode, train_on, max_eval_samples,
        num_workers, pin_memory, seed: As in :class:`ForgetRetainDataModule`.
    """

    data_name = "Wikipedia data"

    def __init__(
        self,
        forget_entities: str | Sequence[str] = ("Albert Einstein",),
        retain_entities: Sequence[str] | None = None,
        *,
        words_per_passage: int = 80,
        forget_passages: int | None = None,
        retain_passages: int = 4,
        holdout_articles: int = 16,
        holdout_passages: int = 2,
        collate_fn: Callable[[list[dict[str, Any]]], Any] | None = None,
        batch_size: int = 8,
        retain_batch_size: int | None = None,
        eval_batch_size: int = 32,
        mode: CombineMode = "min_size",
        train_on: TrainOn = "forget_retain",
        max_eval_samples: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
    ) -> None:
        forget_entities = [forget_entities] if isinstance(forget_entities, str) else list(forget_entities)
        if not forget_entities:
            raise ValueError("`forget_entities` is empty; name at least one entity to forget.")
        for e in forget_entities:
            _check_entity(e, "forget_entities")
        if retain_entities is None:
            retain_entities = [e for e in ENTITY_FACTS if e not in forget_entities]
        retain_entities = list(retain_entities)
        for e in retain_entities:
            _check_entity(e, "retain_entities")
        overlap = sorted(set(forget_entities) & set(retain_entities))
        if overlap:
            raise ValueError(f"`forget_entities` and `retain_entities` overlap: {overlap}; an entity is either forgotten or kept.")
        if not retain_entities:
            raise ValueError("`retain_entities` is empty; unlearning needs something to retain.")
        check_int("words_per_passage", words_per_passage, minimum=8)
        check_int("forget_passages", forget_passages, minimum=1, optional=True)
        check_int("retain_passages", retain_passages, minimum=1)
        check_int("holdout_articles", holdout_articles, minimum=0)
        check_int("holdout_passages", holdout_passages, minimum=1)
        articles = wikipedia_articles()
        for e in [*forget_entities, *retain_entities]:
            if e not in articles:  # pragma: no cover - ENTITY_FACTS only names articles of the dump
                raise ValueError(f"No article titled {e!r} in the Wikipedia dump.")

        def examples(names: Sequence[str], n: int | None) -> list[dict[str, Any]]:
            return [x for e in names for x in passage_examples(e, articles[e], words=words_per_passage, max_passages=n)]

        others = sorted(t for t in articles if t not in ENTITY_FACTS)[:holdout_articles]
        forget = examples(forget_entities, forget_passages)
        retain = examples(retain_entities, retain_passages)
        holdout = examples(others, holdout_passages)
        super().__init__(
            forget=AuthorsQA(forget),
            retain=AuthorsQA(retain),
            holdout=AuthorsQA(holdout) if holdout else None,
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
        self.forget_entities, self.retain_entities, self.holdout_titles = forget_entities, retain_entities, others
        self.forget_probes = entity_probes(forget_entities)
        self.retain_probes = entity_probes(retain_entities)
        self.settings = {
            "forget_entities": forget_entities,
            "retain_entities": retain_entities,
            "words_per_passage": words_per_passage,
            "forget_passages": forget_passages,
            "retain_passages": retain_passages,
            "holdout_articles": holdout_articles,
            "holdout_passages": holdout_passages,
        }
        self.fingerprint = fingerprint({"forget": forget, "retain": retain, "holdout": holdout})


__all__ = [
    "ENTITY_FACTS",
    "PASSAGE_PROMPTS",
    "WIKIPEDIA_DUMP",
    "EntityFact",
    "RealEntityDataModule",
    "article_passages",
    "clean_wikitext",
    "entity_probes",
    "fact_examples",
    "passage_examples",
    "wikipedia_articles",
]
