"""PMC: partial model collapse — unlearn by training on the model's own least-revealing answers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lightning_unlearn._errors import check_int, check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.metrics.llm import lcs_length
from lightning_unlearn.tasks.base import Task, evaluating
from lightning_unlearn.tasks.causal_lm import left_pad


# ---------------------------------------------------------------------------------- scoring
def rouge_l_recall(reference: Sequence[int], candidate: Sequence[int]) -> float:
    """ROUGE-L recall of ``reference`` in ``candidate``: ``LCS(reference, candidate) / |reference|``.

    Computed on token ids (0 for an empty reference: there is nothing to reveal).
    """
    reference = list(reference)
    return lcs_length(reference, list(candidate)) / len(reference) if reference else 0.0


def pmc_score(original: Sequence[int], sample: Sequence[int], min_length: int = 0) -> float:
    """How much ``sample`` reveals of the original answer: ROUGE-L recall, plus ``e^{-|sample|}`` if too short.

    The length penalty applies when ``|sample| < min_length`` (it keeps the model from collapsing to
    empty answers); the score is capped at 1. Lower is better; the PMC reward is ``1 - score``.
    """
    score = rouge_l_recall(original, sample)
    if len(sample) < min_length:
        score = min(1.0, score + math.exp(-len(sample)))
    return score


def select_least_overlap(original: Sequence[int], candidates: Sequence[Sequence[int]], min_length: int = 0) -> tuple[int, float]:
    """``(index, score)`` of the candidate with the lowest :func:`pmc_score` (the first one on ties)."""
    if not candidates:
        raise ValueError("`candidates` should hold at least one sampled answer.")
    scores = [pmc_score(original, c, min_length) for c in candidates]
    best = min(range(len(scores)), key=scores.__getitem__)
    return best, scores[best]


# ---------------------------------------------------------------------------------- generation
def generation_model(model: nn.Module) -> nn.Module:
    """``model`` itself if it can ``generate``, else its first submodule that can (e.g. a LightningModule's LM)."""
    if callable(getattr(model, "generate", None)):
        return model
    for module in model.modules():
        if callable(getattr(module, "generate", None)):
            return module
    raise TypeError(
        f"PMC samples answers with `generate`, which neither {type(model).__name__} nor any of its submodules has; "
        "use a transformers causal LM (e.g. LlamaForCausalLM)."
    )


def _special_ids(model: nn.Module) -> tuple[set[int], int]:
    """The EOS ids and the pad id of a transformers model (pad: its own, else EOS, else 0)."""
    config = getattr(model, "generation_config", None) or getattr(model, "config", None)
    eos = getattr(config, "eos_token_id", None)
    if eos is None:
        eos = getattr(getattr(model, "config", None), "eos_token_id", None)
    eos_ids = set() if eos is None else {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}
    pad = getattr(config, "pad_token_id", None)
    if pad is None:
        pad = getattr(getattr(model, "config", None), "pad_token_id", None)
    if pad is None:
        pad = min(eos_ids) if eos_ids else 0
    return eos_ids, int(pad)


@torch.no_grad()
def generate_continuations(
    model: nn.Module,
    prompts: Sequence[Tensor],
    max_new_tokens: int,
    num_samples: int = 1,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[list[list[int]]]:
    """Answers to left-padded ``prompts``: per prompt, ``num_samples`` lists of new token ids.

    Each answer is cut after its first EOS (which it keeps); padding is dropped. Sampling runs in
    eval mode under a forked RNG seeded with ``seed`` (the global RNG is untouched), and the model's
    train/eval mode is restored afterwards.
    """
    lm = generation_model(model)
    eos_ids, pad = _special_ids(lm)
    device = next(lm.parameters()).device
    input_ids, attention_mask = left_pad([p.to(device) for p in prompts], pad)
    kwargs: dict[str, Any] = dict(
        input_ids=input_ids,
        attention_mask=attention_mask,
        max_new_tokens=max_new_tokens,
        pad_token_id=pad,
        num_return_sequences=num_samples,
        do_sample=do_sample,
    )
    if eos_ids:
        kwargs["eos_token_id"] = sorted(eos_ids)
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p)
    else:  # greedy: override any sampling settings of the model's generation config
        kwargs.update(temperature=None, top_p=None, top_k=None)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with evaluating(lm), torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        out = lm.generate(**kwargs)
    out = out[:, input_ids.shape[1] :].tolist()
    answers: list[list[list[int]]] = []
    for i in range(len(prompts)):
        group = []
        for tokens in out[i * num_samples : (i + 1) * num_samples]:
            cut = next((j + 1 for j, t in enumerate(tokens) if t in eos_ids), len(tokens))
            group.append(tokens[:cut])
        answers.append(group)
    return answers


# ---------------------------------------------------------------------------------- the method
@register_method(name="pmc")
class PMC(UnlearningMethod):
    """Partial Model Collapse: fine-tune the forget questions on the model's own least-revealing answers.

    Partial Model Collapse (PMC), ICLR 2026, arXiv 2507.04219, following the authors' code
    (yascho/partial-model-collapse-unlearning: ``pmc.py``, ``unlearning_trainer.py``). Model collapse — a model trained on its own outputs
    drifts away from its training data — is triggered on the forget questions only:

    1. ``a₀(q)``: the original model θ₀'s **greedy** answer to each forget question ``q``.
    2. Each step, for each ``q`` of the forget batch: sample ``n`` (``num_samples``) answers from the
       **current** model (``temperature``, ``top_p``, ``max_new_tokens``) and score each with
       ``s = ROUGE-L recall of a₀(q) in the sample`` (+ ``e^{-len}`` when shorter than
       ``min_length``, capped at 1); the reward is ``1 - s``.
    3. Keep the lowest-score sample (the greedy limit of the paper's Bradley–Terry sampling). The
       pick is cached per question and replaced by a new pick that scores no higher (ties replace it,
       as in the authors' ``sample_responses``; ``replace_ties=False``: only a lower score, as
       METHODS.md words it); a question whose cached pick scores 0 is not resampled any more.
    4. ``L = γ·CE(θ; q → picked answer) + λ·L_retain`` (``forget_weight`` γ, ``retain_weight`` λ,
       default ``"nll"`` = CE on D_r). The ground-truth forget answers are **never** trained on: the
       forget batch only supplies its prompts.

    What is cached (and carried across a resume: declared with :meth:`add_state`): per question (keyed by its
    prompt token ids), ``a₀(q)``, the picked answer, its score and the step it was last sampled at.
    ``a₀(q)`` is decoded by the frozen reference θ₀ the first time ``q`` is seen (identical to
    decoding it before training, and it works with any loader and DDP sharding). A question is
    resampled when it is seen at least ``resample_every`` optimisation steps after its last
    sampling (``1`` = every visit, as in the paper).

    Deviations, documented: ROUGE-L is computed on **token ids** (the code uses ``rouge_score`` on
    words); sampling defaults are small (the paper: ``n = 20``, up to 200 tokens) so that a step stays
    cheap — raise them for real runs. The optional "align" variant (a refusal-data term weighted by
    the mean picked score) is not implemented. A causal-LM (``CausalLMTask``) method: the model must
    be a ``transformers`` model with ``generate`` (or contain one).

    Args:
        num_samples: n, answers sampled per forget question and resampling (paper 20).
        max_new_tokens: Maximum length of a sampled (and of the original greedy) answer (paper 200).
        temperature: Sampling temperature (paper 0.9).
        top_p: Nucleus-sampling mass (paper 0.95).
        min_length: Samples shorter than this many tokens get the ``e^{-len}`` penalty (0 = off).
        resample_every: Resample a question once it is seen this many optimisation steps after its
            last sampling (1 = on every visit).
        replace_ties: Replace the cached pick by a new pick with the same score (the authors' code; the
            self-training then keeps moving among equally unrevealing answers). ``False``: keep the old one.
        forget_weight: γ, weight of the CE on the picked answers.
        retain_weight: λ, weight of the retain term (paper config 1.25).
        retain_loss: ``"nll"`` (CE on D_r, the paper), ``"kl"`` or ``"none"``.
        mask: Optional parameter mask.
        seed: Seed of the answer sampling (each step samples under ``seed`` and the step number).
    """

    needs_reference = True
    supported_tasks = ("causal_lm",)

    def __init__(
        self,
        num_samples: int = 8,
        max_new_tokens: int = 64,
        temperature: float = 0.9,
        top_p: float = 0.95,
        min_length: int = 0,
        resample_every: int = 1,
        replace_ties: bool = True,
        forget_weight: float = 1.0,
        retain_weight: float = 1.25,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_int("num_samples", num_samples)
        check_int("max_new_tokens", max_new_tokens)
        check_positive("temperature", temperature)
        check_positive("top_p", top_p)
        if top_p > 1:
            raise ValueError(f"`top_p` should lie in (0, 1], got {top_p!r}.")
        check_int("min_length", min_length, minimum=0)
        check_int("resample_every", resample_every)
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.num_samples = num_samples
        self.max_new_tokens = max_new_tokens
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.min_length = min_length
        self.resample_every = resample_every
        if not isinstance(replace_ties, bool):
            raise TypeError(f"`replace_ties` should be True or False, got {replace_ties!r}.")
        self.replace_ties = replace_ties
        # Per question (its prompt token ids): θ₀'s greedy answer, the picked answer, its score, when it was sampled.
        self.add_state("_original", {})
        self.add_state("_picked", {})
        self.add_state("_scores", {})
        self.add_state("_sampled_at", {})

    # ------------------------------------------------------------------ lifecycle
    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        generation_model(model)  # fail early on a model that cannot generate
        self._original, self._picked, self._scores, self._sampled_at = {}, {}, {}, {}

    def upgrade_legacy_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """Checkpoints written before ``add_state`` held ``original`` as ``[[key, answer], ...]`` and ``picked`` as
        ``[[key, answer, score, step], ...]``."""
        out: dict[str, Any] = {"_original": {tuple(k): list(v) for k, v in state.get("original", [])}}
        out["_picked"], out["_scores"], out["_sampled_at"] = {}, {}, {}
        for key, answer, score, step in state.get("picked", []):
            key = tuple(key)
            out["_picked"][key], out["_scores"][key], out["_sampled_at"][key] = list(answer), float(score), int(step)
        return out

    # ------------------------------------------------------------------ the caches
    def original_answer(self, prompt: Tensor) -> list[int] | None:
        """The cached greedy answer of θ₀ to ``prompt`` (token ids without EOS), or ``None``."""
        return self._original.get(tuple(prompt.tolist()))

    def picked_answer(self, prompt: Tensor) -> tuple[list[int], float] | None:
        """The cached picked answer to ``prompt`` (token ids, EOS included if sampled) and its score."""
        key = tuple(prompt.tolist())
        return (self._picked[key], self._scores[key]) if key in self._picked else None

    def _record_originals(self, prompts: list[Tensor], keys: list[tuple[int, ...]]) -> None:
        if self.reference is None:
            raise RuntimeError("PMC needs the frozen reference θ₀ for the original answers; call `setup` first.")
        eos_ids, _ = _special_ids(generation_model(self.reference))
        answers = generate_continuations(self.reference, prompts, self.max_new_tokens)
        for key, (answer,) in zip(keys, answers):
            self._original[key] = [t for t in answer if t not in eos_ids]

    def _due(self, key: tuple[int, ...], step: int) -> bool:
        if key not in self._picked:
            return True
        return self._scores[key] > 0 and step - self._sampled_at[key] >= self.resample_every

    def training_batch(self, ctx: StepContext) -> dict[str, Tensor]:
        """The batch PMC trains on: the forget prompts followed by their picked answers (labels on those only).

        Samples (and updates the caches) for the questions that are due; the forget batch's own
        answers are never used.
        """
        task = ctx.task
        prompts = task.prompt_ids(ctx.batch("forget"))
        keys = [tuple(p.tolist()) for p in prompts]
        first: dict[tuple[int, ...], int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        missing = [k for k in first if k not in self._original]
        if missing:
            self._record_originals([prompts[first[k]] for k in missing], missing)
        due = [k for k in first if self._due(k, ctx.global_step)]
        if due:
            samples = generate_continuations(
                ctx.model,
                [prompts[first[k]] for k in due],
                self.max_new_tokens,
                num_samples=self.num_samples,
                do_sample=True,
                temperature=self.temperature,
                top_p=self.top_p,
                seed=self.seed * 1_000_003 + ctx.global_step,
            )
            eos_ids, _ = _special_ids(generation_model(ctx.model))
            for key, candidates in zip(due, samples):
                stripped = [[t for t in c if t not in eos_ids] for c in candidates]
                index, score = select_least_overlap(self._original[key], stripped, self.min_length)
                old = self._scores.get(key)
                if old is None or score < old or (self.replace_ties and score == old):
                    self._picked[key], self._scores[key] = candidates[index], score
                self._sampled_at[key] = ctx.global_step
        _, pad = _special_ids(generation_model(ctx.model))
        answers = [torch.tensor(self._picked[k], dtype=torch.long) for k in keys]
        return task.with_answers(prompts, answers, pad_token_id=pad)

    # ------------------------------------------------------------------ the loss
    def forget_loss(self, ctx: StepContext) -> Tensor:
        batch = self.training_batch(ctx)
        return ctx.task.per_sample_loss(ctx.task.forward(ctx.model, batch), batch).mean()
