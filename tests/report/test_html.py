"""``report.html``: self-contained, the expected sections and plots, every string escaped; a headless Chromium render."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest

from lightning_unlearn.report import html, render_html, summary_sentences, write_html

CHROMIUM = Path("/usr/bin/chromium")
SECTIONS = (
    "summary",
    "request",
    "model",
    "metrics",
    "metrics-chart",
    "mia",
    "training",
    "losses",
    "attacks",
    "timings",
    "versions",
)


def test_html_has_the_sections_and_embedded_plots(run):
    page = (run["dir"] / "report.html").read_text()
    for section in SECTIONS:
        assert f'<section id="{section}"' in page
    assert page.count('<img src="data:image/png;base64,') >= 3
    for heading in ("What was requested", "Which model", "Results", "How it was done", "Training losses", "Timings", "Software"):
        assert f">{heading}</h2>" in page
    report = run["json"]
    assert report["request"]["fingerprint"] in page
    assert report["model"]["hash_before"] in page and report["model"]["hash_after"] in page
    assert f"{report['metrics']['unlearned']['RA']:.2f} %" in page
    assert "Oracle (retrained)" in page and "What it means" in page


def test_html_is_self_contained(run):
    page = (run["dir"] / "report.html").read_text()
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "url(" not in page


def test_summary_reads_as_plain_language(run):
    report = run["json"]
    first, *rest = summary_sentences(report)
    assert first.startswith("On ") and "100 training samples (class 0; request fingerprint " in first
    assert report["model"]["hash_before"][:12] in first and "with GradDiff" in first
    assert any("membership-inference attack" in s for s in rest)
    assert any("percentage points from those of the oracle" in s for s in rest)
    page = (run["dir"] / "report.html").read_text()
    assert "100 training samples (class 0; request fingerprint" in page


def test_every_string_is_escaped(run, tmp_path):
    report = copy.deepcopy(run["json"])
    report["request"]["description"] = "<script>alert(1)</script>"
    report["method"]["class"] = 'Evil"<b>'
    report["method"]["hparams"]["note"] = "<img src=x onerror=alert(1)>"
    report["attacks"] = [{"name": "<i>LiRA</i>", "description": None, "result": {"auc": 0.5, "x<y": "a&b"}}]
    page = write_html(report, tmp_path / "page.html").read_text()
    assert "<script>" not in page and "<b>" not in page and "<i>LiRA" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "Evil&quot;&lt;b&gt;" in page
    assert "x&lt;y = a&amp;b" in page


def test_pages_without_oracle_roc_or_losses_still_render(run):
    report = copy.deepcopy(run["json"])
    report["metrics"]["oracle"] = None
    report["mia_roc"] = None
    report["loss_curve"] = {"step": [], "series": {}}
    page = render_html(report)
    assert page.count('<img src="data:image/png;base64,') == 1
    assert "No membership-inference curves" in page and "No training losses were logged." in page
    assert "|Δ| to oracle" not in page


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (scripts/setup.sh installs it)")
def test_chromium_renders_a_non_blank_page(run, tmp_path):
    image = pytest.importorskip("matplotlib.image")
    page = tmp_path / "report.html"
    shutil.copy(run["dir"] / "report.html", page)
    shot = tmp_path / "shot.png"
    html.screenshot(page, shot, width=1280, height=2000, chromium=str(CHROMIUM), timeout=90)
    pixels = image.imread(shot)[..., :3]  # floats in [0, 1]
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 0.05
    non_white = (pixels < 0.95).any(axis=-1).mean()
    assert non_white > 0.02, f"only {non_white:.1%} of the screenshot is not white"
    # The plots made it onto the page: the unlearned model's blue (#1d4ed8) is there.
    blue = (
        (abs(pixels[..., 0] - 0x1D / 255) < 0.08)
        & (abs(pixels[..., 1] - 0x4E / 255) < 0.08)
        & (abs(pixels[..., 2] - 0xD8 / 255) < 0.08)
    )
    assert blue.sum() > 500
