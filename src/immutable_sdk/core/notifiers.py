"""The spec's ``notifiers``: created from their plugins' factories, hooked in while an engine runs.

A notifier is a plugin object made for one spec entry; its ``@hookimpl`` methods (the notify
hooks) are registered with the engine's plugin manager under a name of their own, and taken off
again when the engine closes, after the notifier's ``close()`` delivered what was pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ..errors import PluginError
from ..plugin import Notifier
from ..plugins import Plugins
from ..spec.model import PluginConfig


@dataclass
class ActiveNotifiers:
    """The notifiers of one engine; ``close`` flushes and unregisters them (once)."""

    plugins: Plugins
    registered: list[tuple[str, Notifier]] = field(default_factory=list)

    def close(self) -> None:
        registered, self.registered = self.registered, []
        for name, notifier in registered:
            self.plugins.manager.unregister(name=name)
            close = getattr(notifier, "close", None)
            if callable(close):
                close()


def start_notifiers(configs: Sequence[PluginConfig], plugins: Plugins) -> ActiveNotifiers:
    """Create a notifier per spec entry and register its hookimpls with the plugin manager."""
    active = ActiveNotifiers(plugins)
    try:
        for index, config in enumerate(configs):
            entry = plugins.notifiers.get(config.type)
            notifier = entry.create(config.config, where=f" ({config.location})")
            name = f"notifier-{index}-{config.type}-{id(notifier):x}"
            try:
                plugins.manager.register(notifier, name=name)
            except (ValueError, pluggy.PluginValidationError) as exc:
                _close_quietly(notifier)
                raise PluginError(
                    entry.plugin,
                    f"notifier {config.type!r} cannot be registered: {exc}",
                    distribution=entry.distribution,
                ) from exc
            active.registered.append((name, notifier))
    except BaseException:
        active.close()
        raise
    return active


def _close_quietly(notifier: Any) -> None:
    close = getattr(notifier, "close", None)
    if callable(close):
        close()
