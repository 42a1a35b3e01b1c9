"""The embedded sandbox: moto's server on 127.0.0.1, seeded with what a spec references.

``seed`` creates the network, load balancers, target groups, hosted zones and alarms that a spec
names (see ``aws.seed``), so that the very same spec runs against the sandbox and against an AWS
account. ``sandbox_env`` gives a subprocess (packer) the environment that points it there.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..aws.loopback import is_loopback_url, sandbox_env
from ..aws.seed import Seeder, needs_by_region
from ..aws.session import AwsSession, aws_errors
from ..errors import UsageError
from ..spec.model import Spec
from .emulator import Emulator

if TYPE_CHECKING:
    from ..plugins import Plugins

__all__ = ["Sandbox", "sandbox_env"]


class Sandbox:
    """An emulator this process runs (``start``), or one served on loopback (``attach``)."""

    def __init__(self) -> None:
        self._emulator: Emulator | None = None
        self._url: str | None = None

    def start(self) -> Sandbox:
        self._emulator = Emulator().start()
        self._url = self._emulator.url
        return self

    def reset(self) -> None:
        """Forget every resource of this process's emulator. moto keeps its accounts per
        process, shared by every emulator the process starts: a rehearsal starts clean."""
        if self._emulator is None:
            raise UsageError("only a sandbox this process started can be reset")
        self._emulator.reset()

    @classmethod
    def attach(cls, url: str) -> Sandbox:
        """A sandbox served elsewhere (``immutable-sdk sandbox serve``); ``stop`` leaves it."""
        if not is_loopback_url(url):
            raise UsageError(f"a sandbox URL must be on 127.0.0.1, got {url!r}")
        box = cls()
        box._url = url.rstrip("/")
        return box

    @property
    def url(self) -> str:
        if self._url is None:
            raise UsageError("the sandbox is not started")
        return self._url

    def session(self, region: str = "us-east-1") -> AwsSession:
        """An AwsSession pointed at the sandbox with its dummy credentials."""
        return AwsSession(region, endpoint_url=self.url, sandboxed=True)

    def env(self, region: str = "us-east-1") -> dict[str, str]:
        return sandbox_env(self.url, region)

    def seed(
        self, spec: Spec | Mapping[str, Any], plugins: Plugins | None = None
    ) -> dict[str, Any]:
        """Create what ``spec`` references and is missing; returns what exists and what changed.

        What plugin blocks name comes from their plugins' ``references`` (``plugin.References``):
        ``plugins`` are the loaded ones (default: ``load_plugins()``).

        A spec whose fleets deploy to several regions is seeded in each (its own network,
        load balancers and alarms there); the summary is then the spec's region's, with
        ``regions`` holding each region's and ``created`` / ``substituted`` naming the region.
        """
        if plugins is None:
            from ..plugins import load_plugins

            plugins = load_plugins()
        summaries = []
        with aws_errors("seeding the sandbox"):
            for wanted in needs_by_region(spec, plugins):
                summaries.append(Seeder(self.session(wanted.region), wanted).run())
        if len(summaries) == 1:
            return summaries[0]
        merged = dict(summaries[0])
        merged["regions"] = {s["region"]: s for s in summaries}
        for key in ("created", "substituted"):
            merged[key] = [f"{s['region']}: {line}" for s in summaries for line in s[key]]
        return merged

    def stop(self) -> None:
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
            self._url = None

    def __enter__(self) -> Sandbox:
        return self if self._url is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
