"""Validation: every problem at once, located, in the words of STYLE.md, sorted by position."""

from __future__ import annotations

from typing import Any

from immutable_sdk.spec.load import load_spec

from .conftest import LOCATED, VALID, ProblemsOf, Writer, only, position

MANY_MISTAKES = """\
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web:
    builder: test-builder
    template: web.pkr.hcl
    colour: blue
fleets:
  web:
    image: wbe
    instance_type: t3.small
    capacity: {min: 3, desired: 2, max: 4}
    strategy: {type: steady, batch_size: quarter, pause: 30s}
    health:
      timeout: soon
      checks:
        - {type: prob, url: "http://x/"}
  api:
    instance_type: t3.small
    capacity: [1, 2]
"""


def test_many_mistakes_are_reported_at_once_sorted_by_position(
    write: Writer, problems_of: ProblemsOf
) -> None:
    f = write("spec.yaml", MANY_MISTAKES)
    lines = problems_of(f)
    assert lines == [
        f"{f}:8:5: images.web.colour: unknown key 'colour' (known keys: builder, regions, "
        "retain, template, timeout, vars)",
        f"{f}:11:12: fleets.web.image: unknown image 'wbe' (known: web); did you mean 'web'?",
        f"{f}:13:33: fleets.web.capacity.desired: desired (2) must be at least min (3)",
        f"{f}:14:42: fleets.web.strategy.batch_size: expected a count or a percentage like "
        "'25%', got 'quarter'",
        f"{f}:16:16: fleets.web.health.timeout: expected a duration like '30s', '5m', '2h' or "
        "'1h30m', got 'soon'",
        f"{f}:18:18: fleets.web.health.checks[0].type: unknown health check 'prob' (known: "
        + ", ".join(sorted(["probe", *_builtin_checks()]))
        + "); did you mean 'probe'?",
        f"{f}:19:3: fleets.api: missing required key 'image'",
        f"{f}:21:15: fleets.api.capacity: expected a mapping, got a list",
    ]


def _builtin_checks() -> list[str]:
    from immutable_sdk.plugins import load_plugins

    return load_plugins(autoload=False).health_checks.names()


def test_style_example_message(write: Writer, problems_of: ProblemsOf) -> None:
    f = write("spec.yaml", VALID.replace("batch_size: 25%", "batch_size: quarter"))
    assert problems_of(f) == [
        f"{f}:14:42: fleets.web.strategy.batch_size: expected a count or a percentage like "
        "'25%', got 'quarter'"
    ]


def test_unknown_key_points_at_the_key_and_suggests(write: Writer, problems_of: ProblemsOf) -> None:
    f = write("spec.yaml", VALID.replace("    instance_type:", "    instance_typ:"))
    lines = problems_of(f)
    line = only(lines, "fleets.web.instance_typ")
    assert position(line) == (12, 5)
    assert line.endswith("unknown key 'instance_typ'; did you mean 'instance_type'?")
    assert position(only(lines, "fleets.web")) == (10, 3)  # and instance_type is now missing
    assert "missing required key 'instance_type'" in only(lines, "fleets.web")


def test_missing_keys_point_at_the_parent_map(write: Writer, problems_of: ProblemsOf) -> None:
    f = write("spec.yaml", "apiVersion: immutable-sdk/v1\nfleets: {}\n")
    assert problems_of(f) == [f"{f}:1:1: missing required keys 'name', 'region'"]


def test_wrong_api_version_and_region(write: Writer, problems_of: ProblemsOf) -> None:
    text = VALID.replace("immutable-sdk/v1", "immutable-sdk/v9").replace(
        "region: us-east-1", "region: Virginia"
    )
    lines = problems_of(write("spec.yaml", text))
    assert only(lines, "apiVersion").endswith("expected 'immutable-sdk/v1', got 'immutable-sdk/v9'")
    assert only(lines, "region").endswith("expected an AWS region like 'us-east-1', got 'Virginia'")


def test_names_must_fit_aws_resource_names(write: Writer, problems_of: ProblemsOf) -> None:
    text = VALID.replace("name: shop", "name: Shop_1").replace(
        "  web:\n    image", "  -web:\n    image"
    )
    lines = problems_of(write("spec.yaml", text))
    assert "project name 'Shop_1' cannot be used in AWS resource names" in only(lines, "name")
    assert "fleet name '-web' cannot be used in AWS resource names" in only(lines, "fleets.-web")
    assert position(only(lines, "fleets.-web")) == (10, 3)


def test_project_and_fleet_names_together_are_limited(
    write: Writer, problems_of: ProblemsOf
) -> None:
    fleet = "f" * 37
    lines = problems_of(
        write("spec.yaml", VALID.replace("  web:\n    image", f"  {fleet}:\n    image"))
    )
    line = only(lines, f"fleets.{fleet}")
    assert "together they have 41 characters, at most 40" in line
    assert "'{project}-{fleet}-{slot}'" in line


def test_unknown_plugins_list_the_known_ones(write: Writer, problems_of: ProblemsOf) -> None:
    text = VALID.replace("builder: test-builder", "builder: test-bilder").replace(
        "type: steady", "type: stedy"
    )
    lines = problems_of(write("spec.yaml", text))
    builder = only(lines, "images.web.builder")
    assert "unknown builder 'test-bilder' (known: " in builder
    assert builder.endswith("did you mean 'test-builder'?")
    strategy = only(lines, "fleets.web.strategy.type")
    assert "unknown strategy 'stedy'" in strategy and "did you mean 'steady'?" in strategy


def test_capacity_order(write: Writer, problems_of: ProblemsOf) -> None:
    lines = problems_of(
        write(
            "spec.yaml",
            VALID.replace("{min: 1, desired: 2, max: 3}", "{min: 5, desired: 9, max: 4}"),
        )
    )
    assert only(lines, "fleets.web.capacity.max").endswith("max (4) must be at least min (5)")
    assert only(lines, "fleets.web.capacity.desired").endswith(
        "desired (9) must be at most max (4)"
    )


CANARY = VALID.replace(
    "strategy: {type: steady, batch_size: 25%, pause: 30s}",
    """strategy:
      type: canary
      keep_previous: an hour
      steps:
        - {weight: 10, bake: 5m}
        - {weight: 150}
        - {pause: manual}
        - {weight: 5, bake: forever}
        - {pause: later}
        - {weight: 50, pause: 1m}
        - {weight: 100}""",
)


def test_canary_steps(write: Writer, problems_of: ProblemsOf) -> None:
    f = write("spec.yaml", CANARY)
    lines = problems_of(f)
    steps = "fleets.web.strategy.steps"
    assert only(lines, "fleets.web.strategy.keep_previous").endswith(
        "expected a duration like '30s', '5m', '2h' or '1h30m', got 'an hour'"
    )
    assert "between 0 and 100" in only(lines, f"{steps}[1].weight")
    assert only(lines, f"{steps}[3].weight").endswith(
        "weights must increase: 5 follows 10 (step 0)"
    )
    assert only(lines, f"{steps}[3].bake").endswith("got 'forever'")
    assert "expected 'manual' or a duration" in only(lines, f"{steps}[4].pause")
    assert "exactly one of 'weight'" in only(lines, f"{steps}[5]")
    assert lines == sorted(lines, key=lambda ln: position(ln))


def test_referenced_files_must_exist(write: Writer, problems_of: ProblemsOf) -> None:
    text = VALID.replace("template: web.pkr.hcl", "template: packer/missing.pkr.hcl").replace(
        "    instance_type: t3.small\n", "    instance_type: t3.small\n    user_data: files/\n"
    )
    f = write("spec.yaml", text, **{"files/readme": "x"})
    lines = problems_of(f)
    assert "file 'packer/missing.pkr.hcl' does not exist" in only(lines, "images.web.template")
    assert "is a directory, not a file" in only(lines, "fleets.web.user_data")


def test_user_data_size_limit(write: Writer, problems_of: ProblemsOf) -> None:
    text = VALID.replace(
        "    instance_type: t3.small\n", "    instance_type: t3.small\n    user_data: ud.sh\n"
    )
    f = write("spec.yaml", text, **{"ud.sh": "x" * 20_000})
    assert "EC2 accepts at most 16384 bytes" in only(problems_of(f), "fleets.web.user_data")


def test_plugin_schema_with_internal_refs(write: Writer, problems_of: ProblemsOf) -> None:
    text = VALID.replace("template: web.pkr.hcl", "template: web.pkr.hcl\n    timeout: 1 hour")
    line = only(problems_of(write("spec.yaml", text)), "images.web.timeout")
    assert line.endswith("expected a duration like '30s', '5m', '2h' or '1h30m', got '1 hour'")


def test_depends_on(write: Writer, problems_of: ProblemsOf) -> None:
    text = (
        VALID
        + """\
    depends_on: [api, nope, web]
  api:
    image: web
    instance_type: t3.small
    capacity: {min: 1, max: 1}
    strategy: {type: steady}
    depends_on: [web]
"""
    )
    lines = problems_of(write("spec.yaml", text))
    assert only(lines, "fleets.web.depends_on[1]").endswith(
        "a fleet cannot depend on unknown fleet 'nope'"
    )
    assert only(lines, "fleets.web.depends_on[2]").endswith("a fleet cannot depend on itself")
    assert "in a cycle: web -> api -> web" in only(lines, "fleets.web.depends_on")


def test_tags_and_state(write: Writer, problems_of: ProblemsOf) -> None:
    text = VALID.replace("images:", "state: {backend: dynamodb, path: x.db}\nimages:") + (
        "    tags: {'aws:team': x, owner: 3}\n"
    )
    lines = problems_of(write("spec.yaml", text))
    assert only(lines, "state").endswith("missing required key 'table'")
    assert only(lines, "state.path").endswith("'path' applies to backend 'local' only")
    assert "reserved" in only(lines, "fleets.web.tags.aws:team")
    assert only(lines, "fleets.web.tags.owner").endswith("expected a string, got 3")


def test_every_line_is_located(write: Writer, problems_of: ProblemsOf) -> None:
    for line in problems_of(write("spec.yaml", MANY_MISTAKES)):
        m = LOCATED.match(line)
        assert m and int(m["line"]) >= 1 and int(m["column"]) >= 1


MANAGED = """\
      capacity:
        min: 1
        max: 6
        desired: managed
        target_tracking:
          - {name: cpu, metric: cpu, target: 50, warmup: 2m}
          - {name: net, metric: network-in, target: 1000000, disable_scale_in: true}
"""


def test_a_managed_desired_capacity_and_its_policies(write: Writer, plugins: Any) -> None:
    text = VALID.replace("    capacity: {min: 1, desired: 2, max: 3}\n", MANAGED[2:])
    spec = load_spec([write("spec.yaml", text)], plugins=plugins, environ={})
    cap = spec.fleets["web"].capacity
    assert (cap.min, cap.desired, cap.max, cap.managed) == (1, 1, 6, True)
    assert [(p.name, p.metric, p.target, p.warmup) for p in cap.target_tracking] == [
        ("cpu", "cpu", 50.0, 120.0),
        ("net", "network-in", 1000000.0, None),
    ]
    assert cap.wanted(4) == 4 and cap.wanted(9) == 6 and cap.wanted(0) == 1
    assert cap.wanted(None) == 1  # a new group starts at min


def test_scaling_policies_need_a_managed_desired_capacity(
    write: Writer, problems_of: ProblemsOf
) -> None:
    text = VALID.replace(
        "    capacity: {min: 1, desired: 2, max: 3}\n",
        MANAGED[2:].replace("desired: managed", "desired: 2").replace("name: net", "name: cpu"),
    )
    lines = problems_of(write("spec.yaml", text))
    assert only(lines, "fleets.web.capacity.target_tracking").endswith(
        "scaling policies need desired: managed (otherwise apply resets what they scale)"
    )
    assert only(lines, "fleets.web.capacity.target_tracking[1].name").endswith(
        "duplicate policy name 'cpu'"
    )
    wrong = VALID.replace("desired: 2", "desired: auto")
    assert any(
        "fleets.web.capacity.desired" in line for line in problems_of(write("s.yaml", wrong))
    )
