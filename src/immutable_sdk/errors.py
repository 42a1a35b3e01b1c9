"""One exception hierarchy and the CLI's documented exit codes.

Every error a user can cause or meet derives from ImmutableSdkError; the CLI catches that base
class only, prints ``error: ...`` and exits with the class's exit code. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``immutable-sdk`` command (documented in docs/errors.md).

    One meaning per code. ``plan --detailed-exitcode`` keeps Terraform's contract instead:
    0 no changes, 1 any error (usage errors included), 2 changes (``DETAILED_CHANGES``).
    """

    OK = 0
    FAILED = 1  # the operation ran and failed (rollout rolled back, build failed, AWS refused)
    INVALID = 2  # invalid input or usage: spec errors, unknown plugins, missing files
    LOCKED = 3  # the fleet is locked by another rollout, or a conflict with state
    DRIFT = 4  # ``drift``: what runs differs from the fleets' releases (or still does after --fix)
    PROGRESSING = 10  # ``reconcile``: a rollout waits on time (a bake, a pause...): tick again
    WAITING = 11  # ``reconcile``: a rollout waits for an operator (promote, or --yes to start)
    INTERRUPTED = 130  # SIGINT / SIGTERM


DETAILED_CHANGES = 2  # ``plan --detailed-exitcode``: the plan has changes (Terraform's meaning)


class ImmutableSdkError(Exception):
    """Base class of every error immutable-sdk raises on purpose.

    Its text is redacted (``redaction``): a message quoting a command's output, a URL or a
    spec value never shows a secret, wherever it is printed, logged or stored.
    """

    exit_code: ExitCode = ExitCode.FAILED

    def __str__(self) -> str:
        from .redaction import redact_text

        return redact_text(super().__str__())


@dataclass(frozen=True, order=True)
class Location:
    """Where in which file a spec node stands (1-based line and column)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


@dataclass(frozen=True, order=True)
class SpecProblem:
    """One located problem in a spec: ``FILE:LINE:COL: dotted.path: message``."""

    location: Location
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.location}: {where}{self.message}"


class SpecError(ImmutableSdkError, ValueError):
    """The spec could not be loaded or is invalid; carries every problem found, sorted."""

    exit_code = ExitCode.INVALID

    def __init__(self, problems: Sequence[SpecProblem] | str) -> None:
        if isinstance(problems, str):
            problems = [SpecProblem(Location("<spec>"), "", problems)]
        self.problems: tuple[SpecProblem, ...] = tuple(sorted(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(ImmutableSdkError):
    """The command was called in a way that cannot work (missing TTY for a prompt, bad flags)."""

    exit_code = ExitCode.INVALID


class StalePlan(UsageError):
    """``apply PLANFILE``: a fleet's spec or what AWS runs changed since the plan was saved."""


class PluginError(ImmutableSdkError):
    """A plugin failed to load, registered a duplicate, or raised while running."""

    exit_code = ExitCode.INVALID

    def __init__(self, plugin: str, message: str, *, distribution: str | None = None) -> None:
        self.plugin = plugin
        self.distribution = distribution
        origin = f"plugin {plugin!r}" + (f" (from {distribution})" if distribution else "")
        super().__init__(f"{origin}: {message}")


class AwsError(ImmutableSdkError):
    """AWS refused a call (after retries), or credentials are missing or expired."""

    def __init__(self, message: str, *, code: str | None = None, operation: str | None = None):
        self.code = code
        self.operation = operation
        super().__init__(message)


class BuildError(ImmutableSdkError):
    """A builder could not produce an image; ``output`` holds the builder's last lines."""

    def __init__(self, image: str, message: str, *, output: Sequence[str] = ()) -> None:
        from .redaction import redact_text

        self.image = image
        self.output = tuple(redact_text(line) for line in output)  # the tool's own words
        super().__init__(f"image {image!r}: {message}")


class LockHeld(ImmutableSdkError):
    """Another owner holds the fleet's lock and its lease has not expired."""

    exit_code = ExitCode.LOCKED

    def __init__(self, fleet: str, owner: str, since: float, lease_until: float) -> None:
        import datetime as _dt

        self.fleet = fleet
        self.owner = owner
        self.since = since
        self.lease_until = lease_until

        def fmt(t: float) -> str:
            return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).isoformat(timespec="seconds")

        super().__init__(
            f"fleet {fleet!r} is locked by {owner} since {fmt(since)}; "
            f"the lease expires at {fmt(lease_until)}"
        )


class LockLost(ImmutableSdkError):
    """This process's lease expired and another owner took the lock: stop touching AWS."""

    exit_code = ExitCode.LOCKED


class StateError(ImmutableSdkError):
    """The state store is unreadable, from a newer version, or disagrees with its schema."""


class GateFailed(ImmutableSdkError):
    """A health gate ended unhealthy or timed out. ``checks``: the names of the checks that
    judged it (unhealthy, or still pending at the timeout), or what else failed (``launch``)."""

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, str] | None = None,
        checks: tuple[str, ...] = (),
    ) -> None:
        from .redaction import redact

        self.details: dict[str, str] = redact(dict(details or {}))  # printed, stored, sent
        self.checks = tuple(checks)
        super().__init__(message)


class RolloutFailed(ImmutableSdkError):
    """A rollout did not reach its goal; it was rolled back or left for resumption."""


class Aborted(RolloutFailed):
    """An operator ran ``immutable-sdk abort``: the rollout rolls back now."""


class Interrupted(ImmutableSdkError):
    """SIGINT or SIGTERM stopped the command at a safe point; the rollout can be resumed."""

    exit_code = ExitCode.INTERRUPTED
