"""The plugin manager: built-ins first, then the ``immutable_sdk`` entry points, then a check.

Built-in plugins are registered the same way a third-party distribution's are: as modules with
``@hookimpl`` functions. ``IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .plugin import (
    PROJECT,
    AnalysisProviderFactory,
    BuilderFactory,
    HealthCheckFactory,
    NotifierFactory,
    PluginEntry,
    Registry,
    StrategyFactory,
)
from .redaction import redact

BUILTIN_PLUGINS = (
    "immutable_sdk.builders.ami",
    "immutable_sdk.builders.packer",
    "immutable_sdk.builders.image_builder",
    "immutable_sdk.strategies.rolling",
    "immutable_sdk.strategies.bluegreen",
    "immutable_sdk.strategies.canary",
    "immutable_sdk.health.ec2",
    "immutable_sdk.health.elb",
    "immutable_sdk.health.http",
    "immutable_sdk.health.alarm",
    "immutable_sdk.analysis.cloudwatch",
    "immutable_sdk.analysis.prometheus",
)
AUTOLOAD_ENV = "IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD"


@dataclass
class Plugins:
    """The loaded plugin manager and the registries its register hooks filled."""

    manager: pluggy.PluginManager
    builders: Registry[BuilderFactory]
    strategies: Registry[StrategyFactory]
    health_checks: Registry[HealthCheckFactory]
    distributions: Distributions
    notifiers: Registry[NotifierFactory] = field(default_factory=lambda: Registry("notifier"))
    analysis_providers: Registry[AnalysisProviderFactory] = field(
        default_factory=lambda: Registry("analysis provider")
    )

    @property
    def hook(self) -> Any:
        """The hooks to call; notify hooks get their arguments redacted (see ``NotifyRelay``)."""
        return NotifyRelay(self.manager.hook)

    def entries(self) -> list[PluginEntry[Any]]:
        return [
            *self.builders,
            *self.strategies,
            *self.health_checks,
            *self.notifiers,
            *self.analysis_providers,
        ]


class NotifyRelay:
    """``manager.hook``, except that notify hooks are called with redacted arguments.

    Notify hooks (neither register nor decide hooks) hand rollout infos, steps and reasons to
    plugins that may send them anywhere (a webhook's third party): ``redaction.redact`` gives
    them copies with every secret replaced, so no plugin has to redact on its own.
    """

    def __init__(self, relay: Any) -> None:
        self._relay = relay

    def __getattr__(self, name: str) -> Any:
        caller = getattr(self._relay, name)
        spec = getattr(caller, "spec", None)
        decide = spec is not None and spec.opts.get("firstresult", False)
        if decide or name.startswith(f"{PROJECT}_add_"):
            return caller

        def notify(**kwargs: Any) -> Any:
            return caller(**{k: redact(v) for k, v in kwargs.items()})

        return notify


def _builtin_modules() -> list[str]:
    # Imported as listed: a built-in that is missing is a broken install, and fails loudly.
    return list(BUILTIN_PLUGINS)


Distributions = dict[str, str]  # plugin name -> "distribution version"


def _load_entry_points(manager: pluggy.PluginManager, dists: Distributions) -> None:
    """Load the entry point group, wrapping a broken plugin's failure in a PluginError."""
    for ep in metadata.entry_points(group=PROJECT):
        if manager.get_plugin(ep.name) is not None or manager.is_blocked(ep.name):
            continue
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else None
        try:
            plugin = ep.load()
        except Exception as exc:  # any import-time failure of someone else's code
            raise PluginError(ep.name, f"failed to import: {exc!r}", distribution=dist) from exc
        try:
            manager.register(plugin, name=ep.name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(ep.name, f"cannot be registered: {exc}", distribution=dist) from exc
        if dist:
            dists[ep.name] = dist


def _fill(
    manager: pluggy.PluginManager, dists: Distributions, hook_name: str, registry: Registry[Any]
) -> Registry[Any]:
    hook = getattr(manager.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order: built-ins, extras, entry points
        dist = dists.get(impl.plugin_name)
        registry._registering(impl.plugin_name, dist)
        try:
            impl.function(registry=registry)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                impl.plugin_name, f"{hook_name} raised {exc!r}", distribution=dist
            ) from exc
    registry._registering("<unknown>", None)
    return registry


def load_plugins(extra: Iterable[object] = (), *, autoload: bool | None = None) -> Plugins:
    """Create the plugin manager and fill the registries.

    ``extra`` plugins (objects or modules with hookimpls) register after built-ins and before
    entry points: that is how tests and the Python API add plugins without installing them.
    """
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    for name in _builtin_modules():
        manager.register(importlib.import_module(name), name=name)
    for i, plugin in enumerate(extra):
        name = getattr(plugin, "__name__", None) or f"extra-{i}-{type(plugin).__name__}"
        try:
            manager.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(name, f"cannot be registered: {exc}") from exc
    if autoload is None:
        autoload = os.environ.get(AUTOLOAD_ENV, "") not in ("1", "true", "yes")
    dists: Distributions = {}
    if autoload:
        _load_entry_points(manager, dists)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        name = manager.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(
            name,
            f"implements a hook that does not exist: {exc}",
            distribution=dists.get(name),
        ) from exc
    return Plugins(
        manager=manager,
        builders=_fill(manager, dists, "immutable_sdk_add_builders", Registry("builder")),
        strategies=_fill(manager, dists, "immutable_sdk_add_strategies", Registry("strategy")),
        health_checks=_fill(
            manager, dists, "immutable_sdk_add_health_checks", Registry("health check")
        ),
        distributions=dists,
        notifiers=_fill(manager, dists, "immutable_sdk_add_notifiers", Registry("notifier")),
        analysis_providers=_fill(
            manager,
            dists,
            "immutable_sdk_add_analysis_providers",
            Registry("analysis provider"),
        ),
    )
