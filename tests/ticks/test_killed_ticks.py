"""Reconcile ticks killed with SIGKILL at random moments (seeded), then ticked on.

A rolling release with pauses and bakes is driven only by ``reconcile`` processes; a fixed
number of them, chosen by a seeded generator, are killed a random real time after they
start (mid-launch, mid-retire, mid-journal). The next tick takes the fleet once the dead
tick's 3-second lease ran out (virtual time moves past it) and finishes the job. The end is
``apply``'s: release 2 everywhere, nothing orphaned, nothing unfinished, no lock left.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
from tests.engine.conftest import AMI_V1, AMI_V2
from tests.engine.crashkit import seed
from tests.engine.test_crash_kill import check_aws, check_state

from .test_rolling_ticks import write
from .tickkit import Ticker, epoch

pytestmark = pytest.mark.slow

SEED = 20261205
KILLS = 6  # ticks killed, at most
LEASE = 3.0


def test_ticks_killed_at_random_moments_still_converge(aws: str, tmp_path: Path) -> None:
    rand = random.Random(SEED)
    seed(aws, write(tmp_path / "seed.yaml", "k1", AMI_V1))
    here = tmp_path / "k1"
    here.mkdir()
    spec = write(here / "spec.yaml", "k1", AMI_V1)
    ticker = Ticker(aws, spec)
    created = ticker.until_settled("--yes")
    assert created.code == 0, created.data
    v1 = created.unit("web")["to_release"]

    write(spec, "k1", AMI_V2)
    ticker.advance_to(None, at_least=60)
    kills, outcome = 0, None
    for _ in range(80):
        proc = ticker.command("reconcile", "-o", "json", "--yes", "--lease", "3s")
        if kills < KILLS and rand.random() < 0.7:
            time.sleep(rand.uniform(0.4, 1.4))  # somewhere in the tick (start-up included)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.communicate(timeout=60)
            ticker.advance_to(None, at_least=LEASE + 1)  # the dead tick's lease runs out
            continue
        out, _ = proc.communicate(timeout=60)
        if proc.returncode == 3:  # a lease still running: time moves on
            ticker.advance_to(None, at_least=LEASE + 1)
            continue
        data = json.loads(out)
        if proc.returncode != 10:
            outcome = (proc.returncode, data)
            break
        assert data["next_at"], data
        ticker.advance_to(epoch(data["next_at"]))
    assert outcome is not None and outcome[0] == 0, outcome
    assert kills >= 3, kills  # the seed kills several ticks in flight
    v2 = outcome[1]["units"]["web"]["to_release"]
    assert check_aws(aws, "k1", v2, AMI_V2, v1) == []
    assert check_state(here / "state.db", "k1") == []
