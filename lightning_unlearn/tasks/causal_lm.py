"""Causal language modelling: the task behind LLM unlearning (TOFU-style question answering).

A batch is a mapping (a dict or a ``transformers`` ``BatchEncoding``)::

    {"input_ids": [B, T], "attention_mask": [B, T], "labels": [B, T]}

with ``labels = -100`` (``ignore_index``) on prompt and padding tokens, so every quantity below is
computed on the **answer tokens only**. As in ``transformers``, ``labels[:, t]`` is the token at
position ``t``; the logits at position ``t`` predict position ``t + 1``, so the task shifts logits and
labels by one (the label at position 0 is never predicted).

Two reductions over the answer tokens, on purpose (see the methods' specifications):

* :meth:`CausalLMTask.per_sample_loss` is the **mean** token NLL of each answer (``NLL_sum / |y|``,
  the per-sample version of the Hugging Face loss): what GA, GradDiff, the retain "nll" term and
  SimNPO use.
* :meth:`CausalLMTask.log_likelihood` is the **sum** of the answer's token log-probabilities
  (``log π(y|x)``): what NPO and DPO compare with the reference model.

So ``log_likelihood == -per_sample_loss * answer_lengths``. :class:`QACollator` builds such batches
from ``{"question", "answer"}`` examples, and :func:`generate_answers` produces greedy answers, to
single questions or to multi-turn conversations (:data:`Conversation`).
Nothing in this module imports ``transformers``; tokenizers and models are used through their
common interface.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_unlearn._errors import check_int, check_positive
from lightning_unlearn.tasks.base import Task, evaluating

IGNORE_INDEX = -100

Conversation = Sequence[Mapping[str, str]]
"""A multi-turn prompt: ``{"role": "user" | "assistant", "content": str}`` messages that alternate,
starting and ending with a user message (the model answers the last one). See :func:`check_conversation`."""


class CausalLMTask(Task):
    """A causal LM (``model(input_ids=..., attention_mask=...)`` → logits ``[B, T, V]``) trained on answers.

    Model outputs may be a tensor or an object with a ``logits`` attribute (``transformers`` models).
    A sample whose labels hold no answer token has loss 0, log-likelihood 0 and KL 0, and counts as
    correct (nothing to get wrong).

    Args:
        ignore_index: The label of tokens that carry no loss (prompt and padding).
        input_key: Key of the token ids in a batch.
        mask_key: Key of the attention mask (``None`` or a missing key: no mask is passed).
        label_key: Key of the labels.
        tokenizer: The model's tokenizer, for methods that write new text (e.g. TRU's reasoning targets): a
            ``transformers`` tokenizer, or the path of a local one (loaded on first use with
            ``AutoTokenizer.from_pretrained(path, local_files_only=True)``), or ``None``.
    """

    kind = "causal_lm"

    supports_relabel = False

    def __init__(
        self,
        ignore_index: int = IGNORE_INDEX,
        input_key: str = "input_ids",
        mask_key: str | None = "attention_mask",
        label_key: str = "labels",
        tokenizer: Any = None,
    ) -> None:
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise ValueError(f"`ignore_index` should be an int (usually -100), got {ignore_index!r}.")
        check_tokenizer(tokenizer)
        self.ignore_index = ignore_index
        self.input_key = input_key
        self.mask_key = mask_key
        self.label_key = label_key
        self._tokenizer_arg = tokenizer
        self._tokenizer: Any = None

    @property
    def tokenizer(self) -> Any:
        """The tokenizer given as ``tokenizer`` (loaded from its path on first use), or ``None``."""
        if self._tokenizer is None and self._tokenizer_arg is not None:
            self._tokenizer = resolve_tokenizer(self._tokenizer_arg)
        return self._tokenizer

    # ------------------------------------------------------------------ batch access
    def _get(self, batch: Any, key: str) -> Tensor:
        if not isinstance(batch, Mapping):
            raise TypeError(
                f"A causal-LM batch should be a mapping with keys {self.input_key!r}, {self.mask_key!r} and "
                f"{self.label_key!r} (e.g. from QACollator); got {type(batch).__name__}."
            )
        if key not in batch:
            raise KeyError(f"The causal-LM batch has no {key!r} entry; its keys are {sorted(batch)}.")
        return batch[key]

    def input_ids(self, batch: Any) -> Tensor:
        return self._get(batch, self.input_key)

    def attention_mask(self, batch: Any) -> Tensor | None:
        if self.mask_key is None or (isinstance(batch, Mapping) and self.mask_key not in batch):
            return None
        return self._get(batch, self.mask_key)

    def targets(self, batch: Any) -> Tensor:
        """The labels ``[B, T]`` (``ignore_index`` on prompt and padding tokens)."""
        return self._get(batch, self.label_key)

    def batch_size(self, batch: Any) -> int:
        return int(self.input_ids(batch).shape[0])

    def _shifted_labels(self, outputs: Tensor, batch: Any, targets: Tensor | None) -> Tensor:
        labels = self.targets(batch) if targets is None else targets
        if labels.shape != outputs.shape[:2]:
            raise ValueError(
                f"Labels should have the logits' [batch, length] shape {tuple(outputs.shape[:2])}; got {tuple(labels.shape)}."
            )
        return labels[:, 1:]

    def extra_inputs(self, batch: Any) -> dict[str, Tensor]:
        """Model inputs beyond the tokens and the mask (none for a text model; a VLM's images)."""
        return {}

    def carried_keys(self) -> tuple[str, ...]:
        """Batch keys an alternative-answer batch (e.g. IdK's refusals) keeps from its batch (none for a text model)."""
        return ()

    # ------------------------------------------------------------------ primitives
    def forward(self, model: nn.Module, batch: Any) -> Tensor:
        """Logits ``[B, T, V]``."""
        kwargs = {"input_ids": self.input_ids(batch), **self.extra_inputs(batch)}
        mask = self.attention_mask(batch)
        if mask is not None:
            kwargs["attention_mask"] = mask
        out = model(**kwargs)
        logits = getattr(out, "logits", out)
        if not isinstance(logits, Tensor) or logits.dim() != 3:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"A causal LM should return logits of shape [batch, length, vocab]; got {shape}.")
        return logits

    def answer_mask(self, batch: Any, targets: Tensor | None = None) -> Tensor:
        """Boolean ``[B, T-1]``: which shifted positions predict an answer token."""
        labels = self.targets(batch) if targets is None else targets
        return labels[:, 1:] != self.ignore_index

    def answer_lengths(self, batch: Any, targets: Tensor | None = None) -> Tensor:
        """Number of (predicted) answer tokens per sample, ``[B]`` (long)."""
        return self.answer_mask(batch, targets).sum(-1)

    def token_log_probs(self, outputs: Tensor, batch: Any, targets: Tensor | None = None) -> Tensor:
        """``log p(label_{t+1} | tokens_{<=t})`` for every shifted position, ``[B, T-1]``; 0 off the answer.

        Computed in float32 (``cross_entropy`` avoids materialising a second ``[B, T, V]`` tensor).
        """
        labels = self._shifted_labels(outputs, batch, targets)
        logits = outputs[:, :-1].float()
        nll = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=self.ignore_index, reduction="none"
        )
        return -nll.view(labels.shape)

    def log_likelihood(self, outputs: Tensor, batch: Any, targets: Tensor | None = None) -> Tensor:
        """**Sum** of the answer tokens' log-probabilities per sample, ``log π(y|x)``, ``[B]`` (NPO, DPO)."""
        return self.token_log_probs(outputs, batch, targets).sum(-1)

    def per_sample_loss(self, outputs: Tensor, batch: Any, targets: Tensor | None = None) -> Tensor:
        """**Mean** NLL over each sample's answer tokens, ``[B]`` (GA, GradDiff, SimNPO, retain "nll")."""
        lengths = self.answer_lengths(batch, targets).clamp_min(1)
        return -self.log_likelihood(outputs, batch, targets) / lengths

    def kl_divergence(self, outputs: Tensor, reference_outputs: Tensor, batch: Any, temperature: float = 1.0) -> Tensor:
        """Token-level ``KL(p_reference || p_model)`` averaged over each sample's answer tokens, ``[B]``.

        The direction is the forward KL from the reference (θ₀) to the model (θ),
        ``Σ_v p_ref(v) (log p_ref(v) − log p_θ(v))`` at every position that predicts an answer
        token, with both distributions softened by ``temperature``.
        """
        check_positive("temperature", temperature)
        if outputs.shape != reference_outputs.shape:
            raise ValueError(
                f"Model and reference logits should have the same shape; got {tuple(outputs.shape)} and {tuple(reference_outputs.shape)}."
            )
        mask = self.answer_mask(batch)
        if mask.shape != outputs[:, :-1].shape[:2]:
            raise ValueError(f"Labels should have the logits' [batch, length] shape {tuple(outputs.shape[:2])}.")
        # Only the answer positions: avoids [B, T, V] temporaries for the (often long) prompts.
        log_p = torch.log_softmax(outputs[:, :-1][mask].float() / temperature, dim=-1)
        log_q = torch.log_softmax(reference_outputs[:, :-1][mask].float() / temperature, dim=-1)
        per_token = (log_q.exp() * (log_q - log_p)).sum(-1)
        sample = mask.nonzero()[:, 0]
        total = torch.zeros(mask.shape[0], dtype=per_token.dtype, device=per_token.device).index_add(0, sample, per_token)
        return total / mask.sum(-1).clamp_min(1)

    def relabel(self, outputs: Any, batch: Any, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError(
            "CausalLMTask does not support relabelled targets: random labels are meaningless for a language model's "
            "answer tokens. Use a method with a language-model objective instead (e.g. GA, GradDiff, NPO, SimNPO, or IdK "
            "answers built as new batches)."
        )

    def correct(self, outputs: Tensor, batch: Any) -> Tensor:
        """Boolean ``[B]``: every answer token is the greedy (argmax) prediction under teacher forcing."""
        labels = self._shifted_labels(outputs, batch, None)
        mask = labels != self.ignore_index
        hit = outputs[:, :-1].argmax(-1) == labels
        return (hit | ~mask).all(-1)

    def hidden_states(self, model: nn.Module, batch: Any, layer: int) -> Tensor:
        """Hidden states ``[B, T, H]`` via ``output_hidden_states=True`` (a ``transformers`` model).

        ``layer`` indexes the model's ``hidden_states`` tuple: 0 is the embedding output, ``i`` the
        output of decoder layer ``i - 1`` (for Llama the last entry has the final norm applied);
        negative indices count from the end. :meth:`features` with a module name (e.g.
        ``"model.layers.1"``) is the hook-based alternative, flattened per sample.
        """
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise TypeError(f"`layer` should be an int index into the hidden states, got {type(layer).__name__} {layer!r}.")
        kwargs = {"input_ids": self.input_ids(batch), "output_hidden_states": True, **self.extra_inputs(batch)}
        mask = self.attention_mask(batch)
        if mask is not None:
            kwargs["attention_mask"] = mask
        states = getattr(model(**kwargs), "hidden_states", None)
        if states is None:
            raise ValueError(
                "The model returned no `hidden_states`; it should accept `output_hidden_states=True` (a transformers model)."
            )
        if not -len(states) <= layer < len(states):
            raise ValueError(f"`layer` should lie in [{-len(states)}, {len(states) - 1}] for this model, got {layer}.")
        return states[layer]

    # ------------------------------------------------------------------ prompts and new answers
    def prompt_ids(self, batch: Any) -> list[Tensor]:
        """Each sample's prompt tokens ``[P_i]``: its attended tokens before its first answer token.

        Works for right- and left-padded batches (padding is dropped through the attention mask, or,
        without a mask, nothing is dropped). A sample without any answer token (all labels
        ``ignore_index``) gives all its attended tokens. Used by methods that generate answers to
        the forget prompts or train the prompts on new answers (PMC, TRU).
        """
        input_ids, labels = self.input_ids(batch), self.targets(batch)
        mask = self.attention_mask(batch)
        prompts = []
        for row in range(input_ids.shape[0]):
            answer = (labels[row] != self.ignore_index).nonzero()
            end = int(answer[0]) if len(answer) else input_ids.shape[1]
            ids = input_ids[row, :end]
            if mask is not None:
                ids = ids[mask[row, :end].bool()]
            prompts.append(ids)
        return prompts

    def answer_ids(self, batch: Any) -> list[Tensor]:
        """Each sample's answer tokens ``[A_i]`` (its labels that are not ``ignore_index``)."""
        labels = self.targets(batch)
        return [row[row != self.ignore_index] for row in labels]

    def with_answers(self, prompts: Sequence[Tensor], answers: Sequence[Tensor], pad_token_id: int = 0) -> dict[str, Tensor]:
        """A right-padded batch ``prompt_i + answer_i`` with labels on the answers only, in this task's keys.

        The inverse of :meth:`prompt_ids` / :meth:`answer_ids`: ``with_answers(prompt_ids(b), answer_ids(b))``
        rebuilds a right-padded ``b``. The batch lives on the prompts' device.
        """
        if len(prompts) != len(answers) or not prompts:
            raise ValueError(
                f"`prompts` and `answers` should be non-empty and of equal length, got {len(prompts)} and {len(answers)}."
            )
        device = prompts[0].device
        seqs = [torch.cat([p.to(device).long(), a.to(device).long()]) for p, a in zip(prompts, answers)]
        length = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), length), pad_token_id, dtype=torch.long, device=device)
        attention_mask = torch.zeros((len(seqs), length), dtype=torch.long, device=device)
        labels = torch.full((len(seqs), length), self.ignore_index, dtype=torch.long, device=device)
        for row, (seq, prompt) in enumerate(zip(seqs, prompts)):
            input_ids[row, : len(seq)] = seq
            attention_mask[row, : len(seq)] = 1
            labels[row, len(prompt) : len(seq)] = seq[len(prompt) :]
        out = {self.input_key: input_ids, self.label_key: labels}
        if self.mask_key is not None:
            out[self.mask_key] = attention_mask
        return out


def check_tokenizer(tokenizer: Any, argument: str = "tokenizer") -> Any:
    """Raise a ``TypeError`` unless ``tokenizer`` is ``None``, a path, or an object with a tokenizer's interface
    (callable, with ``decode``)."""
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    if not (callable(getattr(tokenizer, "decode", None)) and callable(tokenizer)):
        raise TypeError(
            f"`{argument}` should be a transformers tokenizer, a path to one, or None; got {type(tokenizer).__name__}."
        )
    return tokenizer


def resolve_tokenizer(tokenizer: Any) -> Any:
    """A tokenizer object as it is, or one loaded from a local path with ``AutoTokenizer`` (never downloads)."""
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(os.fspath(tokenizer), local_files_only=True)
    return tokenizer


def left_pad(sequences: Sequence[Tensor], pad_token_id: int = 0) -> tuple[Tensor, Tensor]:
    """Left-pad 1-D token tensors into ``(input_ids [B, T], attention_mask [B, T])`` for ``generate``."""
    if not sequences:
        raise ValueError("`sequences` should hold at least one token sequence.")
    device = sequences[0].device
    length = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), length), pad_token_id, dtype=torch.long, device=device)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long, device=device)
    for row, seq in enumerate(sequences):
        if len(seq):
            input_ids[row, length - len(seq) :] = seq.to(device)
            attention_mask[row, length - len(seq) :] = 1
    return input_ids, attention_mask


# ---------------------------------------------------------------------------------- data
def _has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


_CONVERSATION_ROLES = ("user", "assistant")


def check_conversation(conversation: Any) -> list[dict[str, str]]:
    """A validated copy of a :data:`Conversation` as ``[{"role": ..., "content": ...}, ...]`` (other keys dropped).

    The messages should alternate ``"user"`` and ``"assistant"``, starting and ending with a user
    message, and hold string contents. A system message goes in ``QACollator(system_prompt=...)``.
    """
    if isinstance(conversation, (str, Mapping)) or not isinstance(conversation, Sequence) or not conversation:
        raise TypeError(
            "A conversation should be a non-empty list of {'role', 'content'} messages, got "
            f"{type(conversation).__name__} {conversation!r:.80}."
        )
    messages = []
    for i, message in enumerate(conversation):
        if not isinstance(message, Mapping) or not isinstance(message.get("content"), str):
            raise TypeError(f"Message {i} of a conversation should be a mapping with a string 'content', got {message!r:.80}.")
        role, expected = message.get("role"), _CONVERSATION_ROLES[i % 2]
        if role != expected:
            raise ValueError(
                f"A conversation should alternate {list(_CONVERSATION_ROLES)} messages starting with 'user' (a system "
                f"message goes in `system_prompt`); message {i} should have role {expected!r}, got {role!r}."
            )
        messages.append({"role": role, "content": message["content"]})
    if messages[-1]["role"] != "user":
        raise ValueError(
            f"A conversation should end with a 'user' message for the model to answer; it ends with message "
            f"{len(messages) - 1} of role 'assistant'."
        )
    return messages


class QACollator:
    """Collate ``{"question": str, "answer": str}`` examples into a right-padded causal-LM batch.

    The prompt is the tokenizer's chat template applied to the question (plus ``system_prompt``)
    with ``add_generation_prompt=True`` when ``chat_template`` is on and the tokenizer has one, and
    ``"Question: {q}\\nAnswer: "`` otherwise (tokenized with the tokenizer's own special tokens, e.g.
    a BOS). The answer tokens are the answer followed by EOS; only they carry labels (the prompt and
    the padding get ``ignore_index``). Extra keys of an example are ignored.

    A sequence longer than ``max_length`` keeps its whole prompt and loses the end of its answer; a
    prompt that leaves no room for an answer token raises a ``ValueError``.

    ``alternatives`` also tokenizes *other answers to the same prompts*, e.g. refusals for IdK
    unlearning: for each ``name → source`` the batch gains ``{name}_input_ids``,
    ``{name}_attention_mask`` and ``{name}_labels`` (built exactly like the main keys, padded to their
    own length), where the alternative answer of an example is ``example[source]`` when ``source`` is
    a key and ``source(example)`` when it is a callable (e.g.
    :class:`~lightning_unlearn.methods.IdkAnswers`).

    Args:
        tokenizer: A ``transformers`` tokenizer (pad token: its own, else its EOS).
        max_length: Maximum tokens per sequence.
        chat_template: Use the tokenizer's chat template when it has one.
        system_prompt: Optional system message (chat template only).
        ignore_index: The label of prompt and padding tokens.
        alternatives: Optional ``{name: example key or callable(example) -> str}`` of alternative
            answers to tokenize as well (``None``: only the main answer).
    """

    def __init__(
        self,
        tokenizer: Any,
        max_length: int = 128,
        chat_template: bool = True,
        system_prompt: str | None = None,
        ignore_index: int = IGNORE_INDEX,
        alternatives: Mapping[str, str | Callable[[Mapping[str, Any]], str]] | None = None,
    ) -> None:
        check_int("max_length", max_length, minimum=2)
        if getattr(tokenizer, "eos_token_id", None) is None:
            raise ValueError("`tokenizer` should have an EOS token (it ends every answer); its `eos_token_id` is None.")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.chat_template = bool(chat_template)
        self.system_prompt = system_prompt
        self.ignore_index = ignore_index
        self.alternatives = _check_alternatives(alternatives)

    @property
    def uses_chat_template(self) -> bool:
        return self.chat_template and _has_chat_template(self.tokenizer)

    @property
    def pad_token_id(self) -> int:
        pad = getattr(self.tokenizer, "pad_token_id", None)
        return self.tokenizer.eos_token_id if pad is None else pad

    def prompt_text(self, question: str | Conversation) -> str:
        """The prompt as text (chat template or ``"Question: ...\\nAnswer: "``).

        ``question`` may also be a :data:`Conversation`: the chat template then renders all its
        messages (after the system prompt) followed by the generation prompt, and the plain format
        writes each user message as ``"Question: {content}\\nAnswer: "`` and each assistant message as
        ``"{content}\\n"`` (so ``[{"role": "user", "content": q}]`` gives the same prompt as ``q``).
        """
        messages = [{"role": "user", "content": question}] if isinstance(question, str) else check_conversation(question)
        if self.uses_chat_template:
            system = [] if self.system_prompt is None else [{"role": "system", "content": self.system_prompt}]
            return self.tokenizer.apply_chat_template(system + messages, tokenize=False, add_generation_prompt=True)
        return "".join(f"Question: {m['content']}\nAnswer: " if m["role"] == "user" else f"{m['content']}\n" for m in messages)

    def prompt_ids(self, question: str | Conversation) -> list[int]:
        """Token ids of the prompt (a chat template writes its own special tokens)."""
        text = self.prompt_text(question)
        return list(self.tokenizer(text, add_special_tokens=not self.uses_chat_template)["input_ids"])

    def answer_ids(self, answer: str) -> list[int]:
        """Token ids of the answer followed by EOS."""
        return list(self.tokenizer(answer, add_special_tokens=False)["input_ids"]) + [self.tokenizer.eos_token_id]

    def encode(self, question: str, answer: str) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` of one example, unpadded and truncated to ``max_length``."""
        prompt = self.prompt_ids(question)
        if len(prompt) >= self.max_length:
            raise ValueError(
                f"The prompt of question {question[:60]!r} is {len(prompt)} tokens long, which leaves no room for the "
                f"answer within `max_length`={self.max_length}; raise `max_length` or shorten the question/system prompt."
            )
        answer_ids = self.answer_ids(answer)[: self.max_length - len(prompt)]
        return prompt + answer_ids, [self.ignore_index] * len(prompt) + answer_ids

    def alternative_answer(self, name: str, example: Mapping[str, Any]) -> str:
        """The alternative answer ``name`` of one example (see ``alternatives``)."""
        source = self.alternatives[name]
        answer = source(example) if callable(source) else example.get(source)
        if not isinstance(answer, str):
            where = f"example[{source!r}]" if isinstance(source, str) else f"{source!r}(example)"
            raise ValueError(
                f"The alternative answer {name!r} should be a string; {where} gave {type(answer).__name__} {answer!r}."
            )
        return answer

    def _pad(self, encoded: list[tuple[list[int], list[int]]]) -> tuple[Tensor, Tensor, Tensor]:
        length = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(encoded), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), length), dtype=torch.long)
        labels = torch.full((len(encoded), length), self.ignore_index, dtype=torch.long)
        for row, (ids, labs) in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
            labels[row, : len(labs)] = torch.tensor(labs)
        return input_ids, attention_mask, labels

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
        if not examples:
            raise ValueError("QACollator got an empty list of examples.")
        encoded = []
        for i, example in enumerate(examples):
            if (
                not isinstance(example, Mapping)
                or not isinstance(example.get("question"), str)
                or not isinstance(example.get("answer"), str)
            ):
                got = sorted(example) if isinstance(example, Mapping) else type(example).__name__
                raise ValueError(f"Example {i} should be a mapping with string 'question' and 'answer' entries; got {got}.")
            encoded.append(self.encode(example["question"], example["answer"]))
        input_ids, attention_mask, labels = self._pad(encoded)
        out = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        for name in self.alternatives:
            alt = self._pad([self.encode(e["question"], self.alternative_answer(name, e)) for e in examples])
            out.update(zip((f"{name}_input_ids", f"{name}_attention_mask", f"{name}_labels"), alt))
        return out


_BATCH_KEYS = ("input_ids", "attention_mask", "labels")


def _check_alternatives(alternatives: Any) -> dict[str, str | Callable[[Mapping[str, Any]], str]]:
    if alternatives is None:
        return {}
    if not isinstance(alternatives, Mapping):
        raise TypeError(
            f"`alternatives` should be a mapping {{name: example key or callable}} or None, got {type(alternatives).__name__}."
        )
    for name, source in alternatives.items():
        if not isinstance(name, str) or not name.isidentifier() or name in _BATCH_KEYS:
            raise ValueError(
                f"`alternatives` names should be identifiers other than {list(_BATCH_KEYS)} (they prefix batch keys), got {name!r}."
            )
        if not (isinstance(source, str) or callable(source)):
            raise TypeError(
                f"`alternatives[{name!r}]` should be an example key (str) or a callable(example) -> str, got {type(source).__name__}."
            )
    return dict(alternatives)


@torch.no_grad()
def generate_answers(
    model: nn.Module,
    tokenizer: Any,
    questions: Sequence[str | Conversation],
    max_new_tokens: int = 32,
    batch_size: int = 8,
    chat_template: bool = True,
    system_prompt: str | None = None,
) -> list[str]:
    """Greedy answers to ``questions``, batched with left padding; the new tokens only, decoded and stripped.

    Each entry of ``questions`` is a question string or a multi-turn :data:`Conversation` (a list
    of user/assistant messages ending with a user message), and the answer is the model's next
    assistant turn. Prompts are built exactly as :meth:`QACollator.prompt_text` builds them. The
    tokenizer's ``padding_side`` and the model's train/eval mode are restored afterwards.
    """
    if isinstance(questions, str):
        raise ValueError(f"`questions` should be a sequence of strings, not one string; got {questions[:60]!r}.")
    if isinstance(questions, Sequence) and questions and isinstance(questions[0], Mapping):
        raise ValueError(
            "`questions` looks like one conversation (a list of messages); pass a list of conversations, e.g. [conversation]."
        )
    check_int("max_new_tokens", max_new_tokens)
    check_int("batch_size", batch_size)
    collator = QACollator(tokenizer, max_length=10**9, chat_template=chat_template, system_prompt=system_prompt)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers: list[str] = []
    try:
        with evaluating(model) as device:
            for start in range(0, len(questions), batch_size):
                prompts = [{"input_ids": collator.prompt_ids(q)} for q in questions[start : start + batch_size]]
                enc = tokenizer.pad(prompts, padding=True, return_tensors="pt")
                input_ids, attention_mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
                out = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=collator.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
                new = out[:, input_ids.shape[1] :]
                answers.extend(text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return answers
