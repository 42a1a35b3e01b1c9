"""The safety monitor: samples the account and the state store, and checks the invariants.

``sample`` runs at every wait of every apply (and after every rule): invariants 1, 2 and the
epoch half of 3. ``settled`` runs after every rule: invariant 3's writes (noted by the watched
stores), 4 when no rollout is in flight, 5 when one is unfinished, 6 (quarantine) always.
It reads AWS through the world's own session, so the engine's API call counts stay its own.
Violations are collected, never raised inside an engine's thread (the engine would take an
AssertionError for a failed step); ``raise_violations`` raises them after the rule.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from immutable_sdk.plugin import TAG_PROJECT, TAG_RELEASE

from .spec import DESIRED, FLEET, PROJECT, RECORD, SLOTS, ZONE, min_healthy
from .world import World

INVARIANTS = {
    "1": "in-service healthy capacity never below min_healthy of desired",
    "2": "no DNS weight on a slot without healthy targets, never all weights zero",
    "3": "one writer per fleet journal at a time, epochs only grow",
    "4": "a finished rollout leaves one release, at spec capacity, nothing suspended or orphaned",
    "5": "an unfinished rollout is visible in status and the next apply converges it",
    "6": "a failed release is not deployed again by automation (quarantine)",
}


@dataclass
class Snapshot:
    """The fleet as AWS shows it at one moment."""

    groups: dict[str, dict[str, Any]]  # name -> the group as described
    healthy: dict[str, set[str]]  # group name -> in-service members registered healthy
    weights: dict[str, int]  # slot -> weight of its record (slotted fleets)


@dataclass
class Monitor:
    world: World
    checks: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    _epochs: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.world.sampler = self.sample

    @property
    def kind(self) -> str:
        return self.world.kind

    def client(self, service: str) -> Any:
        return self.world.aws.client(service)

    # --- what AWS shows ----------------------------------------------------------------

    def group_names(self) -> list[str]:
        base = f"{PROJECT}-{FLEET}"
        return [base] if self.kind == "rolling" else [f"{base}-{s}" for s in SLOTS]

    def target_group_names(self) -> list[str]:
        return [f"{PROJECT}-web"] if self.kind == "rolling" else [f"{PROJECT}-{s}" for s in SLOTS]

    def snapshot(self) -> Snapshot:
        asg, elbv2 = self.client("autoscaling"), self.client("elbv2")
        found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=self.group_names())
        groups = {g["AutoScalingGroupName"]: g for g in found["AutoScalingGroups"]}
        healthy: dict[str, set[str]] = {}
        for name, g in groups.items():
            members = {
                i["InstanceId"] for i in g["Instances"] if i["LifecycleState"] == "InService"
            }
            registered: set[str] | None = None
            for arn in g.get("TargetGroupARNs", []):
                ids = {
                    d["Target"]["Id"]
                    for d in elbv2.describe_target_health(TargetGroupArn=arn)[
                        "TargetHealthDescriptions"
                    ]
                    if d["TargetHealth"]["State"] == "healthy"
                }
                registered = ids if registered is None else registered & ids
            healthy[name] = members & (registered if registered is not None else members)
        return Snapshot(groups, healthy, self.weights())

    def weights(self) -> dict[str, int]:
        if self.kind == "rolling":
            return {}
        r53 = self.client("route53")
        zones = r53.list_hosted_zones_by_name(DNSName=ZONE)["HostedZones"]
        zone = next((z for z in zones if z["Name"] == ZONE), None)
        if zone is None:
            return {}
        records = r53.list_resource_record_sets(HostedZoneId=zone["Id"].split("/")[-1])
        return {
            r["SetIdentifier"]: int(r["Weight"])
            for r in records["ResourceRecordSets"]
            if r["Name"] == RECORD and "SetIdentifier" in r
        }

    def slot_of(self, group: str) -> str:
        return group.rsplit("-", 1)[-1]

    # --- sampled at every wait -----------------------------------------------------------

    def sample(self, where: str) -> None:
        snap = self.snapshot()
        with self.world.store() as state:
            established = any(r.outcome == "promoted" for r in state.rollouts(FLEET))
            lock = state.get_lock(FLEET)
        if established:
            self._capacity(snap, where)
        self._weights(snap, where)
        self._epoch(lock, where)

    def _capacity(self, snap: Snapshot, where: str) -> None:
        self.checks["1"] += 1
        need = min_healthy(self.kind, self.world.strategy)
        if self.kind == "rolling":
            have = sum(len(h) for h in snap.healthy.values())
        else:
            serving = {s for s, w in snap.weights.items() if w > 0}
            have = sum(len(h) for g, h in snap.healthy.items() if self.slot_of(g) in serving)
        if have < need:
            self._violation("1", where, f"{have} healthy in-service instances, need {need}")

    def _weights(self, snap: Snapshot, where: str) -> None:
        if not snap.weights:
            return
        self.checks["2"] += 1
        if all(w == 0 for w in snap.weights.values()):
            self._violation("2", where, f"every weight is zero: {snap.weights}")
        for slot, weight in sorted(snap.weights.items()):
            group = f"{PROJECT}-{FLEET}-{slot}"
            if weight > 0 and not snap.healthy.get(group):
                self._violation(
                    "2", where, f"weight {weight} on slot {slot!r} without healthy targets"
                )

    def _epoch(self, lock: Any, where: str) -> None:
        epoch = getattr(lock, "epoch", None)  # the fencing token, once the stores have one
        if epoch is None:
            return
        self.checks["3"] += 1
        seen = self._epochs.get(FLEET)
        if seen is not None and epoch < seen:
            self._violation("3", where, f"the lock's epoch went back from {seen} to {epoch}")
        self._epochs[FLEET] = max(epoch, seen or epoch)

    def _violation(self, number: str, where: str, text: str) -> None:
        message = f"invariant {number} ({INVARIANTS[number]}), {where}: {text}"
        if message not in self.violations:
            self.violations.append(message)

    # --- after every rule ----------------------------------------------------------------

    def settled(self, where: str) -> None:
        self.sample(where)
        self.checks["3"] += 1
        for text in self.world.write_violations:
            if text not in self.violations:
                self.violations.append(f"{text} ({where})")
        self.world.write_violations.clear()
        with self.world.store() as state:
            unfinished = state.unfinished_rollout(FLEET)
            lock = state.get_lock(FLEET)
            rollouts = state.rollouts(FLEET)
            quarantine = {h.release: h.at for h in state.holds(FLEET) if h.kind == "quarantine"}
        if unfinished is not None:
            self.visible_in_status(unfinished.id, where)
        elif lock is None and rollouts:
            self.finished(rollouts[0], where)
        self.quarantine(quarantine, rollouts, where)

    def visible_in_status(self, rollout: str, where: str) -> None:
        self.checks["5"] += 1
        engine = self.world.engine(role="status")
        with engine:
            entry = next(e for e in engine.status() if e["fleet"] == FLEET)
        shown = (entry.get("rollout_in_progress") or {}).get("id")
        if shown != rollout:
            self._violation("5", where, f"status shows {shown!r}, not unfinished rollout {rollout}")

    def converged(self, where: str) -> None:
        """After an apply that should have finished whatever was unfinished."""
        self.checks["5"] += 1
        with self.world.store() as state:
            unfinished = state.unfinished_rollout(FLEET)
            lock = state.get_lock(FLEET)
        if unfinished is not None or lock is not None:
            left = f"rollout {unfinished.id}" if unfinished else f"lock of {lock.owner}"  # type: ignore[union-attr]
            self._violation("5", where, f"the next apply left {left} behind")

    def finished(self, last: Any, where: str) -> None:
        """Invariant 4 for the fleet's newest rollout, which has an outcome."""
        self.checks["4"] += 1
        snap = self.snapshot()
        said = f"rollout {last.id} ended {last.outcome}"
        members = {
            i["InstanceId"]: g
            for g in snap.groups.values()
            for i in g["Instances"]
            if i["LifecycleState"] in ("InService", "Pending", "Pending:Wait", "Pending:Proceed")
        }
        releases = self._releases(list(members))
        serving = set(releases.values())
        if last.outcome == "promoted":
            expected: str | None = last.to_release
        elif last.outcome in ("rolled_back", "aborted"):
            expected = last.from_release
        else:
            expected = next(iter(serving)) if len(serving) == 1 else None
        if expected is None and last.outcome in ("rolled_back", "aborted"):
            if snap.groups or members:
                self._violation(
                    "4", where, f"{said} from nothing, yet groups remain: {sorted(snap.groups)}"
                )
        elif serving != {expected}:
            self._violation(
                "4",
                where,
                f"{said}, but instances run releases {sorted(map(str, serving))}"
                f" (expected {expected})",
            )
        for name, g in sorted(snap.groups.items()):
            sizes = (g["MinSize"], g["DesiredCapacity"], g["MaxSize"])
            if sizes != (DESIRED, DESIRED, DESIRED * 2):
                self._violation("4", where, f"{said}, but group {name} has min/desired/max {sizes}")
            if g.get("SuspendedProcesses"):
                procs = sorted(p["ProcessName"] for p in g["SuspendedProcesses"])
                self._violation("4", where, f"{said}, but group {name} has suspended {procs}")
        if self.kind != "rolling" and len(snap.groups) > 1:
            self._violation("4", where, f"{said}, but both slots have groups")
        self._orphans(snap, set(members), self._kept_releases(serving), said, where)

    def _releases(self, ids: list[str]) -> dict[str, str | None]:
        if not ids:
            return {}
        out = self.client("ec2").describe_instances(InstanceIds=ids)
        return {
            i["InstanceId"]: _tag(i, TAG_RELEASE)
            for r in out["Reservations"]
            for i in r["Instances"]
        }

    def _kept_releases(self, serving: set[str | None]) -> set[str | None]:
        """Releases whose launch template versions may stay: serving or once promoted."""
        with self.world.store() as state:
            promoted = {r.to_release for r in state.rollouts(FLEET) if r.outcome == "promoted"}
        return promoted | serving

    def _orphans(
        self, snap: Snapshot, members: set[str], kept: set[str | None], said: str, where: str
    ) -> None:
        ec2, elbv2 = self.client("ec2"), self.client("elbv2")
        out = ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{TAG_PROJECT}", "Values": [PROJECT]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
        outside = sorted(i["InstanceId"] for r in out["Reservations"] for i in r["Instances"])
        outside = [i for i in outside if i not in members]
        if outside:
            self._violation("4", where, f"{said}, but instances run outside the groups: {outside}")
        for template in ec2.describe_launch_templates()["LaunchTemplates"]:
            name = template["LaunchTemplateName"]
            if not name.startswith(f"{PROJECT}-"):
                continue
            versions = ec2.describe_launch_template_versions(LaunchTemplateName=name)
            for v in versions["LaunchTemplateVersions"]:
                release = _version_release(v)
                if release not in kept:
                    self._violation(
                        "4",
                        where,
                        f"{said}, but {name} keeps version {v['VersionNumber']} "
                        f"of release {release}, never promoted and not serving",
                    )
        tgs = elbv2.describe_target_groups(Names=self.target_group_names())["TargetGroups"]
        for tg in tgs:
            health = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])
            stale = sorted(
                d["Target"]["Id"]
                for d in health["TargetHealthDescriptions"]
                if d["Target"]["Id"] not in members
            )
            if stale:
                self._violation(
                    "4",
                    where,
                    f"{said}, but {tg['TargetGroupName']} still has non-members "
                    f"registered: {stale}",
                )
        if snap.weights:
            live = {self.slot_of(g) for g in snap.groups}
            for slot, weight in snap.weights.items():
                if weight > 0 and slot not in live:
                    self._violation(
                        "4", where, f"{said}, but slot {slot} has weight {weight} and no group"
                    )
            if live and not any(snap.weights.get(s, 0) > 0 for s in live):
                self._violation(
                    "4", where, f"{said}, but no weight on the live slot: {snap.weights}"
                )

    # --- invariant 6: release quarantine ----------------------------------------------------

    def quarantine(self, quarantined: dict[str, float], rollouts: list[Any], where: str) -> None:
        """The stores keep quarantined releases (``state.holds(fleet)``, kind ``quarantine``,
        read here as release -> the time it was quarantined): no rollout that automation
        started after that time may target the release (the machine never passes
        ``--retry-failed``, which lifts a quarantine)."""
        self.checks["6"] += 1
        for r in rollouts:
            since = quarantined.get(r.to_release)
            if since is not None and r.started_at > since and not r.data.get("operator"):
                self._violation("6", where, f"rollout {r.id} deployed quarantined {r.to_release}")

    def raise_violations(self) -> None:
        if self.violations:
            found, self.violations = self.violations, []
            log = "\n".join(
                f"  {o.label}: {o.ended} {o.outcome or ''} {o.error or ''}".rstrip()
                for o in self.world.outcomes
            )
            raise AssertionError("\n".join(found) + "\nwhat the processes did:\n" + log)


def _tag(item: dict[str, Any], key: str) -> str | None:
    return {t["Key"]: t["Value"] for t in item.get("Tags", [])}.get(key)


def _version_release(version: dict[str, Any]) -> str | None:
    for spec in version["LaunchTemplateData"].get("TagSpecifications", []):
        for t in spec.get("Tags", []):
            if t["Key"] == TAG_RELEASE:
                return str(t["Value"])
    return None
