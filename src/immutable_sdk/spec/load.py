"""``load_spec``: read, overlay, apply defaults, validate, then build the frozen model.

1. Each file is read (``reader``): safe YAML with positions, ``${VAR}`` from the environment.
   The values the spec holds as secrets are registered with the redactor (``secret_scan``).
   Problems that make a file unreadable (syntax, size) are reported for all files together,
   and validation does not start; those that leave a document (duplicate keys, unset
   variables, ``${VAR}`` in keys) are reported with validation's, which says nothing more
   about the values they are about.
2. Files are merged in order, later files winning: maps merge key by key, lists are replaced.
3. ``defaults:`` is merged under every fleet (the fleet's own values win); problems in a
   defaulted value are reported once, at the ``defaults`` block.
4. The whole document is validated against the composed JSON Schema, by the semantic checks and
   by the plugins' own checks of their blocks; every problem is reported at once, sorted by
   position. Nothing touches AWS. Warnings (a file outside the spec's folder) ride on the Spec
   (``Spec.warnings``); ``strict=True`` makes them problems.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import Location, SpecError, SpecProblem
from ..redaction import register_secrets
from .model import Spec
from .nodes import LDict, deep_merge
from .reader import read_spec_file
from .secret_scan import UNSET, scan_document, spec_secret_values

if TYPE_CHECKING:
    from ..plugins import Plugins


def load_spec(
    files: Sequence[str | os.PathLike[str]],
    *,
    plugins: Plugins | None = None,
    environ: Mapping[str, str] | None = None,
    strict: bool = False,
) -> Spec:
    """Load, merge and validate spec files into a ``Spec``.

    ``files``: the base spec then overlays (``-f base.yaml -f prod.yaml``); ``plugins``: the
    loaded plugin manager (default: ``load_plugins()``); ``environ``: where ``${VAR}`` values
    come from (default: ``os.environ``); ``strict``: warnings are problems too. Raises
    SpecError carrying every problem found.
    """
    names = [os.fspath(f) for f in files]
    if not names:
        raise SpecError([SpecProblem(Location("<spec>"), "", "no spec file given")])
    if plugins is None:
        from ..plugins import load_plugins

        plugins = load_plugins()
    with _no_gc_pauses():
        root, read = _read_documents(names, os.environ if environ is None else environ)
        if root is None:
            raise SpecError(read)
        register_secrets(spec_secret_values(root))  # before any message may quote one
        problems, warnings = check_document(root, plugins, names)
        if strict:
            problems += warnings
        if read:  # a value already reported as unset or duplicated needs no second message
            seen = {p.location for p in read}
            problems = read + [p for p in problems if p.location not in seen]
        if problems:
            raise SpecError(sorted(set(problems)))
        from .build import build_spec

        spec = build_spec(root, tuple(Path(os.path.abspath(n)) for n in names))
        return replace(spec, warnings=tuple(warnings))


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Loading allocates many small acyclic objects; the cycle collector would only slow it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_documents(files: Sequence[str], environ: Mapping[str, str]) -> LDict:
    """The files read and merged in order, with ``defaults`` applied; SpecError on any
    problem reading them."""
    root, problems = _read_documents(files, environ)
    if root is None or problems:
        raise SpecError(problems)
    return root


def _read_documents(
    files: Sequence[str], environ: Mapping[str, str]
) -> tuple[LDict | None, list[SpecProblem]]:
    """(the merged document, with ``defaults`` applied, or None if a file is unreadable;
    the problems found reading the files)."""
    problems: list[SpecProblem] = []
    documents: list[LDict] = []
    for file in files:
        document, found = read_spec_file(file, environ)
        problems.extend(found)
        if document is not None:
            documents.append(document)
    problems = sorted(set(problems))
    if len(documents) < len(files):
        return None, problems
    root = documents[0]
    for overlay in documents[1:]:
        root = deep_merge(root, overlay)
    return apply_defaults(root), problems


def apply_defaults(root: LDict) -> LDict:
    """A document whose every fleet has the ``defaults:`` block merged under it."""
    defaults = root.get("defaults")
    fleets = root.get("fleets")
    if not isinstance(defaults, LDict) or not isinstance(fleets, LDict) or not defaults:
        return root
    merged = LDict(fleets.pos)
    for name, fleet in fleets.items():
        if isinstance(fleet, LDict):
            fleet = deep_merge(defaults, fleet, origin=("defaults",))
        merged.put(name, fleet, fleets.key_pos[name], fleets.value_pos[name])
    out = LDict(root.pos)
    for key, value in root.items():
        out.put(key, merged if key == "fleets" else value, root.key_pos[key], root.value_pos[key])
    return out


def validate_document(
    root: LDict, plugins: Plugins, files: Sequence[str] = ()
) -> list[SpecProblem]:
    """Every problem of a merged document, sorted by position (see ``check_document``)."""
    return check_document(root, plugins, files)[0]


def check_document(
    root: LDict, plugins: Plugins, files: Sequence[str] = ()
) -> tuple[list[SpecProblem], list[SpecProblem]]:
    """(problems, warnings) of a merged document: schema, semantic and plugin checks, each list
    sorted by position.

    A node with a wrong value gets one message: the most telling schema error, and no
    semantic message besides. A defaulted value checked in every fleet is reported once.
    """
    from .plugin_checks import plugin_problems
    from .semantic import semantic_problems
    from .validate import WARNING, schema_problems

    problems: list[SpecProblem] = []
    warnings: list[SpecProblem] = []
    judged: set[tuple[Location, str]] = set()  # nodes whose value already has a message
    for rank, problem in schema_problems(root, plugins, files):
        node = (problem.location, problem.path)
        if rank == WARNING:
            warnings.append(problem)
            continue
        if rank < 5:
            if node in judged:
                continue
            judged.add(node)
        problems.append(problem)
    problems.extend(
        p for p in semantic_problems(root, plugins) if (p.location, p.path) not in judged
    )
    invalid = {p.path for p in problems}
    problems.extend(
        p for p in plugin_problems(root, plugins, invalid) if (p.location, p.path) not in judged
    )
    return sorted(set(problems)), sorted(set(warnings))


def scan_spec(files: Sequence[str | os.PathLike[str]]) -> list[SpecProblem]:
    """Secrets written literally in the spec files (``secret_scan.scan_document``)."""
    return scan_document(read_documents([os.fspath(f) for f in files], UNSET))
