"""Secrets never reach logs: the redacting processor and ``redact`` for other outputs."""

from __future__ import annotations

import json

import pytest
import structlog

from immutable_sdk.logs import configure_logging, get_logger
from immutable_sdk.redaction import REDACTED, redact, redact_text

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SESSION_KEY_ID = "ASIAY34FZKBOKMUTVV7A"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabc+/def==\n-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key {ACCESS_KEY_ID} used", f"key {REDACTED} used"),
        (f"creds={SESSION_KEY_ID},", f"creds={REDACTED},"),
        (f"aws_secret_access_key = {SECRET_KEY}\n", f"aws_secret_access_key = {REDACTED}\n"),
        (f"before\n{PRIVATE_KEY}\nafter", f"before\n{REDACTED}\nafter"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk", REDACTED),  # cut short
    ],
)
def test_secrets_inside_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ami-0123456789abcdef0",
        "sha1 " + "a" * 40,
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",  # a hex digest: lower case only
        "AKIA-not-a-key",
        "arn:aws:iam::123456789012:instance-profile/web",
        "https://example.com/a/long/path/segment/that/goes/on",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact_text(text) == text


def test_values_under_secret_names_at_any_depth() -> None:
    event = {
        "event": "launch",
        "Password": "hunter2",
        "db": {"DB_PASSWORD": "x", "host": "db.local", "port": 5432},
        "SessionToken": "abc",
        "steps": [{"client_secret": "s", "name": "ok"}, ("t", {"api_token": 1})],
        "credentials": {"AccessKeyId": "whatever", "nested": ["a"]},
        "private_key": "pem",
        "privateKey": "pem",
        "token": None,
        "fleet": "web",
    }
    assert redact(event) == {
        "event": "launch",
        "Password": REDACTED,
        "db": {"DB_PASSWORD": REDACTED, "host": "db.local", "port": 5432},
        "SessionToken": REDACTED,
        "steps": [{"client_secret": REDACTED, "name": "ok"}, ("t", {"api_token": REDACTED})],
        "credentials": REDACTED,
        "private_key": REDACTED,
        "privateKey": REDACTED,
        "token": None,
        "fleet": "web",
    }
    assert event["Password"] == "hunter2"  # a copy; the original is untouched


def test_sets_and_other_objects() -> None:
    assert redact({ACCESS_KEY_ID, "x"}) == {REDACTED, "x"}
    marker = object()
    assert redact(marker) is marker
    assert redact(3.5) == 3.5


def _log_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.fixture(autouse=True)
def _reset_structlog() -> None:
    yield
    structlog.reset_defaults()
    import immutable_sdk.logs

    immutable_sdk.logs._configured = None


def test_json_logs_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    log = get_logger(fleet="web")
    log.info(
        "assumed role", access_key=ACCESS_KEY_ID, secret_access_key=SECRET_KEY, extra=[SECRET_KEY]
    )
    try:
        raise RuntimeError(f"refused key {ACCESS_KEY_ID}")
    except RuntimeError:
        log.exception("call failed")
    first, second = (json.loads(line) for line in _log_lines(capsys))
    assert first["access_key"] == REDACTED and first["secret_access_key"] == REDACTED
    assert first["extra"] == [REDACTED] and first["fleet"] == "web"
    assert "RuntimeError" in second["exception"] and ACCESS_KEY_ID not in second["exception"]


def test_console_logs_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("console", debug=True)
    get_logger().debug("baking", password="hunter2", note=f"using {SESSION_KEY_ID}")
    (line,) = _log_lines(capsys)
    assert "hunter2" not in line and SESSION_KEY_ID not in line
    assert "baking" in line and REDACTED in line


def test_configure_is_idempotent_and_debug_filters(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    configure_logging("json")
    get_logger().debug("hidden")
    get_logger().info("shown")
    assert [json.loads(line)["event"] for line in _log_lines(capsys)] == ["shown"]


def test_stdlib_logging_goes_through_the_same_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    configure_logging("json", level="info")
    plugin_log = logging.getLogger("some_plugin.notifier")  # a plugin that uses stdlib logging
    plugin_log.info("posting with key %s", ACCESS_KEY_ID)
    plugin_log.debug("below the level")
    get_logger(fleet="web").info("sdk record")
    first, second = (json.loads(line) for line in _log_lines(capsys))
    assert first["event"] == f"posting with key {REDACTED}" and first["level"] == "info"
    assert first["logger"] == "some_plugin.notifier"
    assert second["event"] == "sdk record" and second["fleet"] == "web"


@pytest.mark.parametrize(("level", "shown"), [("warning", ["w"]), ("debug", ["d", "i", "w"])])
def test_the_level_filters_both_kinds(
    level: str, shown: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    configure_logging("json", level=level)
    logging.getLogger("plugin").debug("d")
    get_logger().info("i")
    logging.getLogger("plugin").warning("w")
    assert [json.loads(line)["event"] for line in _log_lines(capsys)] == shown


def test_cli_log_level_option_and_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    code = (
        "import logging, sys\n"
        "from immutable_sdk.cli import _give_global_options, main\n"
        "@main.command('emit-logs')\n"
        "def emit():\n"
        "    logging.getLogger('third.party').info('token=%s', 'ghp_' + 'a' * 36)\n"
        "    logging.getLogger('third.party').debug('quiet')\n"
        "_give_global_options(main.commands['emit-logs'])  # as for every registered command\n"
        "main(sys.argv[1:])\n"
    )
    import os

    def run(*args: str, **env: str) -> list[dict[str, object]]:
        out = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env},
        )
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stderr.splitlines()]

    (info,) = run("--log-format", "json", "emit-logs")
    assert info["logger"] == "third.party" and "a" * 36 not in str(info["event"])
    env = {"IMMUTABLE_SDK_LOG_FORMAT": "json", "IMMUTABLE_SDK_LOG_LEVEL": "debug"}
    assert [r["event"] for r in run("emit-logs", **env)][1] == "quiet"
    assert run("emit-logs", "--log-format", "json", "--log-level", "error") == []
