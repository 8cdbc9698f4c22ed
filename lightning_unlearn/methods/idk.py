"""IdK: unlearning by fine-tuning the forget prompts onto refusals ("I don't know"), plus the refusal list.

The refusal answers are *data*, not part of the loss: :class:`IdkAnswers` picks one refusal per
example from :data:`IDK_ANSWERS`, and :class:`~lightning_unlearn.tasks.QACollator` tokenizes it for
the same prompt next to the true answer::

    collator = QACollator(tokenizer, alternatives={"idk": IdkAnswers(seed=0)})
    # batch: input_ids / attention_mask / labels (true answer)
    #        idk_input_ids / idk_attention_mask / idk_labels (a refusal)

so the same loaders serve every method, in the ``UnlearningModule`` (paired forget/retain batches),
the ``Unlearn`` callback and plain tests alike. :func:`alternative_batch` extracts the refusal
batch; :class:`IdK` and :class:`~lightning_unlearn.methods.IdKDPO` use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.tasks.causal_lm import CausalLMTask

#: The project's refusal answers (written for this project; the role of open-unlearning's ``idk.jsonl``).
IDK_ANSWERS: tuple[str, ...] = (
    "I'm not sure.",
    "I don't know.",
    "I don't have that information.",
    "I can't answer that.",
    "I have no idea.",
    "That is not something I know.",
    "I'm afraid I can't help with that question.",
    "I do not have an answer to that.",
    "I'm unable to answer that.",
    "Sorry, I don't know the answer.",
    "I have no knowledge of that.",
    "That information is not available to me.",
    "I couldn't tell you.",
    "I'm not able to say.",
    "I don't remember anything about that.",
    "I cannot recall that.",
    "That's beyond what I know.",
    "I lack the information to answer.",
    "I'm not aware of the answer.",
    "I can't say for certain, I don't know.",
)


class IdkAnswers:
    """Picks a refusal for each example: a callable ``example -> str`` for ``QACollator(alternatives=...)``.

    The choice is a deterministic, seeded function of the example's question and answer
    (a SHA-256 hash of ``seed``, question and answer, modulo the number of refusals): the same
    example always gets the same refusal, in any worker, process or resumed run, and a different
    ``seed`` draws a different assignment.

    Args:
        seed: Seed of the assignment of refusals to examples.
        answers: The refusals to choose from (default :data:`IDK_ANSWERS`).
    """

    def __init__(self, seed: int = 0, answers: Sequence[str] = IDK_ANSWERS) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"`seed` should be an int, got {type(seed).__name__} {seed!r}.")
        if isinstance(answers, str) or not isinstance(answers, Sequence) or not answers:
            raise ValueError(f"`answers` should be a non-empty sequence of strings, got {answers!r}.")
        if not all(isinstance(a, str) and a.strip() for a in answers):
            raise ValueError("`answers` should hold non-empty strings only.")
        self.seed = seed
        self.answers = tuple(answers)

    def index(self, example: Mapping[str, Any]) -> int:
        """Index into :attr:`answers` of the refusal of ``example``."""
        key = f"{self.seed}\x00{example.get('question', '')}\x00{example.get('answer', '')}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % len(self.answers)

    def __call__(self, example: Mapping[str, Any]) -> str:
        return self.answers[self.index(example)]

    def __repr__(self) -> str:
        return f"IdkAnswers(seed={self.seed}, answers=<{len(self.answers)} refusals>)"


def alternative_batch(batch: Any, name: str, task: CausalLMTask) -> dict[str, Tensor]:
    """The batch of alternative answers ``name`` (``{name}_input_ids`` ...) under the task's own key names.

    Raises a ``KeyError`` that says how to build such batches when the keys are missing.
    """
    if not isinstance(task, CausalLMTask):
        raise TypeError(f"Alternative-answer batches need a CausalLMTask, got {type(task).__name__}.")
    if not isinstance(batch, Mapping):
        raise TypeError(f"A causal-LM batch should be a mapping, got {type(batch).__name__}.")
    keys = {task.input_key: f"{name}_input_ids", task.label_key: f"{name}_labels"}
    if task.mask_key is not None:
        keys[task.mask_key] = f"{name}_attention_mask"
    missing = [k for k in keys.values() if k not in batch]
    if missing:
        raise KeyError(
            f"The forget batch has no {missing} entries for the alternative answers {name!r} (its keys are {sorted(batch)}); "
            f"build the batches with QACollator(tokenizer, alternatives={{{name!r}: IdkAnswers()}})."
        )
    out = {own: batch[alt] for own, alt in keys.items()}
    out.update({key: batch[key] for key in task.carried_keys() if key in batch})
    return out


def check_alternative(name: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(
            f"`alternative` should be the name of the alternative answers in the batch (an identifier), got {name!r}."
        )
    return name


@register_method(name="idk")
class IdK(UnlearningMethod):
    """IdK: fine-tune the forget prompts onto refusal answers ("I don't know"), plus a retain term.

    The "I don't know" baseline of Maini, Feng, Schwarzschild, Lipton, Kolter, "TOFU: A Task of
    Fictitious Unlearning for LLMs", COLM 2024, arXiv 2401.06121 (there called preference
    optimisation; open-unlearning's ``IdkNLL``): each forget answer y is replaced by a refusal y_idk and

    ``L = γ·E_{D_f} CE(θ; x → y_idk) + α·L_r``

    where CE is the mean NLL over the refusal's tokens per sample (the project's
    ``per_sample_loss``, as for GA/GradDiff), averaged over the batch. The true forget answer is
    never used. The refusal batch comes from the forget batch's ``{alternative}_*`` keys: build the
    loaders with ``QACollator(tokenizer, alternatives={"idk": IdkAnswers(seed)})`` (see
    :class:`IdkAnswers`; the seed of the refusal sampling lives there, in the data).

    Args:
        alternative: Name of the refusal answers in the batch (keys ``{alternative}_input_ids``, ...).
        forget_weight: γ, weight of the refusal fine-tuning term.
        retain_weight: α (λ in TOFU), weight of the retain term.
        retain_loss: ``"nll"`` (CE on D_r, the paper's), ``"kl"`` or ``"none"``.
        mask: Optional parameter mask.
        seed: Unused here (the refusals are drawn by :class:`IdkAnswers` in the data); accepted like every method's.
    """

    supported_tasks = ("causal_lm", "vision_language")

    def __init__(
        self,
        alternative: str = "idk",
        forget_weight: float = 1.0,
        retain_weight: float = 1.0,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.alternative = check_alternative(alternative)

    def forget_loss(self, ctx: StepContext) -> Tensor:
        idk = alternative_batch(ctx.batch("forget"), self.alternative, ctx.task)
        return ctx.task.per_sample_loss(ctx.task.forward(ctx.model, idk), idk).mean()
