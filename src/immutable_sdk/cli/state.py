"""``immutable-sdk state init`` and ``immutable-sdk unlock``: the state store, for people."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from ..errors import UsageError
from ..state.records import iso
from . import Options, output_option, pass_options, spec_files_option
from .common import emit_json, open_connection, output_format

if TYPE_CHECKING:
    from ..spec.model import Spec
    from ..state.base import LockInfo


def register(group: click.Group) -> None:
    group.add_command(state)
    group.add_command(unlock)


def _load(files: Sequence[str]) -> Spec:
    from ..spec.load import load_spec

    return load_spec(files)


def _emit(opts: Options, output: str | None, data: dict[str, Any], text: str) -> None:
    if output_format(opts, output) == "json":
        emit_json(data)
    else:
        click.echo(text)


def _confirm_live_lease(lock: LockInfo | None, yes: bool) -> None:
    """Ask before removing a lock whose lease is still valid (its rollout may be running)."""
    from ..clock import RealClock

    if lock is None or lock.lease_until < RealClock().now() or yes:
        return
    live = (
        f"fleet {lock.fleet!r} is locked by {lock.owner} since {iso(lock.acquired_at)} and its "
        f"lease is valid until {iso(lock.lease_until)}: its rollout may still be running"
    )
    if not sys.stdin.isatty():
        raise UsageError(
            f"{live}; unlock needs confirmation and there is no terminal to ask on: "
            "pass --yes to remove it anyway (the holder stops at its next write, exit code 3)"
        )
    click.echo(live, err=True)
    if not click.confirm(
        "Remove it? The holder stops at its next write or AWS change", default=False, err=True
    ):
        raise UsageError(f"unlock cancelled; fleet {lock.fleet!r} is still locked")


@click.group("state")
def state() -> None:
    """The state store: fleet locks, rollouts, their journal and the release history."""


@state.command("init")
@spec_files_option
@output_option
@pass_options
def init(opts: Options, files: tuple[str, ...], output: str | None) -> None:
    """Create the spec's state store if it does not exist (safe to run again).

    For ``state: {backend: dynamodb, table: NAME}`` this creates the DynamoDB table (on-demand
    billing) and waits until it is active; for the local backend, the SQLite file (mode 0600).
    """
    from ..state.base import SCHEMA_VERSION

    spec = _load(files)
    with open_connection(opts, spec) as connection:
        state = connection.state_spec(spec)  # on the sandbox: its table, or its state file
        created = connection.create_state(spec)
        if state.backend == "dynamodb":
            region = state.region or connection.session.region
            where = f"DynamoDB table {state.table!r} in {region}"
            if connection.sandbox is not None:
                where += f" on the sandbox at {connection.sandbox.url}"
            location = str(state.table)
        else:
            where = f"state database {state.path}"
            if connection.scratch_state:
                where += " (this command's own sandbox's: gone when it ends)"
            location = str(state.path)
    if created:
        how = "on-demand billing" if spec.state.backend == "dynamodb" else "mode 0600"
        text = f"created {where} (schema version {SCHEMA_VERSION}, {how})"
    else:
        text = f"{where} already exists (schema version {SCHEMA_VERSION}); nothing to do"
    data = {
        "backend": spec.state.backend,
        "location": location,
        "created": created,
        "schema_version": SCHEMA_VERSION,
    }
    _emit(opts, output, data, text)


@click.command("unlock")
@click.option(
    "--fleet",
    required=True,
    help="The fleet whose lock to remove (fleet@region outside the spec's region).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Required: confirms that no rollout of the fleet is still running.",
)
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Remove a lock whose lease is still valid without asking.",
)
@spec_files_option
@output_option
@pass_options
def unlock(
    opts: Options,
    fleet: str,
    force: bool,
    yes: bool,
    files: tuple[str, ...],
    output: str | None,
) -> None:
    """Remove a fleet's lock, whoever holds it (after a crashed rollout).

    The lock keeps two rollouts of one fleet apart; a crashed rollout's lock also frees itself
    once its lease expires. Remove it by hand only when you know its rollout is not running.
    A lock whose lease is still valid may belong to a running rollout: unlock says whose it
    is and asks first (``--yes`` skips the question). The removed holder is fenced off: its
    next state write or AWS change is refused and it stops with exit code 3.
    """

    if not force:
        raise UsageError(
            f"unlock removes the lock of fleet {fleet!r} even while a rollout still holds it; "
            "make sure no rollout of the fleet is running, then run again with --force"
        )
    spec = _load(files)
    removed = None
    with open_connection(opts, spec) as connection:
        state = connection.state_spec(spec)  # on the sandbox: the served state, never the spec's
        if state.backend != "local" or state.path.exists():  # else: no state, no lock
            store = connection.open_state(spec)
            try:
                _confirm_live_lease(store.get_lock(fleet), yes)
                removed = store.force_unlock(fleet)
            finally:
                store.close()
    if removed is None:
        keys = [key for key, _, _ in spec.units()]  # web, web@eu-west-1 (other regions)
        if fleet not in keys:  # a typo, most likely (a removed fleet may still be locked)
            known = ", ".join(sorted(keys)) or "none"
            raise UsageError(
                f"the spec has no fleet {fleet!r} (fleets: {known}) and no lock of that name "
                "was found; nothing removed"
            )
        text = f"fleet {fleet!r} was not locked; nothing removed"
        data: dict[str, Any] = {"fleet": fleet, "removed": None}
    else:
        text = (
            f"removed the lock of fleet {fleet!r} held by {removed.owner} since "
            f"{iso(removed.acquired_at)} (lease until {iso(removed.lease_until)}, "
            f"epoch {removed.epoch}); that holder's next write or AWS change is refused"
        )
        data = {
            "fleet": fleet,
            "removed": {
                "owner": removed.owner,
                "acquired_at": removed.acquired_at,
                "lease_until": removed.lease_until,
                "epoch": removed.epoch,
            },
        }
    _emit(opts, output, data, text)
