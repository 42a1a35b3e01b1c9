"""The deployment safety invariants (docs/safety.md), checked under random rules and faults."""

from __future__ import annotations

import pytest

from .profiles import CI
from .rules import Bench, run_machine

pytestmark = pytest.mark.slow


def test_the_safety_invariants_hold_under_random_rules(bench: Bench) -> None:
    run_machine(bench, CI)
    assert bench.stats.examples >= CI.max_examples
    assert bench.stats.checks["1"] and bench.stats.checks["4"]
