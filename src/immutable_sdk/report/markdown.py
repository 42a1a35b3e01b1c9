"""A rollout's report as Markdown with Mermaid diagrams (CI summaries, pull-request comments).

GitHub and GitLab draw ```` ```mermaid ```` blocks: the steps as a ``gantt``, the weights and
the capacity as ``xychart-beta`` line charts; tables carry the numbers and the verdicts, so
the page reads well where Mermaid is not drawn too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .html import when
from .model import RolloutReport
from .svg import short_duration

UNSAFE = re.compile(r"[:;#\n\r`]")
MOST_POINTS = 40  # x-axis categories of an xychart before it gets unreadable


def _name(text: str) -> str:
    """A Mermaid task or section name: no separators Mermaid would read as syntax."""
    return UNSAFE.sub(" ", text).strip() or "-"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(report: RolloutReport) -> str:
    outcome = report.outcome or f"running ({report.phase})"
    duration = short_duration(report.duration) if report.duration is not None else "running"
    lines = [
        f"## Rollout of `{report.fleet}`: **{outcome}**",
        "",
        f"Rollout `{report.rollout}` of project `{report.project}` ({report.strategy}), "
        f"started {when(report.started_at)}, {duration}; "
        f"release `{report.from_release or '(new fleet)'}` -> `{report.to_release}`"
        + (f", region {report.region}" if report.region else "")
        + ".",
        "",
    ]
    if report.error:
        lines += [f"> **Why:** {_cell(report.error)}", ""]
    lines += _gantt(report)
    lines += _steps_table(report)
    lines += _weights(report)
    lines += _capacity(report)
    lines += _analyses(report)
    lines += _units(report)
    return "\n".join(lines).rstrip() + "\n"


def _gantt(report: RolloutReport) -> list[str]:
    t0 = int(report.started_at)
    out = [
        "```mermaid",
        "gantt",
        f"    title {_name('steps of ' + report.rollout)}",
        "    dateFormat X",
        "    axisFormat %H:%M:%S",
        "    section steps",
    ]
    end = report.end
    for i, s in enumerate(report.steps):
        if s.start is None:
            continue
        tag = {"failed": "crit, ", "running": "active, "}.get(s.status, "done, ")
        start = t0 + int(s.start)
        stop = t0 + int(end if s.end is None else s.end)
        name = _name(f"{s.label}. {'rollback ' if s.rollback else ''}{s.text}")
        out.append(f"    {name} :{tag}s{i}, {start}, {max(stop, start + 1)}")
    out += ["```", ""]
    return out


def _steps_table(report: RolloutReport) -> list[str]:
    out = ["| # | step | at | took | result | detail |", "|---|---|---|---|---|---|"]
    for s in report.steps:
        at = short_duration(s.start) if s.start is not None else "-"
        took = short_duration(s.end - s.start) if s.end is not None and s.start is not None else ""
        text = ("rollback: " if s.rollback else "") + s.text
        out.append(
            f"| {s.label} | {_cell(text)} | {at} | {took} | {s.status} | {_cell(s.detail)} |"
        )
    return [*out, ""]


def _sampled(times: Sequence[float]) -> list[int]:
    """Indexes of at most MOST_POINTS of ``times``, first and last kept."""
    if len(times) <= MOST_POINTS:
        return list(range(len(times)))
    step = (len(times) - 1) / (MOST_POINTS - 1)
    return sorted({round(i * step) for i in range(MOST_POINTS)})


def _xychart(
    title: str, times: Sequence[float], y_label: str, top: float, series: Sequence[list[float]]
) -> list[str]:
    keep = _sampled(times)
    axis = ", ".join(f'"{short_duration(times[i])}"' for i in keep)
    out = [
        "```mermaid",
        "xychart-beta",
        f'    title "{_name(title)}"',
        f"    x-axis [{axis}]",
        f'    y-axis "{_name(y_label)}" 0 --> {top:g}',
    ]
    for values in series:
        out.append("    line [" + ", ".join(f"{values[i]:g}" for i in keep) + "]")
    return [*out, "```"]


def _weights(report: RolloutReport) -> list[str]:
    if not report.weights:
        return []
    slots = sorted({s for p in report.weights for s in p.weights})
    times = [p.at for p in report.weights]
    series = [[float(p.weights.get(s, 0)) for p in report.weights] for s in slots]
    return [
        "### Traffic weights",
        "",
        *_xychart("traffic weights (%)", times, "weight %", 100, series),
        "",
        f"Lines, in order: {', '.join(f'slot {s}' for s in slots)}.",
        "",
    ]


def _capacity(report: RolloutReport) -> list[str]:
    if not report.capacity:
        return []
    points = report.capacity
    times = [p.at for p in points]
    top = max([p.in_service for p in points] + [p.desired for p in points] + [1]) + 1
    series = [
        [float(p.in_service) for p in points],
        [float(p.healthy) for p in points],
    ]
    names = ["in service", "healthy"]
    if report.min_healthy is not None:
        series.append([float(report.min_healthy)] * len(points))
        names.append(f"min_healthy ({report.min_healthy})")
    lowest = min(p.healthy for p in points)
    kept = (
        f" Healthy capacity never fell below min_healthy ({lowest} at lowest)."
        if report.min_healthy is not None and lowest >= report.min_healthy
        else ""
    )
    return [
        "### Capacity",
        "",
        *_xychart("capacity (instances)", times, "instances", top, series),
        "",
        f"Lines, in order: {', '.join(names)}.{kept}",
        "",
    ]


def _analyses(report: RolloutReport) -> list[str]:
    out: list[str] = []
    for a in report.analyses:
        out += [f"### Canary analysis (step {a.step + 1}): **{a.verdict}**", ""]
        if a.alarms:
            out += ["| alarm | state |", "|---|---|"]
            out += [f"| {_cell(n)} | {_cell(s)} |" for n, s in a.alarms.items()]
            out.append("")
        if a.metrics:
            out += [
                "| metric | canary (samples) | baseline (samples) | thresholds | verdict | why |",
                "|---|---|---|---|---|---|",
            ]
            for m in a.metrics:
                last = m.points[-1] if m.points else None
                limits = ", ".join(
                    x
                    for x in (
                        f"max {m.max:g}" if m.max is not None else "",
                        f"max_ratio {m.max_ratio:g}" if m.max_ratio is not None else "",
                        f"min_samples {m.min_samples}" if m.min_samples is not None else "",
                    )
                    if x
                )
                c = (
                    f"{last.canary:.6g} ({last.canary_samples:g})"
                    if last and last.canary is not None
                    else "-"
                )
                b = (
                    f"{last.baseline:.6g} ({last.baseline_samples:g})"
                    if last and last.baseline is not None
                    else "-"
                )
                out.append(
                    f"| {_cell(m.name)} | {c} | {b} | {limits} | {m.verdict} | {_cell(m.reason)} |"
                )
            out.append("")
    return out


def _pair(value: float | None, samples: float) -> str:
    return "-" if value is None else f"{value:.6g} ({samples:g})"


def _units(report: RolloutReport) -> list[str]:
    if len(report.units) < 2:
        return []
    base = int(report.started_at)
    out = [
        "### Waves and regions of the apply",
        "",
        "```mermaid",
        "gantt",
        "    title units of the apply",
        "    dateFormat X",
        "    axisFormat %H:%M:%S",
    ]
    by_wave: dict[str, list[str]] = {}
    for i, u in enumerate(sorted(report.units, key=lambda u: (u.start, u.key))):
        start = base + int(u.start)
        stop = base + int(u.end if u.end is not None else report.end)
        tag = "crit, " if u.outcome not in ("promoted", "noop") else "done, "
        by_wave.setdefault(u.wave or "apply", []).append(
            f"    {_name(u.key + ' ' + u.region)} :{tag}u{i}, {start}, {max(stop, start + 1)}"
        )
    for wave, rows in by_wave.items():
        out += [f"    section {_name(wave)}", *rows]
    return [*out, "```", ""]
