"""Hypothesis settings profiles for the safety machine.

``ci``: small and deterministic (``derandomize``, no example database), within the suite's
time budget; it does not shrink (a failure prints the sequence as generated, at most 8 rules:
hypothesis would spend minutes shrinking examples this slow), the soak does.
``soak``: many examples, seeded by the soak command, for minutes to hours.
Both print the ``@reproduce_failure`` blob of a failing example.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

COMMON = dict(
    deadline=None,  # an apply on the emulator takes a second or more
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=True,
    database=None,
)

CI = settings(
    **COMMON,  # type: ignore[arg-type]
    derandomize=True,
    max_examples=8,
    stateful_step_count=8,
    phases=[Phase.explicit, Phase.generate],
)


def soak(examples: int = 10_000, steps: int = 10, *, shrink: bool = True) -> settings:
    """Many examples of longer sequences; the soak command stops them by time."""
    phases = [Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])]
    return settings(
        **COMMON,  # type: ignore[arg-type]
        max_examples=examples,
        stateful_step_count=steps,
        phases=phases,
    )
