"""A gate in a reconcile tick polls only within the tick's budget, then suspends; the next
tick's gate goes on with the journaled start, so its timeout counts from the first poll."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from immutable_sdk.clock import VirtualClock
from immutable_sdk.core.rollout.gate import GateRunner
from immutable_sdk.core.tick.horizon import Horizon, Suspended
from immutable_sdk.errors import GateFailed
from immutable_sdk.plugin import GateTargets, HealthReport, Registry, Target
from immutable_sdk.spec.model import HealthSpec, PluginConfig

TARGETS = GateTargets("web", "r1", [Target("i-1")])


@dataclass
class Ctx:
    clock: VirtualClock = field(default_factory=VirtualClock)

    def emit(self, kind: str, **data: Any) -> None:
        return None


class Pending:
    polls = 0

    def check(self, targets: GateTargets, ctx: Any) -> HealthReport:
        Pending.polls += 1
        return HealthReport.pending("starting")


def gate(ctx: Ctx, horizon: Horizon, timeout: float) -> GateRunner:
    registry: Registry[Any] = Registry("health check")
    registry.add("pending", lambda config: Pending())
    health = HealthSpec(timeout=timeout, interval=10, checks=(PluginConfig("pending"),))
    return GateRunner(health, registry, ctx, horizon=horizon)


def test_a_gate_suspends_at_the_budget_and_the_next_tick_keeps_its_timeout() -> None:
    ctx, horizon = Ctx(), Horizon()
    began = ctx.clock.now()
    Pending.polls = 0
    with horizon.tick(ctx.clock, 25.0), pytest.raises(Suspended) as stopped:
        gate(ctx, horizon, timeout=60).gate(lambda: TARGETS)
    assert stopped.value.waiting_for == "gate"
    assert stopped.value.detail["gate_since"] == pytest.approx(began)
    assert Pending.polls == 3  # at 0, 10 and 20 s: the wait to 30 s would end past 25 s
    assert stopped.value.next_at == pytest.approx(began + 30)

    ctx.clock.advance(stopped.value.next_at - ctx.clock.now())  # the next tick, later
    elapsed = ctx.clock.now() - stopped.value.detail["gate_since"]
    with horizon.tick(ctx.clock, 25.0), pytest.raises(Suspended):
        gate(ctx, horizon, timeout=60).gate(lambda: TARGETS, elapsed=elapsed)
    ctx.clock.advance(10)
    elapsed = ctx.clock.now() - began
    with horizon.tick(ctx.clock, 25.0), pytest.raises(GateFailed, match="timed out after 1m"):
        gate(ctx, horizon, timeout=60).gate(lambda: TARGETS, elapsed=elapsed)


def test_apply_waits_the_gate_out_in_process() -> None:
    ctx = Ctx()
    with pytest.raises(GateFailed, match="timed out"):
        gate(ctx, Horizon(), timeout=60).gate(lambda: TARGETS)
    assert ctx.clock.monotonic() == pytest.approx(60)
