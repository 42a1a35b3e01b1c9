"""Route 53 weighted records: how a fleet's traffic is split between its two slots.

A fleet with ``traffic:`` owns one weighted record set for ``route53.record`` in
``route53.zone``: one record per slot, whose SetIdentifier is the slot's name (``blue``,
``green``). By default each record is an alias (type A) to the slot's load balancer; with
``route53.alias: false`` it is a CNAME to the load balancer's DNS name with the spec's TTL.

Every change writes both records in one change batch (an UPSERT each), so a reader never sees
a half-written split, and then waits until Route 53 reports the change INSYNC. The waits and
the retries of ``PriorRequestNotComplete`` and throttling go through the engine's clock with
capped exponential backoff (Route 53 allows five changes per second per account and one
change at a time per zone). A split where every weight is 0 is refused: Route 53 would answer
with both slots at equal weight.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..clock import Clock
from ..errors import AwsError, UsageError
from ..spec.model import FleetSpec
from .session import THROTTLING_CODES, AwsSession, aws_errors, error_code, to_aws_error

SLOTS = ("blue", "green")
DEFAULT_TTL = 60
MAX_WEIGHT = 255  # Route 53's limit; the SDK writes 0..100
SYNC_TIMEOUT = 900.0  # seconds a change may stay PENDING before the SDK gives up
BACKOFF_FLOOR = 1.0
BACKOFF_CAP = 16.0
TRANSIENT_CODES = THROTTLING_CODES | {"InternalError", "ServiceUnavailable", "InternalFailure"}


@dataclass(frozen=True)
class SlotSpec:
    name: str
    target_group: str  # name or ARN
    load_balancer: str | None = None  # name or ARN; None: the target group's load balancer


@dataclass(frozen=True)
class TrafficSpec:
    """A fleet's ``traffic:`` block, read once from the spec."""

    fleet: str
    zone: str  # a zone name (example.com.) or id (Z123...)
    record: str  # fully qualified, with the trailing dot
    ttl: int
    alias: bool
    slots: Mapping[str, SlotSpec]

    @classmethod
    def of(cls, fleet: FleetSpec) -> TrafficSpec:
        block = fleet.traffic
        if not block or "route53" not in block or "slots" not in block:
            raise UsageError(
                f"fleet {fleet.name!r} needs traffic.route53 and traffic.slots for a "
                "traffic-shifting strategy"
            )
        route53 = block["route53"]
        slots = {
            name: SlotSpec(name, str(s["target_group"]), s.get("load_balancer"))
            for name, s in block["slots"].items()
        }
        record = str(route53["record"])
        return cls(
            fleet=fleet.name,
            zone=str(route53["zone"]),
            record=record if record.endswith(".") else record + ".",
            ttl=int(route53.get("ttl", DEFAULT_TTL)),
            alias=bool(route53.get("alias", True)),
            slots=slots,
        )

    @property
    def record_type(self) -> str:
        return "A" if self.alias else "CNAME"


@dataclass(frozen=True)
class Endpoint:
    """Where a slot's record points: the load balancer's DNS name and its hosted zone."""

    dns_name: str
    zone_id: str
    arn: str = ""  # the load balancer's ARN


@dataclass
class TrafficApi:
    """Reads and writes the weighted records of traffic fleets (one project, one account)."""

    session: AwsSession
    clock: Clock
    heartbeat: Callable[[], None] = lambda: None
    sync_timeout: float = SYNC_TIMEOUT
    _zones: dict[str, str] = field(default_factory=dict)
    _endpoints: dict[tuple[str, str], Endpoint] = field(default_factory=dict)
    _client: Any = None

    @property
    def route53(self) -> Any:
        # Retries happen in _call, on the engine's clock: the client itself must not retry
        # (botocore's retries sleep in real time, out of the clock's and the lease's sight).
        if self._client is None:
            self._client = self.session.client("route53", retries=False)
        return self._client

    # --- reading ---------------------------------------------------------------------------

    def zone_id(self, zone: str) -> str:
        """The hosted zone's id for a zone name (example.com.) or an id (Z0123, /hostedzone/Z0)."""
        if zone in self._zones:
            return self._zones[zone]
        if "." not in zone.rstrip("."):
            found = zone.split("/")[-1]
        else:
            name = zone if zone.endswith(".") else zone + "."
            out = self._call(
                f"finding hosted zone {name}",
                lambda: self.route53.list_hosted_zones_by_name(DNSName=name, MaxItems="10"),
            )
            matches = [z for z in out.get("HostedZones", []) if z.get("Name") == name]
            if not matches:
                raise UsageError(f"hosted zone {name} does not exist in this account")
            if len(matches) > 1:
                ids = ", ".join(str(z["Id"]).split("/")[-1] for z in matches)
                raise UsageError(
                    f"{len(matches)} hosted zones are named {name} ({ids}); name the zone by "
                    "its id in traffic.route53.zone"
                )
            found = str(matches[0]["Id"]).split("/")[-1]
        self._zones[zone] = found
        return found

    def records(self, traffic: TrafficSpec) -> dict[str, dict[str, Any]]:
        """The slots' current record sets (slot -> ResourceRecordSet), absent ones left out."""
        zone = self.zone_id(traffic.zone)
        found: dict[str, dict[str, Any]] = {}
        args: dict[str, Any] = {
            "HostedZoneId": zone,
            "StartRecordName": traffic.record,
            "StartRecordType": traffic.record_type,
        }
        while True:
            page = self._call(
                f"reading the records of {traffic.record}",
                functools.partial(self.route53.list_resource_record_sets, **args),
            )
            for rrs in page.get("ResourceRecordSets", []):
                same = _same_name(rrs.get("Name", ""), traffic.record)
                if not same or rrs.get("Type") != traffic.record_type:
                    return found
                slot = rrs.get("SetIdentifier")
                if slot in traffic.slots and "Weight" in rrs:
                    found[str(slot)] = rrs
            if not page.get("IsTruncated"):
                return found
            args = {
                "HostedZoneId": zone,
                "StartRecordName": page["NextRecordName"],
                "StartRecordType": page["NextRecordType"],
                **(
                    {"StartRecordIdentifier": page["NextRecordIdentifier"]}
                    if page.get("NextRecordIdentifier")
                    else {}
                ),
            }

    def weights(self, traffic: TrafficSpec) -> dict[str, int]:
        """Slot -> weight as Route 53 has it now (slots without a record are left out)."""
        return {slot: int(rrs["Weight"]) for slot, rrs in self.records(traffic).items()}

    def endpoints(self, traffic: TrafficSpec) -> dict[str, Endpoint]:
        """Each slot's load balancer DNS name and hosted zone (named, or its target group's)."""
        elbv2 = self.session.client("elbv2")
        out: dict[str, Endpoint] = {}
        for slot in traffic.slots.values():
            key = (slot.target_group, slot.load_balancer or "")
            if key not in self._endpoints:
                self._endpoints[key] = self._endpoint(elbv2, traffic, slot)
            out[slot.name] = self._endpoints[key]
        return out

    def _endpoint(self, elbv2: Any, traffic: TrafficSpec, slot: SlotSpec) -> Endpoint:
        where = f"fleet {traffic.fleet!r} slot {slot.name}"
        with aws_errors(f"{where}: describing its load balancer"):
            ref = slot.load_balancer
            if ref is None:
                key = "TargetGroupArns" if slot.target_group.startswith("arn:") else "Names"
                groups = elbv2.describe_target_groups(**{key: [slot.target_group]})
                arns = groups["TargetGroups"][0].get("LoadBalancerArns") or []
                if not arns:
                    raise UsageError(
                        f"{where}: target group {slot.target_group!r} is not attached to a load "
                        "balancer; attach it or name one in traffic.slots.*.load_balancer"
                    )
                ref = str(arns[0])
            key = "LoadBalancerArns" if ref.startswith("arn:") else "Names"
            lbs = elbv2.describe_load_balancers(**{key: [ref]})["LoadBalancers"]
        lb = lbs[0]
        return Endpoint(
            dns_name=str(lb["DNSName"]),
            zone_id=str(lb["CanonicalHostedZoneId"]),
            arn=str(lb["LoadBalancerArn"]),
        )

    # --- writing ---------------------------------------------------------------------------

    def set_weights(self, traffic: TrafficSpec, weights: Mapping[str, int]) -> str:
        """Write both slots' weights in one change batch and wait until INSYNC; the change id."""
        wanted = {slot: int(weights.get(slot, 0)) for slot in traffic.slots}
        unknown = sorted(set(weights) - set(traffic.slots))
        if unknown:
            raise UsageError(f"fleet {traffic.fleet!r} has no traffic slot {unknown[0]!r}")
        if any(not 0 <= w <= MAX_WEIGHT for w in wanted.values()):
            raise UsageError(f"weights must be between 0 and {MAX_WEIGHT}, got {wanted}")
        if not any(wanted.values()):
            raise UsageError(
                f"refusing to set every weight of {traffic.record} to 0: Route 53 would then "
                "split traffic equally"
            )
        endpoints = self.endpoints(traffic)
        changes = [
            {"Action": "UPSERT", "ResourceRecordSet": self._record(traffic, s, w, endpoints[s])}
            for s, w in wanted.items()
        ]
        return self._change(traffic, changes, f"setting the weights of {traffic.record}")

    def delete_records(self, traffic: TrafficSpec) -> str | None:
        """Remove the slots' records (a fleet that never served); None when there were none."""
        current = self.records(traffic)
        if not current:
            return None
        changes = [{"Action": "DELETE", "ResourceRecordSet": rrs} for rrs in current.values()]
        return self._change(traffic, changes, f"deleting the records of {traffic.record}")

    def _record(
        self, traffic: TrafficSpec, slot: str, weight: int, endpoint: Endpoint
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "Name": traffic.record,
            "Type": traffic.record_type,
            "SetIdentifier": slot,
            "Weight": weight,
        }
        if traffic.alias:
            record["AliasTarget"] = {
                "HostedZoneId": endpoint.zone_id,
                "DNSName": endpoint.dns_name,
                "EvaluateTargetHealth": False,
            }
        else:
            record["TTL"] = traffic.ttl
            record["ResourceRecords"] = [{"Value": endpoint.dns_name}]
        return record

    def _change(self, traffic: TrafficSpec, changes: list[dict[str, Any]], doing: str) -> str:
        zone = self.zone_id(traffic.zone)
        out = self._call(
            doing,
            lambda: self.route53.change_resource_record_sets(
                HostedZoneId=zone,
                ChangeBatch={"Comment": f"immutable-sdk: {doing}", "Changes": changes},
            ),
        )
        change = str(out["ChangeInfo"]["Id"]).split("/")[-1]
        self.wait_insync(change, str(out["ChangeInfo"].get("Status", "PENDING")), doing)
        return change

    def wait_insync(self, change: str, status: str = "PENDING", doing: str = "") -> None:
        """Poll get_change until INSYNC, with capped backoff on the clock; AwsError on timeout."""
        start = self.clock.monotonic()
        delay = BACKOFF_FLOOR
        while status != "INSYNC":
            elapsed = self.clock.monotonic() - start
            if elapsed >= self.sync_timeout:
                raise AwsError(
                    f"{doing}: Route 53 change {change} is still {status} after "
                    f"{self.sync_timeout:g}s",
                    code="ChangeNotInSync",
                    operation="GetChange",
                )
            self._sleep(min(delay, self.sync_timeout - elapsed))
            delay = min(delay * 2, BACKOFF_CAP)
            out = self._call(
                f"{doing}: waiting for change {change}",
                lambda: self.route53.get_change(Id=change),
            )
            status = str(out["ChangeInfo"]["Status"])

    # --- retries on the clock ----------------------------------------------------------------

    def _call(self, doing: str, call: Callable[[], Any]) -> Any:
        """Run one Route 53 call, retrying throttling and PriorRequestNotComplete on the clock."""
        import botocore.exceptions

        delay = BACKOFF_FLOOR
        attempt = 1
        while True:
            try:
                return call()
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in TRANSIENT_CODES or attempt >= self.session.max_attempts:
                    raise to_aws_error(exc, doing) from exc
            except botocore.exceptions.BotoCoreError as exc:
                raise to_aws_error(exc, doing) from exc
            # Full jitter keeps several fleets' retries from marching in step.
            self._sleep(delay / 2 + random.uniform(0, delay / 2))
            delay = min(delay * 2, BACKOFF_CAP)
            attempt += 1

    def _sleep(self, seconds: float) -> None:
        self.heartbeat()
        self.clock.sleep(seconds)
        self.heartbeat()


def _same_name(a: str, b: str) -> bool:
    def norm(name: str) -> str:
        return name.rstrip(".").lower().replace("\\052", "*")

    return norm(a) == norm(b)
