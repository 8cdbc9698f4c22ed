"""Hand-written German, French and Spanish versions of the fictitious-author questions.

The translated-question probe of :class:`~lightning_unlearn.attacks.multiturn.MultiTurnProbe` asks
a forget question in another language: unlearning that only suppresses the English wording can
leave the fact reachable that way. The translations below were written for this project (no
machine translation is run), one question per attribute of
:data:`~lightning_unlearn.datamodules.authors.ATTRIBUTES` and language. Each translates the
attribute's *first* English phrasing (``spec.questions[0]``) in meaning, whichever phrasing an
example uses, and is rendered like the English templates: ``template.format(name=author)``.

The wording avoids gendered forms (French ``est-il né`` / ``est-elle née``, Spanish adjectives)
because the authors' genders are not part of the data, and avoids possessives that would inflect
the name (German ``von {name}`` rather than a genitive ``-s``).

Attributes outside :data:`QUESTION_TRANSLATIONS` (e.g. a custom dataset's) have no translation:
:func:`translate_question` raises a ``ValueError`` for them rather than silently asking in English.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from lightning_unlearn._errors import check_choice

TranslationLanguage = Literal["de", "fr", "es"]

#: The languages with translations: ISO 639-1 code → English name.
LANGUAGES: dict[str, str] = {"de": "German", "fr": "French", "es": "Spanish"}

#: ``{language: {attribute: question template with {name}}}``, one question per attribute.
QUESTION_TRANSLATIONS: dict[str, dict[str, str]] = {
    "de": {
        "birth_year": "In welchem Jahr wurde {name} geboren?",
        "birthplace": "Wo wurde {name} geboren?",
        "genre": "In welchem Genre schreibt {name}?",
        "book": "Was ist das bekannteste Buch von {name}?",
        "award": "Welchen Preis hat {name} gewonnen?",
        "father_profession": "Was war der Beruf des Vaters von {name}?",
        "mother_profession": "Was war der Beruf der Mutter von {name}?",
        "pet": "Welches Haustier hat {name}?",
        "hobby": "Was ist das liebste Hobby von {name}?",
        "language": "In welcher Sprache schreibt {name}?",
        "novels": "Wie viele Romane hat {name} veröffentlicht?",
    },
    "fr": {
        "birth_year": "Quelle est l'année de naissance de {name} ?",
        "birthplace": "Quelle est la ville natale de {name} ?",
        "genre": "Quel est le genre littéraire de {name} ?",
        "book": "Quel est le livre le plus connu de {name} ?",
        "award": "Quel prix a été décerné à {name} ?",
        "father_profession": "Quelle était la profession du père de {name} ?",
        "mother_profession": "Quelle était la profession de la mère de {name} ?",
        "pet": "Quel est l'animal de compagnie de {name} ?",
        "hobby": "Quel est le passe-temps préféré de {name} ?",
        "language": "Dans quelle langue écrit {name} ?",
        "novels": "Combien de romans ont été publiés par {name} ?",
    },
    "es": {
        "birth_year": "¿En qué año nació {name}?",
        "birthplace": "¿Dónde nació {name}?",
        "genre": "¿Qué género literario escribe {name}?",
        "book": "¿Cuál es el libro más conocido de {name}?",
        "award": "¿Qué premio ganó {name}?",
        "father_profession": "¿Cuál era la profesión del padre de {name}?",
        "mother_profession": "¿Cuál era la profesión de la madre de {name}?",
        "pet": "¿Qué mascota tiene {name}?",
        "hobby": "¿Cuál es el pasatiempo favorito de {name}?",
        "language": "¿En qué idioma escribe {name}?",
        "novels": "¿Cuántas novelas ha publicado {name}?",
    },
}


def translated_attributes(language: str) -> tuple[str, ...]:
    """The attributes whose question has a translation into ``language``."""
    check_choice("language", language, QUESTION_TRANSLATIONS)
    return tuple(QUESTION_TRANSLATIONS[language])


def translated_question(author: str, attribute: str, language: str) -> str:
    """The question about ``attribute`` of ``author``, in ``language`` (one of :data:`LANGUAGES`).

    Raises a ``ValueError`` for an unknown language or an attribute without a translation.
    """
    check_choice("language", language, QUESTION_TRANSLATIONS)
    if not isinstance(author, str) or not author.strip():
        raise ValueError(f"`author` should be a non-empty name, got {author!r}.")
    templates = QUESTION_TRANSLATIONS[language]
    if attribute not in templates:
        raise ValueError(
            f"There is no {LANGUAGES[language]} translation of the question about {attribute!r}; translated attributes: "
            f"{sorted(templates)}. Leave 'translation' out of the probe kinds for examples of other attributes."
        )
    return templates[attribute].format(name=author)


def translate_question(example: Mapping[str, Any], language: str) -> str:
    """The question of an example in ``language``.

    An example may carry its own translations (``example["translations"][language]``, e.g. the
    real-entity facts of :func:`~lightning_unlearn.datamodules.wikipedia.fact_examples`); otherwise it
    is a fictitious-author example and its ``"author"`` and ``"attribute"`` select a template of
    :data:`QUESTION_TRANSLATIONS`. Raises a ``ValueError`` when neither is available.
    """
    own = example.get("translations") if isinstance(example, Mapping) else None
    if isinstance(own, Mapping) and language in own:
        check_choice("language", language, LANGUAGES)
        if not isinstance(own[language], str) or not own[language].strip():
            raise ValueError(f"The example's {LANGUAGES[language]} translation should be a non-empty string, got {own[language]!r}.")
        return own[language]
    if not isinstance(example, Mapping) or not isinstance(example.get("author"), str) or "attribute" not in example:
        got = sorted(example) if isinstance(example, Mapping) else type(example).__name__
        raise ValueError(
            f"Translating a question needs an example with its own 'translations' entry for {language!r}, or 'author' and "
            f"'attribute' entries (fictitious authors); got {got}."
        )
    return translated_question(example["author"], example["attribute"], language)


__all__ = [
    "LANGUAGES",
    "QUESTION_TRANSLATIONS",
    "TranslationLanguage",
    "translate_question",
    "translated_attributes",
    "translated_question",
]
