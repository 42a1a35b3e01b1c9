"""immutable-sdk: immutable infrastructure on AWS.

The public API: ``load_spec``, ``Engine`` and its results, ``load_plugins`` (the plugin manager,
with plugins that are not installed added in code), the error classes and ``hookimpl``.
Everything else is internal and may change (plugin authors use ``immutable_sdk.plugin``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    AwsError,
    BuildError,
    ExitCode,
    GateFailed,
    ImmutableSdkError,
    Interrupted,
    LockHeld,
    LockLost,
    PluginError,
    RolloutFailed,
    SpecError,
    StalePlan,
    StateError,
    UsageError,
)
from .plugin import hookimpl

if TYPE_CHECKING:
    from .core.engine import (
        ApplyResult,
        Engine,
        Plan,
        PlanItem,
    )
    from .plugins import Plugins, load_plugins
    from .spec.load import load_spec

_LAZY = {
    "load_spec": ("immutable_sdk.spec.load", "load_spec"),
    "Engine": ("immutable_sdk.core.engine", "Engine"),
    "ApplyResult": ("immutable_sdk.core.engine", "ApplyResult"),
    "Plan": ("immutable_sdk.core.engine", "Plan"),
    "PlanItem": ("immutable_sdk.core.engine", "PlanItem"),
    "load_plugins": ("immutable_sdk.plugins", "load_plugins"),
    "Plugins": ("immutable_sdk.plugins", "Plugins"),
}


def __getattr__(name: str) -> Any:
    # boto3 and friends load only when the engine is first used.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'immutable_sdk' has no attribute {name!r}")


__all__ = [
    "ApplyResult",
    "AwsError",
    "BuildError",
    "Engine",
    "ExitCode",
    "GateFailed",
    "ImmutableSdkError",
    "Interrupted",
    "LockHeld",
    "LockLost",
    "Plan",
    "PlanItem",
    "PluginError",
    "Plugins",
    "RolloutFailed",
    "SpecError",
    "StalePlan",
    "StateError",
    "UsageError",
    "__version__",
    "hookimpl",
    "load_plugins",
    "load_spec",
]
