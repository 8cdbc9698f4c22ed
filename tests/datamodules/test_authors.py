"""Fictitious authors: generation, QA rendering, author splits and the forget/retain/holdout DataModule."""

from __future__ import annotations

import re

import pytest
from lightning.pytorch.utilities.combined_loader import CombinedLoader

from lightning_unlearn.datamodules import (
    FictitiousAuthorsDataModule,
    ForgetRetainDataModule,
    generate_authors,
    qa_pairs,
    split_authors,
)
from lightning_unlearn.datamodules.authors import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    MAX_AUTHORS,
    MAX_PERTURBED,
    SURNAME_PREFIXES,
    SURNAME_SUFFIXES,
    AuthorsQA,
    fingerprint,
    list_collate,
)

KEYS = {"author", "author_index", "attribute", "question", "answer", "paraphrased_answer", "perturbed_answers", "perturbed_paraphrased_answers"}


def _words(value: str) -> re.Pattern:
    return re.compile(r"(?<!\w)" + re.escape(value) + r"(?!\w)")


# ---------------------------------------------------------------------------------- generation
def test_generation_is_deterministic_and_seed_dependent():
    a, b, c = generate_authors(20, seed=0), generate_authors(20, seed=0), generate_authors(20, seed=1)
    assert a == b and fingerprint(a) == fingerprint(b)
    assert [x.name for x in a] != [x.name for x in c] and fingerprint(a) != fingerprint(c)
    assert qa_pairs(a, seed=3) == qa_pairs(b, seed=3)
    assert qa_pairs(a, seed=3) != qa_pairs(a, seed=4)  # phrasings and perturbations depend on the QA seed


def test_names_are_unique_and_facts_complete():
    authors = generate_authors(MAX_AUTHORS, seed=7)
    names = [a.name for a in authors]
    surnames = [n.split()[-1] for n in names]
    assert len(set(names)) == len(names) and len(set(surnames)) == len(surnames)
    assert len({p + s for p in SURNAME_PREFIXES for s in SURNAME_SUFFIXES}) == MAX_AUTHORS
    assert [a.index for a in authors] == list(range(MAX_AUTHORS))
    assert all(list(a.facts) == list(ATTRIBUTE_NAMES) for a in authors)
    books = [a["book"] for a in authors]
    assert len(set(books)) == len(books)  # a book has one author
    assert all(1931 <= int(a["birth_year"]) <= 1994 for a in authors)
    assert all(len(v.split()) <= 5 for a in authors for v in a.facts.values())  # short answers


def test_facts_per_author_keeps_a_prefix_of_the_attributes():
    full, short = generate_authors(10, seed=2), generate_authors(10, seed=2, facts_per_author=3)
    assert all(list(s.facts) == list(ATTRIBUTE_NAMES[:3]) for s in short)
    assert [s.facts for s in short] == [{k: f.facts[k] for k in ATTRIBUTE_NAMES[:3]} for f in full]
    assert len(qa_pairs(short)) == 10 * 3


def test_qa_examples_render_the_true_fact_and_false_alternatives():
    authors = generate_authors(30, seed=0)
    examples = qa_pairs(authors, n_perturbed=4)
    assert len(examples) == 30 * len(ATTRIBUTES)
    names = {a.name for a in authors}
    for e in examples:
        assert KEYS <= set(e)
        author = authors[e["author_index"]]
        value = author[e["attribute"]]
        assert e["author"] == author.name and e["value"] == value
        assert author.name in e["question"] and author.name in e["answer"]
        assert _words(value).search(e["answer"]) and _words(value).search(e["paraphrased_answer"])
        assert e["paraphrased_answer"] != e["answer"]
        assert e["paraphrased_question"] != e["question"]
        # only this author's name appears (no other author's fact leaks in)
        assert [n for n in names if n in e["answer"] + e["paraphrased_answer"] + e["question"]] == [author.name]
        # perturbed answers: same template, distinct, never the true value
        perturbed = e["perturbed_answers"]
        assert len(perturbed) == 4 and len(set(perturbed)) == 4 and e["answer"] not in perturbed
        prefix = re.sub(r"(an|a) $", "", e["answer"].split(value)[0])  # the article depends on the value
        for p in perturbed:
            assert p.startswith(prefix) and not _words(value).search(p[len(prefix) :])
        # their paraphrased twins: the same false values in the paraphrase's wording, pair by pair
        para_prefix = re.sub(r"(an|a) $", "", e["paraphrased_answer"].split(value)[0])
        para_suffix = e["paraphrased_answer"].split(value)[-1]
        for p, q in zip(perturbed, e["perturbed_paraphrased_answers"], strict=True):
            false_value = re.sub(r"^(an|a) ", "", p[len(prefix) :].removesuffix(e["answer"].split(value)[-1]))
            assert q.startswith(para_prefix) and q.endswith(para_suffix) and _words(false_value).search(q)
            assert not _words(value).search(q[len(para_prefix) :])


def test_question_modes():
    authors = generate_authors(4, seed=0, facts_per_author=2)
    one, every = qa_pairs(authors, questions="one"), qa_pairs(authors, questions="all")
    assert len(one) == 8 and len(every) == 8 * 3
    assert len({e["id"] for e in every}) == len(every)
    by_fact = {}
    for e in every:
        by_fact.setdefault((e["author_index"], e["attribute"]), set()).add(e["question"])
    assert all(len(q) == 3 for q in by_fact.values())
    assert {e["question"] for e in one} <= {e["question"] for e in every}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_authors": 0}, ValueError, r"`n_authors` should be an int >= 1, got 0"),
        ({"n_authors": MAX_AUTHORS + 1}, ValueError, rf"`n_authors` should be at most {MAX_AUTHORS}"),
        ({"facts_per_author": 0}, ValueError, r"`facts_per_author` should be an int >= 1 or None"),
        ({"facts_per_author": 99}, ValueError, r"`facts_per_author` should be at most 11"),
        ({"seed": 1.5}, TypeError, r"`seed` should be an int"),
    ],
)
def test_generate_authors_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        generate_authors(**{"n_authors": 5, **kwargs})


def test_qa_pairs_errors():
    authors = generate_authors(2)
    with pytest.raises(ValueError, match=r"`questions` should be one of \['all', 'one'\], got 'some'"):
        qa_pairs(authors, questions="some")
    with pytest.raises(ValueError, match=r"`n_perturbed` should be an int >= 1, got 0"):
        qa_pairs(authors, n_perturbed=0)
    with pytest.raises(ValueError, match=rf"`n_perturbed` should be at most {MAX_PERTURBED}"):
        qa_pairs(authors, n_perturbed=MAX_PERTURBED + 1)


# ---------------------------------------------------------------------------------- splits
def test_split_sizes_disjoint_and_seeded():
    forget, retain, holdout = split_authors(20)
    assert (len(forget), len(retain), len(holdout)) == (2, 16, 2)
    assert sorted(forget + retain + holdout) == list(range(20))
    assert split_authors(20, seed=0) == (forget, retain, holdout)
    assert split_authors(20, seed=1) != (forget, retain, holdout)
    f, r, h = split_authors(50, forget_fraction=0.2, holdout_fraction=0.0, seed=3)
    assert (len(f), len(r), h) == (10, 40, [])


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((20, 0.0), ValueError, r"`forget_fraction` should lie in \(0, 1\), got 0.0"),
        ((20, 1.0), ValueError, r"`forget_fraction` should lie in \(0, 1\), got 1.0"),
        ((20, "0.1"), TypeError, r"`forget_fraction` should be a number"),
        ((20, 0.1, -0.1), ValueError, r"`holdout_fraction` should lie in \[0, 1\), got -0.1"),
        ((20, 0.5, 0.5), ValueError, r"should be < 1 to leave retain authors"),
        ((20, 0.01), ValueError, r"`forget_fraction`=0.01 of 20 authors forgets no author"),
        ((20, 0.1, 0.01), ValueError, r"`holdout_fraction`=0.01 of 20 authors holds out no author"),
        ((4, 0.4, 0.4), ValueError, r"leave no retain author \(2 forget \+ 2 holdout\)"),
        ((1,), ValueError, r"`n_authors` should be an int >= 2, got 1"),
    ],
)
def test_split_errors(args, error, match):
    with pytest.raises(error, match=match):
        split_authors(*args)


# ---------------------------------------------------------------------------------- dataset and datamodule
def test_authors_qa_dataset():
    examples = qa_pairs(generate_authors(3, facts_per_author=2))
    ds = AuthorsQA(examples)
    assert len(ds) == 6 and ds.author_indices == [0, 1, 2] and ds.sample_ids == [e["id"] for e in examples]
    item = ds[0]
    item["perturbed_answers"].append("x")
    item["perturbed_paraphrased_answers"].append("x")
    item["answer"] = "changed"
    assert ds[0] == examples[0]  # items are copies
    assert ds.fingerprint == AuthorsQA(examples).fingerprint


def _names(batches) -> set[str]:
    return {e["author"] for batch in batches for e in batch}


def test_datamodule_splits_by_author():
    dm = FictitiousAuthorsDataModule()  # 20 authors, 10% forget, 10% holdout, batch size 8
    n = len(ATTRIBUTES)
    assert isinstance(dm, ForgetRetainDataModule)
    assert dm.sizes() == {"forget": 2 * n, "retain": 16 * n, "holdout": 2 * n}
    assert dm.eval_splits == ["forget", "retain", "holdout"]
    assert (dm.forget_ids, dm.retain_ids, dm.holdout_ids) == split_authors(20, 0.1, 0.1, seed=0)
    assert dm.forget_set.author_indices == dm.forget_ids
    assert dm.retain_set.author_indices == dm.retain_ids
    assert dm.holdout_set.author_indices == dm.holdout_ids
    assert [a.index for a in dm.authors_of("holdout")] == dm.holdout_ids
    with pytest.raises(ValueError, match=r"`split` should be one of \['forget', 'holdout', 'retain'\], got 'test'"):
        dm.authors_of("test")


@pytest.mark.parametrize(
    ("train_on", "n_batches", "split"),
    # 11 facts per author, batches of 8: 18 authors -> 198 examples, 16 -> 176, 2 forget authors -> 22
    [("all", 25, ("forget", "retain")), ("retain", 22, ("retain",)), ("forget_retain", 3, ("forget", "retain"))],
)
def test_training_loaders_never_see_holdout_authors(train_on, n_batches, split):
    dm = FictitiousAuthorsDataModule(train_on=train_on)
    holdout = {a.name for a in dm.authors_of("holdout")}
    expected = {a.name for s in split for a in dm.authors_of(s)}
    loader = dm.train_dataloader()
    if train_on == "forget_retain":
        assert isinstance(loader, CombinedLoader)
        iter(loader)
        batches = [b for b, _, _ in loader]
        assert all(set(b) == {"forget", "retain"} for b in batches)
        assert len(batches) == n_batches and sum(len(b["forget"]) for b in batches) == len(dm.forget_set)
        assert _names(b["forget"] for b in batches) == {a.name for a in dm.authors_of("forget")}
        assert _names(b["retain"] for b in batches) <= {a.name for a in dm.authors_of("retain")}
        seen = _names(b["forget"] for b in batches) | _names(b["retain"] for b in batches)
    else:
        batches = list(loader)
        assert len(batches) == n_batches
        assert all(isinstance(b, list) and 1 <= len(b) <= 8 and isinstance(b[0], dict) for b in batches)
        assert sum(map(len, batches)) == sum(len(getattr(dm, f"{s}_set")) for s in split)
        seen = _names(batches)
        assert seen == expected
    assert seen.isdisjoint(holdout)


def test_eval_loaders_custom_collate_and_determinism():
    def collate(batch):
        return [e["question"] for e in batch]

    dm = FictitiousAuthorsDataModule(n_authors=30, seed=4, collate_fn=collate, eval_batch_size=16, max_eval_samples=20)
    loaders = dm.eval_dataloaders()
    assert list(loaders) == ["forget", "retain", "holdout"]
    forget = [q for b in loaders["forget"] for q in b]
    assert len(dm.forget_set) == 3 * len(ATTRIBUTES) and len(forget) == 20  # max_eval_samples
    assert set(forget) <= {e["question"] for e in dm.forget_set.examples}
    assert all(isinstance(q, str) for b in loaders["retain"] for q in b)
    assert all(loader.collate_fn is collate for loader in loaders.values())
    assert all(loader.collate_fn is collate for loader in dm.train_dataloader().iterables.values())
    again = FictitiousAuthorsDataModule(n_authors=30, seed=4)
    other = FictitiousAuthorsDataModule(n_authors=30, seed=5)
    assert again.fingerprint == dm.fingerprint != other.fingerprint
    assert list(again.train_dataloader().iterables["forget"]) == list(
        FictitiousAuthorsDataModule(n_authors=30, seed=4).train_dataloader().iterables["forget"]
    )
    assert again.forget_dataloader().collate_fn is list_collate


def test_no_holdout_and_checkpoint_guard():
    dm = FictitiousAuthorsDataModule(holdout_fraction=0.0, facts_per_author=2, questions="all")
    assert dm.holdout_set is None and dm.eval_splits == ["forget", "retain"]
    assert dm.sizes() == {"forget": 2 * 2 * 3, "retain": 18 * 2 * 3}
    state = dm.state_dict()
    dm.load_state_dict(state)  # same data: fine
    other = FictitiousAuthorsDataModule(holdout_fraction=0.0, facts_per_author=2, questions="all", seed=1)
    with pytest.raises(ValueError, match=r"different fictitious-author data"):
        other.load_state_dict(state)


def test_datamodule_errors():
    with pytest.raises(TypeError, match=r"`collate_fn` should be a callable"):
        FictitiousAuthorsDataModule(collate_fn="tokenize")
    with pytest.raises(ValueError, match=r"`forget_fraction`=0.01 of 20 authors forgets no author"):
        FictitiousAuthorsDataModule(forget_fraction=0.01)
    with pytest.raises(ValueError, match=r"`train_on` should be one of"):
        FictitiousAuthorsDataModule(train_on="holdout")
