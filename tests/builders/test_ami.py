"""The ami builder: pinned ids and filters, resolved against the moto server."""

from __future__ import annotations

from typing import Any

import pytest

from immutable_sdk.builders.ami import AmiBuilder, newest_usable, unusable_reason
from immutable_sdk.clock import VirtualClock
from immutable_sdk.core.context import Context
from immutable_sdk.plugin import Artifact, BuildError

from .conftest import image_spec


def make_ami(ctx: Context, name: str, region: str = "us-east-1") -> str:
    ec2 = ctx.client("ec2", region)
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]
    return str(ec2.create_image(InstanceId=instance["InstanceId"], Name=name)["ImageId"])


def resolve(
    ctx: Context, config: dict[str, Any], regions: tuple[str, ...] = ("us-east-1",)
) -> Artifact:
    image = image_spec({"builder": "ami", **config}, name="base", regions=regions)
    return AmiBuilder(image.config).build(image, ctx)


def test_a_pinned_id_resolves_and_is_its_own_digest(ctx: Context) -> None:
    ami = make_ami(ctx, "golden-base-1")
    artifact = resolve(ctx, {"id": ami})
    assert artifact.amis == {"us-east-1": ami} and not artifact.built
    image = image_spec({"builder": "ami", "id": ami}, name="base")
    assert AmiBuilder(image.config).find(image, ctx) == artifact
    other = make_ami(ctx, "golden-base-2")
    assert resolve(ctx, {"id": other}).digest != artifact.digest


def test_a_pinned_id_cannot_serve_two_regions(ctx: Context) -> None:
    ami = make_ami(ctx, "golden-base-1")
    with pytest.raises(BuildError, match=r"one region only.*give `ids: "):
        resolve(ctx, {"id": ami}, regions=("us-east-1", "eu-west-1"))


def test_ids_per_region(ctx: Context) -> None:
    east, west = make_ami(ctx, "golden-a"), make_ami(ctx, "golden-a", "eu-west-1")
    artifact = resolve(
        ctx, {"ids": {"us-east-1": east, "eu-west-1": west}}, ("us-east-1", "eu-west-1")
    )
    assert artifact.amis == {"us-east-1": east, "eu-west-1": west}
    with pytest.raises(BuildError, match="no AMI given for region us-west-2"):
        resolve(ctx, {"ids": {"us-east-1": east}}, ("us-east-1", "us-west-2"))


def test_an_id_that_does_not_exist(ctx: Context) -> None:
    with pytest.raises(BuildError, match="AMI ami-0000000000000000f does not exist in us-east-1"):
        resolve(ctx, {"id": "ami-0000000000000000f"})


def test_filters_find_the_match_in_each_region(ctx: Context) -> None:
    make_ami(ctx, "unrelated")
    east, west = make_ami(ctx, "golden-base-7"), make_ami(ctx, "golden-base-7", "eu-west-1")
    config = {"filters": {"name": "golden-base-*"}, "owners": ["self"]}
    artifact = resolve(ctx, config, ("us-east-1", "eu-west-1"))
    assert artifact.amis == {"us-east-1": east, "eu-west-1": west}
    # DESIGN.md's spelling: owners inside filters
    same = resolve(ctx, {"filters": {"name": ["golden-base-*"], "owners": ["self"]}})
    assert same.amis == {"us-east-1": east}


def test_filters_that_match_nothing_name_the_region(ctx: Context) -> None:
    make_ami(ctx, "golden-base-7")
    config = {"filters": {"name": "golden-base-*"}, "owners": ["self"]}
    with pytest.raises(BuildError, match="no AMI in eu-west-1 matches name=golden-base-"):
        resolve(ctx, config, ("us-east-1", "eu-west-1"))


NOW = VirtualClock().now()


def described(ami: str, created: str, **extra: Any) -> dict[str, Any]:
    return {"ImageId": ami, "CreationDate": created, "State": "available", **extra}


def test_deprecation_is_judged_by_the_clock() -> None:
    past, future = "2020-01-01T00:00:00.000Z", "2100-01-01T00:00:00.000Z"
    assert unusable_reason(described("ami-1", past, DeprecationTime=future), NOW) is None
    reason = unusable_reason(described("ami-1", past, DeprecationTime=past), NOW)
    assert reason == "is deprecated since 2020-01-01T00:00:00Z"
    assert unusable_reason(described("ami-1", past, State="pending"), NOW) == (
        "is pending, not available"
    )


def test_the_newest_usable_match_wins() -> None:
    older = described("ami-old", "2026-01-01T00:00:00.000Z")
    newer = described("ami-new", "2026-06-01T00:00:00.000Z")
    newest_deprecated = described(
        "ami-dep", "2026-09-01T00:00:00.000Z", DeprecationTime="2026-10-01T00:00:00.000Z"
    )
    assert newest_usable([older, newer], NOW) == (newer, "")
    assert newest_usable([older, newest_deprecated, newer], NOW) == (newer, "")
    only_bad = newest_usable([newest_deprecated], NOW)
    assert only_bad[0] is newest_deprecated and "deprecated" in only_bad[1]
