"""Ticks from processes that share nothing but a DynamoDB state table (as ticks from different
machines would): the rolling rollout of ``test_rolling_ticks`` with its pauses and bakes, each
tick a fresh process, every fact in the table. It ends as ``apply`` would: one release, no
unfinished rollout, no lock left."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from tests.engine.conftest import AMI_V1, AMI_V2
from tests.engine.crashkit import seed
from tests.engine.test_crash_kill import check_aws

from .test_rolling_ticks import SPEC
from .tickkit import Ticker, waits

pytestmark = pytest.mark.slow

TABLE = "ticks-state"


def write(path: Path, ami: str) -> Path:
    text = SPEC.format(project="t4", ami=ami)
    path.write_text(
        text.replace("{backend: local, path: state.db}", f"{{backend: dynamodb, table: {TABLE}}}")
    )
    return path


def test_ticks_from_separate_processes_share_a_dynamodb_table(aws: str, tmp_path: Path) -> None:
    seed(aws, write(tmp_path / "seed.yaml", AMI_V1))
    here = tmp_path / "t4"
    here.mkdir()
    spec = write(here / "spec.yaml", AMI_V1)
    ticker = Ticker(aws, spec)
    made = ticker.run("state", "init")
    assert made.returncode == 0, made.stderr[-2000:]

    created = ticker.until_settled("--yes")
    assert created.code == 0, created.data
    v1 = created.unit("web")["to_release"]
    write(spec, AMI_V2)
    ticker.advance_to(None, at_least=60)
    first = len(ticker.ticks)
    done = ticker.until_settled("--yes")
    assert done.code == 0, done.data
    seen = waits(ticker.ticks[first:], "web")
    assert seen.count("pause") >= 1 and seen.count("bake") >= 2, seen
    rollouts = {t.unit("web")["rollout"] for t in ticker.ticks[first:] if t.unit("web")["rollout"]}
    assert len(rollouts) == 1, rollouts  # continued tick after tick, never restarted
    v2 = done.unit("web")["to_release"]
    assert check_aws(aws, "t4", v2, AMI_V2, v1) == []

    # the table agrees: nothing unfinished, no lock left, the fleet's release is v2
    shown = json.loads(ticker.run("status", "-o", "json").stdout)
    (fleet,) = shown["fleets"]
    assert fleet["release"] == v2 and not fleet.get("rollout_in_progress"), fleet
    table = boto3.client("dynamodb", endpoint_url=aws, region_name="us-east-1")
    items = table.scan(TableName=TABLE)["Items"]
    locks = [i for i in items if i["sk"]["S"].startswith("lock")]
    assert not list(here.glob("*.db"))  # the state lives in the table only
    assert locks and all("owner" not in i for i in locks), locks  # released, epoch kept
