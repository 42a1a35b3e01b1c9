"""Operators steer a running rollout from another process: promote, abort, status --watch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.cli.output_schema import check_output

from immutable_sdk.clock import VirtualClock
from immutable_sdk.results import ApplyResult

from .conftest import AMI_V1, AMI_V2, SlotWorld, slot_spec

PAUSED = "{type: canary, steps: [{weight: 20, bake: 1m}, {pause: manual}, {weight: 100}]}"


class PacedClock(VirtualClock):
    """Virtual time that also lets real time pass a little on every sleep, so that a loop
    waiting for another process does not spin."""

    def sleep(self, seconds: float) -> None:
        time.sleep(0.002)
        super().sleep(seconds)


def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def cli(world: SlotWorld, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "immutable_sdk", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        cwd=world.tmp,
        timeout=120,
        **kwargs,
    )


def start_paused_rollout(world: SlotWorld) -> tuple[threading.Thread, dict[str, ApplyResult]]:
    """The second release of a canary, run in a thread until its manual pause."""
    world.write(slot_spec(PAUSED))
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    world.clock = PacedClock()
    engine = world.engine(AMI_V2)
    out: dict[str, ApplyResult] = {}

    def run() -> None:
        with engine:
            out["result"] = engine.apply()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    until(lambda: any(e.kind == "rollout.paused" for e in world.events))
    return thread, out


def test_a_manual_pause_waits_until_promote_from_another_process(slots: SlotWorld) -> None:
    thread, out = start_paused_rollout(slots)
    paused_at = slots.clock.monotonic()
    until(lambda: slots.clock.monotonic() > paused_at + 600)  # ten virtual minutes later ...
    assert thread.is_alive() and slots.weights() == {"blue": 80, "green": 20}  # ... still there

    promoted = cli(slots, "promote", "-f", str(slots.spec_path), "--fleet", "checkout")
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.startswith("checkout: promote sent to rollout ro-")
    thread.join(timeout=120)
    assert not thread.is_alive()
    checkout = out["result"].fleet("checkout")
    assert checkout.outcome == "promoted", checkout
    assert slots.weights() == {"blue": 0, "green": 100}
    assert any(e.kind == "rollout.signal" and e.data["signal"] == "promote" for e in slots.events)

    # Nothing left to promote: a clear usage error.
    again = cli(slots, "promote", "-f", str(slots.spec_path), "--fleet", "checkout")
    assert again.returncode == 2
    assert again.stderr.strip() == "error: fleet 'checkout' has no rollout in progress"


def test_abort_from_another_process_rolls_back(slots: SlotWorld) -> None:
    thread, out = start_paused_rollout(slots)
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "immutable_sdk",
            "--endpoint-url",
            slots.url,
            "status",
            "-f",
            str(slots.spec_path),
            "--watch",
            "--interval",
            "0.2",
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
        cwd=slots.tmp,
        # as a script's background job starts it: with SIGINT ignored, which Python keeps
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert watch.stdout is not None
        view = check_output("status --watch", watch.stdout.readline())["fleets"]
        assert json.loads(watch.stdout.readline())  # it refreshes
    finally:
        watch.send_signal(signal.SIGINT)
        # Drain its pipes while it exits: it keeps printing until the signal lands, and a
        # full pipe would block its exit (Popen.wait with pipes can deadlock).
        _, errors = watch.communicate(timeout=60)
    assert watch.returncode == 0, errors
    entry = view[0]
    assert entry["traffic"]["weights"] == {"blue": 80, "green": 20}
    assert entry["traffic"]["slots"]["green"]["healthy"] == 1
    assert entry["traffic"]["slots"]["blue"]["healthy"] == 4
    assert entry["rollout_in_progress"]["step"] == "pause until promoted"

    aborted = cli(slots, "abort", "-f", str(slots.spec_path), "--fleet", "checkout", "-o", "json")
    assert aborted.returncode == 0, aborted.stderr
    sent = check_output("abort", aborted.stdout)
    assert sent["signal"] == "abort" and sent["fleet"] == "checkout"
    thread.join(timeout=120)
    checkout = out["result"].fleet("checkout")
    assert checkout.outcome == "rolled_back"
    assert "aborted by an operator" in (checkout.error or "")
    assert slots.weights() == {"blue": 100, "green": 0}
    assert slots.slot("green") == {}
    assert len(slots.instances_of("blue")) == 4
    # An operator's abort is a decision about the release: it stays out (quarantined).
    planned = cli(
        slots, "--endpoint-url", slots.url, "plan", "-f", str(slots.spec_path), "-o", "json"
    )
    item = check_output("plan", planned.stdout)["items"][0]
    assert (item["action"], item["hold"]["checks"]) == ("blocked", ["abort"]), item
    assert item["hold"]["rollout"] == checkout.rollout


def test_promote_full_skips_the_remaining_steps(slots: SlotWorld) -> None:
    slots.write(
        slot_spec(
            "{type: canary, steps: [{weight: 10}, {pause: manual}, {weight: 30, bake: 1h},"
            " {pause: manual}, {weight: 60, bake: 1h}], keep_previous: 10m}"
        )
    )
    with slots.engine(AMI_V1) as engine:
        assert engine.apply().ok
    slots.events.clear()
    slots.clock = PacedClock()
    engine = slots.engine(AMI_V2)
    out: dict[str, ApplyResult] = {}

    def run() -> None:
        with engine:
            out["result"] = engine.apply()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    until(lambda: any(e.kind == "rollout.paused" for e in slots.events))
    with slots.engine(AMI_V2) as other:  # the Python API: Engine.promote
        other.promote("checkout", full=True)
    thread.join(timeout=120)
    assert out["result"].ok, out["result"].to_dict()
    shifted = [e.data["after"] for e in slots.of_kind("traffic.shifted")]
    assert shifted == [{"blue": 90, "green": 10}, {"blue": 0, "green": 100}]
    kinds = {e.data["index"]: e.data["step"]["kind"] for e in slots.of_kind("step.started")}
    skipped = [
        kinds[e.data["index"]] for e in slots.of_kind("step.finished") if e.data.get("skipped")
    ]
    # the growing canary group (provision 2 and 3, their gates), the shifts to 30% and 60%,
    # their bakes and the second pause: skipped to full capacity and 100% at once
    assert skipped == [
        *("provision", "gate", "shift", "bake", "pause"),
        *("provision", "gate", "shift", "bake"),
    ]
    assert slots.slot("blue") == {} and len(slots.instances_of("green")) == 4
