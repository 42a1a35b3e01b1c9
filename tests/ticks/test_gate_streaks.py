"""An http check's streak outlives the tick that began it (health-check contract version 2).

The fleet's gate needs 3 good answers in a row, 20 s apart; each tick polls for at most 30 s
(``--budget``), so a gate takes two ticks. The second tick, a fresh process, restores the
streak the first one saved: its first poll is the third good answer and the gate passes. A
tick that started the streak over would need two more ticks and two more answers per instance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from tests.engine.conftest import AMI_V1
from tests.engine.crashkit import seed

from immutable_sdk.testing.endpoints import HealthServer

from .tickkit import Ticker, waits

pytestmark = pytest.mark.slow

SPEC = """\
apiVersion: immutable-sdk/v1
name: streaks
region: us-east-1
state: {{backend: local, path: state.db}}
images:
  web:
    builder: ami
    id: {ami}
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {{min: 2, desired: 2, max: 4}}
    strategy: {{type: rolling, batch_size: 2}}
    health:
      timeout: 10m
      interval: 20s
      checks:
        - {{type: http, url: "http://127.0.0.1:{port}/health", successes: 3}}
"""


@pytest.fixture
def answers(health_server: Callable[..., HealthServer]) -> HealthServer:
    return health_server()


def test_a_gate_across_two_ticks_keeps_each_instance_streak(
    aws: str, tmp_path: Path, answers: HealthServer
) -> None:
    text = SPEC.format(ami=AMI_V1, port=answers.port)
    (tmp_path / "seed.yaml").write_text(text)
    seed(aws, tmp_path / "seed.yaml")
    here = tmp_path / "streaks"
    here.mkdir()
    spec = here / "spec.yaml"
    spec.write_text(text)
    ticker = Ticker(aws, spec)

    first = ticker.tick("--yes", "--budget", "30s")  # launched; polls at 0 and 20 s
    assert (first.code, first.unit("web")["waiting_for"]) == (10, "gate"), first.data
    assert len(answers.requests) == 2 * 2  # two instances, two good answers each
    assert first.next_at is not None
    ticker.advance_to(first.next_at)
    done = ticker.tick("--yes", "--budget", "30s")  # restored: the third answer passes
    assert done.code == 0 and done.unit("web")["state"] == "converged", done.data
    assert len(answers.requests) == 3 * 2
    assert waits(ticker.ticks, "web") == ["gate", ""]


BAKED = SPEC.replace(
    "strategy: {{type: rolling, batch_size: 2}}",
    "strategy: {{type: rolling, batch_size: 2, bake: 10m}}",
).replace("successes: 3}}", "successes: 1, failures: 3}}")


def test_a_bake_watched_tick_by_tick_counts_bad_answers_across_ticks(
    aws: str, tmp_path: Path, answers: HealthServer
) -> None:
    """Each tick looks at the bake once; the check's bad answers in a row carry from one
    tick's look to the next, so the third bad answer fails the bake as in process (a check
    made afresh each tick would see one bad answer each time and never fail it)."""
    from tests.engine.conftest import AMI_V2

    text = BAKED.format(ami=AMI_V1, port=answers.port)
    (tmp_path / "seed.yaml").write_text(text)
    seed(aws, tmp_path / "seed.yaml")
    here = tmp_path / "baked"
    here.mkdir()
    spec = here / "spec.yaml"
    spec.write_text(text)
    ticker = Ticker(aws, spec)
    assert ticker.until_settled("--yes").code == 0

    spec.write_text(BAKED.format(ami=AMI_V2, port=answers.port))
    ticker.advance_to(None, at_least=60)
    baking = ticker.tick("--yes")  # launched, gated, the bake's first look
    assert (baking.code, baking.unit("web")["waiting_for"]) == (10, "bake"), baking.data
    answers.status = 500  # the new release goes bad during its bake
    codes = []
    for _ in range(5):
        assert ticker.ticks[-1].next_at is not None
        ticker.advance_to(ticker.ticks[-1].next_at)
        codes.append(ticker.tick("--yes").code)
        if codes[-1] != 10:
            break
    assert codes == [10, 10, 1], codes  # bad answers 1 and 2 wait; the third fails the bake
    failed = ticker.ticks[-1].unit("web")
    assert failed["state"] == "failed", failed
    answers.status = 200  # the old release's instances answer: the rollback goes on
    back = ticker.until_settled("--yes")
    # rolled back, and the release that failed its bake is quarantined: no tick retries it
    assert back.unit("web")["outcome"] == "quarantined", back.data
    group = boto3.client("autoscaling", endpoint_url=aws, region_name="us-east-1")
    (asg,) = group.describe_auto_scaling_groups(AutoScalingGroupNames=["streaks-web"])[
        "AutoScalingGroups"
    ]
    ec2 = boto3.client("ec2", endpoint_url=aws, region_name="us-east-1")
    ids = [i["InstanceId"] for i in asg["Instances"]]
    images = {
        i["ImageId"]
        for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
        for i in r["Instances"]
    }
    assert images == {AMI_V1}, images
