"""Plain-language text of a report: the summary sentences, metric explanations and a text table.

Shared by the HTML page and the ``lightning-unlearn report`` command; needs no optional dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lightning_unlearn.privacy import short_fingerprint


@dataclass(frozen=True)
class MetricInfo:
    """How to show one metric: a label, its unit and one line a non-specialist can read."""

    label: str
    unit: str  # "%", "pp" (percentage points) or "" (a number in [0, 1])
    explanation: str


#: Every metric of :func:`~lightning_unlearn.evaluate`, in the order reports show them.
METRICS: dict[str, MetricInfo] = {
    "forget_acc": MetricInfo(
        "Forget accuracy",
        "%",
        "Share of the forgotten samples the model still classifies correctly; should match the oracle, which never saw them.",
    ),
    "UA": MetricInfo(
        "Unlearning accuracy (UA)",
        "%",
        "100 − forget accuracy: how much of the forget set the model gets wrong; closer to the oracle is better.",
    ),
    "RA": MetricInfo(
        "Retain accuracy (RA)", "%", "Accuracy on the training data that was kept: the model's utility should stay high."
    ),
    "TA": MetricInfo("Test accuracy (TA)", "%", "Accuracy on unseen test data: how well the model still generalises."),
    "holdout_acc": MetricInfo(
        "Holdout accuracy", "%", "Accuracy on the held-out data used as non-members by the membership attack."
    ),
    "MIA": MetricInfo(
        "MIA-efficacy",
        "%",
        "Share of forgotten samples that a membership-inference attack (trained on retain vs test data) judges as never seen; closer to the oracle is better.",
    ),
    "mia_auc": MetricInfo(
        "Membership attack AUC",
        "",
        "How well a loss-threshold attack tells forgotten samples from unseen ones: 0.5 = cannot tell them apart, 1.0 = always can.",
    ),
    "avg_gap": MetricInfo(
        "Average gap to oracle", "pp", "Mean absolute difference to the oracle over UA, RA, TA and MIA-efficacy; lower is better."
    ),
    "knn_overlap": MetricInfo(
        "Neighbourhood agreement with oracle",
        "",
        "Share of each retained sample's 10 nearest neighbours in feature space that the oracle's features share: 1 = same local structure.",
    ),
    "class_sim_corr": MetricInfo(
        "Class-structure agreement with oracle",
        "",
        "Correlation between which classes are similar to which in this model's features and in the oracle's: 1 = same class geometry.",
    ),
}

#: The three models a report compares, in table order.
MODELS = ("unlearned", "original", "oracle")


def metric_keys(report: dict[str, Any]) -> list[str]:
    """Metric names present in any of the report's models: known ones in :data:`METRICS` order, then others."""
    present: set[str] = set()
    for name in MODELS:
        present |= set(report["metrics"].get(name) or {})
    return [k for k in METRICS if k in present] + sorted(present - METRICS.keys())


def format_metric(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    unit = METRICS[key].unit if key in METRICS else ""
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "pp":
        return f"{value:.2f} pp"
    return f"{value:.3f}"


def format_seconds(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def format_date(iso: str) -> str:
    """``2025-03-01T14:02:11+00:00`` → ``2025-03-01 at 14:02 UTC`` (the input unchanged if it does not parse)."""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    zone = "UTC" if moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0 else (moment.tzname() or "")
    return f"{moment:%Y-%m-%d} at {moment:%H:%M} {zone}".strip()


def short_hash(value: str | None, n: int = 12) -> str:
    return "–" if not value else f"{value[:n]}…"


def summary_sentences(report: dict[str, Any]) -> list[str]:
    """The report in a few plain sentences (what was requested, what was done, what it achieved)."""
    request, model, method = report["request"], report["model"], report["method"]
    metrics = report["metrics"]
    unlearned = metrics.get("unlearned") or {}
    original = metrics.get("original") or {}
    oracle = metrics.get("oracle") or {}
    count = request["count"]
    samples = f"{count} training sample{'s' if count != 1 else ''}"
    fingerprint = (
        f"request fingerprint {short_fingerprint(request['fingerprint'])}"
        if request["fingerprint"]
        else "no request fingerprint: explicit forget set"
    )
    sentences = [
        f"On {format_date(report['timings']['started_at'])}, {samples} ({request['description']}; {fingerprint}) were unlearned "
        f"from model {short_hash(model['hash_before'])} with {method['class']}; the resulting model is {short_hash(model['hash_after'])} (SHA-256 prefixes of the weights)."
    ]

    def compared(key: str, fmt: str, unit: str = "") -> str:
        refs = [
            f"{label} {format(m[key], fmt)}{unit}"
            for label, m in (("original", original), ("oracle", oracle))
            if m.get(key) is not None
        ]
        return f" ({', '.join(refs)})" if refs else ""

    parts = []
    if unlearned.get("forget_acc") is not None:
        parts.append(
            f"classifies {unlearned['forget_acc']:.1f}% of the forgotten samples correctly{compared('forget_acc', '.1f', '%')}"
        )
    if unlearned.get("TA") is not None:
        parts.append(f"{unlearned['TA']:.1f}% of unseen test samples{compared('TA', '.1f', '%')}")
    if parts:
        sentences.append("The unlearned model " + " and ".join(parts) + ".")
    if unlearned.get("mia_auc") is not None:
        sentences.append(
            f"A membership-inference attack tells the forgotten samples from unseen ones with AUC {unlearned['mia_auc']:.3f}"
            f"{compared('mia_auc', '.3f')}; 0.5 means it cannot tell them apart, and a value near the oracle's is the goal."
        )
    if unlearned.get("avg_gap") is not None:
        ref = f" (the original model: {original['avg_gap']:.2f})" if original.get("avg_gap") is not None else ""
        sentences.append(
            f"Its metrics are on average {unlearned['avg_gap']:.2f} percentage points from those of the oracle, a model retrained "
            f"without these samples{ref}."
        )
    training, timings = report["training"], report["timings"]
    sentences.append(
        f"Unlearning took {format_seconds(timings['unlearning_s'])} ({training['steps']} optimizer steps); "
        f"the evaluation took {format_seconds(timings['evaluation_s'])}."
    )
    return sentences


def metrics_table_text(report: dict[str, Any]) -> str:
    """The metrics of the unlearned, original and oracle models as an aligned text table."""
    models = [m for m in MODELS if report["metrics"].get(m)]
    rows = [["metric", *models]]
    for key in metric_keys(report):
        rows.append([key, *(format_metric(key, (report["metrics"][m] or {}).get(key)) for m in models)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
