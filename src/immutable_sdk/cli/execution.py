"""``apply --on step-functions`` and ``status --on step-functions``: a rollout as an execution
of the state machine that ``orchestrator install`` created, which workers tick."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import UsageError
from . import Options
from .common import emit_json, output_format
from .orchestrator import load_orchestrated, orchestrator_connection

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
