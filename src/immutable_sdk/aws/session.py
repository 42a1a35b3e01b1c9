"""One boto3 session per engine: clients, endpoints, retries and the API call counter.

Every AWS call of the SDK goes through a client made here, so that retries, the endpoint
override (sandbox, ``--endpoint-url``, ``AWS_ENDPOINT_URL``) and call counting apply everywhere.
"""

from __future__ import annotations

import ast
import copy
import html
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.config
import botocore.configprovider
import botocore.exceptions
import botocore.parsers
import botocore.session

from ..errors import AwsError, UsageError
from . import fence
from .limiter import RateLimiter
from .loopback import SANDBOX_CREDENTIALS, is_loopback_url, missing_service, sandbox_env

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "PriorRequestNotComplete",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
    }
)
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "AuthFailure",
        "UnrecognizedClientException",
        "RequestExpired",
        "SignatureDoesNotMatch",
    }
)


@dataclass
class ApiCalls:
    """AWS API calls by ``service.Operation``, and HTTP attempts (calls plus retries)."""

    calls: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _call(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1

    def _attempt(self, name: str) -> None:
        with self._lock:
            self.attempts[name] += 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def retries(self) -> int:
        return max(0, sum(self.attempts.values()) - self.total)

    def mutating(self) -> dict[str, int]:
        """Calls whose operation changes something (not Describe*, Get*, List*)."""
        return {
            k: v
            for k, v in self.calls.items()
            if not k.split(".", 1)[1].startswith(fence.READ_PREFIXES)
        }

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.calls.items()))

    def since(self, before: Mapping[str, int]) -> dict[str, int]:
        now = self.snapshot()
        return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "retries": self.retries, "by_operation": self.snapshot()}


class AwsSession:
    """Clients for one account and endpoint, shared by every part of one engine."""

    def __init__(
        self,
        region: str,
        *,
        endpoint_url: str | None = None,
        max_attempts: int = 8,
        profile: str | None = None,
        credentials: Mapping[str, str] | None = None,
        limiter: RateLimiter | None = None,
        rate_limit: bool | None = None,
        sandboxed: bool = False,
    ) -> None:
        self.region = region
        self.sandboxed = sandboxed
        if sandboxed:
            # The sandbox promise, made here where every client is made: an endpoint on
            # loopback and nothing from the user's environment (no profile, config or
            # credential files, no AWS_ENDPOINT_URL, no proxy).
            if profile is not None:
                raise UsageError(
                    f"--profile {profile}: a sandboxed run uses the emulator's dummy "
                    "credentials, never a profile; drop --profile or --sandbox"
                )
            if not is_loopback_url(endpoint_url):
                raise UsageError(
                    f"a sandboxed run sends AWS calls to 127.0.0.1 only, got endpoint "
                    f"{endpoint_url!r}"
                )
            credentials = credentials or SANDBOX_CREDENTIALS
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        self.max_attempts = max_attempts
        self.calls = ApiCalls()
        creds = dict(credentials or {})
        self._session = boto3.session.Session(
            profile_name=profile,
            region_name=region,
            aws_access_key_id=creds.get("aws_access_key_id"),
            aws_secret_access_key=creds.get("aws_secret_access_key"),
            aws_session_token=creds.get("aws_session_token"),
            botocore_session=_isolated_botocore_session() if sandboxed else None,
        )
        self._config = botocore.config.Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=50,
            proxies={} if sandboxed else None,  # HTTPS_PROXY would carry calls off the host
        )
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        events = self._session.events
        events.register("before-call.*.*", self._on_call)
        events.register("before-send.*.*", self._on_send)
        # Clients copy the session's handlers when they are made: register the lock fence
        # here, before any client exists (fence.install then arms it per thread).
        self.fence_id = id(self)  # shared by in_region() copies: one fence for all regions
        events.register("before-send.*.*", fence.handler(self.fence_id))
        # One limiter per session: every client of the engine shares its buckets. AWS's limits
        # protect an account; an emulator on loopback has none (rate_limit=True forces it).
        if rate_limit is None:
            rate_limit = limiter is not None or not _loopback(self.endpoint_url)
        self.limiter = (limiter or RateLimiter()) if rate_limit else None
        if self.limiter is not None:
            events.register("before-send.*.*", self.limiter.on_send)

    def _on_call(self, model: Any, **_: Any) -> None:
        self.calls._call(f"{model.service_model.service_name}.{model.name}")

    def _on_send(self, request: Any, event_name: str = "", **_: Any) -> None:
        # event_name is before-send.<service-id>.<Operation>
        parts = event_name.split(".")
        self.calls._attempt(".".join(parts[1:3]) if len(parts) >= 3 else event_name)

    @property
    def events(self) -> Any:
        """botocore's event system of this session (tests hook ``before-send`` for faults)."""
        return self._session.events

    def client(self, service: str, region: str | None = None, *, retries: bool = True) -> Any:
        """A shared client; ``retries=False`` for callers that retry on the engine's clock."""
        region = region or self.region
        key = (service, region) if retries else (service, f"{region}:no-retries")
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                if self.sandboxed and not is_loopback_url(self.endpoint_url):
                    raise UsageError(f"a sandboxed session refuses endpoint {self.endpoint_url!r}")
                if self.sandboxed:
                    missing = missing_service(service)
                    if missing is not None:
                        raise UsageError(missing)
                config = self._config
                if not retries:
                    config = config.merge(botocore.config.Config(retries={"total_max_attempts": 1}))
                client = self._session.client(
                    service,  # type: ignore[call-overload]
                    region_name=region,
                    endpoint_url=self.endpoint_url,
                    config=config,
                )
                self._clients[key] = client
            return client

    def in_region(self, region: str) -> AwsSession:
        """This session with ``region`` as the default region of its clients. Everything else
        is shared: credentials, endpoint, clients, the call counter and the rate limiter."""
        if region == self.region:
            return self
        other = copy.copy(self)
        other.region = region
        return other

    def credentials_env(self) -> dict[str, str]:
        """The session's resolved credentials as environment variables (for packer).

        A sandboxed session's also unset the user's profile and credential sources and point
        proxies at a dead loopback port (``emulator.sandbox_env``), so that a subprocess
        started with ``{**os.environ, **credentials_env()}`` reaches the emulator only.
        """
        if self.sandboxed and self.endpoint_url:
            return sandbox_env(self.endpoint_url, self.region)
        creds = self._session.get_credentials()
        if creds is None:
            return {}
        frozen = creds.get_frozen_credentials()
        env = {
            "AWS_ACCESS_KEY_ID": str(frozen.access_key),
            "AWS_SECRET_ACCESS_KEY": str(frozen.secret_key),
        }
        if frozen.token:
            env["AWS_SESSION_TOKEN"] = frozen.token
        return env


def _loopback(url: str | None) -> bool:
    return is_loopback_url(url)


def _isolated_botocore_session() -> botocore.session.Session:
    """A botocore session that reads no environment variable and no file under ~/.aws: a
    sandboxed session must not pick up the user's profile, region, endpoint or credentials."""
    variables = {
        name: (
            config_name,
            None,  # no environment variable
            os.devnull if name in ("config_file", "credentials_file") else default,
            converter,
        )
        for name, (config_name, _, default, converter) in (
            botocore.configprovider.BOTOCORE_DEFAUT_SESSION_VARIABLES.items()
        )
    }
    return botocore.session.Session(session_vars=variables)


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "") or None
    return None


_TAG = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def readable(message: str, limit: int = 300) -> str:
    """An error message fit for one line: an HTML error page (what an emulator or a proxy
    sends instead of AWS's answer) becomes its title and text, whitespace is folded, and a
    long text is cut."""
    text = message
    if "<" in text and re.search(r"<(!doctype|html|head|body|title|h1|p)\b", text, re.I):
        title = _TITLE.search(text)
        body = _TAG.sub(" ", _TITLE.sub(" ", text))
        text = " ".join(((title.group(1) + ":") if title else "", body))
        text = html.unescape(text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _response_body(text: str) -> str:
    """The body that botocore quotes (as a bytes literal) in a ResponseParserError."""
    start = text.find("b'") if "b'" in text else text.find('b"')
    if start < 0:
        return ""
    try:
        body = ast.literal_eval(text[start:].strip())
    except (ValueError, SyntaxError):
        return ""
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else ""


def to_aws_error(exc: BaseException, doing: str = "") -> AwsError:
    """A clear AwsError for a botocore failure (credentials, throttling, refusals)."""
    prefix = f"{doing}: " if doing else ""
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return AwsError(
            prefix + "no AWS credentials found; configure a profile, set AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, or use --sandbox",
            code="NoCredentials",
        )
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        op = getattr(exc, "operation_name", None)
        msg = readable(str(err.get("Message", "")) or str(exc))
        if code in CREDENTIAL_CODES:
            msg = f"AWS credentials were refused ({code}: {msg}); refresh or renew them"
        elif code in THROTTLING_CODES:
            msg = f"AWS kept throttling {op} after retries ({code}: {msg})"
        else:
            msg = f"{op} failed: {code}: {msg}"
        return AwsError(prefix + msg, code=code, operation=op)
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return AwsError(prefix + f"cannot reach AWS: {exc}", code="EndpointConnectionError")
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return AwsError(prefix + str(exc), code=type(exc).__name__)
    if isinstance(exc, botocore.parsers.ResponseParserError):
        page = _response_body(str(exc))
        return AwsError(
            prefix
            + "the endpoint sent a response that is not AWS's"
            + (f": {readable(page)}" if page else " (an error page?)"),
            code="ResponseParserError",
        )
    return AwsError(prefix + repr(exc))


AWS_EXCEPTIONS = (
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
    botocore.parsers.ResponseParserError,
)


def is_aws_exception(exc: BaseException) -> bool:
    return isinstance(exc, AWS_EXCEPTIONS)


@contextmanager
def aws_errors(doing: str = "") -> Iterator[None]:
    """Translate botocore exceptions raised inside the block into AwsError."""
    try:
        yield
    except AWS_EXCEPTIONS as exc:
        raise to_aws_error(exc, doing) from exc
