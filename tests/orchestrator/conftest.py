"""An orchestrated project on the emulator: spec with DynamoDB state, install, worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from tests.cli.output_schema import check_output

from immutable_sdk.aws.session import AwsSession
from immutable_sdk.aws.stepfunctions import Orchestration
from immutable_sdk.cli import main
from immutable_sdk.clock import RealClock
from immutable_sdk.core.orchestrator.execution import ExecutionInput, execution_input
from immutable_sdk.results import Plan, PlanItem
from immutable_sdk.spec.load import load_spec
from immutable_sdk.testing.orchestrator import JOURNAL_VAR, SCRIPT_VAR

SRC = str(Path(__file__).resolve().parents[2] / "src")
TICK = "immutable_sdk.testing.orchestrator:scripted_tick"


def spec_text(fleets: Sequence[str], waves: Sequence[tuple[str, Sequence[str], str]]) -> str:
    """A project ``orc`` whose state is in DynamoDB, with ``fleets`` and ``waves``."""
    text = """apiVersion: immutable-sdk/v1
name: orc
region: us-east-1
state: {backend: dynamodb, table: orc-state}
images:
  app: {builder: ami, id: ami-03c3da4cfa8e8943a}
fleets:
"""
    for name in fleets:
        text += f"""  {name}:
    image: app
    instance_type: t3.micro
    subnets: [orc-a]
    security_groups: [orc-web]
    capacity: {{min: 1, desired: 1, max: 2}}
    health: {{checks: [{{type: ec2}}]}}
"""
    if waves:
        text += "waves:\n"
        for name, members, bake in waves:
            text += f"  - {{name: {name}, fleets: [{', '.join(members)}], bake: {bake}}}\n"
    return text


class Project:
    """The emulator account, the spec on disk, the orchestrator and worker processes."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp
        self.spec = tmp / "spec.yaml"
        self.script = tmp / "script.json"
        self.journal = tmp / "journal.jsonl"
        self.workers: list[subprocess.Popen[str]] = []
        self.session = AwsSession("us-east-1", endpoint_url=url)
        self.aws = Orchestration(self.session)

    def write(self, text: str, script: dict[str, list[dict[str, Any]]]) -> None:
        self.spec.write_text(text)
        self.script.write_text(json.dumps(script))

    def cli(self, *args: str) -> Any:
        result = CliRunner().invoke(
            main, ["--endpoint-url", self.url, *args], catch_exceptions=False
        )
        return result

    def install(self, *extra: str) -> dict[str, Any]:
        result = self.cli(
            "orchestrator", "install", "-f", str(self.spec), "--yes", "-o", "json", *extra
        )
        assert result.exit_code == 0, result.output
        return dict(check_output("orchestrator install", result.stdout)["orchestrator"])

    def start(self, waves: Sequence[Sequence[str]], *, poll_seconds: int = 1) -> str:
        """Start an execution of a plan whose items create the fleets of ``waves``."""
        spec = load_spec([self.spec])
        names = [w.name for w in spec.waves] or ["all"]
        items = tuple(
            PlanItem(fleet=f, action="create", release="r1", wave=names[i], region="us-east-1")
            for i, fleets in enumerate(waves)
            for f in fleets
        )
        plan = Plan(
            "orc",
            items,
            waves=tuple(w_.to_dict() for w_ in _waves(spec, waves)),
        )
        run: ExecutionInput = execution_input(spec, plan, parallelism=3, poll_seconds=poll_seconds)
        machine = self.aws.find_state_machine("immutable-sdk-orc")
        assert machine is not None
        arn, started = self.aws.start_execution(machine, run.name, run.to_json())
        assert started
        return arn

    def worker(self, *args: str, tick: str | None = TICK) -> subprocess.Popen[str]:
        """A worker process with the scripted tick (``tick=None``: the SDK's own)."""
        env = dict(os.environ)
        env.update(
            {
                "PYTHONPATH": SRC + os.pathsep + env.get("PYTHONPATH", ""),
                "PYTHONUNBUFFERED": "1",
                SCRIPT_VAR: str(self.script),
                JOURNAL_VAR: str(self.journal),
            }
        )
        n = len(self.workers)
        out = (self.tmp / f"worker-{n}.out").open("w")
        err = (self.tmp / f"worker-{n}.err").open("w")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "immutable_sdk",
                "--endpoint-url",
                self.url,
                "worker",
                "-f",
                str(self.spec),
                *(["--tick", tick] if tick else []),
                "-o",
                "json",
                *args,
            ],
            cwd=self.tmp,
            env=env,
            stdout=out,
            stderr=err,
            text=True,
        )
        self.workers.append(proc)
        return proc

    def wait_for(self, arn: str, timeout: float = 90.0) -> dict[str, Any]:
        clock = RealClock()
        deadline = clock.monotonic() + timeout
        while clock.monotonic() < deadline:
            found = self.aws.describe_execution(arn)
            assert found is not None
            if found["status"] != "RUNNING":
                return found
            clock.sleep(0.2)
        raise AssertionError(f"execution still running after {timeout}s: {self.logs()}")

    def logs(self, whole: bool = False) -> str:
        texts = (p.read_text() for p in sorted(self.tmp.glob("worker-*.err")))
        return "\n".join(t if whole else t[-3000:] for t in texts)

    def stop_workers(self) -> list[int]:
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()  # SIGTERM: finish the tick in hand, then exit
        return [proc.wait(timeout=60) for proc in self.workers]

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1")


def _waves(spec: Any, waves: Sequence[Sequence[str]]) -> list[Any]:
    from immutable_sdk.core.waves import assign_waves

    return assign_waves(spec, [f for fleets in waves for f in fleets])


@pytest.fixture
def project(aws: str, tmp_path: Path) -> Iterator[Project]:
    p = Project(aws, tmp_path)
    yield p
    for proc in p.workers:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
