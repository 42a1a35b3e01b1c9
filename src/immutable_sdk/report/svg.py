"""Inline SVG charts, drawn here: a Gantt timeline, step-line charts with reference lines.

No library and no script: each function returns one ``<svg>`` element as text, sized in
pixels, with every label escaped, so a report is one file that opens offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif"
GRID = "#e5e7eb"
AXIS = "#6b7280"
TEXT = "#111827"
PALETTE = ("#2563eb", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be123c", "#4d7c0f")
SLOT_COLORS = {"blue": "#2563eb", "green": "#16a34a"}
STATUS_COLORS = {
    "ok": "#16a34a",
    "failed": "#dc2626",
    "running": "#2563eb",
    "skipped": "#9ca3af",
    "not run": "#9ca3af",
}
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)


def short_duration(seconds: float) -> str:
    """``0s``, ``45s``, ``5m``, ``1h30m``, ``2d``: a tick label or a step's length."""
    s = round(seconds)
    sign = "-" if s < 0 else ""
    s = abs(s)
    if s < 60:
        return f"{sign}{s}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            parts.append(f"{s // size}{unit}")
            s %= size
        if len(parts) == 2:
            break
    return sign + "".join(parts)


def time_ticks(start: float, end: float, most: int = 8) -> list[float]:
    span = max(end - start, 1.0)
    step = next((t for t in TIME_STEPS if span / t <= most), TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    return [first + i * step for i in range(int((end - first) // step) + 1)]


def value_ticks(low: float, high: float, most: int = 5) -> list[float]:
    span = high - low
    if span <= 0:
        return [low]
    raw = span / most
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def number(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.4g}"


def _f(value: float) -> str:
    return f"{value:.1f}"


Legend = tuple[str, str, "str | None"]  # label, colour, dash pattern (None: solid)


@dataclass
class Frame:
    """A plotting area inside an SVG of ``width`` x ``height`` pixels."""

    width: int
    height: int
    x0: float
    x1: float
    y0: float
    y1: float
    left: int = 64
    right: int = 170  # room for the legend
    top: int = 16
    bottom: int = 36
    parts: list[str] = field(default_factory=list)

    def x(self, t: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (t - self.x0) / span * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return (
            self.height
            - self.bottom
            - (v - self.y0) / span * (self.height - self.top - self.bottom)
        )

    def text(
        self,
        x: float,
        y: float,
        label: str,
        *,
        anchor: str = "start",
        color: str = TEXT,
        size: int = 12,
        weight: str = "normal",
    ) -> None:
        self.parts.append(
            f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" fill="{color}" '
            f'font-size="{size}" font-weight="{weight}">{escape(label)}</text>'
        )

    def axes(self, y_ticks: Sequence[float], y_label: str, y_format: str = "{}") -> None:
        bottom, top = self.height - self.bottom, self.top
        for t in time_ticks(self.x0, self.x1):
            x = self.x(t)
            self.parts.append(
                f'<line x1="{_f(x)}" y1="{top}" x2="{_f(x)}" y2="{bottom}" stroke="{GRID}"/>'
            )
            self.text(x, bottom + 16, short_duration(t), anchor="middle", color=AXIS, size=11)
        for v in y_ticks:
            y = self.y(v)
            self.parts.append(
                f'<line x1="{self.left}" y1="{_f(y)}" x2="{self.width - self.right}" '
                f'y2="{_f(y)}" stroke="{GRID}"/>'
            )
            label = y_format.format(number(v))
            self.text(self.left - 6, y + 4, label, anchor="end", color=AXIS, size=11)
        self.parts.append(
            f'<line x1="{self.left}" y1="{bottom}" x2="{self.width - self.right}" y2="{bottom}" '
            f'stroke="{AXIS}"/>'
        )
        self.text(12, top + (bottom - top) / 2, y_label, anchor="middle", color=AXIS, size=11)
        self.parts[-1] = self.parts[-1].replace(
            "<text ", f'<text transform="rotate(-90 12 {_f(top + (bottom - top) / 2)})" ', 1
        )

    def step_line(
        self,
        points: Sequence[tuple[float, float]],
        end: float,
        color: str,
        *,
        dash: str | None = None,
        width: float = 2.0,
    ) -> None:
        """A value that holds until it changes (capacity, weights): horizontal then vertical."""
        if not points:
            return
        path = [f"M{_f(self.x(points[0][0]))},{_f(self.y(points[0][1]))}"]
        for t, v in points[1:]:
            path.append(f"H{_f(self.x(t))}")
            path.append(f"V{_f(self.y(v))}")
        path.append(f"H{_f(self.x(max(end, points[-1][0])))}")
        self._path("".join(path), color, dash, width)

    def line(
        self,
        points: Sequence[tuple[float, float]],
        color: str,
        *,
        dash: str | None = None,
        markers: bool = True,
    ) -> None:
        """A measured series: points joined by straight lines, each marked."""
        if not points:
            return
        path = "".join(
            f"{'M' if i == 0 else 'L'}{_f(self.x(t))},{_f(self.y(v))}"
            for i, (t, v) in enumerate(points)
        )
        self._path(path, color, dash, 2.0)
        if markers:
            for t, v in points:
                self.parts.append(
                    f'<circle cx="{_f(self.x(t))}" cy="{_f(self.y(v))}" r="3.5" fill="{color}"/>'
                )

    def hline(self, value: float, color: str, *, dash: str = "6 4") -> None:
        y = self.y(value)
        self.parts.append(
            f'<line x1="{self.left}" y1="{_f(y)}" x2="{self.width - self.right}" y2="{_f(y)}" '
            f'stroke="{color}" stroke-width="1.5" stroke-dasharray="{dash}"/>'
        )

    def legend(self, entries: Sequence[Legend]) -> None:
        """(label, color, dash) rows right of the plot."""
        x = self.width - self.right + 14
        for i, (label, color, dash) in enumerate(entries):
            y = self.top + 10 + i * 18
            dashed = f' stroke-dasharray="{dash}"' if dash else ""
            self.parts.append(
                f'<line x1="{x}" y1="{y}" x2="{x + 22}" y2="{y}" stroke="{color}" '
                f'stroke-width="2.5"{dashed}/>'
            )
            self.text(x + 28, y + 4, label, size=11)

    def _path(self, d: str, color: str, dash: str | None, width: float) -> None:
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(
            f'<path d="{d}" fill="none" stroke="{color}" stroke-width="{width}"{dashed}/>'
        )

    def render(self, title: str) -> str:
        return svg(self.width, self.height, title, self.parts)


def svg(width: int, height: int, title: str, parts: Sequence[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" style="{FONT}">'
        f"<title>{escape(title)}</title>" + "".join(parts) + "</svg>"
    )


@dataclass(frozen=True)
class Bar:
    """One row of a Gantt chart."""

    label: str
    start: float | None
    end: float | None  # None: still running (drawn to the chart's end)
    color: str
    note: str = ""  # shown after the bar
    italic: bool = False


CHAR = 6.4  # pixels per character of an 11px label, roughly


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: max(1, most - 1)] + "…"


def gantt(
    bars: Sequence[Bar],
    x0: float,
    x1: float,
    title: str,
    *,
    width: int = 960,
    label_width: int = 300,
) -> str:
    """Rows of bars over time; a bar of no length is drawn as a diamond."""
    row, top, bottom = 24, 8, 30
    height = top + bottom + row * max(1, len(bars))
    frame = Frame(width, height, x0, x1, 0, 1, left=label_width, right=24, top=top, bottom=bottom)
    base = height - bottom
    for t in time_ticks(x0, x1):
        x = frame.x(t)
        frame.parts.append(
            f'<line x1="{_f(x)}" y1="{top}" x2="{_f(x)}" y2="{base}" stroke="{GRID}"/>'
        )
        frame.text(x, base + 16, short_duration(t), anchor="middle", color=AXIS, size=11)
    for i, bar in enumerate(bars):
        y = top + i * row
        style = ' font-style="italic"' if bar.italic else ""
        label = _clip(bar.label, int((label_width - 12) / 6.8))
        frame.parts.append(
            f'<text x="{label_width - 8}" y="{y + 16}" text-anchor="end" fill="{TEXT}" '
            f'font-size="12"{style}>{escape(label)}</text>'
        )
        if bar.start is None:
            frame.text(label_width + 6, y + 16, bar.note or "not run", color=AXIS, size=11)
            continue
        x_start = frame.x(bar.start)
        x_end = frame.x(x1 if bar.end is None else bar.end)
        if x_end - x_start < 3:
            cx, cy = x_start, y + 12
            frame.parts.append(
                f'<path d="M{_f(cx)},{_f(cy - 6)} L{_f(cx + 6)},{_f(cy)} L{_f(cx)},{_f(cy + 6)} '
                f'L{_f(cx - 6)},{_f(cy)} Z" fill="{bar.color}"/>'
            )
            x_end = cx + 6
        else:
            frame.parts.append(
                f'<rect x="{_f(x_start)}" y="{y + 4}" width="{_f(x_end - x_start)}" '
                f'height="{row - 8}" rx="3" fill="{bar.color}"/>'
            )
        if bar.note:
            right = int((width - 8 - (x_end + 6)) / CHAR)
            inside = int((x_end - x_start - 8) / CHAR)
            if right >= 12 or right >= len(bar.note):
                frame.text(x_end + 6, y + 16, _clip(bar.note, right), color=AXIS, size=11)
            elif inside >= 8:
                frame.text(x_start + 4, y + 16, _clip(bar.note, inside), color="#fff", size=11)
            else:  # at the right edge: before the bar (a row holds one bar only)
                left = int((x_start - 12 - label_width) / CHAR)
                note = _clip(bar.note, left)
                frame.text(x_start - 12, y + 16, note, anchor="end", color=AXIS, size=11)
    return frame.render(title)
