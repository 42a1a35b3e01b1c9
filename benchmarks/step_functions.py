"""What a rollout on Step Functions costs, counted: state transitions, SQS and answer requests.

    python -m benchmarks.step_functions [--units 50] [--workers 1 2 4] [--ticks 2] [--real]

Against the emulator (moto runs the generated state machine for real), each unit answers
``--ticks`` ticks from a script (``progressing`` with a next_at a second away, ..., then
``converged``), in two waves with a one-second bake, driven by ``--workers`` worker processes
(``immutable-sdk worker``). Counted from the execution's history and the workers' own call
counters: state transitions (history events that enter a state, which is what AWS bills),
Tick messages the state machine sent, and the workers' SQS and Step Functions requests.
The scripted tick does no AWS work of its own. With ``--real`` the workers run the SDK's own
tick (``Engine.reconcile``, issue 16) and create every fleet on the emulator, and in-process
``apply`` of the same spec is run for comparison (wall time, AWS calls). See
docs/step-functions.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
TICK = "immutable_sdk.testing.orchestrator:scripted_tick"


def spec_text(units: list[str], waves: list[list[str]]) -> str:
    text = (
        "apiVersion: immutable-sdk/v1\nname: bench\nregion: us-east-1\n"
        "state: {backend: dynamodb, table: bench-state}\n"
        "images:\n  app: {builder: ami, id: ami-03c3da4cfa8e8943a}\nfleets:\n"
    )
    for u in units:
        text += (
            f"  {u}:\n    image: app\n    instance_type: t3.micro\n    subnets: [b-a]\n"
            f"    security_groups: [b-web]\n    capacity: {{min: 1, desired: 1, max: 2}}\n"
            f"    health: {{checks: [{{type: ec2}}]}}\n"
        )
    text += "waves:\n"
    for i, members in enumerate(waves):
        bake = "1s" if i < len(waves) - 1 else "0s"
        text += f"  - {{name: w{i}, fleets: [{', '.join(members)}], bake: {bake}}}\n"
    return text


def run(
    url: str, tmp: Path, units: int, workers: int, ticks: int, real: bool = False
) -> dict[str, Any]:
    from immutable_sdk.aws.session import AwsSession
    from immutable_sdk.aws.stepfunctions import Orchestration
    from immutable_sdk.clock import RealClock
    from immutable_sdk.core.orchestrator.definition import TickSettings
    from immutable_sdk.core.orchestrator.execution import execution_input
    from immutable_sdk.core.orchestrator.install import install
    from immutable_sdk.core.orchestrator.resources import Orchestrator
    from immutable_sdk.core.waves import assign_waves
    from immutable_sdk.results import Plan, PlanItem
    from immutable_sdk.spec.load import load_spec

    clock = RealClock()
    names = [f"u{i:03d}" for i in range(units)]
    waves = [names[: units // 2], names[units // 2 :]]
    spec_path = tmp / "spec.yaml"
    spec_path.write_text(spec_text(names, waves))
    steps = [{"state": "progressing", "next_in": 1}] * (ticks - 1) + [{"state": "converged"}]
    (tmp / "script.json").write_text(json.dumps({u: steps for u in names}))
    journal = tmp / "journal.jsonl"
    journal.unlink(missing_ok=True)
    spec = load_spec([spec_path])
    session = AwsSession("us-east-1", endpoint_url=url)
    aws = Orchestration(session)
    if real:
        from immutable_sdk.core.connection import Connection
        from immutable_sdk.sandbox import Sandbox

        Sandbox.attach(url).seed(spec)
        Connection(session).create_state(spec)
    # the heartbeat timeout runs from when a Tick's message is sent: a tick waiting in the
    # queue for a free worker counts, so it is set well past a tick's time in the queue
    heartbeat = 60 if real else 10
    orch = Orchestrator.for_spec(
        spec, TickSettings(heartbeat_seconds=heartbeat, timeout_seconds=600)
    )
    done = install(orch, aws)
    items = tuple(
        PlanItem(fleet=u, action="create", release="r1", wave=f"w{i}", region="us-east-1")
        for i, members in enumerate(waves)
        for u in members
    )
    plan = Plan("bench", items, waves=tuple(w.to_dict() for w in assign_waves(spec, names)))
    # a wave's concurrency at most the workers' (4 ticks each): more would only queue ticks
    payload = execution_input(spec, plan, parallelism=min(units, 4 * workers), poll_seconds=1)
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "IMMUTABLE_SDK_TEST_TICK_SCRIPT": str(tmp / "script.json"),
        "IMMUTABLE_SDK_TEST_TICK_JOURNAL": str(journal),
    }
    procs = []
    for n in range(workers):
        out = (tmp / f"w{n}.out").open("w")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "immutable_sdk", "--endpoint-url", url, "worker",
                 "-f", str(spec_path), *([] if real else ["--tick", TICK]),
                 "--concurrency", "4", "-o", "json"],
                env=env, stdout=out, stderr=subprocess.DEVNULL, text=True,
            )
        )  # fmt: skip
    clock.sleep(1.0)  # the workers' start-up is not the rollout's
    start = clock.monotonic()
    arn, _ = aws.start_execution(done.state_machine_arn, payload.name, payload.to_json())
    while (aws.describe_execution(arn) or {}).get("status") == "RUNNING":
        clock.sleep(0.1)
    wall = clock.monotonic() - start
    status = (aws.describe_execution(arn) or {})["status"]
    for p in procs:
        p.send_signal(signal.SIGTERM)
    calls: Counter[str] = Counter()
    tick_calls: Counter[str] = Counter()
    for n, p in enumerate(procs):
        p.wait(timeout=120)
        summary = json.loads((tmp / f"w{n}.out").read_text())["worker"]
        calls.update(summary["aws_calls"])
        tick_calls.update(summary.get("tick_calls", {}))
    history = aws.history(arn)
    kinds = Counter(e["type"] for e in history)
    transitions = sum(v for k, v in kinds.items() if k.endswith("StateEntered"))
    return {
        "units": units,
        "workers": workers,
        "ticks_per_unit": ticks,
        "status": status,
        "wall_seconds": round(wall, 1),
        "state_transitions": transitions,
        "tick_messages": kinds["TaskSubmitted"],
        "worker_sqs_requests": sum(v for k, v in calls.items() if k.startswith("sqs.")),
        "worker_answers": sum(v for k, v in calls.items() if k.startswith("stepfunctions.")),
        "worker_calls": dict(sorted(calls.items())),
        "tick_aws_calls": sum(tick_calls.values()),
    }


def in_process(url: str, tmp: Path, units: int) -> dict[str, Any]:
    """The same rollout by in-process ``apply`` (the spec ``run`` wrote), for comparison."""
    from immutable_sdk.aws.session import AwsSession
    from immutable_sdk.clock import RealClock
    from immutable_sdk.core.connection import Connection
    from immutable_sdk.core.engine import Engine
    from immutable_sdk.sandbox import Sandbox
    from immutable_sdk.spec.load import load_spec

    spec_path = tmp / "spec.yaml"
    spec = load_spec([spec_path])
    Sandbox.attach(url).seed(spec)
    Connection(AwsSession("us-east-1", endpoint_url=url)).create_state(spec)
    clock = RealClock()
    start = clock.monotonic()
    with Engine.from_files([spec_path], endpoint_url=url) as engine:
        result = engine.apply(parallelism=units)
        calls = engine.session.calls.total
    return {
        "units": units,
        "in_process_apply": True,
        "ok": all(f.ok for f in result.fleets),
        "wall_seconds": round(clock.monotonic() - start, 1),
        "aws_calls": calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--ticks", type=int, default=2)
    parser.add_argument("--real", action="store_true", help="the SDK's tick (issue 16)")
    args = parser.parse_args()
    from immutable_sdk.sandbox.emulator import Emulator

    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    with Emulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            emulator.reset()
            row = run(emulator.url, Path(tmp), args.units, workers, args.ticks, args.real)
            print(json.dumps(row), flush=True)
        if args.real:
            emulator.reset()
            print(json.dumps(in_process(emulator.url, Path(tmp), args.units)), flush=True)


if __name__ == "__main__":
    main()
