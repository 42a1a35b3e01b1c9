"""Rollouts on Step Functions against in-process ``apply``: wall time and AWS calls, state
transitions and SQS requests, counted. The ``step-functions`` group of ``python -m benchmarks``.

N fleets (50; ``--quick``: 8) of one instance each, in two waves with a one-second bake, are
created on the emulator (moto runs the project's state machine for real) three times: by an
execution with 1, 2 and 4 worker processes (``immutable-sdk worker --concurrency 4``, running
the SDK's own reconcile tick), started as a user starts one (``orchestrator install``, then
``apply --on step-functions --parallelism min(N, 4 x workers)``); then by in-process ``apply``
of the same spec. Counted per execution:

* state transitions: the history's ``*StateEntered`` events (what AWS bills for Standard
  workflows), by state;
* SQS requests: the Tick messages the state machine sent (one per scheduled Tick task, retries
  included) and the workers' own requests (receives, empty long polls included, deletes,
  visibility changes); the workers' task answers and heartbeats to Step Functions;
* the ticks' AWS calls by operation (EC2, Auto Scaling, DynamoDB state: the rollouts' work)
  against in-process ``apply``'s (its plan included).

The emulator runs in this process: it executes the state machine and serves every call, on the
same cores as the workers, so wall times are the emulator's. See docs/step-functions.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
WORKER_CONCURRENCY = 4
RUN_TIMEOUT = 1800.0  # seconds: an execution that runs longer is reported as such


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


def write_spec(tmp: Path, units: int) -> Path:
    names = [f"u{i:03d}" for i in range(units)]
    path = tmp / "spec.yaml"
    path.write_text(spec_text(names, [names[: units // 2], names[units // 2 :]]))
    return path


def prepare(url: str, path: Path) -> None:
    """Seed the account for the spec (subnet, security group) and create its state table."""
    from immutable_sdk.aws.session import AwsSession
    from immutable_sdk.core.connection import Connection
    from immutable_sdk.sandbox import Sandbox
    from immutable_sdk.spec.load import load_spec

    spec = load_spec([path])
    Sandbox.attach(url).seed(spec)
    Connection(AwsSession("us-east-1", endpoint_url=url)).create_state(spec)


def cli(url: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "immutable_sdk", "--endpoint-url", url, *args],
        env=environ(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"immutable-sdk {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout))


def environ() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC)}


def history_counts(events: list[dict[str, Any]]) -> dict[str, Any]:
    """State transitions (``*StateEntered``) by state, and the Tick tasks scheduled."""
    entered: Counter[str] = Counter()
    for e in events:
        if e["type"].endswith("StateEntered"):
            entered[str((e.get("stateEnteredEventDetails") or {}).get("name", "?"))] += 1
    kinds = Counter(e["type"] for e in events)
    return {
        "state_transitions": sum(entered.values()),
        "transitions_by_state": dict(sorted(entered.items())),
        "ticks_scheduled": kinds["TaskScheduled"],
        "tick_timeouts": kinds["TaskTimedOut"],
    }


def sqs_and_answers(calls: Counter[str], sent: int) -> dict[str, int]:
    """SQS requests (the state machine's sends, the workers' own) and answers to Step Functions."""
    sqs = {k.removeprefix("sqs."): v for k, v in calls.items() if k.startswith("sqs.")}
    return {
        "sqs_sent_by_state_machine": sent,
        "sqs_receives": sqs.get("ReceiveMessage", 0),
        "sqs_deletes": sqs.get("DeleteMessage", 0),
        "sqs_visibility_changes": sqs.get("ChangeMessageVisibility", 0),
        "sqs_worker_requests": sum(sqs.values()),
        "sqs_requests": sent + sum(sqs.values()),
        "task_heartbeats": calls.get("stepfunctions.SendTaskHeartbeat", 0),
        "task_answers": calls.get("stepfunctions.SendTaskSuccess", 0)
        + calls.get("stepfunctions.SendTaskFailure", 0),
    }


def on_step_functions(url: str, path: Path, units: int, workers: int) -> dict[str, Any]:
    """One execution creating every fleet of ``path``, ticked by ``workers`` processes."""
    from immutable_sdk.aws.session import AwsSession
    from immutable_sdk.aws.stepfunctions import Orchestration

    prepare(url, path)
    cli(url, "orchestrator", "install", "-f", str(path), "--yes", "-o", "json")
    aws = Orchestration(AwsSession("us-east-1", endpoint_url=url))
    procs = []
    outs = []
    for n in range(workers):
        out = path.parent / f"worker{n}.json"
        outs.append(out)
        with out.open("w") as sink:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "immutable_sdk", "--endpoint-url", url, "worker",
                     "-f", str(path), "--concurrency", str(WORKER_CONCURRENCY), "-o", "json"],
                    env=environ(), stdout=sink, stderr=subprocess.DEVNULL, text=True,
                )
            )  # fmt: skip
    try:
        time.sleep(1.0)  # the workers' start-up is not the rollout's
        start = time.monotonic()
        # a wave's concurrency at most the workers' ticks at once: more would only queue ticks
        parallelism = min(units, WORKER_CONCURRENCY * workers)
        started = cli(url, "apply", "-f", str(path), "--yes", "--on", "step-functions",
                      "--parallelism", str(parallelism), "-o", "json")  # fmt: skip
        arn = str(started["execution_arn"])
        status = "RUNNING"
        while status == "RUNNING" and time.monotonic() - start < RUN_TIMEOUT:
            time.sleep(0.2)
            status = (aws.describe_execution(arn) or {}).get("status", "RUNNING")
        wall = time.monotonic() - start
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
    worker_calls: Counter[str] = Counter()
    tick_calls: Counter[str] = Counter()
    ticks: Counter[str] = Counter()
    for p, out in zip(procs, outs, strict=True):
        p.wait(timeout=300)
        summary = json.loads(out.read_text())["worker"]
        worker_calls.update(summary["aws_calls"])
        tick_calls.update(summary.get("tick_calls", {}))
        ticks.update(summary.get("ticks", {}))
    counted = history_counts(aws.history(arn))
    requests = sqs_and_answers(worker_calls, counted["ticks_scheduled"])
    return {
        "units": units,
        "workers": workers,
        "parallelism": parallelism,
        "status": status,
        "wall": round(wall, 1),
        **counted,
        **requests,
        "worker_ticks": dict(ticks),
        "worker_calls": dict(sorted(worker_calls.items())),
        "tick_calls": dict(sorted(tick_calls.items())),
        "tick_calls_total": sum(tick_calls.values()),
        "per_unit": {
            "ticks": counted["ticks_scheduled"] / units,
            "state_transitions": counted["state_transitions"] / units,
            "sqs_requests": requests["sqs_requests"] / units,
            "tick_calls": sum(tick_calls.values()) / units,
        },
    }


def in_process(url: str, path: Path, units: int) -> dict[str, Any]:
    """The same fleets created by in-process ``apply`` (its plan's calls included)."""
    from immutable_sdk.core.engine import Engine

    prepare(url, path)
    with Engine.from_files([path], endpoint_url=url) as engine:
        before = engine.session.calls.snapshot()
        start = time.monotonic()
        result = engine.apply(parallelism=units)
        wall = time.monotonic() - start
        calls = engine.session.calls.since(before)
    return {
        "units": units,
        "ok": all(f.ok for f in result.fleets),
        "wall": round(wall, 1),
        "calls": dict(sorted(calls.items())),
        "calls_total": sum(calls.values()),
        "per_unit": {"calls": sum(calls.values()) / units},
    }


def run(quick: bool) -> dict[str, Any]:
    """The group: 1, 2 and 4 workers (quick: 1 and 2, fewer fleets), then in-process apply."""
    from immutable_sdk.sandbox.emulator import Emulator

    units = 8 if quick else 50
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    out: dict[str, Any] = {"units": units, "waves": 2, "bake": 1, "runs": {}}
    with Emulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        path = write_spec(Path(tmp), units)
        for workers in (1, 2) if quick else (1, 2, 4):
            emulator.reset()
            row = on_step_functions(emulator.url, path, units, workers)
            out["runs"][str(workers)] = row
            print(
                f"step functions, {units} fleets, {workers} worker(s): {row['status']} "
                f"{row['wall']:.1f}s, ticks' calls {row['tick_calls_total']}, "
                f"{row['state_transitions']} transitions, {row['sqs_requests']} SQS requests",
                file=sys.stderr,
            )
        emulator.reset()
        out["in_process"] = in_process(emulator.url, path, units)
        a = out["in_process"]
        print(f"in-process apply, {units} fleets: {a['wall']:.1f}s, {a['calls_total']} calls",
              file=sys.stderr)  # fmt: skip
    return out


def table_lines(d: dict[str, Any]) -> list[str]:
    """The group's rows of ``python -m benchmarks``'s table."""
    lines = []
    units = d["units"]
    for workers, r in d["runs"].items():
        lines.append(
            f"step functions {units} fleets, {workers} worker(s) x {WORKER_CONCURRENCY}: "
            f"{r['wall']:.1f}s {r['status']}, ticks' calls {r['tick_calls_total']}, "
            f"{r['state_transitions']} transitions, {r['sqs_requests']} SQS requests, "
            f"{r['ticks_scheduled']} ticks"
        )
    a = d.get("in_process")
    if a:
        lines.append(f"in-process apply {units} fleets: {a['wall']:.1f}s, {a['calls_total']} calls")
    return lines


def targets(d: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """Every execution succeeded; the ticks' AWS calls about apply's (each tick reads only its
    unit: at most 1.5 times)."""
    rows = []
    a = d.get("in_process") or {}
    for workers, r in d["runs"].items():
        ok = r["status"] == "SUCCEEDED"
        what = f"step functions, {workers} worker(s): execution"
        rows.append((what, r["status"], "SUCCEEDED", ok))
        if a.get("calls_total"):
            ratio = r["tick_calls_total"] / a["calls_total"]
            what = f"step functions, {workers} worker(s): ticks' calls / apply's"
            rows.append((what, f"{ratio:.2f}", "<= 1.5", ratio <= 1.5))
    return rows


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    print(json.dumps(run(quick), indent=2))


if __name__ == "__main__":
    main()
