"""The report's pictures: a rollout (``RolloutReport``) drawn as inline SVG charts."""

from __future__ import annotations

from .model import MetricSeries, RolloutReport
from .svg import (
    PALETTE,
    SLOT_COLORS,
    STATUS_COLORS,
    Bar,
    Frame,
    Legend,
    gantt,
    short_duration,
    value_ticks,
)

WIDTH = 960


def timeline(report: RolloutReport) -> str:
    """Every step as a bar from its start to its end, coloured by its result."""
    bars = []
    for step in report.steps:
        length = (
            f" ({short_duration(step.end - step.start)})"
            if step.start is not None and step.end is not None and step.end - step.start >= 1
            else ""
        )
        prefix = "rollback: " if step.rollback else ""
        bars.append(
            Bar(
                label=f"{step.label}. {prefix}{step.text}",
                start=step.start,
                end=step.end,
                color=STATUS_COLORS.get(step.status, STATUS_COLORS["ok"]),
                note=(step.detail or step.status) + length,
                italic=step.rollback,
            )
        )
    return gantt(bars, 0.0, max(report.end, 1.0), f"steps of rollout {report.rollout}")


def slot_color(slot: str, index: int) -> str:
    return SLOT_COLORS.get(slot, PALETTE[(index + 2) % len(PALETTE)])


def weights(report: RolloutReport) -> str | None:
    """Each slot's share of the traffic over time (None: the fleet has no traffic slots)."""
    if not report.weights:
        return None
    end = max(report.end, 1.0)
    frame = Frame(WIDTH, 240, 0.0, end, 0, 100)
    frame.axes(value_ticks(0, 100, 4), "weight", "{}%")
    slots = sorted({s for p in report.weights for s in p.weights} | set(report.slots))
    legend: list[Legend] = []
    for i, slot in enumerate(slots):
        color = slot_color(slot, i)
        points = [(p.at, float(p.weights.get(slot, 0))) for p in report.weights]
        frame.step_line(points, end, color, width=2.5)
        legend.append((f"slot {slot}", color, None))
    frame.legend(legend)
    return frame.render(f"traffic weights of rollout {report.rollout}")


def capacity(report: RolloutReport) -> str | None:
    """In-service and healthy instances over time against the min_healthy line."""
    if not report.capacity:
        return None
    end = max(report.end, 1.0)
    points = report.capacity
    top = max(
        [p.in_service for p in points]
        + [p.desired for p in points]
        + [report.limits.get("max", 0), report.min_healthy or 0, 1]
    )
    frame = Frame(WIDTH, 260, 0.0, end, 0, top + 1)
    frame.axes(value_ticks(0, top + 1, 5), "instances")
    legend: list[Legend] = []
    if report.limits.get("max"):
        frame.hline(report.limits["max"], "#9ca3af", dash="2 3")
        legend.append((f"max {report.limits['max']}", "#9ca3af", "2 3"))
    if report.min_healthy is not None:
        frame.hline(report.min_healthy, "#dc2626")
        legend.append((f"min_healthy {report.min_healthy}", "#dc2626", "6 4"))
    # in service drawn wide and pale under healthy, so both show where they are equal
    series = (
        ("in service", [(p.at, float(p.in_service)) for p in points], "#93c5fd", None, 6.0),
        ("healthy", [(p.at, float(p.healthy)) for p in points], "#16a34a", None, 2.0),
        ("desired", [(p.at, float(p.desired)) for p in points], "#374151", "3 3", 1.5),
    )
    for label, values, color, dash, width in series:
        frame.step_line(values, end, color, dash=dash, width=width)
        legend.append((label, color, dash))
    frame.legend(legend)
    return frame.render(f"capacity of rollout {report.rollout}")


def metric(series: MetricSeries, report: RolloutReport) -> str:
    """A canary metric: the canary's and the baseline's values at each judgement, the ``max``
    line and ``max_ratio`` times the baseline."""
    values = [v for p in series.points for v in (p.canary, p.baseline) if v is not None]
    limits = [series.max] if series.max is not None else []
    ratio = [
        (p.at, p.baseline * series.max_ratio)
        for p in series.points
        if p.baseline is not None and series.max_ratio is not None
    ]
    top = max([*values, *limits, *(v for _, v in ratio), 0.0]) or 1.0
    times = [p.at for p in series.points]
    x0, x1 = (min(times), max(times)) if times else (0.0, 1.0)
    if x1 - x0 < 60:  # one judgement (or a few close ones): a minute around them
        x0, x1 = x0 - 30, x1 + 30
    frame = Frame(WIDTH, 220, x0, x1, 0, top * 1.15)
    frame.axes(value_ticks(0, top * 1.15, 4), series.name)
    legend: list[Legend] = []
    if series.max is not None:
        frame.hline(series.max, "#dc2626")
        legend.append((f"max {series.max:g}", "#dc2626", "6 4"))
    if len(ratio) == 1:  # one judgement: the limit it was judged against, across
        frame.hline(ratio[0][1], "#f97316")
        legend.append((f"{series.max_ratio:g} x baseline", "#f97316", "6 4"))
    elif ratio:
        frame.line(ratio, "#f97316", dash="6 4", markers=False)
        legend.append((f"{series.max_ratio:g} x baseline", "#f97316", "6 4"))
    canary = [(p.at, p.canary) for p in series.points if p.canary is not None]
    baseline = [(p.at, p.baseline) for p in series.points if p.baseline is not None]
    frame.line(baseline, "#6b7280")
    frame.line(canary, "#9333ea")
    legend += [("canary", "#9333ea", None), ("baseline", "#6b7280", None)]
    frame.legend(legend)
    return frame.render(f"metric {series.name} of rollout {report.rollout}: {series.verdict}")


def apply_units(report: RolloutReport) -> str | None:
    """The apply's units over time, one row each, grouped by wave, coloured by region."""
    if len(report.units) < 2:
        return None
    colors = region_colors(report)
    x0 = min(u.start for u in report.units)
    x1 = max([u.end if u.end is not None else report.end for u in report.units] + [x0 + 1])
    units = sorted(report.units, key=lambda u: (u.start, u.key))
    bars = [
        Bar(
            label=(f"{u.wave}: " if u.wave else "") + f"{u.key} ({u.region})",
            start=u.start - x0,
            end=None if u.end is None else u.end - x0,
            color=colors[u.region],
            note=u.outcome,
            italic=u.rollout == report.rollout,
        )
        for u in units
    ]
    return gantt(bars, 0.0, x1 - x0, f"waves and regions of the apply of {report.rollout}")


def region_colors(report: RolloutReport) -> dict[str, str]:
    regions = sorted({u.region for u in report.units})
    return {r: PALETTE[i % len(PALETTE)] for i, r in enumerate(regions)}
