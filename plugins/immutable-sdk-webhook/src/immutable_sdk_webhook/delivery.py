"""One POST of one event: JSON body, optional timestamped HMAC-SHA256 signature, one deadline.

With a secret, each request carries

* ``X-Immutable-Sdk-Timestamp: <unix seconds>``, the time of this attempt, and
* ``X-Immutable-Sdk-Signature: sha256=<hex>``, the HMAC-SHA256 under the secret of
  ``<timestamp>.<body>`` (the timestamp's digits, a dot, the exact body bytes).

A receiver recomputes the signature over the bytes it got and rejects a timestamp too far from
its clock (``verify``), so a captured request cannot be replayed later. Retries are signed
afresh.

Each attempt is bounded as a whole by its deadline (connect, send, the answer's status line and
headers; its body is not read: a 2xx status is all a delivery needs). Redirects are never
followed: the signature must not reach another host, and a webhook that moved is a
configuration to fix.
The URL is never put in a message: a Slack-style URL carries its secret in the path; messages
name the endpoint by ``redacted(url)``, its scheme and host.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import time
import urllib.parse
from dataclasses import dataclass

from immutable_sdk.plugin import http_request

from . import __version__

SIGNATURE_HEADER = "X-Immutable-Sdk-Signature"
TIMESTAMP_HEADER = "X-Immutable-Sdk-Timestamp"
EVENT_HEADER = "X-Immutable-Sdk-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = f"immutable-sdk-webhook/{__version__}"
TOLERANCE = 300.0  # seconds a receiver accepts between a request's timestamp and its clock


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str | bytes, body: str | bytes, timestamp: int) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (unix seconds)."""
    message = str(int(timestamp)).encode() + b"." + _bytes(body)
    return "sha256=" + hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def verify(
    secret: str | bytes,
    body: str | bytes,
    signature: str | None,
    timestamp: str | int | None,
    *,
    tolerance: float = TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether a request is authentic and fresh: for receivers.

    ``secret``: the shared secret (``str`` is UTF-8 encoded, as the notifier encodes the
    environment variable's value). ``body``: the request body exactly as received, ``bytes`` or
    ``str`` (UTF-8; the notifier's bodies are ASCII JSON). ``signature`` and ``timestamp``: the
    ``X-Immutable-Sdk-Signature`` and ``X-Immutable-Sdk-Timestamp`` header values (None when
    missing: then False). ``tolerance``: seconds the timestamp may differ from ``now`` (default
    the receiver's ``time.time()``) either way. Compares in constant time.
    """
    if signature is None or timestamp is None:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, sent).encode(), signature.encode())


def redacted(url: str) -> str:
    """``url`` without what may be secret (user info, path, query): ``scheme://host[:port]``."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}" if host else f"{parts.scheme}://"


@dataclass(frozen=True)
class Answer:
    """What one attempt got: an HTTP status, or ``None`` and the reason it got none."""

    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def redirected(self) -> bool:
        return self.status is not None and 300 <= self.status < 400

    @property
    def retryable(self) -> bool:
        """Worth another try: no answer, a server error, or throttling."""
        return self.status is None or self.status >= 500 or self.status in (408, 429)


def post(
    url: str,
    body: bytes,
    event: str,
    secret: bytes | None,
    deadline: float,
    proxy: str | None = None,
    *,
    event_id: str = "",
) -> Answer:
    """POST ``body`` to ``url``, all within ``deadline`` seconds; never raises for network
    trouble, and never names the URL in ``Answer.error``."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
    }
    if event_id:  # the transition's identity: the same on a retry and from any process
        headers[IDEMPOTENCY_HEADER] = event_id
    if secret is not None:
        timestamp = int(time.time())
        headers[TIMESTAMP_HEADER] = str(timestamp)
        headers[SIGNATURE_HEADER] = sign(secret, body, timestamp)
    try:
        answer = http_request(
            "POST",
            url,
            deadline=deadline,
            body=body,
            headers=headers,
            max_body=0,
            proxy=proxy,
        )
    except TimeoutError:
        return Answer(None, f"no answer within {deadline:.3g}s")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Answer(None, _scrub(f"{type(exc).__name__}: {exc}", url, proxy))
    if answer.status >= 300:
        where = answer.location
        if 300 <= answer.status < 400:
            to = f" to {redacted(where)}" if where else ""
            return Answer(answer.status, f"HTTP {answer.status}: redirected{to}, not followed")
        return Answer(answer.status, f"HTTP {answer.status} {answer.reason}".strip())
    return Answer(answer.status)


def _scrub(text: str, *urls: str | None) -> str:
    """``text`` with every secret-bearing part of ``urls`` replaced by their redacted form."""
    for url in urls:
        if not url:
            continue
        parts = urllib.parse.urlsplit(url)
        secrets = [url, parts.path, parts.query, parts.username, parts.password]
        for secret in sorted((s for s in secrets if s and s != "/"), key=len, reverse=True):
            text = text.replace(secret, "[redacted]")
    return text
