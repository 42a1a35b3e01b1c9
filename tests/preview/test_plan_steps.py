"""``plan --steps``: each changed fleet's steps and waits, its peak extra instances and a minimum
duration from the spec's waits and the fleet's past launch-to-healthy times."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from immutable_sdk.cli import main
from immutable_sdk.core.preview.schedule import launch_to_healthy, schedule
from immutable_sdk.lifecycle import Gate, Launch, Retire
from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.load import load_spec
from immutable_sdk.state.base import RolloutRecord
from immutable_sdk.state.sqlite import SqliteStateStore
from immutable_sdk.testing import AMI_V1, AMI_V2, sample_spec
from immutable_sdk.testing.testbed import SandboxAccount

CANARY = (
    "{type: canary, steps: [{weight: 10, bake: 5m}, {pause: manual}, {weight: 50, bake: 10m}], "
    "keep_previous: 1h}"
)


def fleet_of(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return load_spec([path], environ={"IMAGE_ID": AMI_V1}).fleets["web"]


def journal_with_launches(path: Path, seconds: list[float]) -> SqliteStateStore:
    """A fleet's past rollout whose launches took ``seconds`` each to pass their gate."""
    state = SqliteStateStore(path, "shop")
    steps = [s for _ in seconds for s in (Launch(1), Gate(), Retire(1))]
    state.start_rollout(
        RolloutRecord(
            "ro-1",
            "web",
            "rolling",
            "r-a",
            "r-b",
            "promoted",
            1000.0,
            steps=tuple(s.to_dict() for s in steps),
        )
    )
    t = 1000.0
    for i, took in enumerate(seconds):
        for j, (step, length) in enumerate(
            ((Launch(1), 5.0), (Gate(), took - 5.0), (Retire(1), 30.0))
        ):
            index = 3 * i + j
            state.append_journal("ro-1", index, "started", t, step.to_dict())
            t += length
            state.append_journal("ro-1", index, "finished", t, {})
    return state


def test_launch_to_healthy_is_read_from_past_rollouts(tmp_path: Path) -> None:
    state = journal_with_launches(tmp_path / "s.db", [80.0, 100.0, 200.0])
    assert launch_to_healthy(state, "web") == [80.0, 100.0, 200.0]
    assert launch_to_healthy(state, "api") == []


def test_a_rolling_replace_surges_and_its_launches_take_the_median(tmp_path: Path) -> None:
    fleet = fleet_of(
        tmp_path,
        sample_spec(desired=4, strategy="{type: rolling, batch_size: 2, bake: 3m, pause: 1m}"),
    )
    state = journal_with_launches(tmp_path / "s.db", [80.0, 100.0, 200.0])
    plan = schedule(load_plugins(), fleet, "web", "replace", 4, state)
    assert [s.kind for s in plan.steps] == [
        "launch",
        "gate",
        "bake",
        "retire",
        "pause",
        "launch",
        "gate",
        "bake",
        "retire",
    ]
    assert (plan.peak_instances, plan.peak_extra) == (6, 2)
    assert plan.spec_waits == 2 * 180 + 60
    assert (plan.launch_to_healthy, plan.samples) == (100.0, 3)
    assert plan.minimum == 2 * 180 + 60 + 2 * 100
    assert any("deregistration" in n for n in plan.notes)


def test_a_canary_needs_a_second_slot_and_waits_out_ttls_and_keep_previous(
    tmp_path: Path,
) -> None:
    fleet = fleet_of(tmp_path, sample_spec(desired=4, strategy=CANARY, traffic=True))
    plan = schedule(load_plugins(), fleet, "web", "replace", 4, None)
    waits = {s.text: (s.wait, s.why) for s in plan.steps}
    assert waits["bake 5m"] == (360.0, "bake 300s + TTL 60s")
    assert waits["bake 10m"] == (660.0, "bake 600s + TTL 60s")
    assert waits["bake 1h"] == (3660.0, "bake 3600s + TTL 60s")
    assert [s.operator for s in plan.steps].count(True) == 1
    assert (plan.peak_instances, plan.peak_extra) == (8, 4)  # a whole second slot
    assert plan.minimum == 360 + 660 + 3660 and plan.launch_to_healthy is None
    assert any("pause(s) until an operator" in n for n in plan.notes)
    assert any("launch(es) of unknown length" in n for n in plan.notes)


def test_plan_steps_on_the_cli_in_text_and_json(
    sandbox_account: SandboxAccount, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        sample_spec(desired=2, strategy="{type: rolling, batch_size: 1, bake: 2m}")
        + "state: {backend: local, path: state.db}\n"
    )
    assert sandbox_account.run(spec, image=AMI_V1).result.ok
    runner = CliRunner()
    base = ["--endpoint-url", sandbox_account.url]
    env = {"IMAGE_ID": AMI_V2}
    out = runner.invoke(main, [*base, "plan", "-f", str(spec), "--steps", "-o", "json"], env=env)
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["items"][0]["action"] == "replace"
    (web,) = data["schedule"]["fleets"]
    assert web["unit"] == "web" and web["peak_extra"] == 1
    assert web["spec_waits"] == 2 * 120 and web["samples"] == 1  # the create's launch
    assert data["schedule"]["minimum"] == web["minimum"]
    text = runner.invoke(main, [*base, "plan", "-f", str(spec), "--steps"], env=env)
    assert text.exit_code == 0, text.output
    assert "web: replace (rolling)" in text.stdout
    assert "peak: 3 instance(s) at once, 1 above desired 2 (surge)" in text.stdout
    assert "apply: at least 4m" in text.stdout
