"""What every builder shares once an AMI exists: lineage tags, lookup by digest, region copies.

Lineage tags (constants in ``immutable_sdk.plugin``) go on the AMI *and* its snapshots:
``immutable-sdk:project``, ``:image``, ``:digest``, ``:built-at`` (ISO 8601, UTC), ``:builder``
and ``:source-ami`` when known. ``find_artifact`` looks an image's digest up in every region it
needs; a region that lacks it while another has it gets a copy (``copy_image``) instead of a
rebuild. Every wait goes through the context's clock, with backoff.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from immutable_sdk.plugin import (
    TAG_BUILDER,
    TAG_BUILT_AT,
    TAG_DIGEST,
    TAG_IMAGE,
    TAG_PROJECT,
    TAG_SOURCE_AMI,
    Artifact,
    BuildError,
    ImageSpec,
    PluginContext,
    aws_error_code,
)

COPY_TIMEOUT = 2 * 3600.0  # seconds a region copy may take before the build fails
FIRST_POLL = 5.0
POLL_FACTOR = 1.5
MAX_POLL = 60.0

T = TypeVar("T")

# Keys every image block has, whatever its builder (the spec's core reads them).
IMAGE_PROPERTIES: dict[str, Any] = {
    "regions": {
        "type": "array",
        "items": {
            "type": "string",
            "pattern": r"^[a-z]{2,}(-[a-z]+)+-[0-9]+$",
            "format": "region",
            "x-expect": "an AWS region like 'us-east-1'",
        },
        "description": "Regions to copy the image to; the spec's region is always included.",
    },
    "retain": {
        "type": "integer",
        "minimum": 1,
        "description": "How many artifacts to keep; older unused ones may be garbage-collected.",
    },
}


def iso_utc(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def lineage_tags(
    image: ImageSpec,
    ctx: PluginContext,
    *,
    digest: str,
    builder: str,
    source_ami: str | None = None,
) -> dict[str, str]:
    tags = {
        TAG_PROJECT: ctx.project,
        TAG_IMAGE: image.name,
        TAG_DIGEST: digest,
        TAG_BUILT_AT: iso_utc(ctx.clock.now()),
        TAG_BUILDER: builder,
    }
    if source_ami:
        tags[TAG_SOURCE_AMI] = source_ami
    return tags


def backoff(first: float, factor: float, cap: float) -> Iterator[float]:
    """Delays ``first, first*factor, ...`` growing to ``cap`` and staying there."""
    delay = first
    while True:
        yield min(delay, cap)
        delay = min(delay * factor, cap)


def wait_for(
    ctx: PluginContext,
    probe: Callable[[], T | None],
    *,
    image: str,
    what: str,
    timeout: float,
    first: float = FIRST_POLL,
    factor: float = POLL_FACTOR,
    cap: float = MAX_POLL,
) -> T:
    """Poll ``probe`` on the clock with backoff until it returns a value; BuildError on timeout."""
    clock = ctx.clock
    deadline = clock.monotonic() + timeout
    for delay in backoff(first, factor, cap):
        result = probe()
        if result is not None:
            return result
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            raise BuildError(image, f"timed out after {timeout:g}s waiting for {what}")
        clock.sleep(min(delay, remaining))
    raise AssertionError("unreachable")  # pragma: no cover


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def snapshot_ids(ami: Mapping[str, Any]) -> list[str]:
    return [
        str(m["Ebs"]["SnapshotId"])
        for m in ami.get("BlockDeviceMappings", ())
        if m.get("Ebs", {}).get("SnapshotId")
    ]


def describe_ami(ctx: PluginContext, region: str, ami_id: str) -> dict[str, Any] | None:
    """The AMI's description, or None when the region does not know it (yet)."""
    try:
        images = ctx.client("ec2", region).describe_images(ImageIds=[ami_id])["Images"]
    except Exception as exc:
        if aws_error_code(exc) in ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"):
            return None
        raise
    return dict(images[0]) if images else None


def tag_ami(
    ctx: PluginContext, region: str, ami: Mapping[str, Any], tags: Mapping[str, str]
) -> None:
    """Tag the AMI (as described) and its snapshots; create_tags is idempotent."""
    resources = [str(ami["ImageId"]), *snapshot_ids(ami)]
    ctx.client("ec2", region).create_tags(Resources=resources, Tags=_tag_list(tags))


def own_tags(ami: Mapping[str, Any]) -> dict[str, str]:
    """The AMI's tags, without AWS-reserved ones (``aws:`` cannot be written)."""
    return {
        str(t["Key"]): str(t["Value"])
        for t in ami.get("Tags", ())
        if not str(t["Key"]).startswith("aws:")
    }


def find_in_region(
    ctx: PluginContext, image: ImageSpec, digest: str, region: str
) -> dict[str, Any] | None:
    """The newest of our AMIs in ``region`` tagged with the digest (available or pending)."""
    filters = [
        {"Name": f"tag:{TAG_DIGEST}", "Values": [digest]},
        {"Name": f"tag:{TAG_PROJECT}", "Values": [ctx.project]},
        {"Name": f"tag:{TAG_IMAGE}", "Values": [image.name]},
        {"Name": "state", "Values": ["available", "pending"]},
    ]
    found = ctx.client("ec2", region).describe_images(Owners=["self"], Filters=filters)["Images"]
    if not found:
        return None
    available = [i for i in found if i.get("State") == "available"]
    return dict(max(available or found, key=lambda i: str(i.get("CreationDate", ""))))


def wait_available(
    ctx: PluginContext, image: str, region: str, ami_id: str, timeout: float = COPY_TIMEOUT
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        ami = describe_ami(ctx, region, ami_id)
        state = (ami or {}).get("State")
        if state in ("failed", "invalid", "deregistered", "error"):
            reason = (ami or {}).get("StateReason", {}).get("Message", "")
            raise BuildError(image, f"AMI {ami_id} in {region} is {state}: {reason}".rstrip(": "))
        return ami if state == "available" else None

    return wait_for(ctx, probe, image=image, what=f"AMI {ami_id} in {region}", timeout=timeout)


def copy_to_regions(
    ctx: PluginContext,
    image: ImageSpec,
    source_region: str,
    source_ami: str,
    regions: Sequence[str],
    *,
    timeout: float = COPY_TIMEOUT,
    token_seed: str | None = None,
) -> dict[str, str]:
    """Copy the AMI to ``regions`` (all started, then all awaited), with its name and tags.

    ``token_seed`` (a build's identity): the copies' client tokens derive from it, so every
    process that finishes the same build asks EC2 for the same copy, not one each."""
    if not regions:
        return {}
    source = describe_ami(ctx, source_region, source_ami)
    if source is None:
        raise BuildError(image.name, f"AMI {source_ami} not found in {source_region} to copy")
    tags = own_tags(source)
    started: dict[str, str] = {}
    for region in regions:
        # A fresh token: botocore's retries of this call reuse it (no double copy), while a
        # later copy of the same digest (after garbage collection) is a new copy.
        token = uuid.uuid4().hex
        if token_seed is not None:
            token = hashlib.sha256(f"{token_seed}\0{region}".encode()).hexdigest()[:32]
        copy = ctx.client("ec2", region).copy_image(
            SourceRegion=source_region,
            SourceImageId=source_ami,
            Name=str(source["Name"]),
            Description=str(source.get("Description") or f"copy of {source_ami}"),
            ClientToken=token,
        )
        started[region] = str(copy["ImageId"])
        ctx.emit("build.copy", image=image.name, region=region, ami=started[region])
    for region, ami_id in started.items():
        tag_ami(ctx, region, wait_available(ctx, image.name, region, ami_id, timeout), tags)
    return started


def complete_regions(
    ctx: PluginContext,
    image: ImageSpec,
    amis: Mapping[str, str],
    *,
    timeout: float = COPY_TIMEOUT,
    token_seed: str | None = None,
) -> dict[str, str]:
    """``amis`` plus copies into every region of ``image.regions`` that lacks one."""
    if not amis:
        raise BuildError(image.name, "no AMI to copy to the image's regions")
    source_region = next((r for r in image.regions if r in amis), next(iter(amis)))
    missing = [r for r in image.regions if r not in amis]
    copies = copy_to_regions(
        ctx,
        image,
        source_region,
        amis[source_region],
        missing,
        timeout=timeout,
        token_seed=token_seed,
    )
    return {**amis, **copies}


def find_artifact(
    image: ImageSpec, ctx: PluginContext, *, digest: str, builder: str
) -> Artifact | None:
    """The artifact with ``digest`` in every region of the image, or None when none has it.

    A region that lacks the AMI while another has it gets a copy now (a copy is cheaper than a
    build and yields the same content); pending AMIs are waited for.
    """
    found: dict[str, dict[str, Any]] = {}
    for region in image.regions:
        ami = find_in_region(ctx, image, digest, region)
        if ami is not None:
            found[region] = ami
    if not found:
        return None
    for region, ami in found.items():
        if ami.get("State") != "available":
            found[region] = wait_available(ctx, image.name, region, str(ami["ImageId"]))
    amis = complete_regions(ctx, image, {r: str(a["ImageId"]) for r, a in found.items()})
    lineage = own_tags(next(iter(found.values())))
    ctx.emit("build.reused", image=image.name, digest=digest, amis=dict(amis))
    return Artifact(
        image=image.name, builder=builder, digest=digest, amis=amis, lineage=lineage, built=False
    )


def finish_build(
    image: ImageSpec,
    ctx: PluginContext,
    *,
    digest: str,
    builder: str,
    amis: Mapping[str, str],
    tags: Mapping[str, str],
    timeout: float = COPY_TIMEOUT,
    token_seed: str | None = None,
) -> Artifact:
    """Tag what a build produced, copy it to the image's other regions, return the artifact.
    ``token_seed``: see ``copy_to_regions``."""
    for region, ami_id in amis.items():
        tag_ami(ctx, region, wait_available(ctx, image.name, region, ami_id, timeout), tags)
    all_amis = complete_regions(ctx, image, amis, timeout=timeout, token_seed=token_seed)
    ctx.emit("build.tagged", image=image.name, digest=digest, amis=dict(all_amis))
    return Artifact(
        image=image.name,
        builder=builder,
        digest=digest,
        amis=all_amis,
        lineage=dict(tags),
        built=True,
    )
