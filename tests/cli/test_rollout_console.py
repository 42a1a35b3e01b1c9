"""What a rollout says while it runs: step wording by direction, gate lines printed on change,
analysis verdicts, status of a paused blue/green, first blue/green releases."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from immutable_sdk.cli.render import EventPrinter, analysis_verdict, describe
from immutable_sdk.core.rollout.signals import rollout_progress
from immutable_sdk.core.rollout.wording import step_text
from immutable_sdk.core.traffic.deployer import count_other_slots
from immutable_sdk.lifecycle import Bake, Event, Launch, Retire
from immutable_sdk.plugin import RolloutInfo
from immutable_sdk.state.base import JournalEntry

ROLLOUT = RolloutInfo("ro-1", "shop", "web", "rolling", "r-old", "r-new")


def test_steps_say_which_release_they_launch_and_retire() -> None:
    launch, retire = Launch(2), Retire(2)
    assert step_text(launch, ROLLOUT) == "launch 2 instance(s) of the new release r-new"
    assert step_text(retire, ROLLOUT) == "retire 2 instance(s) of the previous release r-old"
    # undoing the failed rollout: back to r-old
    back = step_text(launch, ROLLOUT, rolling_back=True)
    assert back == "launch 2 instance(s) of the previous release r-old"
    gone = step_text(retire, ROLLOUT, rolling_back=True)
    assert gone == "retire 2 instance(s) of the failed release r-new"
    # `immutable-sdk rollback`: a rollout to an earlier release
    manual = RolloutInfo("ro-2", "shop", "web", "rolling", "r-new", "r-old", rollback=True)
    assert step_text(launch, manual) == "launch 2 instance(s) of the earlier release r-old"
    # recycle and drift fixes: one release
    same = RolloutInfo("ro-3", "shop", "web", "rolling", "r-x", "r-x")
    assert "replacing older ones, of release r-x" in step_text(launch, same)
    assert "new release" not in step_text(launch, same)
    assert step_text(retire, same) == "retire 2 instance(s) replaced (older or drifted)"
    assert step_text(Bake(60), ROLLOUT) == "bake 1m"


def test_a_drift_fix_is_not_r_x_to_r_x() -> None:
    event = Event(
        "rollout.started",
        0.0,
        "web",
        data={"action": "fix", "from_release": "r-x", "to_release": "r-x", "steps": [1, 2]},
    )
    line = describe(event)
    assert line is not None and "r-x -> r-x" not in line.plain
    assert "replacing instances of r-x in 2 steps" in line.plain


def _printer() -> tuple[EventPrinter, io.StringIO]:
    out = io.StringIO()
    return EventPrinter(out=Console(file=out, width=200), live=False), out


def test_a_gate_prints_changes_not_every_poll() -> None:
    printer, out = _printer()
    pending = {"checks": {"ec2": "pending", "elb": "pending"}, "instances": 2}
    healthy = {"checks": {"ec2": "healthy", "elb": "pending"}, "instances": 2}
    for data in [pending] * 15 + [healthy] * 3:
        printer(Event("gate.poll", 0.0, "web", data=data))
    lines = out.getvalue().splitlines()
    assert lines == [
        "[web] gate on 2 instance(s): ec2=pending elb=pending",
        "[web] gate on 2 instance(s): ec2=healthy elb=pending",
    ]
    printer(Event("step.started", 0.0, "web", data={"index": 3, "text": "gate"}))
    printer(Event("gate.poll", 0.0, "web", data=pending))  # a new gate: said again
    assert out.getvalue().splitlines()[-1].endswith("ec2=pending elb=pending")


def test_the_live_view_counts_down_only_on_a_terminal() -> None:
    printer, out = _printer()
    printer(
        Event(
            "gate.poll",
            0.0,
            "web",
            data={"checks": {"ec2": "pending"}, "instances": 1, "seconds_left": 90.0},
        )
    )
    assert "left" not in out.getvalue()  # piped: no countdown in the lines
    view = Console(file=io.StringIO(), width=200)
    view.print(printer._view())
    assert re.search(r"ec2=pending \((90|89)s left\)", view.file.getvalue())
    from immutable_sdk.cli.render import console

    assert EventPrinter(out=console(io.StringIO())).live is False  # piped: plain lines


ANALYSIS = {
    "provider": "cloudwatch-metrics",
    "verdict": "inconclusive",
    "window": {"start": 0, "end": 600},
    "metrics": [
        {
            "name": "5xx_rate",
            "verdict": "inconclusive",
            "canary": 0.0123456,
            "baseline": 0.01,
            "samples": {"canary": 2, "baseline": 10},
            "reason": "canary has 2 of 5 samples needed (canary 0.01235, baseline 0.01)",
        },
    ],
}


def test_the_analysis_verdict_and_numbers_reach_the_console() -> None:
    printer, out = _printer()
    printer(Event("analysis.result", 0.0, "web", data={**ANALYSIS, "final": True}))
    printer(
        Event("analysis.inconclusive", 0.0, "web", data={"summary": "5xx_rate: too few samples"})
    )
    text = out.getvalue()
    assert "analysis cloudwatch-metrics: inconclusive" in text
    assert "5xx_rate: inconclusive: canary has 2 of 5 samples needed" in text
    assert "(canary 0.01235, baseline 0.01)" in text and "`immutable-sdk promote`" in text
    # the live view and status --watch: the verdict with each metric's numbers on one line
    line = analysis_verdict(ANALYSIS)
    assert "5xx_rate inconclusive: canary 0.01235 vs baseline 0.01 (2/10 samples)" in line
    assert analysis_verdict({"alarms": {"a": "OK"}}) == "alarms a=OK"


def test_status_of_an_inconclusive_analysis_waits_and_shows_the_verdict() -> None:
    from immutable_sdk.state.base import RolloutRecord

    record = RolloutRecord.__new__(RolloutRecord)
    object.__setattr__(
        record, "steps", [{"kind": "analysis", "config": {"type": "cloudwatch-metrics"}}]
    )
    journal = [
        JournalEntry("ro-1", 1, 0, "started", 0.0, {}),
        JournalEntry("ro-1", 2, 0, "note", 1.0, ANALYSIS),
    ]
    progress = rollout_progress(record, journal)
    assert progress["waiting"] is True
    assert progress["analysis"]["verdict"] == "inconclusive"


def test_status_counts_both_slots_of_a_paused_blue_green() -> None:
    instances = {"r-old": {"in_service": 4, "other": 0}}  # the live slot's group
    traffic = {
        "live": "blue",
        "slots": {
            "blue": {"exists": True, "release": "r-old", "in_service": 4, "other": 0},
            "green": {"exists": True, "release": "r-new", "in_service": 1, "other": 1},
        },
    }
    count_other_slots(instances, traffic)
    assert instances == {
        "r-old": {"in_service": 4, "other": 0},
        "r-new": {"in_service": 1, "other": 1},
    }


def test_a_first_blue_green_release_does_not_bake() -> None:
    from immutable_sdk.plugin import RolloutChange
    from immutable_sdk.spec.model import FleetSpec
    from immutable_sdk.strategies.bluegreen import BlueGreen

    strategy = BlueGreen({"bake": "10m", "promote_after": "manual"})
    fleet = FleetSpec.__new__(FleetSpec)
    first = RolloutChange(fleet, "r-1", None, 0, 2, target_slot="blue", source_slot=None)
    kinds = [s.kind for s in strategy.plan(first)]
    assert "bake" not in kinds and "pause" not in kinds
    second = RolloutChange(fleet, "r-2", "r-1", 2, 2, target_slot="green", source_slot="blue")
    assert {"bake", "pause"} <= {s.kind for s in strategy.plan(second)}


def test_piped_tables_are_not_cut_and_no_color_means_no_styles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rich.table import Table

    from immutable_sdk.cli import render

    monkeypatch.delenv("COLUMNS", raising=False)
    out = io.StringIO()
    table = Table("rollout", "reason")
    ids = ["ro-17964091aa11bb22cc33", "ro-17964091dd44ee55ff66"]
    for ro in ids:
        table.add_row(ro, "the reason, " * 12)
    render.console(out).print(table)
    assert all(ro in out.getvalue() for ro in ids) and "…" not in out.getvalue()
    monkeypatch.setattr(render, "_color", True)
    render.set_color(False)
    assert render.console(io.StringIO()).color_system is None
    render.set_color(True)
