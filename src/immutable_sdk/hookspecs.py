"""The plugin contract: every hook a plugin may implement.

Three kinds of hook:

* register hooks (``immutable_sdk_add_*``) receive a registry and call ``registry.add(...)``;
* decide hooks (``firstresult``) return a value to decide, or None to pass to the next plugin;
* notify hooks (lifecycle events) are called for every plugin; their return values are ignored.

docs/plugins.md shows each hook's exact signature; a test keeps the two in agreement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .lifecycle import Step
    from .plugin import (
        AnalysisProviderFactory,
        BuilderFactory,
        HealthCheckFactory,
        NotifierFactory,
        Registry,
        RolloutInfo,
        StrategyFactory,
    )
    from .results import Plan

hookspec = pluggy.HookspecMarker("immutable_sdk")


@hookspec
def immutable_sdk_add_builders(registry: Registry[BuilderFactory]) -> None:
    """Register image builders.

    Called once when the plugin manager starts. ``registry.add(name, factory, schema=...,
    references=...)``: ``name`` is what an image's ``builder:`` key selects, ``factory(config)``
    returns a Builder for that image's block, ``schema`` is the JSON Schema of the image's whole
    block, ``references(config)`` the AWS resources a block names (``plugin.References``: the
    sandbox seeds them). Every register hook's ``registry.add`` takes the same arguments.
    """


@hookspec
def immutable_sdk_add_strategies(registry: Registry[StrategyFactory]) -> None:
    """Register deployment strategies.

    Called once when the plugin manager starts. ``name`` is what a fleet's ``strategy.type``
    selects; ``factory(config)`` returns a Strategy; ``schema`` validates the strategy block.
    """


@hookspec
def immutable_sdk_add_health_checks(registry: Registry[HealthCheckFactory]) -> None:
    """Register health checks.

    Called once when the plugin manager starts. ``name`` is what an entry of a fleet's
    ``health.checks`` selects with ``type:``; ``factory(config)`` returns a HealthCheck for one
    gate or bake; ``schema`` validates the check's block.
    """


@hookspec
def immutable_sdk_add_notifiers(registry: Registry[NotifierFactory]) -> None:
    """Register notifiers.

    Called once when the plugin manager starts. ``name`` is what an entry of the spec's
    top-level ``notifiers`` list selects with ``type:``; ``factory(config)`` returns a Notifier:
    an object whose ``@hookimpl`` methods (the notify hooks below) the engine registers for as
    long as it runs, and whose ``close()`` it calls when it closes; ``schema`` validates the
    entry's block.
    """


@hookspec
def immutable_sdk_add_analysis_providers(registry: Registry[AnalysisProviderFactory]) -> None:
    """Register canary analysis providers.

    Called once when the plugin manager starts. ``name`` is what a canary step's
    ``analysis.type`` selects; ``factory(config)`` returns an AnalysisProvider for that block
    (one per step run); ``schema`` validates the block (``analysis_schema`` writes one).
    """


@hookspec(firstresult=True)
def immutable_sdk_check_plan(plan: Plan) -> str | None:
    """Decide whether a plan may be applied (a change freeze, a policy).

    Called by ``Engine.apply`` before anything changes, with the ``Plan`` about to run. Return a
    reason (a string) to refuse the plan, or None to let the next plugin decide. A refusal stops
    the apply with an error that quotes the reason; nothing is changed.
    """


@hookspec
def immutable_sdk_rollout_started(rollout: RolloutInfo, event_id: str) -> None:
    """Notify: a rollout (or a rollback, see ``rollout.rollback``) has begun.

    ``event_id`` (every notify hook has one): the transition's identity, the rollout id and
    its journal position (``{rollout}/{step index}/{transition}``). Each journaled transition
    is notified once, by the process that journaled it, whichever process that is; a receiver
    that gets an id twice (a retried delivery) can drop the second."""


@hookspec
def immutable_sdk_step_started(rollout: RolloutInfo, step: Step, event_id: str) -> None:
    """Notify: the engine is about to run ``step`` of ``rollout``."""


@hookspec
def immutable_sdk_step_finished(
    rollout: RolloutInfo, step: Step, outcome: str, event_id: str
) -> None:
    """Notify: ``step`` ended; ``outcome`` is ``ok`` or ``failed``."""


@hookspec
def immutable_sdk_traffic_shifted(
    rollout: RolloutInfo, before: Mapping[str, int], after: Mapping[str, int], event_id: str
) -> None:
    """Notify: traffic weights changed from ``before`` to ``after`` (slot name -> weight)."""


@hookspec
def immutable_sdk_rollback_started(rollout: RolloutInfo, reason: str, event_id: str) -> None:
    """Notify: ``rollout`` failed and is rolling back because of ``reason``."""


@hookspec
def immutable_sdk_rollout_finished(rollout: RolloutInfo, outcome: str, event_id: str) -> None:
    """Notify: the rollout ended; ``outcome`` is ``promoted``, ``rolled_back`` or ``failed``."""
