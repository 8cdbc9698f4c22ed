"""``benchmarks/b3_entity.py``'s rows: a method's settings come from its config, an editor's from B2's editor settings."""

from __future__ import annotations

from bench_scripts import load_script

from lightning_unlearn.benchmarking import b2, b3


def test_row_settings_of_methods_and_editors():
    script = load_script("b3_entity.py")
    assert script.row_settings("graddiff", {}) == b3.resolve_hparams("graddiff")
    assert script.row_settings("graddiff", {"lr": 2e-5})["lr"] == 2e-5  # the command line's budget
    for editor in ("stamp", "stamp_lr"):
        assert b2.is_editor(editor)
        assert script.row_settings(editor, {"lr": 2e-5}) == {"method": b2.EDITOR_FULL_HPARAMS[editor]}  # no budget
