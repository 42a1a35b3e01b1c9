"""Specs that cannot work, found from the spec and the strategies' steps alone (no AWS).

* ``min_healthy`` unreachable within ``capacity.max``: keeping that many healthy while the
  strategy replaces instances needs more instances at once than the fleet's maximum (or the
  strategy refuses the change outright, as rolling does for 100% with no surge);
* an ``analysis`` that can never reach ``min_samples``: at the expected request rate, the
  canary's (or, for ``max_ratio``, the baseline's) share of the requests over the window stays
  below ``min_samples``; or a slot has no traffic at all when it is judged (the canary
  strategy's validation refuses that already; this catches other strategies' steps);
* waves and ``depends_on`` that deadlock (a cycle, a fleet in an earlier wave than what it
  depends on, a fleet in no wave) are refused by the spec's validation before this runs
  (``spec/semantic.py``, ``spec/placement.py``): ``rehearse`` reports those errors as
  static findings too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ...errors import ImmutableSdkError
from ...lifecycle import Analyze, ShiftTraffic, Step
from ...plugins import Plugins
from ...spec.model import FleetSpec, Spec
from ...units import parse_duration
from ..rollout.samples import min_healthy
from .schedule import change_for, peak, planned_steps

REQUEST_PRESETS = ("5xx-rate", "p99-latency")  # presets whose samples are the requests


@dataclass(frozen=True)
class Finding:
    unit: str
    what: str  # min_healthy | analysis | strategy | waves | run
    message: str
    static: bool = True  # found without running (False: seen in the rehearsal)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        how = "static check" if self.static else "rehearsal"
        return f"{self.unit}: {self.message} ({how})"


def static_checks(
    spec: Spec, plugins: Plugins, requests_per_second: float | None = None
) -> list[Finding]:
    findings: list[Finding] = []
    for key, name, _region in spec.units():
        fleet = spec.fleets[name]
        findings += unit_checks(key, fleet, plugins, requests_per_second)
    return findings


def unit_checks(
    key: str, fleet: FleetSpec, plugins: Plugins, requests_per_second: float | None
) -> list[Finding]:
    """A unit's findings at the desired capacity a rollout may start from: the spec's, or for
    ``desired: managed`` any value scaling policies may set, of which ``min`` and ``max`` are
    the extremes (a rollout at ``max`` has no room left to surge into)."""
    cap = fleet.capacity
    sizes = [cap.desired, cap.max] if cap.managed and cap.max > cap.desired else [cap.desired]
    for size in sizes:
        at = (
            f" at desired {size} (scaling policies may set it up to max)"
            if size > cap.desired
            else ""
        )
        change = change_for(fleet, "replace", size, desired=size)
        try:
            steps = planned_steps(plugins, fleet, change)
        except ImmutableSdkError as exc:
            return [Finding(key, "strategy", f"the strategy cannot replace it{at}: {exc}")]
        found = capacity_check(key, fleet, steps, change.current_instances, size)
        if found:
            return found
    return analysis_checks(key, steps, change.target_slot, requests_per_second)


def capacity_check(
    key: str, fleet: FleetSpec, steps: list[Step], current: int, desired: int | None = None
) -> list[Finding]:
    """``desired``: the capacity the rollout aims for (by default the spec's)."""
    if fleet.traffic:  # each slot is a group of its own, sized by the strategy
        return []
    cap = fleet.capacity
    desired = cap.desired if desired is None else desired
    keep = min_healthy(fleet, desired)
    most = peak(steps, current)
    if most <= cap.max:
        return []
    if desired == cap.desired:
        where, fix = "", f"raise max to {most}, or lower min_healthy or max_surge"
    else:  # a higher max lets the scaling policies raise desired with it
        where = " (scaling policies may set it up to max)"
        fix = "lower min_healthy or max_surge"
    return [
        Finding(
            key,
            "min_healthy",
            f"min_healthy {fleet.strategy.config.get('min_healthy', '100%')} ({keep} of "
            f"desired {desired}{where}) is unreachable within capacity.max {cap.max}: "
            f"replacing instances while keeping it needs {most} at once; {fix}",
        )
    ]


def analysis_checks(
    key: str, steps: list[Step], canary_slot: str | None, rate: float | None
) -> list[Finding]:
    findings = []
    weights: Mapping[str, int] = {}
    for index, step in enumerate(steps):
        if isinstance(step, ShiftTraffic):
            weights = step.weights
            continue
        if not isinstance(step, Analyze) or step.config.get("type") != "cloudwatch-metrics":
            continue
        config = dict(step.config)
        canary = int(weights.get(canary_slot or "", 0))
        window = parse_duration(config["window"])
        default = int(config.get("min_samples", 1))
        where = f"step {index + 1} (analysis)"
        for metric in config.get("metrics") or ():
            need = int(metric.get("min_samples", default))
            if need <= 0:
                continue
            name = metric.get("name")
            shares = {"canary": canary}
            if metric.get("max_ratio") is not None:
                shares["baseline"] = 100 - canary
            for slot, share in shares.items():
                if share <= 0:
                    findings.append(
                        Finding(
                            key,
                            "analysis",
                            f"{where}: metric {name!r} can never reach min_samples {need}: "
                            f"the {slot} has {share}% of the traffic when it is judged",
                        )
                    )
                elif rate is not None and metric.get("preset") in REQUEST_PRESETS:
                    expected = rate * share / 100 * window
                    if expected < need:
                        findings.append(
                            Finding(
                                key,
                                "analysis",
                                f"{where}: metric {name!r} can never reach min_samples "
                                f"{need}: at {rate:g} requests/s the {slot}'s {share}% gives "
                                f"{expected:g} requests in the {window:g}s window",
                            )
                        )
    return findings
