"""Commands that keep fleets honest: drift (and --fix), recycle, iam-policy.

``drift`` exits 0 when every fleet runs exactly its current release with the spec's settings,
4 when drift is found (or is left after ``--fix``), 1 when a fix failed, 2 on invalid input.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from ..errors import ExitCode
from . import Options, output_option, pass_options, spec_files_option
from .common import emit_json, open_engine, output_format
from .common import show as _show

if TYPE_CHECKING:
    from ..core.drift.detect import Drift
    from ..core.drift.remediate import DriftReport, FleetFix


def drift_table(drifts: Sequence[Drift], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in ("fleet", "kind", "subject", "expected", "found", "remedy"):
        table.add_column(column)
    for d in drifts:
        table.add_row(d.fleet, d.kind, d.subject, d.expected, d.found, d.remedy)
    return table


def fixes_table(fixes: Sequence[FleetFix], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column in ("fleet", "outcome", "actions", "error"):
        table.add_column(column)
    for f in fixes:
        error = f.error or (f.rollout.error if f.rollout and f.rollout.error else "")
        table.add_row(f.plan.fleet, f.outcome, "\n".join(f.plan.actions()), error or "")
    return table


def _render_report(report: DriftReport) -> None:
    from rich.text import Text

    for f in report.fleets:
        if f.skipped:
            _show(Text(f"{f.fleet}: not inspected: {f.skipped}", style="yellow"))
    if report.clean:
        _show(Text("no drift: every fleet runs its current release as the spec says", "green"))
        return
    fleets = len({d.fleet for d in report.drifts})
    _show(
        drift_table(report.drifts, f"drift: {len(report.drifts)} finding(s) in {fleets} fleet(s)")
    )
    if report.fixes:
        title = "fixes (dry run)" if report.remaining is None else "fixes"
        _show(fixes_table(report.fixes, title))
    if report.remaining is not None:
        if report.remaining:
            _show(drift_table(report.remaining, "drift left after the fix"))
        else:
            _show(Text("fixed: no drift left", style="green"))


@click.command()
@spec_files_option
@output_option
@click.option(
    "--fleet",
    "fleets",
    multiple=True,
    help="Only this fleet (repeatable; fleet@region: in that region).",
)
@click.option("--fix", is_flag=True, help="Remedy the drift: replace, restore, scale.")
@click.option("--dry-run", is_flag=True, help="With --fix: show what would be done, do nothing.")
@pass_options
def drift(
    opts: Options,
    files: tuple[str, ...],
    output: str | None,
    fleets: tuple[str, ...],
    fix: bool,
    dry_run: bool,
) -> None:
    """Find every difference between what runs and each fleet's current release.

    Instances on another AMI or release, without the release tag, or older than max_lifetime;
    group settings changed outside the SDK; launch template versions written outside; a
    deregistered or deprecated AMI. --fix replaces drifted instances through the fleet's
    strategy (never patching them), restores group settings and scales capacity back.

    Exit codes: 0 no drift, 4 drift found (or left after --fix), 1 a fix failed, 2 invalid
    input (a spec error, an unknown fleet).
    """
    with open_engine(opts, files) as (engine, printer), printer:
        report = engine.drift(fleets or None, fix=fix or dry_run, dry_run=dry_run)
    if output_format(opts, output) == "json":
        emit_json(report.to_dict())
    else:
        _render_report(report)
    if any(not f.ok for f in report.fixes):
        sys.exit(int(ExitCode.FAILED))
    left = report.drifts if report.remaining is None else report.remaining
    if left:
        sys.exit(int(ExitCode.DRIFT))


@click.command()
@spec_files_option
@output_option
@click.option(
    "--fleet",
    "fleets",
    multiple=True,
    help="Only this fleet (repeatable; fleet@region: in that region).",
)
@click.option("--dry-run", is_flag=True, help="Show which instances would be replaced.")
@pass_options
def recycle(
    opts: Options,
    files: tuple[str, ...],
    output: str | None,
    fleets: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Replace instances older than their fleet's max_lifetime, oldest first, through the
    fleet's strategy, so that every instance runs a recent image.

    ``apply --recycle`` does the same after applying the plan.
    """
    with open_engine(opts, files) as (engine, printer), printer:
        fixes = engine.recycle(fleets or None, dry_run=dry_run)
    if output_format(opts, output) == "json":
        emit_json({"dry_run": dry_run, "fleets": [f.to_dict() for f in fixes]})
    elif fixes:
        _show(fixes_table(fixes, "recycle (dry run)" if dry_run else "recycle"))
    else:
        from rich.text import Text

        _show(Text("nothing to recycle: no instance is older than its max_lifetime", "green"))
    if any(not f.ok for f in fixes):
        sys.exit(int(ExitCode.FAILED))


@click.command("iam-policy")
@spec_files_option
@click.option(
    "--account",
    default="*",
    show_default=True,
    help="AWS account id to put in resource ARNs.",
)
@click.option(
    "--images-gc", is_flag=True, help="Also allow `images gc` (deregister AMIs, delete snapshots)."
)
@click.option(
    "--packer-temporary-security-group",
    is_flag=True,
    help="Let Packer open and delete its temporary security group: any group without a "
    "project tag (Packer 1.6.6 cannot tag it). Prefer security_group_id in the template.",
)
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Choice(["text", "json", "terraform", "cloudformation"]),
    default=None,
    help="text (default): each policy and what its statements are for; json; terraform "
    "(aws_iam_policy + attachment); cloudformation (AWS::IAM::ManagedPolicy).",
)
@click.option(
    "--name",
    default=None,
    callback=lambda _ctx, _param, value: _policy_name(value),
    help="Name of the managed policies, numbered -1, -2... (default immutable-sdk-PROJECT).",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Also write each policy document to DIR/NAME.json (for aws iam create-policy).",
)
@click.option(
    "--role",
    type=click.Choice(["apply", "worker", "orchestrator"]),
    default="apply",
    show_default=True,
    help="Whose policy: apply (whoever runs apply); worker (a Step Functions worker: "
    "apply's, its work queue and task answers, starting executions); orchestrator (the "
    "state machine's role: send to the work queue).",
)
@pass_options
def iam_policy(
    opts: Options,
    files: tuple[str, ...],
    account: str,
    images_gc: bool,
    packer_temporary_security_group: bool,
    output: str | None,
    name: str | None,
    out_dir: str | None,
    role: str,
) -> None:
    """Print the least-privilege IAM policies that applying this spec needs.

    ``--role worker`` and ``--role orchestrator``: the policies of a Step Functions worker and
    of the state machine's role (``orchestrator install``; the spec's state in DynamoDB).

    Only the actions the spec's builders, strategies, health checks and state backend call;
    mutating actions conditioned on the SDK's tags where AWS supports it; Route 53 changes
    limited to the spec's zones and records. Split into managed policies of at most 6,144
    characters each (AWS's limit), with how to attach them. Reads no AWS.
    """
    from ..core.iam.pack import pack
    from ..core.iam.policy import policy_document, policy_notes
    from ..spec.load import load_spec
    from .iam_output import PolicyOutput, render

    spec = load_spec(files)
    whole = policy_document(
        spec,
        account=account,
        images_gc=images_gc,
        packer_temporary_security_group=packer_temporary_security_group,
    )
    notes = policy_notes(spec, packer_temporary_security_group=packer_temporary_security_group)
    default_name = f"immutable-sdk-{spec.name}"
    if role != "apply":
        from ..core.iam.orchestrator import orchestrator_policy, worker_statements
        from ..core.orchestrator.resources import Orchestrator

        orch = Orchestrator.for_spec(spec)
        default_name = f"{default_name}-{role}"
        if role == "orchestrator":
            whole, notes = orchestrator_policy(orch, account), []
        else:
            whole = {**whole, "Statement": [*whole["Statement"], *worker_statements(orch, account)]}
    policies = pack(whole, name or default_name)
    if out_dir:
        import json
        from pathlib import Path

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        for policy in policies:
            path = Path(out_dir) / f"{policy.name}.json"
            path.write_text(json.dumps(policy.document, indent=2) + "\n")
    click.echo(render(PolicyOutput(spec.name, account, policies, notes), output or opts.output))
    for note in notes:
        click.echo(f"note: {note}", err=True)


def _policy_name(value: str | None) -> str | None:
    """An IAM policy name: letters, digits and ``+=,.@_-``, with room for ``-NN``."""
    import re

    if value is not None and not re.fullmatch(r"[\w+=,.@-]{1,124}", value, flags=re.ASCII):
        raise click.BadParameter(
            f"expected at most 124 letters, digits or +=,.@_- (an IAM policy name), got {value!r}"
        )
    return value


def register(group: click.Group) -> None:
    for command in (drift, recycle, iam_policy):
        group.add_command(command)
