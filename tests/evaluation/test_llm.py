"""TofuEvaluator (TOFU, Maini et al., arXiv 2401.06121): its numbers against the metric functions computed by hand,
batch-size independence, forget quality against the oracle, the retain subset, the markdown row and its errors."""

from __future__ import annotations

import math

import pytest
import torch
from llm_toys import toy_model, toy_tokenizer

from lightning_unlearn.datamodules.authors import generate_authors, qa_pairs
from lightning_unlearn.evaluation import TofuEvaluator, UnlearningEvaluator, with_gap
from lightning_unlearn.evaluation.llm import (
    MIA_ATTACKS,
    TOFU_COLUMNS,
    format_tofu_row,
    perturbed_answers,
    retain_subset,
    score_answers,
)
from lightning_unlearn.metrics.llm import answer_probability, forget_quality, truth_ratio
from lightning_unlearn.tasks import CausalLMTask, QACollator

N_PERTURBED = 2


@pytest.fixture(scope="module")
def examples() -> dict[str, list[dict]]:
    exs = qa_pairs(generate_authors(3, seed=0, facts_per_author=3), n_perturbed=N_PERTURBED, seed=0)
    by_author = {i: [e for e in exs if e["author_index"] == i] for i in range(3)}
    return {"forget": by_author[0], "retain": by_author[1], "holdout": by_author[2]}


@pytest.fixture(scope="module")
def collator() -> QACollator:
    return QACollator(toy_tokenizer(), max_length=64)


def _one_by_one_ll_mean(model, collator, question: str, answer: str) -> float:
    """Mean answer-token log-likelihood of one pair, alone in its batch (no padding)."""
    task = CausalLMTask()
    batch = collator([{"question": question, "answer": answer}])
    with torch.no_grad():
        lp = task.token_log_probs(task.forward(model, batch), batch)
    return float(lp.sum() / task.answer_mask(batch).sum())


def test_package_keeps_the_classifier_evaluator_importable():
    from lightning_unlearn.evaluation.classification import UnlearningEvaluator as Moved
    from lightning_unlearn.evaluation.classification import with_gap as moved_gap

    assert UnlearningEvaluator is Moved and with_gap is moved_gap


def test_probabilities_and_truth_ratios_match_the_metric_functions(examples, collator):
    model = toy_model(seed=0)
    evaluator = TofuEvaluator(collator, max_new_tokens=4, batch_size=3, gen_batch_size=4)
    row = evaluator.evaluate(model, examples["forget"], examples["retain"], examples["holdout"])
    forget = examples["forget"]
    para = torch.tensor([_one_by_one_ll_mean(model, collator, e["question"], e["paraphrased_answer"]) for e in forget])
    pert = torch.tensor(
        [[_one_by_one_ll_mean(model, collator, e["question"], p) for p in perturbed_answers(e, "paraphrase")] for e in forget]
    )
    expected_ratios = truth_ratio(para, pert, perturbed_mean="geometric")
    assert torch.allclose(torch.tensor(row["forget_truth_ratios"], dtype=torch.float64), expected_ratios.double(), rtol=1e-5)
    probs = torch.tensor([math.exp(_one_by_one_ll_mean(model, collator, e["question"], e["answer"])) for e in forget])
    assert row["metrics"]["forget_prob"] == pytest.approx(float(probs.mean()), rel=1e-5)
    for attack in MIA_ATTACKS:
        assert 0.0 <= row["metrics"][f"mia_{attack}"] <= 1.0
    assert "forget_quality" not in row["metrics"] and "gk_acc" not in row["metrics"]


def test_batch_size_does_not_change_the_scores(examples, collator):
    model = toy_model(seed=1)
    pairs = [(e["question"], e["answer"]) for e in examples["retain"]]
    one = score_answers(model, collator, pairs, batch_size=1, mia=True)
    all_ = score_answers(model, collator, pairs, batch_size=len(pairs), mia=True)
    assert torch.equal(one["n"], all_["n"])
    for key in ("ll", *MIA_ATTACKS):
        assert torch.allclose(one[key].double(), all_[key].double(), rtol=1e-4, atol=1e-5), key
    ll = score_answers(model, collator, pairs, batch_size=2)
    assert torch.allclose(answer_probability(ll["ll"], ll["n"]), answer_probability(one["ll"], one["n"]), rtol=1e-5)


def test_forget_quality_against_the_oracle(examples, collator):
    model, oracle = toy_model(seed=0), toy_model(seed=3)
    evaluator = TofuEvaluator(collator, max_new_tokens=4, batch_size=4, gen_batch_size=4)
    own = evaluator.truth_ratios(model, examples["forget"])
    oracle_ratios = evaluator.truth_ratios(oracle, examples["forget"])
    same = evaluator.evaluate(model, examples["forget"], examples["retain"], oracle_truth_ratios=own)
    assert same["metrics"]["forget_quality"] == 1.0
    assert same["forget_truth_ratios"] == own
    other = evaluator.evaluate(model, examples["forget"], examples["retain"], oracle_truth_ratios=torch.tensor(oracle_ratios))
    assert other["metrics"]["forget_quality"] == forget_quality(own, oracle_ratios)
    assert not any(k.startswith("mia_") for k in other["metrics"])  # no holdout: no MIA


def test_general_knowledge_probes_enter_model_utility(examples, collator):
    from lightning_unlearn.datamodules.probes import GENERAL_KNOWLEDGE
    from lightning_unlearn.metrics.llm import model_utility

    model = toy_model(seed=0)
    probes = list(GENERAL_KNOWLEDGE[:3])
    row = TofuEvaluator(collator, max_new_tokens=4, batch_size=4, gen_batch_size=4, probes=probes).evaluate(
        model, examples["forget"], examples["retain"]
    )["metrics"]
    parts = {k: row[k] for k in ("retain_prob", "retain_rouge", "retain_truth_ratio", "gk_acc")}
    assert row["model_utility"] == model_utility(parts)


def test_retain_subset_is_seeded_sorted_and_capped():
    items = [{"question": str(i)} for i in range(20)]
    cap = 7
    picked = retain_subset(items, cap, seed=0)
    assert len(picked) == cap
    positions = [items.index(e) for e in picked]
    assert positions == sorted(positions)
    assert picked == retain_subset(items, cap, seed=0)
    assert picked != retain_subset(items, cap, seed=1)
    assert retain_subset(items, None, seed=0) == items
    assert retain_subset(items, len(items) + 1, seed=0) == items


def test_format_tofu_row_has_every_column():
    metrics = {key: 0.5 for key, _, _ in TOFU_COLUMNS}
    metrics.pop("gk_acc")
    text = format_tofu_row(metrics, "graddiff").splitlines()
    assert len(text) == 3
    header, row = [c.strip() for c in text[0].strip("|").split("|")], [c.strip() for c in text[2].strip("|").split("|")]
    assert header == ["Method", *(title for _, title, _ in TOFU_COLUMNS)]
    assert row[0] == "graddiff" and row[header.index("GK acc")] == "–"
    assert row[header.index("MU")] == f"{0.5:.3f}"


def test_errors_name_the_argument(examples, collator):
    with pytest.raises(ValueError, match=r"`perturbed_template` should be one of \['answer', 'paraphrase'\], got 'wrong'"):
        TofuEvaluator(collator, perturbed_template="wrong")
    with pytest.raises(ValueError, match="`batch_size` should be an int >= 1"):
        TofuEvaluator(collator, batch_size=0)
    with pytest.raises(TypeError, match="`collator` should be a QACollator"):
        TofuEvaluator(object())
    evaluator = TofuEvaluator(collator, max_new_tokens=2)
    with pytest.raises(ValueError, match="`forget` should hold at least one QA example"):
        evaluator.evaluate(toy_model(), [], examples["retain"])
    broken = [{k: v for k, v in e.items() if k != "paraphrased_answer"} for e in examples["retain"]]
    with pytest.raises(KeyError, match="`retain` example #0 has no 'paraphrased_answer' field"):
        evaluator.evaluate(toy_model(), examples["forget"], broken)
    with pytest.raises(ValueError, match=r"`template` should be one of"):
        perturbed_answers(examples["forget"][0], "false")


def test_classifier_evaluator_still_works_from_the_package():
    from lightning_unlearn.tasks import ClassificationTask

    evaluator = UnlearningEvaluator(ClassificationTask())
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    evaluator.update("forget", logits, (torch.zeros(2), torch.tensor([0, 0])))
    assert evaluator.compute()["forget_acc"] == pytest.approx(50.0)
    assert with_gap({"UA": 10.0}, None) == {"UA": 10.0}
