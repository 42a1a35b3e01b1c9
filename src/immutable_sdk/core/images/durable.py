"""Image builds that outlast a tick: started by one process, polled to the end by later ones.

A ``ResumableBuilder`` (EC2 Image Builder) submits a build and returns a handle at once.
``start_build`` records the handle in the state store keyed by image name and digest
(``StateStore.record_build``), so any later process, with fresh builder and store objects,
finds it and calls ``poll_build`` until it ends; it never starts a second build of the same
image while one runs. Two processes that start the same image at the same moment submit it
with the same idempotency token (made from the project, image, digest and attempt), so the
service runs one build and both record the same handle. A failed build is recorded failed with
its reason; the next ``start_build`` submits it again as the next attempt.

Packer builds run in the process (``packer build`` is a child process): they are not
resumable, and run to the end in the tick that starts them (or through ``immutable-sdk
build``). ``is_resumable`` tells the two kinds apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any, TypeGuard

from ...errors import BuildError
from ...plugin import (
    BUILD_DONE,
    BUILD_FAILED,
    BUILD_RUNNING,
    Artifact,
    Builder,
    BuildPoll,
    ImageSpec,
    PluginContext,
    ResumableBuilder,
)
from ...state.base import BuildRecord, StateStore

BUILD_POLL = 60.0  # seconds between a tick's looks at a running build (they take minutes)


def is_resumable(builder: Builder) -> TypeGuard[ResumableBuilder]:
    """Whether ``builder``'s builds can outlast a tick (``start``/``poll``)."""
    return isinstance(builder, ResumableBuilder)


def build_token(project: str, image: str, digest: str, attempt: int) -> str:
    """The idempotency token of an attempt: every process computes the same one."""
    seed = f"{project}\0{image}\0{digest}\0{attempt}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


def start_build(
    state: StateStore,
    builder: ResumableBuilder,
    image: ImageSpec,
    ctx: PluginContext,
    digest: str | None = None,
) -> BuildRecord:
    """The build of ``image``'s current inputs: the running one the state store knows
    (``recorded`` False), else a new one, submitted and recorded (also after a done build:
    the caller asks for a build when ``find`` found no AMI, so a recorded result is stale).
    ``digest``: the image's digest when the caller has it (else the builder computes it)."""
    digest = digest or builder.digest(image, ctx)
    known = state.get_build(image.name, digest)
    if known is not None and known.status == BUILD_RUNNING:
        return replace(known, recorded=False)
    attempt = 1 if known is None else known.attempt + 1
    token = build_token(ctx.project, image.name, digest, attempt)
    handle = dict(builder.start(image, ctx, token=token))
    record = state.record_build(image.name, digest, attempt, handle, ctx.clock.now())
    if record.recorded:
        ctx.emit("build.recorded", image=image.name, digest=digest, attempt=attempt)
    return record


def poll_build(
    state: StateStore,
    builder: ResumableBuilder,
    image: ImageSpec,
    ctx: PluginContext,
    digest: str,
) -> BuildPoll:
    """Ask once where the recorded build of ``image`` (at ``digest``) stands; record its end.

    ``done``: the artifact (the poll that sees the end tags and copies the AMIs). ``running``:
    ask again in a later tick. A failed build is recorded failed and raises BuildError with
    the service's reason. BuildError too when no build of this digest was started."""
    record = state.get_build(image.name, digest)
    if record is None:
        raise BuildError(image.name, f"no build of digest {digest} was started")
    if record.status == BUILD_FAILED:
        raise BuildError(image.name, str(record.result.get("reason", "the build failed")))
    if record.status == BUILD_DONE:
        return BuildPoll(BUILD_DONE, artifact=_artifact(record), detail="AVAILABLE")
    polled = builder.poll(image, record.handle, ctx)
    now = ctx.clock.now()
    if polled.status == BUILD_FAILED:
        state.finish_build(
            image.name, digest, record.attempt, BUILD_FAILED, {"reason": polled.reason}, now
        )
        raise BuildError(image.name, polled.reason)
    if polled.status == BUILD_DONE and polled.artifact is not None:
        state.finish_build(
            image.name, digest, record.attempt, BUILD_DONE, _stored(polled.artifact), now
        )
    return polled


def _stored(artifact: Artifact) -> dict[str, Any]:
    return {
        "image": artifact.image,
        "builder": artifact.builder,
        "digest": artifact.digest,
        "amis": dict(artifact.amis),
        "lineage": dict(artifact.lineage),
        "region_digests": dict(artifact.region_digests),
    }


def _artifact(record: BuildRecord) -> Artifact:
    result = record.result
    return Artifact(
        image=str(result.get("image", record.image)),
        builder=str(result.get("builder", "")),
        digest=str(result.get("digest", record.digest)),
        amis=dict(result.get("amis", {})),
        lineage=dict(result.get("lineage", {})),
        built=True,
        region_digests=dict(result.get("region_digests", {})),
    )
