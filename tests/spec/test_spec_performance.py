"""Validation stays fast for large specs, and loading a spec never imports boto3."""

from __future__ import annotations

import subprocess
import sys
import time

from immutable_sdk.plugins import Plugins
from immutable_sdk.spec.load import load_spec

from .conftest import Writer

FLEET = """\
  f{i}:
    image: web
    instance_type: t3.{size}
    subnets: [subnet-a, subnet-b]
    security_groups: [sg-{i}]
    capacity: {{min: {low}, desired: {mid}, max: {high}}}
    load_balancer: {{target_groups: [tg-{i}]}}
    strategy: {{type: steady, batch_size: {batch}, pause: {i}s}}
    health:
      timeout: {t}m
      checks:
        - {{type: probe, url: "http://{{private_ip}}:{port}/"}}
        - {{type: probe, url: "http://{{private_ip}}:{port}/ready", every: 5s}}
    tags: {{team: t{i}}}
"""


def test_a_thousand_distinct_fleets_validate_quickly(write: Writer, plugins: Plugins) -> None:
    head = "apiVersion: immutable-sdk/v1\nname: big\nregion: us-east-1\n"
    head += "images:\n  web: {builder: test-builder, template: web.pkr.hcl}\nfleets:\n"
    fleets = "".join(
        FLEET.format(
            i=i,
            size=("small", "medium", "large")[i % 3],
            low=i % 5,
            mid=i % 5 + 1,
            high=i % 5 + 2,
            batch=f"{i % 90 + 1}%",
            t=i + 1,
            port=8000 + i,
        )
        for i in range(1000)
    )
    f = write("big.yaml", head + fleets)
    load_spec([f], plugins=plugins, environ={})  # warm the compiled validator
    best = min(_cpu_seconds(lambda: load_spec([f], plugins=plugins, environ={})) for _ in range(3))
    # about 0.35 s of CPU on a slow CI machine; quadratic behaviour would take many seconds
    assert best < 1.0, best


def _cpu_seconds(run) -> float:  # type: ignore[no-untyped-def]
    start = time.process_time()
    run()
    return time.process_time() - start


def test_loading_a_spec_never_imports_boto3(write: Writer) -> None:
    f = write("spec.yaml")
    code = (
        "import sys\n"
        "import immutable_sdk.cli.spec\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'rich') if m in sys.modules))\n"
        "from immutable_sdk.cli import main\n"
        f"try: main(['validate', '-f', {f!r}], standalone_mode=False)\n"
        "except Exception as exc: print(type(exc).__name__)\n"
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "[]", out.stdout + out.stderr  # importing the commands is light
    assert "unknown builder 'test-builder'" in out.stderr  # refused before any AWS call
    assert lines[-1] == "[]", out.stdout + out.stderr


def test_validations_in_threads_do_not_mix(write: Writer, plugins: Plugins) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from immutable_sdk.errors import SpecError

    from .conftest import VALID

    good = write("good.yaml")
    bad = write("bad.yaml", VALID.replace("pause: 30s", "pause: later"))

    def outcome(path: str) -> str:
        try:
            load_spec([path], plugins=plugins, environ={})
        except SpecError as exc:
            return exc.problems[0].path
        return "ok"

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(outcome, [good, bad] * 20))
    assert results == ["ok", "fleets.web.strategy.pause"] * 20
