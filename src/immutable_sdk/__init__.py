"""immutable-sdk: immutable infrastructure on AWS.

The public API: ``load_spec``, ``Engine`` and every type its methods return (plans, results,
status, history, drift reports, rollout and release records, events), ``load_plugins`` (the
plugin manager, with plugins that are not installed added in code), the error classes and
``hookimpl``.
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
    from .core.drift.remediate import DriftReport, FleetFix
    from .core.engine import Engine
    from .lifecycle import Event
    from .plugins import Plugins, load_plugins
    from .results import (
        ApplyResult,
        FleetHistory,
        FleetResult,
        FleetStatus,
        Plan,
        PlanItem,
        ReconcileResult,
        UnitTick,
    )
    from .spec.load import load_spec
    from .spec.model import Spec
    from .state.base import ReleaseRecord, RolloutRecord

# What the public methods take and return, imported from their homes when first used.
_LAZY = {
    "load_spec": ("immutable_sdk.spec.load", "load_spec"),
    "Spec": ("immutable_sdk.spec.model", "Spec"),
    "Engine": ("immutable_sdk.core.engine", "Engine"),
    "ApplyResult": ("immutable_sdk.results", "ApplyResult"),
    "FleetResult": ("immutable_sdk.results", "FleetResult"),
    "FleetStatus": ("immutable_sdk.results", "FleetStatus"),
    "FleetHistory": ("immutable_sdk.results", "FleetHistory"),
    "Plan": ("immutable_sdk.results", "Plan"),
    "PlanItem": ("immutable_sdk.results", "PlanItem"),
    "ReconcileResult": ("immutable_sdk.results", "ReconcileResult"),
    "UnitTick": ("immutable_sdk.results", "UnitTick"),
    "Event": ("immutable_sdk.lifecycle", "Event"),
    "DriftReport": ("immutable_sdk.core.drift.remediate", "DriftReport"),
    "FleetFix": ("immutable_sdk.core.drift.remediate", "FleetFix"),
    "ReleaseRecord": ("immutable_sdk.state.base", "ReleaseRecord"),
    "RolloutRecord": ("immutable_sdk.state.base", "RolloutRecord"),
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
    "DriftReport",
    "Engine",
    "Event",
    "ExitCode",
    "FleetFix",
    "FleetHistory",
    "FleetResult",
    "FleetStatus",
    "GateFailed",
    "ImmutableSdkError",
    "Interrupted",
    "LockHeld",
    "LockLost",
    "Plan",
    "PlanItem",
    "PluginError",
    "Plugins",
    "ReconcileResult",
    "ReleaseRecord",
    "RolloutFailed",
    "RolloutRecord",
    "Spec",
    "SpecError",
    "StalePlan",
    "StateError",
    "UnitTick",
    "UsageError",
    "__version__",
    "hookimpl",
    "load_plugins",
    "load_spec",
]
