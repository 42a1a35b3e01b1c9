"""The ``immutable-sdk`` command: global options, error handling, and the command modules.

Commands live in modules of this package named after what they act on; each module exposes
``register(group)``. Heavy imports (boto3, rich, moto) happen inside commands, so that
``immutable-sdk --help`` starts fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from .._version import __version__
from ..errors import ExitCode, ImmutableSdkError

COMMAND_MODULES = ("spec", "rollout", "images", "sandbox", "state", "drift", "operator")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Options:
    """Global options, passed to every command through click's context object."""

    debug: bool = False
    log_format: str = "console"
    output: str = "text"
    sandbox: bool = False
    endpoint_url: str | None = None
    profile: str | None = None
    max_attempts: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


pass_options = click.make_pass_decorator(Options, ensure=True)


def output_option(f: F) -> F:
    """``--output text|json`` on a command that prints data."""
    return click.option(
        "--output",
        "-o",
        "output",
        type=click.Choice(["text", "json"]),
        default=None,
        help="Print data as text (default) or JSON.",
    )(f)


def spec_files_option(f: F) -> F:
    """``-f SPEC`` (repeatable; later files override earlier ones)."""
    return click.option(
        "-f",
        "--file",
        "files",
        multiple=True,
        required=True,
        type=click.Path(dir_okay=False, path_type=str),
        help="Spec file; repeat to overlay (later files win).",
    )(f)


def detailed_exitcode(argv: Sequence[str]) -> bool:
    """Whether this command line is ``plan --detailed-exitcode`` (or its environment variable):
    then every error exits 1, as with Terraform, never 2, which means "changes"."""
    import os

    if "plan" not in argv:
        return False
    after = argv[list(argv).index("plan") + 1 :]
    flag = os.environ.get("IMMUTABLE_SDK_PLAN_DETAILED_EXITCODE", "").lower()
    return "--detailed-exitcode" in after or flag in ("1", "true", "yes", "on")


class SdkGroup(click.Group):
    """Runs commands with the SDK's error policy: ImmutableSdkError -> message and exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["immutable_sdk.argv"] = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as exc:
            if detailed_exitcode(args):
                exc.exit_code = int(ExitCode.FAILED)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke(ctx)
        except click.ClickException as exc:  # click's usage errors exit 2: not "changes"
            if detailed_exitcode(ctx.meta.get("immutable_sdk.argv", ())):
                exc.exit_code = int(ExitCode.FAILED)
            raise
        except click.exceptions.Exit as exc:
            if exc.exit_code == ExitCode.INVALID and detailed_exitcode(
                ctx.meta.get("immutable_sdk.argv", ())
            ):
                raise click.exceptions.Exit(int(ExitCode.FAILED)) from None
            raise

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ImmutableSdkError as exc:
            opts = ctx.find_object(Options)
            if opts is not None and opts.debug:
                raise
            from ..redaction import redact_text

            message = redact_text(str(exc))  # a message may quote a value from the spec
            if "\n" in message:
                click.echo(message, err=True)
                click.echo(f"error: {len(message.splitlines())} problem(s) found", err=True)
            else:
                click.echo(f"error: {message}", err=True)
            ctx.exit(int(exc.exit_code))
        except Exception as exc:
            # botocore errors that slipped past the engine's boundaries are user-facing AWS
            # problems (credentials, endpoints), not bugs: say so without a traceback.
            from ..aws.session import is_aws_exception, to_aws_error

            opts = ctx.find_object(Options)
            if not is_aws_exception(exc) or (opts is not None and opts.debug):
                raise
            click.echo(f"error: {to_aws_error(exc)}", err=True)
            ctx.exit(int(ExitCode.FAILED))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))


@click.group(cls=SdkGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="immutable-sdk")
@click.option("--debug", is_flag=True, help="Re-raise errors with their traceback.")
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default="console",
    show_default=True,
    help="Format of progress and log lines.",
)
@click.option(
    "--sandbox",
    is_flag=True,
    envvar="IMMUTABLE_SDK_SANDBOX",
    help="Run against the embedded AWS emulator on 127.0.0.1 (also IMMUTABLE_SDK_SANDBOX=1).",
)
@click.option(
    "--endpoint-url",
    envvar="AWS_ENDPOINT_URL",
    default=None,
    help="Send AWS calls to this endpoint (LocalStack, a moto server).",
)
@click.option("--profile", default=None, help="AWS profile to use.")
@click.option(
    "--max-attempts",
    type=click.IntRange(1, 50),
    default=8,
    show_default=True,
    help="Attempts per AWS call, retries with backoff included (throttling, 5xx).",
)
@click.pass_context
def main(
    ctx: click.Context,
    debug: bool,
    log_format: str,
    sandbox: bool,
    endpoint_url: str | None,
    profile: str | None,
    max_attempts: int,
) -> None:
    """Immutable infrastructure on AWS: golden images, gated rollouts, automatic rollback.

    Exit codes: 0 ok, 1 operation failed, 2 invalid input or usage, 3 locked or conflict,
    4 drift found, 130 interrupted (plan --detailed-exitcode: 0 no changes, 1 error,
    2 changes).
    """
    from ..logs import configure_logging
    from ..redaction import redact_std_streams

    if sandbox:
        # Before anything connects: this process reaches nothing but 127.0.0.1 from here on
        # (the AWS session checks its endpoint too; this covers health checks and plugins).
        from ..aws.loopback import guard

        guard()
    redact_std_streams()  # whatever any command prints, secrets stay in the process
    ctx.obj = Options(
        debug=debug,
        log_format=log_format,
        sandbox=sandbox,
        endpoint_url=endpoint_url,
        profile=profile,
        max_attempts=max_attempts,
    )
    configure_logging(log_format, debug=debug)


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # that command family is not written yet
            raise
        module.register(main)


_register_commands()


def run() -> None:
    """Entry point for ``python -m immutable_sdk``."""
    main(prog_name="immutable-sdk")


if __name__ == "__main__":  # pragma: no cover
    run()
