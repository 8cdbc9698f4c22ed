"""Tests for the real-entity Wikipedia data of benchmark B3 (:mod:`lightning_unlearn.datamodules.wikipedia`)."""

from __future__ import annotations

import pytest

pytest.importorskip("gensim", reason="the Wikipedia articles ship with gensim (the `wiki` extra)")

from lightning_unlearn.attacks.multiturn import MultiTurnProbe, leaks_value  # noqa: E402
from lightning_unlearn.attacks.translations import translate_question  # noqa: E402
from lightning_unlearn.datamodules.probes import probe_correct  # noqa: E402
from lightning_unlearn.datamodules.wikipedia import (  # noqa: E402
    ENTITY_FACTS,
    PASSAGE_PROMPTS,
    RealEntityDataModule,
    article_passages,
    clean_wikitext,
    entity_probes,
    fact_examples,
    passage_examples,
    wikipedia_articles,
)


@pytest.fixture(scope="module")
def articles() -> dict[str, str]:
    return wikipedia_articles()


def test_articles_are_the_long_pages_of_the_dump(articles):
    assert 80 <= len(articles) <= 110  # ASSETS.md: 104 articles over 200 words (the clean-up drops a few words)
    assert all(len(text.split()) >= 200 for text in articles.values())
    assert "Albert Einstein" in articles and "AccessibleComputing" not in articles  # a redirect stub
    lead = articles["Albert Einstein"].split("\n\n")[0]
    assert lead.startswith("Albert Einstein (14 March 1879")  # bold quotes and the empty "(; ;" template removed
    assert "'''" not in articles["Albert Einstein"] and "==" not in articles["Albert Einstein"]


def test_every_probe_answer_is_stated_in_its_entity_article(articles):
    for entity, facts in ENTITY_FACTS.items():
        for fact in facts:
            assert probe_correct(articles[entity], fact.probe(entity)), (entity, fact.question)


def test_clean_wikitext_drops_headings_captions_and_markup():
    text = "== History ==\n'''Foo''' (; ; 1900) was a town in the north of a country far away.\nA caption\n* a list item"
    assert clean_wikitext(text) == "Foo (1900) was a town in the north of a country far away."


def test_article_passages_pack_whole_sentences_within_paragraphs():
    text = "One two three four. Five six seven eight. Nine ten eleven twelve.\n\nPresident Franklin D. Roosevelt was here once. End of story here."
    passages = article_passages(text, words=8)
    assert passages == [
        "One two three four. Five six seven eight.",
        "Nine ten eleven twelve.",
        "President Franklin D. Roosevelt was here once.",  # no split after the initial "D."
        "End of story here.",
    ]
    assert article_passages(text, words=8, max_passages=2) == passages[:2]
    assert article_passages("A sentence that is much longer than the bound allows here.", words=8) == [
        "A sentence that is much longer than the bound allows here."
    ]
    with pytest.raises(ValueError, match="`words`"):
        article_passages(text, words=3)
    with pytest.raises(TypeError, match="`text`"):
        article_passages(None)


def test_passage_examples_cycle_the_prompts(articles):
    examples = passage_examples("Alaska", articles["Alaska"], max_passages=5)
    assert [e["question"] for e in examples[:4]] == [p.format(entity="Alaska") for p in PASSAGE_PROMPTS]
    assert examples[4]["question"] == examples[0]["question"]
    assert [e["id"] for e in examples] == [f"Alaska/passage{i}" for i in range(5)]
    for e in examples:  # at most 80 words, unless one sentence is longer on its own
        assert len(e["answer"].split()) <= 80 or len(article_passages(e["answer"], words=8)) == 1


def test_fact_examples_have_what_the_attacks_read():
    facts = fact_examples("Albert Einstein")
    assert len(facts) == len(ENTITY_FACTS["Albert Einstein"])
    first = facts[0]
    assert first["author"] == "Albert Einstein" and first["value"] == "relativity"
    assert leaks_value(first["answer"], first["values"])  # the statement states the fact
    assert translate_question(first, "de") == "Welche berühmte Theorie hat Albert Einstein entwickelt?"
    some = fact_examples("Albert Einstein", [facts[3]["question"], facts[1]["question"]])
    assert [f["id"] for f in some] == [facts[1]["id"], facts[3]["id"]]  # the entity's order
    with pytest.raises(ValueError, match="retain-only entity"):
        fact_examples("Alaska")
    with pytest.raises(ValueError, match="not: \\['Who am I\\?'\\]"):
        fact_examples("Albert Einstein", ["Who am I?"])
    with pytest.raises(ValueError, match="`entity` should be one of"):
        fact_examples("Nobody")


def test_leaks_value_accepts_any_of_several_spellings():
    assert leaks_value("It is E=mc².", ["E=mc2", "E=mc²"])
    assert not leaks_value("It is E=mc².", "E=mc2")
    with pytest.raises(ValueError, match="`value`"):
        leaks_value("x", [])


def test_multiturn_probe_asks_the_facts_own_translation_and_scores_every_spelling():
    facts = fact_examples("Albert Einstein")
    emc2 = next(f for f in facts if f["value"] == "E=mc2")
    asked = []

    def generate_fn(conversations):
        asked.extend(c[-1]["content"] for c in conversations)
        return ["The formula is E=mc²." for _ in conversations]

    out = MultiTurnProbe(kinds=["translation", "paraphrase"], languages=["de"]).evaluate(
        None, None, [emc2], generate_fn=generate_fn
    )
    assert emc2["translations"]["de"] in asked and emc2["paraphrased_question"] in asked
    assert out["metrics"]["forget_acc/translation_de"] == 1.0  # "E=mc²" is one of the accepted values


def test_entity_probes_and_errors():
    probes = entity_probes(["Alaska", "Albert Einstein"])
    assert [p.category for p in probes].count("Alaska") == len(ENTITY_FACTS["Alaska"])
    with pytest.raises(ValueError, match="`entities` should be one of the probed entities"):
        entity_probes("Atlantis")


def test_datamodule_splits_forget_retain_and_holdout_articles():
    dm = RealEntityDataModule("Albert Einstein", ["Alaska", "Aristotle"], forget_passages=6, retain_passages=3, holdout_articles=4)
    assert dm.sizes() == {"forget": 6, "retain": 6, "holdout": 8}
    assert {e["entity"] for e in dm.forget_set.examples} == {"Albert Einstein"}
    assert {e["entity"] for e in dm.retain_set.examples} == {"Alaska", "Aristotle"}
    holdout = {e["entity"] for e in dm.holdout_set.examples}
    assert len(holdout) == 4 and not holdout & set(ENTITY_FACTS)
    assert [p.question for p in dm.forget_probes] == [f.question for f in ENTITY_FACTS["Albert Einstein"]]
    assert len(dm.retain_probes) == len(ENTITY_FACTS["Alaska"]) + len(ENTITY_FACTS["Aristotle"])
    loader = dm.train_dataloader()
    iter(loader)
    batch, _, _ = next(iter(loader))
    assert set(batch) == {"forget", "retain"} and len(batch["forget"]) == 6
    default = RealEntityDataModule(forget_passages=2, retain_passages=1, holdout_articles=0)
    assert set(default.retain_entities) == set(ENTITY_FACTS) - {"Albert Einstein"}
    assert default.holdout_set is None


def test_datamodule_refuses_bad_requests():
    with pytest.raises(ValueError, match="overlap: \\['Alaska'\\]"):
        RealEntityDataModule(["Albert Einstein", "Alaska"], ["Alaska", "Aristotle"])
    with pytest.raises(ValueError, match="`forget_entities` is empty"):
        RealEntityDataModule([])
    with pytest.raises(ValueError, match="`forget_entities` should be one of the probed entities"):
        RealEntityDataModule("Atlantis")
    with pytest.raises(ValueError, match="`retain_entities` is empty"):
        RealEntityDataModule("Albert Einstein", [])
    with pytest.raises(ValueError, match="`forget_passages`"):
        RealEntityDataModule(forget_passages=0)
    with pytest.raises(ValueError, match="`words_per_passage`"):
        RealEntityDataModule(words_per_passage=3)


def test_resume_refuses_other_data():
    dm = RealEntityDataModule(forget_passages=4, retain_passages=1, holdout_articles=0)
    state = dm.state_dict()
    other = RealEntityDataModule(forget_passages=5, retain_passages=1, holdout_articles=0)
    with pytest.raises(ValueError, match="different Wikipedia data"):
        other.load_state_dict(state)
    RealEntityDataModule(forget_passages=4, retain_passages=1, holdout_articles=0).load_state_dict(state)
