"""The ``ec2-image-builder`` builder: runs an EC2 Image Builder build and waits for its AMIs.

::

    images:
      batch:
        builder: ec2-image-builder
        pipeline: arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/batch
      worker:
        builder: ec2-image-builder
        recipe: arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/worker/1.2.0
        infrastructure: arn:aws:imagebuilder:us-east-1:123456789012:infrastructure-configuration/w
        distribution: arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/w
        timeout: 4h

A ``pipeline`` is started with ``start_image_pipeline_execution``; ``recipe`` + ``infrastructure``
(+ optional ``distribution``) run ``create_image``. The build is polled with ``get_image`` on the
context's clock, with backoff (30 s growing to 5 min), until AVAILABLE; FAILED, CANCELLED (and the
other end states) raise a BuildError quoting the service's reason.

A build may outlast the process that starts it (``plugin.ResumableBuilder``): ``start`` submits
it and returns a handle (the image build version ARN, the digest, the lineage tags, the start
time) and ``poll(image, handle, ctx)`` asks once, from any process; ``core.images.durable``
stores the handle in the state store. ``build`` is ``start`` and then ``poll`` on the clock.

The AMIs of our account per region come from the image's ``outputResources``; they are tagged
with the lineage tags (AMI and snapshots) and copied to any region of ``image.regions`` the
distribution did not reach (the poll that sees the build end waits for those copies).

Digest: the builder's name and version and the ARNs that define the build (for a pipeline, the
recipe, infrastructure, distribution and tests configurations it points to now, read with
``get_image_pipeline``). Recipes are versioned, so a changed recipe is a new ARN and a new digest.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from immutable_sdk.plugin import (
    BUILD_DONE,
    BUILD_FAILED,
    BUILD_RUNNING,
    TAG_SOURCE_AMI,
    Artifact,
    BuilderFactory,
    BuildError,
    BuildPoll,
    ImageSpec,
    PluginContext,
    Registry,
    hookimpl,
    parse_duration,
)

from .digest import canonical_digest
from .lineage import IMAGE_PROPERTIES, find_artifact, finish_build, lineage_tags, wait_for

NAME = "ec2-image-builder"
VERSION = "1"
DEFAULT_TIMEOUT = "4h"
FIRST_POLL = 30.0
POLL_FACTOR = 1.5
MAX_POLL = 300.0
END_STATES = frozenset({"CANCELLED", "FAILED", "DEPRECATED", "DELETED", "DISABLED"})
PIPELINE_KEYS = (
    "imageRecipeArn",
    "containerRecipeArn",
    "infrastructureConfigurationArn",
    "distributionConfigurationArn",
    "imageTestsConfiguration",
)


def _arn(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": "^arn:aws[a-z-]*:imagebuilder:",
        "x-expect": "an EC2 Image Builder ARN (arn:aws:imagebuilder:...)",
        "description": description,
    }


SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["builder"],
    "additionalProperties": False,
    "oneOf": [
        {
            "required": ["pipeline"],
            "not": {"anyOf": [{"required": ["recipe"]}, {"required": ["infrastructure"]}]},
        },
        {"required": ["recipe", "infrastructure"], "not": {"required": ["pipeline"]}},
    ],
    "properties": {
        "builder": {"const": NAME, "description": "Build the image with EC2 Image Builder."},
        "pipeline": _arn("An image pipeline to run (instead of recipe + infrastructure)."),
        "recipe": _arn("The image recipe (with `infrastructure`)."),
        "infrastructure": _arn("The infrastructure configuration (with `recipe`)."),
        "distribution": _arn("The distribution configuration (optional, with `recipe`)."),
        "timeout": {
            "type": ["string", "number"],
            "format": "positive-duration",
            "description": "How long the build may take (default 4h).",
        },
        **IMAGE_PROPERTIES,
    },
}


def arn_region(arn: str, default: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[3] else default


def arn_account(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4] else None


def output_amis(image: Mapping[str, Any]) -> dict[str, str]:
    """Region -> AMI id of the build's AMIs in the build's own account."""
    account = arn_account(str(image.get("arn", "")))
    amis: dict[str, str] = {}
    for ami in image.get("outputResources", {}).get("amis", ()):
        if account and ami.get("accountId") not in (None, account):
            continue  # distributed to another account: not ours to tag or use
        if ami.get("region") and ami.get("image"):
            amis[str(ami["region"])] = str(ami["image"])
    return amis


class ImageBuilderBuilder:
    """A Builder for one image block (see the module docstring)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.timeout = parse_duration(config.get("timeout", DEFAULT_TIMEOUT))

    def _client(self, image: ImageSpec, ctx: PluginContext) -> Any:
        arn = str(image.config.get("pipeline") or image.config["recipe"])
        return ctx.client("imagebuilder", arn_region(arn, image.regions[0]))

    def digest(self, image: ImageSpec, ctx: PluginContext) -> str:
        config = image.config
        inputs: dict[str, Any] = {"builder": NAME, "version": VERSION}
        if "pipeline" in config:
            pipeline = self._client(image, ctx).get_image_pipeline(
                imagePipelineArn=str(config["pipeline"])
            )["imagePipeline"]
            inputs["pipeline"] = str(config["pipeline"])
            inputs.update({k: pipeline[k] for k in PIPELINE_KEYS if pipeline.get(k)})
        else:
            for key in ("recipe", "infrastructure", "distribution"):
                if config.get(key):
                    inputs[key] = str(config[key])
        return canonical_digest(inputs)

    def find(self, image: ImageSpec, ctx: PluginContext) -> Artifact | None:
        return find_artifact(image, ctx, digest=self.digest(image, ctx), builder=NAME)

    def _start(
        self, image: ImageSpec, ctx: PluginContext, tags: Mapping[str, str], token: str
    ) -> str:
        client = self._client(image, ctx)
        config = image.config
        if "pipeline" in config:
            response = client.start_image_pipeline_execution(
                imagePipelineArn=str(config["pipeline"]), clientToken=token
            )
        else:
            kwargs = {
                "imageRecipeArn": str(config["recipe"]),
                "infrastructureConfigurationArn": str(config["infrastructure"]),
                "clientToken": token,
                "tags": dict(tags),
            }
            if config.get("distribution"):
                kwargs["distributionConfigurationArn"] = str(config["distribution"])
            response = client.create_image(**kwargs)
        return str(response["imageBuildVersionArn"])

    def start(
        self, image: ImageSpec, ctx: PluginContext, *, token: str | None = None
    ) -> dict[str, Any]:
        """Submit the build and return its handle at once (``ResumableBuilder``).

        ``token``: the same token submits one build (Image Builder's ``clientToken``); None:
        a new build every call (a retried build must be a new build, not the failed one)."""
        digest = self.digest(image, ctx)
        tags = lineage_tags(image, ctx, digest=digest, builder=NAME)
        build_arn = self._start(image, ctx, tags, token or uuid.uuid4().hex)
        ctx.emit("build.submitted", image=image.name, digest=digest, build=build_arn)
        return {
            "arn": build_arn,
            "digest": digest,
            "tags": tags,
            "started_at": ctx.clock.now(),
        }

    def poll(self, image: ImageSpec, handle: Mapping[str, Any], ctx: PluginContext) -> BuildPoll:
        """Ask once where the build of ``handle`` stands; never waits (``ResumableBuilder``).
        A build still running past ``timeout`` since its start is reported failed."""
        return self._poll(image, handle, ctx, [])

    def _poll(
        self, image: ImageSpec, handle: Mapping[str, Any], ctx: PluginContext, last: list[str]
    ) -> BuildPoll:
        build_arn = str(handle["arn"])
        client = self._client(image, ctx)
        described = dict(client.get_image(imageBuildVersionArn=build_arn)["image"])
        state = described.get("state", {})
        status = str(state.get("status", "UNKNOWN"))
        if last != [status]:
            last[:] = [status]
            ctx.emit("build.status", image=image.name, build=build_arn, status=status)
        what = f"EC2 Image Builder build {build_arn}"
        if status in END_STATES:
            reason = state.get("reason") or "no reason given"
            return BuildPoll(BUILD_FAILED, reason=f"{what} {status}: {reason}", detail=status)
        if status != "AVAILABLE":
            started = float(handle.get("started_at", ctx.clock.now()))
            if ctx.clock.now() - started > self.timeout:
                took = self.config.get("timeout", DEFAULT_TIMEOUT)
                reason = f"{what} did not finish within {took} (still {status})"
                return BuildPoll(BUILD_FAILED, reason=reason, detail=status)
            return BuildPoll(BUILD_RUNNING, detail=status)
        amis = output_amis(described)
        if not amis:
            return BuildPoll(BUILD_FAILED, reason=f"{what} produced no AMI", detail=status)
        tags = dict(handle.get("tags") or {})
        parent = str(described.get("imageRecipe", {}).get("parentImage", ""))
        if parent.startswith("ami-"):
            tags[TAG_SOURCE_AMI] = parent
        digest = str(handle["digest"])
        artifact = finish_build(
            image, ctx, digest=digest, builder=NAME, amis=amis, tags=tags, token_seed=build_arn
        )
        return BuildPoll(BUILD_DONE, artifact=artifact, detail=status)

    def build(self, image: ImageSpec, ctx: PluginContext) -> Artifact:
        """The blocking form: ``start``, then ``poll`` on the clock with backoff (30 s growing
        to 5 min) until the build ends; BuildError quoting the reason when it failed."""
        handle = self.start(image, ctx)
        last: list[str] = []

        def probe() -> Artifact | None:
            polled = self._poll(image, handle, ctx, last)
            if polled.status == BUILD_FAILED:
                raise BuildError(image.name, polled.reason)
            return polled.artifact

        return wait_for(
            ctx,
            probe,
            image=image.name,
            what=f"EC2 Image Builder build {handle['arn']}",
            timeout=self.timeout,
            first=FIRST_POLL,
            factor=POLL_FACTOR,
            cap=MAX_POLL,
        )


def _factory(config: Mapping[str, Any]) -> ImageBuilderBuilder:
    return ImageBuilderBuilder(config)


@hookimpl
def immutable_sdk_add_builders(registry: Registry[BuilderFactory]) -> None:
    registry.add(
        NAME,
        _factory,
        schema=SCHEMA,
        description="Build an AMI with EC2 Image Builder (a pipeline, or recipe + infrastructure).",
    )
