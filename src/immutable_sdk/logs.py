"""structlog, configured in one place: console or JSON lines on stderr, with secrets redacted.

Every event dict passes through ``redaction.redact`` (the process's one redactor) before it is
rendered: values under secret-like keys, secret shapes inside strings, exception text included.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from .redaction import redact

_configured: tuple[str, bool] | None = None


def redact_processor(logger: Any, method_name: str, event_dict: Any) -> Any:
    """structlog processor: ``redact`` over the whole event, exception text included."""
    return redact(event_dict)


def _stderr_logger(*args: Any) -> structlog.PrintLogger:
    # sys.stderr as it is now: test runners and the CLI runner swap it.
    return structlog.PrintLogger(sys.stderr)


def configure_logging(fmt: str = "console", *, debug: bool = False, level: str = "") -> None:
    """Configure structlog for the process; calling it again with the same settings is a no-op.

    ``fmt`` is ``console`` (human lines) or ``json`` (one JSON object a line); both go to
    stderr, after secrets are redacted.
    """
    global _configured
    if _configured == (fmt, debug):
        return
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # as text, so that it is redacted too
        redact_processor,
    ]
    if fmt == "json":
        processors.append(structlog.processors.JSONRenderer(default=str))
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if debug else logging.INFO
        ),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    _configured = (fmt, debug)


def get_logger(**context: Any) -> Any:
    """A structlog logger bound to ``context``; configures defaults if nobody did yet."""
    if _configured is None:
        configure_logging()
    return structlog.get_logger(**context)
