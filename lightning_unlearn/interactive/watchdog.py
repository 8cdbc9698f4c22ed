"""The watchdog: does a chat message ask the model to forget (or stop revealing) something, and what?

After "RePAIR: Interactive Machine Unlearning" (arXiv 2604.12820), **reconstructed**: the paper's watchdog is an LLM
(Mistral-7B) prompted to detect a forget intent and extract what is to be forgotten (``shared/METHODS.md`` §1); its
prompt was not available. This library's watchdog runs offline on 2 CPU cores (about 20 ms a message once loaded) and
has two parts:

1. **Extraction rules** (:func:`extract_target`). Regular expressions for a request addressed to the model, tried on
   the whole message, then on each sentence and each part after a colon or a dash: an optional courtesy frame
   ("please", "can you", "I'd like you to", "it would be great if you could", "make sure you"), then a forget verb
   (forget, unlearn, erase, delete, remove, wipe (out), purge, scrub, drop, get rid of ...), "stop / quit / refrain
   from / no more" + a revealing verb (telling, sharing, mentioning, bringing up, giving out ...), "don't / never" + a
   revealing or keeping verb (tell, mention, remember, know, keep, store ...), a wish that the model not know ("I don't
   want you knowing", "I'd rather you didn't remember", "you shouldn't know", "I wish you didn't know", "pretend you
   never heard of"), the past forms after "I'd appreciate it if you" ("... forgot X"), "would you mind forgetting X",
   "I want X gone / deleted", "X should be forgotten", "keep X to yourself / out of your answers". The captured object
   is trimmed of quantifiers ("everything you know about", "all the info you have on", "any memory you have of",
   "what I said about") and trailing phrases ("from your memory", "to anyone", "in your answers", "again", "please").
   No target: a bare pronoun ("forget it, ..."), an object starting with "me" / "us" ("stop telling me what to do"), a
   part of a text or a style ("delete the second sentence", "stop using so many emojis"), or the model's own earlier
   output ("erase the last thing you wrote"). A one-letter typo in a word of the rules ("forgett", "evrything") is
   corrected first.
2. **Similarity to labelled examples.** The message is embedded with all-MiniLM-L6-v2 (Reimers & Gurevych,
   "Sentence-BERT", EMNLP 2019, arXiv 1908.10084; :func:`~lightning_unlearn.anchors.text.encode_texts`) and compared
   with labelled examples (:func:`~lightning_unlearn.interactive.intents_bank.default_bank`: the bank's 164 messages
   and the first held-out set's 221, 196 forget requests and 189 non-requests, hard negatives included: "I forget
   things easily", "how do I delete my account", "forget the small talk, what's the fastest train to Leeds?", "who is
   the CEO of Coldharbour Ventures?" beside a request to unlearn Coldharbour Ventures). ``margin`` = the mean cosine
   similarity of the ``k`` nearest forget requests minus that of the ``k`` nearest non-requests.

A message is a forget request when the rules find a target **and** ``margin > threshold``. The rules alone accept
rule-shaped commands that are not requests ("Could you erase the last thing you wrote and try again?"); the similarity
alone cannot say what to forget and follows the topic as much as the intent. ``k`` (default 10) and the threshold
(default −0.0275) were chosen by :func:`~lightning_unlearn.benchmarking.b10.watchdog_grid`: leave-one-out on the
examples plus the development set :data:`~lightning_unlearn.interactive.intents_dev.DEV` (each example scored against
the others, each development message against the examples; k ∈ {3, 5, 7, 10, 15, 20, 25, 30, 40, 60, 80} × threshold
∈ {−0.100, −0.095, ..., 0.200}; the middle of the widest run of thresholds with the fewest errors: none of 445
messages wrong for k = 10 and thresholds −0.035 ... −0.020). Masking the target out of the message before embedding
was tried and not kept (the rule-shaped non-requests then look like requests).

History: the first held-out set was measured once with the previous revision (k 25, threshold 0.03, the bank alone:
precision 0.990, recall 0.911), then its misses were read, the rules extended for them (a leading legal clause, "I'd
prefer that you ...", "make yourself forget", "let it go", "I'd appreciate you no longer knowing ...", "... weren't
something you know", a pronoun pointing to the user's data named elsewhere in the message, "yourself" as no target)
and it joined the examples. The second blind held-out set
:data:`~lightning_unlearn.interactive.intents_heldout2.HELDOUT2`, committed before this revision, was used for none of
it (``docs/interactive.md``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lightning_unlearn._errors import check_int

__all__ = ["ForgetIntent", "Watchdog", "extract_target", "intent_scores"]

_COURTESY = r"(?:(?:please|pls|plz|kindly|ok(?:ay)?|hey|hi|hello|so|now|and|also|then|oh|yes|right|look|listen)[,!\s]+)*"
_YOU = r"(?:you|u)"
_FRAME = (
    r"(?:(?:can|could|would|will) " + _YOU + r" (?:(?:please|pls|plz|kindly|just) )*"
    r"|i(?:'d| would)? (?:like|want|need|ask|request) " + _YOU + r" to (?:please )?"
    r"|i(?:'m| am) asking " + _YOU + r" to "
    r"|" + _YOU + r" (?:should|must|need to|have to|ought to) "
    r"|i (?:don'?t|do not|no longer) want " + _YOU + r" to (?:ever )?"
    r"|i want to make sure (?:that )?" + _YOU + r" "
    r"|(?:make sure|be sure|try to) (?:that )?(?:" + _YOU + r" )?"
    r"|(?:i'd|i would) (?:appreciate it|be grateful|love it) if " + _YOU + r" (?:could |would )?"
    r"|it(?:'d| would) be (?:great|nice|good|helpful|best) if " + _YOU + r" (?:could |would )?"
    r"|(?:i'd|i would) (?:really |much )?(?:prefer|rather)(?: it)?(?: if| that)? " + _YOU + r" (?:would |could )?"
    r")?"
    r"(?:make yourself |get yourself to )?"
    r"(?:please )?"
)
#: A leading legal or situational clause before the request: "Under GDPR I ask you to erase ...", "as per my rights, ...".
_CONTEXT = (
    r"(?:(?:under|per|as per|in line with|according to|citing|invoking|exercising|in accordance with|based on|given)"
    r" (?:[\w'-]+ ){0,5}?[\w'-]+,?\s+)?"
)
_PREFIX = r"^" + _CONTEXT + _COURTESY + _FRAME
# forget verbs, imperative (and the past form after "if you could / I'd appreciate it if you")
_FORGET = (
    r"(?:forget|erase|delete|remove|wipe(?: out)?|purge|unlearn|scrub|clear|discard|drop|expunge|get rid of|let go of)"
)
_FORGOT = r"(?:forgot|erased|deleted|removed|wiped(?: out)?|purged|unlearned|unlearnt|scrubbed|dropped|got rid of|let go of)"
_FORGETTING = r"(?:forgetting|erasing|deleting|removing|wiping(?: out)?|purging|unlearning|scrubbing|dropping|getting rid of)"
_REVEAL = (
    r"(?:tell|share|reveal|mention|disclose|give out|bring up|talk about|repeat|say|use|expose|leak|"
    r"spread|discuss|pass on|hand out|refer to)"
)
_REVEALING = (
    r"(?:telling|sharing|revealing|mentioning|disclosing|giving out|bringing up|talking about|repeating|saying|using"
    r"|exposing|leaking|spreading|discussing|passing on|handing out|referring to|remembering|storing|keeping)"
)
_KNOW = r"(?:remember|recall|know|keep|store|retain|save|hold on to)"
_KNOWING = r"(?:remembering|recalling|knowing|keeping|storing|retaining|having)"
_AUDIENCE = r"(?:(?:anyone|anybody|people|ppl|others|other users|everyone|everybody|users|strangers|the world|other people)\s+)?"
_PATTERNS = [re.compile(p) for p in [
    # "forget X", "can you erase X", "would you mind forgetting X"
    _PREFIX + _FORGET + r"[:\s]+(?P<t>.+)$",
    r"^" + _COURTESY + r"(?:would|do) " + _YOU + r" mind " + _FORGETTING + r"\s+(?P<t>.+)$",
    # "I'd appreciate it if you forgot X", "I'd rather you erased X"
    r"^" + _COURTESY + r"(?:i'd|i would) (?:appreciate it|be grateful|love it|rather|prefer(?: it)?)(?: if| that)? " + _YOU
    + r" " + _FORGOT + r"[:\s]+(?P<t>.+)$",
    # "stop telling people X", "quit mentioning X", "refrain from mentioning X", "no more mentioning X"
    _PREFIX + r"(?:stop|quit|cease|refrain from|avoid|no more|no longer be)\s+" + _REVEALING + r"\s+" + _AUDIENCE + r"(?P<t>.+)$",
    # "don't tell anyone X", "never mention X again", "please don't keep X", "could you not remember X"
    _PREFIX + r"(?:don'?t|do not|never|not)\s+(?:ever\s+)?(?:again\s+)?(?:" + _REVEAL + r"|" + _KNOW + r")\s+" + _AUDIENCE + r"(?P<t>.+)$",
    # "I don't want you to remember X", "I no longer want you knowing about X"
    r"^" + _COURTESY + r"i (?:don'?t|do not|no longer) want " + _YOU + r" (?:to (?:ever )?(?:" + _KNOW + r"|have|" + _REVEAL + r")|"
    + _KNOWING + r")\s+(?P<t>.+)$",
    # "I'd rather you didn't remember X", "I'd prefer (it) if you no longer knew X"
    r"^" + _COURTESY + r"(?:i'd|i would) (?:rather|prefer)(?: it)?(?: if| that)? " + _YOU
    + r" (?:didn'?t|did not|wouldn'?t|would not|no longer|never|don'?t|do not|not)\s+(?:" + _KNOW + r"|knew|" + _REVEAL + r")\s+"
    + _AUDIENCE + r"(?P<t>.+)$",
    # "you shouldn't know X", "you are no longer allowed to talk about X"
    r"^" + _COURTESY + _YOU + r" (?:shouldn'?t|should not|should no longer|must not|mustn'?t|may not|can'?t|cannot|"
    r"(?:are|'re) (?:not|no longer) (?:allowed|permitted|supposed) to)\s+(?:" + _KNOW + r"|" + _REVEAL + r")\s+"
    + _AUDIENCE + r"(?P<t>.+)$",
    # "I wish you didn't know X"
    r"^" + _COURTESY + r"i wish " + _YOU + r" (?:didn'?t|did not|wouldn'?t|would not|never) (?:" + _KNOW + r"|knew)\s+(?P<t>.+)$",
    # "pretend you never heard of X", "act as if you never learned about X"
    r"^" + _COURTESY + r"(?:pretend|act as if|act like|behave as if)(?: that)? " + _YOU
    + r" (?:never|didn'?t|did not|don'?t|do not) (?:heard|hear|learned|learnt|learn|knew|know)(?: (?:of|about))?\s+(?P<t>.+)$",
    # "I want X gone from your memory", "I'd like X removed"
    _PREFIX + r"i(?:'d| would)? (?:like|want|need) (?P<t>.+?) (?:gone|removed|deleted|erased|forgotten|wiped|purged|scrubbed|dropped)\b.*$",
    # "X should be forgotten"
    r"^(?P<t>.+?) (?:should|must|needs to|has to|ought to) be (?:forgotten|deleted|erased|removed|wiped|purged|unlearned|unlearnt)\b.*$",
    # "keep X out of your answers / to yourself"
    _PREFIX + r"keep (?P<t>.+?) (?:out of (?:your|any|the) \w+|to yourself|private|secret|confidential)\b.*$",
    # "let X go", "please let it go" (a pronoun is resolved from the rest of the message)
    _PREFIX + r"let (?P<t>.+?) go\b.*$",
    # "I'd (really) appreciate you no longer knowing X", "I'd prefer you not remembering X"
    r"^" + _COURTESY + r"(?:i'd|i would) (?:really |much |truly )?(?:appreciate|prefer|like)(?: it)? " + _YOU
    + r" (?:no longer|not|never) " + _KNOWING + r"\s+(?P<t>.+)$",
    # "I'd prefer if X weren't something you know", "I'd rather X wasn't something you remember"
    r"^" + _COURTESY + r"(?:i'd|i would) (?:really |much )?(?:prefer|rather|like)(?: it)?(?: if| that)? (?P<t>.+?) (?:weren'?t|wasn'?t|were not"
    r"|was not|isn'?t|aren'?t|is not|are not|no longer (?:was|were|is|are)) (?:something|anything|a thing) " + _YOU
    + r" (?:know|remember|keep|store|recall|hold)\b.*$",
]]

_OBJECT = (
    r"(?:information|info|data|details|facts|knowledge|memory|memories|records?|mentions?|traces?|things|stuff|bits)"
)
_HOLD = (
    r"(?:(?:that |which )?(?:you|u)(?:'ve| have)?(?: got| ever)? (?:know|have|hold|keep|kept|store|stored|remember|learned|learnt"
    r"|got|heard|collected|gathered|picked up|saved)|i (?:told|gave|shared with) (?:you|u)|i (?:ever )?(?:said|wrote|mentioned|typed)"
    r"|(?:you|u) (?:said|wrote|mentioned|told me))"
)
_ABOUT = r"(?:about|of|on|regarding|concerning|related to|relating to|to do with|around|surrounding|for)"
_LEAD = [
    re.compile(rf"^(?:everything|anything|all|whatever|what|stuff|all that|all of)(?: {_HOLD})?(?: {_ABOUT})?\s+"),
    re.compile(rf"^(?:all |any |the |your |every |that |this |all the |any of the |all of the )?{_OBJECT}(?: {_HOLD})?(?: {_ABOUT})\s+"),
    re.compile(rf"^{_ABOUT}\s+"),
    # "that I told you about X" -> "X"; a clause about the user keeps its "that" ("that I was fired ...")
    re.compile(r"^that (?:i (?:ever )?(?:told (?:you|u)|gave (?:you|u)|mentioned|said|wrote|typed|shared)(?: about)? |about )"),
]
_TRAIL = re.compile(
    r"(?:\s+(?:from (?:your|the|ur|my) (?:memory|memories|knowledge(?: base)?|records?|mind|database|training(?: data)?|brain"
    r"|system|head)|from memory|from what (?:you|u) know"
    r"|(?:to|with) (?:anyone|anybody|people|ppl|others|other users|everyone|everybody|users|strangers|other people)"
    r"(?: (?:who|that|else) .*)?|when (?:people|anyone|someone|others|users|somebody) asks? .*"
    r"|(?:in|from) (?:(?:your|any|the|an?|my) )?(?:answers?|replies|reply|responses?|chats?|outputs?|conversations?)"
    r"|(?:ever )?again|any ?more|for good|forever|from now on|completely|entirely|totally|fully|permanently|right now|now"
    r"|please|pls|plz|thanks?(?: you)?|thx))+$"
)
_PRONOUNS = {"it", "that", "this", "them", "those", "these", "everything", "anything", "all", "me", "him", "her", "about it", "us",
             "yourself", "yourselves", "myself"}
#: Pronouns a request may use for something named elsewhere in the message ("My address is private. Forget it.").
_ANAPHORS = {"it", "that", "this", "them", "those", "these", "about it", "about that"}
#: What such a pronoun can point to: the user's own data named in another sentence or clause ("my address is
#: private", "... that you know my address").
_ANTECEDENT = re.compile(r"\b(?P<t>my (?:[\w'-]+ ){0,2}?(?:address|number|name|email|e-mail|records?|history|details|data|birthday"
                         r"|location|salary|diagnosis|condition|account|password|age|income|debts?|phone|job|workplace|school"
                         r"|family|past|secret|photos?|pictures?|messages?|info(?:rmation)?)s?)\b", re.IGNORECASE)
#: Parts of a text or of an answer's style: "delete the second sentence", "stop using so many emojis" are editing or
#: style commands, not requests to forget (the bank's and the development set's rule-shaped non-requests).
_TEXT_UNIT = re.compile(
    r"^(?:the |this |that |these |those |all |any |my |your |so many |every )?(?:\w+ ){0,2}"
    r"(?:sentences?|paragraphs?|lines?|words?|commas?|duplicates?|bullets?|bullet points?|formatting|format|emojis?|formalities"
    r"|typos?|headings?|titles?|text|drafts?|sections?|chapters?|items?|spaces?|punctuation|adjectives?|adverbs?|letters?"
    r"|characters?|tables?|columns?|rows?|quotes?|quotation marks|semicolons?|periods?|hashtags?|emoticons?|jargon|slang|marks)\b"
)
#: The model's own earlier output ("delete the last thing you said and start over"): a conversation edit, not a request.
_OWN_OUTPUT = re.compile(
    r"^(?:the |your )?(?:last|previous|latest|first)\b.*\b(?:answers?|repl(?:y|ies)|responses?|messages?"
    r"|(?:you|u) (?:just )?(?:said|wrote|sent|typed|gave|generated))\b"
)
_ABBREVIATIONS = r"(?<!\bmr)(?<!\bmrs)(?<!\bms)(?<!\bdr)(?<!\bprof)(?<!\bst)(?<!\bjr)(?<!\bsr)(?<!\bmt)(?<!\bno)(?<!\bvs)"
_SENTENCE = re.compile(_ABBREVIATIONS + r"(?:[.!?;]+|\s+-+)\s+|:\s+", re.IGNORECASE)
_CLAUSE = re.compile(r"\s*[,;:!?]\s*|\s+-+\s+")
#: Words of the rules a typo may reach ("forgett", "evrything"), corrected at edit distance 1 when at least 5 letters long.
_SPELLED = (
    "forget", "unlearn", "remove", "delete", "erase", "everything", "anything", "remember", "mention", "mentioning",
    "reveal", "revealing", "information", "whatever", "please", "telling", "sharing", "knowledge", "memory",
)
_REAL_WORDS = {"forgot", "forgets", "forged", "forger", "forgive", "removed", "remover", "deleted", "erased", "eraser",
               "erases", "remembers", "memos", "reveals", "revealed", "mentions", "mentioned", "plead", "pleased", "lease"}


def _one_edit(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by exactly one insertion, deletion, substitution or swap of neighbours."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = next((j for j in range(len(short)) if short[j] != long_[j]), len(short))
    return short[i:] == long_[i + 1 :]


def _spell(word: str) -> str:
    lower = word.casefold()
    if len(lower) < 5 or lower in _REAL_WORDS or not lower.isalpha():
        return word
    return next((right for right in _SPELLED if _one_edit(lower, right)), word)


def _clean(span: str) -> str | None:
    """Trim a captured object to its target (quantifiers, "from your memory", "please" ...); ``None`` for a pronoun or a
    part of a text."""
    span = _first_part(span)  # "Forget it, what's the weather?" -> "it"
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
    lowered = span.casefold()
    if (
        not span
        or lowered in _PRONOUNS
        or lowered.startswith(("me ", "us "))
        or _TEXT_UNIT.match(lowered)
        or _OWN_OUTPUT.match(lowered)
        or _TRAIL.fullmatch(" " + lowered)  # only a trailing phrase is left ("that from memory" -> "from memory")
    ):
        return None
    return span


def _first_part(span: str) -> str:
    """A captured object up to its first sentence or clause boundary."""
    return _CLAUSE.split(_SENTENCE.split(span)[0])[0]


def _is_anaphor(span: str) -> bool:
    """Whether a captured object is a bare pronoun such as "it" or "that", trailing phrases aside ("that from memory")."""
    head = _first_part(span).casefold()
    return _TRAIL.sub("", " " + head).strip(" .'\"") in _ANAPHORS


def extract_target(message: str) -> str | None:
    """The span a forget request names ("my sister Jane", "Elara Voss", "where I work"), or ``None`` when the message
    does not have the shape of a request addressed to the model (rule-based; see the module docstring). Each sentence
    (and each part after a colon or a dash) is tried in turn; the first one with a target gives it."""
    if not isinstance(message, str):
        raise TypeError(f"`message` should be a string, got {type(message).__name__}.")
    text = " ".join(message.replace("\u2019", "'").split()).strip()
    text = re.sub(r"\b[A-Za-z]+\b", lambda m: _spell(m.group(0)), text)
    for sentence in [text, *_SENTENCE.split(text)]:
        sentence = re.sub(r"[.!?\s]+$", "", sentence.strip())
        lowered = sentence.casefold()
        for pattern in _PATTERNS:
            match = pattern.match(lowered)
            if match is not None:
                span = sentence[match.start("t") : match.end("t")]
                target = _clean(span)
                if target is None and _is_anaphor(span):
                    target = _antecedent(text, sentence)
                if target is not None:
                    return target
                break
    return None


def _antecedent(text: str, sentence: str) -> str | None:
    """What a request's pronoun points to: the user's own data named in the rest of the message ("My address is
    private. Forget it." -> "My address"), or ``None``."""
    found = _ANTECEDENT.search(text.replace(sentence, " ", 1))
    return found.group("t") if found is not None else None


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
        bank: Labelled messages ``(message, target or None)``; default the shipped examples
            (:func:`~lightning_unlearn.interactive.intents_bank.default_bank`: the bank and the first held-out set,
            385 messages). Needs at least one of each kind.
        threshold: A message is a request when the rules find a target and ``margin > threshold``.
        k: Nearest examples of each kind averaged into the margin.
        model_path: Folder of the sentence encoder (default: the installed all-MiniLM-L6-v2).
    """

    def __init__(
        self,
        bank: Sequence[tuple[str, str | None]] | None = None,
        threshold: float = -0.0275,
        k: int = 10,
        model_path: str | None = None,
    ) -> None:
        if bank is None:
            from lightning_unlearn.interactive.intents_bank import default_bank

            bank = default_bank()
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
