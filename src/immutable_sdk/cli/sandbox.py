"""``immutable-sdk sandbox serve``: keep an embedded emulator running across commands.

``--sandbox`` alone starts a fresh emulator inside each command, which is gone when the command
ends. ``sandbox serve`` keeps one running on 127.0.0.1 and writes a file of environment
variables; commands run with that environment (and ``--sandbox``) attach to it and share its
state, so a sequence of applies (create, then replace) can be shown end to end.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from . import Options, pass_options, spec_files_option

if TYPE_CHECKING:
    from ..sandbox import Sandbox
    from ..spec.model import Spec


@click.group()
def sandbox() -> None:
    """The embedded AWS emulator (moto's server on 127.0.0.1)."""


@sandbox.command()
@spec_files_option
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Write the variables that attach commands to this sandbox here (shell syntax).",
)
@pass_options
def serve(opts: Options, files: tuple[str, ...], env_file: Path) -> None:
    """Run a sandbox seeded for the spec until interrupted (SIGINT or SIGTERM).

    Commands run with the variables of ``--env-file`` (``IMMUTABLE_SDK_SANDBOX=1`` among them)
    share its AWS resources and its state: the spec's DynamoDB state table on the sandbox, or
    one state file for the local backend.
    """
    from ..aws.loopback import SANDBOX_CREDENTIALS, guard
    from ..core.connection import SANDBOX_STATE_VAR, SANDBOX_URL_VAR
    from ..plugins import load_plugins
    from ..sandbox import Sandbox
    from ..spec.load import load_spec

    guard()  # a served sandbox is a sandboxed process too: loopback only

    plugins = load_plugins()
    spec = load_spec(files, plugins=plugins)
    state_dir = Path(tempfile.mkdtemp(prefix="immutable-sdk-sandbox-"))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with Sandbox() as box:
        summary = box.seed(spec, plugins)
        created = list(summary.get("created", []))
        if spec.state.backend == "dynamodb":  # before the env file: it says the sandbox is ready
            created += _state_table(spec, box)
        env = {
            "IMMUTABLE_SDK_SANDBOX": "1",
            SANDBOX_URL_VAR: box.url,
            SANDBOX_STATE_VAR: str(state_dir / "state.db"),
            **{k.upper(): v for k, v in SANDBOX_CREDENTIALS.items()},
        }
        tmp = env_file.with_suffix(env_file.suffix + ".tmp")
        env_file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
        os.replace(tmp, env_file)  # appears whole: a waiting script never reads half of it
        click.echo(f"sandbox serving on {box.url}; seeded {len(created)} resource(s):", err=True)
        for line in created:
            click.echo(f"  {line}", err=True)
        stop.wait()
    env_file.unlink(missing_ok=True)
    click.echo("sandbox stopped", err=True)


def register(group: click.Group) -> None:
    group.add_command(sandbox)


def _state_table(spec: Spec, box: Sandbox) -> list[str]:
    """Create the spec's DynamoDB state table on the served sandbox (as any command would)."""
    from ..core.connection import Connection

    created = Connection(box.session(spec.region)).create_state(spec)
    return [f"state table {spec.state.table}"] if created else []
