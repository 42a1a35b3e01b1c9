"""``status --watch``: the fleets' status again and again, live on a terminal."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..redaction import redact
from . import Options
from .common import FORMAT_VERSION, open_engine

if TYPE_CHECKING:
    from rich.console import Group


def watch_status(opts: Options, files: Sequence[str], output: str, interval: float) -> None:
    """``status --watch``: the status again every ``interval`` seconds until interrupted."""
    # Ctrl-C (SIGINT) ends the watch, even when the process was started with SIGINT ignored
    # (a background job of a script): Python then installs no KeyboardInterrupt handler.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _watch(opts, files, output, interval)
    except KeyboardInterrupt:
        return
    finally:
        signal.signal(signal.SIGINT, previous)


def _watch(opts: Options, files: Sequence[str], output: str, interval: float) -> None:
    from rich.live import Live

    from .render import console

    with open_engine(opts, files) as (engine, _):
        out = console(sys.stdout)
        live = (
            Live(console=out, auto_refresh=False) if out.is_terminal and output != "json" else None
        )
        try:
            if live is not None:
                live.start()
            while True:
                entries = engine.status()
                if output == "json":
                    print(
                        json.dumps(
                            redact({"format_version": FORMAT_VERSION, "fleets": entries}),
                            default=str,
                        ),
                        flush=True,
                    )
                elif live is not None:
                    live.update(watch_view(entries), refresh=True)
                else:
                    out.print(watch_view(entries))
                    sys.stdout.flush()
                engine.clock.sleep(interval)
        finally:
            if live is not None:
                live.stop()


def watch_view(entries: Sequence[Mapping[str, Any]]) -> Group:
    """Per fleet: release, rollout step, and for traffic slots their weights and health."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    for e in entries:
        ro = e.get("rollout_in_progress")
        head = f"{e['fleet']}: release {e.get('release') or '-'}"
        if ro:
            steps = ro.get("steps") or []
            at = int(ro.get("current", -1)) + 1
            head += f"; rollout {ro['id']} ({ro['phase']}) step {at}/{len(steps)}"
            if ro.get("step"):
                head += f": {ro['step']}"
            if ro.get("analysis"):
                from .render import analysis_verdict

                head += f"; analysis {analysis_verdict(ro['analysis'])}"
        parts.append(Text(head, style="bold"))
        traffic = e.get("traffic")
        if traffic:
            table = Table(box=None, header_style="bold")
            for col in ("slot", "weight", "release", "desired", "in service", "healthy"):
                table.add_column(col)
            for slot, s in traffic["slots"].items():
                weight = "-" if s["weight"] is None else f"{s['weight']}%"
                table.add_row(
                    slot + (" (live)" if slot == traffic.get("live") else ""),
                    weight,
                    s["release"] or "-",
                    str(s["desired"]),
                    str(s["in_service"]),
                    str(s["healthy"]),
                )
            parts.append(table)
    return Group(*parts)
