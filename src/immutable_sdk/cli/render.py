"""What a person sees: plan and result tables, live rollout progress, JSON output.

The engine emits events; this module turns them into lines (no TTY), a live view (TTY) or JSON
lines (``--log-format json``). Everything printed passes through the secret redactor.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..lifecycle import Event
from ..redaction import redact, redact_text, redacting
from ..units import format_duration

_color = True
PIPE_WIDTH = 4096  # piped output is not cut to 80 columns: a table is as wide as its rows


def set_color(enabled: bool) -> None:
    """``--no-color``: no colours or styles on any console made from now on."""
    global _color
    _color = enabled


def console(file: IO[str] | None = None) -> Console:
    """A rich console on ``file`` (stderr by default); everything it prints is redacted.

    On a terminal it is as wide as the terminal; piped or redirected it does not wrap or cut
    (``COLUMNS`` still sets a width), so ids and reasons reach scripts whole.
    """
    stream = redacting(file or sys.stderr)
    try:
        terminal = stream.isatty()
    except (ValueError, OSError):
        terminal = False
    width = None if terminal else int(os.environ.get("COLUMNS") or 0) or PIPE_WIDTH
    return Console(
        file=stream,
        highlight=False,
        soft_wrap=True,
        width=width,
        no_color=not _color,
        color_system="auto" if _color else None,
    )


def print_json(data: Any, file: IO[str] | None = None) -> None:
    print(json.dumps(redact(data), indent=2, sort_keys=True, default=str), file=file or sys.stdout)


@dataclass
class _FleetView:
    phase: str = "waiting"
    step: str = ""
    index: int = 0
    total: int = 0
    capacity: str = ""
    gate: str = ""
    deadline: float | None = None  # time.monotonic() when the gate times out (live view)


@dataclass
class EventPrinter:
    """An event sink: JSON lines, plain lines, or a live view plus lines in a terminal."""

    fmt: str = "console"  # console | json
    out: Console = field(default_factory=console)
    live: bool | None = None  # None: live when the output is a terminal
    fleets: dict[str, _FleetView] = field(default_factory=dict)
    _live: Live | None = None
    _last_poll: dict[str, str] = field(default_factory=dict, repr=False)
    # Fleets roll out on several threads: one event at a time reaches the output.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.live is None:
            self.live = self.fmt == "console" and self.out.is_terminal

    def __enter__(self) -> EventPrinter:
        if self.live:
            self._live = Live(
                console=self.out,
                refresh_per_second=4,
                transient=True,
                get_renderable=self._view,  # redrawn each refresh: the countdown moves
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._print(event)

    def _print(self, event: Event) -> None:
        if self.fmt == "json":
            self.out.file.write(json.dumps(redact(event.to_dict()), default=str) + "\n")
            self.out.file.flush()
            return
        self._track(event)
        line = describe(event)
        if line is not None and self._changed(event, line.plain):
            self.out.print(line)
        if self._live is not None:
            self._live.refresh()

    def _changed(self, e: Event, text: str) -> bool:
        """A gate polls every few seconds: print its line when what it says changes."""
        if e.kind != "gate.poll":
            if e.kind in ("step.started", "step.finished", "rollback.started"):
                self._last_poll.pop(e.fleet or "", None)
            return True
        if self._last_poll.get(e.fleet or "") == text:
            return False
        self._last_poll[e.fleet or ""] = text
        return True

    def _track(self, e: Event) -> None:
        if not e.fleet:
            return
        v = self.fleets.setdefault(e.fleet, _FleetView())
        d = e.data
        if e.kind == "rollout.started":
            v.phase, v.total, v.index = "rolling out", len(d.get("steps", [])), 0
        elif e.kind == "step.started":
            v.index, v.step = int(d.get("index", 0)) + 1, str(d.get("text", ""))
        elif e.kind == "capacity":
            v.capacity = f"{d.get('healthy')} healthy / {d.get('in_service')} in service"
        elif e.kind == "gate.poll":
            v.gate = " ".join(f"{k}={s}" for k, s in dict(d.get("checks", {})).items())
            left = d.get("seconds_left")
            v.deadline = time.monotonic() + float(left) if left is not None else None
        elif e.kind == "step.finished":
            v.deadline = None
        elif e.kind == "analysis.result":
            v.gate = "analysis " + analysis_verdict(d)
        elif e.kind == "rollback.started":
            v.phase = "rolling back"
        elif e.kind == "rollout.finished":
            v.phase = str(d.get("outcome"))

    def _view(self) -> Table:
        table = Table(box=None, show_header=True, header_style="bold")
        for col in ("fleet", "phase", "step", "capacity", "gate"):
            table.add_column(col)
        for name, v in sorted(self.fleets.items()):
            step = f"{v.index}/{v.total} {v.step}" if v.total else v.step
            gate = v.gate
            if v.deadline is not None and gate:  # a countdown: the live view redraws it
                gate += f" ({format_duration(max(0, round(v.deadline - time.monotonic())))} left)"
            table.add_row(name, v.phase, step, v.capacity, gate)
        return table


def describe(e: Event) -> Text | None:
    """One human line for an event, or None for events only the live view shows."""
    d: Mapping[str, Any] = e.data
    who = f"[{e.fleet}] " if e.fleet else ""
    k = e.kind
    if k == "build.started":
        return Text(f"image {d['image']}: building with {d['builder']}", style="bold")
    if k == "build.output":
        return Text(f"image {d.get('image')} | {d.get('line', '')}", style="dim")
    if k == "build.finished":
        amis = ", ".join(f"{r}={a}" for r, a in dict(d.get("amis", {})).items())
        return Text(f"image {d['image']}: built {amis}", style="green")
    if k == "rollout.started":
        frm = d.get("from_release") or "nothing"
        steps = list(d.get("steps", []))
        change = f"{frm} -> {d.get('to_release')}"
        if d.get("from_release") == d.get("to_release"):  # recycle, a drift fix
            change = f"replacing instances of {d.get('to_release')}"
        return Text(f"{who}{d.get('action')}: {change} in {len(steps)} steps", style="bold")
    if k == "step.started":
        return Text(f"{who}step {int(d['index']) + 1}: {d.get('text')}")
    if k == "step.finished":
        if d.get("outcome") != "ok":
            return Text(f"{who}step {int(d['index']) + 1} failed: {d.get('error')}", style="red")
        extra = ""
        if d.get("launched"):
            extra = f" launched {', '.join(d['launched'])}"
        elif d.get("retired"):
            extra = f" retired {', '.join(d['retired'])}"
        elif d.get("checks"):
            extra = " " + " ".join(f"{n}={s}" for n, s in dict(d["checks"]).items())
        return Text(f"{who}step {int(d['index']) + 1} ok{extra}", style="green")
    if k == "capacity":
        by = ", ".join(f"{r}: {n}" for r, n in dict(d.get("by_release", {})).items())
        return Text(
            f"{who}capacity {d.get('healthy')} healthy, {d.get('in_service')} in service "
            f"({by or 'none'})",
            style="dim",
        )
    if k == "analysis.result":
        return _analysis_text(who, d)
    if k == "gate.poll":
        checks = " ".join(f"{n}={s}" for n, s in dict(d.get("checks", {})).items())
        return Text(f"{who}gate on {d.get('instances')} instance(s): {checks}", style="dim")
    if k == "analysis.inconclusive":
        return Text(
            f"{who}analysis inconclusive ({d.get('summary')}): waiting for "
            "`immutable-sdk promote` (go on) or `abort` (roll back)",
            style="yellow",
        )
    if k == "rollout.failed":
        return Text(f"{who}rollout failed: {d.get('error')}", style="bold red")
    if k == "rollback.started":
        return Text(f"{who}rolling back to {d.get('to_release') or 'nothing'}", style="bold red")
    if k == "rollout.paused":
        what = "until promoted" if d.get("manual") else f"{d.get('seconds')}s"
        return Text(f"{who}paused {what}", style="yellow")
    if k == "rollout.finished":
        style = "bold green" if d.get("outcome") == "promoted" else "bold red"
        return Text(f"{who}rollout {d.get('outcome')}", style=style)
    if k == "wave.bake":
        return Text(f"{who}wave {d.get('wave')}: baking {format_duration(d['seconds'])}")
    if k == "wave.bake_failed":
        return Text(f"{who}wave {d.get('wave')}: bake failed: {d.get('error')}", style="bold red")
    if k == "rollout.resumed":
        ids = ", ".join(d.get("rollouts", []))
        return Text(f"{who}unfinished rollout {ids}: {d.get('how')}", style="yellow")
    if k == "rollout.reconciled":
        done = [f"{w} {', '.join(ids)}" for w, ids in d.items() if ids]
        return Text(f"{who}reconciled with AWS: {'; '.join(done) or 'nothing left over'}")
    if k == "rollout.waiting":
        wait = d.get("waiting_for")
        if wait == "operator":
            return Text(f"{who}waiting for an operator (promote or abort)", style="yellow")
        return Text(f"{who}waiting for {wait} until {_when(d.get('next_at'))}", style="cyan")
    if k == "rollout.interrupted":
        return Text(f"{who}stopped at a safe point ({d.get('reason')}): resumable", style="yellow")
    if k == "rollout.aborting":
        back = d.get("to_release") or "nothing"
        return Text(f"{who}aborting the unfinished rollout: back to {back}", style="bold red")
    if k == "lock.waiting":
        return Text(
            f"{who}waiting for the lock held by {d.get('holder')} (lease until "
            f"{_when(d.get('lease_until'))}, waiting at most {format_duration(d['wait'])})",
            style="yellow",
        )
    if k == "lock.lost":
        return Text(f"{who}lost the lock: {d.get('error')}", style="bold red")
    if k in ("fleet.scaling", "fleet.destroying"):
        return Text(f"{who}{k.split('.', 1)[1]} {dict(d)}")
    return None


def _analysis_text(who: str, d: Mapping[str, Any]) -> Text:
    """An analysis's verdict and, per metric, the numbers and the reason (final judgements)."""
    verdict = str(d.get("verdict"))
    head = f"{who}analysis {d.get('provider')}: {verdict}"
    if not d.get("final"):
        return Text(f"{head} so far", style="dim")
    style = {"pass": "green", "fail": "bold red"}.get(verdict, "yellow")
    text = Text(head, style=style)
    for line in analysis_lines(d):
        text.append(f"\n{who}  {line}", style="" if verdict == "pass" else style)
    return text


def analysis_verdict(d: Mapping[str, Any]) -> str:
    """``pass: 5xx_rate canary 0.2 vs baseline 0.1 (12/12 samples); ...`` or alarm states."""
    if "alarms" in d and "verdict" not in d:
        return "alarms " + ", ".join(f"{n}={s}" for n, s in dict(d["alarms"]).items())
    parts = []
    for m in d.get("metrics", []):
        samples = dict(m.get("samples") or {})
        counts = "/".join(str(samples[k]) for k in ("canary", "baseline") if k in samples)
        parts.append(
            f"{m.get('name')} {m.get('verdict')}: canary {_num(m.get('canary'))} vs baseline "
            f"{_num(m.get('baseline'))}" + (f" ({counts} samples)" if counts else "")
        )
    return f"{d.get('verdict')}: " + ("; ".join(parts) or "no metrics")


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def analysis_line(who: str, d: Mapping[str, Any]) -> Text:
    verdict = str(d.get("verdict", ""))
    style = {"pass": "green", "fail": "bold red", "inconclusive": "yellow"}.get(verdict, "")
    return Text(f"{who}analysis {analysis_verdict(d)}", style=style)


class _RedactedTable(Table):
    """A table whose cells are redacted before rich wraps them (a wrapped secret would be cut
    in pieces that the output stream's redaction could no longer recognize)."""

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        cells = [redact_text(c) if isinstance(c, str) else _redacted_text(c) for c in renderables]
        super().add_row(*cells, **kwargs)


def _redacted_text(cell: Any) -> Any:
    if isinstance(cell, Text) and redact_text(cell.plain) != cell.plain:
        return Text(redact_text(cell.plain), style=cell.style)
    return cell


def _table(title: str, columns: Iterable[str]) -> Table:
    table = _RedactedTable(title=title, title_justify="left", header_style="bold")
    for c in columns:
        table.add_column(c)
    return table


def _several_regions(items: Iterable[Any]) -> bool:
    """Whether plan items span several regions (or one other than the spec's)."""
    items = list(items)
    regions = {getattr(i, "region", None) for i in items}
    return len(regions) > 1 or any(getattr(i, "key", i.fleet) != i.fleet for i in items)


def plan_table(plan: Any) -> Group:
    waves = list(getattr(plan, "waves", ()))
    regional = _several_regions(plan.items)
    region_column = ("region",) if regional else ()
    columns = ("fleet", *region_column, "action", "release", "capacity", "why")
    table = _table(f"plan for {plan.project}", (("wave",) if waves else ()) + columns)
    for i in plan.items:
        release = f"{i.current_release or '-'} -> {i.release or '(new build)'}"
        if i.action in ("noop", "scale", "destroy", "pinned"):
            release = i.current_release or "-"
        elif i.action == "blocked":
            release = f"{i.current_release or '-'} (not {i.release})"
        cap = "-"
        if i.capacity:
            cap = "/".join(map(str, i.capacity))
            if i.current_capacity and i.current_capacity != i.capacity:
                cap = "/".join(map(str, i.current_capacity)) + " -> " + cap
        style = {
            "noop": "dim",
            "destroy": "red",
            "replace": "yellow",
            "create": "green",
            "blocked": "bold red",
            "pinned": "cyan",
        }
        table.add_row(
            *([i.wave or "-"] if waves else []),
            i.fleet,
            *([i.region or "-"] if regional else []),
            Text(i.action, style=style.get(i.action, "")),
            release,
            cap,
            "; ".join(i.reasons),
        )
    parts: list[Any] = [table]
    for n, w in enumerate(waves, 1):
        extra = [f"bake {format_duration(w['bake'])}"] if w.get("bake") else []
        if w.get("max_regions_in_flight"):
            extra.append(f"at most {w['max_regions_in_flight']} region(s) at once")
        if not w.get("stop_on_failure", True):
            extra.append("goes on after a failure")
        fleets = ", ".join(w.get("fleets", [])) or "no fleet"
        regions = ", ".join(w.get("regions", []))
        parts.append(
            Text(f"wave {n} {w['name']}: {fleets} in {regions or '-'}; " + "; ".join(extra))
        )
    if plan.builds:
        parts.append(Text("images to build: " + ", ".join(plan.builds)))
    held = [i for i in plan.items if i.action in ("blocked", "pinned")]
    if not plan.changes and not held:
        parts.append(Text("no changes: every fleet runs its current release", style="green"))
    elif not plan.changes:
        parts.append(Text("no changes: blocked and pinned fleets stay as they are"))
    return Group(*parts)


def result_table(result: Any) -> Group:
    table = _table(
        f"apply {result.outcome}", ("fleet", "outcome", "release", "launched", "retired", "error")
    )
    for f in result.fleets:
        release = f"{f.from_release or '-'} -> {f.to_release or '-'}"
        if f.from_release and f.from_release == f.to_release:
            release = f"{f.to_release} (instances replaced)"
        if f.outcome in ("noop", "scaled", "skipped", "destroyed", "pinned"):
            release = f.from_release or "-"
        elif f.outcome == "quarantined":
            release = f"{f.from_release or '-'} (not {f.to_release}: quarantined)"
        elif f.outcome == "rolled_back":
            release = f"{f.to_release} failed, back on {f.rolled_back_to or 'nothing'}"
        elif f.outcome == "rollback_unfinished":
            release = f"{f.to_release} failed, rollback to {f.from_release or 'nothing'} unfinished"
        table.add_row(
            f.fleet,
            Text(f.outcome, style="green" if f.ok else "bold red"),
            release,
            str(len(f.launched)),
            str(len(f.retired)),
            f.error or "",
        )
    parts: list[Any] = [table]
    for f in result.fleets:
        for instance, what in f.failed_instances.items():
            parts.append(Text(f"  {f.fleet} {instance}: {what}", style="red"))
    calls = result.api_calls
    parts.append(
        Text(
            f"{calls.get('total', 0)} AWS API calls ({calls.get('mutating', 0)} mutating, "
            f"{calls.get('retries', 0)} retries) in {result.duration:.1f}s",
            style="dim",
        )
    )
    return Group(*parts)


def status_table(entries: Sequence[Mapping[str, Any]]) -> Table:
    table = _table("status", ("fleet", "release", "capacity", "instances", "rollout"))
    for e in entries:
        if not e["exists"]:
            held = "; ".join(hold_text(h) for h in e.get("holds", ()))
            table.add_row(e["fleet"], held or "-", "-", "not created", _rollout_and_analysis(e))
            continue
        cap = e["capacity"]
        inst = ", ".join(
            f"{r}: {c['in_service']} in service" + (f", {c['other']} other" if c["other"] else "")
            for r, c in e["instances"].items()
        )
        if e.get("suspended"):
            inst = (inst or "none") + "; suspended: " + ", ".join(e["suspended"])
        release = e["release"] or "-"
        for hold in e.get("holds", ()):
            release += "; " + hold_text(hold)
        table.add_row(
            e["fleet"],
            release,
            f"{cap['min']}/{cap['desired']}/{cap['max']}",
            inst or "none",
            _rollout_and_analysis(e),
        )
    return table


def hold_text(hold: Mapping[str, Any]) -> str:
    """A quarantine or pin in a few words (status)."""
    if hold["kind"] == "pin":
        return f"pinned (rolled back from {hold.get('from_release') or '-'}: unpin to release)"
    checks = ", ".join(hold.get("checks") or ()) or "gates"
    return f"{hold['release']} quarantined (rollout {hold.get('rollout')} failed {checks})"


def analysis_lines(judgement: Mapping[str, Any]) -> list[str]:
    """One line per metric: its verdict and the sentence with the numbers behind it."""
    lines = []
    for m in judgement.get("metrics", []):
        dry = " (dry run)" if m.get("dry_run") else ""
        lines.append(f"{m.get('name')}{dry}: {m.get('verdict')}: {m.get('reason')}")
    return lines


def _analysis_cell(entry: Mapping[str, Any]) -> str:
    """The fleet's last canary analysis: its verdict and each metric's reason."""
    last = entry.get("analysis")
    if not last:
        return ""
    lines = "; ".join(analysis_lines(last))
    return f"last analysis ({last.get('rollout')}): {last.get('verdict')}: {lines}"


def _rollout_and_analysis(entry: Mapping[str, Any]) -> Text:
    cell = _rollout_cell(entry)
    analysis = _analysis_cell(entry)
    if analysis:
        cell.append(("\n" if cell.plain else "") + analysis)
    return cell


def _rollout_cell(entry: Mapping[str, Any]) -> Text:
    """The rollout in progress: id, phase, last step, and whether a process still runs it."""
    ro = entry.get("rollout_in_progress")
    if not ro:
        return Text("")
    text = f"{ro['id']} ({ro['phase']})"
    last = ro.get("last_step")
    if last:
        text += (
            f", step {last['index'] + 1} {last.get('text') or last.get('kind')}: {last['status']}"
        )
    if ro.get("analysis"):
        text += f"; analysis {analysis_verdict(ro['analysis'])}"
    waiting = ro.get("waits")
    if waiting and not ro.get("running"):  # a reconcile tick left it: the next one goes on
        if waiting.get("for") == "operator":
            text += "; waits for an operator (immutable-sdk promote, or abort)"
        else:
            until = waiting.get("until") or waiting.get("next_at")
            text += f"; waits for {waiting.get('for')}"
            if isinstance(until, (int, float)):
                text += f" until {_when(until)}"
        return Text(f"{text}; the next reconcile goes on", style="cyan")
    rolling_back = ro["phase"] == "rolling_back"
    if rolling_back:
        back = ro.get("from_release") or "nothing (undoing the fleet's creation)"
        text += f"; rolling back to {back} after: {ro.get('error') or 'a failure'}"
        if ro.get("rollback_error"):
            text += f"; the rollback stopped: {ro['rollback_error']}"
    elif ro.get("error"):
        text += f"; {ro['error']}"
    if ro.get("resumable"):
        then = (
            "apply finishes the rollback"
            if rolling_back
            else "apply resumes it (--abort-unfinished rolls it back)"
        )
        return Text(f"{text}; unfinished: {then}", style="bold red" if rolling_back else "yellow")
    return Text(text + "; running", style="")


def history_table(history: dict[str, Any]) -> Group:
    parts: list[Any] = []
    for fleet, h in history.items():
        table = _table(
            f"{fleet}: rollouts", ("rollout", "from", "to", "outcome", "started", "error")
        )
        for r in h["rollouts"]:
            table.add_row(
                r["id"],
                r["from_release"] or "-",
                r["to_release"],
                r["outcome"] or r["phase"],
                _when(r["started_at"]),
                (r["error"] or "")[:80],
            )
        parts.append(table)
        rel = _table(f"{fleet}: releases", ("#", "release", "image", "ami", "created"))
        for r in h["releases"]:
            art = r["artifact"]
            rel.add_row(
                str(r["seq"]),
                r["release"],
                str(art.get("image")),
                ", ".join(dict(art.get("amis", {})).values()),
                _when(r["created_at"]),
            )
        parts.append(rel)
    return Group(*parts)


def _when(t: float | None) -> str:
    import datetime as dt

    if not t:
        return "-"
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
