"""``linear`` in real rollouts on the embedded emulator, found through its entry point."""

from __future__ import annotations

from typing import Any

import pytest

from immutable_sdk.plugin import hookimpl
from immutable_sdk.testing import AMI_V1, AMI_V2, RolloutRun, SandboxAccount, sample_spec

# Traffic slots (the engine executing Provision and ShiftTraffic steps on two groups behind
# weighted records) are a capability of the SDK, newer than the step vocabulary. Without it the
# engine hands the strategy no slots, and the strategy says so: the test is then skipped.
NO_SLOTS = "'linear' shifts traffic between slots; give the fleet traffic slots"


def require_slots(run: RolloutRun) -> None:
    if not run.result.ok and NO_SLOTS in (run.fleet().error or ""):
        pytest.skip("this immutable-sdk cannot execute ShiftTraffic steps (no traffic slots)")


CHECKS = ("{type: ec2}", "{type: cloudwatch-alarm, alarms: [shop-5xx]}")
STRATEGY = "{type: linear, percent: 25, interval: 1m}"


def weights(account: SandboxAccount) -> list[int]:
    route53 = account.client("route53")
    (zone,) = route53.list_hosted_zones_by_name(DNSName="shop.test.")["HostedZones"][:1]
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    return sorted(r["Weight"] for r in records if "Weight" in r)


def test_traffic_moves_a_quarter_a_minute_and_the_old_slot_retires(
    sandbox_account: SandboxAccount, spec_writer: Any
) -> None:
    spec = spec_writer(sample_spec(traffic=True, desired=2, strategy=STRATEGY, checks=CHECKS))
    first = sandbox_account.run(spec, image=AMI_V1)
    require_slots(first)
    assert first.result.ok, first.result.to_dict()
    start = sandbox_account.clock.now()

    second = sandbox_account.run(spec, image=AMI_V2)
    assert second.result.ok, second.result.to_dict()
    kinds = [s["kind"] for s in second.steps]
    assert kinds == ["provision", "gate"] + ["shift", "bake"] * 3 + ["shift", "retire"]
    target = second.steps[0]["slot"]
    assert [s["weights"][target] for s in second.steps if s["kind"] == "shift"] == [
        25,
        50,
        75,
        100,
    ]
    assert sandbox_account.clock.now() - start >= 3 * 60  # three bakes of a minute
    assert weights(sandbox_account) == [0, 100]
    assert sandbox_account.running(AMI_V1) == []
    assert len(sandbox_account.running(AMI_V2)) == 2


def test_an_alarm_during_an_increment_puts_all_traffic_back(
    sandbox_account: SandboxAccount, spec_writer: Any
) -> None:
    cloudwatch = sandbox_account.client("cloudwatch")

    class AlarmAtHalf:
        """Sets the alarm when the second increment (50%) starts baking."""

        bakes = 0

        @hookimpl
        def immutable_sdk_step_started(self, rollout: Any, step: Any) -> None:
            if step.kind == "bake":
                self.bakes += 1
                if self.bakes == 2:
                    cloudwatch.set_alarm_state(
                        AlarmName="shop-5xx", StateValue="ALARM", StateReason="5xx above 1%"
                    )

    spec = spec_writer(sample_spec(traffic=True, desired=2, strategy=STRATEGY, checks=CHECKS))
    first = sandbox_account.run(spec, image=AMI_V1)
    require_slots(first)
    assert first.result.ok, first.result.to_dict()
    run = sandbox_account.run(spec, image=AMI_V2, plugins=[AlarmAtHalf()])
    web = run.fleet()
    assert web.outcome == "rolled_back", run.result.to_dict()
    assert "shop-5xx" in (web.error or "")
    shifts = [s["weights"] for s in run.steps if s["kind"] == "shift"]
    assert len(shifts) == 3  # 25%, 50%, then everything back on the previous slot
    source = next(slot for slot in shifts[0] if slot != run.steps[0]["slot"])
    assert shifts[-1][source] == 100
    assert weights(sandbox_account) == [0, 100]
    assert sandbox_account.running(AMI_V2) == []
    assert len(sandbox_account.running(AMI_V1)) == 2
