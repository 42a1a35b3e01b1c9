"""Rollouts on AWS Step Functions: the ``orchestrator`` commands (``install``, ``abort``) and
what the other Step Functions commands share (the spec's orchestrator, its AWS connection).

``apply --on step-functions`` and ``status --on step-functions`` (``execution``) start and
show an execution of the state machine that ``orchestrator install`` created; workers
(``worker``, or the Lambda handler) run its ticks.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ..errors import ExitCode, UsageError
from . import Duration, Options, output_choice, pass_options, spec_files_option
from .common import connection_options, emit_json, output_format

if TYPE_CHECKING:
    from ..core.connection import Connection
    from ..core.orchestrator.resources import Orchestrator
    from ..spec.model import Spec


@click.group()
def orchestrator() -> None:
    """The Step Functions orchestrator: rollouts that no machine babysits."""


def _settings(heartbeat: float, tick_timeout: float) -> Any:
    from ..core.orchestrator.definition import TickSettings

    if tick_timeout < heartbeat:
        raise UsageError(
            f"--tick-timeout ({tick_timeout:g}s) must be at least --heartbeat ({heartbeat:g}s)"
        )
    return TickSettings(heartbeat_seconds=int(heartbeat), timeout_seconds=int(tick_timeout))


def load_orchestrated(files: tuple[str, ...], settings: Any = None) -> tuple[Spec, Orchestrator]:
    """The spec and its orchestrator (refused unless its state is in DynamoDB: exit 2)."""
    from ..core.orchestrator.resources import Orchestrator
    from ..spec.load import load_spec

    spec = load_spec(files)
    return spec, Orchestrator.for_spec(spec, settings)


@contextmanager
def orchestrator_connection(opts: Options, spec: Spec) -> Iterator[Connection]:
    """AWS for the orchestrator's commands. On the sandbox, the served one (``sandbox serve``):
    a state machine lives longer than one command, and workers are other processes."""
    import os

    from ..core.connection import SANDBOX_URL_VAR, Connection

    if opts.sandbox and not os.environ.get(SANDBOX_URL_VAR):
        raise UsageError(
            "the orchestrator on --sandbox needs a sandbox that outlives this command: run "
            "`immutable-sdk sandbox serve -f SPEC --env-file FILE` and source FILE first"
        )
    connection = Connection.open(spec, **connection_options(opts), seed=False)
    try:
        yield connection
    finally:
        connection.close()


@orchestrator.command()
@spec_files_option
@click.option("--yes", "-y", is_flag=True, help="Create or update without asking.")
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Choice(["text", "json", "cloudformation", "cloudformation-yaml"]),
    default=None,
    help="text or json: install and say what changed; cloudformation (JSON) or "
    "cloudformation-yaml: print an equivalent template instead, calling no AWS.",
)
@click.option(
    "--role-arn",
    default=None,
    help="Role for the state machine (default: create immutable-sdk-PROJECT-orchestrator, "
    "allowed only to send to the work queue).",
)
@click.option(
    "--heartbeat",
    type=Duration(minimum=1.0),
    default="60s",
    show_default=True,
    help="A tick whose worker has not heartbeated for this long is given to another worker.",
)
@click.option(
    "--tick-timeout",
    type=Duration(minimum=1.0),
    default="1h",
    show_default=True,
    help="Longest tick (a Packer build may be part of one).",
)
@pass_options
def install(
    opts: Options,
    files: tuple[str, ...],
    yes: bool,
    output: str | None,
    role_arn: str | None,
    heartbeat: float,
    tick_timeout: float,
) -> None:
    """Create (or update) the project's state machine, work queue and dead-letter queue.

    Idempotent: run it again after an upgrade, nothing changes when nothing differs. The spec's
    state must be in DynamoDB (workers on many machines share the journal and the locks); a
    local state backend is refused (exit 2). The state table is created when missing.
    """
    spec, orch = load_orchestrated(files, _settings(heartbeat, tick_timeout))
    fmt = output_format(opts, output)
    if fmt.startswith("cloudformation"):
        from ..core.orchestrator.cloudformation import render

        click.echo(render(orch, "yaml" if fmt == "cloudformation-yaml" else "json"), nl=False)
        return
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("orchestrator install changes AWS; pass --yes (no terminal to ask)")
        if not click.confirm(
            f"Create or update the orchestrator of {spec.name} in {spec.region}?", default=False
        ):
            raise UsageError("install cancelled")
    from ..aws.session import aws_errors
    from ..aws.stepfunctions import Orchestration
    from ..core.orchestrator.install import install as run_install

    with orchestrator_connection(opts, spec) as connection, aws_errors("orchestrator install"):
        made = connection.create_state(spec)
        created = [f"state table {orch.state_table}"] if made else []
        done = run_install(orch, Orchestration(connection.session), role_arn=role_arn)
        done.changed[:0] = created
    if fmt == "json":
        emit_json({"orchestrator": done.to_dict()})
        return
    click.echo(f"state machine  {done.state_machine_arn}")
    click.echo(f"work queue     {done.queue_url}")
    click.echo(f"dead letters   {done.dead_letter_queue_url}")
    click.echo(f"state table    {done.state_table}")
    click.echo("changed: " + (", ".join(done.changed) if done.changed else "nothing"))


@orchestrator.command("abort")
@spec_files_option
@click.option(
    "--execution",
    default=None,
    metavar="ARN",
    help="The execution to abort (default: the project's newest running one).",
)
@click.option(
    "--wait",
    "wait",
    type=Duration(minimum=0.0),
    default="15m",
    show_default=True,
    help="How long to wait for a tick that holds a unit (it rolls back at its next wait) "
    "before leaving that unit to `immutable-sdk abort --fleet`.",
)
@output_choice("Print what was done as text (default) or JSON.")
@pass_options
def abort_execution(
    opts: Options, files: tuple[str, ...], execution: str | None, wait: float, output: str | None
) -> None:
    """Abort a running rollout on Step Functions: stop its execution, roll its units back.

    The execution is stopped first (status ABORTED: no tick starts after that, an answer in
    flight is refused), then each unit of the execution's plan with a rollout in progress is
    rolled back to the release it started from, here and now, as ``abort --fleet`` would: a
    unit waiting in the execution (a bake, a pause, a rollback's DNS TTL) holds no lock. A unit
    whose tick a worker still runs is sent the abort signal, which that tick honours at its
    next wait; once the tick has let go, whatever it left unfinished is rolled back here too
    (at most ``--wait``). Units that converged before the abort, or never started, are left as
    they are. Exit code 1 when a rollback failed or a unit is still held after ``--wait``, 2
    when there is no running execution.
    """
    from ..aws.session import aws_errors
    from ..aws.stepfunctions import Orchestration
    from ..core.orchestrator.definition import ABORTED
    from .common import open_engine

    spec, orch = load_orchestrated(files)
    with orchestrator_connection(opts, spec) as connection, aws_errors("abort"):
        aws = Orchestration(connection.session)
        arn = execution
        if arn is None:
            machine = aws.find_state_machine(orch.state_machine)
            running = next(iter(aws.executions(machine, "RUNNING")), None) if machine else None
            arn = running["executionArn"] if running else None
        described = aws.describe_execution(arn) if arn else None
        if described is None or described["status"] != "RUNNING":
            raise UsageError(f"no running execution of {orch.state_machine} to abort")
        aws.stop_execution(arn or "", ABORTED, "aborted by an operator (orchestrator abort)")
        status = _settled(aws, arn or "")
        import json

        waves = json.loads(described.get("input") or "{}").get("waves", [])
        units = [str(u["key"]) for w in waves for u in w.get("units", [])]
    outcomes: dict[str, str] = {}
    failed = False
    with open_engine(opts, files) as (engine, printer), printer:
        for key in units:
            outcomes[key], ok = _abort_unit(engine, key, wait)
            failed = failed or not ok
    if output_format(opts, output) == "json":
        emit_json({"execution_arn": arn, "status": status, "units": outcomes})
    else:
        click.echo(f"execution {arn}: {status}")
        for key, what in outcomes.items():
            click.echo(f"  {key}: {what}")
    if failed:
        sys.exit(int(ExitCode.FAILED))


def _abort_unit(engine: Any, key: str, wait: float) -> tuple[str, bool]:
    """Roll unit ``key``'s unfinished rollout back (waiting up to ``wait`` seconds for a tick
    that holds it to let go); what happened, and whether it went well."""
    from ..clock import RealClock

    clock = RealClock()
    deadline = clock.monotonic() + wait
    signalled = False
    while True:
        try:
            result = engine.abort_unfinished(key)
        except UsageError:  # no rollout in progress
            if not signalled:
                return "nothing to roll back (no rollout in progress)", True
            newest = engine.history(key, limit=1).get(key, {}).get("rollouts", [])
            outcome = newest[0].get("outcome") if newest else None
            return f"the tick that held it ended its rollout: {outcome}", outcome != "promoted"
        if result is not None:
            ok = result.ok or result.outcome == "rolled_back"
            return str(result.outcome), ok
        if not signalled:  # a worker's tick holds it: it rolls back at its next wait
            try:
                engine.abort(key)
            except UsageError:
                continue  # it ended meanwhile: look again
            signalled = True
        if clock.monotonic() >= deadline:
            return (
                f"abort sent to the tick that holds it, still running after {wait:g}s: "
                f"run `immutable-sdk abort --fleet {key}` once it has ended"
            ), False
        clock.sleep(1.0)


def _settled(aws: Any, arn: str, within: float = 30.0) -> str:
    """The execution's status once it left RUNNING after a stop (or RUNNING after ``within``
    seconds: the stop is asynchronous, on the emulator more than on AWS)."""
    from ..clock import RealClock

    clock = RealClock()
    deadline = clock.monotonic() + within
    while True:
        described = aws.describe_execution(arn) or {}
        status = str(described.get("status", "RUNNING"))
        if status != "RUNNING" or clock.monotonic() >= deadline:
            return status
        clock.sleep(0.2)


def register(group: click.Group) -> None:
    group.add_command(orchestrator)
