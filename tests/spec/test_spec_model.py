"""The frozen model built from a valid spec."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from immutable_sdk.errors import Location, SpecError
from immutable_sdk.spec import load_spec
from immutable_sdk.spec.model import Capacity, HealthSpec, SecuritySpec, Spec, StateSpec

from .conftest import VALID, Writer

FULL = (
    VALID.replace("fleets:", "state: {backend: dynamodb, table: shop-state}\nfleets:")
    + """\
    subnets: [subnet-a, subnet-b]
    security_groups: [sg-1]
    user_data: files/web.sh
    load_balancer: {target_groups: [web-tg]}
    rollback: {automatic: false}
    key_name: ops
    iam_instance_profile: web-profile
    security: {imdsv2: optional, encrypt_volumes: false, public_ip: true}
    max_lifetime: 7d
    tags: {team: shop}
  checkout:
    image: web
    instance_type: t3.small
    capacity: {min: 2, max: 2}
    strategy: {type: steady}
    depends_on: [web]
    health: {timeout: 2m, interval: 5s, grace: 30s}
    traffic:
      route53: {zone: example.com., record: checkout.example.com, ttl: 60}
      slots:
        blue: {target_group: checkout-blue, load_balancer: checkout-blue}
        green: {target_group: checkout-green}
"""
)


def test_the_model(write: Writer, load: Callable[..., Spec], tmp_path: Path) -> None:
    f = write("spec.yaml", FULL, **{"files/web.sh": "#!/bin/sh\n"})
    spec = load(f)
    assert (spec.api_version, spec.name, spec.region) == ("immutable-sdk/v1", "shop", "us-east-1")
    assert spec.state == StateSpec("dynamodb", table="shop-state", region="us-east-1")
    image = spec.images["web"]
    assert image.builder == "test-builder"
    assert image.regions == ("us-east-1", "eu-west-1")
    assert image.config == {
        "builder": "test-builder",
        "template": "web.pkr.hcl",
        "regions": ["eu-west-1", "us-east-1"],
    }
    assert image.base_dir == tmp_path and image.retain is None
    assert image.location == Location(f, 5, 3)
    web = spec.fleets["web"]
    assert web.capacity == Capacity(1, 2, 3)
    assert web.strategy.type == "steady"
    assert web.strategy.config == {"type": "steady", "batch_size": "25%", "pause": "30s"}
    assert web.strategy.location == Location(f, 15, 15)
    assert web.health == HealthSpec(600.0, 10.0, 0.0, web.health.checks)
    assert [c.type for c in web.health.checks] == ["probe"]
    assert web.health.checks[0].location == Location(f, 18, 11)
    assert web.subnets == ("subnet-a", "subnet-b") and web.security_groups == ("sg-1",)
    assert web.user_data == tmp_path / "files" / "web.sh"
    assert web.target_groups == ("web-tg",)
    assert web.rollback_automatic is False
    assert (web.key_name, web.iam_instance_profile) == ("ops", "web-profile")
    assert web.security == SecuritySpec(False, False, True)
    assert web.max_lifetime == 7 * 86400
    assert web.tags == {"team": "shop"}
    assert web.location == Location(f, 11, 3)
    checkout = spec.fleets["checkout"]
    assert checkout.capacity == Capacity(2, 2, 2)  # desired defaults to min
    assert checkout.health == HealthSpec(120.0, 5.0, 30.0, ())
    assert checkout.depends_on == ("web",)
    assert checkout.rollback_automatic is True and checkout.security == SecuritySpec()
    assert checkout.traffic is not None
    assert checkout.traffic["slots"]["green"] == {"target_group": "checkout-green"}
    assert checkout.user_data is None and checkout.max_lifetime is None
    # plugin blocks and the document are plain data: JSON for digests, no YAML types
    json.dumps(spec.document)
    json.dumps([dict(image.config), dict(web.strategy.config), dict(web.health.checks[0].config)])
    assert type(image.config) is dict and type(image.config["regions"]) is list
    with pytest.raises(dataclasses.FrozenInstanceError):
        web.name = "x"  # type: ignore[misc]


def test_defaults_of_state_and_strategy(write: Writer, load: Callable[..., Spec], plugins) -> None:  # type: ignore[no-untyped-def]
    text = VALID.replace("    strategy: {type: steady, batch_size: 25%, pause: 30s}\n", "")
    f = write("sub/spec.yaml", text, **{"sub/web.pkr.hcl": "x"})
    if "rolling" not in plugins.strategies:
        with pytest.raises(SpecError, match="the default 'rolling' is not installed"):
            load(f)
        return
    spec = load(f)
    assert spec.state == StateSpec("local", path=Path(f).parent / ".immutable" / "state.db")
    assert spec.fleets["web"].strategy.type == "rolling"
    assert spec.fleets["web"].strategy.config == {"type": "rolling"}


def test_local_state_path_is_relative_to_the_first_file(
    write: Writer, load: Callable[..., Spec], tmp_path: Path
) -> None:
    base = write("base.yaml", VALID.replace("images:", "state: {path: var/state.db}\nimages:"))
    over = write("more/over.yaml", "name: shop\n")
    assert load(base, over).state.path == tmp_path / "var" / "state.db"


def test_load_spec_defaults_to_the_installed_plugins_and_os_environ(
    write: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPEC_TEST_REGION", "eu-west-1")
    f = write("spec.yaml", VALID.replace("us-east-1\nimages", "${SPEC_TEST_REGION}\nimages"))
    with pytest.raises(SpecError) as info:  # the test builder is not installed
        load_spec([f])
    assert "unknown builder 'test-builder'" in str(info.value)
    assert "region" not in str(info.value)


def test_empty_images_and_fleets(write: Writer, load: Callable[..., Spec]) -> None:
    text = "apiVersion: immutable-sdk/v1\nname: shop\nregion: us-east-1\nimages:\nfleets:\n"
    spec = load(write("spec.yaml", text))
    assert spec.images == {} and spec.fleets == {}


def test_no_files() -> None:
    with pytest.raises(SpecError, match="no spec file given"):
        load_spec([])
