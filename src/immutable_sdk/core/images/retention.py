"""Which golden-image artifacts to keep and which to garbage-collect: pure decisions, no AWS.

``plan_gc`` keeps, per image, the ``retain`` newest artifacts, and beyond them every artifact that
is protected (used by a fleet's current or previous release, by a rollout in progress, by a launch
template version an Auto Scaling group still references, or by a running instance) or younger
than ``min_age``. Everything else is deleted: the AMI in every region and its snapshots.
``gc`` gathers the inputs (from AWS through ``aws.images``, and the state store) and carries
the decision out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...aws.images import StoredArtifact
from ...state.base import ReleaseRecord, RolloutRecord


@dataclass(frozen=True)
class GcPlan:
    """The decision for one image: what stays (and why) and what goes."""

    keep: list[tuple[StoredArtifact, str]]
    delete: list[StoredArtifact]


def newest_first(artifacts: Sequence[StoredArtifact]) -> list[StoredArtifact]:
    """Newest first; an artifact of unknown age counts as the newest (it is never deleted)."""
    return sorted(artifacts, key=lambda a: (a.built_at is not None, -(a.built_at or 0.0), a.digest))


def plan_gc(
    artifacts: Sequence[StoredArtifact],
    protected: Mapping[str, str],
    now: float,
    retain: int,
    min_age: float,
) -> GcPlan:
    """Keep the ``retain`` newest of one image's artifacts, then the protected and the young.

    ``protected`` maps AMI id -> why it must stay; an artifact is protected when any of its AMIs
    is. ``now`` and ``min_age`` are seconds (the clock's).
    """
    keep: list[tuple[StoredArtifact, str]] = []
    delete: list[StoredArtifact] = []
    for index, artifact in enumerate(newest_first(artifacts)):
        reasons = sorted({protected[a] for a in artifact.ami_ids() if a in protected})
        if index < retain:
            keep.append((artifact, f"one of the {retain} newest (retain)"))
        elif reasons:
            keep.append((artifact, "; ".join(reasons)))
        elif artifact.built_at is None:
            keep.append((artifact, "age unknown"))
        elif now - artifact.built_at < min_age:
            keep.append((artifact, "younger than the minimum age"))
        else:
            delete.append(artifact)
    return GcPlan(keep, delete)


def release_roles(
    releases: Sequence[ReleaseRecord], rollouts: Sequence[RolloutRecord]
) -> dict[str, str]:
    """Release id -> its role for a fleet: current, previous, rolling out, newest recorded.

    Both arguments newest first (as the state store returns them). The current release is the
    newest finished rollout's target when it was promoted, else its origin (a rolled-back or
    failed rollout leaves the old release running); without rollouts, the newest release. The
    previous release is what the current one replaced (the rollback target).
    """
    roles: dict[str, str] = {}
    order = [r.release for r in releases]
    if order:
        roles[order[0]] = "newest"
    current: str | None = order[0] if order and not rollouts else None
    for rollout in rollouts:
        if rollout.outcome is None:  # in progress: both ends are live
            roles[rollout.to_release] = "rolling out"
            if rollout.from_release:
                roles[rollout.from_release] = "current"
            continue
        current = rollout.to_release if rollout.outcome == "promoted" else rollout.from_release
        break
    if current is None:
        return roles
    roles[current] = "current"
    promoted_by = next(
        (r for r in rollouts if r.outcome == "promoted" and r.to_release == current), None
    )
    previous = promoted_by.from_release if promoted_by else None
    if previous is None and current in order and order.index(current) + 1 < len(order):
        previous = order[order.index(current) + 1]
    if previous and previous not in roles:
        roles[previous] = "previous"
    return roles


def release_usage(
    fleet: str, releases: Sequence[ReleaseRecord], rollouts: Sequence[RolloutRecord]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """For one fleet: AMI id -> every release using it, and AMI id -> why it is protected."""
    roles = release_roles(releases, rollouts)
    usage: dict[str, list[str]] = {}
    protected: dict[str, str] = {}
    for record in releases:
        role = roles.get(record.release)
        label = f"{fleet} #{record.seq}" + (f" ({role})" if role else "")
        for ami in dict(record.artifact.get("amis", {})).values():
            usage.setdefault(str(ami), []).append(label)
            if role and role != "newest":
                protected[str(ami)] = f"used by fleet {fleet} release #{record.seq} ({role})"
            elif role:
                protected.setdefault(str(ami), f"used by fleet {fleet} release #{record.seq}")
    return usage, protected
