"""The ``analysis`` step of a slot rollout: metrics compared between slots, or alarms watched.

``cloudwatch-metrics`` (see ``analysis``): for ``window`` seconds (plus what is left of the
record's TTL after a shift) the fleet's health checks keep watching the new slot, as in a bake;
every ``interval`` and at the end of the window the metrics of the new (canary) slot and of the
previous (baseline) slot are read in one call and judged:

* fail: the step fails at once and the rollout rolls back;
* pass (at the end of the window): the rollout goes on;
* inconclusive (at the end): the rollout pauses until ``immutable-sdk promote`` (go on) or
  ``immutable-sdk abort`` (roll back), or fails with ``inconclusive: fail``.

Every judgement is emitted as an ``analysis.result`` event; the last one is journaled as the
step's result (or as a ``note`` before the step fails), with the window and, per metric, the
canary's and the baseline's values and sample counts.

``cloudwatch-alarm``: the named alarms are read every health check interval for ``duration``
(plus the TTL left); one in ALARM, or missing, fails the step.

``immutable-sdk promote`` ends either early (a promoted analysis counts as passed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import GateFailed, UsageError
from ...units import parse_duration
from ..analysis.judge import (
    MetricsAnalysis,
    SlotRef,
    alarm_states,
    arn_suffix,
)
from ..rollout.runner import SIGNAL_POLL

if TYPE_CHECKING:
    from .runner import SlotRunner


def analyze(runner: SlotRunner, config: dict[str, Any]) -> dict[str, Any]:
    kind = config.get("type")
    if kind == "cloudwatch-alarm":
        return runner.interruptible(lambda: _watch_alarms(runner, config))
    if kind != "cloudwatch-metrics":
        raise UsageError(f"unknown analysis type {kind!r}")
    analysis = MetricsAnalysis(config)
    judged: dict[str, Any] = {}
    out = runner.interruptible(lambda: _judge(runner, analysis, judged))
    return {**judged, **out}


def _judge(runner: SlotRunner, analysis: MetricsAnalysis, judged: dict[str, Any]) -> dict[str, Any]:
    clock = runner.ctx.clock
    slots = runner.s
    baseline = slots.source_slot
    if baseline is None:
        raise UsageError("an analysis needs a previous slot to compare with")
    total = analysis.window + runner.ttl_left()
    start = clock.monotonic()
    targets = runner.slot_targets(slots.target_slot)
    while True:
        left = total - (clock.monotonic() - start)
        if left > 0:
            runner.gates().bake(min(analysis.interval, left), targets)
            left = total - (clock.monotonic() - start)
        judgement = analysis.judge(
            runner.ctx.client("cloudwatch"),
            slot_ref(runner, slots.target_slot),
            slot_ref(runner, baseline),
            clock.now(),
        )
        judged.clear()
        judged.update(judgement.to_dict())
        runner.ctx.emit("analysis.result", **judgement.to_dict())
        if judgement.verdict == "fail":
            _note(runner, judged)
            raise GateFailed(f"analysis failed: {judgement.summary}", checks=("analysis",))
        if left <= 0:
            break
    if judgement.verdict == "pass":
        return judged
    _note(runner, judged)
    if analysis.on_inconclusive == "fail":
        raise GateFailed(f"analysis inconclusive: {judgement.summary}", checks=("analysis",))
    runner.ctx.emit("analysis.inconclusive", summary=judgement.summary)
    runner.ctx.emit("rollout.paused", manual=True, seconds=0)
    while True:  # an operator decides: promote goes on, abort rolls back
        runner.wait(SIGNAL_POLL)


def _watch_alarms(runner: SlotRunner, config: Mapping[str, Any]) -> dict[str, Any]:
    clock = runner.ctx.clock
    names = [str(a) for a in config["alarms"]]
    duration = parse_duration(config["duration"]) + runner.ttl_left()
    start = clock.monotonic()
    cloudwatch = runner.ctx.client("cloudwatch")
    while True:
        states = alarm_states(cloudwatch, names)
        runner.ctx.emit("analysis.result", alarms=states)
        firing = [n for n, st in states.items() if st in ("ALARM", "MISSING")]
        if firing:
            what = ", ".join(f"{n} {states[n].lower()}" for n in firing)
            raise GateFailed(f"analysis failed: alarm {what}", details=states, checks=("analysis",))
        left = duration - (clock.monotonic() - start)
        if left <= 0:
            return {"alarms": states}
        runner.wait(min(runner.fleet.health.interval, left))


def _note(runner: SlotRunner, data: Mapping[str, Any]) -> None:
    """Journal what the step judged on before it fails or pauses."""
    runner.state.append_journal(
        runner.info.id, runner.index - 1, "note", runner.ctx.clock.now(), dict(data)
    )


def slot_ref(runner: SlotRunner, slot: str) -> SlotRef:
    slots = runner.s
    return SlotRef(
        slot=slot,
        target_group=arn_suffix(slots.target_groups[slot], "targetgroup/"),
        load_balancer=arn_suffix(slots.load_balancers.get(slot, ""), "loadbalancer/"),
        auto_scaling_group=slots.groups.group_name(runner.fleet.name, slot),
    )
