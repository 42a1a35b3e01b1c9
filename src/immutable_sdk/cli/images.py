"""``immutable-sdk images``: list golden-image artifacts with their lineage; ``images gc``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from ..errors import UsageError
from . import Duration, Options, output_option, pass_options
from .common import emit_json, open_engine, output_format

if TYPE_CHECKING:
    from ..aws.images import StoredArtifact


def register(group: click.Group) -> None:
    group.add_command(images)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "unknown"
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def _regions(artifact: StoredArtifact) -> str:
    return ", ".join(f"{region} {ami}" for region, ami in artifact.amis.items())


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _key(artifact: StoredArtifact) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    return artifact.image, artifact.digest, tuple(sorted(artifact.amis.items()))


def _json(data: dict[str, Any]) -> None:
    emit_json(data)


@click.group("images", invoke_without_command=True)
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="Spec file; repeat to overlay (later files win).",
)
@output_option
@pass_options
@click.pass_context
def images(ctx: click.Context, opts: Options, files: tuple[str, ...], output: str | None) -> None:
    """Golden-image artifacts per image: lineage, regions, and the releases that use them.

    ``immutable-sdk images -f SPEC`` lists; ``immutable-sdk images gc -f SPEC`` collects garbage.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not files:
        raise UsageError("images: give the spec with -f SPEC (or run `images gc -f SPEC`)")
    _list(opts, files, output)


def _list(opts: Options, files: Sequence[str], output: str | None) -> None:
    from ..core.images.gc import inventory

    with open_engine(opts, files) as (engine, _):
        spec = engine.spec
        found = inventory(spec, engine.session, engine.state)
    names = list(dict.fromkeys([*spec.images, *(a.image for a in found.artifacts)]))
    if output_format(opts, output) == "json":
        _json(
            {
                "project": spec.name,
                "images": [
                    {
                        "image": name,
                        "in_spec": name in spec.images,
                        "artifacts": [
                            {
                                **a.to_dict(),
                                "used_by": found.used_by(a),
                                "protected": sorted(
                                    {
                                        found.protected[m]
                                        for m in a.ami_ids()
                                        if m in found.protected
                                    }
                                ),
                            }
                            for a in found.of(name)
                        ],
                    }
                    for name in names
                ],
            }
        )
        return
    for name in names:
        image = spec.images.get(name)
        about = f"{image.builder}, retain {image.retain or 'all'}" if image else "not in the spec"
        artifacts = found.of(name)
        click.echo(f"{name} ({about}): {len(artifacts)} artifact(s)")
        if not artifacts:
            continue
        rows = [["DIGEST", "BUILT AT", "BUILDER", "REGIONS", "USED BY"]]
        rows += [
            [
                _short(a.digest),
                _when(a.built_at),
                a.builder,
                _regions(a),
                ", ".join(found.used_by(a)) or "-",
            ]
            for a in artifacts
        ]
        for line in _table(rows):
            click.echo(line)


def _files(ctx: click.Context, files: tuple[str, ...]) -> tuple[str, ...]:
    """A subcommand's -f, else the group's (``images -f SPEC gc`` and ``images gc -f SPEC``)."""
    parent = ctx.parent.params.get("files", ()) if ctx.parent is not None else ()
    chosen = tuple(files) or tuple(parent)
    if not chosen:
        raise UsageError(f"images {ctx.info_name}: give the spec with -f SPEC")
    return chosen


def _subcommand_files(f: Any) -> Any:
    return click.option(
        "-f",
        "--file",
        "files",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=str),
        help="Spec file; repeat to overlay (later files win). May stand before the "
        "subcommand: images -f SPEC gc.",
    )(f)


@images.command("list")
@_subcommand_files
@output_option
@pass_options
@click.pass_context
def list_command(
    ctx: click.Context, opts: Options, files: tuple[str, ...], output: str | None
) -> None:
    """List the artifacts of each image (the same as ``images -f SPEC``)."""
    _list(opts, _files(ctx, files), output)


@images.command("gc")
@_subcommand_files
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@click.option(
    "--min-age",
    type=Duration(),
    default="24h",
    show_default=True,
    help="Never delete an artifact built more recently than this.",
)
@output_option
@pass_options
@click.pass_context
def gc(
    ctx: click.Context,
    opts: Options,
    files: tuple[str, ...],
    dry_run: bool,
    min_age: float,
    output: str | None,
) -> None:
    """Deregister artifacts beyond each image's ``retain`` and delete their snapshots.

    Per image the ``retain`` newest stay; so does every artifact used by a fleet's current or
    previous release or a rollout in progress, by a launch template version that an Auto Scaling
    group of the project references, by an instance of the project, or built less than
    ``--min-age`` ago. An image without ``retain`` is never collected.
    """
    from ..core.images.gc import collect, inventory, plan_collection

    min_age_s = min_age
    files = _files(ctx, files)
    with open_engine(opts, files) as (engine, _):
        spec = engine.spec
        found = inventory(spec, engine.session, engine.state)
        plans = plan_collection(spec, found, engine.clock.now(), min_age_s)
        deleted = collect(spec, engine.session, plans, dry_run=dry_run)
    resources = {_key(a): list(r) for a, r in deleted}
    if output_format(opts, output) == "json":
        _json(
            {
                "dry_run": dry_run,
                "images": {
                    name: {
                        "keep": [{**a.to_dict(), "reason": why} for a, why in plan.keep],
                        "delete": [
                            {
                                **a.to_dict(),
                                "deleted": resources[_key(a)],
                            }
                            for a in plan.delete
                        ],
                    }
                    for name, plan in plans.items()
                },
            }
        )
        return
    verb = "would delete" if dry_run else "deleted"
    for name, plan in plans.items():
        click.echo(f"{name}: keep {len(plan.keep)}, {verb} {len(plan.delete)}")
        rows = [["keep", _short(a.digest), _when(a.built_at), why] for a, why in plan.keep]
        rows += [
            [
                verb,
                _short(a.digest),
                _when(a.built_at),
                " ".join(resources[_key(a)]),
            ]
            for a in plan.delete
        ]
        if rows:
            for line in _table(rows):
                click.echo(line)
