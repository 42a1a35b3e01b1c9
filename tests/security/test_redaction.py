"""The one redactor: every corpus shape hidden, ordinary text untouched, in every form it takes
(text, structures, events, hook arguments, structlog in both formats, std streams), and the
values a spec declares secret registered as it loads."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from immutable_sdk.errors import BuildError, GateFailed, SpecError
from immutable_sdk.lifecycle import Analyze, Event
from immutable_sdk.logs import configure_logging, get_logger
from immutable_sdk.plugin import RolloutInfo
from immutable_sdk.plugins import load_plugins
from immutable_sdk.redaction import (
    REDACTED,
    RedactingStream,
    forget_secrets,
    redact,
    redact_std_streams,
    redact_text,
    register_secret,
    register_secrets,
)
from immutable_sdk.spec.load import load_spec, scan_spec

from .secret_corpus import CORPUS, ORDINARY, REGISTERED, leaked


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    forget_secrets()
    register_secrets(REGISTERED)  # what the spec would have declared
    yield
    forget_secrets()


@pytest.mark.parametrize("shape", CORPUS, ids=[s.name for s in CORPUS])
def test_every_shape_is_hidden(shape: Any) -> None:
    out = redact_text(shape.line)
    assert shape.secret not in out and REDACTED in out
    assert redact_text(out) == out  # redacting twice changes nothing


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_names_survive_so_the_reader_knows_what_was_hidden() -> None:
    shown = redact_text("export DB_PASSWORD=x1y2z3 APP=shop")
    assert shown == f"export DB_PASSWORD={REDACTED} APP=shop"
    assert redact_text("denied: password=abc123: retry") == f"denied: password={REDACTED}: retry"
    assert redact_text('{"token": "a\\"b", "n": 1}') == f'{{"token": "{REDACTED}", "n": 1}}'
    json.loads(redact_text(json.dumps({"line": 'token=abc\\ def" x'})))  # still JSON


def test_registered_values_in_every_form() -> None:
    assert register_secret("p@ss w0rd/1")
    assert not register_secret("abc") and not register_secret(True)
    assert not register_secret("${DB_PASSWORD}") and not register_secret("[redacted]")
    for text in ("p@ss w0rd/1", "p%40ss%20w0rd%2F1", json.dumps({"v": "p@ss w0rd/1"})):
        assert "w0rd" not in redact_text(f"got {text} here"), text
    register_secret("first line of it\nsecond line of it")
    assert redact_text("> second line of it") == f"> {REDACTED}"


def test_structures_events_and_hook_arguments() -> None:
    info = RolloutInfo("ro-1", "shop", "web", "rolling", "r-1", "r-2")
    step = Analyze({"type": "metrics", "url": "https://u:hunter22@m.example/q", "token": "t0k3n1"})
    copy = redact({"rollout": info, "step": step, "phase": "promoted", "n": 3})
    assert copy["rollout"] == info and copy["n"] == 3
    assert copy["step"].config == {
        "type": "metrics",
        "url": f"https://u:{REDACTED}@m.example/q",
        "token": REDACTED,
    }
    assert step.config["token"] == "t0k3n1"  # the original is untouched
    event = Event("x", 0.0, data={"line": "db_password=hunter22", "secret": None, "auth": True})
    assert redact(event).data == {"line": f"db_password={REDACTED}", "secret": None, "auth": True}


def test_errors_redact_their_text_details_and_output() -> None:
    gate = GateFailed("GET http://u:pw123456@h/x", details={"i-1": "GET /?api_key=k3y-77"})
    assert "pw123456" not in str(gate) and "k3y-77" not in repr(gate.details)
    build = BuildError("web", "failed", output=["DB_PASSWORD=hunter22"])
    assert build.output == (f"DB_PASSWORD={REDACTED}",)


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_structlog_in_both_formats(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt)
    try:
        log = get_logger(component="test")
        for shape in CORPUS:
            log.info(shape.line, line=shape.line, password=shape.secret, nested={"x": shape.line})
        try:
            raise RuntimeError(" ".join(s.line for s in CORPUS))
        except RuntimeError:
            log.exception("boom")
        logging.getLogger("stdlib").warning("nothing else")
    finally:
        configure_logging("console")
    err = capsys.readouterr().err
    assert err.count("\n") >= len(CORPUS) and "boom" in err
    assert leaked(err) == []


def test_std_streams_cannot_be_bypassed() -> None:
    @click.command()
    def noisy() -> None:
        redact_std_streams()
        click.echo("db_password=hunter22")
        click.echo("GET http://u:pw123456@h/x", err=True)
        print("token ghp_R8x2Lq9ZpV4mT7nK1wB5cY3dF6hJ0sUa2eGi")

    result = CliRunner().invoke(noisy)
    assert result.stdout == f"db_password={REDACTED}\ntoken {REDACTED}\n"
    assert result.stderr == f"GET http://u:{REDACTED}@h/x\n"
    stream = RedactingStream(io.StringIO())
    assert not hasattr(stream, "buffer")
    with pytest.raises(TypeError):
        stream.write(b"x")  # type: ignore[arg-type]


SPEC = """\
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web:
    builder: ami
    id: ami-0123456789abcdef0
fleets:
  web:
    image: web
    instance_type: t3.micro
    capacity: {min: 1, max: 2}
    tags:
      team: shop
      deploy_token: tagtoken-77
      note: "ghp_R8x2Lq9ZpV4mT7nK1wB5cY3dF6hJ0sUa2eGi"
      owner: !secret owner-marked-99
      db: ${DB_PASSWORD}
"""


def test_a_loaded_spec_registers_its_secret_values(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    plugins = load_plugins(autoload=False)
    load_spec([spec], plugins=plugins, environ={"DB_PASSWORD": "from-env-1234"})
    for value in ("tagtoken-77", "owner-marked-99", "from-env-1234"):
        assert redact_text(f"x {value} y") == f"x {REDACTED} y", value
    assert redact_text("team shop") == "team shop"
    warnings = [str(p) for p in scan_spec([spec])]
    assert any(
        ".tags.deploy_token: looks like a secret by its name in a tag" in w for w in warnings
    )
    assert any(".tags.note: looks like a GitHub token in a tag" in w for w in warnings)
    assert not any(".tags.team" in w or ".tags.db" in w for w in warnings)

    spec.write_text(SPEC.replace("!secret owner-marked-99", "!secret {a: b}"))
    with pytest.raises(SpecError, match="!secret marks one value"):
        load_spec([spec], plugins=plugins, environ={"DB_PASSWORD": "x"})


def test_table_cells_are_redacted_before_rich_wraps_them() -> None:
    from rich.console import Console
    from rich.text import Text

    from immutable_sdk.cli.render import _table

    table = _table("apply failed", ("fleet", "error"))
    table.add_row("web", "GET http://h/x?password=qp-s3cret-9-long-enough-to-be-wrapped")
    table.add_row("api", Text("Authorization: Bearer opaque-bearer-7788", style="red"))
    out = io.StringIO()
    Console(file=out, width=28).print(table)  # no redacting stream: the table did it
    assert "s3cret" not in out.getvalue() and "opaque" not in out.getvalue()
    assert "[redacted]" in out.getvalue().replace("\n", "").replace("│", "").replace(" ", "")
