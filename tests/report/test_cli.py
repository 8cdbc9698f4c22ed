"""``lightning-unlearn report RUN_DIR``: finds, validates and re-renders a report; clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lightning_unlearn.cli import main as cli_main
from lightning_unlearn.report.cli import find_report


@pytest.fixture
def run_dir(run, tmp_path) -> Path:
    """A copy of the session's run folder (the CLI rewrites report.html)."""
    folder = tmp_path / "run"
    shutil.copytree(run["dir"], folder)
    return folder


def test_report_command_rerenders_and_prints_a_summary(run_dir, capsys):
    (run_dir / "report.html").unlink()
    cli_main(["report", str(run_dir)])
    out = capsys.readouterr().out
    html = run_dir / "report.html"
    assert html.is_file() and html.read_text().count('<img src="data:image/png;base64,') >= 3
    assert f"Unlearning report {run_dir / 'report.json'}" in out
    assert "100 training samples (class 0; request fingerprint" in out
    assert "metric" in out and "unlearned" in out and "original" in out and "oracle" in out
    assert "forget_acc" in out and "mia_auc" in out and "avg_gap" in out
    assert f"HTML: {html.resolve()}" in out


def test_report_command_in_a_subprocess(run_dir, tmp_path):
    out_file = tmp_path / "elsewhere" / "page.html"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "lightning_unlearn.cli", "report", str(run_dir), "--out", str(out_file)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert out_file.is_file() and "Unlearning report" in out_file.read_text()
    assert f"HTML: {out_file.resolve()}" in done.stdout and "forget_acc" in done.stdout


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["report", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "lightning-unlearn report" in out and "RUN_DIR" in out and "--out FILE" in out and "--open" in out


def test_open_shows_the_page_in_a_browser(run_dir, monkeypatch, capsys):
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    cli_main(["report", str(run_dir), "--open"])
    assert opened == [(run_dir / "report.html").resolve().as_uri()]


def test_newest_version_folder_is_used(run_dir, tmp_path):
    root = tmp_path / "outputs"
    for version in (0, 1):
        target = root / "lightning_logs" / f"version_{version}"
        shutil.copytree(run_dir, target)
        os.utime(target / "report.json", (time.time() + version, time.time() + version))
    assert find_report(root) == root / "lightning_logs" / "version_1" / "report.json"
    assert find_report(root / "lightning_logs") == root / "lightning_logs" / "version_1" / "report.json"
    assert find_report(run_dir / "report.json") == run_dir / "report.json"


def test_errors_are_clear(run_dir, tmp_path):
    with pytest.raises(SystemExit, match="RUN_DIR .*missing.* does not exist"):
        cli_main(["report", str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="No report.json in .* Add the UnlearningReport callback"):
        cli_main(["report", str(tmp_path / "empty")])
    (run_dir / "report.json").write_text("{ broken")
    with pytest.raises(SystemExit, match="is not valid JSON"):
        cli_main(["report", str(run_dir)])


def test_schema_errors_name_the_path(run, run_dir):
    report = json.loads(json.dumps(run["json"]))
    report["metrics"]["unlearned"]["TA"] = "93%"
    (run_dir / "report.json").write_text(json.dumps(report))
    with pytest.raises(SystemExit, match=r"invalid at `metrics\.unlearned\.TA`: '93%' is not of type"):
        cli_main(["report", str(run_dir)])
