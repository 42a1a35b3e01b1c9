"""``immutable-sdk rehearse``: the planned rollout, run on the embedded emulator in seconds.

A rehearsal starts an emulator of its own on 127.0.0.1 (never a served one, never AWS) from an
empty account (moto keeps its accounts per process: an emulator this process runs for another
purpose is emptied too), with a scratch state store, and a ``VirtualClock``: every bake,
pause, TTL and keep-previous wait costs no wall time. It runs two applies through the
ordinary engine:

1. *setup*: each fleet is created at a stand-in previous release (the spec's fleets with
   another instance type), so that
2. *the rollout*: the spec's release replaces it through the fleet's strategy, as the next
   ``apply`` on AWS would: batches, canary steps, analyses, keep-previous, waves, regions.

Instances take ``boot + warmup`` virtual seconds to pass a gate (``warmup.WarmUp``; health
checks poll at least ``Options.poll`` apart, as each poll costs real time); canary
analyses judge simulated traffic (``traffic.publish``); an operator's ``promote`` ends each
manual pause at once (its time is a person's, not the spec's), except after an inconclusive
analysis, which the rehearsal aborts: a rollout that needs a person's judgement to pass is a
finding. Findings: the static checks (``checks``), a setup or rollout that did not promote, an
inconclusive analysis, healthy capacity under ``min_healthy``, and a rollout that did not end
within the wall-clock ``timeout`` (a wait nobody ends, a deadlock).
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ...aws.session import AwsSession
from ...clock import VirtualClock
from ...lifecycle import Event
from ...plugin import PluginConfig
from ...plugins import Plugins
from ...results import ApplyResult
from ...spec.model import Spec
from ...state.base import StateStore
from ...state.sqlite import SqliteStateStore
from .checks import Finding, static_checks
from .traffic import Load, publish
from .warmup import CHECK, WarmUp

OK_OUTCOMES = ("promoted", "created", "noop", "scaled")


@dataclass(frozen=True)
class Options:
    boot: float = 60.0  # seconds from launch until an instance is up
    warmup: float = 30.0  # seconds more until it passes its health checks
    load: Load = field(default_factory=Load)
    timeout: float = 300.0  # wall-clock seconds a rehearsal may take
    # Health checks poll at least this far apart: each poll is a few calls the emulator answers
    # in real time, and an hour's bake at a 10s interval is hundreds of them. Gates may end up
    # to this much later than at the fleet's own interval. 0: the fleets' own intervals.
    poll: float = 30.0


@dataclass
class UnitRun:
    key: str
    outcome: str
    error: str | None
    rollout: str | None
    duration: float  # virtual seconds of its rollout (0: none)


@dataclass
class Rehearsal:
    project: str
    findings: list[Finding]
    units: list[UnitRun] = field(default_factory=list)
    setup_duration: float = 0.0  # virtual seconds
    duration: float = 0.0  # virtual seconds of the rehearsed apply
    wall: float = 0.0  # wall-clock seconds of the whole rehearsal
    state_path: Path | None = None  # the scratch journal (gone once ``close`` ran)
    _scratch: tempfile.TemporaryDirectory[str] | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    def state(self) -> StateStore:
        assert self.state_path is not None
        return SqliteStateStore(self.state_path, self.project)

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
            "units": [vars(u) for u in self.units],
            "setup_duration": self.setup_duration,
            "duration": self.duration,
            "wall": self.wall,
        }


def previous(spec: Spec) -> Spec:
    """The spec with every fleet on a stand-in previous release (another instance type), and
    no wave bakes: the setup only has to leave every fleet running."""
    fleets = {
        name: replace(f, instance_type="t3.nano" if f.instance_type != "t3.nano" else "t3.micro")
        for name, f in spec.fleets.items()
    }
    waves = tuple(replace(w, bake=0.0) for w in spec.waves)
    return replace(spec, fleets=fleets, waves=waves)


def warmed(spec: Spec) -> Spec:
    """The spec with the simulated boot and warm-up check first in every fleet's checks."""
    check = PluginConfig(CHECK, {"type": CHECK})
    fleets = {
        name: replace(f, health=replace(f.health, checks=(check, *f.health.checks)))
        for name, f in spec.fleets.items()
    }
    return replace(spec, fleets=fleets)


def polled(spec: Spec, poll: float) -> Spec:
    """The spec with health checks polled at least ``poll`` seconds apart. On the emulator
    under a virtual clock each poll is a few calls answered in real time, and an hour's bake
    at a 10s interval is hundreds of them: a coarser poll keeps a rehearsal in seconds, and
    gates end at most ``poll`` later than they would."""
    fleets = {
        name: replace(f, health=replace(f.health, interval=max(f.health.interval, poll)))
        for name, f in spec.fleets.items()
    }
    return replace(spec, fleets=fleets)


class Stagehand:
    """The rehearsal's event sink: plays the operator and the traffic, keeps the events."""

    def __init__(self, spec: Spec, session: AwsSession, clock: VirtualClock, load: Load) -> None:
        self.spec, self.session, self.clock, self.load = spec, session, clock, load
        self.state: StateStore | None = None
        self.events: list[Event] = []
        self.weights: dict[str, dict[str, int]] = {}  # rollout -> last weights shifted to
        self.inconclusive: dict[str, str] = {}  # rollout -> summary
        self.findings: list[Finding] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)
        rollout = event.rollout
        if rollout is None or self.state is None:
            return
        data = event.data
        if event.kind == "step.started":
            step = dict(data.get("step") or {})
            if step.get("kind") == "shift":
                self.weights[rollout] = {str(k): int(v) for k, v in step["weights"].items()}
            elif step.get("kind") == "analysis":
                self.traffic(event, dict(step.get("config") or {}))
        elif event.kind == "analysis.inconclusive":
            self.inconclusive[rollout] = str(data.get("summary", ""))
            self.findings.append(
                Finding(
                    event.fleet or "?",
                    "analysis",
                    f"an analysis was inconclusive ({data.get('summary', '')}): the rollout "
                    "would wait for an operator; the rehearsal aborted it",
                    static=False,
                )
            )
        elif event.kind == "rollout.paused" and data.get("manual"):
            signal = "abort" if rollout in self.inconclusive else "promote"
            self.state.send_signal(rollout, signal, self.clock.now())

    def traffic(self, event: Event, config: Mapping[str, Any]) -> None:
        if config.get("type") != "cloudwatch-metrics" or self.state is None:
            return
        record = self.state.get_rollout(event.rollout or "")
        if record is None:
            return
        name, _, region = record.fleet.partition("@")
        fleet = self.spec.fleets[name]
        traffic = dict(fleet.traffic or {})
        slots = {s: str(v["target_group"]) for s, v in dict(traffic["slots"]).items()}
        session = self.session.in_region(region or self.spec.region)
        ttl = float(dict(traffic.get("route53") or {}).get("ttl", 0) or 0)
        publish(
            session.client("cloudwatch"),
            session.client("elbv2"),
            slots,
            self.weights.get(record.id, {}),
            str(record.data.get("target_slot", "")),
            config,
            self.clock.now(),
            self.load,
            ttl,
        )


def rehearse(spec: Spec, plugins: Plugins, warm: WarmUp, options: Options) -> Rehearsal:
    """Rehearse ``spec`` (loaded with ``plugins``, which hold ``warm``)."""
    from ...sandbox import Sandbox
    from ..engine import Engine

    started = time.monotonic()
    findings = static_checks(spec, plugins, options.load.requests_per_second)
    scratch = tempfile.TemporaryDirectory(prefix="immutable-sdk-rehearsal-")
    state_path = Path(scratch.name) / "state.db"
    rehearsal = Rehearsal(spec.name, findings, state_path=state_path, _scratch=scratch)
    clock = VirtualClock()
    with Sandbox() as box:
        box.reset()  # moto's accounts are the process's: start from an empty one
        session = AwsSession(spec.region, endpoint_url=box.url, sandboxed=True)
        box.seed(spec)
        stage = Stagehand(spec, session, clock, options.load)

        def run(the_spec: Spec) -> ApplyResult | None:
            state = SqliteStateStore(state_path, spec.name)
            stage.state = state
            engine = Engine(
                the_spec, plugins=plugins, clock=clock, session=session, state=state, sink=stage
            )
            out: list[ApplyResult] = []
            failure: list[BaseException] = []

            def work() -> None:
                try:
                    out.append(engine.apply())
                except BaseException as exc:  # re-raised in the caller's thread
                    failure.append(exc)

            worker = threading.Thread(target=work, name="rehearsal", daemon=True)
            worker.start()
            left = options.timeout - (time.monotonic() - started)
            worker.join(max(left, 0.0))
            if worker.is_alive():
                engine.stop.request()  # a daemon thread: it ends with the process
                rehearsal.findings.append(
                    Finding(
                        spec.name,
                        "run",
                        f"the rehearsal did not end within {options.timeout:g}s of wall time "
                        f"({clock.monotonic():g}s of virtual time): a wait nobody ends, or "
                        "fleets waiting for each other",
                        static=False,
                    )
                )
                return None
            engine.close()
            if failure:
                raise failure[0]
            return out[0]

        setup = run(previous(spec))
        if setup is not None:
            rehearsal.setup_duration = setup.duration
            bad = [r for r in setup.fleets if r.outcome not in OK_OUTCOMES]
            for r in bad:
                rehearsal.findings.append(
                    Finding(r.fleet, "run", f"setup (create): {r.outcome}: {r.error}", False)
                )
            if not bad:
                result = run(polled(warmed(spec), options.poll))
                if result is not None:
                    rehearsal.duration = result.duration
                    rehearsal.units = [unit_run(r) for r in result.fleets]
                    for r in result.fleets:
                        if r.outcome not in OK_OUTCOMES:
                            rehearsal.findings.append(
                                Finding(r.fleet, "run", f"{r.outcome}: {r.error}", False)
                            )
        rehearsal.findings += stage.findings
    rehearsal.findings += capacity_findings(rehearsal)
    rehearsal.wall = time.monotonic() - started
    return rehearsal


def unit_run(result: Any) -> UnitRun:
    return UnitRun(result.fleet, result.outcome, result.error, result.rollout, 0.0)


def capacity_findings(rehearsal: Rehearsal) -> list[Finding]:
    """Healthy capacity that fell under min_healthy during a rehearsed rollout."""
    from ...report import load_report

    found = []
    state = rehearsal.state()
    try:
        for unit in rehearsal.units:
            if not unit.rollout:
                continue
            report = load_report(state, unit.key, unit.rollout)
            unit.duration = report.duration or 0.0
            floor = report.min_healthy
            low = min((p.healthy for p in report.capacity), default=None)
            if floor is not None and low is not None and low < floor:
                found.append(
                    Finding(
                        unit.key,
                        "min_healthy",
                        f"healthy capacity fell to {low}, under min_healthy {floor}",
                        static=False,
                    )
                )
    finally:
        state.close()
    return found
