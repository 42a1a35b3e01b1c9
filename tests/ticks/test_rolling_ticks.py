"""A rolling rollout with pauses and bakes, driven only by ``reconcile`` from fresh processes.

Release 1 is created and release 2 rolled out (batches of 2 of 4, a 5-minute pause between
batches, a 10-minute bake after each gate), tick by tick: each tick is a new process on a
virtual clock started at the ``next_at`` the previous tick returned. Every tick returns
within seconds; the waits happen between them, journaled as deadlines. The outcome is
``apply``'s: the same release everywhere, nothing orphaned, the state agreeing with AWS.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.engine.conftest import AMI_V1, AMI_V2
from tests.engine.crashkit import seed
from tests.engine.test_crash_kill import check_aws, check_state

from .tickkit import Ticker, waits

pytestmark = pytest.mark.slow

SPEC = """\
apiVersion: immutable-sdk/v1
name: {project}
region: us-east-1
state: {{backend: local, path: state.db}}
images:
  web:
    builder: ami
    id: {ami}
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {{min: 4, desired: 4, max: 8}}
    load_balancer: {{target_groups: [shop-web]}}
    strategy: {{type: rolling, batch_size: 2, min_healthy: 100%, pause: 5m, bake: 10m}}
    health:
      timeout: 5m
      interval: 4m
      checks:
        - {{type: ec2}}
        - {{type: elb}}
    rollback: {{automatic: true}}
"""

PAUSE, BAKE = 300.0, 600.0


def write(path: Path, project: str, ami: str) -> Path:
    path.write_text(SPEC.format(project=project, ami=ami))
    return path


def test_a_rolling_rollout_with_pauses_and_bakes_advances_tick_by_tick(
    aws: str, tmp_path: Path
) -> None:
    seed(aws, write(tmp_path / "seed.yaml", "t1", AMI_V1))
    here = tmp_path / "t1"
    here.mkdir()
    spec = write(here / "spec.yaml", "t1", AMI_V1)
    ticker = Ticker(aws, spec)

    created = ticker.until_settled("--yes")
    assert created.code == 0, created.data
    v1 = created.unit("web")["to_release"]
    assert "bake" in waits(ticker.ticks, "web")  # the new fleet baked, between ticks

    write(spec, "t1", AMI_V2)
    ticker.advance_to(None, at_least=60)
    held = ticker.tick()  # without --yes nothing starts: an operator must approve
    assert held.code == 11 and held.unit("web")["state"] == "waiting_for_operator", held.data
    first = len(ticker.ticks)
    began = ticker.now
    baking = ticker.tick("--yes")  # the first batch launched and gated: its bake begins
    assert (baking.code, baking.unit("web")["waiting_for"]) == (10, "bake"), baking.data
    shown = ticker.run("status", "-o", "json")
    (entry,) = json.loads(shown.stdout)["fleets"]
    waits_for = entry["rollout_in_progress"]["waits"]
    assert waits_for["for"] == "bake" and waits_for["until"] == waits_for["since"] + BAKE
    assert baking.next_at is not None
    ticker.advance_to(baking.next_at)
    done = ticker.until_settled("--yes")
    assert done.code == 0, done.data
    v2 = done.unit("web")["to_release"]
    assert v2 != v1
    seen = waits(ticker.ticks[first:], "web")
    # two batches: bake, pause, bake; each wait took ticks of its own
    assert seen.count("pause") >= 1 and seen.count("bake") >= 4, seen
    assert ticker.now - began >= 2 * BAKE + PAUSE
    rollouts = {t.unit("web")["rollout"] for t in ticker.ticks[first:] if t.unit("web")["rollout"]}
    assert len(rollouts) == 1, rollouts  # one rollout, continued, never restarted

    assert check_aws(aws, "t1", v2, AMI_V2, v1) == []
    assert check_state(here / "state.db", "t1") == []

    again = ticker.tick("--yes")  # converged: nothing to do
    assert again.code == 0 and again.unit("web")["state"] == "converged"


def test_apply_and_ticks_reach_the_same_fleet(aws: str, tmp_path: Path) -> None:
    """The same two releases by ``apply`` (one process, waits in it) end as the ticks do."""
    seed(aws, write(tmp_path / "seed.yaml", "t2", AMI_V1))
    here = tmp_path / "t2"
    here.mkdir()
    spec = write(here / "spec.yaml", "t2", AMI_V1)
    ticker = Ticker(aws, spec)
    first = ticker.run("apply", "--yes", "-o", "json")
    assert first.returncode == 0, first.stderr[-3000:]
    write(spec, "t2", AMI_V2)
    second = ticker.run("apply", "--yes", "-o", "json")
    assert second.returncode == 0, second.stderr[-3000:]
    fleets = [json.loads(r.stdout)["fleets"][0] for r in (first, second)]
    assert [f["outcome"] for f in fleets] == ["promoted", "promoted"]
    assert check_aws(aws, "t2", fleets[1]["to_release"], AMI_V2, fleets[0]["to_release"]) == []
    assert check_state(here / "state.db", "t2") == []


def test_reconcile_loop_ticks_until_converged_in_one_process(aws: str, tmp_path: Path) -> None:
    """``--loop`` sleeps (through the clock) until each next_at and ticks again."""
    seed(aws, write(tmp_path / "seed.yaml", "t3", AMI_V1))
    here = tmp_path / "t3"
    here.mkdir()
    spec = write(here / "spec.yaml", "t3", AMI_V1)
    ticker = Ticker(aws, spec)
    first = ticker.run("reconcile", "--yes", "--loop", "-o", "json")
    assert first.returncode == 0, first.stderr[-3000:]
    v1 = json.loads(first.stdout)["units"]["web"]["to_release"]
    write(spec, "t3", AMI_V2)
    second = ticker.run("reconcile", "--yes", "--loop", "-o", "json")
    assert second.returncode == 0, second.stderr[-3000:]
    unit = json.loads(second.stdout)["units"]["web"]
    assert unit["state"] == "converged"
    waited = [e for e in second.stderr.splitlines() if '"rollout.waiting"' in e]
    assert len(waited) >= 5  # bakes and a pause, each its own tick
    assert check_aws(aws, "t3", unit["to_release"], AMI_V2, v1) == []
    assert check_state(here / "state.db", "t3") == []
