"""Pytest fixtures for immutable-sdk and its plugin authors (a pytest plugin).

Enable with ``-p immutable_sdk.testing`` or ``pytest_plugins = ["immutable_sdk.testing"]``.

* ``emulator``: one moto server on 127.0.0.1 per test session (session scope);
* ``aws``: the emulator reset to a clean account for this test, with dummy credentials in the
  environment; yields its endpoint URL;
* ``virtual_clock``: a VirtualClock;
* ``spec_writer``: writes spec files (and files they reference) under ``tmp_path``;
* ``sandbox_account``: the ``aws`` account seeded for a spec, with engines on the virtual clock
  (see ``SandboxAccount``), and ``run_rollout``: its ``run`` method, which applies a spec and
  returns the result with every event (see ``RolloutRun``);
* ``open_state_store``: ``open_state_store(project="shop")`` opens a state store object on
  this test's backend, once with SQLite and once with DynamoDB on the emulator (the fixture is
  parametrized); the objects share their data, as processes do (see ``stores``);
* ``health_server``: ``health_server(decide=None, status=200)`` starts a real HTTP server on
  127.0.0.1 (``.port``, ``.url``, ``.status``, ``.requests``), stopped after the test (see
  ``endpoints``).

Entry points of the ``immutable_sdk`` group are not loaded in tests, so that installed plugins
cannot change the outcome, unless the ini option ``immutable_sdk_autoload = true`` is set (a
plugin distribution's own tests, which must find their plugin the way users will) or the
environment has ``IMMUTABLE_SDK_TEST_AUTOLOAD=1``.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..aws.loopback import SANDBOX_CREDENTIALS
from ..clock import VirtualClock
from ..sandbox.emulator import Emulator
from .endpoints import HealthServer

if TYPE_CHECKING:
    from .stores import OpenStore
    from .testbed import RolloutRun, SandboxAccount


AUTOLOAD_INI = "immutable_sdk_autoload"

# Two Amazon Linux AMIs that the emulator ships in us-east-1: "the old" and "the new" image.
AMI_V1 = "ami-03c3da4cfa8e8943a"
AMI_V2 = "ami-0d27e0fb3bac4d724"


def sample_spec(
    *,
    strategy: str | None = None,
    desired: int = 2,
    checks: Sequence[str] = ("{type: ec2}",),
    traffic: bool = False,
    notifiers: Sequence[str] = (),
    project: str = "shop",
) -> str:
    """A spec with one fleet ``web`` on the image ``${IMAGE_ID}``, for the emulator and tests.

    ``strategy``, ``checks`` and ``notifiers`` are YAML flow mappings; ``traffic=True`` gives
    the fleet two traffic slots (``blue``, ``green``) behind a weighted Route 53 record,
    otherwise one target group. Every resource it names is seeded by the sandbox. The default
    strategy is ``{type: blue-green}`` with slots and ``{type: rolling, batch_size: 1}`` without.
    """
    if strategy is None:
        strategy = "{type: blue-green}" if traffic else "{type: rolling, batch_size: 1}"
    if traffic:
        wiring = f"""
    traffic:
      route53: {{zone: {project}.test., record: web.{project}.test, ttl: 60}}
      slots:
        blue: {{target_group: {project}-blue, load_balancer: {project}-blue}}
        green: {{target_group: {project}-green, load_balancer: {project}-green}}"""
    else:
        wiring = f"\n    load_balancer: {{target_groups: [{project}-web]}}"
    text = f"""apiVersion: immutable-sdk/v1
name: {project}
region: us-east-1
images:
  app:
    builder: ami
    id: ${{IMAGE_ID}}
fleets:
  web:
    image: app
    instance_type: t3.micro
    subnets: [{project}-a, {project}-b]
    security_groups: [{project}-web]
    capacity: {{min: {desired}, desired: {desired}, max: {desired * 2}}}{wiring}
    strategy: {strategy}
    health:
      timeout: 5m
      interval: 5s
      checks:
"""
    text += "".join(f"        - {check}\n" for check in checks)
    if notifiers:
        text += "notifiers:\n" + "".join(f"  - {n}\n" for n in notifiers)
    return text


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        AUTOLOAD_INI,
        type="bool",
        default=False,
        help="load plugins from the immutable_sdk entry point group in tests",
    )


def autoload_enabled(config: pytest.Config) -> bool:
    """Whether this test run loads entry points (the ini option or the environment says so)."""
    return os.environ.get("IMMUTABLE_SDK_TEST_AUTOLOAD") == "1" or bool(config.getini(AUTOLOAD_INI))


@pytest.fixture(autouse=True)
def _immutable_sdk_env(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Keep tests hermetic: no entry-point autoload, no real AWS profile or endpoint."""
    if autoload_enabled(request.config):
        monkeypatch.delenv("IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    else:
        monkeypatch.setenv("IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD", "1")
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "IMMUTABLE_SDK_SANDBOX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def aws(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    emulator.reset()
    for key, value in SANDBOX_CREDENTIALS.items():
        monkeypatch.setenv(key.upper(), value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield emulator.url


@pytest.fixture
def virtual_clock() -> VirtualClock:
    return VirtualClock()


SpecWriter = Callable[..., Path]


@pytest.fixture
def spec_writer(tmp_path: Path) -> SpecWriter:
    """``spec_writer(text, name="spec.yaml", **files)`` writes a dedented spec and extra files.

    Extra files are given as keyword arguments (``user_data="#!/bin/sh"``) or as a ``files``
    mapping of relative path to content; returns the spec's path.
    """

    def write(
        text: str, name: str = "spec.yaml", files: dict[str, str] | None = None, **extra: Any
    ) -> Path:
        for rel, content in {**(files or {}), **extra}.items():
            p = tmp_path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(textwrap.dedent(str(content)))
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


@pytest.fixture
def sandbox_account(aws: str, tmp_path: Path, virtual_clock: VirtualClock) -> SandboxAccount:
    """The clean emulator account of this test, seeded for each spec an engine is made for."""
    from .testbed import SandboxAccount

    return SandboxAccount(aws, tmp_path, virtual_clock)


@pytest.fixture
def run_rollout(sandbox_account: SandboxAccount) -> Callable[..., RolloutRun]:
    """``run_rollout(spec_path, image=AMI, plugins=(...))``: apply the spec, return a RolloutRun."""
    return sandbox_account.run


@pytest.fixture(params=["sqlite", "dynamodb"])
def open_state_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """``open_state_store(project="shop")``: a new store object on this test's backend."""
    from .stores import Stores  # the state stores import boto3: only when a test asks

    url = request.getfixturevalue("aws") if request.param == "dynamodb" else None
    stores = Stores(request.param, tmp_path, url)
    try:
        yield stores.open
    finally:
        stores.close()


@pytest.fixture
def health_server() -> Iterator[Callable[..., HealthServer]]:
    """``health_server(decide=None, status=200)``: a started ``HealthServer``."""
    servers: list[HealthServer] = []

    def start(decide: Callable[[str], int] | None = None, status: int = 200) -> HealthServer:
        servers.append(HealthServer(decide, status).__enter__())
        return servers[-1]

    yield start
    for server in servers:
        server.__exit__()


def __getattr__(name: str) -> Any:
    # The testbed imports the engine (and boto3): only when a test asks for it.
    if name in ("SandboxAccount", "RolloutRun"):
        from . import testbed

        return getattr(testbed, name)
    raise AttributeError(f"module 'immutable_sdk.testing' has no attribute {name!r}")
