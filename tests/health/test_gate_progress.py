"""A gate suspended in one process and resumed in another keeps its checks' streaks.

Each side has objects of its own, as two processes would: its own plugin registry (so its own
check objects), its own state store handle (SQLite file, or DynamoDB on the moto server) and
its own GateRunner. The http check probes a real HTTP server on 127.0.0.1. A tick "suspends"
the gate the way a tick would: its heartbeat stops it before the next poll.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from immutable_sdk.core.context import Context
from immutable_sdk.core.rollout.gate import GateRunner
from immutable_sdk.core.rollout.gate_progress import GateProgress
from immutable_sdk.errors import GateFailed
from immutable_sdk.health.elb import TargetHealthCheck
from immutable_sdk.plugin import (
    HEALTH_CHECK_CONTRACT,
    GateTargets,
    HealthReport,
    StatefulHealthCheck,
    Target,
    hookimpl,
)
from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.model import HealthSpec, PluginConfig
from immutable_sdk.state.base import RolloutRecord, StateStore
from immutable_sdk.testing.endpoints import HealthServer

T0 = 1_800_000_000.0


@pytest.fixture
def endpoint(health_server: Callable[..., HealthServer]) -> HealthServer:
    return health_server()


class Suspended(Exception):
    """What a tick's heartbeat raises to leave a gate before its next poll."""


class CountsPolls:
    """A third-party check of contract version 1: state in the object, no snapshot/restore."""

    def __init__(self, needed: int) -> None:
        self.needed = needed
        self.polls = 0

    def check(self, targets: GateTargets, ctx: Any) -> HealthReport:
        self.polls += 1
        if self.polls >= self.needed:
            return HealthReport.healthy(f"{self.polls} polls")
        return HealthReport.pending(f"{self.polls}/{self.needed} polls")


class ThirdParty:
    @hookimpl
    def immutable_sdk_add_health_checks(self, registry: Any) -> None:
        registry.add("counts-polls", lambda config: CountsPolls(int(config.get("needed", 3))))


def runner(
    ctx: Context, checks: list[dict[str, Any]], stop_after: Callable[[], bool]
) -> GateRunner:
    """A GateRunner with a registry of its own (a fresh process's objects)."""
    plugins = load_plugins([ThirdParty()], autoload=False)
    health = HealthSpec(
        timeout=600, interval=10, checks=tuple(PluginConfig(c["type"], c) for c in checks)
    )

    def heartbeat() -> None:
        if stop_after():
            raise Suspended

    return GateRunner(health, plugins.health_checks, ctx, heartbeat)


TARGETS = GateTargets("web", "r1", [Target("i-1", private_ip="127.0.0.1")])


def http(endpoint: HealthServer, **settings: Any) -> dict[str, Any]:
    return {"type": "http", "url": f"http://{{private_ip}}:{endpoint.port}/", **settings}


def start(store: StateStore) -> None:
    store.acquire_lock("web", "host:1:a", 60, T0)
    store.start_rollout(
        RolloutRecord("r-1", "web", "rolling", "rel-a", "rel-b", "gating", started_at=T0)
    )


def suspend_then_resume(
    ctx: Context,
    open_state_store: Callable[[], StateStore],
    checks: list[dict[str, Any]],
    polls_before: Callable[[], bool],
) -> tuple[GateProgress | None, Callable[[], dict[str, HealthReport]]]:
    """Process A gates until ``polls_before`` says stop, saves and lets go of the lock; process
    B (new objects) restores. Returns what B restored and B's gate, to run."""
    first = open_state_store()
    start(first)
    a = runner(ctx, checks, polls_before)
    a_checks = a.checks()
    with pytest.raises(Suspended):
        a.gate(lambda: TARGETS, a_checks)
    GateProgress.save(first, "r-1", 4, a_checks, at=T0 + 20, started_at=T0, polls=2)
    assert first.release_lock("web", "host:1:a")

    second = open_state_store()  # another process: its own store handle, lock, registry and checks
    second.acquire_lock("web", "host:2:b", 60, T0 + 30)
    b = runner(ctx, checks, lambda: False)
    b_checks = b.checks()
    restored = GateProgress.restore(second, "r-1", 4, b_checks)
    return restored, lambda: b.gate(lambda: TARGETS, b_checks)


def test_the_contract_version_and_which_built_in_checks_keep_state() -> None:
    assert HEALTH_CHECK_CONTRACT == 2
    checks = load_plugins(autoload=False).health_checks
    made = {
        "http": checks.get("http").create({"type": "http", "url": "http://{private_ip}/"}),
        "elb": checks.get("elb").create({"type": "elb"}),
        "ec2": checks.get("ec2").create({"type": "ec2"}),
        "cloudwatch-alarm": checks.get("cloudwatch-alarm").create(
            {"type": "cloudwatch-alarm", "alarms": ["a"]}
        ),
    }
    stateful = sorted(n for n, c in made.items() if isinstance(c, StatefulHealthCheck))
    assert stateful == ["elb", "http"]


def test_a_streak_of_successes_survives_the_process(
    ctx: Context, endpoint: HealthServer, open_state_store: Callable[[], StateStore]
) -> None:
    checks = [http(endpoint, successes=4)]
    uninterrupted = runner(ctx, checks, lambda: False).gate(lambda: TARGETS)
    assert len(endpoint.requests) == 4
    endpoint.requests.clear()

    restored, resume = suspend_then_resume(
        ctx, open_state_store, checks, lambda: len(endpoint.requests) >= 2
    )
    assert restored is not None
    assert (restored.restored, restored.started_at, restored.polls) == (("http",), T0, 2)
    reports = resume()
    assert len(endpoint.requests) == 4  # 2 + 2: a gate that started afresh would need 2 + 4
    assert reports["http"].status is uninterrupted["http"].status
    assert reports["http"].details == uninterrupted["http"].details  # "... 200 (4/4)"


def test_a_streak_of_failures_survives_the_process(
    ctx: Context,
    open_state_store: Callable[[], StateStore],
    health_server: Callable[..., HealthServer],
) -> None:
    failing = health_server(status=500)
    checks = [http(failing, failures=3)]
    with pytest.raises(GateFailed) as uninterrupted:
        runner(ctx, checks, lambda: False).gate(lambda: TARGETS)
    assert len(failing.requests) == 3
    failing.requests.clear()
    _, resume = suspend_then_resume(
        ctx, open_state_store, checks, lambda: len(failing.requests) >= 2
    )
    with pytest.raises(GateFailed) as resumed:
        resume()
    assert len(failing.requests) == 3  # the first poll after the resume is the third failure
    assert str(resumed.value) == str(uninterrupted.value)


def test_a_version_1_check_keeps_working_and_starts_afresh(
    ctx: Context, endpoint: HealthServer, open_state_store: Callable[[], StateStore]
) -> None:
    checks = [http(endpoint, successes=2), {"type": "counts-polls", "needed": 3}]
    restored, resume = suspend_then_resume(
        ctx, open_state_store, checks, lambda: len(endpoint.requests) >= 2
    )
    assert restored is not None and restored.restored == ("http",)
    assert set(restored.checks) == {"http"}  # nothing saved for the version-1 check
    reports = resume()
    assert reports["counts-polls"].summary == "3 polls"  # counted afresh in the new process
    assert reports["http"].details["i-1"].endswith("(2/2)")


def test_nothing_saved_restores_nothing(
    ctx: Context, open_state_store: Callable[[], StateStore]
) -> None:
    store = open_state_store()
    start(store)
    checks = runner(ctx, [{"type": "elb"}], lambda: False).checks()
    assert GateProgress.restore(store, "r-1", 0, checks) is None


def test_a_snapshot_of_another_check_class_is_not_restored(
    ctx: Context, endpoint: HealthServer, open_state_store: Callable[[], StateStore]
) -> None:
    store = open_state_store()
    start(store)
    progress = {
        "format": 1,
        "started_at": T0,
        "polls": 1,
        "checks": {"http": {"kind": "someone.Else", "state": {"streaks": {"i-1": [9, 0, True]}}}},
    }
    store.save_gate_progress("r-1", 0, progress, T0)
    checks = runner(ctx, [http(endpoint)], lambda: False).checks()
    restored = GateProgress.restore(store, "r-1", 0, checks)
    assert restored is not None and restored.restored == ()


def test_the_elb_checks_failed_poll_counts_round_trip() -> None:
    before = TargetHealthCheck(unhealthy_threshold=3)
    seen = [("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web/1", "unhealthy", "")]
    targets = GateTargets("web", "r1", [Target("i-1")], ("arn:tg",))
    before._judge("i-1", seen, targets)
    before._judge("i-1", seen, targets)
    after = TargetHealthCheck(unhealthy_threshold=3)
    after.restore(before.snapshot())
    verdict, text = after._judge("i-1", seen, targets)
    assert verdict.value == "unhealthy" and text.endswith("3/3 polls")
    with pytest.raises(ValueError):
        after.restore({"nothing": 1})


def test_a_resumed_gate_times_out_when_the_uninterrupted_one_would(
    ctx: Context, open_state_store: Callable[[], StateStore]
) -> None:
    """The time the gate ran before it was suspended counts against its timeout."""
    checks = [{"type": "counts-polls", "needed": 10_000}]  # never healthy

    def timeout_gate(**settings: Any) -> tuple[str, float]:
        start = ctx.clock.now()
        with pytest.raises(GateFailed) as failed:
            runner(ctx, checks, lambda: False).gate(lambda: TARGETS, **settings)
        return str(failed.value), ctx.clock.now() - start

    uninterrupted, took = timeout_gate()
    assert took == pytest.approx(600)

    store = open_state_store()
    start(store)
    began = ctx.clock.now()
    polls = [0]

    def three_polls() -> bool:
        polls[0] += 1
        return polls[0] > 3

    a = runner(ctx, checks, three_polls)
    a_checks = a.checks()
    with pytest.raises(Suspended):
        a.gate(lambda: TARGETS, a_checks)
    GateProgress.save(store, "r-1", 0, a_checks, at=ctx.clock.now(), started_at=began, polls=3)
    restored = GateProgress.restore(
        open_state_store(), "r-1", 0, runner(ctx, checks, lambda: False).checks()
    )
    assert restored is not None and restored.started_at == began
    resumed, took = timeout_gate(elapsed=ctx.clock.now() - began)
    assert ctx.clock.now() - began == pytest.approx(600)  # 30 s before, 570 s after
    # the same verdict, after as many polls in all (the version-1 check counted afresh)
    assert uninterrupted.endswith("61/10000 polls") and resumed.endswith("58/10000 polls")
    assert (
        resumed.split(";")[0] == uninterrupted.split(";")[0] == ("health gate timed out after 10m")
    )
