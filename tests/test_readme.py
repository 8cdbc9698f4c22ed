"""The README's Python examples run as written (docs that stay true), and the callback example forgets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _run(index: int) -> dict:
    namespace: dict = {"__name__": f"readme_example_{index}"}
    exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), namespace)
    return namespace


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2 and "class MyClassifier(pl.LightningModule)" in BLOCKS[0]


def test_the_callback_example_forgets_on_the_users_own_model(caplog):
    """Block 0 (``Unlearn`` on a module of the user's): both schedules take the trained model's forget class from
    93% to at most 10% and keep the retained classes, and each says so in its one-line summary."""
    import logging

    from lightning_unlearn import evaluate

    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        namespace = _run(0)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("Unlearn(graddiff, before_training):") for line in lines)
    assert any(line.startswith("Unlearn(npo, interleaved):") for line in lines)
    data = namespace["data"]
    summary = namespace["phase"].summary
    assert summary["before/forget_acc"] > 90 and summary["after/forget_acc"] <= 10  # stopped at its target
    for name in ("model", "model2"):  # interleaved; the phase then one epoch of the user's own training
        metrics = evaluate(namespace[name], data.eval_dataloaders())
        assert metrics["forget_acc"] <= 10 and metrics["RA"] >= 85, (name, metrics)


@pytest.mark.parametrize("index", range(1, len(BLOCKS)))
def test_readme_example_runs(index: int, capsys):
    _run(index)
    out = capsys.readouterr().out
    assert "UA" in out or "forget_acc" in out, "each example prints unlearning metrics"
