"""Which ``Ticker`` a worker runs: the SDK's reconcile tick, or one named ``module:factory``.

A factory is called with a ``TickContext`` and returns a ``Ticker``: teams that tick their
own way (and the orchestrator's tests, with a scripted tick) name theirs with ``--tick``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from ...errors import UsageError
from ...spec.model import Spec
from .tick import Ticker


@dataclass(frozen=True)
class TickContext:
    """What a tick factory gets: the worker's spec and how it reaches AWS."""

    spec: Spec
    files: tuple[str, ...]
    connection: Mapping[str, Any] = field(default_factory=dict)  # Connection.open's options
    # the lease of the fleet locks a tick holds (``worker --lease``): how long a fleet whose
    # worker died mid-tick stays locked before another worker's tick takes it over
    lease: float = 60.0


def load_factory(name: str) -> Callable[[TickContext], Ticker]:
    """``package.module:callable`` -> the callable (a clear error when it is not there)."""
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise UsageError(f"--tick: expected MODULE:FACTORY, got {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--tick {name}: cannot import {module_name!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UsageError(f"--tick {name}: {module_name} has no callable {attr!r}")
    return cast(Callable[[TickContext], Ticker], factory)


def reconcile_tick(context: TickContext) -> Ticker:
    """The SDK's tick: ``Engine.reconcile`` of the unit, an engine per tick."""
    from ..engine import Engine
    from .reconcile_tick import Reconciler, ReconcileTick

    @contextmanager
    def open_engine() -> Iterator[Reconciler]:
        engine = Engine(context.spec, lease=context.lease, **dict(context.connection))
        try:
            yield cast(Reconciler, engine)
        finally:
            engine.close()

    opener: Callable[[], AbstractContextManager[Reconciler]] = open_engine
    return ReconcileTick(opener, spec_digests=unit_spec_digests(context.spec))


def unit_spec_digests(spec: Spec) -> dict[str, str]:
    """Per unit key, the digest ``execution_input`` puts in a Tick (``planfile``'s spec digest)."""
    from ..planfile import spec_digest

    return {key: spec_digest(spec, fleet) for key, fleet, _region in spec.units()}
