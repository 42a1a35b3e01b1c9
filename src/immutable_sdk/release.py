"""Releases: the immutable (artifact, launch configuration) pair a fleet runs.

A release id is a digest of everything that shapes an instance, so the same inputs always give
the same release and any change that would alter what runs on an instance gives a new one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import StateError
from .plugin import Artifact
from .spec.model import FleetSpec

if TYPE_CHECKING:
    from .state.base import ReleaseRecord

# launch_config keys that are settings of the group rather than of the launch template
GROUP_KEYS = ("subnets", "target_groups")


@dataclass(frozen=True)
class Release:
    fleet: str
    id: str
    launch_config: Mapping[str, Any]
    artifact: Artifact

    @property
    def ami(self) -> str:
        return str(self.launch_config["image_id"])


def user_data_text(fleet: FleetSpec) -> str | None:
    if fleet.user_data is None:
        return None
    return fleet.user_data.read_text()


def launch_config(
    fleet: FleetSpec,
    artifact: Artifact,
    region: str,
    *,
    security_group_ids: list[str],
    subnet_ids: list[str],
    target_group_arns: list[str],
) -> dict[str, Any]:
    """The canonical, JSON-able description of what an instance of ``fleet`` runs with."""
    user_data = user_data_text(fleet)
    return {
        "image_id": artifact.ami(region),
        "image": artifact.image,
        "image_digest": artifact.digest_in(region),
        "instance_type": fleet.instance_type,
        "security_groups": sorted(security_group_ids),
        "user_data_sha256": hashlib.sha256(user_data.encode()).hexdigest() if user_data else None,
        "key_name": fleet.key_name,
        "iam_instance_profile": fleet.iam_instance_profile,
        "imdsv2_required": fleet.security.imdsv2_required,
        "encrypt_volumes": fleet.security.encrypt_volumes,
        "public_ip": fleet.security.public_ip,
        "subnets": sorted(subnet_ids),
        "target_groups": sorted(target_group_arns),
    }


def release_id(config: Mapping[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return "r-" + hashlib.sha256(blob).hexdigest()[:12]


def make_release(fleet: FleetSpec, artifact: Artifact, config: dict[str, Any]) -> Release:
    return Release(fleet=fleet.name, id=release_id(config), launch_config=config, artifact=artifact)


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Which launch settings differ, in a stable order (the planner's reasons)."""
    return [k for k in new if old.get(k) != new.get(k)] + [k for k in old if k not in new]


def encode_user_data(text: str | None) -> str | None:
    return base64.b64encode(text.encode()).decode() if text else None


def artifact_to_dict(artifact: Artifact) -> dict[str, Any]:
    """The artifact as the state store records it (``release_from_record`` reads it back)."""
    return {
        "image": artifact.image,
        "builder": artifact.builder,
        "digest": artifact.digest,
        "amis": dict(artifact.amis),
        "lineage": dict(artifact.lineage),
        "built": artifact.built,
    }


def release_from_record(fleet: FleetSpec, record: ReleaseRecord) -> Release:
    """The release a state record describes, checked against its own id (StateError when the
    record is damaged or was changed by hand)."""
    a = record.artifact
    try:
        artifact = Artifact(
            image=str(a["image"]),
            builder=str(a["builder"]),
            digest=str(a["digest"]),
            amis=dict(a["amis"]),
            lineage=dict(a.get("lineage", {})),
        )
        release = make_release(fleet, artifact, dict(record.launch_config))
    except (KeyError, TypeError, ValueError) as exc:
        missing = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
        raise StateError(
            f"release {record.release} of fleet {fleet.name!r} (release number {record.seq}): "
            f"its recorded artifact or launch configuration is damaged ({missing}); "
            "the state store was changed by hand? See docs/operations.md"
        ) from exc
    if release.id != record.release:
        raise StateError(
            f"release {record.release} of fleet {fleet.name!r} does not match its recorded "
            "launch configuration (the state store was changed by hand?)"
        )
    return release
