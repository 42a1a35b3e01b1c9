"""Target-tracking scaling policies of a fleet's Auto Scaling group.

The SDK owns the policies named ``immutable-sdk-NAME`` on a group (NAME from the spec's
``capacity.target_tracking``); a policy of another name (made by hand, by another tool) is
never touched. Policies are read and compared as ``Policy`` values, so a policy that AWS
reports with defaults filled in compares equal to the spec's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..spec.model import TARGET_TRACKING_METRICS, FleetSpec
from .fleet import FleetApi
from .session import aws_errors

OWNED_PREFIX = "immutable-sdk-"


@dataclass(frozen=True)
class Policy:
    metric: str  # the predefined metric type (ASGAverageCPUUtilization)
    target: float
    disable_scale_in: bool = False
    warmup: int | None = None  # seconds

    def describe(self) -> str:
        text = f"{self.metric} at {self.target:g}"
        if self.disable_scale_in:
            text += ", no scale-in"
        return text + (f", warm-up {self.warmup}s" if self.warmup else "")


def wanted(fleet: FleetSpec) -> dict[str, Policy]:
    """The spec's policies by their name on the group."""
    return {
        OWNED_PREFIX + p.name: Policy(
            TARGET_TRACKING_METRICS[p.metric],
            float(p.target),
            p.disable_scale_in,
            None if p.warmup is None else int(p.warmup),
        )
        for p in fleet.capacity.target_tracking
    }


def _policy(item: Mapping[str, Any]) -> Policy | None:
    config = item.get("TargetTrackingConfiguration") or {}
    metric = (config.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType")
    if item.get("PolicyType") != "TargetTrackingScaling" or not metric:
        return None  # not one the SDK writes: reported as foreign by its name
    warmup = item.get("EstimatedInstanceWarmup")
    return Policy(
        str(metric),
        float(config.get("TargetValue", 0.0)),
        bool(config.get("DisableScaleIn", False)),
        int(warmup) if warmup else None,
    )


def owned(api: FleetApi, fleet: str) -> dict[str, Policy | None]:
    """The SDK's policies on the fleet's group (None: one of its names, of another kind)."""
    found: dict[str, Policy | None] = {}
    kwargs: dict[str, Any] = {"AutoScalingGroupName": api.name(fleet)}
    with aws_errors(f"reading the scaling policies of {api.name(fleet)}"):
        while True:
            page = api.asg.describe_policies(**kwargs)
            for item in page.get("ScalingPolicies", []):
                name = str(item.get("PolicyName", ""))
                if name.startswith(OWNED_PREFIX):
                    found[name] = _policy(item)
            if not page.get("NextToken"):
                return found
            kwargs["NextToken"] = page["NextToken"]


def differences(fleet: FleetSpec, live: Mapping[str, Policy | None]) -> list[str]:
    """What apply would change about the fleet's policies, in words (plan reasons)."""
    want = wanted(fleet)
    out = []
    for name, policy in want.items():
        short = name.removeprefix(OWNED_PREFIX)
        if name not in live:
            out.append(f"scaling policy {short} added ({policy.describe()})")
        elif live[name] != policy:
            was = live[name]
            before = was.describe() if was else "another kind"
            out.append(f"scaling policy {short} changed ({before} -> {policy.describe()})")
    out += [f"scaling policy {n.removeprefix(OWNED_PREFIX)} removed" for n in live if n not in want]
    return out


def sync(api: FleetApi, fleet: FleetSpec, live: Mapping[str, Policy | None] | None = None) -> None:
    """Create, update and delete the SDK's policies on the group to match the spec."""
    if live is None:
        live = owned(api, fleet.name)
    want = wanted(fleet)
    group = api.name(fleet.name)
    for name, policy in want.items():
        if live.get(name) == policy and name in live:
            continue
        config: dict[str, Any] = {
            "PredefinedMetricSpecification": {"PredefinedMetricType": policy.metric},
            "TargetValue": policy.target,
            "DisableScaleIn": policy.disable_scale_in,
        }
        extra = {"EstimatedInstanceWarmup": policy.warmup} if policy.warmup else {}
        with aws_errors(f"writing scaling policy {name} of {group}"):
            api.asg.put_scaling_policy(
                AutoScalingGroupName=group,
                PolicyName=name,
                PolicyType="TargetTrackingScaling",
                TargetTrackingConfiguration=config,
                **extra,
            )
    for name in sorted(set(live) - set(want)):
        with aws_errors(f"deleting scaling policy {name} of {group}"):
            api.asg.delete_policy(AutoScalingGroupName=group, PolicyName=name)


def managed_fleets(fleets: Sequence[FleetSpec]) -> list[FleetSpec]:
    """Fleets whose policies the SDK keeps (``desired: managed``)."""
    return [f for f in fleets if f.capacity.managed]
