"""Seeding an AWS emulator with what a spec references (the sandbox's network and wiring).

Only creates what is missing: running it again (or after an apply) changes nothing, and never
resets an alarm a test or a person set to ALARM. Resources carry the tag ``immutable-sdk:sandbox``.

The emulator cannot create a resource with a chosen id. A reference that looks like an id
(``subnet-0abc``, ``sg-0abc``, a target group ARN) gets a new resource tagged ``Name=<reference>``
instead; ``aws.network`` falls back to the Name tag for ids it cannot find, so subnets and
security groups still resolve. The summary lists each such substitution.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..spec.model import Spec
from .session import AwsSession, error_code

if TYPE_CHECKING:
    from ..plugin import PluginEntry, Registry
    from ..plugins import Plugins

SANDBOX_TAG = "immutable-sdk:sandbox"
VPC_CIDR = "10.0.0.0/16"
ZONES = "abc"
LB_SUBNETS = ("immutable-sdk-sandbox-lb-a", "immutable-sdk-sandbox-lb-b")
ALARM_NAMESPACE = "immutable-sdk/sandbox"


@dataclass
class Needs:
    """What a spec references, in the order the spec names it, without duplicates."""

    region: str
    subnets: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    target_groups: dict[str, str] = field(default_factory=dict)  # reference -> load balancer
    zones: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)

    def add(self, kind: list[str], refs: Iterable[Any]) -> None:
        for ref in refs:
            if isinstance(ref, str) and ref and ref not in kind:
                kind.append(ref)

    def add_target_group(self, ref: Any, load_balancer: Any = None) -> None:
        if isinstance(ref, str) and ref and ref not in self.target_groups:
            name = load_balancer if isinstance(load_balancer, str) and load_balancer else None
            self.target_groups[ref] = name or _name_of(ref)


def _name_of(target_group: str) -> str:
    """A target group's name: the reference itself, or the name inside an ARN."""
    if target_group.startswith("arn:"):
        parts = target_group.split(":")[-1].split("/")
        if len(parts) >= 2:
            return parts[1]
    return target_group


def _document_regions(spec: Mapping[str, Any]) -> list[str]:
    """The regions a spec document deploys to, its ``region`` first."""
    home = str(spec.get("region") or "us-east-1")
    found = dict.fromkeys([home])
    for fleet in (spec.get("fleets") or {}).values():
        if isinstance(fleet, Mapping):
            found.update(dict.fromkeys(str(r) for r in fleet.get("regions") or ()))
    return list(found)


def needs_by_region(spec: Spec | Mapping[str, Any], plugins: Plugins | None = None) -> list[Needs]:
    """What ``spec`` references in each region it deploys to, the spec's region first."""
    regions = list(spec.regions) if isinstance(spec, Spec) else _document_regions(spec)
    if len(regions) == 1:
        return [needs(spec, plugins=plugins)]
    return [needs(spec, r, plugins=plugins) for r in regions]


def needs(
    spec: Spec | Mapping[str, Any], region: str | None = None, *, plugins: Plugins | None = None
) -> Needs:
    """What ``spec`` (the model, or a spec document as a mapping) references; with ``region``,
    what its fleets that deploy to ``region`` reference (there).

    Plugin blocks (strategies, health checks, builders, notifiers) name what their plugin's
    ``references`` declares (``plugin.References``); a spec document without ``plugins``
    knows only the built-in ``cloudwatch-alarm`` health check's alarms.
    """
    if isinstance(spec, Spec):
        result = Needs(region or spec.region)
        for fleet in spec.fleets.values():
            if region is not None and region not in spec.regions_of(fleet):
                continue
            result.add(result.subnets, fleet.subnets)
            result.add(result.security_groups, fleet.security_groups)
            for ref in fleet.target_groups:
                result.add_target_group(ref)
            _traffic(result, fleet.traffic)
            result.add(result.alarms, analysis_alarms(fleet.strategy.config))
            if plugins is None:
                _alarm_checks(result, (c.config for c in fleet.health.checks))
                continue
            _plugin_references(result, plugins.strategies, [fleet.strategy.config])
            _plugin_references(
                result, plugins.health_checks, [c.config for c in fleet.health.checks]
            )
        if plugins is not None:
            images = [i.config for i in spec.images.values() if result.region in i.regions]
            _plugin_references(result, plugins.builders, images)
            _plugin_references(result, plugins.notifiers, [n.config for n in spec.notifiers])
        return result
    home = str(spec.get("region") or "us-east-1")
    result = Needs(region or home)
    for fleet in (spec.get("fleets") or {}).values():
        if not isinstance(fleet, Mapping):
            continue
        if region is not None and region not in (fleet.get("regions") or [home]):
            continue
        result.add(result.subnets, fleet.get("subnets") or ())
        result.add(result.security_groups, fleet.get("security_groups") or ())
        for ref in (fleet.get("load_balancer") or {}).get("target_groups") or ():
            result.add_target_group(ref)
        _traffic(result, fleet.get("traffic"))
        result.add(result.alarms, analysis_alarms(fleet.get("strategy")))
        checks = (fleet.get("health") or {}).get("checks") or ()
        if plugins is None:
            _alarm_checks(result, checks)
            continue
        _plugin_references(result, plugins.strategies, [fleet.get("strategy") or {}])
        _plugin_references(result, plugins.health_checks, checks)
    return result


def _alarm_checks(result: Needs, checks: Iterable[Any]) -> None:
    for check in checks:
        if isinstance(check, Mapping) and check.get("type") == "cloudwatch-alarm":
            result.add(result.alarms, check.get("alarms") or ())


def _plugin_references(result: Needs, registry: Registry[Any], blocks: Iterable[Any]) -> None:
    """Add what each block's plugin says the block references (``plugin.References``)."""
    for entry, config in _entries(registry, blocks):
        found = entry.referenced(config)
        result.add(result.alarms, found.alarms)
        result.add(result.subnets, found.subnets)
        result.add(result.security_groups, found.security_groups)
        for ref in found.target_groups:
            result.add_target_group(ref, found.load_balancers.get(ref))
        result.add(result.zones, found.hosted_zones)


def _entries(
    registry: Registry[Any], blocks: Iterable[Any]
) -> Iterator[tuple[PluginEntry[Any], Mapping[str, Any]]]:
    key = "builder" if registry.kind == "builder" else "type"
    for config in blocks:
        name = config.get(key) if isinstance(config, Mapping) else None
        if isinstance(name, str) and name in registry:
            yield registry.get(name), config


def analysis_alarms(config: Any) -> list[str]:
    """Alarms a strategy's analyses watch (``analysis: {alarms: [...]}``, at any depth: a
    linear strategy's ``analysis``, a canary's ``steps[].analysis``)."""
    found: list[str] = []
    if isinstance(config, Mapping):
        analysis = config.get("analysis")
        if isinstance(analysis, Mapping):
            found += [str(a) for a in analysis.get("alarms") or () if isinstance(a, str)]
        for key, value in config.items():
            if key != "analysis":
                found += analysis_alarms(value)
    elif isinstance(config, (list, tuple)):
        for item in config:
            found += analysis_alarms(item)
    return found


def _traffic(result: Needs, traffic: Any) -> None:
    if not isinstance(traffic, Mapping):
        return
    route53 = traffic.get("route53")
    if isinstance(route53, Mapping):
        result.add(result.zones, [route53.get("zone")])
    for slot in (traffic.get("slots") or {}).values():
        if isinstance(slot, Mapping):
            result.add_target_group(slot.get("target_group"), slot.get("load_balancer"))


def _tags(resource_type: str, name: str) -> list[dict[str, Any]]:
    return [
        {
            "ResourceType": resource_type,
            "Tags": [{"Key": "Name", "Value": name}, {"Key": SANDBOX_TAG, "Value": "true"}],
        }
    ]


def _name_tag(resource: Mapping[str, Any]) -> str | None:
    for tag in resource.get("Tags") or []:
        if tag.get("Key") == "Name":
            return str(tag.get("Value"))
    return None


class Seeder:
    """Creates what ``wanted`` lists and is missing; ``run`` returns the summary."""

    def __init__(self, session: AwsSession, wanted: Needs) -> None:
        self.session = session
        self.ec2 = session.client("ec2")
        self.elbv2 = session.client("elbv2")
        self.wanted = wanted
        self.region = wanted.region
        self.vpc = ""
        self.lb_subnets: list[str] = []
        self.summary: dict[str, Any] = {
            "region": wanted.region,
            "vpc": None,
            "subnets": {},
            "security_groups": {},
            "target_groups": {},
            "load_balancers": {},
            "hosted_zones": {},
            "alarms": [],
            "created": [],
            "substituted": [],
        }

    def run(self) -> dict[str, Any]:
        w = self.wanted
        if w.subnets or w.security_groups or w.target_groups:
            self.vpc = self._vpc()
            self._subnets()
            self._security_groups()
            self._target_groups()
        if w.zones:
            self._zones()
        if w.alarms:
            self._alarms()
        return self.summary

    def _created(self, what: str) -> None:
        self.summary["created"].append(what)

    def _vpc(self) -> str:
        vpcs = self.ec2.describe_vpcs(Filters=[{"Name": f"tag:{SANDBOX_TAG}", "Values": ["true"]}])
        if vpcs["Vpcs"]:
            vpc_id = str(vpcs["Vpcs"][0]["VpcId"])
        else:
            vpc = self.ec2.create_vpc(
                CidrBlock=VPC_CIDR, TagSpecifications=_tags("vpc", "immutable-sdk-sandbox")
            )
            vpc_id = str(vpc["Vpc"]["VpcId"])
            self._created(f"vpc {vpc_id} ({VPC_CIDR})")
        self.summary["vpc"] = vpc_id
        return vpc_id

    def _subnets(self) -> None:
        names = list(self.wanted.subnets)
        if self.wanted.target_groups:
            names += [n for n in LB_SUBNETS if n not in names]  # an ALB spans two zones
        existing = self.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [self.vpc]}])
        by_name = {_name_tag(s): s for s in existing["Subnets"]}
        used = {ipaddress.ip_network(s["CidrBlock"]) for s in existing["Subnets"]}
        free = (
            net for net in ipaddress.ip_network(VPC_CIDR).subnets(new_prefix=24) if net not in used
        )
        for index, name in enumerate(names):
            subnet = by_name.get(name)
            if subnet is None:
                # consecutive references land in distinct zones (the two ALB subnets too)
                zone = f"{self.region}{ZONES[index % len(ZONES)]}"
                cidr = str(next(free))
                subnet = self.ec2.create_subnet(
                    VpcId=self.vpc,
                    CidrBlock=cidr,
                    AvailabilityZone=zone,
                    TagSpecifications=_tags("subnet", name),
                )["Subnet"]
                self._created(f"subnet {name} ({subnet['SubnetId']}, {cidr}, {zone})")
                if name.startswith("subnet-"):
                    self._substituted("subnet", name, str(subnet["SubnetId"]))
            if name in self.wanted.subnets:
                self.summary["subnets"][name] = str(subnet["SubnetId"])
            if name in LB_SUBNETS:
                self.lb_subnets.append(str(subnet["SubnetId"]))

    def _substituted(self, kind: str, ref: str, actual: str) -> None:
        self.summary["substituted"].append(
            f"{kind} {ref!r}: the emulator cannot create that id; created {actual} tagged "
            f"Name={ref} (references resolve by Name tag)"
        )

    def _security_groups(self) -> None:
        refs = self.wanted.security_groups
        if not refs:
            return
        groups = self.ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [self.vpc]}]
        )["SecurityGroups"]
        found: dict[str, str] = {}
        for group in groups:
            for label in (group.get("GroupName"), _name_tag(group)):
                if label:
                    found.setdefault(str(label), str(group["GroupId"]))
        for ref in refs:
            if ref not in found:
                # AWS forbids group names that start with sg-; the Name tag carries the reference.
                group_name = f"sandbox-{ref}" if ref.startswith("sg-") else ref
                found[ref] = str(
                    self.ec2.create_security_group(
                        GroupName=group_name,
                        Description=f"immutable-sdk sandbox: {ref}",
                        VpcId=self.vpc,
                        TagSpecifications=_tags("security-group", ref),
                    )["GroupId"]
                )
                self._created(f"security group {ref} ({found[ref]})")
                if ref.startswith("sg-"):
                    self._substituted("security group", ref, found[ref])
            self.summary["security_groups"][ref] = found[ref]

    def _target_groups(self) -> None:
        by_lb: dict[str, list[str]] = {}
        for ref, lb_name in self.wanted.target_groups.items():
            arn = self._target_group(ref)
            self.summary["target_groups"][ref] = arn
            by_lb.setdefault(lb_name, []).append(arn)
        for lb_name, arns in by_lb.items():
            lb_arn = self._load_balancer(lb_name)
            self.summary["load_balancers"][lb_name] = lb_arn
            self._listener(lb_name, lb_arn, arns)

    def _target_group(self, ref: str) -> str:
        name = _name_of(ref)
        try:
            groups = self.elbv2.describe_target_groups(Names=[name])["TargetGroups"]
        except Exception as exc:
            if error_code(exc) != "TargetGroupNotFound":
                raise
            groups = self.elbv2.create_target_group(
                Name=name,
                Protocol="HTTP",
                Port=80,
                VpcId=self.vpc,
                TargetType="instance",
                HealthCheckProtocol="HTTP",
                HealthCheckPath="/healthz",
                Tags=[{"Key": SANDBOX_TAG, "Value": "true"}],
            )["TargetGroups"]
            self._created(f"target group {name}")
            if ref.startswith("arn:"):
                self.summary["substituted"].append(
                    f"target group {ref!r}: the emulator cannot create that ARN; created "
                    f"{groups[0]['TargetGroupArn']} (refer to it by name, {name!r})"
                )
        return str(groups[0]["TargetGroupArn"])

    def _load_balancer(self, name: str) -> str:
        try:
            lbs = self.elbv2.describe_load_balancers(Names=[name])["LoadBalancers"]
        except Exception as exc:
            if error_code(exc) != "LoadBalancerNotFound":
                raise
            lbs = self.elbv2.create_load_balancer(
                Name=name,
                Subnets=self.lb_subnets,
                Scheme="internal",
                Type="application",
                IpAddressType="ipv4",
                Tags=[{"Key": SANDBOX_TAG, "Value": "true"}],
            )["LoadBalancers"]
            self._created(f"load balancer {name} (internal)")
        return str(lbs[0]["LoadBalancerArn"])

    def _listener(self, lb_name: str, lb_arn: str, arns: list[str]) -> None:
        """HTTP:80 forwarding to the load balancer's target groups (the first one weighted)."""
        listeners = self.elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
        http = next((item for item in listeners if item.get("Port") == 80), None)
        if http is None:
            weights = [
                {"TargetGroupArn": a, "Weight": 1 if i == 0 else 0} for i, a in enumerate(arns)
            ]
            self.elbv2.create_listener(
                LoadBalancerArn=lb_arn,
                Protocol="HTTP",
                Port=80,
                DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": weights}}],
            )
            self._created(f"listener {lb_name}:80")
            return
        current = _forwarded(http)
        missing = [a for a in arns if a not in current]
        if missing:  # keep the weights that traffic shifts may have set
            weights = [{"TargetGroupArn": a, "Weight": w} for a, w in current.items()]
            weights += [{"TargetGroupArn": a, "Weight": 0} for a in missing]
            self.elbv2.modify_listener(
                ListenerArn=http["ListenerArn"],
                DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": weights}}],
            )
            self._created(f"listener {lb_name}:80 forwards to {len(weights)} target groups")

    def _zones(self) -> None:
        route53 = self.session.client("route53")
        for ref in self.wanted.zones:
            name = ref if ref.endswith(".") else ref + "."
            if "." not in ref.rstrip("."):
                self.summary["substituted"].append(
                    f"hosted zone {ref!r} looks like an id, which the emulator cannot create; "
                    "name the zone (example.com.) in the spec to use the sandbox"
                )
                continue
            listed = route53.list_hosted_zones_by_name(DNSName=name, MaxItems="1")
            zone = next((z for z in listed["HostedZones"] if z["Name"] == name), None)
            if zone is None:
                zone = route53.create_hosted_zone(
                    Name=name,
                    CallerReference=f"immutable-sdk-sandbox-{name}",
                    HostedZoneConfig={"Comment": "immutable-sdk sandbox", "PrivateZone": False},
                )["HostedZone"]
                self._created(f"hosted zone {name}")
            self.summary["hosted_zones"][ref] = str(zone["Id"]).split("/")[-1]

    def _alarms(self) -> None:
        cloudwatch = self.session.client("cloudwatch")
        names = self.wanted.alarms
        existing: set[str] = set()
        for start in range(0, len(names), 100):
            response = cloudwatch.describe_alarms(
                AlarmNames=names[start : start + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
            )
            for alarm in [*response["MetricAlarms"], *response.get("CompositeAlarms", [])]:
                existing.add(str(alarm["AlarmName"]))
        for name in names:
            if name not in existing:
                cloudwatch.put_metric_alarm(
                    AlarmName=name,
                    AlarmDescription="immutable-sdk sandbox: a stand-in for the spec's alarm",
                    Namespace=ALARM_NAMESPACE,
                    MetricName=name,
                    Statistic="Sum",
                    Period=60,
                    EvaluationPeriods=1,
                    Threshold=1.0,
                    ComparisonOperator="GreaterThanOrEqualToThreshold",
                    TreatMissingData="notBreaching",
                )
                cloudwatch.set_alarm_state(
                    AlarmName=name, StateValue="OK", StateReason="seeded by the sandbox"
                )
                self._created(f"alarm {name} (OK)")
            self.summary["alarms"].append(name)


def _forwarded(listener: Mapping[str, Any]) -> dict[str, int]:
    """Target group ARN -> weight of a listener's forward action."""
    weights: dict[str, int] = {}
    for action in listener.get("DefaultActions") or []:
        if action.get("Type") != "forward":
            continue
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
        for group in groups:
            weights[str(group["TargetGroupArn"])] = int(group.get("Weight", 1))
        if not groups and action.get("TargetGroupArn"):
            weights[str(action["TargetGroupArn"])] = 1
    return weights
