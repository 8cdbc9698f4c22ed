"""``lightning-unlearn report RUN_DIR``: validate a run's ``report.json``, re-render its HTML, print a summary."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path

from lightning_unlearn.report.schema import ReportValidationError, load_report
from lightning_unlearn.report.summary import metrics_table_text, summary_sentences

_EPILOG = """\
RUN_DIR is the folder the UnlearningReport callback wrote to (by default the Trainer's log_dir), a
parent of Lightning's version_* folders (the newest report.json below it is used), or a report.json
file itself. The JSON is checked against lightning_unlearn.report.REPORT_SCHEMA before anything is
written. Example:

  lightning-unlearn report outputs/digits/salun
  lightning-unlearn report outputs/digits/salun/lightning_logs/version_3 --out /tmp/report.html --open
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-unlearn report",
        description="Validate an unlearning run's report.json, (re)render report.html next to it and print a summary.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder (or a report.json file)")
    parser.add_argument("--out", metavar="FILE", help="where to write the HTML page (default: report.html beside report.json)")
    parser.add_argument("--open", action="store_true", help="open the page in the default web browser afterwards")
    return parser


def find_report(run_dir: str | Path) -> Path:
    """``RUN_DIR/report.json``, else the newest ``version_*/report.json`` below ``RUN_DIR`` (one or two levels)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return run_dir
    if not run_dir.is_dir():
        raise FileNotFoundError(f"RUN_DIR {str(run_dir)!r} does not exist.")
    direct = run_dir / "report.json"
    if direct.is_file():
        return direct
    found = [*run_dir.glob("version_*/report.json"), *run_dir.glob("*/version_*/report.json")]
    if not found:
        raise FileNotFoundError(
            f"No report.json in {str(run_dir)!r} or its version_* folders. Add the UnlearningReport callback to the "
            "Trainer to write one."
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def main(argv: list[str] | None = None) -> int:
    """Run the command; exits with status 1 and a one-line error on a missing or invalid report."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        path = find_report(args.run_dir)
        report = load_report(path)
    except (FileNotFoundError, ReportValidationError) as err:
        raise SystemExit(f"lightning-unlearn report: error: {err}") from None
    try:
        from lightning_unlearn.report.html import write_html

        html_path = write_html(report, args.out or path.with_name("report.html"))
    except ImportError as err:
        raise SystemExit(f"lightning-unlearn report: error: {err}") from None
    print(f"Unlearning report {path}")
    print()
    for sentence in summary_sentences(report):
        print(sentence)
    print()
    print(metrics_table_text(report))
    print()
    print(f"HTML: {html_path.resolve()}")
    if args.open:
        webbrowser.open(html_path.resolve().as_uri())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
