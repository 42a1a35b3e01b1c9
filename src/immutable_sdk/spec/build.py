"""The frozen model (``spec.model``) built from a document that has passed validation.

Nothing here reports problems: every value was checked before. Durations become float seconds;
relative paths are resolved against the folder of the file that wrote them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import Location
from ..units import parse_duration
from .model import (
    Capacity,
    FleetSpec,
    HealthSpec,
    ImageSpec,
    PluginConfig,
    SecuritySpec,
    Spec,
    StateSpec,
    TargetTracking,
    WaveSpec,
)
from .nodes import LDict, PathPart, plain, where
from .semantic import DEFAULT_STRATEGY

DEFAULT_STATE_PATH = Path(".immutable") / "state.db"


def _folder(root: LDict, path: tuple[PathPart, ...]) -> Path:
    """The folder of the file that wrote the node at ``path``."""
    location, _ = where(root, path)
    return _folder_of(location.file)


@functools.lru_cache(maxsize=64)
def _folder_of(file: str) -> Path:
    return Path(os.path.abspath(file)).parent


def build_spec(root: LDict, files: tuple[Path, ...]) -> Spec:
    _folder_of.cache_clear()  # relative file names depend on the working directory
    region = str(root["region"])
    images = root.get("images") or {}
    fleets = root.get("fleets") or {}
    return Spec(
        api_version=str(root["apiVersion"]),
        name=str(root["name"]),
        region=region,
        state=_state(root, region, files),
        images={n: _image(root, n, images[n], region, fleets) for n in images},
        fleets={n: _fleet(root, n, fleets[n], region) for n in fleets},
        waves=tuple(_wave(root, i, w) for i, w in enumerate(root.get("waves") or ())),
        files=files,
        notifiers=tuple(
            _plugin(root, ("notifiers", i), n) for i, n in enumerate(root.get("notifiers") or ())
        ),
        document=plain(root),
    )


def _state(root: LDict, region: str, files: tuple[Path, ...]) -> StateSpec:
    state = root.get("state") or LDict(("<spec>", 0, 0))
    if "backend" in state:
        location, _ = where(root, ("state", "backend"))
    elif "state" in root:
        location, _ = where(root, ("state",), key=True)
    else:
        location = Location(str(files[0]), 1, 1)
    backend = str(state.get("backend", "local"))
    if backend == "dynamodb":
        return StateSpec(
            backend,
            table=str(state["table"]),
            region=state.get("region", region),
            location=location,
        )
    path = files[0].parent / str(state.get("path", DEFAULT_STATE_PATH))
    return StateSpec(backend, path=path, location=location)


def _image(
    root: LDict, name: str, image: LDict, region: str, fleets: Mapping[str, Any]
) -> ImageSpec:
    """The image, available in the spec's region, its own ``regions`` and those of every
    fleet that runs it (builders copy or find it in each)."""
    path = ("images", name)
    regions = dict.fromkeys([region, *image.get("regions", ())])
    for fleet in fleets.values():
        if fleet.get("image") == name:
            regions.update(dict.fromkeys(fleet.get("regions") or ()))
    location, _ = where(root, path, key=True)
    return ImageSpec(
        name=name,
        builder=str(image["builder"]),
        config=plain(image),
        regions=tuple(regions),
        retain=image.get("retain"),
        base_dir=_folder(root, (*path, "builder")),
        location=location,
    )


def _plugin(root: LDict, path: tuple[PathPart, ...], block: LDict) -> PluginConfig:
    location, _ = where(root, path)
    return PluginConfig(
        type=str(block["type"]),
        config=plain(block),
        base_dir=_folder(root, (*path, "type")),
        location=location,
    )


def _capacity(capacity: LDict) -> Capacity:
    desired = capacity.get("desired", capacity["min"])
    managed = desired == "managed"
    policies = tuple(
        TargetTracking(
            name=str(p["name"]),
            metric=str(p["metric"]),
            target=float(p["target"]),
            disable_scale_in=bool(p.get("disable_scale_in", False)),
            warmup=None if p.get("warmup") is None else parse_duration(p["warmup"]),
        )
        for p in capacity.get("target_tracking") or ()
    )
    return Capacity(
        min=capacity["min"],
        desired=capacity["min"] if managed else desired,
        max=capacity["max"],
        managed=managed,
        target_tracking=policies,
    )


def _fleet(root: LDict, name: str, fleet: LDict, region: str) -> FleetSpec:
    path: tuple[PathPart, ...] = ("fleets", name)
    capacity = fleet["capacity"]
    health = fleet.get("health") or {}
    checks = health.get("checks") or ()
    strategy = fleet.get("strategy")
    if strategy is None:
        location, _ = where(root, path, key=True)
        strategy_config = PluginConfig(
            DEFAULT_STRATEGY, {"type": DEFAULT_STRATEGY}, _folder(root, path), location
        )
    else:
        strategy_config = _plugin(root, (*path, "strategy"), strategy)
    security = fleet.get("security") or {}
    user_data = fleet.get("user_data")
    max_lifetime = fleet.get("max_lifetime")
    location, _ = where(root, path, key=True)
    return FleetSpec(
        name=name,
        image=str(fleet["image"]),
        instance_type=str(fleet["instance_type"]),
        capacity=_capacity(capacity),
        strategy=strategy_config,
        health=HealthSpec(
            timeout=_seconds(health.get("timeout"), 600.0),
            interval=_seconds(health.get("interval"), 10.0),
            grace=_seconds(health.get("grace"), 0.0),
            checks=tuple(
                _plugin(root, (*path, "health", "checks", i), c) for i, c in enumerate(checks)
            ),
        ),
        subnets=tuple(fleet.get("subnets", ())),
        security_groups=tuple(fleet.get("security_groups", ())),
        user_data=(
            None
            if user_data is None
            else _folder(root, (*path, "user_data")) / os.path.expanduser(str(user_data))
        ),
        target_groups=tuple((fleet.get("load_balancer") or {}).get("target_groups", ())),
        traffic=plain(fleet["traffic"]) if fleet.get("traffic") is not None else None,
        rollback_automatic=bool((fleet.get("rollback") or {}).get("automatic", True)),
        key_name=fleet.get("key_name"),
        iam_instance_profile=fleet.get("iam_instance_profile"),
        security=SecuritySpec(
            imdsv2_required=security.get("imdsv2", "required") == "required",
            encrypt_volumes=bool(security.get("encrypt_volumes", True)),
            public_ip=bool(security.get("public_ip", False)),
        ),
        max_lifetime=None if max_lifetime is None else parse_duration(max_lifetime),
        depends_on=tuple(fleet.get("depends_on", ())),
        tags=dict(fleet.get("tags") or {}),
        location=location,
        regions=tuple(fleet.get("regions") or (region,)),
    )


def _wave(root: LDict, index: int, wave: LDict) -> WaveSpec:
    location, _ = where(root, ("waves", index))
    return WaveSpec(
        name=str(wave["name"]),
        fleets=tuple(wave.get("fleets") or ("*",)),
        regions=tuple(wave.get("regions") or ("*",)),
        bake=_seconds(wave.get("bake"), 0.0),
        max_regions_in_flight=int(wave.get("max_regions_in_flight", 1)),
        stop_on_failure=bool(wave.get("stop_on_failure", True)),
        location=location,
    )


def _seconds(value: Any, default: float) -> float:
    return default if value is None else parse_duration(value)
