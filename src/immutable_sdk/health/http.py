"""The ``http`` health check: an HTTP request to every instance, judged by status and body.

Each poll sends one request per instance, all at once (a bounded thread pool; stdlib only). An
instance passes after ``successes`` good answers in a row and makes the release bad after
``failures`` bad ones in a row. A wrong status, a body that does not match or a broken answer is
bad. Not answering at all (connection refused, reset, timed out) is bad too once the instance
has answered before; until its first answer the instance is taken to be still starting, as a load
balancer's ``initial`` state, and the gate's timeout bounds that wait. Proxies from the
environment are ignored (instances are reached directly) and redirects to another host are never
followed: the redirect itself is the answer.

``request_timeout`` bounds each probe as a whole: connecting, sending, following same-host
redirects and reading the status, headers and the first 64 KiB of the body. An endpoint that
dribbles its answer a byte at a time is cut off at the deadline like one that never answers
(``immutable_sdk.plugin.http_request``), so one poll takes at most ``request_timeout``.
"""

from __future__ import annotations

import http.client
import re
import ssl
import string
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from immutable_sdk.plugin import (
    CheckContext,
    ConfigProblem,
    GateTargets,
    HealthCheckFactory,
    HealthReport,
    HealthStatus,
    HttpAnswer,
    PluginContext,
    PluginError,
    Registry,
    Target,
    hookimpl,
    http_request,
    parse_duration,
    placeholder_problems,
)

PLACEHOLDERS = ("private_ip", "public_ip", "instance_id")
_SAMPLES = {"private_ip": "10.0.0.1", "public_ip": "203.0.113.1", "instance_id": "i-0abc"}
MAX_WORKERS = 32
MAX_BODY = 64 * 1024  # bytes of the body read for body_regex
MAX_REDIRECTS = 5  # same-host redirects followed within one probe
REDIRECTS = frozenset({301, 302, 303, 307, 308})

_DURATION = {"type": ["string", "number"], "format": "positive-duration"}

SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "An HTTP request to every instance; passes on the expected status and body.",
    "properties": {
        "type": {"const": "http", "description": "Selects this check."},
        "url": {
            "type": "string",
            "pattern": "^https?://",
            "description": "URL template, e.g. 'http://{private_ip}:8080/healthz'; placeholders: "
            "{private_ip}, {public_ip}, {instance_id}, as they are ('{{' and '}}' write braces). "
            "No credentials (user:password@): they would not be sent, and would be shown.",
        },
        "expect_status": {
            "oneOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 100, "maximum": 599},
                    "minItems": 1,
                },
            ],
            "default": 200,
            "description": "The status code (or list of codes) of a good answer.",
        },
        "body_regex": {
            "type": "string",
            "format": "regex",
            "description": "A regular expression the body (its first 64 KiB) must contain.",
        },
        "successes": {
            "type": "integer",
            "minimum": 1,
            "default": 2,
            "description": "Good answers in a row for an instance to pass.",
        },
        "failures": {
            "type": "integer",
            "minimum": 1,
            "default": 3,
            "description": "Bad answers in a row that make the release bad. No answer at all "
            "counts only after the instance has answered once.",
        },
        "request_timeout": {
            **_DURATION,
            "default": "5s",
            "description": "How long one probe may take in all, like '5s': connecting, "
            "sending, same-host redirects and reading the answer (the first 64 KiB of its "
            "body). A slower answer counts as no answer.",
        },
        "verify_tls": {
            "type": "boolean",
            "default": True,
            "description": "Verify HTTPS certificates; false for self-signed ones on instance IPs.",
        },
    },
    "required": ["type", "url"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class _Outcome:
    kind: str  # "good", "bad" (answered wrongly) or "silent" (no answer)
    text: str


@dataclass
class _Streak:
    good: int = 0
    bad: int = 0
    answered: bool = False


class HttpCheck:
    def __init__(
        self,
        url: str,
        *,
        expect_status: tuple[int, ...] = (200,),
        body_regex: str | None = None,
        successes: int = 2,
        failures: int = 3,
        request_timeout: float = 5.0,
        verify_tls: bool = True,
    ) -> None:
        self.url = url
        self.expect_status = expect_status
        self.body_regex = re.compile(body_regex) if body_regex is not None else None
        self.successes = successes
        self.failures = failures
        self.request_timeout = request_timeout
        self._tls = ssl.create_default_context()
        if not verify_tls:
            self._tls.check_hostname = False
            self._tls.verify_mode = ssl.CERT_NONE
        self._streaks: dict[str, _Streak] = {}

    def check(self, targets: GateTargets, ctx: PluginContext) -> HealthReport:
        instances = list(targets.instances)
        if not instances:
            return HealthReport.pending("no instances to check yet")
        workers = min(MAX_WORKERS, len(instances))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http-check") as pool:
            outcomes = list(pool.map(self._probe, instances))
        details: dict[str, str] = {}
        passed = 0
        failed: list[str] = []
        for target, outcome in zip(instances, outcomes, strict=True):
            status, details[target.instance_id] = self._count(target.instance_id, outcome)
            passed += status is HealthStatus.HEALTHY
            if status is HealthStatus.UNHEALTHY:
                failed.append(target.instance_id)
        total = len(instances)
        if failed:
            first = failed[0]
            summary = f"{len(failed)}/{total} instances failed ({first}: {details[first]})"
            return HealthReport(HealthStatus.UNHEALTHY, details, summary)
        if passed == total:
            return HealthReport(HealthStatus.HEALTHY, details, f"{total}/{total} instances passed")
        return HealthReport(HealthStatus.PENDING, details, f"{passed}/{total} instances passed")

    def snapshot(self) -> dict[str, Any]:
        """The streaks so far (health-check contract version 2): instance id -> [good, bad,
        answered]."""
        return {
            "streaks": {i: [s.good, s.bad, s.answered] for i, s in sorted(self._streaks.items())}
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take over the streaks of ``snapshot()`` (ValueError for anything else)."""
        streaks = state.get("streaks")
        if not isinstance(streaks, Mapping):
            raise ValueError("http check state: expected {'streaks': {...}}")
        restored: dict[str, _Streak] = {}
        for instance_id, value in streaks.items():
            if not (isinstance(value, (list, tuple)) and len(value) == 3):
                raise ValueError(f"http check state: streak of {instance_id}: {value!r}")
            good, bad, answered = value
            restored[str(instance_id)] = _Streak(int(good), int(bad), bool(answered))
        self._streaks = restored

    def _count(self, instance_id: str, outcome: _Outcome) -> tuple[HealthStatus, str]:
        streak = self._streaks.setdefault(instance_id, _Streak())
        if outcome.kind == "good":
            streak.answered = True
            streak.good, streak.bad = streak.good + 1, 0
            text = f"{outcome.text} ({min(streak.good, self.successes)}/{self.successes})"
            if streak.good >= self.successes:
                return HealthStatus.HEALTHY, text
            return HealthStatus.PENDING, text
        streak.good = 0
        if outcome.kind == "silent" and not streak.answered:
            return HealthStatus.PENDING, f"not answering yet: {outcome.text}"
        streak.answered = True
        streak.bad += 1
        text = f"{outcome.text} ({streak.bad}/{self.failures} failures)"
        if streak.bad >= self.failures:
            return HealthStatus.UNHEALTHY, text
        return HealthStatus.PENDING, text

    def _probe(self, target: Target) -> _Outcome:
        values = {name: getattr(target, name) for name in PLACEHOLDERS}
        missing = [name for name in _placeholders(self.url) if not values.get(name)]
        if missing:
            return _Outcome("bad", f"no {missing[0]} to fill the URL template")
        url = self.url.format_map(values)
        try:
            answer = self._get(url)
        except TimeoutError:
            limit = f"{self.request_timeout:g}s"
            return _Outcome("silent", f"GET {url}: no whole answer within {limit} (timed out)")
        except http.client.HTTPException as exc:
            return _Outcome("bad", f"GET {url}: broken answer: {exc!r}")
        except ValueError as exc:
            return _Outcome("bad", f"GET {url}: {exc}")
        except OSError as exc:  # refused, reset, unreachable
            return _Outcome("silent", f"GET {url}: {exc or type(exc).__name__}")
        return self._judge(url, answer.status, answer.body)

    def _get(self, url: str) -> HttpAnswer:
        """GET ``url``, following same-host redirects, all within ``request_timeout``."""
        end = time.monotonic() + self.request_timeout
        for _ in range(MAX_REDIRECTS + 1):
            answer = http_request(
                "GET",
                url,
                deadline=end - time.monotonic(),
                headers={"User-Agent": "immutable-sdk-health"},
                max_body=MAX_BODY,
                tls=self._tls,
            )
            if answer.status not in REDIRECTS or not answer.location:
                return answer
            old = urllib.parse.urlsplit(url)
            url = urllib.parse.urljoin(url, answer.location)
            new = urllib.parse.urlsplit(url)
            if (new.scheme, new.netloc) != (old.scheme, old.netloc):
                return answer  # another host: the redirect itself is the answer
        return answer

    def _judge(self, url: str, status: int, body: bytes) -> _Outcome:
        if status not in self.expect_status:
            expected = " or ".join(str(s) for s in self.expect_status)
            return _Outcome("bad", f"GET {url}: status {status}, expected {expected}")
        if self.body_regex is not None:
            text = body.decode("utf-8", errors="replace")
            if not self.body_regex.search(text):
                return _Outcome(
                    "bad", f"GET {url}: body does not match /{self.body_regex.pattern}/"
                )
        return _Outcome("good", f"GET {url}: {status}")


def _placeholders(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


def url_problems(url: str) -> list[str]:
    """What makes ``url`` unusable as a URL template (empty: nothing)."""
    problems = placeholder_problems(url, PLACEHOLDERS)
    if problems:
        return problems
    try:
        parsed = urllib.parse.urlsplit(url.format_map(_SAMPLES))
        parsed.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as exc:
        return [f"not a valid URL: {exc}"]
    if parsed.username is not None or parsed.password is not None:
        return [
            "credentials in the URL (user:password@) are not sent, and would be shown in "
            "every report: health endpoints must answer without them"
        ]
    if not parsed.hostname:
        return ["the URL names no host; write one, such as 'http://{private_ip}:8080/'"]
    return []


def check(config: Mapping[str, Any], context: CheckContext) -> Iterator[ConfigProblem]:
    """The URL template (the schema checked its scheme; body_regex is ``format: regex``)."""
    for problem in url_problems(str(config["url"])):
        yield ConfigProblem(("url",), problem)


def factory(config: Mapping[str, Any]) -> HttpCheck:
    url = str(config["url"])
    problems = url_problems(url)
    if problems:
        raise PluginError("http", f"url {url!r}: {problems[0]}")
    expect = config.get("expect_status", 200)
    body_regex = config.get("body_regex")
    if body_regex is not None:
        try:
            re.compile(str(body_regex))
        except re.error as exc:
            raise PluginError("http", f"body_regex {body_regex!r}: {exc}") from None
    return HttpCheck(
        url,
        expect_status=tuple(expect) if isinstance(expect, (list, tuple)) else (int(expect),),
        body_regex=None if body_regex is None else str(body_regex),
        successes=int(config.get("successes", 2)),
        failures=int(config.get("failures", 3)),
        request_timeout=parse_duration(config.get("request_timeout", "5s")),
        verify_tls=bool(config.get("verify_tls", True)),
    )


@hookimpl
def immutable_sdk_add_health_checks(registry: Registry[HealthCheckFactory]) -> None:
    registry.add(
        "http",
        factory,
        schema=SCHEMA,
        description="HTTP request to every instance, judged by status code and body.",
        check=check,
    )
