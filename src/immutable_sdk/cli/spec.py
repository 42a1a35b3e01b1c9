"""Commands about the spec itself: validate, schema, plugins. None of them touches AWS."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from .._version import __version__
from ..errors import ExitCode, SpecError, SpecProblem
from . import Options, output_option, pass_options, spec_files_option
from .common import emit_json, output_format

if TYPE_CHECKING:
    from ..plugins import Plugins


def _as_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def _problem_dicts(problems: Sequence[SpecProblem]) -> list[dict[str, Any]]:
    from ..redaction import redact

    return [
        {
            "file": p.location.file,
            "line": p.location.line,
            "column": p.location.column,
            "path": p.path,
            "message": redact(p.message),  # a message may quote a value
        }
        for p in problems
    ]


@click.command()
@spec_files_option
@output_option
@click.option(
    "--strict",
    is_flag=True,
    help="Treat warnings (secrets in the spec, files outside its folder) as errors.",
)
@pass_options
def validate(opts: Options, files: tuple[str, ...], output: str | None, strict: bool) -> None:
    """Load and validate the spec (all plugins' settings included), without touching AWS.

    Prints a one-line summary and exits 0, or prints every problem as FILE:LINE:COL: path:
    message and exits 2. Warns about secrets written in image vars, tags or user data (AWS keys,
    private key blocks, long high-entropy tokens, values under secret names) and about files
    the spec reads from outside its folder (../, absolute paths, symlinks pointing out);
    --strict makes those errors.
    """
    from ..spec.load import load_spec, scan_spec

    as_json = output_format(opts, output) == "json"
    try:
        spec = load_spec(files, strict=strict)
        warnings = sorted({*spec.warnings, *scan_spec(files)})
        if strict and warnings:
            raise SpecError(warnings)
    except SpecError as exc:
        if not as_json:
            raise
        emit_json({"valid": False, "problems": _problem_dicts(exc.problems)})
        raise click.exceptions.Exit(int(ExitCode.INVALID)) from None
    if as_json:
        emit_json(
            {
                "valid": True,
                "name": spec.name,
                "region": spec.region,
                **({"regions": list(spec.regions)} if spec.multi_region else {}),
                "images": sorted(spec.images),
                "fleets": sorted(spec.fleets),
                "warnings": _problem_dicts(warnings),
            }
        )
        return
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    images, fleets = len(spec.images), len(spec.fleets)
    click.echo(
        f"ok: {', '.join(files)}: project {spec.name} in {', '.join(spec.regions)}, "
        f"{images} image{'s' if images != 1 else ''}, {fleets} fleet{'s' if fleets != 1 else ''}"
        + (f" ({len(warnings)} warning{'s' if len(warnings) != 1 else ''})" if warnings else "")
    )


@click.command()
@click.option(
    "--draft",
    type=click.Choice(["2020-12", "07"]),
    default="2020-12",
    show_default=True,
    help="JSON Schema draft: 07 for yaml-language-server (VS Code's YAML extension, Neovim, "
    "Helix), which validates with draft-07.",
)
def schema(draft: str) -> None:
    """Print the JSON Schema of a spec with the installed plugins (for editors).

    In a spec, a first line `# yaml-language-server: $schema=PATH-OR-URL` points an editor at
    it (`immutable-sdk schema --draft 07 > spec.schema.json`); the built-in plugins' schema is
    published as docs/schema/spec-v1.json.
    """
    from ..plugins import load_plugins
    from ..spec.schema import composed_schema

    composed = composed_schema(load_plugins())
    if draft == "07":
        from ..spec.schema_draft07 import draft07

        composed = draft07(composed)
    click.echo(_as_json(composed))


def plugin_rows(plugins: Plugins) -> list[dict[str, str]]:
    """One row per registered builder, strategy, health check and notifier."""
    rows = []
    for entry in plugins.entries():
        if entry.distribution:
            dist, _, version = entry.distribution.partition(" ")
        elif entry.plugin.startswith("immutable_sdk."):
            dist, version = "immutable-sdk", __version__
        else:
            dist, version = "-", "-"
        rows.append(
            {
                "name": entry.name,
                "kind": entry.kind,
                "plugin": entry.plugin,
                "distribution": dist,
                "version": version or "-",
                "description": entry.description,
            }
        )
    return rows


@click.command()
@output_option
@pass_options
def plugins(opts: Options, output: str | None) -> None:
    """List the builders, strategies, health checks and notifiers that specs may name.

    Built-in ones and those of installed plugin distributions, with the distribution and its
    version; IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD=1 lists only the built-in ones.
    """
    from ..plugins import load_plugins

    rows = plugin_rows(load_plugins())
    if output_format(opts, output) == "json":
        emit_json({"plugins": rows})
        return
    columns = ["name", "kind", "plugin", "distribution", "version"]
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())


def register(group: click.Group) -> None:
    """Add ``validate``, ``schema`` and ``plugins`` to the ``immutable-sdk`` command."""
    group.add_command(validate)
    group.add_command(schema)
    group.add_command(plugins)
