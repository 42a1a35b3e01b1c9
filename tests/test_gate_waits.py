"""A gate waiting on checks that block: the heartbeat keeps beating, and a check that never
returns is given up on a bounded time after the gate's timeout (real time, short bounds)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from immutable_sdk.clock import RealClock
from immutable_sdk.core.rollout import gate as gate_module
from immutable_sdk.core.rollout.gate import GateRunner
from immutable_sdk.errors import GateFailed, Interrupted, PluginError
from immutable_sdk.plugin import GateTargets, HealthReport, Registry, Target
from immutable_sdk.spec.model import HealthSpec, PluginConfig


@dataclass
class Ctx:
    clock: RealClock = field(default_factory=RealClock)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def emit(self, kind: str, **data: Any) -> None:
        self.events.append((kind, data))


class Blocking:
    """A check whose every poll blocks ``seconds`` (or until ``release`` is set)."""

    def __init__(self, seconds: float, release: threading.Event | None = None) -> None:
        self.seconds = seconds
        self.release = release or threading.Event()
        self.polls = 0

    def check(self, targets: GateTargets, ctx: Any) -> HealthReport:
        self.polls += 1
        self.release.wait(self.seconds)
        return HealthReport.healthy("fine")


def runner(check: Any, timeout: float, beats: list[float]) -> GateRunner:
    registry: Registry[Any] = Registry("health check")
    registry.add("blocking", lambda config: check)
    health = HealthSpec(timeout=timeout, interval=0.1, checks=(PluginConfig("blocking"),))
    return GateRunner(health, registry, Ctx(), lambda: beats.append(time.monotonic()))


TARGETS = GateTargets("web", "r1", [Target("i-1")])


def test_the_heartbeat_beats_while_a_poll_blocks() -> None:
    beats: list[float] = []
    start = time.monotonic()
    reports = runner(Blocking(2.5), timeout=10, beats=beats).gate(lambda: TARGETS)
    assert reports["blocking"].summary == "fine"
    during = [b for b in beats if b - start > 0.5]
    assert len(during) >= 2, beats  # about one a second while the check blocked


def test_a_check_that_never_returns_fails_the_gate_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gate_module, "POLL_GRACE", 0.5)
    hung = Blocking(3600)
    start = time.monotonic()
    with pytest.raises(GateFailed, match="blocking did not answer within"):
        runner(hung, timeout=0.5, beats=[]).gate(lambda: TARGETS)
    assert time.monotonic() - start < 0.5 + 0.5 + 1.2
    hung.release.set()  # let the abandoned daemon thread end


def test_a_stop_request_ends_the_wait_at_the_next_beat() -> None:
    hung = Blocking(3600)

    def beat() -> None:
        if hung.polls:
            raise Interrupted("stop requested")

    registry: Registry[Any] = Registry("health check")
    registry.add("blocking", lambda config: hung)
    health = HealthSpec(timeout=60, interval=1, checks=(PluginConfig("blocking"),))
    start = time.monotonic()
    with pytest.raises(Interrupted):
        GateRunner(health, registry, Ctx(), beat).gate(lambda: TARGETS)
    assert time.monotonic() - start < 2.5
    hung.release.set()


def test_what_a_check_raises_reaches_the_gate_as_before() -> None:
    class Broken:
        def check(self, targets: GateTargets, ctx: Any) -> HealthReport:
            raise RuntimeError("boom")

    with pytest.raises(PluginError, match="health check raised RuntimeError"):
        runner(Broken(), timeout=5, beats=[]).gate(lambda: TARGETS)
