"""The report as one self-contained HTML page: inline CSS, plots embedded as base64 PNG, no scripts.

Nothing is fetched from the network (no external CSS, JavaScript or fonts), so the page can be
archived and opened offline. Every string from the report is escaped. matplotlib (extra
``report``) is imported only when a page is rendered, and drawn with the Agg canvas directly (the
caller's pyplot backend is left alone).
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import lightning_unlearn
from lightning_unlearn._cache import write_text_atomic
from lightning_unlearn._errors import missing_extra
from lightning_unlearn.report.summary import (
    METRICS,
    MODELS,
    format_date,
    format_metric,
    format_seconds,
    metric_keys,
    summary_sentences,
)

#: Colours of the three models in every plot.
COLORS = {"original": "#9aa0a6", "unlearned": "#1d4ed8", "oracle": "#15803d"}
_LABELS = {"original": "Original", "unlearned": "Unlearned", "oracle": "Oracle (retrained)"}
#: Metrics drawn in the bar chart: percentages on the left axis, the attack AUC on its own axis.
_BAR_PERCENT = ("UA", "RA", "TA", "MIA")
_BAR_AUC = ("mia_auc",)
#: Every plot has the same size, so plots side by side line up.
_FIGSIZE = (5.6, 3.8)

_CSS = """
:root { --ink: #1f2933; --muted: #5f6b7a; --line: #d9dee5; --soft: #f4f6f9; --accent: #1d4ed8; }
* { box-sizing: border-box; }
body { margin: 0; background: #ffffff; color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 28px 32px 48px; }
h1 { font-size: 26px; margin: 0 0 2px; }
h2 { font-size: 19px; margin: 30px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 14px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.sub { color: var(--muted); margin: 0 0 16px; }
.summary { background: #eef3ff; border-left: 5px solid var(--accent); padding: 14px 20px; border-radius: 6px; }
.summary p { margin: 6px 0; }
.summary .note { color: var(--muted); font-size: 13px; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 28px; align-items: start; }
.grid-image { image-rendering: pixelated; max-width: 100%; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.explain { color: var(--muted); font-size: 13px; }
td.metric { white-space: nowrap; }
td.metric code { color: var(--muted); }
table.kv th { width: 36%; background: none; color: var(--muted); font-weight: 500; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace; font-size: 12.5px; word-break: break-all; }
figure { margin: 12px 0 0; }
figure img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.empty { color: var(--muted); font-style: italic; }
footer { margin-top: 36px; color: var(--muted); font-size: 12.5px; border-top: 1px solid var(--line); padding-top: 10px; }
"""


def _e(value: Any) -> str:
    """Escaped text of any value."""
    return html.escape("–" if value is None else str(value), quote=True)


def _require_matplotlib() -> Any:
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise missing_extra("matplotlib", "report") from None
    return Figure, FigureCanvasAgg


def _png(fig: Any, canvas_cls: Any) -> str:
    canvas_cls(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _style_axes(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


# ---------------------------------------------------------------------------------------------- plots
def plot_metrics(report: dict[str, Any]) -> str | None:
    """Grouped bars of UA, RA, TA, MIA-efficacy (%) and the attack AUC for each model, as base64 PNG."""
    Figure, Canvas = _require_matplotlib()
    metrics = report["metrics"]
    models = [m for m in ("original", "unlearned", "oracle") if metrics.get(m)]
    percent = [k for k in _BAR_PERCENT if any(k in metrics[m] for m in models)]
    auc = [k for k in _BAR_AUC if any(k in metrics[m] for m in models)]
    if not percent and not auc:
        return None
    fig = Figure(figsize=_FIGSIZE)
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [max(len(percent), 1) * 1.0, 1.1]}) if auc else [fig.subplots()]
    width = 0.8 / len(models)
    for ax, keys, is_auc in ((axes[0], percent, False), (axes[-1], auc, True)) if auc else ((axes[0], percent, False),):
        for i, model in enumerate(models):
            values = [metrics[model].get(k) for k in keys]
            xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(keys))]
            ax.bar(xs, [0 if v is None else v for v in values], width * 0.92, color=COLORS[model], label=_LABELS[model])
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(["MIA-eff." if k == "MIA" else ("attack AUC" if k == "mia_auc" else k) for k in keys])
        _style_axes(ax)
        if is_auc:
            ax.set_ylim(0, 1.08)
            ax.axhline(0.5, color="#6b7280", linestyle="--", linewidth=1)
            ax.set_ylabel("AUC")
        else:
            ax.set_ylim(0, 109)
            ax.set_ylabel("percent")
    axes[0].legend(
        loc="upper center", bbox_to_anchor=(0.5 if not auc else 0.75, -0.12), ncol=len(models), frameon=False, fontsize=9
    )
    fig.suptitle("Metrics: unlearned vs original vs oracle", fontsize=11)
    fig.tight_layout()
    return _png(fig, Canvas)


def plot_roc(report: dict[str, Any]) -> str | None:
    """ROC curves of the loss-threshold membership attack (forget vs non-members), as base64 PNG."""
    roc = report.get("mia_roc")
    if not roc or not roc["curves"]:
        return None
    Figure, Canvas = _require_matplotlib()
    fig = Figure(figsize=_FIGSIZE)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#9ca3af", linestyle=":", linewidth=1, label="chance (AUC 0.500)")
    for model in ("original", "unlearned", "oracle"):
        curve = roc["curves"].get(model)
        if curve:
            ax.plot(
                curve["fpr"],
                curve["tpr"],
                color=COLORS[model],
                linewidth=2 if model == "unlearned" else 1.6,
                label=f"{_LABELS[model]} (AUC {curve['auc']:.3f})",
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel(f"false-positive rate ({roc['nonmembers']} samples called members)")
    ax.set_ylabel("true-positive rate (forget samples)")
    ax.set_title("Membership inference: forget vs " + roc["nonmembers"], fontsize=11)
    _style_axes(ax)
    ax.grid(axis="x", color="#e5e7eb", linewidth=0.8)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8.5, frameon=False)
    fig.tight_layout()
    return _png(fig, Canvas)


def plot_losses(report: dict[str, Any]) -> str | None:
    """The logged training losses per optimizer step, as base64 PNG."""
    curve = report["loss_curve"]
    if not curve["step"] or not curve["series"]:
        return None
    Figure, Canvas = _require_matplotlib()
    fig = Figure(figsize=_FIGSIZE)
    ax = fig.subplots()
    styles = {
        "loss": {"color": "#111827", "linestyle": "--", "zorder": 3},
        "forget_loss": {"color": "#dc2626"},
        "retain_loss": {"color": "#2563eb"},
    }
    order = [name for name in styles if name in curve["series"]] + [name for name in curve["series"] if name not in styles]
    for name in order:
        values = curve["series"][name]
        points = [(s, v) for s, v in zip(curve["step"], values) if v is not None]
        if points:
            xs, ys = zip(*points)
            marker = "o" if len(xs) < 30 else None
            ax.plot(xs, ys, linewidth=1.5, marker=marker, markersize=3, label=name.replace("_", " "), **styles.get(name, {}))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title("Training losses during unlearning", fontsize=11)
    _style_axes(ax)
    ax.legend(fontsize=8.5, frameon=False)
    fig.tight_layout()
    return _png(fig, Canvas)


# ---------------------------------------------------------------------------------------------- page parts
def _figure(png: str | None, caption: str, alt: str, missing: str) -> str:
    if png is None:
        return f'<p class="empty">{_e(missing)}</p>'
    return f'<figure><img src="data:image/png;base64,{png}" alt="{_e(alt)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _kv_table(rows: list[tuple[str, Any]], mono: tuple[str, ...] = ()) -> str:
    cell = {True: '<td class="mono">', False: "<td>"}
    body = "".join(f"<tr><th>{_e(k)}</th>{cell[k in mono]}{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _metrics_table(report: dict[str, Any]) -> str:
    metrics = report["metrics"]
    models = [m for m in MODELS if metrics.get(m)]
    has_oracle = bool(metrics.get("oracle"))
    head = "".join(f'<th class="num">{_e(_LABELS[m])}</th>' for m in models)
    head += '<th class="num">|Δ| to oracle</th>' if has_oracle else ""
    rows = []
    for key in metric_keys(report):
        info = METRICS.get(key)
        cells = "".join(f'<td class="num">{_e(format_metric(key, metrics[m].get(key)))}</td>' for m in models)
        if has_oracle:
            mine, ref = metrics["unlearned"].get(key), metrics["oracle"].get(key)
            gap = "" if key == "avg_gap" or mine is None or ref is None else format_metric(key, abs(mine - ref))
            gap = gap.replace(" %", " pp")  # a difference of percentages is in percentage points
            cells += f'<td class="num">{_e(gap)}</td>'
        label = info.label if info else key
        rows.append(
            f'<tr><td class="metric"><strong>{_e(label)}</strong> <code>{_e(key)}</code></td>{cells}'
            f'<td class="explain">{_e(info.explanation if info else "")}</td></tr>'
        )
    return f"<table><tr><th>Metric</th>{head}<th>What it means</th></tr>{''.join(rows)}</table>"


def _attacks(report: dict[str, Any]) -> str:
    attacks = report["attacks"]
    if not attacks:
        return (
            '<p class="empty">No further attacks were added. Stronger audits (e.g. LiRA) can be attached with '
            "<code>UnlearningReport.add_attack(name, result)</code>.</p>"
        )
    rows = []
    for attack in attacks:
        result = "; ".join(f"{k} = {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in attack["result"].items())
        rows.append(
            f'<tr><td><strong>{_e(attack["name"])}</strong></td><td>{_e(attack.get("description") or "")}</td><td class="mono">{_e(result)}</td></tr>'
        )
    return f"<table><tr><th>Attack</th><th>What it measures</th><th>Result</th></tr>{''.join(rows)}</table>"


#: How the report's side-by-side views (ranking, images) name the models.
MODEL_LABELS = {"original": "Before (original)", "unlearned": "After (unlearned)", "oracle": "Oracle (retrained)"}


def _model_header(names) -> str:  # noqa: ANN001
    return "".join(f"<th>{_e(MODEL_LABELS.get(n, n))}</th>" for n in names)


def _ranking(report: dict[str, Any]) -> str:
    """The forgotten users' top-k lists side by side (original / unlearned / oracle), deleted items marked."""
    ranking = report.get("ranking")
    if not ranking:
        return ""
    labels = MODEL_LABELS
    blocks = []
    for user in ranking["users"]:
        names = list(user["lists"])
        head = _model_header(names)
        rows = []
        for rank in range(ranking["k"]):
            cells = []
            for n in names:
                entries = user["lists"][n]
                if rank >= len(entries):
                    cells.append("<td></td>")
                    continue
                entry = entries[rank]
                title = _e(entry["title"])
                cells.append(f"<td><strong>{title}</strong> (deleted)</td>" if entry["deleted"] else f"<td>{title}</td>")
            rows.append(f"<tr><td>{rank + 1}</td>{''.join(cells)}</tr>")
        counts = ", ".join(f"{labels.get(n, n).lower()}: {sum(e['deleted'] for e in user['lists'][n])}" for n in names)
        blocks.append(
            f"<h3>{_e(user['label'])} ({user['deleted']} deleted interactions)</h3>"
            f"<p>Deleted items in the top {ranking['k']}: {_e(counts)}.</p>"
            f"<table><tr><th>Rank</th>{head}</tr>{''.join(rows)}</table>"
        )
    return f'<section id="ranking"><h2>Ranking of forgotten users</h2>{"".join(blocks)}</section>'


def _images(report: dict[str, Any]) -> str:
    """Each prompt group's generation grids side by side (original / unlearned / oracle), the prompts as row labels."""
    images = report.get("images")
    if not images:
        return ""
    blocks = []
    for group, entry in images["groups"].items():
        head = _model_header(entry["grids"])
        cells = "".join(f'<td><img class="grid-image" alt="{_e(group)}: {_e(MODEL_LABELS.get(n, n))}" src="{_e(uri)}"></td>' for n, uri in entry["grids"].items())
        prompts = "".join(f"<li>{_e(p)}</li>" for p in entry["prompts"])
        blocks.append(f"<h3>{_e(group)}</h3><p>One row per prompt:</p><ol>{prompts}</ol><table><tr>{head}</tr><tr>{cells}</tr></table>")
    note = f"{images['per_prompt']} generations per prompt, {images['steps']} DDIM steps, guidance {images['guidance']}, seed {images['seed']} (the same noise for every model)."
    return f'<section id="images"><h2>Generations</h2><p>{_e(note)}</p>{"".join(blocks)}</section>'


def render_html(report: dict[str, Any]) -> str:
    """The whole page for ``report`` (a dict as written to ``report.json``)."""
    request, model, method = report["request"], report["model"], report["method"]
    training, timings, data = report["training"], report["timings"], report["data"]
    summary = "".join(f"<p>{_e(s)}</p>" for s in summary_sentences(report))
    note = (
        "These figures are measured on the evaluation data: they are empirical evidence of forgetting, not a formal "
        "guarantee. The report identifies the request by a keyed fingerprint (only the holder of the request key can "
        "check a request against it) and contains no training samples or sample indices."
    )
    request_rows = [
        ("Kind", request["kind"]),
        ("Description", request["description"]),
        ("Samples unlearned", request["count"]),
        ("Training set size", request["dataset_size"]),
        ("Fingerprint (keyed HMAC-SHA256)", request["fingerprint"] or "none (explicit forget set)"),
    ]
    if data["sizes"]:
        request_rows.append(("Evaluation splits (samples)", " · ".join(f"{split} {n}" for split, n in data["sizes"].items())))
    model_rows = [
        ("Architecture", f"{model['class']} ({model['num_parameters']:,} parameters)"),
        ("Weights before (SHA-256)", model["hash_before"]),
        ("Weights after (SHA-256)", model["hash_after"]),
        ("Original weights file", model["original"] or "in memory (not loaded from a file)"),
        ("Oracle weights file", model["oracle"] or "none"),
    ]
    method_rows = [("Method", f"{method['class']} ({method['name']})")] + [
        (k, v) for k, v in method["hparams"].items() if k != "method"
    ]
    optimizer = training["optimizer"]
    training_rows = [
        ("Epochs run / max", f"{training['epochs']} / {training['max_epochs'] if training['max_epochs'] is not None else '–'}"),
        ("Optimizer steps / max", f"{training['steps']} / {training['max_steps'] if training['max_steps'] is not None else '–'}"),
        ("Precision", training["precision"]),
        (
            "Optimizer",
            "none"
            if optimizer is None
            else optimizer["class"] + " (" + ", ".join(f"{k}={v}" for k, v in optimizer["hparams"].items()) + ")",
        ),
        ("LR schedulers", ", ".join(training.get("lr_schedulers") or []) or "none"),
        ("Accelerator / strategy", f"{training['accelerator']} / {training.get('strategy', '–')} × {training['world_size']}"),
        (
            "Gradient accumulation / clipping",
            f"{training.get('accumulate_grad_batches', 1)} / {training.get('gradient_clip_val') or 'none'}",
        ),
    ]
    timing_rows = [
        ("Started", format_date(timings["started_at"])),
        ("Finished", format_date(timings["finished_at"])),
        ("Unlearning", format_seconds(timings["unlearning_s"])),
        ("Evaluation", format_seconds(timings["evaluation_s"])),
    ]
    version_rows = list(report["versions"].items()) + [("git commit", report["git_commit"] or "not a git checkout")]
    roc = report.get("mia_roc")
    nonmembers = roc["nonmembers"] if roc else "holdout"
    title = f"Unlearning report · {method['class']} · {format_date(report['created'])}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>Unlearning report</h1>
<p class="sub">{_e(method["class"])} · created {_e(format_date(report["created"]))} · lightning_unlearn {_e(report["versions"].get("lightning_unlearn"))} · report format {_e(report["schema_version"])}</p>

<section id="summary" class="summary">
{summary}
<p class="note">{_e(note)}</p>
</section>

<div class="grid">
<section id="request"><h2>What was requested</h2>{_kv_table(request_rows, mono=("Fingerprint (keyed HMAC-SHA256)",))}</section>
<section id="model"><h2>Which model</h2>{_kv_table(model_rows, mono=("Weights before (SHA-256)", "Weights after (SHA-256)"))}</section>
</div>

<section id="metrics"><h2>Results</h2>
{_metrics_table(report)}
</section>

<div class="grid">
<section id="metrics-chart">{_figure(plot_metrics(report), "UA, RA, TA and MIA-efficacy in percent; the attack AUC on its own axis (dashed: 0.5, no membership signal). The closer the unlearned bars are to the oracle's, the better.", "Bar chart of the metrics", "No metrics to plot.")}</section>
<section id="mia">{_figure(plot_roc(report), f"Loss-threshold attack: forget samples (members) vs {nonmembers} samples (non-members). A curve on the diagonal means the attack cannot tell them apart.", "ROC curves of the membership-inference attack", "No membership-inference curves: the evaluation had no test or holdout split.")}</section>
</div>

<div class="grid">
<section id="training"><h2>How it was done</h2>
<h3>Method</h3>{_kv_table(method_rows)}
<h3>Training</h3>{_kv_table(training_rows)}
</section>
<section id="losses"><h2>Training losses</h2>{_figure(plot_losses(report), "Losses logged at each optimizer step (forget loss: the objective on the forget batch; retain loss: on the retained data).", "Training loss curves", "No training losses were logged.")}</section>
</div>

<section id="attacks"><h2>Further attacks</h2>{_attacks(report)}</section>
{_ranking(report)}
{_images(report)}

<div class="grid">
<section id="timings"><h2>Timings</h2>{_kv_table(timing_rows)}</section>
<section id="versions"><h2>Software</h2>{_kv_table(version_rows, mono=("git commit",))}</section>
</div>

<footer>Generated by lightning_unlearn {_e(lightning_unlearn.__version__)}. The machine-readable record of this page is <code>report.json</code> (schema in <code>lightning_unlearn.report.schema</code>).</footer>
</main>
</body>
</html>
"""


def write_html(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Render ``report`` and write the page to ``path`` (atomically); return the path."""
    return write_text_atomic(path, render_html(report))


#: Where Debian's ``chromium`` package installs the browser.
CHROMIUM = "/usr/bin/chromium"
# Flags that keep headless Chromium off the network (it would otherwise try Google's services at start).
_CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def screenshot(page: str | os.PathLike, out: str | os.PathLike, *, width: int = 1280, height: int = 2000,
               chromium: str = CHROMIUM, timeout: float = 120) -> Path:
    """Render an HTML page (e.g. ``report.html``) to a PNG with headless Chromium; return the PNG path.

    Raises ``FileNotFoundError`` when ``chromium`` is missing (``apt-get install chromium``) and
    ``RuntimeError`` with Chromium's stderr when it writes no screenshot.
    """
    import subprocess
    import tempfile

    if not Path(chromium).exists():
        raise FileNotFoundError(f"`chromium` {chromium!r} not found; install Debian's `chromium` package.")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        command = [chromium, *_CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
                   f"--window-size={width},{height}", Path(page).resolve().as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if not out.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}")
    return out
