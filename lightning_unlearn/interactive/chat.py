"""A chat with a causal LM in which the user can ask, in plain words, that the model forget something.

After "RePAIR: Interactive Machine Unlearning" (arXiv 2604.12820), **reconstructed** (``shared/METHODS.md`` §1): the
paper's watchdog LLM detects the intent and extracts (prompt, response) pairs, a surgeon LLM writes the repair and
STAMP edits the patient model. Here the watchdog is :class:`~lightning_unlearn.interactive.watchdog.Watchdog`, the
"surgeon" is this module's fixed procedure, and the editor is STAMP (:mod:`lightning_unlearn.editors.stamp`).

On a forget request :meth:`ChatSession.send`:

1. gathers the target's prompts: question templates about the target (:func:`target_questions`) plus the earlier user
   messages of the conversation that mention it, and the model's own answers to them (before the edit);
2. builds the retain buffer: the earlier turns that do not mention the target (question and the model's answer) and
   the general-knowledge probes (:data:`~lightning_unlearn.datamodules.probes.GENERAL_KNOWLEDGE`, ``n_probes``);
3. runs the editor (:meth:`~lightning_unlearn.editors.STAMP.edit`) and drops the turns that mention the target from
   the conversation the model sees (otherwise the fact would still be in its context window);
4. answers the target's prompts again (``verify``) and replies with what was done and how long it took.

The chat then goes on with the edited model. :meth:`ChatSession.undo` reverts the last edit bit-exactly,
:attr:`ChatSession.edits` lists what was done, :meth:`ChatSession.save` writes the edited model (never into the
original model's folder) with ``edits.json``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning_unlearn._errors import check_int

__all__ = ["CHAT_EDITOR_ARGS", "CHAT_TARGET_STEPS", "ChatSession", "chat_editor", "target_questions"]

#: The refusal search's step limit of the chat's default editor. A request gathers ~6 prompts at once; measured on
#: SmolLM2 taught three facts (docs/interactive.md): STAMP's default 25 steps stopped unconverged (refusal NLL 0.21) and
#: the exact forget question still answered "Maribel"; with 80 the search converged in 35 steps (NLL 0.044) and every
#: gathered prompt refused.
CHAT_TARGET_STEPS = 80

#: The chat's editor settings (:func:`chat_editor`; chosen on B10's tuning facts, docs/interactive.md "Held-out
#: knowledge" and "Warm start"). With STAMP's own defaults one request made SmolLM2 refuse or garble held-out
#: general-knowledge questions; shifting only the request's subject (``shift_tokens="subject"``) at a layer a third of
#: the way up, with the preserve prompts' covariance term and a finer cut (``rcond=1e-3``), kept them. Starting the
#: search from the refusal direction calibrated on made-up names (``warm_start``) took it from 45-53 steps to 2-4 (with
#: ``target_nll=0.2``) and made the answers the searched refusal; applying the change 1.5 times (``blend``) then forgot
#: all three tuning authors and kept the held-out probes (0.283 -> 0.341; 2.5 times: 0.275).
CHAT_EDITOR_ARGS: dict[str, Any] = {
    "target_steps": CHAT_TARGET_STEPS,
    "target_nll": 0.2,
    "shift_tokens": "subject",
    "rcond": 1e-3,
    "blend": 1.5,
    "warm_start": True,
}


def chat_editor(model: Any, name: str = "stamp", **overrides: Any) -> Any:
    """The chat's editor for ``model``: the registered editor ``name`` with :data:`CHAT_EDITOR_ARGS`, the decoder layer
    a third of the way up the stack (``layer``; 10 of SmolLM2's 30) and :func:`~lightning_unlearn.editors.stamp.default_preserve_prompts`
    as ``preserve``; ``overrides`` (any editor argument, e.g. ``layer="auto"`` or ``seed``) win."""
    from lightning_unlearn.editors import EDITORS
    from lightning_unlearn.editors.stamp import default_preserve_prompts
    from lightning_unlearn.methods.rmu import decoder_layers_name

    depth = len(model.get_submodule(decoder_layers_name(model)))
    return EDITORS.get(name)(**{**CHAT_EDITOR_ARGS, "layer": depth // 3, "preserve": default_preserve_prompts(), **overrides})

_PERSON = ("Who is {t}?", "What do you know about {t}?", "Where was {t} born?", "Where is {t} from?", "What does {t} do?", "What is {t} known for?")
_OWN = ("What is {t}?", "Tell me {t}.", "Do you know {t}?", "What do you know about {t}?")
_CLAUSE = ("Do you know {t}?", "Tell me {t}.", "What do you know about {t}?")
_THING = ("What do you know about {t}?", "Tell me about {t}.", "What is {t}?")


def target_questions(target: str) -> list[str]:
    """Question templates about ``target``: biography questions for a name ("Elara Voss"), "What is my address?"-style
    questions for the user's own data ("my address"), "Do you know where I work?" for a clause, generic ones else."""
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"`target` should be a non-empty string, got {target!r}.")
    t = target.strip()
    words = t.split()
    if words[0].casefold() in {"my", "our"}:
        templates = _OWN
    elif words[0].casefold() in {"where", "when", "what", "who", "how", "why", "that", "which"}:
        templates = _CLAUSE
    elif all(w[:1].isupper() or w.casefold() in {"de", "van", "von", "da", "al", "dr.", "dr"} for w in words) and not t.casefold().startswith("the "):
        templates = _PERSON
    else:
        templates = _THING
    return [q.format(t=t) for q in templates]


def _mentions(text: str, target: str) -> bool:
    """Whether ``text`` mentions ``target``: the whole target, or one of its capitalised words (a name's part)."""
    low = text.casefold()
    if target.casefold() in low:
        return True
    names = [w for w in re.findall(r"[A-Z][\w'-]{2,}", target) if w.casefold() not in {"the", "my", "dr", "mr", "mrs", "ms"}]
    return any(re.search(rf"\b{re.escape(n.casefold())}\b", low) for n in names)


class ChatSession:
    """A conversation with ``model`` in which forget requests edit the model (see the module docstring).

    Args:
        model: A Hugging Face causal LM (edited in place).
        tokenizer: Its tokenizer (with a chat template for multi-turn chat).
        editor: A training-free editor with ``edit(model, tokenizer, forget, retain)`` and ``undo(record)``
            (default :func:`chat_editor`: :class:`~lightning_unlearn.editors.STAMP` with the chat's settings).
        detector: A callable message -> :class:`~lightning_unlearn.interactive.watchdog.ForgetIntent`
            (default :class:`~lightning_unlearn.interactive.watchdog.Watchdog`).
        max_new_tokens: Tokens per reply (and per gathered answer).
        history_turns: Earlier (user, assistant) turns the model sees with a new message (default 0: none). Measured on
            SmolLM2 with 3: after forgetting Elara Voss, "Where was Elara Voss born?" asked after the kept turn about
            Tomas Reyl got "Tomas Reyl was born in Maribel." — the edit is computed on single-turn prompts (STAMP
            renders each forget question alone) and did not carry over to a multi-turn context.
        n_probes: General-knowledge probes in the retain buffer.
        verify: Answer the target's prompts again after an edit (recorded as ``answers_after``).
        system_prompt: Optional system message.
        original_path: The folder the model was loaded from; :meth:`save` refuses to write into it (default: the
            model's ``name_or_path`` when that is a folder).
        prepare: Let the editor compute what every request reuses now, when the session starts (``editor.prepare``
            where it has one: the chat's STAMP reads its preserve prompts and calibrates its warm start, ~45 s once per
            model on SmolLM2), not inside the first request; :attr:`preparation` says what it took.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        editor: Any = None,
        detector: Any = None,
        max_new_tokens: int = 48,
        history_turns: int = 0,
        n_probes: int = 16,
        verify: bool = True,
        system_prompt: str | None = None,
        original_path: str | Path | None = None,
        prepare: bool = True,
    ) -> None:
        check_int("max_new_tokens", max_new_tokens)
        check_int("history_turns", history_turns, minimum=0)
        check_int("n_probes", n_probes, minimum=0)
        if editor is None:
            editor = chat_editor(model)
        if not (callable(getattr(editor, "edit", None)) and callable(getattr(editor, "undo", None))):
            raise TypeError(f"`editor` should have edit(model, tokenizer, forget, retain) and undo(record), got {type(editor).__name__}.")
        if detector is None:
            from lightning_unlearn.interactive.watchdog import Watchdog

            detector = Watchdog()
        if not callable(detector):
            raise TypeError(f"`detector` should be callable (message -> ForgetIntent), got {type(detector).__name__}.")
        self.model, self.tokenizer, self.editor, self.detector = model, tokenizer, editor, detector
        self.max_new_tokens, self.history_turns, self.n_probes, self.verify = max_new_tokens, history_turns, n_probes, verify
        self.system_prompt = system_prompt
        if original_path is None:
            name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
            original_path = name if name and Path(name).is_dir() else None
        self.original_path = None if original_path is None else Path(original_path)
        self.turns: list[dict[str, str]] = []  # plain (user, assistant) turns the model may see
        self.transcript: list[dict[str, str]] = []  # everything, requests and replies included
        self.edits: list[dict[str, Any]] = []
        self._records: list[Any] = []
        #: What the editor computed once when the session started (its ``prepare``: STAMP's preserve factor and warm
        #: start), with the seconds each took; empty for an editor without ``prepare`` or with ``prepare=False``.
        self.preparation: dict[str, Any] = {}
        if prepare and callable(getattr(editor, "prepare", None)):
            self.preparation = dict(editor.prepare(model, tokenizer))

    # ------------------------------------------------------------------ chatting
    def _generate(self, prompts: Sequence[Any]) -> list[str]:
        from lightning_unlearn.tasks import generate_answers

        return generate_answers(self.model, self.tokenizer, list(prompts), max_new_tokens=self.max_new_tokens, system_prompt=self.system_prompt)

    def reply(self, message: str) -> str:
        """The model's answer to ``message`` after the last ``history_turns`` turns (nothing recorded)."""
        conversation: list[dict[str, str]] = []
        for turn in self.turns[len(self.turns) - self.history_turns :] if self.history_turns else []:
            conversation += [{"role": "user", "content": turn["user"]}, {"role": "assistant", "content": turn["assistant"]}]
        conversation.append({"role": "user", "content": message})
        return self._generate([conversation])[0]

    def send(self, message: str) -> str:
        """Answer ``message``; a forget request edits the model instead and the reply says what was done."""
        if not isinstance(message, str) or not message.strip():
            raise ValueError(f"`message` should be a non-empty string, got {message!r}.")
        message = message.strip()
        intent = self.detector(message)
        if intent.is_request and intent.target:
            answer = self._forget(intent.target, message)
        else:
            answer = self.reply(message)
            self.turns.append({"user": message, "assistant": answer})
        self.transcript += [{"role": "user", "content": message}, {"role": "assistant", "content": answer}]
        return answer

    # ------------------------------------------------------------------ forgetting
    def _forget(self, target: str, message: str) -> str:
        from lightning_unlearn.datamodules.probes import GENERAL_KNOWLEDGE
        from lightning_unlearn.report import model_hash

        start = time.perf_counter()
        earlier = [t for t in self.turns if _mentions(t["user"], target) or _mentions(t["assistant"], target)]
        questions = list(dict.fromkeys(target_questions(target) + [t["user"] for t in earlier]))
        before = self._generate(questions)
        gathered = time.perf_counter() - start
        forget = [{"question": q, "answer": a} for q, a in zip(questions, before)]
        retain: list[Any] = [{"question": t["user"], "answer": t["assistant"]} for t in self.turns if t not in earlier]
        retain += [p.question for p in GENERAL_KNOWLEDGE[: self.n_probes]]
        record = self.editor.edit(self.model, self.tokenizer, forget=forget, retain=retain)
        seconds = time.perf_counter() - start
        weight = self.model.get_submodule(record.module).weight if hasattr(record, "module") else None
        self.turns = [t for t in self.turns if t not in earlier]  # the conversation the model sees forgets it too
        after = self._generate(questions) if self.verify else None
        entry = {
            "target": target,
            "request": message,
            "questions": questions,
            "answers_before": before,
            "answers_after": after,
            "retain_prompts": len(retain),
            "dropped_turns": len(earlier),
            "gather_seconds": gathered,
            "seconds_to_edited_model": seconds,
            "edited_weight_sha256": None if weight is None else model_hash({record.module: weight}),
            "edit": record.as_dict() if hasattr(record, "as_dict") else dict(record),
            "undone": False,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self.edits.append(entry)
        self._records.append(record)
        where = f" ({entry['edit'].get('method', 'edit')} of {entry['edit']['module']})" if "module" in entry["edit"] else ""
        return (
            f"[forgot {target!r} in {seconds:.1f} s{where}: {len(questions)} prompts about it, {len(retain)} retain prompts"
            + (f", {len(earlier)} earlier turn(s) dropped from the conversation" if earlier else "")
            + ". Ask me again to check; /undo reverts it.]"
        )

    def undo(self) -> str:
        """Revert the last edit that is not yet undone (bit-exact with STAMP); returns a one-line report."""
        for entry, record in zip(reversed(self.edits), reversed(self._records)):
            if not entry["undone"]:
                self.editor.undo(record)
                entry["undone"] = True
                return f"[undid the edit that forgot {entry['target']!r}; the dropped conversation turns stay dropped]"
        raise RuntimeError("There is no edit left to undo in this chat session.")

    # ------------------------------------------------------------------ saving
    def save(self, path: str | Path) -> Path:
        """Write the edited model, its tokenizer and ``edits.json`` (every edit, with the weights' SHA-256) to ``path``.

        Refuses the original model's folder (and any folder inside it) so the unedited weights are never overwritten.
        """
        from lightning_unlearn.report import model_hash

        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise ValueError(f"`path` should be a folder path, got {path!r}.")
        out = Path(path).expanduser().resolve()
        if self.original_path is not None:
            original = self.original_path.expanduser().resolve()
            if out == original or original in out.parents:
                raise ValueError(f"`path` should not be the original model's folder ({original}) or inside it, got {path!s}: save the edited model elsewhere.")
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        info = {"original": None if self.original_path is None else str(self.original_path), "model_sha256": model_hash(self.model), "edits": self.edits}
        (out / "edits.json").write_text(json.dumps(info, indent=2, default=str))
        return out

    def edits_text(self) -> str:
        """A human-readable list of the edits (the CLI's ``/edits``)."""
        if not self.edits:
            return "No edits yet."
        lines = []
        for i, e in enumerate(self.edits, 1):
            edit = e["edit"]
            state = "undone" if e["undone"] else "active"
            lines.append(f"{i}. forgot {e['target']!r} ({state}): {e['seconds_to_edited_model']:.1f} s, {edit.get('method')} layer {edit.get('layer')}, rank {edit.get('rank')}")
            for q, b, a in zip(e["questions"], e["answers_before"], e["answers_after"] or [None] * len(e["questions"])):
                lines.append(f"   Q: {q}\n      before: {b}" + ("" if a is None else f"\n      after:  {a}"))
        return "\n".join(lines)
