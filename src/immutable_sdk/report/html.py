"""A rollout's report as one self-contained HTML page: inline CSS and SVG, no script.

Nothing is loaded from anywhere (no font, stylesheet, image or script URL), so the file
opens offline, in a CI artifact viewer or attached to a ticket, and shows the same.
"""

from __future__ import annotations

import datetime as dt
from html import escape

from . import charts
from .model import AnalysisReport, RolloutReport
from .svg import STATUS_COLORS, short_duration

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1000px;
color:#111827;background:#fff;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#e5e7eb;padding-bottom:4px}h3{font-size:14px;margin:16px 0 6px}
.sub{color:#4b5563;font-size:13px}.badge{display:inline-block;padding:2px 10px;border-radius:10px;
color:#fff;font-size:13px;font-weight:600}
table{border-collapse:collapse;font-size:13px;width:100%}td,th{border-bottom:1px solid #e5e7eb;
padding:4px 8px;text-align:left;vertical-align:top}th{color:#4b5563;font-weight:600}
.err{background:#fef2f2;border:1px solid #fecaca;padding:8px 12px;border-radius:6px;
font-size:13px}dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;font-size:13px}
dt{color:#4b5563}dd{margin:0}svg{display:block;max-width:100%;height:auto}
.none{color:#6b7280;font-size:13px}
"""

OUTCOME_COLORS = {
    "promoted": "#16a34a",
    "rolled_back": "#d97706",
    "failed": "#dc2626",
    "superseded": "#6b7280",
    None: "#2563eb",
}
VERDICT_COLORS = {
    "pass": "#16a34a",
    "fail": "#dc2626",
    "inconclusive": "#d97706",
    "promoted": "#2563eb",
}


def when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def badge(text: str, color: str) -> str:
    return f'<span class="badge" style="background:{color}">{escape(text)}</span>'


def render(report: RolloutReport) -> str:
    outcome = report.outcome or f"running ({report.phase})"
    duration = short_duration(report.duration) if report.duration is not None else "running"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>rollout {escape(report.rollout)} of {escape(report.fleet)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Rollout of {escape(report.fleet)} "
        f"{badge(outcome, OUTCOME_COLORS.get(report.outcome, '#2563eb'))}</h1>",
        f'<p class="sub">project {escape(report.project)} · rollout {escape(report.rollout)} · '
        f"{escape(report.strategy)} · started {when(report.started_at)} · {duration}</p>",
        "<dl>",
        f"<dt>from release</dt><dd>{escape(report.from_release or '(none: a new fleet)')}</dd>",
        f"<dt>to release</dt><dd>{escape(report.to_release)}</dd>",
    ]
    if report.region:
        parts.append(f"<dt>region</dt><dd>{escape(report.region)}</dd>")
    if report.limits:
        cap = ", ".join(f"{k} {v}" for k, v in report.limits.items())
        parts.append(f"<dt>capacity</dt><dd>{escape(cap)}</dd>")
    if report.min_healthy is not None:
        parts.append(f"<dt>min_healthy</dt><dd>{report.min_healthy} instance(s)</dd>")
    parts.append("</dl>")
    if report.error:
        parts.append(f'<p class="err"><b>Why:</b> {escape(report.error)}</p>')
    parts += _timeline(report)
    parts += _section("Traffic weights", charts.weights(report), "no traffic slots")
    parts += _section(
        "Capacity",
        charts.capacity(report),
        "no capacity samples in the journal (a rollout from an older version)",
    )
    if report.analyses:
        parts.append("<h2>Canary analysis</h2>")
        for analysis in report.analyses:
            parts += _analysis(analysis, report)
    units = charts.apply_units(report)
    if units:
        parts += _section("Waves and regions of the apply", units, "")
        parts += _units_table(report)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _section(title: str, chart: str | None, empty: str) -> list[str]:
    body = chart if chart else f'<p class="none">{escape(empty)}</p>'
    return [f"<h2>{escape(title)}</h2>", body]


def _timeline(report: RolloutReport) -> list[str]:
    rows = []
    for s in report.steps:
        start = short_duration(s.start) if s.start is not None else "-"
        took = short_duration(s.end - s.start) if s.end is not None and s.start is not None else ""
        color = STATUS_COLORS.get(s.status, "#6b7280")
        rows.append(
            f"<tr><td>{s.label}</td><td>{'rollback: ' if s.rollback else ''}"
            f"{escape(s.text)}</td><td>{start}</td><td>{took}</td>"
            f'<td style="color:{color};font-weight:600;white-space:nowrap">{escape(s.status)}</td>'
            f"<td>{escape(s.detail)}</td></tr>"
        )
    return [
        "<h2>Timeline</h2>",
        charts.timeline(report),
        "<table><tr><th>#</th><th>step</th><th>at</th><th>took</th><th>result</th>"
        "<th>detail</th></tr>",
        *rows,
        "</table>",
    ]


def _analysis(analysis: AnalysisReport, report: RolloutReport) -> list[str]:
    color = VERDICT_COLORS.get(analysis.verdict, "#6b7280")
    parts = [f"<h3>Step {analysis.step + 1}: {badge(analysis.verdict, color)}</h3>"]
    if analysis.alarms:
        rows = "".join(
            f"<tr><td>{escape(n)}</td><td>{escape(s)}</td></tr>" for n, s in analysis.alarms.items()
        )
        parts.append(f"<table><tr><th>alarm</th><th>state</th></tr>{rows}</table>")
    metric_rows: list[str] = []
    for series in analysis.metrics:
        parts.append(charts.metric(series, report))
        last = series.points[-1] if series.points else None
        limits = []
        if series.max is not None:
            limits.append(f"max {series.max:g}")
        if series.max_ratio is not None:
            limits.append(f"max_ratio {series.max_ratio:g}")
        if series.min_samples is not None:
            limits.append(f"min_samples {series.min_samples}")
        metric_rows.append(
            "<tr>"
            f"<td>{escape(series.name)}</td>"
            f"<td>{_pair(last.canary, last.canary_samples) if last else '-'}</td>"
            f"<td>{_pair(last.baseline, last.baseline_samples) if last else '-'}</td>"
            f"<td>{escape(', '.join(limits))}</td>"
            f'<td style="color:{VERDICT_COLORS.get(series.verdict, "#6b7280")};font-weight:600">'
            f"{escape(series.verdict)}</td><td>{escape(series.reason)}</td></tr>"
        )
    if metric_rows:
        parts.append(
            "<table><tr><th>metric</th><th>canary (samples)</th><th>baseline (samples)</th>"
            "<th>thresholds</th><th>verdict</th><th>why</th></tr>"
            + "".join(metric_rows)
            + "</table>"
        )
    return parts


def _pair(value: float | None, samples: float) -> str:
    return "-" if value is None else f"{value:.6g} ({samples:g})"


def _units_table(report: RolloutReport) -> list[str]:
    rows = "".join(
        f"<tr><td>{escape(u.wave or '-')}</td><td>{escape(u.key)}</td><td>{escape(u.region)}</td>"
        f"<td>{escape(u.rollout)}</td><td>{escape(u.outcome)}</td></tr>"
        for u in sorted(report.units, key=lambda u: (u.start, u.key))
    )
    return [
        "<table><tr><th>wave</th><th>unit</th><th>region</th><th>rollout</th><th>outcome</th></tr>"
        + rows
        + "</table>"
    ]
