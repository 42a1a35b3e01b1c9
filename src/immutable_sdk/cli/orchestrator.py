"""Rollouts on AWS Step Functions: ``orchestrator install`` and ``worker``.

``apply --on step-functions`` (in ``rollout``) starts an execution of the state machine that
``orchestrator install`` created; workers (``worker``, or the Lambda handler) run its ticks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ..errors import ExitCode, UsageError
from . import Duration, Options, lease_option, pass_options, spec_files_option
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


@click.command()
@spec_files_option
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Ticks run at once by this worker.",
)
@click.option(
    "--idle-exit",
    type=Duration(minimum=1.0),
    default=None,
    help="Exit after this long without a message (a CI runner's worker, say). "
    "Default: run until SIGTERM.",
)
@click.option(
    "--tick",
    "tick",
    default=None,
    metavar="MODULE:FACTORY",
    help="A custom tick: a callable taking a TickContext and returning a Ticker "
    "(default: the SDK's reconcile tick).",
)
@lease_option(
    "Lease of the fleet locks a tick holds: a fleet whose worker died mid-tick is "
    "taken over by another worker's tick once it has run out.",
)
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Choice(["text", "json"]),
    default=None,
    help="How the summary is printed at exit.",
)
@pass_options
def worker(
    opts: Options,
    files: tuple[str, ...],
    concurrency: int,
    idle_exit: float | None,
    tick: str | None,
    lease: float,
    output: str | None,
) -> None:
    """Run the project's ticks: long-poll the work queue, tick, answer Step Functions.

    Each message is one tick of one unit; the worker heartbeats while it ticks, so a worker
    that dies is replaced by another within the heartbeat timeout. SIGTERM or SIGINT: finish
    the ticks in hand, then exit (a second signal exits at once; its ticks are retried).
    """
    import signal

    from ..aws.session import aws_errors
    from ..aws.workqueue import WorkQueue
    from ..core.orchestrator.ticks import TickContext, load_factory, reconcile_tick
    from ..core.orchestrator.worker import Worker

    spec, orch = load_orchestrated(files)
    factory = load_factory(tick) if tick else reconcile_tick
    with orchestrator_connection(opts, spec) as connection:
        with aws_errors("worker"):
            url = WorkQueue.find(connection.session, orch.queue)
        if url is None:
            raise UsageError(
                f"no work queue {orch.queue} in {spec.region}: run "
                "`immutable-sdk orchestrator install -f SPEC` first"
            )
        ticker = factory(TickContext(spec, files, connection_options(opts), lease=lease))
        work = Worker(
            WorkQueue(connection.session, url),
            ticker,
            concurrency=concurrency,
            idle_exit=idle_exit,
            on_event=_event_printer(opts),
        )

        def on_signal(signum: int, _frame: Any) -> None:
            if work.stopping:
                sys.stderr.flush()
                import os

                os._exit(int(ExitCode.INTERRUPTED))  # its ticks time out and are retried
            work.stop(signal.Signals(signum).name)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            with aws_errors("worker"):
                summary = work.run()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    if output_format(opts, output) == "json":
        emit_json({"worker": summary.to_dict()})
    else:
        ticks = summary.outcomes
        click.echo(
            "worker done: "
            + (", ".join(f"{n} {k}" for k, n in sorted(ticks.items())) if ticks else "no ticks")
        )


def _event_printer(opts: Options) -> Any:
    """Worker events on stderr, one line each (JSON with --log-format json)."""
    import json

    def emit(kind: str, data: dict[str, Any]) -> None:
        if opts.log_format == "json":
            click.echo(json.dumps({"event": kind, **data}, default=str), err=True)
        else:
            fields = " ".join(f"{k}={v}" for k, v in data.items() if v is not None)
            click.echo(f"{kind} {fields}", err=True)

    return emit


def register(group: click.Group) -> None:
    group.add_command(orchestrator)
    group.add_command(worker)


ON_CHOICES = ("local", "step-functions")


def on_option(f: Any) -> Any:
    """``--on local|step-functions`` of ``apply`` and ``status``."""
    return click.option(
        "--on",
        "on",
        type=click.Choice(ON_CHOICES),
        default="local",
        show_default=True,
        help="local: this process runs the rollout (status: what AWS and the state show); "
        "step-functions: start (show) the project's Step Functions execution "
        "(orchestrator install first).",
    )(f)


def apply_on_step_functions(
    opts: Options,
    files: tuple[str, ...],
    fleets: tuple[str, ...],
    *,
    yes: bool,
    output: str | None,
    parallelism: int,
    planned: Callable[[Any, tuple[str, ...]], tuple[Any, Any]],
) -> None:
    """Plan (``planned``: ``apply``'s, ``--fleet`` included), then start one execution for the
    plan (named from its digest) and return."""
    from ..aws.session import aws_errors
    from ..aws.stepfunctions import Orchestration
    from ..core.orchestrator.execution import execution_input
    from .common import open_engine, show
    from .render import plan_table

    spec, orch = load_orchestrated(files)
    as_json = output_format(opts, output) == "json"
    with orchestrator_connection(opts, spec) as connection:
        aws = Orchestration(connection.session)
        with aws_errors("finding the state machine"):
            machine = aws.find_state_machine(orch.state_machine)
        if machine is None:
            raise UsageError(
                f"no state machine {orch.state_machine} in {spec.region}: run "
                "`immutable-sdk orchestrator install -f SPEC` first"
            )
        with open_engine(opts, files) as (engine, _printer):
            the_plan, _selection = planned(engine, fleets)
        if not as_json:
            show(plan_table(the_plan))
        run = execution_input(spec, the_plan, parallelism=parallelism)
        for wave in the_plan.waves:
            if not wave.get("stop_on_failure", True) and run.units:
                click.echo(
                    f"warning: wave {wave['name']}: stop_on_failure: false is not honoured on "
                    "Step Functions: a failed unit ends the execution after its stage",
                    err=True,
                )
        if not run.units:
            if as_json:
                emit_json({"execution_arn": None, "started": False, "units": []})
            else:
                click.echo("nothing to roll out: no execution started")
            return
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(
                    "apply needs confirmation and there is no terminal to ask on; pass --yes"
                )
            if not click.confirm("Start this rollout on Step Functions?", default=False):
                raise UsageError("apply cancelled")
        with aws_errors("starting the execution"):
            arn, started = aws.start_execution(machine, run.name, run.to_json())
    if as_json:
        emit_json({"execution_arn": arn, "started": started, "units": run.units})
    else:
        verb = "started" if started else "already started (the same plan)"
        click.echo(f"execution {verb}: {arn}")
        click.echo(f"units: {', '.join(run.units)}; watch it with `status --on step-functions`")


def status_on_step_functions(
    opts: Options, files: tuple[str, ...], output: str | None, execution: str | None
) -> None:
    """The project's execution (the newest, or ``execution``) and each unit's state."""
    from ..aws.session import aws_errors
    from ..aws.stepfunctions import Orchestration
    from ..core.orchestrator.watch import execution_summary

    spec, orch = load_orchestrated(files)
    with orchestrator_connection(opts, spec) as connection, aws_errors("status"):
        aws = Orchestration(connection.session)
        arn = execution
        if arn is None:
            machine = aws.find_state_machine(orch.state_machine)
            if machine is None:
                raise UsageError(
                    f"no state machine {orch.state_machine} in {spec.region}: run "
                    "`immutable-sdk orchestrator install -f SPEC` first"
                )
            newest = next(iter(aws.executions(machine)), None)
            arn = newest["executionArn"] if newest else None
        described = aws.describe_execution(arn) if arn else None
        if arn and described is None:
            raise UsageError(f"--execution {arn}: no such execution")
        summary = execution_summary(described, aws.history(arn or "")) if described else None
    if output_format(opts, output) == "json":
        emit_json({"execution": summary})
        return
    if summary is None:
        click.echo(f"no execution of {orch.state_machine} yet")
        return
    click.echo(f"execution {summary['execution_arn']}: {summary['status']}")
    if summary["error"]:
        click.echo(f"  {summary['error']}: {summary['cause']}")
    for key, unit in summary["units"].items():
        extra = f" until {unit['next_at']}" if unit["next_at"] else ""
        why = f" ({unit['reason']})" if unit["reason"] else ""
        click.echo(f"  {key}: {unit['state']}{extra}{why}")


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
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Print what was done as text (default) or JSON.",
)
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
