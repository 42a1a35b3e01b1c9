"""structlog, configured in one place: console or JSON lines on stderr, with secrets redacted.

``redact(obj)`` is the same redaction for any other output (JSON documents, events): it returns
a copy in which

* values under a key named like password, secret, token, credential, api key or private key
  (case-insensitive, at any depth of dicts and lists) are replaced by ``[redacted]``;
* inside every string, AWS access key ids (``AKIA...``, ``ASIA...``), AWS secret access keys
  (40 characters of mixed-case base64), PEM private key blocks and long high-entropy tokens
  are replaced (the shapes are defined in ``immutable_sdk.secrets``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

import structlog

from .secrets import is_secret_key, replace_secrets

REDACTED = "[redacted]"

_configured: tuple[str, bool] | None = None


def redact_text(text: str) -> str:
    """``text`` with private key blocks, AWS keys and high-entropy tokens replaced."""
    return replace_secrets(text, REDACTED)


def redact(obj: Any) -> Any:
    """A copy of ``obj`` (mappings, lists, tuples, sets, strings) with secrets replaced."""
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, Mapping):
        return {
            k: (REDACTED if is_secret_key(k) and v is not None else redact(v))
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if type(obj) is tuple:
        return tuple(redact(v) for v in obj)
    if isinstance(obj, (set, frozenset)):
        return type(obj)(redact(v) for v in obj)
    return obj


def redact_processor(logger: Any, method_name: str, event_dict: Any) -> Any:
    """structlog processor: ``redact`` over the whole event, exception text included."""
    return redact(event_dict)


def _stderr_logger(*args: Any) -> structlog.PrintLogger:
    # sys.stderr as it is now: test runners and the CLI runner swap it.
    return structlog.PrintLogger(sys.stderr)


def configure_logging(fmt: str = "console", *, debug: bool = False) -> None:
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
