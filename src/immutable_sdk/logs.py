"""Logging, configured in one place: one pipeline for every log record of the process.

The SDK and plugins log through ``get_logger`` (structlog, ``immutable_sdk.plugin``); a plugin
or library that uses the standard library's ``logging`` reaches the same pipeline, because the
root logger's one handler renders its records with the same processors. Every record passes
through ``redaction.redact`` (the process's one redactor: values under secret-like keys,
secret shapes inside strings, exception text included), then becomes a console line or a JSON
object (``--log-format json``) on stderr. ``--log-level`` (``IMMUTABLE_SDK_LOG_LEVEL``) is the
least severe level shown, for both.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from .redaction import redact

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
LEVELS["error"] = logging.ERROR
# Libraries that narrate every request: from WARNING up (INFO at --log-level debug, which is
# for the SDK's and plugins' own records).
CHATTY = ("botocore", "boto3", "urllib3", "s3transfer", "werkzeug", "moto")

_configured: tuple[str, int] | None = None


def redact_processor(logger: Any, method_name: str, event_dict: Any) -> Any:
    """structlog processor: ``redact`` over the whole event, exception text included."""
    return redact(event_dict)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on ``sys.stderr`` as it is at each record (test runners and the CLI's
    redacting wrapper replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _renderer(fmt: str) -> Any:
    if fmt == "json":
        return structlog.processors.JSONRenderer(default=str)
    return structlog.dev.ConsoleRenderer(colors=False)


def configure_logging(fmt: str = "console", *, debug: bool = False, level: str = "") -> None:
    """Configure the process's logging; calling it again with the same settings is a no-op.

    ``fmt`` is ``console`` (human lines) or ``json`` (one JSON object a line); ``level`` one
    of ``LEVELS`` (default ``info``, ``debug`` with ``debug=True``). Records of structlog and
    of the standard library alike go to stderr, after secrets are redacted.
    """
    global _configured
    threshold = LEVELS.get((level or ("debug" if debug else "info")).lower(), logging.INFO)
    if _configured == (fmt, threshold):
        return
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # as text, so that it is redacted too
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_processor,
            _renderer(fmt),
        ],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    handler.set_name("immutable_sdk")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "immutable_sdk"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    # Libraries' own INFO chatter ("Found credentials in environment variables") only at
    # --log-level debug; raised, never lowered (the sandbox quiets werkzeug to ERROR).
    floor = logging.INFO if threshold <= logging.DEBUG else logging.WARNING
    for name in CHATTY:
        chatty = logging.getLogger(name)
        chatty.setLevel(max(chatty.level, threshold, floor))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    _configured = (fmt, threshold)


def get_logger(**context: Any) -> Any:
    """A structlog logger bound to ``context``; configures defaults if nobody did yet."""
    if _configured is None:
        configure_logging()
    return structlog.get_logger("immutable_sdk", **context)
