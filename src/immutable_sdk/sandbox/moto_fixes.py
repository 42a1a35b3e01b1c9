"""Fixes to the embedded emulator where moto differs from AWS in what the SDK needs.

* moto (5.2) does not implement EC2 ``DeleteLaunchTemplateVersions``, which the SDK calls so
  that a failed release leaves no launch template version behind. It is added here with AWS's
  semantics: versions are removed (describes and launches no longer see them), numbers are never
  reused, and the default version cannot be deleted.
* moto's ``CreateLaunchTemplateVersion`` stores ``UserData`` unparsed, and an Auto Scaling group
  launching from such a version then fails inside moto (HTTP 500). The version's user data is
  parsed here as ``CreateLaunchTemplate`` already does.
* A request sent again (its first answer lost) must meet AWS's answer, not moto's: a second
  ``DetachInstances`` of instances no longer in the group is refused (``ValidationError``; moto
  lowered desired capacity again), ``DeregisterTargets`` of a target that is not registered
  succeeds (moto answered ``InvalidTarget``), and ``CreateLaunchTemplateVersion`` with a
  ``ClientToken`` it has seen on that template answers with the version it made then (moto
  ignored the token and made a second version).
* ``CreateImage`` makes an EBS-backed AMI on AWS (it works only on EBS-backed instances); moto
  gave it the root device type ``standard``, which Packer's ``amazon-ebs`` builder refuses as a
  source: a golden image could not be the base of another build (a base image pipeline).
  Here the AMI gets the root device type and name of the instance's own image.
* moto's DynamoDB checks a write's condition and then writes, with nothing between two server
  threads: two conditional writes (or transactions) at once could both pass and one overwrite
  the other. DynamoDB makes each write, and each transaction, atomic; here the backend's writes
  run one at a time, so the state store's conditional writes mean on the emulator what they
  mean on AWS.

Production code is unchanged: it calls the same APIs on AWS.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.models import AutoScalingBackend
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import InvalidLaunchTemplateVersionNotFound
    from moto.ec2.models import EC2Backend
    from moto.ec2.models.launch_templates import LaunchTemplate
    from moto.ec2.responses.launch_templates import LaunchTemplates
    from moto.ec2.utils import parse_user_data
    from moto.elbv2.models import FakeTargetGroup

    original_get_version = LaunchTemplate.get_version
    original_create_version = LaunchTemplate.create_version

    def create_version(self: Any, data: dict[str, Any], description: str) -> Any:
        replay = getattr(self, "replay", None)
        if replay is not None:
            return replay
        if isinstance(data.get("UserData"), str):
            data = {**data, "UserData": parse_user_data(data["UserData"])}
        return original_create_version(self, data, description)

    def get_version(self: Any, num: Any) -> Any:
        version = original_get_version(self, num)
        if getattr(version, "deleted", False):
            raise InvalidLaunchTemplateVersionNotFound(template_id=self.id, version=num)
        return version

    original_create_version_call = LaunchTemplates.create_launch_template_version

    def create_launch_template_version(self: Any) -> Any:
        token = self._get_param("ClientToken")
        name = self._get_param("LaunchTemplateName")
        if not token or not name or name not in self.ec2_backend.launch_template_name_to_ids:
            return original_create_version_call(self)  # moto's own answer, errors included
        template = self.ec2_backend.get_launch_template_by_name(name)
        tokens: dict[str, int] = template.__dict__.setdefault("client_tokens", {})
        if token in tokens:  # replay: create_version hands back the version made then
            template.replay = original_get_version(template, tokens[token])
        try:
            answer = original_create_version_call(self)
        finally:
            template.replay = None
        tokens.setdefault(token, template.latest_version_number)
        return answer

    original_describe = EC2Backend.describe_launch_template_versions

    def describe_versions(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = original_describe(self, *args, **kwargs)
        return [(t, v) for t, v in found if not getattr(v, "deleted", False)]

    def delete_launch_template_versions(self: Any) -> Any:
        name = self._get_param("LaunchTemplateName")
        template_id = self._get_param("LaunchTemplateId")
        numbers = [str(v) for v in self._get_param("Versions", [])]
        self.error_on_dryrun()
        if name:
            template = self.ec2_backend.get_launch_template_by_name(name)
        else:
            template = self.ec2_backend.get_launch_template(template_id)
        ok, failed = [], []
        ident = {"LaunchTemplateId": template.id, "LaunchTemplateName": template.name}
        for number in numbers:
            try:
                version = original_get_version(template, int(number))
            except (ValueError, InvalidLaunchTemplateVersionNotFound):
                version = None
            if version is None or getattr(version, "deleted", False):
                code, message = "launchTemplateVersionDoesNotExist", "version does not exist"
            elif template.is_default(version):
                code, message = "launchTemplateVersionIsDefaultVersion", "cannot delete default"
            else:
                version.deleted = True  # type: ignore[attr-defined]
                ok.append({**ident, "VersionNumber": int(number)})
                continue
            failed.append(
                {
                    **ident,
                    "VersionNumber": int(number) if number.isdigit() else 0,
                    "ResponseError": {"Code": code, "Message": message},
                }
            )
        return ActionResult(
            {
                "SuccessfullyDeletedLaunchTemplateVersions": ok,
                "UnsuccessfullyDeletedLaunchTemplateVersions": failed,
            }
        )

    original_detach = AutoScalingBackend.detach_instances

    def detach_instances(
        self: Any, group_name: str, instance_ids: list[str], should_decrement: bool
    ) -> Any:
        group = self.autoscaling_groups[group_name]
        members = {s.instance.id for s in group.instance_states}
        for instance_id in instance_ids:
            if instance_id not in members:
                raise ValidationError(
                    f"The instance {instance_id} is not part of Auto Scaling group {group_name}."
                )
        return original_detach(self, group_name, instance_ids, should_decrement)

    def deregister(self: Any, targets: list[dict[str, Any]]) -> None:
        for target in targets:
            t = self.targets.pop(target["Id"], None)
            if t is not None:
                self.deregistered_targets[target["Id"]] = t

    AutoScalingBackend.detach_instances = detach_instances  # type: ignore[method-assign]
    FakeTargetGroup.deregister = deregister  # type: ignore[method-assign]
    LaunchTemplate.get_version = get_version  # type: ignore[method-assign]
    LaunchTemplate.create_version = create_version  # type: ignore[method-assign]
    EC2Backend.describe_launch_template_versions = describe_versions  # type: ignore[method-assign]
    LaunchTemplates.delete_launch_template_versions = (  # type: ignore[attr-defined]
        delete_launch_template_versions
    )
    LaunchTemplates.create_launch_template_version = (  # type: ignore[method-assign]
        create_launch_template_version
    )
    _ebs_backed_create_image(EC2Backend)
    _serialize_dynamodb_writes()
    _installed = True


def _ebs_backed_create_image(backend: Any) -> None:
    original = backend.create_image

    @functools.wraps(original)
    def create_image(self: Any, instance_id: str, *args: Any, **kwargs: Any) -> Any:
        ami = original(self, instance_id, *args, **kwargs)
        source = self.amis.get(getattr(self.get_instance(instance_id), "image_id", ""))
        ami.root_device_type = "ebs"
        if source is not None:
            ami.root_device_name = source.root_device_name
        return ami

    backend.create_image = create_image


def _serialize_dynamodb_writes() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()  # one for all backends: writes are short, and tests are small

    def atomic(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def write(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(self, *args, **kwargs)

        return write

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        setattr(DynamoDBBackend, name, atomic(getattr(DynamoDBBackend, name)))
