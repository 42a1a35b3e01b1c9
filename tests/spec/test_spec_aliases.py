"""YAML aliases cost the document's bytes, not what they expand to (issue 14).

One value aliased thousands of times is one object: the reader builds it once, and the schema
validation, the secret scan and the redactor's registration each look at it once. Before, the
secret scan visited every alias (2,000 copies of a 300 KB value took 46 s); the benchmark
``python -m benchmarks --only hostile`` holds the full-size case (20,000 copies) to one second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from immutable_sdk.errors import SpecError
from immutable_sdk.plugins import Plugins
from immutable_sdk.redaction import forget_secrets, known_secret_count
from immutable_sdk.spec.load import load_spec, scan_spec

from .conftest import Writer

HEAD = """\
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web:
    builder: test-builder
    template: web.pkr.hcl
    vars:
"""
FLEET = """\
fleets:
  web:
    image: web
    instance_type: t3.small
    capacity: {min: 1, desired: 2, max: 3}
    strategy: {type: steady, batch_size: 25%, pause: 30s}
    health:
      checks:
        - {type: probe, url: "http://{private_ip}/"}
"""
ALIASES = 2_000
SIZE = 300_000
# Mixed case and digits, high entropy: the secret scan reports it, the redactor registers it.
TOKEN = "".join("aZ3kQ9xV7mP2wR8tB5nL4" for _ in range(SIZE // 21))


def bomb(value: str, aliases: int = ALIASES) -> str:
    lines = [f"      v0: &big {value}\n"] + [f"      v{i}: *big\n" for i in range(1, aliases)]
    return HEAD + "".join(lines) + FLEET


def cpu_seconds(run: Callable[[], object]) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start


@pytest.fixture(autouse=True)
def _forget() -> None:
    forget_secrets()


def test_a_value_aliased_thousands_of_times_validates_in_a_moment(
    write: Writer, plugins: Plugins
) -> None:
    f = write("bomb.yaml", bomb("x" * SIZE))
    spent = cpu_seconds(lambda: (load_spec([f], plugins=plugins, environ={}), scan_spec([f])))
    assert spent < 5, spent  # about 0.1 s; every alias scanned took 46 s


def test_a_secret_aliased_thousands_of_times_is_reported_at_each_and_registered_once(
    write: Writer, plugins: Plugins
) -> None:
    f = write("bomb.yaml", bomb(TOKEN))
    found: list[object] = []
    spent = cpu_seconds(
        lambda: (load_spec([f], plugins=plugins, environ={}), found.extend(scan_spec([f])))
    )
    assert spent < 5, spent
    paths = {p.path for p in found}
    assert len(paths) == ALIASES and "images.web.vars.v1999" in paths  # every place is named
    assert all(TOKEN not in str(p) for p in found)  # never quoted
    assert known_secret_count() <= 4  # the value and its escaped forms, not 2,000 copies


def test_a_substituted_value_aliased_thousands_of_times_is_substituted_once(
    write: Writer, plugins: Plugins
) -> None:
    f = write("bomb.yaml", bomb(f'"{"y" * SIZE}${{SUFFIX:-z}}"'))
    spec: list[object] = []
    spent = cpu_seconds(lambda: spec.append(load_spec([f], plugins=plugins, environ={})))
    assert spent < 5, spent
    values = spec[0].images["web"].config["vars"]  # type: ignore[attr-defined]
    assert values["v1999"] == "y" * SIZE + "z"
    assert len({id(v) for v in values.values()}) == 1  # one string, shared


def test_a_wrong_value_aliased_in_large_lists_is_refused_with_short_messages(
    write: Writer, plugins: Plugins
) -> None:
    """Lists of lists of a 300 KB string, where a string is expected: each level is reported,
    and neither the check nor the message quotes the expansion (tens of gigabytes)."""
    lines = ["      l0: &l0 [" + ", ".join(["*big"] * 16) + "]\n"]
    for level in range(1, 4):
        lines.append(f"      l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 16) + "]\n")
    text = HEAD + f"      big: &big {'x' * SIZE}\n" + "".join(lines) + FLEET
    f = write("lists.yaml", text.replace(FLEET, FLEET + "x-more: [*l2, *l2, *l2, *l2]\n"))
    problems: list[str] = []

    def load() -> None:
        with pytest.raises(SpecError) as info:
            load_spec([f], plugins=plugins, environ={})
        problems.extend(str(p) for p in info.value.problems)

    spent = cpu_seconds(load)
    assert spent < 5, spent
    assert any("images.web.vars.l3: expected a string, got a list" in p for p in problems)
    assert all(len(p) < 500 for p in problems), max(problems, key=len)[:600]
