"""Where one command's AWS calls and state go: AWS, an endpoint, or the sandbox.

Every command that touches AWS or the state store opens them here, through ``Connection.open``
(the engine does too), so that ``--sandbox`` means the same for all of them:

* the AWS session is sandboxed (``AwsSession(sandboxed=True)``): its endpoint is the emulator on
  loopback, its credentials the emulator's dummy ones, nothing read from the user's profile,
  config files, ``AWS_ENDPOINT_URL`` or proxy settings;
* the emulator is this process's own (``Sandbox().start()``, gone when the command ends) or the
  one ``sandbox serve`` runs (``IMMUTABLE_SDK_SANDBOX_URL``), shared by every command;
* the spec's state backend is kept: ``dynamodb`` is its table on the emulator (created there on
  first use), ``local`` the served sandbox's state file (``IMMUTABLE_SDK_SANDBOX_STATE``) or a
  scratch file that lives as long as this process's own emulator. A sandbox never writes the
  spec's real state file.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from ..aws.session import AwsSession
from ..errors import StateError, UsageError

if TYPE_CHECKING:
    from ..plugins import Plugins
    from ..sandbox import Sandbox
    from ..spec.model import Spec, StateSpec
    from ..state.base import StateStore

SANDBOX_URL_VAR = "IMMUTABLE_SDK_SANDBOX_URL"  # set by `sandbox serve`'s env file
SANDBOX_STATE_VAR = "IMMUTABLE_SDK_SANDBOX_STATE"


@dataclass
class Connection:
    """An AWS session and the way to the spec's state store; ``close`` stops an own sandbox."""

    session: AwsSession
    sandbox: Sandbox | None = None
    _scratch: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def open(
        cls,
        spec: Spec,
        *,
        sandbox: bool = False,
        endpoint_url: str | None = None,
        profile: str | None = None,
        max_attempts: int = 8,
        seed: bool = True,
        plugins: Plugins | None = None,
    ) -> Connection:
        """Connect for ``spec``; under ``sandbox`` start (or attach to) the emulator and, with
        ``seed``, create there what the spec references."""
        if not sandbox:
            session = AwsSession(
                spec.region, endpoint_url=endpoint_url, profile=profile, max_attempts=max_attempts
            )
            return cls(session)
        if endpoint_url:
            raise UsageError(
                f"--sandbox sends every AWS call to the embedded emulator, but an endpoint is "
                f"also set ({endpoint_url}, from --endpoint-url or AWS_ENDPOINT_URL); "
                "drop one of them"
            )
        if profile:
            raise UsageError(
                f"--sandbox uses the emulator's dummy credentials, never a profile; "
                f"drop --profile {profile} or --sandbox"
            )
        from ..sandbox import Sandbox

        url = os.environ.get(SANDBOX_URL_VAR)
        box = Sandbox.attach(url) if url else Sandbox().start()
        try:
            session = AwsSession(
                spec.region, endpoint_url=box.url, max_attempts=max_attempts, sandboxed=True
            )
            if seed:
                box.seed(spec, plugins)
        except BaseException:
            box.stop()
            raise
        scratch = None
        if not (url and os.environ.get(SANDBOX_STATE_VAR)):
            scratch = tempfile.TemporaryDirectory(prefix="immutable-sdk-state-")
        return cls(session, box, scratch)

    def state_spec(self, spec: Spec) -> StateSpec:
        """The spec's ``state`` block as this connection uses it (see the module's doc)."""
        if self.sandbox is None or spec.state.backend != "local":
            return spec.state
        if self._scratch is not None:
            path = Path(self._scratch.name) / "state.db"
        else:
            path = Path(os.environ[SANDBOX_STATE_VAR])
        return replace(spec.state, path=path)

    def create_state(self, spec: Spec) -> bool:
        """Create the spec's state store unless it exists; True when this created it."""
        from ..state import open_state

        state = self.state_spec(spec)
        if state.backend == "dynamodb":
            from ..state.dynamodb_table import create_table

            client = self.session.client("dynamodb", state.region or self.session.region)
            created = create_table(client, _table(state))
        else:
            created = not state.path.exists()
        # opening checks the key schema and stamps the schema version (a new SQLite file: 0600)
        open_state(state, spec.name, session=self.session).close()
        return created

    @property
    def scratch_state(self) -> bool:
        """True when local state lives in a scratch file that goes with this connection."""
        return self._scratch is not None

    def open_state(self, spec: Spec) -> StateStore:
        """The spec's state store. On the sandbox a DynamoDB state table is created first, as
        seeding creates everything else the spec references."""
        from ..state import open_state

        state = self.state_spec(spec)
        if state.backend == "dynamodb" and self.sandbox is not None:
            self.create_state(spec)
        session = self.session if state.backend == "dynamodb" else None
        return open_state(state, spec.name, session=session)

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.stop()  # an attached (served) sandbox keeps running
            self.sandbox = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _table(state: StateSpec) -> str:
    if not state.table:
        raise StateError("state.table: the dynamodb state backend needs a table name")
    return state.table
