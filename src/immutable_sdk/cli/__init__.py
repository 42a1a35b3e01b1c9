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

COMMAND_MODULES = (
    "spec",
    "rollout",
    "reconcile",
    "images",
    "sandbox",
    "state",
    "drift",
    "operator",
    "preview",
    "orchestrator",
    "worker",
)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Options:
    """Global options, passed to every command through click's context object."""

    debug: bool = False
    log_format: str = "console"
    log_level: str = "info"
    output: str = "text"
    no_color: bool = False
    sandbox: bool = False
    endpoint_url: str | None = None
    profile: str | None = None
    max_attempts: int = 8
    extra: dict[str, Any] = field(default_factory=dict)
    activated: bool = False  # activate() ran: the process is set up for these options


pass_options = click.make_pass_decorator(Options, ensure=True)


class Duration(click.ParamType[float]):
    """A duration option: ``30s``, ``5m``, ``1.5h``, ``1h30m`` (the spec's forms), in seconds."""

    name = "duration"

    def __init__(self, minimum: float = 0.0) -> None:
        self.minimum = minimum

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..units import format_duration, parse_duration

        if isinstance(value, float):
            return value
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(f"{exc} (or a compound one like '1h30m')", param, ctx)
        if seconds < self.minimum:
            self.fail(f"at least {format_duration(self.minimum)}, got {value!r}", param, ctx)
        return seconds


def output_choice(help: str) -> Callable[[F], F]:
    """``--output text|json``; ``help`` says what is printed."""
    return click.option(
        "--output",
        "-o",
        "output",
        type=click.Choice(["text", "json"]),
        default=None,
        help=help,
    )


def output_option(f: F) -> F:
    """``--output text|json`` on a command that prints data."""
    return output_choice("Print data as text (default) or JSON.")(f)


def lease_option(help: str) -> Callable[[F], F]:
    """``--lease DURATION`` (at least 3s, default 60s, or ``IMMUTABLE_SDK_LOCK_LEASE``): the
    lease of the fleet locks the command holds; ``help`` says what holding them means there."""
    return click.option(
        "--lease",
        type=Duration(minimum=3.0),
        default="60s",
        show_default=True,
        envvar="IMMUTABLE_SDK_LOCK_LEASE",
        help=help,
    )


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
                exc.exit_code = int(ExitCode.FAILED)  # type: ignore[misc]
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke(ctx)
        except click.ClickException as exc:  # click's usage errors exit 2: not "changes"
            if detailed_exitcode(ctx.meta.get("immutable_sdk.argv", ())):
                exc.exit_code = int(ExitCode.FAILED)  # type: ignore[misc]
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


def _global_options() -> list[click.Option]:
    """The global options, fresh objects each call (the group's, and each command's copy)."""
    return [
        click.Option(["--debug"], is_flag=True, help="Re-raise errors with their traceback."),
        click.Option(
            ["--log-format"],
            type=click.Choice(["console", "json"]),
            default="console",
            show_default=True,
            help="Format of progress and log lines (on stderr).",
        ),
        click.Option(
            ["--log-level"],
            type=click.Choice(LOG_LEVELS, case_sensitive=False),
            default="info",
            show_default=True,
            help="Least severe log records shown, the SDK's and its plugins' (--debug: debug).",
        ),
        click.Option(
            ["--output", "-o"],
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="Print data as text or JSON (a command's own --output wins).",
        ),
        click.Option(
            ["--no-color"],
            is_flag=True,
            help="No colours or styles on a terminal (NO_COLOR=1 does the same).",
        ),
        click.Option(
            ["--sandbox"],
            is_flag=True,
            envvar="IMMUTABLE_SDK_SANDBOX",
            help="Run against the embedded AWS emulator on 127.0.0.1.",
        ),
        click.Option(
            ["--endpoint-url"],
            envvar=["IMMUTABLE_SDK_ENDPOINT_URL", "AWS_ENDPOINT_URL"],
            default=None,
            help="Send AWS calls to this endpoint (LocalStack, a moto server).",
        ),
        click.Option(["--profile"], default=None, help="AWS profile to use."),
        click.Option(
            ["--max-attempts"],
            type=click.IntRange(1, 50),
            default=8,
            show_default=True,
            help="Attempts per AWS call, retries with backoff included (throttling, 5xx).",
        ),
    ]


LOG_LEVELS = ["debug", "info", "warning", "error"]
GLOBAL_NAMES = tuple(o.name for o in _global_options())


@click.group(
    cls=SdkGroup,
    context_settings={
        "help_option_names": ["-h", "--help"],
        "auto_envvar_prefix": "IMMUTABLE_SDK",
    },
)
@click.version_option(__version__, prog_name="immutable-sdk")
@click.pass_context
def main(ctx: click.Context, /, **options: Any) -> None:
    """Immutable infrastructure on AWS: golden images, gated rollouts, automatic rollback.

    Global options go before or after the command (``apply -f x --sandbox``); every option
    can also be set in the environment: IMMUTABLE_SDK_<OPTION> for global ones,
    IMMUTABLE_SDK_<COMMAND>_<OPTION> for a command's (IMMUTABLE_SDK_APPLY_PARALLELISM).

    Exit codes: 0 ok, 1 operation failed, 2 invalid input or usage, 3 locked or conflict,
    4 drift found, 130 interrupted (plan --detailed-exitcode: 0 no changes, 1 error,
    2 changes).
    """
    from ..redaction import redact_std_streams

    redact_std_streams()  # whatever any command prints, secrets stay in the process
    ctx.obj = Options(**options)


main.params[:0] = _global_options()


def _late_option(option: click.Option) -> click.Option:
    """A command's copy of a global option: set after the command name, it overrides the
    global value (``apply -f x --sandbox``); unset, it leaves the global value alone."""
    name = option.name
    assert name is not None

    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        from click.core import ParameterSource

        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            opts = ctx.find_object(Options)
            if opts is not None:
                setattr(opts, name, value)

    copy = click.Option(
        option.opts + option.secondary_opts if not option.is_flag else option.opts,
        is_flag=option.is_flag,
        type=None if option.is_flag else option.type,
        default=None,
        expose_value=False,
        allow_from_autoenv=False,
        hidden=True,
        callback=store,
        help=option.help,
    )
    return copy


def _activating(command: click.Command) -> None:
    """Wrap ``command``'s callback: apply the global options (sandbox guard, logging, colour)
    when the command that runs is known and every option, early or late, is parsed."""
    callback = command.callback
    is_group = isinstance(command, click.Group)

    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        if not (is_group and ctx.invoked_subcommand):
            opts = ctx.find_object(Options)
            if opts is not None:
                activate(opts)
        return callback(*args, **kwargs) if callback is not None else None

    command.callback = run


def _plain_help(command: click.Command) -> None:
    """Help texts are written as docstrings (RST ````code````); a terminal shows `code`."""
    holders: list[Any] = [command, *command.params]
    for holder in holders:
        text = getattr(holder, "help", None)
        if text:
            holder.help = text.replace("``", "`")


def _give_global_options(command: click.Command) -> None:
    _plain_help(command)
    own = {p.name for p in command.params}
    for option in _global_options():
        if option.name not in own and option.name != "output":
            command.params.append(_late_option(option))
    _activating(command)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _give_global_options(sub)


def activate(opts: Options) -> None:
    """Apply the global options to the process, once per command run."""
    if opts.activated:
        return
    opts.activated = True
    if opts.sandbox:
        # Before anything connects: this process reaches nothing but 127.0.0.1 from here on
        # (the AWS session checks its endpoint too; this covers health checks and plugins).
        from ..aws.loopback import guard

        guard()
    from ..logs import configure_logging

    configure_logging(opts.log_format, level="debug" if opts.debug else opts.log_level)
    if opts.no_color:
        from .render import set_color

        set_color(False)


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
    _plain_help(main)
    for command in main.commands.values():
        _give_global_options(command)


_register_commands()


def run() -> None:
    """Entry point for ``python -m immutable_sdk``."""
    main(prog_name="immutable-sdk")


if __name__ == "__main__":  # pragma: no cover
    run()
