"""``lightning-unlearn chat``: talk to a causal LM and ask it, in plain words, to forget something.

    lightning-unlearn chat                                  # SmolLM2-135M-Instruct (offline cache), STAMP
    lightning-unlearn chat --model path/to/hf_folder --editor stamp_lr --save-dir edited/

After "RePAIR: Interactive Machine Unlearning" (arXiv 2604.12820; reconstructed, ``shared/METHODS.md`` §1). See
:class:`~lightning_unlearn.interactive.chat.ChatSession` and ``docs/interactive.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

_HELP = """\
Type a message and press Enter. Say "forget what you know about <name>", "stop telling people my address",
"please erase everything about my sister Jane" ... and the model is edited (STAMP, training-free, seconds);
then ask again. Slash commands:
  /undo        revert the last edit (bit-exact)
  /edits       list the edits: target, questions, answers before and after, time
  /save PATH   write the edited model (+ tokenizer, edits.json) to PATH (never the original model's folder)
  /help        this text
  /quit        leave (also Ctrl-D)"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-unlearn chat",
        description=(
            "Chat with a causal LM; a forget request typed in plain words (detected by an offline MiniLM watchdog) "
            "edits the model with STAMP and the chat goes on with the edited model. RePAIR, arXiv 2604.12820 "
            "(reconstructed)."
        ),
        epilog=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        default=None,
        help="a Hugging Face causal-LM folder (save_pretrained); default: SmolLM2-135M-Instruct from the offline cache (load_smollm2)",
    )
    parser.add_argument("--editor", choices=["stamp", "stamp_lr"], default="stamp", help="the training-free editor (default: stamp)")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="tokens per reply (default: 48)")
    parser.add_argument(
        "--history-turns", type=int, default=0, help="earlier turns the model sees with a new message (default: 0; see docs/interactive.md: an edit made on single-turn prompts did not carry over to a multi-turn context)"
    )
    parser.add_argument("--save-dir", default=None, help="save the edited model here on /quit when an edit is active (default: do not)")
    parser.add_argument(
        "--target-steps", type=int, default=None, help="step limit of the editor's refusal search (default: 80, CHAT_TARGET_STEPS)"
    )
    parser.add_argument(
        "--layer", default=None, help="decoder layer to edit, or 'auto' (cosine separation); default: a third of the way up the stack (chat_editor)"
    )
    parser.add_argument(
        "--no-warm-start",
        action="store_true",
        help="start every refusal search from zero (no calibration when the chat starts, ~30 s saved; each request then "
        "takes ~5x the search steps: docs/interactive.md, 'Warm start')",
    )
    return parser


def load_model(path: str | None) -> tuple[Any, Any, Path | None]:
    """``(model, tokenizer, folder)``: the folder's causal LM (offline), or SmolLM2 when ``path`` is ``None``."""
    if path is None:
        from lightning_unlearn.models import load_smollm2

        model, tokenizer = load_smollm2()
        folder = getattr(model, "name_or_path", None)
        return model, tokenizer, Path(folder) if folder and Path(folder).is_dir() else None
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise SystemExit(f"error: `--model` should be a Hugging Face model folder with a config.json, got {path!r}.")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model, tokenizer, folder


def _command(chat: Any, line: str) -> bool:
    """Run a slash command; returns False on /quit."""
    name, _, arg = line.partition(" ")
    if name in ("/quit", "/exit"):
        return False
    if name == "/help":
        print(_HELP)
    elif name == "/edits":
        print(chat.edits_text())
    elif name == "/undo":
        try:
            print(chat.undo())
        except RuntimeError as err:
            print(f"[{err}]")
    elif name == "/save":
        if not arg.strip():
            print("[usage: /save PATH]")
        else:
            try:
                print(f"[saved the edited model to {chat.save(arg.strip())}]")
            except ValueError as err:
                print(f"[not saved: {err}]")
    else:
        print(f"[unknown command {name!r}; commands: /undo /edits /save PATH /help /quit]")
    return True


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.max_new_tokens < 1:
        raise SystemExit(f"error: `--max-new-tokens` should be >= 1, got {args.max_new_tokens}.")
    if args.target_steps is not None and args.target_steps < 1:
        raise SystemExit(f"error: `--target-steps` should be >= 1, got {args.target_steps}.")
    if args.history_turns < 0:
        raise SystemExit(f"error: `--history-turns` should be >= 0, got {args.history_turns}.")
    overrides: dict[str, Any] = {}
    if args.layer is not None:
        if args.layer != "auto" and not args.layer.isdigit():
            raise SystemExit(f"error: `--layer` should be 'auto' or a layer index, got {args.layer!r}.")
        overrides["layer"] = args.layer if args.layer == "auto" else int(args.layer)
    if args.target_steps is not None:
        overrides["target_steps"] = args.target_steps
    if args.no_warm_start:
        overrides["warm_start"] = False
    from lightning_unlearn.interactive.chat import ChatSession, chat_editor

    print("Loading the model ...", flush=True)
    model, tokenizer, folder = load_model(args.model)
    print("Preparing the editor (once per model: its preserve prompts" + ("" if args.no_warm_start else " and warm start") + ") ...", flush=True)
    chat = ChatSession(
        model,
        tokenizer,
        editor=chat_editor(model, args.editor, **overrides),
        max_new_tokens=args.max_new_tokens,
        history_turns=args.history_turns,
        original_path=folder,
    )
    took = sum(v for k, v in chat.preparation.items() if k.endswith("_seconds"))
    print(f"Chatting with {folder or 'the model'} (editor: {args.editor}, prepared in {took:.0f} s). /help for commands, /quit to leave.", flush=True)
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            print()
            break
        if not line:
            continue
        if line.startswith("/"):
            if not _command(chat, line):
                break
            continue
        print(f"model> {chat.send(line)}", flush=True)
    if args.save_dir and any(not e["undone"] for e in chat.edits):
        print(f"[saved the edited model to {chat.save(args.save_dir)}]")
    print("bye.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
