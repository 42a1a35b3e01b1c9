"""Which checks gate a return to a known-good release (gate.restoring)."""

from __future__ import annotations

from immutable_sdk.core.rollout.gate import INSTANCE_CHECKS, restoring
from immutable_sdk.spec.model import HealthSpec, PluginConfig


def test_only_instance_health_with_the_specs_settings_or_defaults() -> None:
    elb = PluginConfig("elb", {"type": "elb", "unhealthy_threshold": 5})
    health = HealthSpec(
        timeout=120.0,
        interval=3.0,
        grace=30.0,
        checks=(
            PluginConfig("cloudwatch-alarm", {"type": "cloudwatch-alarm", "alarms": ["5xx"]}),
            elb,
            PluginConfig("http", {"type": "http", "url": "http://127.0.0.1:1/{instance_id}"}),
            PluginConfig("my-canary-score", {"type": "my-canary-score"}),
        ),
    )
    back = restoring(health)
    assert [c.type for c in back.checks] == ["elb", "ec2"]
    assert back.checks[0] is elb  # the spec's own settings
    assert dict(back.checks[1].config) == {"type": "ec2"}
    assert (back.timeout, back.interval, back.grace) == (120.0, 3.0, 30.0)


def test_a_fleet_with_no_instance_check_still_gates_its_rollback_on_both() -> None:
    health = HealthSpec(checks=(PluginConfig("http", {"type": "http", "url": "x"}),))
    assert tuple(c.type for c in restoring(health).checks) == INSTANCE_CHECKS
    assert tuple(c.type for c in restoring(HealthSpec()).checks) == INSTANCE_CHECKS
