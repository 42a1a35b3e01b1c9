"""One POST of one event: JSON body, optional HMAC-SHA256 signature, bounded timeout.

The signature header is ``X-Immutable-Sdk-Signature: sha256=<hex>``, the HMAC-SHA256 of the
exact request body under the shared secret; a receiver recomputes it over the bytes it got and
compares with ``hmac.compare_digest`` (see ``verify``).
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request
from dataclasses import dataclass

from . import __version__

SIGNATURE_HEADER = "X-Immutable-Sdk-Signature"
EVENT_HEADER = "X-Immutable-Sdk-Event"
USER_AGENT = f"immutable-sdk-webhook/{__version__}"


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (for receivers)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


@dataclass(frozen=True)
class Answer:
    """What one attempt got: an HTTP status, or ``None`` and the reason it got none."""

    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """Worth another try: no answer, a server error, or throttling."""
        return self.status is None or self.status >= 500 or self.status in (408, 429)


# Proxies from the environment are not used: the endpoint is reached as configured.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post(url: str, body: bytes, event: str, secret: bytes | None, timeout: float) -> Answer:
    """POST ``body`` to ``url`` within ``timeout`` seconds; never raises for network trouble."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=max(timeout, 0.001)) as response:
            response.read()
            return Answer(response.status)
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Answer(None, str(reason) or type(exc).__name__)
