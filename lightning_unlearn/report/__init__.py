"""The unlearning report: a record of one unlearning run that a data-protection officer can read.

* :class:`UnlearningReport` — a Callback that writes ``report.json`` and ``report.html`` when fit ends;
* :func:`model_hash` — the SHA-256 of a model's weights, as the report records it;
* :data:`REPORT_SCHEMA` / :func:`validate_report` / :func:`load_report` — the JSON format;
* :func:`render_html` / :func:`write_html` — the self-contained page (needs matplotlib);
* ``lightning-unlearn report RUN_DIR`` (:mod:`lightning_unlearn.report.cli`) — re-render and summarise.
"""

from lightning_unlearn.report.callback import UnlearningReport, model_hash
from lightning_unlearn.report.html import render_html, write_html
from lightning_unlearn.report.schema import REPORT_SCHEMA, SCHEMA_VERSION, ReportValidationError, load_report, validate_report
from lightning_unlearn.report.summary import METRICS, metrics_table_text, summary_sentences

__all__ = [
    "METRICS",
    "REPORT_SCHEMA",
    "SCHEMA_VERSION",
    "ReportValidationError",
    "UnlearningReport",
    "load_report",
    "metrics_table_text",
    "model_hash",
    "render_html",
    "summary_sentences",
    "validate_report",
    "write_html",
]
