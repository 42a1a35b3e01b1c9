"""Several files merged in order, and the ``defaults:`` block under every fleet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from immutable_sdk.spec.model import Spec

from .conftest import VALID, ProblemsOf, Writer, only, position

PROD = """\
region: eu-west-1
images:
  web:
    vars: {tier: prod}
fleets:
  web:
    capacity: {desired: 3}
    health:
      checks:
        - {type: probe, url: "https://prod/"}
    user_data: files/prod.sh
"""


def test_later_files_win_maps_merge_lists_are_replaced(
    write: Writer, load: Callable[..., Spec], tmp_path: Path
) -> None:
    base = write("base.yaml")
    prod = write("overlays/prod.yaml", PROD, **{"overlays/files/prod.sh": "#!/bin/sh\n"})
    spec = load(base, prod)
    fleet = spec.fleets["web"]
    assert spec.region == "eu-west-1"
    assert fleet.capacity.min == 1 and fleet.capacity.desired == 3 and fleet.capacity.max == 3
    assert [c.config["url"] for c in fleet.health.checks] == ["https://prod/"]
    assert spec.images["web"].config["vars"] == {"tier": "prod"}
    assert spec.images["web"].config["template"] == "web.pkr.hcl"
    assert spec.images["web"].regions == ("eu-west-1", "us-east-1")
    # relative paths resolve against the file that names them
    assert fleet.user_data == tmp_path / "overlays" / "files" / "prod.sh"
    assert spec.images["web"].base_dir == tmp_path
    assert fleet.health.checks[0].base_dir == tmp_path / "overlays"
    assert fleet.health.checks[0].location.file == prod
    assert spec.files == (tmp_path / "base.yaml", tmp_path / "overlays" / "prod.yaml")
    assert spec.state.path == tmp_path / ".immutable" / "state.db"  # next to the first file


def test_problems_point_into_the_overlay(write: Writer, problems_of: ProblemsOf) -> None:
    base = write("base.yaml")
    prod = write("prod.yaml", "fleets:\n  web:\n    capacity: {desired: 9}\n    colour: red\n")
    lines = problems_of(base, prod)
    assert only(lines, "fleets.web.capacity.desired").startswith(f"{prod}:3:25: ")
    assert only(lines, "fleets.web.colour").startswith(f"{prod}:4:5: ")


def test_every_file_is_read_before_reporting(write: Writer, problems_of: ProblemsOf) -> None:
    a = write("a.yaml", "name: [unclosed\n")
    b = write("b.yaml", "x: ${UNSET}\n")
    lines = problems_of(a, b)
    assert len(lines) == 2
    assert lines[0].startswith(f"{a}:") and lines[1].startswith(f"{b}:1:4: x: ")


DEFAULTS = (
    VALID.replace(
        "fleets:",
        """defaults:
  instance_type: t3.small
  strategy: {type: steady, batch_size: 1, pause: 5m}
  health: {timeout: 5m, checks: [{type: probe, url: "http://d/"}]}
  tags: {team: shop, env: dev}
fleets:""",
    )
    + """\
    tags: {env: prod}
  api:
    image: web
    capacity: {min: 1, max: 2}
  worker:
    image: web
    capacity: {min: 1, max: 2}
    strategy: {pause: 1m}
"""
)


def test_defaults_apply_to_every_fleet_and_fleets_win(
    write: Writer, load: Callable[..., Spec]
) -> None:
    spec = load(write("spec.yaml", DEFAULTS))
    web, api, worker = spec.fleets["web"], spec.fleets["api"], spec.fleets["worker"]
    assert web.strategy.config == {"type": "steady", "batch_size": "25%", "pause": "30s"}
    assert api.strategy.config == {"type": "steady", "batch_size": 1, "pause": "5m"}
    assert worker.strategy.config == {"type": "steady", "batch_size": 1, "pause": "1m"}
    assert web.tags == {"team": "shop", "env": "prod"}
    assert api.tags == {"team": "shop", "env": "dev"}
    assert api.instance_type == "t3.small"
    assert web.health.timeout == api.health.timeout == 300.0  # maps merge deeply
    assert [c.config["url"] for c in web.health.checks] == ["http://{private_ip}/"]
    assert [c.config["url"] for c in api.health.checks] == ["http://d/"]


def test_problems_in_defaults_point_at_the_defaults_block_once(
    write: Writer, problems_of: ProblemsOf
) -> None:
    f = write(
        "spec.yaml", DEFAULTS.replace("batch_size: 1, pause: 5m", "batch_size: one, pause: 5m")
    )
    lines = problems_of(f)
    assert lines == [
        f"{f}:11:40: defaults.strategy.batch_size: expected a count or a percentage like "
        "'25%', got 'one'"
    ]


def test_defaults_alone_are_checked(write: Writer, problems_of: ProblemsOf) -> None:
    text = VALID.replace("fleets:", "defaults:\n  instance_typ: t3.small\nfleets:")
    line = only(problems_of(write("spec.yaml", text)), "defaults.instance_typ")
    assert position(line) == (10, 3)
