"""Where and in what order fleets deploy: a fleet's ``regions`` and the spec's ``waves``.

A fleet in several regions is one unit per region; waves select units by fleet and region,
and a unit waits for its fleet's dependencies in its region (or in all of theirs when a
dependency does not deploy there).
"""

from __future__ import annotations

from typing import Any

from .checker import Checker, Path_, check_duration
from .nodes import LDict, LList

# References that name a resource of one region: a fleet in several regions cannot use them.
_REGIONAL_IDS = (
    ("subnets", "subnet-", "subnet", "by Name tag"),
    ("security_groups", "sg-", "security group", "by name or Name tag"),
)


def check_regions(c: Checker, path: Path_, fleet: LDict) -> None:
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


def check_waves(c: Checker, waves: Any, fleets: LDict, region: Any) -> None:
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
        check_duration(c, ("waves", i, "bake"), wave.get("bake"))
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
    c: Checker,
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
