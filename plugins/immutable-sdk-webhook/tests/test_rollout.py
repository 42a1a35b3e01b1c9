"""The webhook notifier in real rollouts on the emulator, installed through its entry point."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Reply
from immutable_sdk_webhook.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from immutable_sdk_webhook.notifier import WebhookNotifier

from immutable_sdk import PluginError, SpecError, load_spec
from immutable_sdk.plugins import load_plugins
from immutable_sdk.testing import AMI_V1, AMI_V2, SandboxAccount, sample_spec


def webhook(url: str, **settings: Any) -> str:
    extra = "".join(f", {k}: {v}" for k, v in settings.items())
    return f"{{type: webhook, url: '{url}'{extra}}}"


def test_the_entry_point_registers_the_notifier() -> None:
    plugins = load_plugins()  # autoload: this distribution's tests turn it on
    entry = plugins.notifiers.get("webhook")
    assert entry.distribution == "immutable-sdk-webhook 0.2.0"
    assert entry.schema["additionalProperties"] is False


def test_the_block_is_validated_with_locations(spec_writer: Any) -> None:
    path = spec_writer(
        sample_spec(notifiers=["{type: webhook, url: 'ftp://x', timeout: soon, colour: red}"])
    )
    with pytest.raises(SpecError) as info:
        load_spec([path], environ={"IMAGE_ID": AMI_V1})
    text = str(info.value)
    assert "notifiers[0].url: expected an http:// or https:// URL, got 'ftp://x'" in text
    assert "notifiers[0].timeout: expected a duration" in text
    assert "notifiers[0].colour: unknown key" in text


def test_the_url_is_given_once(spec_writer: Any) -> None:
    both = "{type: webhook, url: 'http://x/', url_env: HOOK_URL}"
    path = spec_writer(sample_spec(notifiers=["{type: webhook}", both]))
    with pytest.raises(SpecError) as info:
        load_spec([path], environ={"IMAGE_ID": AMI_V1})
    text = str(info.value)
    assert "notifiers[0]: missing required key 'url'" in text
    assert "notifiers[1].url_env: expected url or url_env, not both" in text


def test_an_unset_secret_variable_stops_the_engine_before_anything_runs(
    sandbox_account: SandboxAccount, spec_writer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    path = spec_writer(
        sample_spec(notifiers=[webhook("http://127.0.0.1:9/", secret_env="HOOK_SECRET")])
    )
    with pytest.raises(PluginError, match="secret_env names HOOK_SECRET, which is not set"):
        sandbox_account.engine(path, image=AMI_V1)


def test_every_event_of_a_rollout_arrives_in_order_and_signed(
    run_rollout: Any, spec_writer: Any, endpoint: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "hunter2")
    server = endpoint()
    path = spec_writer(
        sample_spec(desired=2, notifiers=[webhook(server.url, secret_env="HOOK_SECRET")])
    )
    run_rollout(path, image=AMI_V1)
    server.received.clear()
    run = run_rollout(path, image=AMI_V2)  # closing the engine flushed the queue
    assert run.result.ok, run.result.to_dict()

    bodies = [json.loads(r.body) for r in server.received]
    assert [b["sequence"] for b in bodies] == list(range(len(bodies)))
    expected = ["rollout_started"]
    for _ in run.steps:
        expected += ["step_started", "step_finished"]
    expected.append("rollout_finished")
    assert [b["event"] for b in bodies] == expected
    assert [b["step"] for b in bodies if b["event"] == "step_started"] == run.steps
    web = run.fleet()
    assert {b["rollout"]["id"] for b in bodies} == {web.rollout}
    assert bodies[0]["rollout"]["from_release"] == web.from_release
    assert bodies[-1]["outcome"] == "promoted"
    # each event names its journaled transition, also in the Idempotency-Key header
    ids = [f"{web.rollout}/-1/rollout_started"]
    for index in range(len(run.steps)):
        ids += [f"{web.rollout}/{index}/started", f"{web.rollout}/{index}/finished"]
    ids.append(f"{web.rollout}/-1/rollout_finished")
    assert [b["event_id"] for b in bodies] == ids
    assert [r.headers["Idempotency-Key"] for r in server.received] == ids
    assert all(
        verify("hunter2", r.body, r.headers[SIGNATURE_HEADER], r.headers[TIMESTAMP_HEADER])
        for r in server.received
    )


def timed_rollouts(
    account: SandboxAccount, spec: Path, notified: Path
) -> tuple[float, float, float, WebhookNotifier]:
    """Create the fleet, replace it without and then with the notifier; seconds of each."""
    account.run(spec, image=AMI_V1)
    with account.engine(spec, image=AMI_V2) as engine:
        start = time.monotonic()
        assert engine.apply().ok
        baseline = time.monotonic() - start
    engine = account.engine(notified, image=AMI_V1)
    (notifier,) = [
        p for p in engine.plugins.manager.get_plugins() if isinstance(p, WebhookNotifier)
    ]
    start = time.monotonic()
    assert engine.apply().ok
    notified_took = time.monotonic() - start
    start = time.monotonic()
    engine.close()
    return baseline, notified_took, time.monotonic() - start, notifier


@pytest.mark.parametrize("trouble", ["refused", "slow", "dribbling"])
def test_a_broken_endpoint_neither_fails_nor_slows_a_rollout(
    sandbox_account: SandboxAccount, spec_writer: Any, endpoint: Any, dead_url: str, trouble: str
) -> None:
    # Synchronous delivery would cost (1 + retries) * timeout = 1.2 s per event, 20+ events:
    # over 24 s. The bound leaves room for a loaded machine, not for any of that.
    replies = {"slow": Reply(200, 5.0), "dribbling": Reply(dribble=1.0, dribbled="head")}
    url = dead_url if trouble == "refused" else endpoint(lambda n: replies[trouble]).url
    settings = {"timeout": "0.4s", "retries": 2, "backoff": "0.1s", "flush_timeout": "1s"}
    spec = spec_writer(sample_spec(desired=2), name="plain.yaml")
    notified = spec_writer(sample_spec(desired=2, notifiers=[webhook(url, **settings)]))
    baseline, took, closing, notifier = timed_rollouts(sandbox_account, spec, notified)
    assert took < baseline + 2.0, (baseline, took)
    assert closing < 1.5, closing
    stats = notifier.stats
    assert stats.delivered == 0 and stats.events >= 10
    assert stats.lost_total == stats.events, stats  # every one of them counted
