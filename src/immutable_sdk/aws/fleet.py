"""Fleets on AWS: an Auto Scaling group, its launch template and versions, its instances.

Naming: the group and the launch template of fleet F in project P are both called ``P-F``.
Every release is a new numbered launch template version (never $Latest/$Default) whose
TagSpecifications carry the release tag, so an instance's release is read from its own tags
(the emulator reports the template's default version for every instance; the tag is right on
both). Describes are batched: one group describe and at most one instance describe per poll, and
an instance's release is cached (it never changes: instances are immutable).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..coalesce import Coalescer
from ..plugin import TAG_FLEET, TAG_PROJECT, TAG_RELEASE, TAG_ROLLOUT, Target
from ..release import Release, encode_user_data, user_data_text
from ..spec.model import FleetSpec
from .session import AwsSession, aws_errors, error_code

# Processes that would fight a rollout: rebalancing terminates instances, alarms (scaling
# policies) and scheduled actions move the desired capacity the rollout steps through.
SUSPENDED_DURING_ROLLOUT = ("AZRebalance", "AlarmNotification", "ScheduledActions")


@dataclass(frozen=True)
class Member:
    """An instance in a group, with what the rollout needs to judge it."""

    instance_id: str
    lifecycle_state: str  # Pending, InService, Terminating, ...
    health_status: str  # Healthy / Unhealthy (the group's view)
    release: str | None
    private_ip: str | None = None
    public_ip: str | None = None
    launched_at: float = 0.0
    ami: str | None = None

    @property
    def in_service(self) -> bool:
        return self.lifecycle_state == "InService" and self.health_status == "Healthy"

    def target(self) -> Target:
        """The instance as health checks see it."""
        return Target(
            instance_id=self.instance_id,
            private_ip=self.private_ip,
            public_ip=self.public_ip,
            release=self.release,
            launched_at=self.launched_at or None,
            lifecycle_state=self.lifecycle_state,
        )


@dataclass(frozen=True)
class GroupState:
    fleet: str
    name: str
    min: int
    desired: int
    max: int
    launch_template: str | None
    version: str | None
    target_groups: tuple[str, ...]
    subnets: tuple[str, ...]
    tags: Mapping[str, str]
    members: tuple[Member, ...]
    suspended: frozenset[str] = frozenset()
    health_check_type: str = "EC2"

    @property
    def release(self) -> str | None:
        """The release the group was last promoted to (its release tag)."""
        return self.tags.get(TAG_RELEASE)

    def live(self) -> list[Member]:
        """Members not on their way out (Terminating, Terminated, Detaching...)."""
        return [m for m in self.members if m.lifecycle_state.startswith(("Pending", "InService"))]

    def of_release(self, release: str | None) -> list[Member]:
        return [m for m in self.live() if m.release == release]

    def not_of_release(self, release: str | None) -> list[Member]:
        return [m for m in self.live() if m.release != release]

    def without(self, instance_ids: Iterable[str]) -> GroupState:
        """The group after detaching ``instance_ids`` with ShouldDecrementDesiredCapacity."""
        gone = set(instance_ids)
        members = tuple(m for m in self.members if m.instance_id not in gone)
        left = len(self.members) - len(members)
        return replace(self, members=members, desired=max(self.desired - left, 0))


@dataclass
class FleetApi:
    """AWS operations on the fleets of one project in one region."""

    session: AwsSession
    project: str
    region: str
    _instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Fleets polled from several threads at once share describe calls (50 groups a call).
    _groups: Coalescer[str, GroupState | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._groups = Coalescer(self._describe)

    @property
    def asg(self) -> Any:
        return self.session.client("autoscaling", self.region)

    @property
    def ec2(self) -> Any:
        return self.session.client("ec2", self.region)

    @property
    def elbv2(self) -> Any:
        return self.session.client("elbv2", self.region)

    def name(self, fleet: str) -> str:
        return f"{self.project}-{fleet}"

    def base_tags(self, fleet: str) -> dict[str, str]:
        return {TAG_PROJECT: self.project, TAG_FLEET: fleet}

    # --- reading ---------------------------------------------------------------------------

    def describe(self, fleets: Sequence[str]) -> dict[str, GroupState | None]:
        """The groups of ``fleets`` (None where absent), members included: one call per 50
        groups (shared with other threads describing at the same moment), and one for
        instances not seen before."""
        return self._groups.get(fleets)

    def _describe(self, fleets: Sequence[str]) -> dict[str, GroupState | None]:
        names = {self.name(f): f for f in fleets}
        found: dict[str, GroupState | None] = dict.fromkeys(fleets)
        groups: list[dict[str, Any]] = []
        with aws_errors("describing Auto Scaling groups"):
            chunk = list(names)
            for i in range(0, len(chunk), 50):
                paginator = self.asg.get_paginator("describe_auto_scaling_groups")
                for page in paginator.paginate(AutoScalingGroupNames=chunk[i : i + 50]):
                    groups.extend(page["AutoScalingGroups"])
        self._learn_instances([i["InstanceId"] for g in groups for i in g.get("Instances", [])])
        for g in groups:
            fleet = names.get(g["AutoScalingGroupName"])
            if fleet is not None:
                found[fleet] = self._group_state(fleet, g)
        return found

    def describe_one(self, fleet: str) -> GroupState | None:
        return self.describe([fleet])[fleet]

    def project_fleets(self) -> list[str]:
        """Fleets that have a group tagged with this project (to find what the spec dropped)."""
        fleets: list[str] = []
        with aws_errors("listing the project's Auto Scaling groups"):
            paginator = self.asg.get_paginator("describe_auto_scaling_groups")
            pages = paginator.paginate(
                Filters=[{"Name": f"tag:{TAG_PROJECT}", "Values": [self.project]}]
            )
            for page in pages:
                for g in page["AutoScalingGroups"]:
                    tags = {t["Key"]: t["Value"] for t in g.get("Tags", [])}
                    if tags.get(TAG_PROJECT) == self.project and TAG_FLEET in tags:
                        fleets.append(tags[TAG_FLEET])
        return sorted(set(fleets))

    def _learn_instances(self, ids: Iterable[str]) -> None:
        with self._lock:
            unknown = [i for i in ids if i not in self._instances]
        if not unknown:
            return
        learned: dict[str, dict[str, Any]] = {}
        with aws_errors("describing instances"):
            for i in range(0, len(unknown), 500):
                paginator = self.ec2.get_paginator("describe_instances")
                for page in paginator.paginate(InstanceIds=unknown[i : i + 500]):
                    for res in page["Reservations"]:
                        for inst in res["Instances"]:
                            learned[inst["InstanceId"]] = inst
        with self._lock:
            self._instances.update(learned)

    def _group_state(self, fleet: str, g: Mapping[str, Any]) -> GroupState:
        members = []
        for i in g.get("Instances", []):
            inst = self._instances.get(i["InstanceId"], {})
            tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
            launched = inst.get("LaunchTime")
            members.append(
                Member(
                    instance_id=i["InstanceId"],
                    lifecycle_state=i.get("LifecycleState", "Pending"),
                    health_status=i.get("HealthStatus", "Healthy"),
                    release=tags.get(TAG_RELEASE),
                    private_ip=inst.get("PrivateIpAddress"),
                    public_ip=inst.get("PublicIpAddress"),
                    launched_at=launched.timestamp() if launched is not None else 0.0,
                    ami=inst.get("ImageId"),
                )
            )
        lt = g.get("LaunchTemplate") or {}
        mixed = g.get("MixedInstancesPolicy")
        if not lt and mixed:
            lt = mixed.get("LaunchTemplate", {}).get("LaunchTemplateSpecification", {})
        subnets = tuple(s for s in (g.get("VPCZoneIdentifier") or "").split(",") if s)
        return GroupState(
            fleet=fleet,
            name=g["AutoScalingGroupName"],
            min=int(g["MinSize"]),
            desired=int(g["DesiredCapacity"]),
            max=int(g["MaxSize"]),
            launch_template=lt.get("LaunchTemplateName"),
            version=str(lt["Version"]) if lt.get("Version") is not None else None,
            target_groups=tuple(g.get("TargetGroupARNs", [])),
            subnets=subnets,
            tags={t["Key"]: t["Value"] for t in g.get("Tags", [])},
            members=tuple(members),
            suspended=frozenset(p["ProcessName"] for p in g.get("SuspendedProcesses", [])),
            health_check_type=g.get("HealthCheckType", "EC2"),
        )

    # --- launch templates ------------------------------------------------------------------

    def launch_data(
        self, fleet: FleetSpec, release: Release, rollout: str | None
    ) -> dict[str, Any]:
        cfg = release.launch_config
        tags = [
            {"Key": k, "Value": v}
            for k, v in {
                **dict(fleet.tags),
                **self.base_tags(fleet.name),
                TAG_RELEASE: release.id,
                **({TAG_ROLLOUT: rollout} if rollout else {}),
            }.items()
        ]
        data: dict[str, Any] = {
            "ImageId": cfg["image_id"],
            "InstanceType": cfg["instance_type"],
            "NetworkInterfaces": [
                {
                    "DeviceIndex": 0,
                    "AssociatePublicIpAddress": bool(cfg["public_ip"]),
                    "Groups": list(cfg["security_groups"]),
                    "DeleteOnTermination": True,
                }
            ],
            "MetadataOptions": {
                "HttpTokens": "required" if cfg["imdsv2_required"] else "optional",
                "HttpEndpoint": "enabled",
                "HttpPutResponseHopLimit": 2,
            },
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
        }
        if cfg["encrypt_volumes"]:
            device, size = self.root_volume(str(cfg["image_id"]))
            ebs: dict[str, Any] = {
                "Encrypted": True,
                "VolumeType": "gp3",
                "DeleteOnTermination": True,
            }
            if size:
                ebs["VolumeSize"] = size  # the image's own size (the emulator insists on one)
            data["BlockDeviceMappings"] = [{"DeviceName": device, "Ebs": ebs}]
        user_data = encode_user_data(user_data_text(fleet))
        if user_data:
            data["UserData"] = user_data
        if cfg.get("key_name"):
            data["KeyName"] = cfg["key_name"]
        profile = cfg.get("iam_instance_profile")
        if profile:
            key = "Arn" if str(profile).startswith("arn:") else "Name"
            data["IamInstanceProfile"] = {key: profile}
        return data

    def root_volume(self, ami: str) -> tuple[str, int | None]:
        """The image's root device name and size (GiB), to encrypt the root volume."""
        with aws_errors(f"describing image {ami}"):
            images = self.ec2.describe_images(ImageIds=[ami])["Images"]
        if not images:
            from ..errors import AwsError

            raise AwsError(f"image {ami} not found in {self.region}", code="InvalidAMIID.NotFound")
        image = images[0]
        device = str(image.get("RootDeviceName") or "/dev/xvda")
        for mapping in image.get("BlockDeviceMappings", []):
            if mapping.get("DeviceName") == device and mapping.get("Ebs", {}).get("VolumeSize"):
                return device, int(mapping["Ebs"]["VolumeSize"])
        return device, None

    def version_of_release(self, fleet: str, release: str) -> int | None:
        """The launch template version that carries ``release`` (converges after a crash)."""
        versions = self.versions_of_release(fleet, release)
        return versions[0] if versions else None

    def versions_of_release(self, fleet: str, release: str) -> list[int]:
        """Every launch template version that carries ``release``, oldest first.

        One, normally; more only where a create was sent again after its answer was lost on a
        service that does not honour the client token: a rollback deletes them all.
        """
        name = self.name(fleet)
        with aws_errors(f"describing launch template {name}"):
            try:
                paginator = self.ec2.get_paginator("describe_launch_template_versions")
                pages = list(paginator.paginate(LaunchTemplateName=name))
            except Exception as exc:
                if error_code(exc) in (
                    "InvalidLaunchTemplateName.NotFoundException",
                    "InvalidLaunchTemplateId.NotFound",
                ):
                    return []
                raise
        found: set[int] = set()
        for page in pages:
            for v in page["LaunchTemplateVersions"]:
                for spec in v.get("LaunchTemplateData", {}).get("TagSpecifications", []):
                    tags = {t["Key"]: t["Value"] for t in spec.get("Tags", [])}
                    if tags.get(TAG_RELEASE) == release:
                        found.add(int(v["VersionNumber"]))
        return sorted(found)

    def ensure_version(self, fleet: FleetSpec, release: Release, rollout: str | None) -> int:
        """The launch template version of ``release``: found if it exists, created otherwise.

        The create carries a client token (template, release, rollout), so that botocore's
        retry of a request whose answer was lost returns the version the first attempt made
        instead of making a second one. The rollout is part of the token: a release deployed
        again after a rollback deleted its version gets a new version, not the deleted one.
        """
        existing = self.version_of_release(fleet.name, release.id)
        if existing is not None:
            return existing
        name = self.name(fleet.name)
        data = self.launch_data(fleet, release, rollout)
        tags = [{"Key": k, "Value": v} for k, v in self.base_tags(fleet.name).items()]
        token = client_token(name, release.id, rollout or "")
        with aws_errors(f"creating a version of launch template {name}"):
            try:
                out = self.ec2.create_launch_template_version(
                    LaunchTemplateName=name,
                    LaunchTemplateData=data,
                    VersionDescription=f"release {release.id}",
                    ClientToken=token,
                )
                return int(out["LaunchTemplateVersion"]["VersionNumber"])
            except Exception as exc:
                if error_code(exc) not in (
                    "InvalidLaunchTemplateName.NotFoundException",
                    "InvalidLaunchTemplateId.NotFound",
                ):
                    raise
            try:
                out = self.ec2.create_launch_template(
                    LaunchTemplateName=name,
                    LaunchTemplateData=data,
                    VersionDescription=f"release {release.id}",
                    TagSpecifications=[{"ResourceType": "launch-template", "Tags": tags}],
                    ClientToken=token,
                )
            except Exception as exc:
                # A retried create whose first answer was lost, where the token is not
                # honoured: the template is there, with this release's version in it.
                if error_code(exc) != "InvalidLaunchTemplateName.AlreadyExistsException":
                    raise
                made = self.version_of_release(fleet.name, release.id)
                if made is None:
                    raise
                return made
            return int(out["LaunchTemplate"]["LatestVersionNumber"])

    def delete_versions(self, fleet: str, versions: Iterable[int]) -> None:
        vs = [str(v) for v in versions]
        if not vs:
            return
        with aws_errors(f"deleting launch template versions of {self.name(fleet)}"):
            out = self.ec2.delete_launch_template_versions(
                LaunchTemplateName=self.name(fleet), Versions=vs
            )
        failed = [
            f"{v.get('VersionNumber')}: {v.get('ResponseError', {}).get('Code')}"
            for v in out.get("UnsuccessfullyDeletedLaunchTemplateVersions", [])
            if v.get("ResponseError", {}).get("Code") != "launchTemplateVersionDoesNotExist"
        ]
        if failed:
            from ..errors import AwsError

            raise AwsError(
                f"could not delete launch template versions of {self.name(fleet)}: "
                + ", ".join(failed)
            )

    # --- groups ----------------------------------------------------------------------------

    def create_group(
        self,
        fleet: FleetSpec,
        version: int,
        *,
        subnets: Sequence[str],
        target_groups: Sequence[str],
        release: str,
        max_size: int,
    ) -> None:
        tags = [
            {
                "Key": k,
                "Value": v,
                "PropagateAtLaunch": False,
                "ResourceId": self.name(fleet.name),
                "ResourceType": "auto-scaling-group",
            }
            for k, v in {**dict(fleet.tags), **self.base_tags(fleet.name)}.items()
        ]
        with aws_errors(f"creating Auto Scaling group {self.name(fleet.name)}"):
            self.asg.create_auto_scaling_group(
                AutoScalingGroupName=self.name(fleet.name),
                LaunchTemplate={
                    "LaunchTemplateName": self.name(fleet.name),
                    "Version": str(version),
                },
                MinSize=0,
                DesiredCapacity=0,
                MaxSize=max_size,
                VPCZoneIdentifier=",".join(subnets),
                TargetGroupARNs=list(target_groups),
                HealthCheckType="ELB" if target_groups else "EC2",
                HealthCheckGracePeriod=60,
                Tags=tags,
            )

    def update_group(
        self,
        fleet: str,
        *,
        version: int | None = None,
        min_size: int | None = None,
        desired: int | None = None,
        max_size: int | None = None,
    ) -> None:
        args: dict[str, Any] = {"AutoScalingGroupName": self.name(fleet)}
        if version is not None:
            args["LaunchTemplate"] = {
                "LaunchTemplateName": self.name(fleet),
                "Version": str(version),
            }
        if min_size is not None:
            args["MinSize"] = min_size
        if desired is not None:
            args["DesiredCapacity"] = desired
        if max_size is not None:
            args["MaxSize"] = max_size
        with aws_errors(f"updating Auto Scaling group {self.name(fleet)}"):
            self.asg.update_auto_scaling_group(**args)

    def tag_group(self, fleet: str, tags: Mapping[str, str]) -> None:
        with aws_errors(f"tagging Auto Scaling group {self.name(fleet)}"):
            self.asg.create_or_update_tags(
                Tags=[
                    {
                        "ResourceId": self.name(fleet),
                        "ResourceType": "auto-scaling-group",
                        "Key": k,
                        "Value": v,
                        "PropagateAtLaunch": False,
                    }
                    for k, v in tags.items()
                ]
            )

    def suspend(self, fleet: str) -> None:
        with aws_errors(f"suspending processes of {self.name(fleet)}"):
            self.asg.suspend_processes(
                AutoScalingGroupName=self.name(fleet),
                ScalingProcesses=list(SUSPENDED_DURING_ROLLOUT),
            )

    def resume(self, fleet: str, processes: Sequence[str] = SUSPENDED_DURING_ROLLOUT) -> None:
        with aws_errors(f"resuming processes of {self.name(fleet)}"):
            self.asg.resume_processes(
                AutoScalingGroupName=self.name(fleet), ScalingProcesses=list(processes)
            )

    def deregister(self, target_groups: Sequence[str], instance_ids: Sequence[str]) -> None:
        """Take instances out of their target groups (the emulator does not do it on detach)."""
        if not instance_ids:
            return
        with aws_errors("deregistering targets"):
            for tg in target_groups:
                self.elbv2.deregister_targets(
                    TargetGroupArn=tg, Targets=[{"Id": i} for i in instance_ids]
                )

    def still_registered(
        self, target_groups: Sequence[str], instance_ids: Sequence[str]
    ) -> set[str]:
        """Instances still registered (or draining) in any of the target groups."""
        if not instance_ids:
            return set()
        remaining: set[str] = set()
        with aws_errors("describing target health"):
            for tg in target_groups:
                out = self.elbv2.describe_target_health(
                    TargetGroupArn=tg, Targets=[{"Id": i} for i in instance_ids]
                )
                for d in out["TargetHealthDescriptions"]:
                    # "unused" means out of the group; anything else (draining included)
                    # means the target still takes or finishes traffic.
                    state = d.get("TargetHealth", {}).get("State")
                    if state is not None and state != "unused":
                        remaining.add(d["Target"]["Id"])
        return remaining

    def registered_targets(self, target_groups: Sequence[str]) -> dict[str, str]:
        """Every instance registered in the target groups and taking new requests (any state
        but ``draining`` and ``unused``) -> its state; one call per target group."""
        found: dict[str, str] = {}
        with aws_errors("describing target health"):
            for tg in target_groups:
                out = self.elbv2.describe_target_health(TargetGroupArn=tg)
                for d in out["TargetHealthDescriptions"]:
                    state = str(d.get("TargetHealth", {}).get("State", "unavailable"))
                    if state not in ("draining", "unused"):
                        found[str(d["Target"]["Id"])] = state
        return found

    def fleet_instances(self, fleet: str, instance_ids: Sequence[str]) -> dict[str, str | None]:
        """Those of ``instance_ids`` that are pending or running instances of ``fleet`` (by
        its tags) -> their release tag. A filter, not InstanceIds: unknown ids are no error."""
        found: dict[str, str | None] = {}
        ids = list(instance_ids)
        with aws_errors(f"describing instances of fleet {fleet!r}"):
            for i in range(0, len(ids), 200):
                paginator = self.ec2.get_paginator("describe_instances")
                pages = paginator.paginate(
                    Filters=[
                        {"Name": "instance-id", "Values": ids[i : i + 200]},
                        {"Name": f"tag:{TAG_PROJECT}", "Values": [self.project]},
                        {"Name": f"tag:{TAG_FLEET}", "Values": [fleet]},
                        {"Name": "instance-state-name", "Values": ["pending", "running"]},
                    ]
                )
                for page in pages:
                    for res in page["Reservations"]:
                        for inst in res["Instances"]:
                            tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                            found[str(inst["InstanceId"])] = tags.get(TAG_RELEASE)
        return found

    def deregistration_delay(self, target_groups: Sequence[str]) -> float:
        delay = 0.0
        with aws_errors("describing target group attributes"):
            for tg in target_groups:
                attrs = self.elbv2.describe_target_group_attributes(TargetGroupArn=tg)
                for a in attrs["Attributes"]:
                    if a["Key"] == "deregistration_delay.timeout_seconds":
                        delay = max(delay, float(a["Value"]))
        return delay

    def detach_and_terminate(
        self, fleet: str, instance_ids: Sequence[str], *, replace: bool = False
    ) -> None:
        """Detach instances and terminate them, in batches. The detach lowers the desired
        capacity, or with ``replace`` keeps it, so that the group launches as many instances
        from its launch template version in their place (a retire and the next launch in one
        call)."""
        ids = list(instance_ids)
        with aws_errors(f"retiring instances of {self.name(fleet)}"):
            for i in range(0, len(ids), 20):
                try:
                    self.asg.detach_instances(
                        AutoScalingGroupName=self.name(fleet),
                        InstanceIds=ids[i : i + 20],
                        ShouldDecrementDesiredCapacity=not replace,
                    )
                except Exception as exc:
                    # Already detached (a retried step after a crash): terminate anyway.
                    if error_code(exc) != "ValidationError":
                        raise
            for i in range(0, len(ids), 500):
                self.ec2.terminate_instances(InstanceIds=ids[i : i + 500])

    def delete_group(self, fleet: str) -> None:
        with aws_errors(f"deleting fleet {self.name(fleet)}"):
            try:
                self.asg.delete_auto_scaling_group(
                    AutoScalingGroupName=self.name(fleet), ForceDelete=True
                )
            except Exception as exc:
                if error_code(exc) != "ValidationError":
                    raise
            found = self.ec2.describe_launch_templates(
                Filters=[{"Name": "launch-template-name", "Values": [self.name(fleet)]}]
            )["LaunchTemplates"]
            if found:
                self.ec2.delete_launch_template(LaunchTemplateName=self.name(fleet))


def client_token(*parts: str) -> str:
    """An idempotency token for EC2 (at most 64 ASCII characters) from what makes a request
    the same request."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:64]
