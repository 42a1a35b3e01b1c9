"""Checks a JSON Schema cannot express: references, orderings, names AWS accepts, plugin names.

Each check reads the document defensively (a value of the wrong type is the schema's problem,
already reported) and returns located problems.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

from ..errors import SpecProblem
from .aws_names import check_fleet_name, check_project_name, check_references, check_tags
from .checker import Checker as _Checker
from .checker import Path_
from .checker import check_duration as _duration
from .nodes import LDict, LList, where
from .placement import check_regions, check_waves

if TYPE_CHECKING:
    from ..plugins import Plugins

USER_DATA_LIMIT = 16 * 1024  # EC2 refuses more user data than this (before base64)
DEFAULT_STRATEGY = "rolling"


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
    check_project_name(c, project)
    for name, fleet in fleets.items():
        path: Path_ = ("fleets", name)
        c.name(path, name, "fleet name")
        check_fleet_name(c, path, project, name)
        if isinstance(fleet, LDict):
            _check_fleet(c, path, fleet, images, fleets)
    _check_cycles(c, fleets)
    _check_state(c, root.get("state"))
    check_waves(c, root.get("waves"), fleets, root.get("region"))
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
    capacity = fleet.get("capacity")
    if (
        fleet.get("traffic")
        and isinstance(capacity, LDict)
        and capacity.get("desired") == "managed"
    ):
        c.add(
            (*path, "capacity", "desired"),
            "desired: managed is for fleets without traffic slots (a slot is sized from the "
            "spec's desired capacity); give a count",
        )
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
    check_regions(c, path, fleet)
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
    check_tags(c, (*path, "tags"), fleet.get("tags"))
    check_references(c, path, fleet)


def _check_capacity(c: _Checker, path: Path_, capacity: Any) -> None:
    if not isinstance(capacity, LDict):
        return
    _check_scaling(c, path, capacity)
    values = {k: capacity.get(k) for k in ("min", "desired", "max")}
    if values["desired"] == "managed":
        values["desired"] = None
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


def _check_scaling(c: _Checker, path: Path_, capacity: LDict) -> None:
    """Scaling policies own the desired capacity only with ``desired: managed``; names are
    unique per fleet."""
    policies = capacity.get("target_tracking")
    if not isinstance(policies, LList) or not policies:
        return
    if capacity.get("desired") != "managed":
        c.add(
            (*path, "target_tracking"),
            "scaling policies need desired: managed (otherwise apply resets what they scale)",
            key=True,
        )
    seen: set[str] = set()
    for i, policy in enumerate(policies):
        name = policy.get("name") if isinstance(policy, LDict) else None
        if isinstance(name, str):
            if name in seen:
                c.add((*path, "target_tracking", i, "name"), f"duplicate policy name {name!r}")
            seen.add(name)


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
            _check_analysis(c, (*here, "analysis"), analysis, last)


def _check_analysis(
    c: _Checker, path: Path_, analysis: LDict, last: tuple[float, int] | None
) -> None:
    """An analysis block: a known provider; metrics with unique names and a threshold."""
    kind = analysis.get("type")
    c.plugin((*path, "type"), c.plugins.analysis_providers, kind)
    metrics = analysis.get("metrics")
    if not isinstance(metrics, LList):
        return
    compares = any(isinstance(m, LDict) and ("max_ratio" in m or "compare" in m) for m in metrics)
    if last is None or last[0] <= 0:
        c.add(
            path,
            "an analysis judges the new slot on its traffic: it needs a weight step between "
            "0 and 100 before it",
        )
    elif compares and last[0] >= 100:
        c.add(
            path,
            "an analysis that compares the new slot with the previous one (max_ratio, "
            "compare) needs a weight step between 0 and 100 before it, so that both slots "
            "get traffic",
        )
    seen: dict[str, int] = {}
    for i, metric in enumerate(metrics):
        if not isinstance(metric, LDict):
            continue
        here = (*path, "metrics", i)
        name = metric.get("name")
        if isinstance(name, str):
            if name in seen:
                c.add(
                    (*here, "name"), f"metric name {name!r} is already used by metric {seen[name]}"
                )
            seen.setdefault(name, i)
        if kind == "cloudwatch-metrics":  # the built-in provider's either-or, worded
            if ("preset" in metric) == ("metric" in metric):
                c.add(here, "a metric names either a 'preset' or a 'metric' (with its namespace)")
            elif "preset" in metric and ("statistic" in metric or "namespace" in metric):
                c.add(here, "a preset sets its own namespace and statistic", key=False)
        if not any(k in metric for k in ("max", "max_ratio", "compare")):
            c.add(here, "a metric needs a threshold: 'max', 'max_ratio' or 'compare'")


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


def _check_state(c: _Checker, state: Any) -> None:
    if not isinstance(state, LDict):
        return
    backend = state.get("backend", "local")
    for key, only in (("path", "local"), ("table", "dynamodb"), ("region", "dynamodb")):
        if key in state and backend in ("local", "dynamodb") and backend != only:
            c.add(("state", key), f"{key!r} applies to backend {only!r} only", key=True)
