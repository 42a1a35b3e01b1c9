"""The lock's AWS fence: one lock read before each mutating AWS call (never per instance),
and a mutating call after a forced unlock is refused before it is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from immutable_sdk.aws.session import AwsSession
from immutable_sdk.clock import VirtualClock
from immutable_sdk.core.context import Context
from immutable_sdk.core.rollout.locks import LockKeeper
from immutable_sdk.errors import LockLost
from immutable_sdk.sandbox.emulator import Emulator
from immutable_sdk.state.sqlite import SqliteStateStore

from .conftest import AMI_V1, AMI_V2, World, fleet_spec


def test_a_mutating_call_after_a_forced_unlock_is_never_sent(aws: str, tmp_path: Path) -> None:
    session = AwsSession("us-east-1", endpoint_url=aws)
    ctx = Context(project="shop", region="us-east-1", session=session, clock=VirtualClock())
    holder = SqliteStateStore(tmp_path / "state.db", "shop")
    person = SqliteStateStore(tmp_path / "state.db", "shop")
    keeper = LockKeeper(holder, "web", "host:1:a", 60.0, ctx)
    keeper.acquire()
    ec2 = session.client("ec2")
    try:
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        ec2.create_tags(Resources=[vpc], Tags=[{"Key": "a", "Value": "1"}])
        ec2.describe_vpcs(VpcIds=[vpc])  # a read: not fenced
        assert keeper.fence_checks == 2
        person.force_unlock("web")
        with pytest.raises(LockLost, match="no longer held by host:1:a"):
            ec2.create_tags(Resources=[vpc], Tags=[{"Key": "b", "Value": "2"}])
        tags = ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0].get("Tags", [])
        assert {t["Key"] for t in tags} == {"a"}
    finally:
        keeper.abandon()
        holder.close()
        person.close()


def fence_checks_of_a_rollout(
    world: World, monkeypatch: pytest.MonkeyPatch, desired: int
) -> tuple[int, int]:
    """(fence lock reads, mutating AWS calls) of rolling ``desired`` instances in 2 batches."""
    checks = 0
    verify = LockKeeper.verify

    def counting(self: LockKeeper) -> None:
        nonlocal checks
        checks += 1
        verify(self)

    world.write(fleet_spec(desired=desired, strategy="{type: rolling, batch_size: 50%}"))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    monkeypatch.setattr(LockKeeper, "verify", counting)
    with world.engine(AMI_V2) as engine:
        result = engine.apply()
    monkeypatch.setattr(LockKeeper, "verify", verify)
    assert result.ok, result
    calls: dict[str, Any] = result.api_calls
    return checks, int(calls["mutating"])


def test_the_fence_costs_one_lock_read_per_mutating_call_not_per_instance(
    aws: str, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = []
    for desired in (4, 12):
        emulator.reset()  # each rollout in a clean account
        (tmp_path / str(desired)).mkdir()
        world = World(aws, tmp_path / str(desired), monkeypatch)
        counts.append(fence_checks_of_a_rollout(world, monkeypatch, desired))
    small, large = counts
    print(f"fence checks / mutating AWS calls: 4 instances {small}, 12 instances {large}")
    for checks, mutating in (small, large):
        assert 0 < checks <= mutating
    assert large[0] == small[0]  # the same batches: the same calls and checks
