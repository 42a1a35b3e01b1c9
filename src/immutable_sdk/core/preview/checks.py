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
        change = change_for(fleet, "replace", fleet.capacity.desired)
        try:
            steps = planned_steps(plugins, fleet, change)
        except ImmutableSdkError as exc:
            findings.append(Finding(key, "strategy", f"the strategy cannot replace it: {exc}"))
            continue
        findings += capacity_check(key, fleet, steps, change.current_instances)
        findings += analysis_checks(key, steps, change.target_slot, requests_per_second)
    return findings


def capacity_check(key: str, fleet: FleetSpec, steps: list[Step], current: int) -> list[Finding]:
    if fleet.traffic:  # each slot is a group of its own, sized by the strategy
        return []
    keep = min_healthy(fleet)
    most = peak(steps, current)
    cap = fleet.capacity
    if most <= cap.max:
        return []
    return [
        Finding(
            key,
            "min_healthy",
            f"min_healthy {fleet.strategy.config.get('min_healthy', '100%')} ({keep} of "
            f"desired {cap.desired}) is unreachable within capacity.max {cap.max}: replacing "
            f"instances while keeping it needs {most} at once; raise max to {most}, or lower "
            "min_healthy or max_surge",
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
