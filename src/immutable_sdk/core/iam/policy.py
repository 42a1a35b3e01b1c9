"""The least-privilege IAM policy that applying a spec needs (``immutable-sdk iam-policy``).

The policy is derived from the code paths the spec exercises, component by component: the
planner's and the rollout's reads, the fleet mutations (launch templates, Auto Scaling groups,
instances, targets), each health check, builder and strategy analysis the spec names, the state
backend, Route 53 for traffic fleets, drift repair. Each table below lists the API actions a
component may call; ``tests/security/test_iam_policy.py`` checks them against the actions the
test suite's rollouts actually call (from the API call counter), both ways.

Mutating actions are conditioned on the SDK's tags where AWS supports it (``aws:ResourceTag``
on existing resources, ``aws:RequestTag`` on creation); Route 53 changes are limited to the
spec's zones (by id when the spec gives one) and record names. ARNs name no region (``*``) so
that the policy does not grow with every region: the project's tag is the boundary, and a
statement that has no condition of its own (ARN patterns such as ``targetgroup/NAME/*``) is
limited to the spec's regions by ``aws:RequestedRegion``. Account ids are ``*`` unless given.
Actions only reachable outside the SDK's own calls (Auto Scaling checking the caller's
RunInstances permission, Packer's own calls) are listed in ``UNOBSERVED`` with the reason.

What each statement is for, and why a read is on ``*``: ``core.iam.purposes``. Splitting the
policy into documents AWS accepts: ``core.iam.pack``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ...plugin import TAG_PROJECT
from ...spec.model import FleetSpec, Spec
from .builder import PolicyBuilder, retag_guard
from .packer import packer_notes, packer_statements, unobserved_reasons

# botocore service name -> IAM service prefix, where they differ
SERVICE_PREFIX = {"elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing"}
# operations authorized as other actions (DynamoDB transactions: per item action; the state
# store's fenced writes put, update and delete items beside a ConditionCheck on the lock)
OPERATION_ACTIONS = {
    "dynamodb.TransactWriteItems": (
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    ),
    "dynamodb.TransactGetItems": ("dynamodb:GetItem",),
}

FLEET_READS = (
    "autoscaling:DescribeAutoScalingGroups",
    "ec2:DescribeImages",  # root volume of the release's AMI; drift: the AMI's state
    "ec2:DescribeInstances",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DescribeLaunchTemplates",  # destroy: is there a template to delete
)
TARGET_READS = (
    "elasticloadbalancing:DescribeTargetGroups",  # resolve names; verify ARNs
    "elasticloadbalancing:DescribeTargetHealth",  # retire: wait until deregistered
    "elasticloadbalancing:DescribeTargetGroupAttributes",  # deregistration delay
)
LAUNCH_TEMPLATE_WRITES = (
    "ec2:CreateLaunchTemplateVersion",
    "ec2:DeleteLaunchTemplateVersions",  # a failed release's version; drift: foreign ones
    "ec2:DeleteLaunchTemplate",  # destroy, or rolling back a fleet's first rollout
)
GROUP_WRITES = (
    "autoscaling:UpdateAutoScalingGroup",
    "autoscaling:CreateOrUpdateTags",
    "autoscaling:SuspendProcesses",
    "autoscaling:ResumeProcesses",
    "autoscaling:DetachInstances",
    "autoscaling:DeleteAutoScalingGroup",  # destroy, or rolling back a fleet's first rollout
    "autoscaling:AttachLoadBalancerTargetGroups",  # drift --fix: restore target groups
    "autoscaling:DetachLoadBalancerTargetGroups",
)
SCALING_POLICY_WRITES = ("autoscaling:PutScalingPolicy", "autoscaling:DeletePolicy")
HEALTH_CHECK_ACTIONS = {
    "ec2": ("ec2:DescribeInstanceStatus",),
    "elb": ("elasticloadbalancing:DescribeTargetHealth",),
    "http": (),
    "cloudwatch-alarm": ("cloudwatch:DescribeAlarms",),
    "prometheus+sigv4": ("aps:QueryMetrics",),  # Amazon Managed Service for Prometheus
}
ANALYSIS_ACTIONS = {
    "cloudwatch-metrics": ("cloudwatch:GetMetricData",),
    "cloudwatch-alarm": ("cloudwatch:DescribeAlarms",),
    "prometheus+sigv4": ("aps:QueryMetrics",),  # Amazon Managed Service for Prometheus
}
DYNAMODB_STATE = (
    "dynamodb:DescribeTable",  # the table's key schema, checked when the store opens
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",  # fenced writes: the lock's owner and epoch, checked
    "dynamodb:Query",
)
ROUTE53_READS = ("route53:ListHostedZonesByName",)
TRAFFIC_READS = (
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeTargetHealth",
)

# Allowed although the SDK never calls them itself, and why.
UNOBSERVED: dict[str, str] = {
    **unobserved_reasons(),  # Packer's own calls
    "ec2:RunInstances": "Auto Scaling checks that the caller may launch the launch template "
    "when a group is created or updated with it; the group's service role launches",
    "ec2:CreateTags": "tag-on-create: CreateLaunchTemplate and the instances Auto Scaling "
    "launches carry TagSpecifications, which need CreateTags for that CreateAction",
    "iam:PassRole": "a launch template with an instance profile passes its role to EC2",
}


def actions_of(operation: str) -> tuple[str, ...]:
    """The IAM actions that authorize a counted operation (``elbv2.DeregisterTargets`` ->
    ``elasticloadbalancing:DeregisterTargets``)."""
    if operation in OPERATION_ACTIONS:
        return OPERATION_ACTIONS[operation]
    service, _, name = operation.partition(".")
    return (f"{SERVICE_PREFIX.get(service, service)}:{name}",)


def policy_document(
    spec: Spec,
    *,
    account: str = "*",
    images_gc: bool = False,
    packer_temporary_security_group: bool = False,
) -> dict[str, Any]:
    """The IAM policy (a JSON-able document) that applying ``spec`` needs, as one document;
    ``core.iam.pack.pack`` splits it into documents AWS accepts."""
    p = PolicyBuilder(spec.region, account)
    # Fleets' resources live in every region a fleet deploys to; images in those and theirs.
    where = spec.regions
    project = spec.name
    tagged = {"StringEquals": {f"aws:ResourceTag/{TAG_PROJECT}": project}}
    requested = {"StringEquals": {f"aws:RequestTag/{TAG_PROJECT}": project}}
    fleets = list(spec.fleets.values())
    traffic = [f for f in fleets if f.traffic]

    reads = list(FLEET_READS)
    if any(f.subnets for f in fleets):
        reads.append("ec2:DescribeSubnets")
    if any(f.security_groups for f in fleets):
        reads.append("ec2:DescribeSecurityGroups")
    if any(f.target_groups for f in fleets) or traffic:
        reads += TARGET_READS
    for f in fleets:
        for check in f.health.checks:
            reads += HEALTH_CHECK_ACTIONS.get(check.type, ())
        for kind in _analysis_types(f.strategy.config):
            reads += ANALYSIS_ACTIONS.get(kind, ())
    if any(f.capacity.managed for f in fleets):
        reads.append("autoscaling:DescribePolicies")
    p.allow("Read", reads)

    templates = [p.any_region("ec2", "launch-template/*")]
    p.allow("CreateLaunchTemplate", ["ec2:CreateLaunchTemplate"], templates, requested)
    p.allow("LaunchTemplateVersions", LAUNCH_TEMPLATE_WRITES, templates, tagged)
    p.allow(
        "TagOnCreate",
        ["ec2:CreateTags"],
        [p.any_region("ec2", "*/*")],
        {"StringEquals": {"ec2:CreateAction": ["CreateLaunchTemplate", "RunInstances"]}},
    )
    instances = [p.any_region("ec2", "instance/*")]
    p.allow(
        "LaunchTaggedInstances",
        ["ec2:RunInstances"],
        [*instances, p.any_region("ec2", "volume/*")],
        requested,
    )
    p.allow(
        "LaunchFromTemplate",
        ["ec2:RunInstances"],
        [
            p.any_region("ec2", f"{kind}/*")
            for kind in ("launch-template", "subnet", "security-group", "network-interface")
        ]
        + [p.any_region("ec2", "image/*", account=False), p.any_region("ec2", "key-pair/*")],
        regions=where,
    )
    # Groups are created by the project's name prefix and tag (a create cannot touch an existing
    # group), changed by the project's tag (which also covers groups of fleets the spec dropped,
    # for --prune), never by a name prefix that another project's groups could share.
    group = "autoScalingGroup:*:autoScalingGroupName"
    p.allow(
        "CreateGroups",
        ["autoscaling:CreateAutoScalingGroup"],
        [p.any_region("autoscaling", f"{group}/{project}-*")],
        requested,
    )
    groups = [p.any_region("autoscaling", f"{group}/*")]
    p.allow("Groups", GROUP_WRITES, groups, tagged)
    if any(f.capacity.managed for f in fleets):  # desired: managed: the SDK's scaling policies
        p.allow("ScalingPolicies", SCALING_POLICY_WRITES, groups, tagged)
    p.allow("TerminateOwnInstances", ["ec2:TerminateInstances"], instances, tagged)
    # an instance attached to a group by hand lacks the SDK's tags, not Auto Scaling's
    p.allow(
        "TerminateGroupInstances",
        ["ec2:TerminateInstances"],
        instances,
        {"StringEquals": {"aws:ResourceTag/aws:autoscaling:groupName": group_names(spec)}},
    )
    if any(f.iam_instance_profile for f in fleets):
        p.allow(
            "PassInstanceRole",
            ["iam:PassRole"],
            [p.arn("iam", "role/*", region=False)],
            {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        )
    target_groups = sorted(
        {
            _target_group_arn(p, tg)
            for f in fleets
            for tg in [*f.target_groups, *(s["target_group"] for s in _slots(f.traffic))]
        }
    )
    if target_groups:
        regions = {r for f in fleets if f.target_groups or f.traffic for r in spec.regions_of(f)}
        p.allow(
            "DeregisterTargets",
            ["elasticloadbalancing:DeregisterTargets"],
            target_groups,
            regions=regions,
        )

    _builders(p, spec, packer_temporary_security_group)
    _state(p, spec)
    if traffic:
        _route53(p, traffic)
    if images_gc:
        p.allow(
            "ImagesGc",
            ["ec2:DeregisterImage", "ec2:DeleteSnapshot"],
            [
                p.any_region("ec2", "image/*", account=False),
                p.any_region("ec2", "snapshot/*", account=False),
            ],
            tagged,
        )
    return p.document()


def group_names(spec: Spec) -> list[str]:
    """The Auto Scaling groups of the spec's fleets: ``P-F``, and ``P-F-SLOT`` per traffic
    slot (see ``aws.fleet`` and ``aws.slots``)."""
    return sorted({name for f in spec.fleets.values() for name in _fleet_groups(spec.name, f)})


def _fleet_groups(project: str, fleet: FleetSpec) -> list[str]:
    slots = ((fleet.traffic or {}).get("slots") or {}).keys()
    return [f"{project}-{fleet.name}", *(f"{project}-{fleet.name}-{slot}" for slot in slots)]


def _image_regions(spec: Spec) -> list[str]:
    """Where the spec's images live: its region, its fleets' and the images' own regions."""
    found = dict.fromkeys(spec.regions)
    for image in spec.images.values():
        found.update(dict.fromkeys(image.regions))
    return list(found)


def _target_group_arn(p: PolicyBuilder, ref: str) -> str:
    if ref.startswith("arn:"):
        return ref
    return p.any_region("elasticloadbalancing", f"targetgroup/{ref}/*")


def _slots(traffic: Mapping[str, Any] | None) -> Iterator[Mapping[str, Any]]:
    yield from ((traffic or {}).get("slots") or {}).values()


def _analysis_types(config: Any) -> Iterator[str]:
    """The ``type`` of every ``analysis`` block in a strategy's config, at any depth
    (``prometheus+sigv4`` for a Prometheus queried with AWS signatures)."""
    if isinstance(config, Mapping):
        for key, value in config.items():
            if key == "analysis" and isinstance(value, Mapping) and "type" in value:
                signed = value["type"] == "prometheus" and value.get("sigv4") is not None
                yield "prometheus+sigv4" if signed else str(value["type"])
            yield from _analysis_types(value)
    elif isinstance(config, list):
        for item in config:
            yield from _analysis_types(item)


def _builders(p: PolicyBuilder, spec: Spec, packer_temporary_security_group: bool) -> None:
    used = {f.image for f in spec.fleets.values()}  # apply builds only what fleets use
    images = [spec.images[name] for name in sorted(used) if name in spec.images]
    builders = {i.builder for i in images}
    amis = [p.any_region("ec2", "image/*", account=False)]
    amis.append(p.any_region("ec2", "snapshot/*", account=False))
    if builders - {"ami"}:  # built images are tagged with their lineage, and copied
        p.allow("TagImages", ["ec2:CreateTags"], amis, retag_guard(spec.name))
        copied = [i for i in images if i.builder != "ami" and len(i.regions) > 1]
        if copied:
            p.allow(
                "CopyImages",
                ["ec2:CopyImage"],
                amis,
                regions={r for i in copied for r in i.regions},
            )
    packer = [i for i in images if i.builder == "packer"]
    if packer:
        packer_statements(
            p, spec.name, packer, _image_regions(spec), packer_temporary_security_group
        )
    for image in images:
        if image.builder != "ec2-image-builder":
            continue
        cfg = image.config
        if cfg.get("pipeline"):
            p.allow(
                "ImageBuilderPipelines",
                ["imagebuilder:GetImagePipeline", "imagebuilder:StartImagePipelineExecution"],
                [str(cfg["pipeline"])],
            )
        else:
            recipes = [
                str(cfg[k]) for k in ("recipe", "infrastructure", "distribution") if cfg.get(k)
            ]
            # the new image's ARN, and the recipe and configurations it is made from
            p.allow(
                "ImageBuilderRecipes",
                ["imagebuilder:CreateImage"],
                [p.arn("imagebuilder", "image/*"), *recipes],
            )
        p.allow(
            "ImageBuilderImages",
            ["imagebuilder:GetImage"],
            [p.arn("imagebuilder", "image/*")],
        )


def _state(p: PolicyBuilder, spec: Spec) -> None:
    if spec.state.backend != "dynamodb":
        return
    region = spec.state.region or spec.region
    table = f"arn:{p.partition}:dynamodb:{region}:{p.account}:table/{spec.state.table}"
    p.allow("State", DYNAMODB_STATE, [table])


def _route53(p: PolicyBuilder, fleets: Iterable[Any]) -> None:
    p.allow("TrafficReads", [*ROUTE53_READS, *TRAFFIC_READS])
    p.allow(
        "Route53ChangeStatus",
        ["route53:GetChange"],
        [p.arn("route53", "change/*", region=False, account=False)],
    )
    by_zone: dict[str, set[str]] = {}
    for fleet in fleets:
        route53 = (fleet.traffic or {}).get("route53") or {}
        record = str(route53.get("record", "")).rstrip(".").lower()
        by_zone.setdefault(str(route53.get("zone", "")), set()).add(record)
    zones = [f"arn:{p.partition}:route53:::hostedzone/{_zone_id(z) or '*'}" for z in by_zone]
    # a read: the records of the spec's zones (any zone when one is given by name)
    p.allow("Route53ListRecords", ["route53:ListResourceRecordSets"], sorted(set(zones)))
    by_name: set[str] = set()
    for n, zone in enumerate(sorted(by_zone), 1):
        zone_id = _zone_id(zone)
        if zone_id is None:
            by_name |= by_zone[zone]
            continue
        p.allow(
            f"Route53Zone{n}",
            ["route53:ChangeResourceRecordSets"],
            [f"arn:{p.partition}:route53:::hostedzone/{zone_id}"],
            only_records(by_zone[zone]),
        )
    if by_name:
        # A zone given by name has an id only AWS knows: any zone, these record names only.
        p.allow(
            "Route53ZonesByName",
            ["route53:ChangeResourceRecordSets"],
            [f"arn:{p.partition}:route53:::hostedzone/*"],
            only_records(by_name),
        )


def only_records(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """A change batch whose every record name is one of ``names``. The key is multivalued
    (one value per change), so ``ForAllValues``: ``ForAnyValue`` would let a batch carry a
    foreign name beside an allowed one. ``ForAllValues`` also holds when the key is absent, so
    ``Null: false`` requires it (ChangeResourceRecordSets always carries it; this keeps the
    statement safe if an action without the key is ever added to it)."""
    key = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
    return {"ForAllValues:StringEquals": {key: sorted(names)}, "Null": {key: "false"}}


def _zone_id(zone: str) -> str | None:
    """The hosted zone id if the spec names the zone by id (``Z123...``, ``/hostedzone/Z...``)."""
    tail = zone.rsplit("/", 1)[-1]
    return tail if tail[:1] == "Z" and "." not in tail and tail.isalnum() else None


def allowed_actions(document: Mapping[str, Any]) -> set[str]:
    """Every action a policy document allows (no wildcards are used)."""
    out: set[str] = set()
    for statement in document["Statement"]:
        actions = statement["Action"]
        out |= {actions} if isinstance(actions, str) else set(actions)
    return out


def policy_notes(spec: Spec, *, packer_temporary_security_group: bool = False) -> list[str]:
    """What the policy cannot know: plugins from outside the SDK and what they call."""
    notes = []
    known_builders = {"ami", "packer", "ec2-image-builder"}
    known_strategies = {"rolling", "blue-green", "canary"}
    for f in spec.fleets.values():
        if f.strategy.type not in known_strategies:
            notes.append(
                f"fleet {f.name!r}: strategy {f.strategy.type!r} is not built in; "
                "its steps use the SDK's actions, but check its own needs"
            )
    for image in spec.images.values():
        if image.builder not in known_builders:
            notes.append(
                f"image {image.name!r}: builder {image.builder!r} is not built in; "
                "add the actions it calls"
            )
    used = {f.image for f in spec.fleets.values()}
    notes += packer_notes(
        (
            spec.images[name]
            for name in sorted(used)
            if name in spec.images and spec.images[name].builder == "packer"
        ),
        packer_temporary_security_group,
    )
    for f in spec.fleets.values():
        for check in f.health.checks:
            if check.type not in HEALTH_CHECK_ACTIONS:
                notes.append(
                    f"fleet {f.name!r}: health check {check.type!r} is not built in; "
                    "add the actions it calls"
                )
    return notes
