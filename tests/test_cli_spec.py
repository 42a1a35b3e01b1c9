"""``immutable-sdk validate``, ``schema`` and ``plugins``: what a user sees and the exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from jsonschema import Draft202012Validator

from immutable_sdk.cli import main
from immutable_sdk.errors import ExitCode
from immutable_sdk.plugins import load_plugins

LOCATED = re.compile(r"^(?:error: )?(?P<file>[^\n]+?):(?P<line>\d+):(?P<column>\d+): (?P<rest>.+)$")

VALID = """\
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
fleets: {}
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def located_lines(result: Result) -> list[re.Match[str]]:
    return [m for line in result.stderr.splitlines() if (m := LOCATED.match(line))]


def test_validate_ok_prints_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(VALID)
    result = run("validate", "-f", str(spec))
    assert result.exit_code == 0
    assert result.stdout == f"ok: {spec}: project shop in us-east-1, 0 images, 0 fleets\n"


def test_validate_json(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(VALID)
    result = run("validate", "-f", str(spec), "--output", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "format_version": "1.0",
        "valid": True,
        "name": "shop",
        "region": "us-east-1",
        "images": [],
        "fleets": [],
        "warnings": [],
    }
    spec.write_text(VALID.replace("shop", "Shop"))
    result = run("validate", "-f", str(spec), "-o", "json")
    assert result.exit_code == ExitCode.INVALID
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["file"] == str(spec) and (problem["line"], problem["column"]) == (2, 7)
    assert problem["path"] == "name"


MISTAKES = """\
apiVersion: immutable-sdk/v2
name: Shop
region: us-east-1
images:
  web: {builder: ami-typo}
fleets:
  web:
    image: nope
    instance_type: t3.small
    capacity: {min: 2, desired: 1, max: 3}
    health: {timeout: later}
    colour: blue
"""


def test_validate_prints_every_mistake_and_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(MISTAKES)
    result = run("validate", "-f", str(spec))
    assert result.exit_code == ExitCode.INVALID == 2
    assert result.stdout == ""
    found = {
        m["rest"].split(":")[0]: (int(m["line"]), int(m["column"])) for m in located_lines(result)
    }
    expected = {
        "apiVersion": (1, 13),
        "name": (2, 7),
        "images.web.builder": (5, 18),
        "fleets.web.image": (8, 12),
        "fleets.web.capacity.desired": (10, 33),
        "fleets.web.health.timeout": (11, 23),
        "fleets.web.colour": (12, 5),
    }
    assert {k: found.get(k) for k in expected} == expected
    assert len(found) == len(expected), result.stderr  # nothing more: the strategy defaults
    positions = [(int(m["line"]), int(m["column"])) for m in located_lines(result)]
    assert positions == sorted(positions)
    assert result.stderr.splitlines()[-1] == f"error: {len(expected)} problem(s) found"
    assert "Traceback" not in result.output


BAD_FILES: dict[str, bytes] = {
    "syntax": b"apiVersion: immutable-sdk/v1\nname: [shop\nregion: us-east-1\n",
    "tabs": b"apiVersion: immutable-sdk/v1\nfleets:\n\tweb: {}\n",
    "duplicates": b"apiVersion: immutable-sdk/v1\nname: a\nname: b\nregion: us-east-1\n",
    "list-for-map": b"apiVersion: immutable-sdk/v1\nname: a\nregion: us-east-1\nfleets: [web]\n",
    "top-level-list": b"- apiVersion: immutable-sdk/v1\n",
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "alias-bomb": (
        b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + b"".join(
            f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n".encode()
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_yaml_gives_a_located_error_and_no_traceback(tmp_path: Path, kind: str) -> None:
    spec = tmp_path / f"{kind}.yaml"
    spec.write_bytes(BAD_FILES[kind])
    result = run("validate", "-f", str(spec))
    assert result.exit_code == ExitCode.INVALID
    assert "Traceback" not in result.output
    lines = located_lines(result)
    assert lines, result.output
    assert all(m["file"] == str(spec) and int(m["line"]) >= 1 for m in lines)


def test_a_20_mib_file_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "huge.yaml"
    spec.write_bytes(b"# padding\n" * (2 * 2**20))
    result = run("validate", "-f", str(spec))
    assert result.exit_code == ExitCode.INVALID
    assert (
        result.stderr
        == f"error: {spec}:1:1: the file is 20.0 MiB; spec files may be at most 5 MiB\n"
    )


def test_missing_file(tmp_path: Path) -> None:
    result = run("validate", "-f", str(tmp_path / "nope.yaml"))
    assert result.exit_code == ExitCode.INVALID
    assert "cannot read the file" in result.stderr and "Traceback" not in result.output


def test_python_m_immutable_sdk_validate(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("apiVersion: immutable-sdk/v1\nname: shop\nname: again\n")
    env = {**os.environ, "IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "immutable_sdk", "validate", "-f", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == (  # the duplicate and the validation problems, all at once
        f"{spec}:1:1: missing required key 'region'\n"
        f"{spec}:3:1: name: duplicate key 'name' (first at line 2, column 1)\n"
        "error: 2 problem(s) found\n"
    )


def test_overlays_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(VALID)
    (tmp_path / "prod.yaml").write_text("region: eu-west-1\n")
    result = run("validate", "-f", str(tmp_path / "base.yaml"), "-f", str(tmp_path / "prod.yaml"))
    assert result.exit_code == 0
    assert "project shop in eu-west-1" in result.stdout


def test_schema_prints_the_composed_schema() -> None:
    result = run("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    Draft202012Validator.check_schema(schema)
    strategy = schema["properties"]["fleets"]["additionalProperties"]["properties"]["strategy"]
    assert strategy["properties"]["type"]["enum"] == load_plugins(autoload=False).strategies.names()


def test_plugins_lists_every_registered_plugin() -> None:
    plugins = load_plugins(autoload=False)
    result = run("plugins", "--output", "json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)["plugins"]
    assert [(r["name"], r["kind"]) for r in rows] == [(e.name, e.kind) for e in plugins.entries()]
    for row in rows:
        assert row["distribution"] == "immutable-sdk" and row["plugin"].startswith("immutable_sdk.")
    text = run("plugins")
    assert text.exit_code == 0
    header, *lines = text.stdout.splitlines()
    assert header.split() == ["NAME", "KIND", "PLUGIN", "DISTRIBUTION", "VERSION"]
    assert len(lines) == len(rows)


def test_validate_of_a_fifo_fails_at_once_with_exit_2(tmp_path: Path) -> None:
    """A ``-f`` naming a FIFO used to hang: nothing ever writes to it."""
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    out = subprocess.run(
        [sys.executable, "-m", "immutable_sdk", "validate", "-f", str(fifo)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {fifo}:1:1: not a regular file: a FIFO (named pipe)"
