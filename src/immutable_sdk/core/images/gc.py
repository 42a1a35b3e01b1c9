"""Garbage-collecting golden images: the inventory, the plan per image, and carrying it out.

The inventory is the project's artifacts (``aws.images.list_artifacts``) with what uses each
AMI, from the state store (releases, rollouts in progress) and from AWS (launch template
versions that groups reference, instances that still exist). ``retention.plan_gc`` decides;
``collect`` deletes what the plans say (``aws.images.delete_artifact``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ...aws.images import (
    StoredArtifact,
    delete_artifact,
    in_use_by_aws,
    list_artifacts,
    spec_regions,
)
from ...aws.session import AwsSession
from ...spec.model import Spec
from ...state.base import StateStore
from .retention import GcPlan, newest_first, plan_gc, release_usage


@dataclass
class ImageInventory:
    """Artifacts per image with what uses each AMI, and what must not be deleted."""

    artifacts: list[StoredArtifact]
    usage: dict[str, list[str]] = field(default_factory=dict)  # AMI id -> releases using it
    protected: dict[str, str] = field(default_factory=dict)  # AMI id -> why it must stay

    def of(self, image: str) -> list[StoredArtifact]:
        return [a for a in self.artifacts if a.image == image]

    def used_by(self, artifact: StoredArtifact) -> list[str]:
        return sorted({u for ami in artifact.ami_ids() for u in self.usage.get(ami, ())})


def inventory(spec: Spec, session: AwsSession, state: StateStore) -> ImageInventory:
    """The project's artifacts, the releases that use them and everything that protects them."""
    regions = spec_regions(spec)
    result = ImageInventory(newest_first(list_artifacts(session, spec.name, regions)))
    for fleet, _, _ in spec.units():  # fleet@region: a fleet's releases in another region
        usage, protected = release_usage(fleet, state.releases(fleet), state.rollouts(fleet))
        for ami, labels in usage.items():
            result.usage.setdefault(ami, []).extend(labels)
        for ami, why in protected.items():
            result.protected.setdefault(ami, why)
    for ami, why in in_use_by_aws(session, spec.name, regions).items():
        result.protected.setdefault(ami, f"used by {why}")
    return result


def plan_collection(
    spec: Spec, found: ImageInventory, now: float, min_age: float
) -> dict[str, GcPlan]:
    """Per image of the spec with ``retain`` set: what to keep and what to delete."""
    plans: dict[str, GcPlan] = {}
    for name, image in spec.images.items():
        artifacts = found.of(name)
        if image.retain is None:
            plans[name] = GcPlan([(a, "the image sets no retain") for a in artifacts], [])
        else:
            plans[name] = plan_gc(artifacts, found.protected, now, image.retain, min_age)
    return plans


def collect(
    spec: Spec, session: AwsSession, plans: Mapping[str, GcPlan], *, dry_run: bool
) -> list[tuple[StoredArtifact, Sequence[str]]]:
    """Carry out the plans (unless ``dry_run``): each deleted artifact and its resources."""
    done: list[tuple[StoredArtifact, Sequence[str]]] = []
    for plan in plans.values():
        for artifact in plan.delete:
            if dry_run:
                resources = [
                    *artifact.amis.values(),
                    *(s for ss in artifact.snapshots.values() for s in ss),
                ]
            else:
                resources = delete_artifact(session, artifact)
            done.append((artifact, resources))
    return done
