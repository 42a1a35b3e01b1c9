"""The fixtures offered to plugin authors work as their documentation says."""

from __future__ import annotations

from typing import Any

from immutable_sdk.plugin import TAG_RELEASE, hookimpl
from immutable_sdk.testing import AMI_V1, AMI_V2, SandboxAccount, sample_spec


def test_run_rollout_creates_then_replaces_a_fleet(run_rollout: Any, spec_writer: Any) -> None:
    spec = spec_writer(sample_spec(desired=2))
    first = run_rollout(spec, image=AMI_V1)
    assert first.result.ok, first.result.to_dict()
    assert first.fleet().outcome == "promoted"
    assert [s["kind"] for s in first.steps] == ["launch", "gate"]

    second = run_rollout(spec, image=AMI_V2)
    assert second.result.ok, second.result.to_dict()
    web = second.fleet("web")
    assert web.from_release == first.fleet().to_release
    assert [s["kind"] for s in second.steps] == ["launch", "gate", "retire"] * 2
    assert second.events[0].kind != "step.started" and second.of_kind("rollout.finished")
    assert {e.rollout for e in second.events if e.rollout} == {web.rollout}


def test_the_account_shows_what_ran(
    sandbox_account: SandboxAccount, spec_writer: Any, virtual_clock: Any
) -> None:
    heard: list[str] = []

    class Listener:
        @hookimpl
        def immutable_sdk_rollout_finished(self, rollout: Any, outcome: str) -> None:
            heard.append(outcome)

    sandbox_account.plugins.append(Listener())
    spec = spec_writer(sample_spec(desired=3, strategy="{type: rolling, batch_size: 1, pause: 1h}"))
    sandbox_account.run(spec, image=AMI_V1)
    start = virtual_clock.now()
    run = sandbox_account.run(spec, image=AMI_V2)
    assert heard == ["promoted", "promoted"]
    assert virtual_clock.now() - start >= 2 * 3600  # two pauses of an hour, in virtual time
    assert sorted(sandbox_account.running(AMI_V2)) == sorted(run.fleet().launched)
    assert sandbox_account.running(AMI_V1) == []
    group = sandbox_account.group("shop-web")
    tags = {t["Key"]: t["Value"] for t in group["Tags"]}
    assert tags[TAG_RELEASE] == run.fleet().to_release


def test_sample_spec_with_traffic_slots_and_notifiers_is_valid(spec_writer: Any) -> None:
    from immutable_sdk.plugins import load_plugins
    from immutable_sdk.spec.load import load_spec

    text = sample_spec(traffic=True, notifiers=["{type: recorder}"])
    assert "notifiers:\n  - {type: recorder}\n" in text
    spec = load_spec(
        [spec_writer(sample_spec(traffic=True))],
        plugins=load_plugins(autoload=False),
        environ={"IMAGE_ID": AMI_V1},
    )
    traffic = spec.fleets["web"].traffic
    assert traffic is not None and set(traffic["slots"]) == {"blue", "green"}
