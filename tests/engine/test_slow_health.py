"""A health endpoint that dribbles its answer: the gate keeps its time and the lease stays fresh.

Real time throughout (a RealClock, a real HTTP server on 127.0.0.1, a 3 s lease): the new
release's instances answer one byte every 0.3 s, each probe may take 4 s, longer than a third of
the lease. While the probes block, the rollout's thread must keep renewing the lease, so that a
second engine waiting for the fleet's lock never takes it over; the gate must end within its
timeout plus one probe deadline; the rollout rolls back cleanly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import boto3
import pytest

from immutable_sdk.clock import RealClock
from immutable_sdk.plugin import RolloutInfo, Step, hookimpl
from immutable_sdk.testing import AMI_V1, AMI_V2, SandboxAccount, sample_spec
from immutable_sdk.testing.endpoints import LoopbackHTTPServer

GATE_TIMEOUT = 3.0
PROBE_DEADLINE = 4.0
LEASE = 3.0
DRIBBLE = 0.3  # seconds between two bytes of a bad instance's answer


class DribblingServer:
    """Answers at once until ``remember_fast``; then any newer instance a byte every DRIBBLE s.

    ``remember_fast`` records the instances running once release 1 is out: the handler makes
    no AWS call (on a loaded machine one could outlast the whole gate).
    """

    def __init__(self, aws: str) -> None:
        self.ec2 = boto3.client("ec2", endpoint_url=aws, region_name="us-east-1")
        self.slow = True
        self.dribbled = 0
        self.fast: set[str] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                instance = self.path.rsplit("/", 1)[-1]
                slow = outer.slow and bool(outer.fast) and instance not in outer.fast
                body = b"ok" * 100
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if not slow:
                        self.wfile.write(body)
                        return
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        outer.dribbled += 1
                        time.sleep(DRIBBLE)
                except OSError:
                    pass  # the probe gave up at its deadline

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = LoopbackHTTPServer(Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def remember_fast(self) -> None:
        pages = self.ec2.get_paginator("describe_instances").paginate()
        self.fast = {
            i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]
        }
        assert self.fast

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def dribbling(aws: str) -> Iterator[DribblingServer]:
    server = DribblingServer(aws)
    yield server
    server.close()


class Timeline:
    """Real times of the lifecycle hooks, per engine."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.gate_started: float | None = None
        self.gate_finished: float | None = None
        self.rollout_started: float | None = None
        self.rollout_finished: float | None = None
        self.gating = threading.Event()
        self.hold_rollback: Callable[[], None] = lambda: None

    @hookimpl
    def immutable_sdk_rollout_started(self, rollout: RolloutInfo) -> None:
        if self.rollout_started is None:
            self.rollout_started = time.monotonic()

    @hookimpl
    def immutable_sdk_step_started(self, rollout: RolloutInfo, step: Step) -> None:
        if step.kind == "gate" and self.gate_started is None and not rollout.rollback:
            self.gate_started = time.monotonic()
            self.gating.set()
        if rollout.rollback:
            self.hold_rollback()

    @hookimpl
    def immutable_sdk_step_finished(self, rollout: RolloutInfo, step: Step, outcome: str) -> None:
        if step.kind == "gate" and self.gate_finished is None and not rollout.rollback:
            self.gate_finished = time.monotonic()

    @hookimpl
    def immutable_sdk_rollout_finished(self, rollout: RolloutInfo, outcome: str) -> None:
        self.rollout_finished = time.monotonic()


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def spec_text(port: int) -> str:
    check = (
        f"{{type: http, url: 'http://127.0.0.1:{port}/h/{{instance_id}}', successes: 1, "
        f"failures: 1, request_timeout: {PROBE_DEADLINE:g}s}}"
    )
    text = sample_spec(desired=1, checks=[check])
    return text.replace("timeout: 5m", f"timeout: {GATE_TIMEOUT:g}s").replace(
        "interval: 5s", "interval: 1s"
    )


def test_a_dribbling_endpoint_neither_stretches_the_gate_nor_starves_the_lease(
    aws: str, tmp_path: Path, dribbling: DribblingServer
) -> None:
    account = SandboxAccount(aws, tmp_path, clock=RealClock())  # type: ignore[arg-type]
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(dribbling.port))
    assert account.run(spec, image=AMI_V1, lease=LEASE).result.ok
    dribbling.remember_fast()

    first, second = Timeline("first"), Timeline("second")
    results: dict[str, Any] = {}

    def contender_waiting() -> bool:
        return any(e.kind == "lock.waiting" for e in list(account.events))

    # The first holds its rollback until the contender has seen the lock held (bounded): on a
    # loaded machine the contender's engine may take longer to start than the whole gate, and
    # it must still find the lock taken, not a finished rollout.
    first.hold_rollback = lambda: wait_until(contender_waiting, 60)

    def contender() -> None:
        first.gating.wait(60)  # from the gate on: the probes block on the dribble
        with account.engine(spec, image=AMI_V2, plugins=[second], lease=LEASE, lock_wait=60) as e:
            results["second"] = e.apply()

    waiting = threading.Thread(target=contender)
    waiting.start()
    try:
        with account.engine(spec, image=AMI_V2, plugins=[first], lease=LEASE) as engine:
            results["first"] = engine.apply()
        first_done = time.monotonic()
        dribbling.slow = False  # the contender's own rollout may pass
    finally:
        waiting.join(120)
    assert not waiting.is_alive()

    web = results["first"].fleet("web")
    assert web.outcome == "rolled_back", results["first"].to_dict()
    assert "timed out" in (web.error or "")
    assert dribbling.dribbled > 0  # the probes really were held by the dribble

    # The gate ended within its timeout plus one probe deadline (and some scheduling slack),
    # not after the dribbled body (200 bytes at 0.3 s: a minute).
    assert first.gate_started is not None and first.gate_finished is not None
    took = first.gate_finished - first.gate_started
    assert GATE_TIMEOUT <= took <= GATE_TIMEOUT + PROBE_DEADLINE + 1.5, took

    # The contender waited for the lock and only rolled out once the first had finished:
    # the lease was renewed while the probes blocked (a probe outlasts a third of the lease).
    waited = [e for e in account.events if e.kind == "lock.waiting"]
    assert waited, "the contender never had to wait for the lock"
    assert second.rollout_started is not None and first.rollout_finished is not None
    assert second.rollout_started >= first.rollout_finished
    assert second.rollout_started >= first_done - 0.5
    assert not any(e.kind == "lock.lost" for e in account.events)
    assert results["second"].fleet("web").outcome == "promoted", results["second"].to_dict()

    # The first rollout rolled back cleanly before the contender replaced the fleet.
    rollback = [e for e in account.events if e.kind == "rollback.started"]
    assert len(rollback) == 1
