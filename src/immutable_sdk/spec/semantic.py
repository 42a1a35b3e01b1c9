"""Checks a JSON Schema cannot express: references, orderings, names AWS accepts, plugin names.

Each check reads the document defensively (a value of the wrong type is the schema's problem,
already reported) and returns located problems.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

from ..errors import SpecProblem
from ..units import parse_duration
from .nodes import LDict, LList, PathPart, dotted, where
from .schema import NAME_PATTERN

if TYPE_CHECKING:
    from ..plugin import Registry
    from ..plugins import Plugins

MAX_NAMES_LENGTH = 40  # len(project) + len(fleet)
USER_DATA_LIMIT = 16 * 1024  # EC2 refuses more user data than this (before base64)
DEFAULT_STRATEGY = "rolling"
_NAME = re.compile(NAME_PATTERN)
_RESERVED_TAG_PREFIXES = ("aws:", "immutable-sdk:")

Path_ = tuple[PathPart, ...]


class _Checker:
    def __init__(self, root: LDict, plugins: Plugins) -> None:
        self.root = root
        self.plugins = plugins
        self.problems: list[SpecProblem] = []

    def add(self, path: Path_, message: str, *, key: bool = False) -> None:
        location, shown = where(self.root, path, key=key)
        self.problems.append(SpecProblem(location, dotted(shown), message))

    def name(self, path: Path_, value: Any, what: str) -> None:
        if isinstance(value, str) and not _NAME.match(value):
            self.add(
                path,
                f"{what} {value!r} cannot be used in AWS resource names: use lowercase letters, "
                "digits and '-', starting and ending with a letter or digit",
                key=what != "project name",
            )

    def plugin(self, path: Path_, registry: Registry[Any], value: Any) -> None:
        if not isinstance(value, str) or value in registry:
            return
        known = registry.names()
        close = get_close_matches(value, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.add(
            path,
            f"unknown {registry.kind} {value!r} (known: {', '.join(known) or 'none'}){hint}",
        )


def semantic_problems(root: LDict, plugins: Plugins) -> list[SpecProblem]:
    """Problems beyond the schema, for the document after overlays and defaults."""
    c = _Checker(root, plugins)
    project = root.get("name")
    c.name(("name",), project, "project name")
    images = root.get("images")
    images = images if isinstance(images, LDict) else LDict(root.pos)
    for name, image in images.items():
        c.name(("images", name), name, "image name")
        if isinstance(image, LDict):
            c.plugin(("images", name, "builder"), plugins.builders, image.get("builder"))
    fleets = root.get("fleets")
    fleets = fleets if isinstance(fleets, LDict) else LDict(root.pos)
    for name, fleet in fleets.items():
        path: Path_ = ("fleets", name)
        c.name(path, name, "fleet name")
        if isinstance(project, str) and len(project) + len(name) > MAX_NAMES_LENGTH:
            c.add(
                path,
                f"fleet name {name!r} is too long for project {project!r}: together they have "
                f"{len(project) + len(name)} characters, at most {MAX_NAMES_LENGTH} fit in the "
                "Auto Scaling group and launch template names '{project}-{fleet}-{slot}'",
                key=True,
            )
        if isinstance(fleet, LDict):
            _check_fleet(c, path, fleet, images, fleets)
    _check_cycles(c, fleets)
    _check_state(c, root.get("state"))
    _check_waves(c, root.get("waves"), fleets, root.get("region"))
    notifiers = root.get("notifiers")
    if isinstance(notifiers, LList):
        for i, notifier in enumerate(notifiers):
            if isinstance(notifier, LDict):
                c.plugin(("notifiers", i, "type"), plugins.notifiers, notifier.get("type"))
    return c.problems


def _check_fleet(c: _Checker, path: Path_, fleet: LDict, images: LDict, fleets: LDict) -> None:
    image = fleet.get("image")
    if isinstance(image, str) and image not in images:
        known = sorted(images)
        close = get_close_matches(image, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        c.add(
            (*path, "image"), f"unknown image {image!r} (known: {', '.join(known) or 'none'}){hint}"
        )
    _check_capacity(c, (*path, "capacity"), fleet.get("capacity"))
    strategy = fleet.get("strategy")
    if strategy is None:
        if DEFAULT_STRATEGY not in c.plugins.strategies:
            c.add(
                path,
                f"no strategy given and the default {DEFAULT_STRATEGY!r} is not installed",
                key=True,
            )
    elif isinstance(strategy, LDict):
        c.plugin((*path, "strategy", "type"), c.plugins.strategies, strategy.get("type"))
        if strategy.get("type") in ("canary", "blue-green"):
            _check_shifting(c, (*path, "strategy"), strategy)
    _check_traffic(c, path, fleet, fleets)
    _check_regions(c, path, fleet)
    health = fleet.get("health")
    checks = health.get("checks") if isinstance(health, LDict) else None
    if isinstance(checks, LList):
        for i, check in enumerate(checks):
            if isinstance(check, LDict):
                c.plugin(
                    (*path, "health", "checks", i, "type"),
                    c.plugins.health_checks,
                    check.get("type"),
                )
    _check_user_data(c, (*path, "user_data"), fleet.get("user_data"))
    deps = fleet.get("depends_on")
    if isinstance(deps, LList):
        for i, dep in enumerate(deps):
            if isinstance(dep, str) and (dep not in fleets or dep == path[-1]):
                what = "itself" if dep == path[-1] else f"unknown fleet {dep!r}"
                c.add((*path, "depends_on", i), f"a fleet cannot depend on {what}")
    tags = fleet.get("tags")
    if isinstance(tags, LDict):
        for key, value in tags.items():
            if key.startswith(_RESERVED_TAG_PREFIXES):
                c.add(
                    (*path, "tags", key),
                    f"tag keys starting with {key.split(':')[0]}: are reserved",
                    key=True,
                )
            elif len(key) > 128:
                c.add((*path, "tags", key), "tag keys may have at most 128 characters", key=True)
            if isinstance(value, str) and len(value) > 256:
                c.add((*path, "tags", key), "tag values may have at most 256 characters")


def _check_capacity(c: _Checker, path: Path_, capacity: Any) -> None:
    if not isinstance(capacity, LDict):
        return
    values = {k: capacity.get(k) for k in ("min", "desired", "max")}
    if not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values.values() if v is not None
    ):
        return
    low, desired, high = values["min"], values["desired"], values["max"]
    if isinstance(low, int) and isinstance(high, int) and low > high:
        c.add((*path, "max"), f"max ({high}) must be at least min ({low})")
    if isinstance(desired, int):
        if isinstance(low, int) and desired < low:
            c.add((*path, "desired"), f"desired ({desired}) must be at least min ({low})")
        if isinstance(high, int) and desired > high:
            c.add((*path, "desired"), f"desired ({desired}) must be at most max ({high})")


def _check_shifting(c: _Checker, path: Path_, strategy: LDict) -> None:
    """Traffic-shifting strategies: durations, and canary steps with increasing weights."""
    _duration(c, (*path, "keep_previous"), strategy.get("keep_previous"))
    steps = strategy.get("steps")
    if not isinstance(steps, LList):
        return
    last: tuple[float, int] | None = None
    for i, step in enumerate(steps):
        here = (*path, "steps", i)
        if not isinstance(step, LDict):
            continue
        kinds = [k for k in ("weight", "pause", "analysis") if k in step]
        if len(kinds) != 1:
            c.add(
                here,
                "a step has exactly one of 'weight' (with an optional 'bake'), 'pause' "
                f"or 'analysis', got {', '.join(repr(k) for k in step) or 'none'}",
            )
            continue
        weight = step.get("weight")
        if "weight" in step:
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                c.add((*here, "weight"), f"expected a weight between 0 and 100, got {weight!r}")
            elif not 0 <= weight <= 100:
                c.add((*here, "weight"), f"weights are between 0 and 100, got {weight}")
            else:
                if last is not None and weight <= last[0]:
                    c.add(
                        (*here, "weight"),
                        f"weights must increase: {weight} follows {last[0]:g} (step {last[1]})",
                    )
                last = (weight, i)
            _duration(c, (*here, "bake"), step.get("bake"))
        pause = step.get("pause")
        if "pause" in step and pause != "manual":
            _duration(c, (*here, "pause"), pause, allowed="'manual' or ")
        analysis = step.get("analysis")
        if isinstance(analysis, LDict):
            if analysis.get("type") == "cloudwatch-metrics" and (
                last is None or not 0 < last[0] < 100
            ):
                c.add(
                    (*here, "analysis"),
                    "an analysis compares the new slot with the previous one: it needs a "
                    "weight step between 0 and 100 before it, so that both slots get traffic",
                )
            _check_metrics(c, (*here, "analysis", "metrics"), analysis.get("metrics"))


def _check_metrics(c: _Checker, path: Path_, metrics: Any) -> None:
    if not isinstance(metrics, LList):
        return
    seen: dict[str, int] = {}
    for i, metric in enumerate(metrics):
        if not isinstance(metric, LDict):
            continue
        here = (*path, i)
        name = metric.get("name")
        if isinstance(name, str):
            if name in seen:
                c.add(
                    (*here, "name"), f"metric name {name!r} is already used by metric {seen[name]}"
                )
            seen.setdefault(name, i)
        if ("preset" in metric) == ("metric" in metric):
            c.add(here, "a metric names either a 'preset' or a 'metric' (with its namespace)")
        elif "preset" in metric and ("statistic" in metric or "namespace" in metric):
            c.add(here, "a preset sets its own namespace and statistic", key=False)
        if "max" not in metric and "max_ratio" not in metric:
            c.add(here, "a metric needs a threshold: 'max', 'max_ratio' or both")


def _check_traffic(c: _Checker, path: Path_, fleet: LDict, fleets: LDict) -> None:
    """Traffic slots and traffic-shifting strategies go together; slot group names are free."""
    traffic = fleet.get("traffic")
    strategy = fleet.get("strategy")
    kind = strategy.get("type") if isinstance(strategy, LDict) else DEFAULT_STRATEGY
    if traffic is None:
        if kind in ("canary", "blue-green"):
            c.add(
                (*path, "strategy", "type"),
                f"strategy {kind!r} moves traffic between two slots: the fleet needs "
                "'traffic' (route53 and slots blue/green)",
            )
        return
    if not isinstance(traffic, LDict):
        return
    for key in ("route53", "slots"):
        if key not in traffic:
            c.add((*path, "traffic"), f"missing required key {key!r}", key=True)
    if kind == "rolling":  # the built-in that replaces instances in place
        c.add(
            (*path, "strategy") if isinstance(strategy, LDict) else path,
            "a fleet with traffic slots needs a strategy that moves traffic between them "
            "(blue-green, canary), not 'rolling'",
            key=not isinstance(strategy, LDict),
        )
    balancer = fleet.get("load_balancer")
    if isinstance(balancer, LDict) and balancer.get("target_groups"):
        c.add(
            (*path, "load_balancer"),
            "a fleet with traffic slots takes its target groups from traffic.slots; "
            "drop load_balancer.target_groups",
            key=True,
        )
    for slot in ("blue", "green"):
        other = f"{path[-1]}-{slot}"
        if other in fleets:
            c.add(
                ("fleets", other),
                f"fleet name {other!r} is taken by the {slot} slot of fleet {path[-1]!r} "
                "(its Auto Scaling group)",
                key=True,
            )


# References that name a resource of one region: a fleet in several regions cannot use them.
_REGIONAL_IDS = (
    ("subnets", "subnet-", "subnet", "by Name tag"),
    ("security_groups", "sg-", "security group", "by name or Name tag"),
)


def _check_regions(c: _Checker, path: Path_, fleet: LDict) -> None:
    """A fleet's regions: each once; several only without traffic slots or regional ids."""
    regions = fleet.get("regions")
    if not isinstance(regions, LList):
        return
    seen: set[str] = set()
    for i, region in enumerate(regions):
        if isinstance(region, str) and region in seen:
            c.add((*path, "regions", i), f"region {region!r} is listed twice")
        seen.add(str(region))
    if len(seen) < 2:
        return
    if fleet.get("traffic") is not None:
        c.add(
            (*path, "regions"),
            "a fleet with traffic slots deploys to one region: its weighted Route 53 records "
            "would split traffic evenly between regions whatever their capacity; give each "
            "region its own fleet and record (route between regions with latency or "
            "geolocation records)",
        )
    for key, prefix, what, how in _REGIONAL_IDS:
        refs = fleet.get(key)
        for i, ref in enumerate(refs if isinstance(refs, LList) else ()):
            if isinstance(ref, str) and ref.startswith(prefix):
                c.add(
                    (*path, key, i),
                    f"{what} id {ref!r} exists in one region only, and this fleet deploys to "
                    f"{', '.join(sorted(seen))}: name the {what} {how} instead",
                )
    balancer = fleet.get("load_balancer")
    groups = balancer.get("target_groups") if isinstance(balancer, LDict) else None
    for i, ref in enumerate(groups if isinstance(groups, LList) else ()):
        if isinstance(ref, str) and ref.startswith("arn:"):
            c.add(
                ("fleets", path[-1], "load_balancer", "target_groups", i),
                f"target group ARN {ref!r} names one region, and this fleet deploys to "
                f"{', '.join(sorted(seen))}: name the target group by its name instead",
            )


def _fleet_regions(fleet: Any, region: str) -> list[str]:
    """The regions a fleet (as written) deploys to: its ``regions``, else the spec's."""
    regions = fleet.get("regions") if isinstance(fleet, LDict) else None
    listed = [r for r in regions if isinstance(r, str)] if isinstance(regions, LList) else []
    return list(dict.fromkeys(listed)) or [region]


def _duration(c: _Checker, path: Path_, value: Any, allowed: str = "") -> None:
    if value is None:
        return
    try:
        parse_duration(value)
    except ValueError:
        c.add(path, f"expected {allowed}a duration like '30s', '5m' or '2h', got {value!r}")


def _check_user_data(c: _Checker, path: Path_, value: Any) -> None:
    if not isinstance(value, str):
        return
    location, _ = where(c.root, path)
    full = os.path.join(os.path.dirname(os.path.abspath(location.file)), value)
    if os.path.isfile(full) and os.path.getsize(full) > USER_DATA_LIMIT:
        c.add(
            path,
            f"user data is {os.path.getsize(full)} bytes; EC2 accepts at most "
            f"{USER_DATA_LIMIT} bytes (16 KiB)",
        )


def _check_cycles(c: _Checker, fleets: LDict) -> None:
    graph: dict[str, list[str]] = {}
    for name, fleet in fleets.items():
        deps = fleet.get("depends_on") if isinstance(fleet, LDict) else None
        graph[name] = (
            [d for d in deps if isinstance(d, str) and d in fleets and d != name]
            if isinstance(deps, LList)
            else []
        )
    state: dict[str, int] = {}  # 1 visiting, 2 done
    for start in graph:
        for cycle in _cycles_from(start, graph, state):
            c.add(
                ("fleets", cycle[0], "depends_on"),
                f"fleets depend on each other in a cycle: {' -> '.join(cycle)}",
            )


def _cycles_from(
    start: str, graph: dict[str, list[str]], state: dict[str, int]
) -> Iterator[list[str]]:
    if state.get(start):
        return
    stack: list[tuple[str, Iterator[str]]] = [(start, iter(graph[start]))]
    path = [start]
    state[start] = 1
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            state[node] = 2
            stack.pop()
            path.pop()
        elif state.get(child) == 1:
            yield [*path[path.index(child) :], child]
        elif not state.get(child):
            state[child] = 1
            path.append(child)
            stack.append((child, iter(graph[child])))


def _check_waves(c: _Checker, waves: Any, fleets: LDict, region: Any) -> None:
    """Names unique, every selector selects, every fleet in a wave in each of its regions,
    dependencies not later (a fleet in a region waits for the dependency in that region, or
    in all of its regions when it does not deploy there)."""
    if not isinstance(waves, LList) or not waves or not isinstance(region, str):
        return
    from fnmatch import fnmatchcase

    where_to = {name: _fleet_regions(fleet, region) for name, fleet in fleets.items()}
    deployed = list(dict.fromkeys(r for rs in where_to.values() for r in rs)) or [region]
    seen: set[str] = set()
    wave_of: dict[tuple[str, str], int] = {}
    for i, wave in enumerate(waves):
        if not isinstance(wave, LDict):
            continue
        name = wave.get("name")
        c.name(("waves", i, "name"), name, "wave name")
        if isinstance(name, str) and name in seen:
            c.add(("waves", i, "name"), f"wave name {name!r} is used twice")
        seen.add(str(name))
        _duration(c, ("waves", i, "bake"), wave.get("bake"))
        regions = [p for p in wave.get("regions") or ["*"] if isinstance(p, str)]
        for j, pattern in enumerate(regions):
            if not any(fnmatchcase(r, pattern) for r in deployed):
                c.add(("waves", i, "regions", j), _selects_no_region(pattern, deployed))
        patterns = [p for p in wave.get("fleets") or ["*"] if isinstance(p, str)]
        for j, pattern in enumerate(wave.get("fleets") or ()):
            if isinstance(pattern, str) and not any(fnmatchcase(f, pattern) for f in fleets):
                c.add(("waves", i, "fleets", j), f"{pattern!r} selects no fleet")
        selected = [
            (fleet, r)
            for fleet in fleets
            if any(fnmatchcase(fleet, p) for p in patterns)
            for r in where_to[fleet]
            if any(fnmatchcase(r, p) for p in regions)
        ]
        chosen_fleets = [f for f in fleets if any(fnmatchcase(f, p) for p in patterns)]
        chosen_regions = [r for r in deployed if any(fnmatchcase(r, p) for p in regions)]
        if not selected and chosen_fleets and chosen_regions:
            c.add(
                ("waves", i),
                f"wave {name!r} selects no fleet in its regions: "
                f"{', '.join(chosen_fleets)} deploy(s) to none of {', '.join(chosen_regions)}",
            )
        for unit in selected:
            wave_of.setdefault(unit, i)
    for fleet in fleets:
        missing = [r for r in where_to[fleet] if (fleet, r) not in wave_of]
        if missing:
            where = "" if missing == [region] else f" in {', '.join(missing)}"
            c.add(
                ("waves",),
                f"fleet {fleet!r} is in no wave{where}; name it in one, or end with a wave of "
                "fleets ['*']",
            )
            continue
        deps = fleets[fleet].get("depends_on") if isinstance(fleets[fleet], LDict) else None
        for dep in deps if isinstance(deps, LList) else ():
            if isinstance(dep, str) and dep in where_to:
                _check_dependency_wave(c, fleet, dep, where_to, wave_of, region)


def _selects_no_region(pattern: str, deployed: list[str]) -> str:
    if len(deployed) == 1:
        return (
            f"{pattern!r} selects no region this spec deploys to: its fleets run in "
            f"{deployed[0]} only (a fleet deploys to others with `regions: [...]`)"
        )
    return f"{pattern!r} selects no region this spec deploys to ({', '.join(deployed)})"


def _check_dependency_wave(
    c: _Checker,
    fleet: str,
    dep: str,
    where_to: dict[str, list[str]],
    wave_of: dict[tuple[str, str], int],
    region: str,
) -> None:
    for r in where_to[fleet]:
        own = wave_of[(fleet, r)]
        units = [(dep, r)] if r in where_to[dep] else [(dep, x) for x in where_to[dep]]
        later = [u for u in units if wave_of.get(u, -1) > own]
        if later:
            at = "" if r == region else f" in {r}"
            dep_at = "" if later[0][1] == region else f" in {later[0][1]}"
            c.add(
                ("fleets", fleet, "depends_on"),
                f"fleet {fleet!r}{at} (wave {own + 1}) depends on {dep!r}{dep_at}, which "
                f"rolls out in a later wave ({wave_of[later[0]] + 1})",
            )
            return


def _check_state(c: _Checker, state: Any) -> None:
    if not isinstance(state, LDict):
        return
    backend = state.get("backend", "local")
    for key, only in (("path", "local"), ("table", "dynamodb"), ("region", "dynamodb")):
        if key in state and backend in ("local", "dynamodb") and backend != only:
            c.add(("state", key), f"{key!r} applies to backend {only!r} only", key=True)
