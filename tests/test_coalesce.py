"""Concurrent group describes share calls: the coalescer alone, then FleetApi on the moto server."""

from __future__ import annotations

import gc
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from immutable_sdk.aws.fleet import FleetApi
from immutable_sdk.aws.session import AwsSession
from immutable_sdk.coalesce import Coalescer, reads_fresh_since, shared_coalescer
from immutable_sdk.health.alarm import _fetch as alarms_fetch


def test_callers_arriving_during_a_call_share_the_next_one() -> None:
    first_in_flight = threading.Event()
    release_first = threading.Event()
    fetched: list[list[str]] = []

    def fetch(keys: list[str]) -> dict[str, str]:
        fetched.append(keys)
        if len(fetched) == 1:
            first_in_flight.set()
            assert release_first.wait(10)
        return {k: k.upper() for k in keys}

    coalescer: Coalescer[str, str] = Coalescer(fetch)
    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(coalescer.get, ["a"])
        assert first_in_flight.wait(10)
        # Five callers queue while the first call is in flight (one asks for "a" again).
        later = [pool.submit(coalescer.get, [k]) for k in ("b", "c", "d", "e", "a")]
        while len(coalescer._queue) < 5:  # they are queued, not calling
            threading.Event().wait(0.001)
        release_first.set()
        assert first.result() == {"a": "A"}
        assert [f.result() for f in later] == [{k: k.upper()} for k in "bcdea"]
    assert fetched == [["a"], ["b", "c", "d", "e", "a"]]  # two calls for six callers


def test_a_failed_call_fails_every_caller_it_was_made_for() -> None:
    gate = threading.Event()
    started = threading.Event()

    def fetch(keys: list[str]) -> dict[str, int]:
        started.set()
        assert gate.wait(10)
        raise RuntimeError(f"throttled: {sorted(keys)}")

    coalescer: Coalescer[str, int] = Coalescer(fetch)
    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(coalescer.get, ["x"])
        assert started.wait(10)
        others = [pool.submit(coalescer.get, [k]) for k in ("y", "z")]
        while len(coalescer._queue) < 2:
            threading.Event().wait(0.001)
        gate.set()
        with pytest.raises(RuntimeError, match=r"\['x'\]"):
            first.result()
        for f in others:
            with pytest.raises(RuntimeError, match=r"\['y', 'z'\]"):
                f.result()
    assert coalescer.get([]) == {}  # nothing asked, nothing called


def test_fleets_described_from_many_threads_each_get_their_own_group(aws: str) -> None:
    session = AwsSession("us-east-1", endpoint_url=aws)
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.1.0/24")["Subnet"]["SubnetId"]
    template = ec2.create_launch_template(
        LaunchTemplateName="lt", LaunchTemplateData={"ImageId": "ami-03c3da4cfa8e8943a"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    api = FleetApi(session, "big", "us-east-1")
    fleets = [f"f{i}" for i in range(12)]
    for i, fleet in enumerate(fleets):
        session.client("autoscaling").create_auto_scaling_group(
            AutoScalingGroupName=api.name(fleet),
            LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
            MinSize=0,
            MaxSize=12,
            DesiredCapacity=i % 3,
            VPCZoneIdentifier=subnet,
        )
    before = session.calls.snapshot()
    start = threading.Barrier(len(fleets))

    def describe(fleet: str) -> tuple[str, int]:
        start.wait(10)
        group = api.describe([fleet])[fleet]
        assert group is not None
        return group.fleet, group.desired

    with ThreadPoolExecutor(max_workers=len(fleets)) as pool:
        seen = list(pool.map(describe, fleets))
    assert seen == [(f, i % 3) for i, f in enumerate(fleets)]
    calls = session.calls.since(before)["autoscaling.DescribeAutoScalingGroups"]
    assert calls == api._groups.fetches <= len(fleets)


def test_fresh_reads_are_shared_within_a_tick_and_read_together_the_next() -> None:
    fetched: list[list[str]] = []

    def fetch(keys: list[str]) -> dict[str, str]:
        fetched.append(sorted(keys))
        return {k: f"{k}@{len(fetched)}" for k in keys}

    coalescer: Coalescer[str, str] = Coalescer(fetch)
    with reads_fresh_since(0.0, 0.0, 10.0):
        assert coalescer.get(["a"]) == {"a": "a@1"}
        assert coalescer.get(["a"]) == {"a": "a@1"}  # read since the tick began: shared
        assert coalescer.get(["b"]) == {"b": "b@2"}  # "a", asked this tick, is read along
    # Next tick: the first caller's read covers every key asked in the last tick.
    with reads_fresh_since(10.0, 10.0, 10.0):
        assert coalescer.get(["a"]) == {"a": "a@3"}
        assert coalescer.get(["b"]) == {"b": "b@3"}
    assert fetched == [["a"], ["a", "b"], ["a", "b"]]
    # Outside a fresh-read block every read is made afresh.
    assert coalescer.get(["a"]) == {"a": "a@4"}
    # A key nobody asked for within a tick is no longer read along.
    with reads_fresh_since(40.0, 40.0, 10.0):
        assert coalescer.get(["a"]) == {"a": "a@5"}
    assert fetched[-1] == ["a"]


def test_a_read_older_than_the_tick_is_not_reused() -> None:
    calls: list[float] = []

    def fetch(keys: list[str]) -> dict[str, int]:
        calls.append(1)
        return dict.fromkeys(keys, len(calls))

    coalescer: Coalescer[str, int] = Coalescer(fetch)
    with reads_fresh_since(0.0, 3.0, 10.0):
        assert coalescer.get(["x"]) == {"x": 1}
    with reads_fresh_since(3.5, 9.0, 10.0):  # asks for a read made at 3.5 or later
        assert coalescer.get(["x"]) == {"x": 2}


def test_a_watched_key_that_fails_the_read_is_dropped_not_fatal() -> None:
    def fetch(keys: list[str]) -> dict[str, str]:
        if "gone" in keys:
            raise RuntimeError("TargetGroupNotFound: gone")
        return {k: k for k in keys}

    coalescer: Coalescer[str, str] = Coalescer(fetch)
    with reads_fresh_since(0.0, 0.0, 10.0):
        with pytest.raises(RuntimeError):
            coalescer.get(["gone"])  # its own caller sees the failure
        assert coalescer.get(["ok"]) == {"ok": "ok"}
    with reads_fresh_since(10.0, 10.0, 10.0):
        assert coalescer.get(["ok"]) == {"ok": "ok"}  # "gone" read along, failed, retried
        assert coalescer.get(["ok"]) == {"ok": "ok"}
    assert coalescer.fetches == 4


def test_a_client_with_a_shared_coalescer_is_still_freed(aws: str) -> None:
    """A coalescer lives as long as its client, and must not keep it alive itself: a worker or
    a soak makes clients again and again, each holding every service model its session read."""
    client = boto3.client("cloudwatch", endpoint_url=aws, region_name="us-east-1")
    coalescer = shared_coalescer(client, "alarms", alarms_fetch)
    assert coalescer.get(["nope"]) == {"nope": None}
    assert shared_coalescer(client, "alarms", alarms_fetch) is coalescer
    gone = weakref.ref(client)
    del client, coalescer
    gc.collect()
    assert gone() is None
