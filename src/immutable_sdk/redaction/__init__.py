"""The one redactor: everything that leaves the process goes through ``redact``/``redact_text``.

It hides what ``secrets.find_secrets`` recognizes (token shapes, URL passwords, values after
secret-like names) and every value registered with ``register_secret``: the spec registers the
values of variables it marks ``!secret``, of keys with secret-like names (``vars.db_password``,
secret-looking tags) and of ``${VAR}`` substitutions from secret-like environment variables, so
those are hidden wherever they appear, even without their name next to them.

Where it is applied (one function, several doors):

* the CLI's stdout and stderr (``redact_std_streams``): console tables, ``-o json``, log lines,
  the final ``error:`` line, tracebacks;
* structlog's processor chain (``logs``), for library users without the CLI;
* every event (``Context.emit``) and every argument of a notify hook handed to plugins
  (``plugins.Plugins.hook``), so a notifier (the webhook) never sees a secret;
* the text of every ``ImmutableSdkError`` (``str(exc)``), hence rollout and journal errors in the
  state store, whose ``error`` texts are redacted again when written (``state.records``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import sys
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import IO, Any, cast

from .shapes import find_secrets, is_placeholder, is_secret_name

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 4  # shorter registered values would hide ordinary words; they are ignored
MIN_LINE_LENGTH = 8  # each line of a multi-line secret this long is hidden on its own

_lock = threading.Lock()
_known: dict[str, None] = {}  # registered secret values, in registration order
_known_pattern: re.Pattern[str] | None = None


def _forms(value: object) -> set[str]:
    """How ``value`` may appear in output: as is, URL-quoted, JSON-escaped, line by line."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return set()
    text = str(value).strip()
    if len(text) < MIN_SECRET_LENGTH or is_placeholder(text):
        return set()
    forms = {text, urllib.parse.quote(text, safe=""), json.dumps(text)[1:-1]}
    lines = [line.strip() for line in text.splitlines()]
    forms.update(line for line in lines if len(line) >= MIN_LINE_LENGTH and len(lines) > 1)
    return forms


def register_secrets(values: Iterable[object]) -> bool:
    """Hide each of ``values`` (and its URL- and JSON-escaped forms) in all output from now on.

    Values shorter than ``MIN_SECRET_LENGTH``, non-strings and placeholders (``${VAR}``,
    ``true``, ``***``) are ignored; returns whether anything new was registered.
    """
    global _known_pattern
    forms = set().union(*(_forms(v) for v in values))
    with _lock:
        new = [f for f in forms if f not in _known]
        if not new:
            return False
        _known.update(dict.fromkeys(new))
        ordered = sorted(_known, key=len, reverse=True)  # the longest form wins
        _known_pattern = re.compile("|".join(re.escape(k) for k in ordered))
    return True


def register_secret(value: object) -> bool:
    """``register_secrets`` for one value."""
    return register_secrets([value])


def known_secret_count() -> int:
    return len(_known)


def forget_secrets() -> None:
    """Forget every registered value (tests; a long-lived process loading another spec)."""
    global _known_pattern
    with _lock:
        _known.clear()
        _known_pattern = None


def redact_text(text: str) -> str:
    """``text`` with registered values and secret-looking spans replaced by ``[redacted]``."""
    if len(text) < MIN_SECRET_LENGTH:
        return text
    spans = [(f.start, f.end) for f in find_secrets(text)]
    pattern = _known_pattern
    if pattern is not None:
        spans += [m.span() for m in pattern.finditer(text)]
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    done = 0
    for start, end in spans:
        if end <= done:
            continue
        if start >= done:
            out.append(text[done:start])
            out.append(REDACTED)
        done = end
    out.append(text[done:])
    return "".join(out)


def _secret_value(value: Any) -> bool:
    """A value under a secret-like key that is worth hiding (not nothing, not a flag)."""
    return value is not None and not isinstance(value, bool) and value not in ("", REDACTED)


def redact(obj: Any) -> Any:
    """A copy of ``obj`` with secrets replaced, at any depth.

    Strings go through ``redact_text``; a mapping's values under secret-like keys are replaced
    whole; lists, tuples, sets and dataclass instances (events, steps, rollout infos) are
    copied with their contents redacted. Other objects are returned as they are.
    """
    if isinstance(obj, Enum):
        return obj
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, Mapping):
        return {
            (redact_text(k) if isinstance(k, str) else k): (
                REDACTED if is_secret_name(k) and _secret_value(v) else redact(v)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if type(obj) is tuple:
        return tuple(redact(v) for v in obj)
    if isinstance(obj, (set, frozenset)):
        return type(obj)(redact(v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {}
        for f in dataclasses.fields(obj):
            if f.init:
                value = getattr(obj, f.name)
                hidden = REDACTED if is_secret_name(f.name) and _secret_value(value) else None
                new = hidden or redact(value)
                if new != value:
                    changes[f.name] = new
        return dataclasses.replace(obj, **changes) if changes else obj
    return obj


class RedactingStream(io.TextIOBase):
    """A text stream that redacts whatever is written through it to ``stream``.

    It has no ``buffer``: nobody (click, rich) can go around it with bytes.
    """

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.stream.write(redact_text(text))
        return len(text)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.stream, "errors", None)

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self.stream, name)


def redacting(stream: IO[str]) -> IO[str]:
    """``stream`` wrapped in a RedactingStream (once)."""
    if isinstance(stream, RedactingStream):
        return stream
    return cast(IO[str], RedactingStream(stream))


def redact_std_streams() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` redact everything written to them."""
    if sys.stdout is not None:  # None without a console (pythonw)
        sys.stdout = redacting(sys.stdout)
    if sys.stderr is not None:
        sys.stderr = redacting(sys.stderr)
