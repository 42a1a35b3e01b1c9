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
other end states) raise a BuildError quoting the service's reason. The AMIs of our account per
region come from the image's ``outputResources``; they are tagged with the lineage tags (AMI and
snapshots) and copied to any region of ``image.regions`` the distribution did not reach.

Digest: the builder's name and version and the ARNs that define the build (for a pipeline, the
recipe, infrastructure, distribution and tests configurations it points to now, read with
``get_image_pipeline``). Recipes are versioned, so a changed recipe is a new ARN and a new digest.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from immutable_sdk.plugin import (
    TAG_SOURCE_AMI,
    Artifact,
    BuilderFactory,
    BuildError,
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

    def _start(self, image: ImageSpec, ctx: PluginContext, tags: Mapping[str, str]) -> str:
        client = self._client(image, ctx)
        token = uuid.uuid4().hex  # a retried build must be a new build, not the failed one
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

    def _wait(self, image: ImageSpec, ctx: PluginContext, build_arn: str) -> dict[str, Any]:
        client = self._client(image, ctx)
        last: list[str] = []

        def probe() -> dict[str, Any] | None:
            described = dict(client.get_image(imageBuildVersionArn=build_arn)["image"])
            state = described.get("state", {})
            status = str(state.get("status", "UNKNOWN"))
            if last != [status]:
                last[:] = [status]
                ctx.emit("build.status", image=image.name, build=build_arn, status=status)
            if status in END_STATES:
                reason = state.get("reason") or "no reason given"
                raise BuildError(
                    image.name, f"EC2 Image Builder build {build_arn} {status}: {reason}"
                )
            return described if status == "AVAILABLE" else None

        return wait_for(
            ctx,
            probe,
            image=image.name,
            what=f"EC2 Image Builder build {build_arn}",
            timeout=self.timeout,
            first=FIRST_POLL,
            factor=POLL_FACTOR,
            cap=MAX_POLL,
        )

    def build(self, image: ImageSpec, ctx: PluginContext) -> Artifact:
        digest = self.digest(image, ctx)
        tags = lineage_tags(image, ctx, digest=digest, builder=NAME)
        build_arn = self._start(image, ctx, tags)
        ctx.emit("build.submitted", image=image.name, digest=digest, build=build_arn)
        described = self._wait(image, ctx, build_arn)
        amis = output_amis(described)
        if not amis:
            raise BuildError(image.name, f"EC2 Image Builder build {build_arn} produced no AMI")
        parent = str(described.get("imageRecipe", {}).get("parentImage", ""))
        if parent.startswith("ami-"):
            tags[TAG_SOURCE_AMI] = parent
        return finish_build(image, ctx, digest=digest, builder=NAME, amis=amis, tags=tags)


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
