"""The ec2-image-builder builder, with botocore's Stubber (moto has no Image Builder).

Stubber checks every request and canned response against the service model. EC2 is the real moto
server: the AMIs the stubbed builds report exist there, so tagging and lookups are real.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from immutable_sdk.aws.session import AwsSession
from immutable_sdk.builders.image_builder import MAX_POLL, ImageBuilderBuilder
from immutable_sdk.clock import Clock, VirtualClock
from immutable_sdk.plugin import TAG_DIGEST, TAG_SOURCE_AMI, BuildError

from .conftest import image_spec, tags_of

ACCOUNT = "123456789012"  # moto's account
PIPELINE = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image-pipeline/batch"
RECIPE = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image-recipe/batch/1.2.0"
INFRA = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:infrastructure-configuration/batch"
DIST = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:distribution-configuration/batch"
BUILD = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/batch/1.2.0/1"


class RecordingClock(VirtualClock):
    """A virtual clock that remembers each sleep."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)


class StubContext:
    """A PluginContext whose Image Builder client is stubbed; EC2 is the moto server."""

    def __init__(self, endpoint: str, clock: Clock) -> None:
        self.session = AwsSession("us-east-1", endpoint_url=endpoint)
        self.imagebuilder = boto3.client("imagebuilder", region_name="us-east-1")
        self.stub = Stubber(self.imagebuilder)
        self._clock = clock
        self.events: list[tuple[str, dict[str, Any]]] = []

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def project(self) -> str:
        return "t"

    @property
    def region(self) -> str:
        return "us-east-1"

    @property
    def endpoint_url(self) -> str | None:
        return self.session.endpoint_url

    def client(self, service: str, region: str | None = None) -> Any:
        if service == "imagebuilder":
            assert region == "us-east-1"
            return self.imagebuilder
        return self.session.client(service, region)

    def emit(self, kind: str, **data: Any) -> None:
        self.events.append((kind, data))

    def credentials(self) -> Mapping[str, str]:
        return {}


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


@pytest.fixture
def ctx(aws: str, clock: RecordingClock) -> Iterator[StubContext]:
    context = StubContext(aws, clock)
    with context.stub:
        yield context
        context.stub.assert_no_pending_responses()


def make_ami(ctx: StubContext, region: str) -> str:
    ec2 = ctx.client("ec2", region)
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]
    return str(ec2.create_image(InstanceId=instance["InstanceId"], Name="batch-1.2.0")["ImageId"])


def pipeline_response(ctx: StubContext) -> None:
    ctx.stub.add_response(
        "get_image_pipeline",
        {
            "imagePipeline": {
                "arn": PIPELINE,
                "imageRecipeArn": RECIPE,
                "infrastructureConfigurationArn": INFRA,
                "distributionConfigurationArn": DIST,
            }
        },
        {"imagePipelineArn": PIPELINE},
    )


def image_response(ctx: StubContext, status: str, reason: str = "", **image: Any) -> None:
    state = {"status": status, **({"reason": reason} if reason else {})}
    ctx.stub.add_response(
        "get_image",
        {"image": {"arn": BUILD, "state": state, **image}},
        {"imageBuildVersionArn": BUILD},
    )


def available(amis: Mapping[str, str]) -> dict[str, Any]:
    return {
        "imageRecipe": {"arn": RECIPE, "parentImage": "ami-0parent0000000000"},
        "outputResources": {
            "amis": [
                {"region": r, "image": a, "name": "batch-1.2.0", "accountId": ACCOUNT}
                for r, a in amis.items()
            ]
            + [{"region": "us-east-1", "image": "ami-0other", "accountId": "999999999999"}]
        },
    }


def test_a_pipeline_build_across_two_regions(ctx: StubContext) -> None:
    amis = {"us-east-1": make_ami(ctx, "us-east-1"), "eu-west-1": make_ami(ctx, "eu-west-1")}
    config = {"builder": "ec2-image-builder", "pipeline": PIPELINE}
    image = image_spec(config, name="batch", regions=("us-east-1", "eu-west-1"))
    pipeline_response(ctx)
    ctx.stub.add_response(
        "start_image_pipeline_execution",
        {"imageBuildVersionArn": BUILD, "clientToken": "x", "requestId": "r"},
        {"imagePipelineArn": PIPELINE, "clientToken": ANY},
    )
    image_response(ctx, "BUILDING")
    image_response(ctx, "DISTRIBUTING")
    image_response(ctx, "AVAILABLE", **available(amis))

    artifact = ImageBuilderBuilder(config).build(image, ctx)

    assert artifact.built and artifact.amis == amis
    for region, ami in amis.items():
        described = ctx.client("ec2", region).describe_images(ImageIds=[ami])["Images"][0]
        assert tags_of(described)[TAG_DIGEST] == artifact.digest
        assert tags_of(described)[TAG_SOURCE_AMI] == "ami-0parent0000000000"
    statuses = [d["status"] for kind, d in ctx.events if kind == "build.status"]
    assert statuses == ["BUILDING", "DISTRIBUTING", "AVAILABLE"]

    # the same pipeline definition is found, not rebuilt
    pipeline_response(ctx)
    found = ImageBuilderBuilder(config).find(image, ctx)
    assert found is not None and not found.built and found.amis == amis


def test_a_failed_build_carries_the_services_reason(ctx: StubContext) -> None:
    config = {"builder": "ec2-image-builder", "recipe": RECIPE, "infrastructure": INFRA}
    ctx.stub.add_response(
        "create_image",
        {"imageBuildVersionArn": BUILD, "clientToken": "x", "requestId": "r"},
        {
            "imageRecipeArn": RECIPE,
            "infrastructureConfigurationArn": INFRA,
            "clientToken": ANY,
            "tags": ANY,
        },
    )
    image_response(ctx, "BUILDING")
    image_response(ctx, "FAILED", reason="Component build failed: yum exited with 1")

    with pytest.raises(BuildError) as err:
        ImageBuilderBuilder(config).build(image_spec(config, name="batch"), ctx)
    assert "FAILED: Component build failed: yum exited with 1" in str(err.value)


def test_a_cancelled_build_is_an_error_too(ctx: StubContext) -> None:
    config = {"builder": "ec2-image-builder", "pipeline": PIPELINE}
    pipeline_response(ctx)
    ctx.stub.add_response(
        "start_image_pipeline_execution",
        {"imageBuildVersionArn": BUILD},
        {"imagePipelineArn": PIPELINE, "clientToken": ANY},
    )
    image_response(ctx, "CANCELLED", reason="Cancelled by user")
    with pytest.raises(BuildError, match="CANCELLED: Cancelled by user"):
        ImageBuilderBuilder(config).build(image_spec(config, name="batch"), ctx)


def test_a_slow_build_backs_off_on_the_clock(ctx: StubContext, clock: RecordingClock) -> None:
    ami = make_ami(ctx, "us-east-1")
    config = {
        "builder": "ec2-image-builder",
        "recipe": RECIPE,
        "infrastructure": INFRA,
        "distribution": DIST,
    }
    ctx.stub.add_response(
        "create_image",
        {"imageBuildVersionArn": BUILD},
        {
            "imageRecipeArn": RECIPE,
            "infrastructureConfigurationArn": INFRA,
            "distributionConfigurationArn": DIST,
            "clientToken": ANY,
            "tags": ANY,
        },
    )
    polls = 40
    for _ in range(polls):
        image_response(ctx, "BUILDING")
    image_response(ctx, "AVAILABLE", **available({"us-east-1": ami}))
    started = time.monotonic()

    artifact = ImageBuilderBuilder(config).build(image_spec(config, name="batch"), ctx)

    assert artifact.amis == {"us-east-1": ami}
    assert time.monotonic() - started < 10  # hours of virtual time, no real waiting
    sleeps = clock.sleeps[:polls]
    assert len(sleeps) == polls
    assert all(a <= b for a, b in itertools.pairwise(sleeps))  # never shrinks
    assert sleeps[0] < sleeps[5] < MAX_POLL  # grows...
    assert max(sleeps) == MAX_POLL and sleeps[-10:] == [MAX_POLL] * 10  # ...and is capped
    assert clock.monotonic() > 2 * 3600


def test_a_build_past_its_timeout_fails(ctx: StubContext, clock: RecordingClock) -> None:
    config = {"builder": "ec2-image-builder", "pipeline": PIPELINE, "timeout": "1h"}
    pipeline_response(ctx)
    ctx.stub.add_response(
        "start_image_pipeline_execution",
        {"imageBuildVersionArn": BUILD},
        {"imagePipelineArn": PIPELINE, "clientToken": ANY},
    )
    # 30, 45, 67.5, 101, 152, 228 s, then 300 s each: the hour is spent after 16 sleeps
    for _ in range(17):
        image_response(ctx, "BUILDING")
    with pytest.raises(BuildError, match="timed out after 3600s"):
        ImageBuilderBuilder(config).build(image_spec(config, name="batch"), ctx)
    assert clock.monotonic() == pytest.approx(3600)
    assert len(clock.sleeps) == 16
