"""The watchdog: does a chat message ask the model to forget (or stop revealing) something, and what?

After "RePAIR: Interactive Machine Unlearning" (arXiv 2604.12820), **reconstructed**: the paper's watchdog is an LLM
(Mistral-7B) prompted to detect a forget intent and extract what is to be forgotten (``shared/METHODS.md`` §1); its
prompt was not available. This library's watchdog runs offline on 2 CPU cores and has two parts:

1. **Similarity to labelled examples.** The message is embedded with all-MiniLM-L6-v2 (Reimers & Gurevych,
   "Sentence-BERT", EMNLP 2019, arXiv 1908.10084; :func:`~lightning_unlearn.anchors.text.encode_texts`) and compared
   with a bank of labelled messages (:data:`~lightning_unlearn.interactive.intents_bank.BANK`, 36 forget requests and 34
   non-requests, hard negatives included: "I forget things easily", "how do I delete my account", "delete the second
   sentence"). ``margin`` = the mean cosine similarity of the ``k`` nearest forget requests minus that of the ``k``
   nearest non-requests.
2. **Extraction rules.** Regular expressions for a request addressed to the model — an optional courtesy prefix
   ("please", "can you", "I want you to", "I no longer want you to"), then a forget verb (forget, erase, delete, remove,
   wipe, purge, unlearn, scrub), "stop" + a revealing verb (telling, sharing, revealing, mentioning, bringing up ...),
   or "don't/never" + (tell, reveal, share, mention, remember ...) — capture the object, which is then trimmed of
   quantifiers ("everything you know about", "all information on", "your memory of", "what I told you about") and of
   trailing phrases ("from your memory", "to anyone", "again", "please"); a bare pronoun ("forget it") is no target.

A message is a forget request when the rules find a target **and** ``margin > threshold``. The rules alone accept
"Delete the last paragraph of my essay" (an editing command); the similarity alone cannot say what to forget. The
threshold (default 0.05) and ``k`` (default 3) were chosen on the bank, leave-one-out (grid k ∈ {1, 3, 5}, threshold ∈
{-0.1, -0.05, 0, 0.05, 0.1}; k=3, 0.05 gave precision 1.000 / recall 0.944 there, preferred over k=5, 0 at 0.972 /
0.972 because a false request edits the model while a missed one can be rephrased); precision and recall are measured
on the disjoint held-out :data:`~lightning_unlearn.interactive.intents_test.TEST` (``docs/interactive.md``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lightning_unlearn._errors import check_int

__all__ = ["ForgetIntent", "Watchdog", "extract_target", "intent_scores"]

_PREFIX = (
    r"^(?:(?:please|pls|kindly|ok(?:ay)?|hey|hi|so|now|and|also)[,!\s]+)*"
    r"(?:(?:can|could|would|will) you (?:please )?"
    r"|i(?:'d| would)? (?:like|want|need|ask) you to (?:please )?"
    r"|you (?:should|must|need to|have to) "
    r"|i (?:don'?t|do not|no longer) want you to (?:ever )?"
    r"|i want to make sure (?:that )?you )?"
    r"(?:please )?"
)
_FORGET = r"(?:forget|erase|delete|remove|wipe|purge|unlearn|scrub|clear|discard|drop)"
_REVEAL = (
    r"(?:tell(?:ing)?|shar(?:e|ing)|reveal(?:ing)?|mention(?:ing)?|disclos(?:e|ing)|giv(?:e|ing) out|bring(?:ing)? up"
    r"|talk(?:ing)? about|repeat(?:ing)?|say(?:ing)?|us(?:e|ing)|expos(?:e|ing)|leak(?:ing)?)"
)
_AUDIENCE = r"(?:(?:anyone|anybody|people|others|other users|everyone|users|strangers|the world)\s+)?"
_PATTERNS = [
    # "I don't want you to remember / know X"
    re.compile(r"^i (?:don'?t|do not|no longer) want you to (?:ever )?(?:remember|know|keep|store|retain|recall)\s+(?P<t>.+)$"),
    re.compile(_PREFIX + _FORGET + r"\s+(?P<t>.+)$"),
    re.compile(_PREFIX + r"(?:stop|quit|cease)\s+" + _REVEAL + r"\s+" + _AUDIENCE + r"(?P<t>.+)$"),
    re.compile(
        _PREFIX + r"(?:don'?t|do not|never)\s+(?:ever\s+)?(?:again\s+)?"
        r"(?:tell|reveal|share|mention|disclose|give out|bring up|talk about|repeat|remember|recall|say|expose|leak)\s+"
        + _AUDIENCE
        + r"(?P<t>.+)$"
    ),
]
_OBJECT = r"(?:information|info|data|details|facts|knowledge|memory|memories|records?|mention|mentions|trace|traces|things)"
_HOLD = r"(?:you (?:know|have|hold|keep|store|remember|learned|learnt|got)|you've (?:got|learned|learnt|stored|heard)|i (?:told|gave) you)"
_LEAD = [
    re.compile(rf"^(?:everything|anything|all|whatever|what|stuff|all that)(?: {_HOLD})?(?: (?:about|of|on|regarding|concerning|related to|to do with))?\s+"),
    re.compile(rf"^(?:all |any |the |your |every )?{_OBJECT}(?: {_HOLD})?(?: (?:about|of|on|regarding|concerning|related to))\s+"),
    re.compile(r"^(?:about|of|regarding|concerning|on)\s+"),
    re.compile(r"^that (?:i (?:told|gave) you )?(?:about )?"),
]
_TRAIL = re.compile(
    r"(?:\s+(?:from (?:your|the) (?:memory|memories|knowledge|records?|mind|database|training)|from memory"
    r"|(?:to|with) (?:anyone|anybody|people|others|other users|everyone|users|strangers)(?: (?:who|that) .*)?"
    r"|in (?:your|any|the) (?:answers?|replies|responses|chats?)|(?:ever )?again|any ?more|for good|forever"
    r"|completely|entirely|permanently|right now|now|please|thanks?(?: you)?))+$"
)
_PRONOUNS = {"it", "that", "this", "them", "those", "these", "everything", "anything", "all", "me", "him", "her", "about it"}


def extract_target(message: str) -> str | None:
    """The span a forget request names ("my sister Jane", "Elara Voss", "where I work"), or ``None`` when the message
    does not have the shape of a request addressed to the model (rule-based; see the module docstring)."""
    if not isinstance(message, str):
        raise TypeError(f"`message` should be a string, got {type(message).__name__}.")
    text = " ".join(message.replace("\u2019", "'").split()).strip()
    text = re.sub(r"[.!?\s]+$", "", text)
    lowered = text.casefold()
    for pattern in _PATTERNS:
        match = pattern.match(lowered)
        if match is None:
            continue
        start = match.start("t")
        span = text[start:]
        span = re.split(r"\s*[,;:!?]\s*|\s+-\s+", span)[0]  # "Forget it, what's the weather?" -> "it"
        changed = True
        while changed:
            changed = False
            for lead in _LEAD:
                cut = lead.match(span.casefold())
                if cut is not None and cut.end() < len(span):
                    span, changed = span[cut.end():], True
            trail = _TRAIL.search(span.casefold())
            if trail is not None and trail.start() > 0:
                span, changed = span[: trail.start()], True
        span = span.strip(" .'\"")
        if span and span.casefold() not in _PRONOUNS:
            return span
        return None
    return None


@dataclass(frozen=True)
class ForgetIntent:
    """The watchdog's verdict on one message: ``is_request`` (a forget request with a target), the ``target`` the rules
    extracted (``None`` when they found none), and the similarity ``margin`` (nearest forget requests minus nearest
    non-requests)."""

    message: str
    is_request: bool
    target: str | None
    margin: float


def intent_scores(embeddings: Tensor, bank: Tensor, labels: Tensor, k: int, exclude_self: bool = False) -> Tensor:
    """``margin`` per row of ``embeddings`` (``[N, D]``, unit norm): mean cosine of the ``k`` most similar positive bank
    rows minus that of the ``k`` most similar negative ones (``bank`` ``[M, D]``, ``labels`` ``[M]`` bool). With
    ``exclude_self`` (leave-one-out on the bank itself, ``embeddings is bank``), row ``i`` ignores bank row ``i``."""
    sims = embeddings @ bank.T
    if exclude_self:
        sims = sims - 10.0 * torch.eye(len(bank), dtype=sims.dtype)
    pos = sims[:, labels].topk(min(k, int(labels.sum())), dim=1).values.mean(1)
    neg = sims[:, ~labels].topk(min(k, int((~labels).sum())), dim=1).values.mean(1)
    return pos - neg


class Watchdog:
    """Detects a forget request in one chat message and extracts its target (see the module docstring).

    Args:
        bank: Labelled messages ``(message, target or None)``; default the shipped bank
            (:data:`~lightning_unlearn.interactive.intents_bank.BANK`). Needs at least one of each kind.
        threshold: A message is a request when the rules find a target and ``margin > threshold``.
        k: Nearest examples of each kind averaged into the margin.
        model_path: Folder of the sentence encoder (default: the installed all-MiniLM-L6-v2).
    """

    def __init__(
        self,
        bank: Sequence[tuple[str, str | None]] | None = None,
        threshold: float = 0.05,
        k: int = 3,
        model_path: str | None = None,
    ) -> None:
        if bank is None:
            from lightning_unlearn.interactive.intents_bank import BANK

            bank = BANK
        bank = list(bank)
        labels = [t is not None for _, t in bank]
        if not any(labels) or all(labels):
            raise ValueError(f"`bank` should hold forget requests and other messages, got {sum(labels)} requests of {len(bank)}.")
        check_int("k", k)
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
            raise ValueError(f"`threshold` should be a number, got {threshold!r}.")
        self.bank, self.threshold, self.k, self.model_path = bank, float(threshold), k, model_path
        self.labels = torch.tensor(labels)
        self._embeddings: Tensor | None = None

    def _encode(self, texts: Sequence[str]) -> Tensor:
        from lightning_unlearn.anchors.text import encode_texts

        return encode_texts(list(texts), self.model_path)

    @property
    def bank_embeddings(self) -> Tensor:
        if self._embeddings is None:
            self._embeddings = self._encode([m for m, _ in self.bank])
        return self._embeddings

    def margins(self, messages: Sequence[str]) -> Tensor:
        """The similarity margin of each message (see :func:`intent_scores`)."""
        return intent_scores(self._encode(messages), self.bank_embeddings, self.labels, self.k)

    def detect_many(self, messages: Sequence[str]) -> list[ForgetIntent]:
        if isinstance(messages, str) or not all(isinstance(m, str) and m.strip() for m in messages):
            raise ValueError(f"`messages` should be a list of non-empty strings, got {messages!r:.80}.")
        if not messages:
            return []
        out = []
        for message, margin in zip(messages, self.margins(messages).tolist()):
            target = extract_target(message)
            out.append(ForgetIntent(message, target is not None and margin > self.threshold, target, float(margin)))
        return out

    def detect(self, message: str) -> ForgetIntent:
        """The verdict on one ``message``."""
        if not isinstance(message, str) or not message.strip():
            raise ValueError(f"`message` should be a non-empty string, got {message!r}.")
        return self.detect_many([message])[0]

    def __call__(self, message: str) -> ForgetIntent:
        return self.detect(message)
