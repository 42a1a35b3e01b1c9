"""Specs that cannot work, found statically: from the spec and the strategies' steps alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from immutable_sdk.core.preview.checks import analysis_checks, static_checks
from immutable_sdk.errors import SpecError
from immutable_sdk.lifecycle import Analyze, ShiftTraffic
from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.load import load_spec
from immutable_sdk.testing import AMI_V1, sample_spec

ANALYSIS = (
    "{{analysis: {{type: cloudwatch-metrics, window: 5m, min_samples: {n}, "
    "metrics: [{{name: errors, preset: 5xx-rate, max_ratio: 2}}]}}}}"
)


def checks(tmp_path: Path, text: str, rate: float | None = None) -> list[str]:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    plugins = load_plugins()
    spec = load_spec([path], plugins=plugins, environ={"IMAGE_ID": AMI_V1})
    return [str(f) for f in static_checks(spec, plugins, rate)]


def test_a_sound_spec_has_no_finding(tmp_path: Path) -> None:
    assert checks(tmp_path, sample_spec(desired=2)) == []
    canary = f"{{type: canary, steps: [{{weight: 10, bake: 1m}}, {ANALYSIS.format(n=100)}]}}"
    assert checks(tmp_path, sample_spec(strategy=canary, traffic=True), rate=20) == []


def test_min_healthy_unreachable_within_max(tmp_path: Path) -> None:
    text = sample_spec(desired=4, strategy="{type: rolling, batch_size: 2, min_healthy: 100%}")
    text = text.replace("max: 8", "max: 5")
    (finding,) = checks(tmp_path, text)
    assert finding == (
        "web: min_healthy 100% (4 of desired 4) is unreachable within capacity.max 5: "
        "replacing instances while keeping it needs 6 at once; raise max to 6, or lower "
        "min_healthy or max_surge (static check)"
    )
    lower = text.replace("min_healthy: 100%", "min_healthy: 50%, max_surge: 0")
    assert checks(tmp_path, lower) == []


def test_a_strategy_that_refuses_the_change_is_refused_before_any_rehearsal(
    tmp_path: Path,
) -> None:
    """Sizes that leave no room to replace an instance are refused by validation itself
    (the rolling strategy's own check), before a rehearsal would find them."""
    text = sample_spec(desired=2, strategy="{type: rolling, min_healthy: 100%, max_surge: 0}")
    with pytest.raises(SpecError, match="leaves no room to replace an instance"):
        checks(tmp_path, text)


def test_an_analysis_without_traffic_on_both_slots_is_refused_by_validation(
    tmp_path: Path,
) -> None:
    """The canary strategy's own validation refuses an analysis before any weight, or at 100%."""
    for steps in (
        f"[{ANALYSIS.format(n=100)}, {{weight: 50}}]",
        f"[{{weight: 100}}, {ANALYSIS.format(n=1)}]",
    ):
        text = sample_spec(strategy=f"{{type: canary, steps: {steps}}}", traffic=True)
        with pytest.raises(SpecError, match="needs a weight step between 0 and 100 before it"):
            checks(tmp_path, text)


def test_any_strategy_judged_without_traffic_never_reaches_min_samples() -> None:
    """A strategy validation does not know (a plugin's) is checked on its steps."""
    config = {
        "type": "cloudwatch-metrics",
        "window": "5m",
        "min_samples": 50,
        "metrics": [{"name": "errors", "preset": "5xx-rate", "max_ratio": 2}],
    }
    steps = [ShiftTraffic({"blue": 100, "green": 0}), Analyze(config)]
    (finding,) = analysis_checks("web", list(steps), "green", None)
    assert finding.message == (
        "step 2 (analysis): metric 'errors' can never reach min_samples 50: "
        "the canary has 0% of the traffic when it is judged"
    )
    steps = [ShiftTraffic({"blue": 0, "green": 100}), Analyze(config)]
    (finding,) = analysis_checks("web", list(steps), "green", None)
    assert "the baseline has 0% of the traffic" in finding.message


def test_too_little_traffic_for_min_samples_at_the_expected_rate(tmp_path: Path) -> None:
    canary = f"{{type: canary, steps: [{{weight: 5}}, {ANALYSIS.format(n=500)}]}}"
    text = sample_spec(strategy=canary, traffic=True)
    (finding,) = checks(tmp_path, text, rate=10)
    assert "at 10 requests/s the canary's 5% gives 150 requests in the 300s window" in finding
    assert checks(tmp_path, text, rate=40) == []  # 600 requests: enough
    assert checks(tmp_path, text) == []  # no rate given: only zero traffic is certain


def test_waves_and_depends_on_that_deadlock_are_refused_by_validation(tmp_path: Path) -> None:
    text = sample_spec(desired=2).replace(
        "  web:\n    image: app", "  web:\n    depends_on: [api]\n    image: app"
    )
    text += (
        "  api:\n    image: app\n    instance_type: t3.micro\n    subnets: [shop-a]\n"
        "    security_groups: [shop-web]\n    capacity: {min: 1, desired: 1, max: 2}\n"
        "    strategy: {type: rolling}\n    health: {checks: [{type: ec2}]}\n"
        "waves:\n  - {name: first, fleets: [web]}\n  - {name: second, fleets: ['*']}\n"
    )
    with pytest.raises(SpecError, match="api"):
        checks(tmp_path, text)


def test_a_managed_fleet_is_checked_at_the_max_its_policies_may_scale_it_to(
    tmp_path: Path,
) -> None:
    """``desired: managed`` starts a rollout from whatever the scaling policies set, up to
    max: at max a surge has no room, whatever min (the spec's desired) allows."""
    text = sample_spec(desired=2, strategy="{type: rolling, batch_size: 1, min_healthy: 100%}")
    text = text.replace("{min: 2, desired: 2, max: 4}", "{min: 2, desired: managed, max: 4}")
    (finding,) = checks(tmp_path, text)
    assert finding == (
        "web: min_healthy 100% (4 of desired 4 (scaling policies may set it up to max)) is "
        "unreachable within capacity.max 4: replacing instances while keeping it needs 5 at "
        "once; lower min_healthy or max_surge (static check)"
    )
    in_place = text.replace("min_healthy: 100%", "min_healthy: 50%, max_surge: 0")
    assert checks(tmp_path, in_place) == []
    # the same sizes with a fixed desired capacity leave room to surge
    fixed = text.replace("desired: managed", "desired: 2")
    assert checks(tmp_path, fixed) == []
