"""EC2 Image Builder builds that outlast a process: started by one, polled to the end by others.

Each "process" has objects of its own: a builder, a state store handle (SQLite file, or
DynamoDB on the moto server) and a plugin context whose Image Builder client is stubbed with
botocore's Stubber (moto has no Image Builder; a call a test did not stub fails it). EC2 is the
moto server: the AMIs the stubbed builds report exist there and get tagged for real.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.stub import ANY

from immutable_sdk.builders.image_builder import ImageBuilderBuilder
from immutable_sdk.clock import VirtualClock
from immutable_sdk.core.images.durable import build_token, is_resumable, poll_build, start_build
from immutable_sdk.plugin import TAG_DIGEST, BuildError
from immutable_sdk.state.base import BUILD_DONE, BUILD_FAILED, BUILD_RUNNING, StateStore

from .conftest import image_spec, tags_of
from .test_image_builder import BUILD, INFRA, RECIPE, StubContext, available, image_response

CONFIG = {"builder": "ec2-image-builder", "recipe": RECIPE, "infrastructure": INFRA}
IMAGE = image_spec(CONFIG, name="batch")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def process(aws: str, clock: VirtualClock) -> Iterator[Callable[[], StubContext]]:
    """``process()``: a fresh context (its own stubbed client); each must use all its stubs."""
    made: list[StubContext] = []

    def make() -> StubContext:
        context = StubContext(aws, clock)
        context.stub.activate()
        made.append(context)
        return context

    yield make
    for context in made:
        context.stub.deactivate()
        context.stub.assert_no_pending_responses()


def expect_create(ctx: StubContext, attempt: int, digest: str, arn: str = BUILD) -> None:
    ctx.stub.add_response(
        "create_image",
        {"imageBuildVersionArn": arn, "clientToken": "x", "requestId": "r"},
        {
            "imageRecipeArn": RECIPE,
            "infrastructureConfigurationArn": INFRA,
            "clientToken": build_token("t", "batch", digest, attempt),
            "tags": ANY,
        },
    )


def make_ami(ctx: StubContext) -> str:
    ec2 = ctx.client("ec2")
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]
    return str(ec2.create_image(InstanceId=instance["InstanceId"], Name="batch-1")["ImageId"])


def digest_of(ctx: StubContext) -> str:
    return ImageBuilderBuilder(CONFIG).digest(IMAGE, ctx)


def test_a_build_started_in_one_process_is_polled_to_the_end_in_others(
    process: Callable[[], StubContext], open_state_store: Callable[[], StateStore]
) -> None:
    first = process()
    digest = digest_of(first)
    expect_create(first, 1, digest)
    started = start_build(open_state_store(), ImageBuilderBuilder(CONFIG), IMAGE, first)
    assert started.recorded and started.status == BUILD_RUNNING
    assert started.handle["arn"] == BUILD and started.attempt == 1
    # the first process is gone; a later tick has new objects and finds the build by digest
    second = process()
    image_response(second, "BUILDING")
    polled = poll_build(open_state_store(), ImageBuilderBuilder(CONFIG), IMAGE, second, digest)
    assert (polled.status, polled.detail, polled.artifact) == ("running", "BUILDING", None)

    third = process()
    ami = make_ami(third)
    image_response(third, "AVAILABLE", **available({"us-east-1": ami}))
    done = poll_build(open_state_store(), ImageBuilderBuilder(CONFIG), IMAGE, third, digest)
    assert done.status == "done" and done.artifact is not None
    assert done.artifact.amis == {"us-east-1": ami} and done.artifact.digest == digest
    described = third.client("ec2").describe_images(ImageIds=[ami])["Images"][0]
    assert tags_of(described)[TAG_DIGEST] == digest
    record = open_state_store().get_build("batch", digest)
    assert record is not None and record.status == BUILD_DONE
    assert record.result["amis"] == {"us-east-1": ami}

    # a fourth process asks again: the store answers, no Image Builder call (none stubbed)
    fourth = process()
    again = poll_build(open_state_store(), ImageBuilderBuilder(CONFIG), IMAGE, fourth, digest)
    assert again.artifact is not None and again.artifact.amis == {"us-east-1": ami}


def test_a_second_start_while_the_build_runs_reuses_it(
    process: Callable[[], StubContext], open_state_store: Callable[[], StateStore]
) -> None:
    first = process()
    digest = digest_of(first)
    expect_create(first, 1, digest)
    start_build(open_state_store(), ImageBuilderBuilder(CONFIG), IMAGE, first)
    second = process()  # no create_image stubbed: a second submission would fail the test
    again = start_build(open_state_store(), ImageBuilderBuilder(CONFIG), IMAGE, second)
    assert not again.recorded and again.handle["arn"] == BUILD and again.attempt == 1


def test_racing_starts_submit_one_build(
    process: Callable[[], StubContext], open_state_store: Callable[[], StateStore]
) -> None:
    """Two processes that both saw no build submit with the same token (the service answers
    both with one build) and the second record keeps the first."""
    a, b = process(), process()
    digest = digest_of(a)
    expect_create(a, 1, digest)
    expect_create(b, 1, digest)  # the same clientToken: Image Builder's idempotency
    handle_a = ImageBuilderBuilder(CONFIG).start(
        IMAGE, a, token=build_token("t", "batch", digest, 1)
    )
    handle_b = ImageBuilderBuilder(CONFIG).start(
        IMAGE, b, token=build_token("t", "batch", digest, 1)
    )
    first = open_state_store().record_build("batch", digest, 1, handle_a, 1.0)
    second = open_state_store().record_build("batch", digest, 1, handle_b, 2.0)
    assert first.recorded and not second.recorded and second.started_at == 1.0


def test_a_failed_build_gives_its_reason_and_the_next_start_is_a_new_attempt(
    process: Callable[[], StubContext], open_state_store: Callable[[], StateStore]
) -> None:
    first = process()
    digest = digest_of(first)
    expect_create(first, 1, digest)
    start_build(open_state_store(), ImageBuilderBuilder(CONFIG), IMAGE, first)

    second = process()
    image_response(second, "FAILED", reason="Component build failed: yum exited with 1")
    with pytest.raises(BuildError) as failed:
        poll_build(open_state_store(), ImageBuilderBuilder(CONFIG), IMAGE, second, digest)
    assert "FAILED: Component build failed: yum exited with 1" in str(failed.value)
    record = open_state_store().get_build("batch", digest)
    assert record is not None and record.status == BUILD_FAILED
    assert "yum exited with 1" in str(record.result["reason"])
    with pytest.raises(BuildError, match="yum exited with 1"):  # told again, no call
        poll_build(open_state_store(), ImageBuilderBuilder(CONFIG), IMAGE, process(), digest)

    retry = process()
    retry_arn = BUILD.replace("/1", "/2")
    expect_create(retry, 2, digest, retry_arn)
    again = start_build(open_state_store(), ImageBuilderBuilder(CONFIG), IMAGE, retry)
    assert again.recorded and again.attempt == 2 and again.handle["arn"] == retry_arn


def test_a_build_running_past_its_timeout_is_failed_by_a_later_poll(
    process: Callable[[], StubContext],
    open_state_store: Callable[[], StateStore],
    clock: VirtualClock,
) -> None:
    config: dict[str, Any] = {**CONFIG, "timeout": "1h"}
    image = image_spec(config, name="batch")
    first = process()
    digest = ImageBuilderBuilder(config).digest(image, first)
    expect_create(first, 1, digest)
    start_build(open_state_store(), ImageBuilderBuilder(config), image, first)
    clock.advance(3601)
    later = process()
    image_response(later, "BUILDING")
    with pytest.raises(BuildError, match="did not finish within 1h"):
        poll_build(open_state_store(), ImageBuilderBuilder(config), image, later, digest)


def test_which_builders_outlast_a_tick() -> None:
    from immutable_sdk.builders.packer import PackerBuilder

    assert is_resumable(ImageBuilderBuilder(CONFIG))
    assert not is_resumable(PackerBuilder.__new__(PackerBuilder))


def test_processes_finishing_one_build_ask_ec2_for_the_same_region_copies(
    process: Callable[[], StubContext], open_state_store: Callable[[], StateStore]
) -> None:
    """The poll that sees the build end copies the AMI to regions the distribution missed;
    two processes that see it at once send the same ClientToken (one copy in EC2)."""
    image = image_spec(CONFIG, name="batch", regions=("us-east-1", "eu-west-1"))
    first = process()
    digest = ImageBuilderBuilder(CONFIG).digest(image, first)
    expect_create(first, 1, digest)
    start_build(open_state_store(), ImageBuilderBuilder(CONFIG), image, first)
    ami = make_ami(first)
    tokens: list[str] = []
    for _ in range(2):  # two processes, each polls once and sees AVAILABLE
        ctx = process()
        ctx.client("ec2", "eu-west-1").meta.events.register(
            "provide-client-params.ec2.CopyImage",
            lambda params, **_: tokens.append(params["ClientToken"]),
        )
        image_response(ctx, "AVAILABLE", **available({"us-east-1": ami}))
        polled = ImageBuilderBuilder(CONFIG).poll(
            image,
            open_state_store().get_build("batch", digest).handle,
            ctx,  # type: ignore[union-attr]
        )
        assert polled.status == "done" and polled.artifact is not None
        assert set(polled.artifact.amis) == {"us-east-1", "eu-west-1"}
    assert len(tokens) == 2 and tokens[0] == tokens[1]


def test_a_start_after_a_done_build_submits_a_new_attempt(
    process: Callable[[], StubContext], open_state_store: Callable[[], StateStore]
) -> None:
    """A caller starts a build when ``find`` found no AMI (garbage-collected since): the
    recorded result is stale, and the image is built again."""
    first = process()
    digest = digest_of(first)
    store = open_state_store()
    store.record_build("batch", digest, 1, {"arn": BUILD}, 1.0)
    store.finish_build("batch", digest, 1, BUILD_DONE, {"amis": {"us-east-1": "ami-gone"}}, 2.0)
    expect_create(first, 2, digest, BUILD.replace("/1", "/2"))
    again = start_build(open_state_store(), ImageBuilderBuilder(CONFIG), IMAGE, first)
    assert again.recorded and again.attempt == 2
