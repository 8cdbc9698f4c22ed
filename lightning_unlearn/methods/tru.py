"""TRU: explainable LLM unlearning through reasoning — train the forget prompts on a reasoned refusal."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_deprecation, rank_zero_warn
from torch import Tensor, nn

from lightning_unlearn._errors import check_choice, check_int, check_positive
from lightning_unlearn.methods.base import RetainLoss, StepContext, UnlearningMethod, register_method
from lightning_unlearn.methods.masks import ParameterMask
from lightning_unlearn.methods.reasoners import (
    DEFAULT_REASONING_TEMPLATE,
    DEFAULT_REFUSAL,
    FALLBACK_SUBJECT,
    ModelReasoner,
    ReasoningTarget,
    TemplateReasoner,
    question_subject,
)
from lightning_unlearn.tasks.base import Task
from lightning_unlearn.tasks.causal_lm import check_tokenizer, resolve_tokenizer

__all__ = [
    "DEFAULT_REASONING_TEMPLATE",
    "DEFAULT_REFUSAL",
    "FALLBACK_SUBJECT",
    "TRU",
    "ModelReasoner",
    "ReasoningTarget",
    "TemplateReasoner",
    "question_from_prompt",
    "question_subject",
    "resolve_tokenizer",
]

# ---------------------------------------------------------------------------------- prompts → questions
def _longest_tail_in(head: str, text: str) -> int:
    """End index in ``text`` of the last occurrence of the longest non-blank suffix of ``head``; -1 if none."""
    for start in range(len(head)):
        tail = head[start:]
        if tail.strip():
            at = text.rfind(tail)
            if at >= 0:
                return at + len(tail)
    return -1


def question_from_prompt(tokenizer: Any, prompt_ids: Iterable[int]) -> str:
    """Recover the question text from a prompt built by :class:`~lightning_unlearn.tasks.QACollator`.

    The prompt is decoded with its special tokens and the text around the question is removed: the
    part after it (the chat template's generation prompt, or ``"\\nAnswer: "``) and everything up
    to the longest tail of the template's text before a question (the user turn's header, or
    ``"Question: "``) — so a system prompt or a date header is dropped too. Falls back to the
    prompt decoded without special tokens.
    """
    text = tokenizer.decode(list(prompt_ids), skip_special_tokens=False)
    sentinel = "\x00QUESTION\x00"
    frames = [("Question: ", "\nAnswer: ")]
    if getattr(tokenizer, "chat_template", None):
        try:
            rendered = tokenizer.apply_chat_template(
                [{"role": "user", "content": sentinel}], tokenize=False, add_generation_prompt=True
            )
            if isinstance(rendered, str) and sentinel in rendered:
                frames.insert(0, tuple(rendered.split(sentinel, 1)))  # type: ignore[arg-type]
        except Exception:  # a template that needs more than one user turn: use the plain frame
            pass
    for before, after in frames:
        body = text.rstrip()
        tail = after.strip()
        if tail and not body.endswith(tail):
            continue
        body = body[: len(body) - len(tail)] if tail else body
        end = _longest_tail_in(before, body)
        if end >= 0:
            body = body[end:]
        if body.strip():
            return body.strip()
    return tokenizer.decode(list(prompt_ids), skip_special_tokens=True).strip()


# ---------------------------------------------------------------------------------- the method
@register_method(name="tru")
class TRU(UnlearningMethod):
    """TRU: unlearning through reasoning — train each forget prompt on a reasoned refusal, plus GradDiff.

    After "Explainable LLM Unlearning through Reasoning", ICLR 2026, arXiv 2603.09980 (no public
    code; built from a detailed summary). Each forget question ``x_u`` gets a target made of a
    reasoning chain ``r`` (why it will not answer, without leaking anything, with a positive
    alternative) and a refusal ``s``, and

    ``L = γ·[L_target − α·CE(θ; D_f)] + α·L_retain``, ``L_target = CE(θ; x_u → r∘s)``,

    i.e. ``L_target + α·GradDiff`` with ``GradDiff = −CE(θ; D_f) + CE(θ; D_r)`` at the defaults
    (γ = ``forget_weight`` = 1, α = ``alpha``, retain ``"nll"``; the retain weight is α unless
    ``retain_weight`` is given). The
    summary writes ``L_target = −mean[log p(r|x) + log p(s|x, r)]``; here it is the per-answer
    mean-token CE of ``r∘s`` (the Hugging Face loss, on the scale of the GradDiff terms), averaged
    over the batch. ``L_target`` is what keeps GA from collapsing the model.

    **RECONSTRUCTED — not from the paper**: the paper writes ``(r, s)`` with a strong reasoning model
    (DeepSeek-reasoner) prompted with a template; none is reachable here. Two writers (``reasoner``):

    * the default, a deterministic :class:`TemplateReasoner`: the subject is guessed as the question's
      longest run of capitalised words (:func:`question_subject`) and ``reasoning_template`` /
      ``refusal`` are filled in (fields ``{question}``, ``{subject}``) — one chain for every question;
    * a :class:`ModelReasoner`: a causal LM that runs offline (e.g. the released SmolLM2-135M-Instruct,
      which never saw the forget set) writes a chain per question from the question and the refusal
      intent; a chain that states a word of the true forget answer, a number the question lacks, or is
      too short is replaced by the template's.

    Either way the forget prompt is decoded with the task's tokenizer (``CausalLMTask(tokenizer=...)``,
    :func:`question_from_prompt`). The target is ``r + "\\n" + s`` + EOS, cut to ``max_target_length``
    tokens. The default α (1) is a guess (the value is not published). Targets are written once per
    prompt, all before the first step (``write_ahead``) or batch by batch, and cached (deterministic — a
    template, or greedy decoding — so nothing to carry across a resume, where they are written again; a
    ``ModelReasoner`` with ``cache_dir`` also keeps them on disk). Under DDP every rank writes every target
    (the same ones: each rank's batches need them), so the ranks' writing runs side by side, not split.

    The tokenizer that tokenizes the targets is the task's: ``CausalLMTask(tokenizer=...)``.

    Args:
        alpha: α, the weight of the GradDiff part (−CE on the forget answers, and the retain term unless
            ``retain_weight`` is given).
        tokenizer: Deprecated, give it to the task instead (``CausalLMTask(tokenizer=...)``); used only when the
            task has none. A ``transformers`` tokenizer object or the path of a local one.
        reasoning_template: Template of the reasoning chain r (fields ``{question}``, ``{subject}``).
        refusal: Template of the refusal s (same fields).
        reasoner: What writes the targets: ``None`` (default) a :class:`TemplateReasoner` of ``reasoning_template``
            and ``refusal``; or a reasoner object such as :class:`ModelReasoner` (then leave the two templates
            at their defaults).
        max_target_length: Maximum tokens of a target ``r∘s`` (EOS included).
        write_ahead: Write every forget prompt's target before the first step, in one call of the reasoner (a
            ``ModelReasoner`` then generates in its full ``batch_size`` batches, not a training batch at a time);
            ``False``: write them batch by batch as training meets them (a forget set much larger than the
            steps that will run).
        forget_weight: γ, weight of ``L_target − α·CE(D_f)``.
        retain_weight: Weight of the retain term; ``None`` (default): α, as in the paper.
        retain_loss: ``"nll"`` (CE on D_r: GradDiff), ``"kl"`` (KL to θ₀ on D_r) or ``"none"``.
        mask: Optional parameter mask.
        seed: Unused (the targets are deterministic); accepted like every method's.
    """

    supported_tasks = ("causal_lm",)

    def __init__(
        self,
        alpha: float = 1.0,
        tokenizer: Any = None,
        reasoning_template: str = DEFAULT_REASONING_TEMPLATE,
        refusal: str = DEFAULT_REFUSAL,
        max_target_length: int = 256,
        reasoner: TemplateReasoner | ModelReasoner | None = None,
        write_ahead: bool = True,
        forget_weight: float = 1.0,
        retain_weight: float | None = None,
        retain_loss: RetainLoss = "nll",
        mask: ParameterMask | None = None,
        seed: int = 0,
    ) -> None:
        check_positive("alpha", alpha, allow_zero=True)
        check_int("max_target_length", max_target_length, minimum=2)
        check_tokenizer(tokenizer)
        retain_weight = alpha if retain_weight is None else retain_weight
        super().__init__(forget_weight=forget_weight, retain_weight=retain_weight, retain_loss=retain_loss, mask=mask, seed=seed)
        self.alpha = float(alpha)
        if reasoner is None:
            reasoner = TemplateReasoner(reasoning_template, refusal)
        elif not callable(getattr(reasoner, "many", None)):
            raise TypeError(
                "`reasoner` should be None, a TemplateReasoner or a ModelReasoner (an object with "
                f"`many(questions, answers)`), got {type(reasoner).__name__}."
            )
        elif (reasoning_template, refusal) != (DEFAULT_REASONING_TEMPLATE, DEFAULT_REFUSAL):
            raise ValueError(
                "Give either `reasoner` or `reasoning_template`/`refusal` (they configure the default TemplateReasoner), "
                f"not both; got reasoner={type(reasoner).__name__} and a custom template."
            )
        self.reasoner = reasoner
        self.reasoner_name = type(reasoner).__name__  # logged with the hyperparameters
        self.reasoning_template = reasoning_template
        self.refusal = refusal
        self.max_target_length = max_target_length
        self.write_ahead = check_choice("write_ahead", write_ahead, (True, False))
        self.tokenizer_path = os.fspath(tokenizer) if isinstance(tokenizer, (str, os.PathLike)) else None
        self._tokenizer_arg = tokenizer
        self._tokenizer: Any = None
        self._targets: dict[tuple[int, ...], list[int]] = {}

    # ------------------------------------------------------------------ lifecycle
    @property
    def tokenizer(self) -> Any:
        """The tokenizer that writes the targets: the task's (set by :meth:`prepare`), else the deprecated
        ``tokenizer`` argument."""
        if self._tokenizer is None:
            if self._tokenizer_arg is None:
                raise ValueError(
                    "TRU needs the model's tokenizer to write its reasoning targets: give it to the task, "
                    "`CausalLMTask(tokenizer=...)` (a transformers tokenizer, or the path of a local one)."
                )
            self._tokenizer = self._check_eos(resolve_tokenizer(self._tokenizer_arg))
        return self._tokenizer

    @staticmethod
    def _check_eos(tokenizer: Any) -> Any:
        if getattr(tokenizer, "eos_token_id", None) is None:
            raise ValueError("TRU's tokenizer should have an EOS token (it ends every target); its `eos_token_id` is None.")
        return tokenizer

    def prepare(self, model: nn.Module, task: Task, forget_loader: Iterable | None, retain_loader: Iterable | None) -> None:
        own = getattr(task, "tokenizer", None)
        if own is not None:
            if self._tokenizer_arg is not None:
                rank_zero_warn("TRU got a tokenizer from both its task and its `tokenizer` argument; it uses the task's.")
            self._tokenizer = self._check_eos(own)
        else:
            if self._tokenizer_arg is not None:
                rank_zero_deprecation(
                    "TRU(tokenizer=...) is deprecated: give the tokenizer to the task, `CausalLMTask(tokenizer=...)`."
                )
            self.tokenizer  # noqa: B018  (load it now: a missing tokenizer fails before training starts)
        self._targets.clear()
        if self.write_ahead and forget_loader is not None:
            prompts: list[Tensor] = []
            answers: list[Tensor] = []
            for batch in forget_loader:
                prompts += task.prompt_ids(batch)
                answers += task.answer_ids(batch)
            self.write_targets(prompts, answers)

    # ------------------------------------------------------------------ targets
    def target(self, prompt_ids: Iterable[int]) -> ReasoningTarget:
        """The reasoning target of one forget prompt (token ids)."""
        return self.reasoner.many([question_from_prompt(self.tokenizer, prompt_ids)])[0]

    def write_targets(self, prompts: list[Tensor], answers: list[Tensor] | None = None) -> None:
        """Write and cache the token ids of the targets of the ``prompts`` not cached yet, in one call of the
        reasoner (``answers``: the true forget answers' token ids, for a reasoner's leak check)."""
        tok = self.tokenizer
        todo: dict[tuple[int, ...], int] = {}
        for i, prompt in enumerate(prompts):
            key = tuple(prompt.tolist())
            if key not in self._targets:
                todo.setdefault(key, i)
        if not todo:
            return
        questions = [question_from_prompt(tok, key) for key in todo]
        texts = None if answers is None else [tok.decode(answers[i].tolist(), skip_special_tokens=True) for i in todo.values()]
        for key, target in zip(todo, self.reasoner.many(questions, texts)):
            ids = list(tok(target.text, add_special_tokens=False)["input_ids"]) + [tok.eos_token_id]
            self._targets[key] = ids[: self.max_target_length]

    def target_ids(self, prompt: Tensor) -> list[int]:
        """Token ids of ``target(prompt).text`` + EOS, at most ``max_target_length`` (cached per prompt)."""
        self.write_targets([prompt])
        return self._targets[tuple(prompt.tolist())]

    def target_batch(self, ctx: StepContext) -> dict[str, Tensor]:
        """The forget prompts followed by their reasoning targets (labels on the targets only)."""
        task = ctx.task
        forget = ctx.batch("forget")
        prompts = task.prompt_ids(forget)
        if any(tuple(p.tolist()) not in self._targets for p in prompts):  # the answers only matter for new targets
            self.write_targets(prompts, task.answer_ids(forget))
        answers = [torch.tensor(self.target_ids(p), dtype=torch.long) for p in prompts]
        pad = self.tokenizer.pad_token_id
        return task.with_answers(prompts, answers, pad_token_id=self.tokenizer.eos_token_id if pad is None else pad)

    # ------------------------------------------------------------------ the loss
    def target_loss(self, ctx: StepContext) -> Tensor:
        """``L_target``: the batch mean of each forget prompt's mean-token CE on its reasoning target."""
        batch = self.target_batch(ctx)
        return ctx.task.per_sample_loss(ctx.task.forward(ctx.model, batch), batch).mean()

    def forget_loss(self, ctx: StepContext) -> Tensor:
        loss = self.target_loss(ctx)
        if self.alpha > 0:
            loss = loss - self.alpha * ctx.loss("forget").mean()
        return loss
