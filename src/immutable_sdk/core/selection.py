"""``plan --fleet`` / ``apply --fleet``: a plan narrowed to some fleets, as Terraform's
``-target``.

Patterns are globs (``web``, ``api-*``, ``web@*``) matched against each unit's key (``web``,
``web@eu-west-1``) and its full name ``fleet@region``, so ``web@*`` selects web in every
region. Like ``-target``, a selection brings its dependencies along: a fleet's ``depends_on``
(transitively) is planned and applied too, first, since the selected fleet was written to run
after them. Dependants of a selected fleet are not added (that would widen the change beyond
what was asked): those that the full plan would change are named in ``left_out``, and the
CLI says so, so none is skipped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

from ..errors import UsageError
from ..results import NO_CHANGE, Plan
from ..spec.model import Spec
from .waves import assign_waves


@dataclass(frozen=True)
class Selection:
    plan: Plan  # the narrowed plan: selected units, their dependencies, their builds
    selected: tuple[str, ...]  # unit keys the patterns matched
    dependencies: tuple[str, ...]  # unit keys added because a selected unit depends on them
    left_out: tuple[str, ...]  # dependants with changes that the narrowed plan does not apply

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "selected": list(self.selected),
            "dependencies": list(self.dependencies),
            "left_out": list(self.left_out),
        }

    def notes(self) -> list[str]:
        """What the selection did beyond the patterns, in words for the console."""
        out = []
        if self.dependencies:
            out.append(
                "also planned, as dependencies of the selected fleets (depends_on): "
                + ", ".join(self.dependencies)
            )
        if self.left_out:
            they = "it depends" if len(self.left_out) == 1 else "they depend"
            out.append(
                f"not applied: {', '.join(self.left_out)} ({they} on a selected fleet and "
                "the full plan changes them); select them too (--fleet) to apply them"
            )
        return out


def matching(names: Mapping[str, str], patterns: Sequence[str]) -> list[str]:
    """The unit keys of ``names`` (key -> ``fleet@region``) that ``patterns`` match, by key
    or by full name, in pattern order; UsageError for a pattern that matches none."""
    selected: list[str] = []
    for pattern in patterns:
        hits = [k for k in names if fnmatchcase(k, pattern) or fnmatchcase(names[k], pattern)]
        if not hits:
            known = ", ".join(sorted(names)) or "none"
            raise UsageError(f"--fleet {pattern!r} matches no fleet (fleets: {known})")
        selected += [k for k in hits if k not in selected]
    return selected


def select(spec: Spec, plan: Plan, patterns: Sequence[str]) -> Selection:
    """``plan`` narrowed to the units ``patterns`` match and their dependencies."""
    region = spec.region
    units = assign_waves(spec, [(i.fleet, i.region or region) for i in plan.items])
    depends = {u.key: u.depends_on for w in units for u in w.units}
    names = {i.key: f"{i.fleet}@{i.region or region}" for i in plan.items}

    selected = matching(names, patterns)
    chosen = set(selected)
    todo = list(selected)
    while todo:
        for dep in depends.get(todo.pop(), ()):
            if dep in depends and dep not in chosen:
                chosen.add(dep)
                todo.append(dep)

    def needs_chosen(key: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            d in selected or (d not in seen and needs_chosen(d, seen | {key}))
            for d in depends.get(key, ())
        )

    changed = {i.key for i in plan.items if i.action not in NO_CHANGE}
    left_out = [k for k in names if k not in chosen and k in changed and needs_chosen(k)]
    items = tuple(i for i in plan.items if i.key in chosen)
    builds = tuple(b for b in plan.builds if any(i.build and i.image == b for i in items))
    return Selection(
        plan=replace(plan, items=items, builds=builds),
        selected=tuple(selected),
        dependencies=tuple(k for k in names if k in chosen and k not in selected),
        left_out=tuple(left_out),
    )
