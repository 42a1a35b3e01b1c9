"""A canary judged on a real Prometheus: it fails on a PromQL metric and rolls back, and the
reason is in every output: the console of ``apply``, ``status``, ``status -o json``, the journal.

The rollout runs on the real clock (the CLI's): Prometheus holds data of real time only. The
analysis window is three seconds and the exporter's series exist before the rollout starts
(the session's fixture waits for them), so the whole second release takes a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.slots.conftest import AMI_V1, AMI_V2, SlotWorld, slot_spec

from immutable_sdk.plugin import RolloutInfo, Step, hookimpl

from .prometheus_server import Prometheus


@pytest.fixture
def slots(aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SlotWorld:
    return SlotWorld(aws, tmp_path, monkeypatch)


def canary(url: str, *, errors: str = "max_ratio: 2", latency_dry_run: bool = True) -> str:
    return (
        "{type: canary, steps: [{weight: 20}, {analysis: {type: prometheus, url: '" + url + "', "
        "window: 3s, interval: 1s, inconclusive: fail, metrics: ["
        "{name: errors, query: 'max(app_error_ratio{slot=\"{slot}\"})', "
        "samples_query: 'sum(app_requests_total{slot=\"{slot}\"})', min_samples: 100, "
        + errors
        + "}, "
        "{name: errors-tight, query: 'max(app_error_ratio{slot=\"{slot}\"})', max: 0.001, "
        f"dry_run: {'true' if latency_dry_run else 'false'}}}"
        "]}}, {weight: 100}]}"
    )


def cli(world: SlotWorld, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "immutable_sdk", *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "AWS_ENDPOINT_URL": world.url,
            "WEB_AMI": AMI_V2,
            "NO_COLOR": "1",
            "COLUMNS": "400",
        },
        cwd=world.tmp,
        timeout=180,
    )


def first_release(world: SlotWorld, strategy: str) -> None:
    world.write(
        slot_spec(strategy, desired=2, ttl=0, interval="1s", checks="        - {type: ec2}")
    )
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok


def test_a_canary_failing_on_a_prometheus_metric_rolls_back_and_says_why(
    slots: SlotWorld, prometheus: Prometheus
) -> None:
    first_release(slots, canary(prometheus.url))
    spec = str(slots.spec_path)

    applied = cli(slots, "apply", "-f", spec, "--yes")
    assert applied.returncode != 0, applied.stdout + applied.stderr
    console = applied.stdout + applied.stderr
    why = "errors: canary 0.25 > 2 x baseline 0.01 (1000 canary samples, 4000 baseline)"
    assert f"analysis failed: {why}" in console, console
    assert "analysis prometheus: fail" in console
    assert "errors-tight (dry run): fail: would fail, ignored: canary 0.25 > max 0.001" in console
    assert slots.weights() == {"blue": 100, "green": 0} and slots.slot("green") == {}

    status = cli(slots, "status", "-f", spec)
    assert status.returncode == 0, status.stderr
    shown_status = " ".join(status.stdout.split())
    reason = why.removeprefix("errors: ")
    assert "last analysis (ro-" in shown_status, status.stdout
    assert f"fail: errors: fail: {reason}" in shown_status, status.stdout

    shown = cli(slots, "status", "-f", spec, "-o", "json")
    (entry,) = json.loads(shown.stdout)["fleets"]
    analysis = entry["analysis"]
    assert analysis["provider"] == "prometheus" and analysis["verdict"] == "fail"
    errors, tight = analysis["metrics"]
    assert errors["reason"] == reason and errors["verdict"] == "fail"
    assert errors["summary"]["canary"]["value"] == pytest.approx(0.25)
    assert errors["summary"]["baseline"]["value"] == pytest.approx(0.01)
    assert errors["samples"] == {"canary": 1000, "baseline": 4000}
    assert errors["thresholds"] == {"max": None, "max_ratio": 2.0, "min_samples": 100}
    assert errors["summary"]["canary"]["points"] >= 1
    assert tight["dry_run"] is True and tight["verdict"] == "fail"

    with slots.engine(AMI_V2) as engine:
        (rollout,) = engine.state.rollouts("checkout", limit=1)
        journal = engine.state.journal(rollout.id)
    assert rollout.outcome == "rolled_back" and why in (rollout.error or "")
    notes = [e.data for e in journal if e.status == "note" and e.data.get("note") == "analysis"]
    assert notes and notes[-1]["verdict"] == "fail" and notes[-1]["metrics"][0]["reason"] == reason
    failed = [e.data for e in journal if e.status == "failed"]
    assert any(why in str(d.get("error")) for d in failed)
    assert 3 <= notes[-1]["window"]["end"] - notes[-1]["window"]["start"] <= 3.001


class Analyses:
    """Counts the analysis steps that started (the rollout's engine runs in this process)."""

    def __init__(self) -> None:
        self.started = 0

    @hookimpl
    def immutable_sdk_step_started(self, rollout: RolloutInfo, step: Step) -> None:
        self.started += step.kind == "analysis"


def test_a_failing_dry_run_metric_never_fails_the_canary(
    slots: SlotWorld, prometheus: Prometheus
) -> None:
    from immutable_sdk.clock import RealClock

    # errors passes (25% is under its max); errors-tight would fail, but only in a dry run.
    first_release(slots, canary(prometheus.url, errors="max: 0.5"))
    analyses = Analyses()
    slots.extra_plugins.append(analyses)
    slots.clock = RealClock()
    with slots.engine(AMI_V2) as engine:
        result = engine.apply()
        journal = engine.state.journal(result.fleet("checkout").rollout)
    checkout = result.fleet("checkout")
    assert checkout.outcome == "promoted", checkout
    assert analyses.started == 1 and slots.weights() == {"blue": 0, "green": 100}
    final = [e.data for e in journal if e.status == "finished" and "verdict" in e.data][-1]
    assert final["verdict"] == "pass"
    tight: dict[str, Any] = final["metrics"][1]
    assert (tight["verdict"], tight["dry_run"]) == ("fail", True)
    assert tight["reason"].startswith("would fail, ignored: canary 0.25 > max 0.001")
