"""Every command of the CLI under ``--sandbox`` stays on loopback, with real-looking AWS
credentials, a profile and proxies in its environment.

The commands are found by walking click's command tree, so a new command is run here too; a
new command with a required parameter this file does not know fails the test, naming it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest

from immutable_sdk.cli import main

from .netguard import PROFILE_ONLY, NetGuard

REPO = Path(__file__).resolve().parents[2]
PACKER = shutil.which("packer")

# Values for required parameters, by parameter name; richer runs by command path.
REQUIRED = {"files": ["-f", "spec.yaml"], "fleet": ["--fleet", "web"]}
DEEPER = {
    "apply": ["-f", "spec.yaml", "--yes"],  # -f optional: `apply PLANFILE` needs none
    "images": ["-f", "spec.yaml"],  # -f is optional on the group (a subcommand may follow)
    "unlock": ["--force"],
    "images gc": ["-f", "spec.yaml", "--min-age", "0s"],  # -f: here or on the group
    "images list": ["-f", "spec.yaml"],
    "drift": ["--fix"],
}
# The order a person would run them in (so that the served sandbox has a fleet to act on);
# commands not listed run after these, in name order.
ORDER = ["state init", "validate", "plan", "apply", "status", "history", "images", "drift"]
SERVED_ELSEWHERE = {"sandbox serve"}  # run by the served-sandbox test as the server
# Commands that must succeed on a fresh sandbox; the others may refuse (no rollout to promote,
# no release to roll back to) with a documented exit code, never with a traceback.
MUST_SUCCEED = {
    "state init",
    "validate",
    "plan",
    "apply",
    "status",
    "history",
    "images",
    "images list",
    "images gc",
    "unlock",
    "iam-policy",
    "plugins",
    "schema",
}
DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 4, 10, 11}  # 10, 11: reconcile progressing, waiting

SPEC = """apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
state: {{backend: dynamodb, table: shop-state}}
images:
  web:
{image}
    retain: 1
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    load_balancer: {{target_groups: [shop-web]}}
    capacity: {{min: 1, desired: 2, max: 4}}
    strategy: {{type: rolling, batch_size: 1}}
    health:
      timeout: 1m
      checks:
        - {{type: ec2}}
        - {{type: elb}}
"""
PACKER_IMAGE = """    builder: packer
    template: packer/web.pkr.hcl
    vars: {app_version: "1.0.0"}"""
AMI_IMAGE = """    builder: ami
    id: ami-03c3da4cfa8e8943a"""


def commands(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every runnable command path: leaves, and groups that run without a subcommand."""
    for name in sorted(group.commands):
        command = group.commands[name]
        if isinstance(command, click.Group):
            if command.invoke_without_command:
                yield (*path, name)
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def arguments(path: tuple[str, ...]) -> list[str]:
    """The command line for ``path``: its required parameters and the DEEPER flags."""
    args = list(path)
    for param in _command(path).params:
        if not param.required:
            continue
        assert param.name in REQUIRED, (
            f"`{' '.join(path)}` has a required parameter {param.name!r}: give it a value in "
            "REQUIRED so that the sandbox test runs the command"
        )
        args += REQUIRED[param.name]
    return args + DEEPER.get(" ".join(path), [])


def ordered(paths: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(paths, key=lambda p: (rank.get(" ".join(p), len(ORDER)), p))


def runnable() -> list[tuple[str, ...]]:
    return ordered([p for p in commands() if " ".join(p) not in SERVED_ELSEWHERE])


def project(root: Path) -> Path:
    """The spec (Packer-built when packer is installed: a subprocess that calls AWS too)."""
    root.mkdir(parents=True, exist_ok=True)
    if PACKER:
        shutil.copytree(REPO / "specs/examples/packer", root / "packer")
    (root / "spec.yaml").write_text(SPEC.format(image=PACKER_IMAGE if PACKER else AMI_IMAGE))
    return root


def test_the_command_tree_is_walked() -> None:
    found = {" ".join(p) for p in commands()}
    assert {"apply", "state init", "unlock", "images", "images gc", "sandbox serve"} <= found
    assert all(arguments(p) for p in runnable())  # every required parameter has a value


def _check(path: tuple[str, ...], result: subprocess.CompletedProcess[str]) -> list[str]:
    name = " ".join(path)
    problems = []
    if "Traceback" in result.stderr:
        problems.append(f"{name}: traceback:\n{result.stderr[-3000:]}")
    expected = {0} if name in MUST_SUCCEED else DOCUMENTED_EXIT_CODES
    if result.returncode not in expected:
        problems.append(f"{name}: exit {result.returncode}\n{result.stderr[-2000:]}")
    return problems


@pytest.mark.slow
def test_every_command_with_sandbox_reaches_only_loopback(tmp_path: Path) -> None:
    guard = NetGuard(tmp_path / "guard")
    root = project(tmp_path / "project")

    def run(path: tuple[str, ...]) -> list[str]:
        # credentials from the profile only (its credential_process leaves a marker if it
        # runs); the served test below has real-looking keys in the environment instead
        result = guard.run(["--sandbox", *arguments(path)], cwd=root, env=PROFILE_ONLY)
        return _check(path, result)

    with ThreadPoolExecutor(max_workers=3) as pool:  # each command has its own emulator
        problems = [p for found in pool.map(run, runnable()) for p in found]
    assert guard.escapes() == []
    assert problems == []
    assert not (root / ".immutable").exists()  # the spec's real state was never touched


@pytest.mark.slow
def test_every_command_on_a_served_sandbox_reaches_only_loopback(tmp_path: Path) -> None:
    guard = NetGuard(tmp_path / "guard")
    root = project(tmp_path / "project")
    env_file = tmp_path / "sandbox.env"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "immutable_sdk",
            "sandbox",
            "serve",
            "-f",
            "spec.yaml",
            "--env-file",
            str(env_file),
        ],
        cwd=root,
        env=guard.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        env = served_env(server, env_file)
        problems = []
        for path in runnable():  # IMMUTABLE_SDK_SANDBOX=1 from the env file, no --sandbox
            problems += _check(path, guard.run(arguments(path), cwd=root, env=env))
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert "Traceback" not in err
    assert guard.escapes() == []
    assert problems == []
    assert not (root / ".immutable").exists()


def served_env(
    server: subprocess.Popen[str], env_file: Path, timeout: float = 60
) -> dict[str, str]:
    """The variables ``sandbox serve`` wrote, once it wrote them."""
    deadline = time.monotonic() + timeout
    while not env_file.exists():
        if server.poll() is not None:
            raise AssertionError(f"sandbox serve exited: {server.communicate()[1]}")
        if time.monotonic() > deadline:
            raise AssertionError("sandbox serve wrote no env file")
        time.sleep(0.1)  # polling a file another process writes (no project clock here)
    env = {}
    for line in env_file.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    assert env["IMMUTABLE_SDK_SANDBOX"] == "1"
    return env


def test_sandbox_with_a_real_endpoint_or_profile_is_refused(tmp_path: Path) -> None:
    guard = NetGuard(tmp_path / "guard")
    root = project(tmp_path / "project")
    for args, env, expected in [
        (
            ["--sandbox", "state", "init"],
            {"AWS_ENDPOINT_URL": "https://dynamodb.us-east-1.amazonaws.com"},
            "AWS_ENDPOINT_URL",
        ),
        (
            ["--sandbox", "--profile", "prod", "unlock", "--force", "--fleet", "web"],
            {},
            "--profile",
        ),
    ]:
        result = guard.run([*args, "-f", "spec.yaml"], cwd=root, env=env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and expected in result.stderr
    assert guard.escapes() == []


def test_the_guard_sees_an_escape(tmp_path: Path) -> None:
    """Without --sandbox the same command goes for AWS: the guard must say so (else the tests
    above prove nothing)."""
    guard = NetGuard(tmp_path / "guard")
    root = project(tmp_path / "project")
    result = guard.run(["state", "init", "-f", "spec.yaml"], cwd=root, timeout=60)
    assert result.returncode != 0
    escapes = guard.escapes()
    assert any("proxy.corp.example" in e for e in escapes), escapes
    assert not guard.marker.exists()
    result = guard.run(["state", "init", "-f", "spec.yaml"], cwd=root, env=PROFILE_ONLY)
    assert result.returncode != 0
    assert guard.marker.exists()  # the profile's credentials were fetched: the guard sees it
    assert "credential_process ran" in guard.escapes()[-1]


def test_strace_sees_an_escape_of_a_process_that_is_not_python(tmp_path: Path) -> None:
    guard = NetGuard(tmp_path / "guard")
    if guard.strace is None:
        pytest.skip("strace cannot trace here")
    connect = "exec 3<>/dev/tcp/192.0.2.1/80"  # TEST-NET-1: never answers; bash connects itself
    subprocess.run(
        guard.argv([], "bash", ["timeout", "2", "bash", "-c", connect]),
        capture_output=True,
        timeout=30,
    )
    assert any('inet_addr("192.0.2.1")' in e for e in guard.escapes()), guard.escapes()
