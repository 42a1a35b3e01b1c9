"""The garbage collector's decisions, as pure functions."""

from __future__ import annotations

from typing import Any

from immutable_sdk.aws.images import StoredArtifact
from immutable_sdk.core.images.retention import (
    plan_gc,
    release_roles,
    release_usage,
)
from immutable_sdk.state.base import ReleaseRecord, RolloutRecord

DAY = 86400.0
NOW = 1_800_000_000.0


def artifact(n: int, age_days: float | None) -> StoredArtifact:
    built = None if age_days is None else NOW - age_days * DAY
    return StoredArtifact("web", f"sha256:{n}", "packer", built, {"us-east-1": f"ami-{n}"})


def digests(items: list[Any]) -> list[str]:
    return [(i[0] if isinstance(i, tuple) else i).digest for i in items]


def test_retain_keeps_the_newest_then_only_what_is_protected() -> None:
    arts = [artifact(n, age) for n, age in ((1, 40), (2, 30), (3, 20), (4, 10))]
    plan = plan_gc(arts, {"ami-3": "used by fleet web release #2 (previous)"}, NOW, 1, DAY)
    assert digests(plan.keep) == ["sha256:4", "sha256:3"]
    assert plan.keep[1][1] == "used by fleet web release #2 (previous)"
    assert digests(plan.delete) == ["sha256:2", "sha256:1"]


def test_young_and_undated_artifacts_stay() -> None:
    arts = [artifact(1, 40), artifact(2, 0.5), artifact(3, None), artifact(4, 0.1)]
    plan = plan_gc(arts, {}, NOW, 1, DAY)
    # undated counts as newest: it takes the retained slot, the young stay for their age
    assert [(a.digest, why) for a, why in plan.keep] == [
        ("sha256:3", "one of the 1 newest (retain)"),
        ("sha256:4", "younger than the minimum age"),
        ("sha256:2", "younger than the minimum age"),
    ]
    assert digests(plan.delete) == ["sha256:1"]


def test_an_artifact_is_protected_by_any_of_its_regions() -> None:
    multi = StoredArtifact(
        "web", "sha256:m", "packer", NOW - 9 * DAY, {"us-east-1": "ami-a", "eu-west-1": "ami-b"}
    )
    plan = plan_gc([artifact(9, 1), multi], {"ami-b": "instance i-1"}, NOW, 1, DAY)
    assert plan.delete == [] and plan.keep[1] == (multi, "instance i-1")


def release(seq: int) -> ReleaseRecord:
    return ReleaseRecord(
        fleet="web",
        release=f"r{seq}",
        seq=seq,
        artifact={"amis": {"us-east-1": f"ami-{seq}"}},
        launch_config={},
        created_at=NOW + seq,
    )


def rollout(frm: int | None, to: int, outcome: str | None) -> RolloutRecord:
    return RolloutRecord(
        id=f"ro{to}",
        fleet="web",
        strategy="rolling",
        from_release=f"r{frm}" if frm else None,
        to_release=f"r{to}",
        phase="promoted",
        started_at=NOW + to,
        outcome=outcome,
    )


def test_current_and_previous_after_promotions() -> None:
    releases = [release(3), release(2), release(1)]
    rollouts = [rollout(2, 3, "promoted"), rollout(1, 2, "promoted"), rollout(None, 1, "promoted")]
    assert release_roles(releases, rollouts) == {"r3": "current", "r2": "previous"}


def test_a_rolled_back_release_leaves_the_old_one_current() -> None:
    releases = [release(3), release(2), release(1)]
    rollouts = [
        rollout(2, 3, "rolled_back"),
        rollout(1, 2, "promoted"),
        rollout(None, 1, "promoted"),
    ]
    assert release_roles(releases, rollouts) == {"r3": "newest", "r2": "current", "r1": "previous"}


def test_a_rollout_in_progress_protects_both_ends() -> None:
    releases = [release(4), release(3), release(2)]
    rollouts = [rollout(3, 4, None), rollout(2, 3, "promoted")]
    assert release_roles(releases, rollouts) == {
        "r4": "rolling out",
        "r3": "current",
        "r2": "previous",
    }


def test_without_rollouts_the_newest_release_is_current() -> None:
    assert release_roles([release(2), release(1)], []) == {"r2": "current", "r1": "previous"}


def test_release_usage_labels_and_protects() -> None:
    releases = [release(3), release(2), release(1)]
    rollouts = [rollout(2, 3, "promoted"), rollout(1, 2, "promoted")]
    usage, protected = release_usage("web", releases, rollouts)
    assert usage == {
        "ami-3": ["web #3 (current)"],
        "ami-2": ["web #2 (previous)"],
        "ami-1": ["web #1"],
    }
    assert protected == {
        "ami-3": "used by fleet web release #3 (current)",
        "ami-2": "used by fleet web release #2 (previous)",
    }
