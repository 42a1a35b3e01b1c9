"""A testbed for rollout tests: the emulator account, engines on a virtual clock, captured events.

What ``immutable_sdk.testing``'s ``sandbox_account`` and ``run_rollout`` fixtures hand a test
(outside pytest: ``SandboxAccount(emulator.url, Path("."))`` with an ``Emulator`` running)::

    def test_my_strategy(run_rollout, spec_writer):
        spec = spec_writer(sample_spec(strategy="{type: mine}"))
        first = run_rollout(spec, image=AMI_V1)   # creates the fleet
        second = run_rollout(spec, image=AMI_V2)  # rolls it to a new release
        assert second.result.ok, second.result.to_dict()
        assert [s["kind"] for s in second.steps] == [...]

Every engine of a testbed shares its virtual clock and its SQLite state file, so a second
rollout sees the releases and history of the first, as it would on a real account.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..aws.loopback import SANDBOX_CREDENTIALS
from ..aws.session import AwsSession
from ..clock import VirtualClock
from ..core.engine import Engine
from ..lifecycle import Event
from ..plugins import load_plugins
from ..results import ApplyResult, FleetResult
from ..sandbox import Sandbox
from ..spec.load import load_spec
from ..state.sqlite import SqliteStateStore

REGION = "us-east-1"


@dataclass
class RolloutRun:
    """One ``apply``: its result and every event the engine emitted, in order."""

    result: ApplyResult
    events: list[Event]

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The steps that started, in order, as journaled (``{"kind": "launch", ...}``)."""
        return [dict(e.data["step"]) for e in self.of_kind("step.started")]

    def fleet(self, name: str = "web") -> FleetResult:
        return self.result.fleet(name)


@dataclass
class SandboxAccount:
    """The emulator at ``url`` as one AWS account, and engines for specs on it."""

    url: str
    tmp_path: Path
    clock: VirtualClock = field(default_factory=VirtualClock)
    plugins: list[Any] = field(default_factory=list)  # extra plugin objects for every engine
    events: list[Event] = field(default_factory=list)  # everything every engine emitted

    @property
    def session(self) -> AwsSession:
        return AwsSession(REGION, endpoint_url=self.url, credentials=SANDBOX_CREDENTIALS)

    def client(self, service: str) -> Any:
        """A boto3 client on the emulator, for a test to look at (or change) the account."""
        return self.session.client(service)

    def engine(
        self,
        spec: str | os.PathLike[str],
        *,
        image: str | None = None,
        env: Mapping[str, str] | None = None,
        plugins: Iterable[Any] = (),
        autoload: bool | None = None,
        **kwargs: Any,
    ) -> Engine:
        """An engine for ``spec`` on this account; the account is seeded for it first.

        ``image`` sets ``${IMAGE_ID}`` (see ``sample_spec``); ``env`` other ``${VARS}``;
        ``plugins`` are added to the testbed's; ``autoload`` None follows the test run's
        setting (entry points load only where the ``immutable_sdk_autoload`` ini option is on);
        ``state`` replaces the testbed's SQLite store (a test's wrapper around one, say).
        """
        environ = {**os.environ, **(env or {})}
        if image is not None:
            environ["IMAGE_ID"] = image
        loaded = load_plugins([*self.plugins, *plugins], autoload=autoload)
        loaded_spec = load_spec([spec], plugins=loaded, environ=environ)
        Sandbox.attach(self.url).seed(loaded_spec, loaded)
        state = kwargs.pop("state", None) or SqliteStateStore(
            self.tmp_path / "state.db", loaded_spec.name
        )
        return Engine(
            loaded_spec,
            plugins=loaded,
            session=self.session,
            clock=self.clock,
            state=state,
            sink=self.events.append,
            **kwargs,
        )

    def run(
        self,
        spec: str | os.PathLike[str],
        *,
        image: str | None = None,
        env: Mapping[str, str] | None = None,
        plugins: Iterable[Any] = (),
        prune: bool = False,
        **kwargs: Any,
    ) -> RolloutRun:
        """Plan and apply ``spec``; the result and this apply's events (``image`` as above)."""
        start = len(self.events)
        with self.engine(spec, image=image, env=env, plugins=plugins, **kwargs) as engine:
            result = engine.apply(prune=prune)
        return RolloutRun(result, self.events[start:])

    def group(self, name: str) -> dict[str, Any]:
        """The Auto Scaling group ``name`` as the emulator describes it ({} when absent)."""
        groups = self.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[name]
        )["AutoScalingGroups"]
        return dict(groups[0]) if groups else {}

    def running(self, ami: str) -> list[str]:
        """Ids of the pending or running instances of ``ami``."""
        out = self.client("ec2").describe_instances(
            Filters=[
                {"Name": "image-id", "Values": [ami]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
        return [i["InstanceId"] for r in out["Reservations"] for i in r["Instances"]]
