"""Fleets in several regions: ``regions:`` in the model, its checks, and waves over regions."""

from __future__ import annotations

from collections.abc import Callable

from immutable_sdk.spec.model import Spec

from .conftest import VALID, ProblemsOf, Writer, only

API = """\
  api:
    image: web
    instance_type: t3.small
    capacity: {min: 1, max: 2}
    regions: [us-west-2, eu-west-1]
"""


def test_fleet_regions_units_and_the_projection_per_region(
    write: Writer, load: Callable[..., Spec]
) -> None:
    spec = load(write("spec.yaml", VALID + API))
    assert spec.fleets["web"].regions == ("us-east-1",)  # the spec's region by default
    assert spec.fleets["api"].regions == ("us-west-2", "eu-west-1")
    assert spec.regions == ("us-east-1", "us-west-2", "eu-west-1")
    assert spec.multi_region
    # the image is wanted wherever a fleet runs it (its own regions first, the spec's first)
    assert spec.images["web"].regions == ("us-east-1", "eu-west-1", "us-west-2")
    assert spec.units() == [
        ("web", "web", "us-east-1"),
        ("api@us-west-2", "api", "us-west-2"),
        ("api@eu-west-1", "api", "eu-west-1"),
    ]
    west = spec.for_region("us-west-2")
    assert (west.region, list(west.fleets), west.waves) == ("us-west-2", ["api"], ())
    assert not west.multi_region and west.unit_key("api") == "api"
    assert list(spec.for_region("us-east-1").fleets) == ["web"]


def test_defaults_regions_apply_to_every_fleet(write: Writer, load: Callable[..., Spec]) -> None:
    spec = load(write("spec.yaml", VALID + API + "defaults:\n  regions: [us-east-1, ap-south-1]\n"))
    assert spec.fleets["web"].regions == ("us-east-1", "ap-south-1")
    assert spec.fleets["api"].regions == ("us-west-2", "eu-west-1")  # its own win


def test_a_single_region_spec_is_unchanged(write: Writer, load: Callable[..., Spec]) -> None:
    spec = load(write("spec.yaml"))
    assert not spec.multi_region and spec.regions == ("us-east-1",)
    assert spec.units() == [("web", "web", "us-east-1")]
    assert spec.for_region("us-east-1").fleets == spec.fleets


def test_bad_region_lists_are_located(write: Writer, problems_of: ProblemsOf) -> None:
    text = VALID + (
        "    regions: [us-east-1, Europe, us-east-1]\n"
        "  api:\n"
        "    image: web\n"
        "    instance_type: t3.small\n"
        "    capacity: {min: 1, max: 2}\n"
        "    regions: []\n"
        "  db:\n"
        "    image: web\n"
        "    instance_type: t3.small\n"
        "    capacity: {min: 1, max: 2}\n"
        "    regions: [us-east-1, eu-west-1]\n"
        "    subnets: [subnet-0abc, db-private]\n"
        "    security_groups: [sg-0123]\n"
        "    load_balancer:\n"
        "      target_groups: ['arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/db/1']\n"
    )
    lines = problems_of(write("spec.yaml", text))
    assert "expected an AWS region like 'us-east-1', got 'Europe'" in only(
        lines, "fleets.web.regions[1]"
    )
    assert "region 'us-east-1' is listed twice" in only(lines, "fleets.web.regions[2]")
    assert "expected at least 1 item" in only(lines, "fleets.api.regions")
    assert "subnet id 'subnet-0abc' exists in one region only" in only(
        lines, "fleets.db.subnets[0]"
    )
    assert "by Name tag" in only(lines, "fleets.db.subnets[0]")
    assert "security group id 'sg-0123'" in only(lines, "fleets.db.security_groups[0]")
    assert "name the target group by its name" in only(
        lines, "fleets.db.load_balancer.target_groups[0]"
    )
    assert len(lines) == 6, lines


def test_a_traffic_fleet_deploys_to_one_region(write: Writer, problems_of: ProblemsOf) -> None:
    text = VALID.replace("{type: steady, batch_size: 25%, pause: 30s}", "{type: canary}") + (
        "    regions: [us-east-1, eu-west-1]\n"
        "    traffic:\n"
        "      route53: {zone: example.com., record: web.example.com}\n"
        "      slots:\n"
        "        blue: {target_group: web-blue}\n"
        "        green: {target_group: web-green}\n"
    )
    line = only(problems_of(write("spec.yaml", text)), "fleets.web.regions")
    assert "a fleet with traffic slots deploys to one region" in line
    assert "latency or geolocation records" in line


def test_waves_select_regions_the_spec_deploys_to(write: Writer, problems_of: ProblemsOf) -> None:
    waves = (
        "waves:\n"
        "  - {name: one-box, fleets: [web], regions: [us-west-2]}\n"
        "  - {name: far, regions: ['ap-*']}\n"
        "  - {name: rest, fleets: [api], regions: [us-*]}\n"
    )
    lines = problems_of(write("spec.yaml", VALID + API + waves))
    assert "wave 'one-box' selects no fleet in its regions: web deploy(s) to none of " in only(
        lines, "waves[0]"
    )
    assert (
        "'ap-*' selects no region this spec deploys to (us-east-1, us-west-2, eu-west-1)"
        in only(lines, "waves[1].regions[0]")
    )
    joined = " ".join(lines)
    assert "fleet 'web' is in no wave;" in joined  # in the spec's region: named as before
    assert "fleet 'api' is in no wave in eu-west-1;" in joined  # 'rest' takes us-west-2 only


def test_a_unit_waits_for_its_dependency_in_its_region(
    write: Writer, problems_of: ProblemsOf
) -> None:
    deps = API.replace("regions: [us-west-2, eu-west-1]", "regions: [us-east-1, eu-west-1]")
    text = VALID + "    regions: [us-east-1, eu-west-1]\n" + deps + "    depends_on: [web]\n"
    waves = (
        "waves:\n"
        "  - {name: east, regions: [us-east-1]}\n"
        "  - {name: europe-api, fleets: [api]}\n"
        "  - {name: rest}\n"
    )
    line = only(problems_of(write("spec.yaml", text + waves)), "fleets.api.depends_on")
    assert "fleet 'api' in eu-west-1 (wave 2) depends on 'web' in eu-west-1" in line
    assert "later wave (3)" in line
