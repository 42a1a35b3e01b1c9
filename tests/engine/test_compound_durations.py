"""A compound duration (``1h30m``) written in a spec is the wait a rollout makes, end to end."""

from __future__ import annotations

from typing import Any

from immutable_sdk.testing import AMI_V1, AMI_V2, SandboxAccount, sample_spec


def test_a_pause_of_1h30m_waits_ninety_minutes_between_batches(
    sandbox_account: SandboxAccount, spec_writer: Any, virtual_clock: Any
) -> None:
    strategy = "{type: rolling, batch_size: 1, max_surge: 1, pause: 1h30m}"
    spec = spec_writer(sample_spec(desired=2, strategy=strategy))
    assert sandbox_account.run(spec, image=AMI_V1).result.ok
    start = virtual_clock.now()
    run = sandbox_account.run(spec, image=AMI_V2)
    assert run.result.ok, run.result.to_dict()
    pauses = [s for s in run.steps if s["kind"] == "pause"]
    assert pauses == [{"kind": "pause", "seconds": 5400.0, "manual": False}], run.steps
    assert 5400 <= virtual_clock.now() - start < 2 * 5400
