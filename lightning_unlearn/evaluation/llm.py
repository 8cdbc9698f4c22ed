"""TOFU-style evaluation of an unlearned causal language model: benchmark B2's row, in the package.

Maini et al., "TOFU: A Task of Fictitious Unlearning for LLMs", COLM 2024, arXiv 2401.06121. For the forget and
retain questions (split by author, see :class:`~lightning_unlearn.datamodules.FictitiousAuthorsDataModule`),
:class:`TofuEvaluator` computes:

* ``{split}_rouge`` — ROUGE-L recall of the greedy answer against the reference answer
  (:func:`~lightning_unlearn.metrics.llm.rouge_l_recall`);
* ``{split}_prob`` — answer probability :math:`P(a \\mid q)^{1/|a|}`, answer tokens including EOS;
* ``{split}_truth_ratio`` — the truth ratio's summary (forget: mean :math:`\\min(R, 1/R)`, retain: mean
  :math:`\\max(0, 1 - R)`) and ``{split}_truth_ratio_mean`` (mean :math:`R`); :math:`R` with TOFU's code
  convention ``perturbed_mean="geometric"``, perturbed answers in the paraphrased answer's wording;
* ``forget_quality`` — two-sided KS-test p-value of the forget truth ratios against the oracle's (the model
  fine-tuned without the forget set), when the oracle's ratios are given;
* ``gk_acc`` — accuracy on general-knowledge probes (those the pretrained model answers, :func:`known_probes`);
* ``model_utility`` — harmonic mean of retain answer probability, retain ROUGE-L, retain truth-ratio score and
  ``gk_acc``;
* ``mia_loss``, ``mia_zlib``, ``mia_min_k``, ``mia_min_k_pp`` — ROC AUC of the LOSS, zlib, Min-K% and Min-K%++
  (k = 0.2) membership scores, forget answers (members) vs. holdout answers (never trained on);
* ``gibberish`` — share of forget generations flagged by :func:`~lightning_unlearn.metrics.llm.gibberish_rate`.

Deviations from TOFU, plainly: our own fictitious-author data; ROUGE-L without stemming; model utility uses our
general-knowledge probes in place of TOFU's real-author and world-fact sets.

``benchmarks/b2_llm.py`` and ``lightning-unlearn test`` (through
:class:`~lightning_unlearn.callbacks.LLMEvaluation`) both call :meth:`TofuEvaluator.evaluate`, so they cannot
disagree.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_fraction, check_int
from lightning_unlearn.tasks.base import evaluating

PerturbedTemplate = Literal["paraphrase", "answer"]
#: Wording of the perturbed (false) answers of the truth ratio -> the example field that holds them.
PERTURBED_TEMPLATES: dict[str, str] = {
    "paraphrase": "perturbed_paraphrased_answers",
    "answer": "perturbed_answers",
}

#: The MIA attacks of the row: metric suffix -> what it scores.
MIA_ATTACKS: dict[str, str] = {
    "loss": "mean answer-token log-likelihood (LOSS)",
    "zlib": "log-likelihood over zlib entropy",
    "min_k": "mean of the lowest k% token log-probs (Min-K%)",
    "min_k_pp": "Min-K%++ (token log-probs standardised by the vocabulary's)",
}

#: The columns of B2's row: ``(metric, header, digits)``.
TOFU_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("forget_rouge", "forget ROUGE", 3),
    ("retain_rouge", "retain ROUGE", 3),
    ("forget_prob", "forget prob", 3),
    ("retain_prob", "retain prob", 3),
    ("forget_truth_ratio", "forget TR", 3),
    ("retain_truth_ratio", "retain TR", 3),
    ("forget_quality", "forget quality", 3),
    ("gk_acc", "GK acc", 2),
    ("model_utility", "MU", 3),
    ("mia_loss", "MIA LOSS", 2),
    ("mia_zlib", "MIA zlib", 2),
    ("mia_min_k", "MIA Min-K", 2),
    ("mia_min_k_pp", "MIA Min-K++", 2),
    ("gibberish", "gibberish", 2),
)

_REQUIRED_FIELDS = ("question", "answer", "paraphrased_answer")


def perturbed_answers(example: Mapping[str, Any], template: PerturbedTemplate = "paraphrase") -> list[str]:
    """The perturbed (false) answers of ``example`` for the truth ratio.

    ``template="paraphrase"``: ``perturbed_paraphrased_answers``, the false values in the *paraphrased answer's*
    wording, as TOFU builds them (its perturbed answers perturb the paraphrased answer), so the ratio compares true
    and false facts in the same, untrained wording. ``template="answer"``: ``perturbed_answers``, in the wording
    the model was fine-tuned on (the fine-tuned model then prefers the false answers for their familiar wording:
    R > 1 on retain).
    """
    check_choice("template", template, PERTURBED_TEMPLATES)
    key = PERTURBED_TEMPLATES[template]
    if key not in example:
        raise KeyError(f"The example {example.get('question', example)!r} has no {key!r} field (needed by `perturbed_template={template!r}`).")
    return list(example[key])


def retain_subset(examples: Sequence[Mapping[str, Any]], max_examples: int | None, seed: int) -> list[Mapping[str, Any]]:
    """The retain questions B2 evaluates: all of them, or a fixed seeded subset of ``max_examples`` in their order.

    The subset is ``sorted(random.Random(10_000 + seed).sample(range(len(examples)), max_examples))``.
    """
    check_int("max_examples", max_examples, optional=True)
    examples = list(examples)
    if max_examples is None or len(examples) <= max_examples:
        return examples
    keep = sorted(random.Random(10_000 + seed).sample(range(len(examples)), max_examples))
    return [examples[i] for i in keep]


def _answer_positions(lp: Tensor, mask: Tensor, logits: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Gather each row's answer positions into left-aligned ``[B, A]`` tensors (and ``[B, A, V]`` logits)."""
    device = lp.device
    lengths = mask.sum(-1)
    width = int(lengths.max())
    rows = torch.arange(mask.shape[0], device=device).repeat_interleave(lengths)
    cols = torch.cat([torch.arange(int(n), device=device) for n in lengths])
    src = mask.nonzero(as_tuple=True)
    out_lp = torch.zeros(mask.shape[0], width, dtype=lp.dtype, device=device)
    out_lp[rows, cols] = lp[src]
    out_mask = torch.zeros(mask.shape[0], width, dtype=torch.bool, device=device)
    out_mask[rows, cols] = True
    out_logits = None
    if logits is not None:
        out_logits = torch.zeros(mask.shape[0], width, logits.shape[-1], dtype=logits.dtype, device=device)
        out_logits[rows, cols] = logits[:, :-1][src]
    return out_lp, out_mask, out_logits


@torch.no_grad()
def score_answers(
    model: nn.Module, collator: Any, pairs: Sequence[tuple[str, str]], batch_size: int, mia: bool = False, k: float = 0.2
) -> dict[str, Tensor]:
    """Teacher-forced scores of ``(question, answer)`` pairs, in batches of ``batch_size``.

    Returns ``{"ll": summed answer log-likelihood (float64), "n": answer tokens (EOS included)}`` per pair, and with
    ``mia`` also the membership scores of the answer tokens: ``"loss"``, ``"zlib"``, ``"min_k"`` and ``"min_k_pp"``
    (Min-K% and Min-K%++ with the lowest ``k`` of the tokens). Tensors are on the CPU.

    Args:
        model: A causal LM (``model(input_ids, attention_mask).logits``).
        collator: A :class:`~lightning_unlearn.tasks.QACollator` (the prompt format and the answer labels).
        pairs: The ``(question, answer)`` pairs.
        batch_size: Pairs per forward pass.
        mia: Also compute the membership scores.
        k: The fraction of tokens of Min-K% and Min-K%++.
    """
    from lightning_unlearn.metrics.llm import mia_loss, mia_min_k, mia_min_k_plus_plus, mia_zlib, vocab_log_prob_stats
    from lightning_unlearn.tasks import CausalLMTask

    check_int("batch_size", batch_size)
    check_fraction("k", k)
    task = CausalLMTask()
    device = next(model.parameters()).device
    out: dict[str, list[Tensor]] = {"ll": [], "n": [], "loss": [], "zlib": [], "min_k": [], "min_k_pp": []}
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        batch = collator([{"question": q, "answer": a} for q, a in chunk])
        batch = {key: value.to(device) if isinstance(value, Tensor) else value for key, value in batch.items()}
        logits = task.forward(model, batch)
        lp = task.token_log_probs(logits, batch)
        mask = task.answer_mask(batch)
        out["ll"].append(lp.sum(-1).double().cpu())
        out["n"].append(mask.sum(-1).cpu())
        if mia:
            alp, amask, alogits = _answer_positions(lp, mask, logits)
            out["loss"].append(mia_loss(alp, amask).cpu())
            out["zlib"].append(mia_zlib(alp, [a for _, a in chunk], amask).cpu())
            out["min_k"].append(mia_min_k(alp, amask, k=k).cpu())
            mu, sigma = vocab_log_prob_stats(alogits)
            out["min_k_pp"].append(mia_min_k_plus_plus(alp, mu, sigma, amask, k=k).cpu())
    return {key: torch.cat(value) for key, value in out.items() if value}


def known_probes(
    model: nn.Module, tokenizer: Any, probes: Sequence[Any] | None = None, max_new_tokens: int = 24, batch_size: int = 16
) -> list[Any]:
    """The general-knowledge probes ``model`` (the *pretrained* model, before any fine-tuning) answers correctly.

    ``probes`` defaults to :data:`~lightning_unlearn.datamodules.probes.GENERAL_KNOWLEDGE`; answers are greedy
    (:func:`~lightning_unlearn.tasks.generate_answers`) and judged by
    :func:`~lightning_unlearn.datamodules.probes.probe_correct` (``filter_known``).
    """
    from lightning_unlearn.datamodules.probes import GENERAL_KNOWLEDGE, filter_known
    from lightning_unlearn.tasks import generate_answers

    probes = list(GENERAL_KNOWLEDGE if probes is None else probes)
    return filter_known(
        probes,
        lambda qs: generate_answers(model, tokenizer, qs, max_new_tokens=max_new_tokens, batch_size=batch_size),
        batch_size=batch_size,
    )


class TofuEvaluator:
    """Benchmark B2's row of one causal LM: TOFU's metrics (Maini et al., arXiv 2401.06121) on forget / retain /
    holdout QA examples.

    Examples are dicts with ``question``, ``answer``, ``paraphrased_answer`` and the perturbed answers of
    ``perturbed_template`` (what :func:`~lightning_unlearn.datamodules.authors.qa_pairs` writes). See the module
    docstring for every metric. Usage::

        evaluator = TofuEvaluator(QACollator(tokenizer, max_length=96), probes=known_probes(pretrained, tokenizer))
        oracle_ratios = evaluator.truth_ratios(oracle_model, forget)
        row = evaluator.evaluate(model, forget, retain, holdout, oracle_truth_ratios=oracle_ratios)
        row["metrics"]["forget_quality"], row["metrics"]["model_utility"]

    Args:
        collator: The :class:`~lightning_unlearn.tasks.QACollator` of the model (prompt format, maximum length);
            greedy answers use its tokenizer, chat-template setting and system prompt.
        max_new_tokens: Tokens of a greedy answer (forget / retain questions and the probes).
        batch_size: Pairs per teacher-forced forward pass.
        gen_batch_size: Questions per batched generation.
        perturbed_template: ``"paraphrase"`` (TOFU's construction, B2's) or ``"answer"``; see
            :func:`perturbed_answers`.
        probes: The general-knowledge probes of ``gk_acc`` (usually :func:`known_probes` of the pretrained model);
            ``None`` or empty: no ``gk_acc``, and model utility is the harmonic mean of the other three parts.
        mia_k: The token fraction of Min-K% and Min-K%++.
    """

    def __init__(
        self,
        collator: Any,
        *,
        max_new_tokens: int = 24,
        batch_size: int = 16,
        gen_batch_size: int = 16,
        perturbed_template: PerturbedTemplate = "paraphrase",
        probes: Sequence[Any] | None = None,
        mia_k: float = 0.2,
    ) -> None:
        if not callable(collator) or getattr(collator, "tokenizer", None) is None:
            raise TypeError(f"`collator` should be a QACollator (callable, with a `tokenizer`), got {type(collator).__name__}.")
        check_int("max_new_tokens", max_new_tokens)
        check_int("batch_size", batch_size)
        check_int("gen_batch_size", gen_batch_size)
        check_choice("perturbed_template", perturbed_template, PERTURBED_TEMPLATES)
        check_fraction("mia_k", mia_k)
        self.collator = collator
        self.tokenizer = collator.tokenizer
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.gen_batch_size = gen_batch_size
        self.perturbed_template = perturbed_template
        self.probes = list(probes) if probes else []
        self.mia_k = mia_k

    # ------------------------------------------------------------------ parts
    def generate(self, model: nn.Module, questions: Sequence[str]) -> list[str]:
        """Greedy answers to ``questions``."""
        from lightning_unlearn.tasks import generate_answers

        return generate_answers(
            model,
            self.tokenizer,
            list(questions),
            max_new_tokens=self.max_new_tokens,
            batch_size=self.gen_batch_size,
            chat_template=getattr(self.collator, "chat_template", True),
            system_prompt=getattr(self.collator, "system_prompt", None),
        )

    def _check_examples(self, name: str, examples: Sequence[Mapping[str, Any]], allow_empty: bool = False) -> list[Mapping[str, Any]]:
        examples = list(examples)
        if not examples and not allow_empty:
            raise ValueError(f"`{name}` should hold at least one QA example, got none.")
        for field in _REQUIRED_FIELDS:
            missing = [i for i, e in enumerate(examples) if field not in e]
            if missing:
                raise KeyError(f"`{name}` example #{missing[0]} has no {field!r} field; TOFU's metrics need {list(_REQUIRED_FIELDS)}.")
        return examples

    @torch.no_grad()
    def truth_ratios(self, model: nn.Module, examples: Sequence[Mapping[str, Any]]) -> list[float]:
        """TOFU's truth ratio :math:`R` of every example (``perturbed_mean="geometric"``), as floats.

        The oracle's forget truth ratios are the reference of forget quality; computed here exactly as
        :meth:`evaluate` computes the evaluated model's.
        """
        return self._truth_ratios(model, self._check_examples("examples", examples)).tolist()

    def _truth_ratios(self, model: nn.Module, examples: list[Mapping[str, Any]]) -> Tensor:
        from lightning_unlearn.metrics.llm import truth_ratio

        perturbed = [perturbed_answers(e, self.perturbed_template) for e in examples]
        k = len(perturbed[0])
        if k == 0 or any(len(p) != k for p in perturbed):
            raise ValueError(f"Every example should have the same number (>= 1) of perturbed answers; got {sorted({len(p) for p in perturbed})}.")
        pairs = [(e["question"], e["paraphrased_answer"]) for e in examples]
        pairs += [(e["question"], p) for e, ps in zip(examples, perturbed) for p in ps]
        with evaluating(model):
            scores = score_answers(model, self.collator, pairs, self.batch_size)
        mean_ll = scores["ll"] / scores["n"]
        para, pert = mean_ll[: len(examples)], mean_ll[len(examples) :].view(len(examples), k)
        return truth_ratio(para, pert, perturbed_mean="geometric")

    # ------------------------------------------------------------------ the row
    @torch.no_grad()
    def evaluate(
        self,
        model: nn.Module,
        forget: Sequence[Mapping[str, Any]],
        retain: Sequence[Mapping[str, Any]],
        holdout: Sequence[Mapping[str, Any]] | None = None,
        oracle_truth_ratios: Sequence[float] | Tensor | None = None,
    ) -> dict[str, Any]:
        """Every metric of ``model``.

        Args:
            model: The causal LM to evaluate (left in the train/eval mode it had).
            forget: The forget QA examples.
            retain: The retain QA examples (B2 caps them with :func:`retain_subset`).
            holdout: QA examples never trained on: the non-members of the MIA AUCs (``None``: no MIA).
            oracle_truth_ratios: The oracle's forget truth ratios (:meth:`truth_ratios`), for ``forget_quality``.

        Returns:
            ``{"metrics": {name: float}, "forget_truth_ratios": [float], "examples": [two forget generations]}``.
        """
        from lightning_unlearn.datamodules.probes import probe_correct
        from lightning_unlearn.metrics.llm import (
            answer_probability,
            forget_quality,
            gibberish_rate,
            mia_auc,
            model_utility,
            rouge_l_recall,
            truth_ratio_score,
        )

        sets = {"forget": self._check_examples("forget", forget), "retain": self._check_examples("retain", retain)}
        holdout = self._check_examples("holdout", holdout or [], allow_empty=True)
        with evaluating(model):
            metrics: dict[str, float] = {}
            ratios: dict[str, Tensor] = {}
            gens: dict[str, list[str]] = {}
            member_scores: dict[str, Tensor] = {}
            for split, exs in sets.items():
                gens[split] = self.generate(model, [e["question"] for e in exs])
                metrics[f"{split}_rouge"] = float(rouge_l_recall(gens[split], [e["answer"] for e in exs]).mean())
                main = score_answers(model, self.collator, [(e["question"], e["answer"]) for e in exs], self.batch_size, mia=split == "forget", k=self.mia_k)
                metrics[f"{split}_prob"] = float(answer_probability(main["ll"], main["n"]).mean())
                ratios[split] = self._truth_ratios(model, exs)
                metrics[f"{split}_truth_ratio"] = truth_ratio_score(ratios[split], split)
                metrics[f"{split}_truth_ratio_mean"] = float(ratios[split].mean())
                if split == "forget":
                    member_scores = main
            if holdout:
                nonmember = score_answers(model, self.collator, [(e["question"], e["answer"]) for e in holdout], self.batch_size, mia=True, k=self.mia_k)
                for attack in MIA_ATTACKS:
                    metrics[f"mia_{attack}"] = mia_auc(member_scores[attack], nonmember[attack])
            metrics["gibberish"] = gibberish_rate(gens["forget"])
            if self.probes:
                answers = self.generate(model, [p.question for p in self.probes])
                metrics["gk_acc"] = sum(probe_correct(a, p) for a, p in zip(answers, self.probes)) / len(self.probes)
            parts = {key: metrics[key] for key in ("retain_prob", "retain_rouge", "retain_truth_ratio", "gk_acc") if key in metrics}
            metrics["model_utility"] = model_utility(parts)
            forget_ratios = ratios["forget"].tolist()
            if oracle_truth_ratios is not None:
                oracle = oracle_truth_ratios.tolist() if isinstance(oracle_truth_ratios, Tensor) else list(oracle_truth_ratios)
                metrics["forget_quality"] = forget_quality(forget_ratios, oracle)
        examples = [
            {"question": e["question"], "reference": e["answer"], "generated": g}
            for e, g in list(zip(sets["forget"], gens["forget"]))[:2]
        ]
        return {"metrics": metrics, "forget_truth_ratios": forget_ratios, "examples": examples}


def _fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float) and 0 < abs(value) < 10 ** (-digits):
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def format_tofu_row(metrics: Mapping[str, float], name: str = "model") -> str:
    """``metrics`` as a one-row markdown table with B2's columns (:data:`TOFU_COLUMNS`) and digits."""
    header = ["Method", *(title for _, title, _ in TOFU_COLUMNS)]
    row = [name, *(_fmt(metrics.get(key), digits) for key, _, digits in TOFU_COLUMNS)]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(row) + " |"])


__all__ = [
    "MIA_ATTACKS",
    "PERTURBED_TEMPLATES",
    "TOFU_COLUMNS",
    "PerturbedTemplate",
    "TofuEvaluator",
    "format_tofu_row",
    "known_probes",
    "perturbed_answers",
    "retain_subset",
    "score_answers",
]
