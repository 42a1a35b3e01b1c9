"""Registers the ``webhook`` notifier (the module the ``immutable_sdk`` entry point names).

In a spec::

    notifiers:
      - type: webhook
        url_env: DEPLOY_WEBHOOK_URL         # or url: https://hooks.example.com/deployments
        secret_env: DEPLOY_WEBHOOK_SECRET   # timestamped HMAC-SHA256 signature, optional
        timeout: 5s
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from immutable_sdk.plugin import (
    NotifierFactory,
    PluginError,
    Registry,
    hookimpl,
    parse_duration,
    proxy_from_environment,
)

from .notifier import Settings, WebhookNotifier

DURATION = {"type": ["string", "number"], "format": "duration"}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Post every rollout lifecycle event as JSON to a URL.",
    "properties": {
        "type": {"const": "webhook", "description": "Selects this notifier."},
        "url": {
            "type": "string",
            "pattern": "^https?://",
            "x-expect": "an http:// or https:// URL",
            "description": "Where each event is POSTed as a JSON object. Never logged (only "
            "its scheme and host are). Give url or url_env.",
        },
        "url_env": {
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
            "x-expect": "the name of an environment variable",
            "description": "An environment variable holding the URL, for URLs that carry a "
            "secret (Slack-style): it then stays out of the spec. Give url or url_env.",
        },
        "secret_env": {
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
            "x-expect": "the name of an environment variable",
            "description": "An environment variable holding the HMAC secret: each request then "
            "carries X-Immutable-Sdk-Timestamp: <unix seconds> and X-Immutable-Sdk-Signature: "
            "sha256=<HMAC-SHA256 of '<timestamp>.<body>'>.",
        },
        "timeout": {
            **DURATION,
            "format": "positive-duration",
            "description": "Time allowed per attempt, from connecting to the last byte of the "
            "answer (default 5s).",
        },
        "retries": {
            "type": "integer",
            "minimum": 0,
            "maximum": 10,
            "description": "Attempts after a failed first one (default 3).",
        },
        "backoff": {
            **DURATION,
            "description": "Wait before the first retry, doubling for each next one (default 1s).",
        },
        "queue_size": {
            "type": "integer",
            "minimum": 1,
            "description": "Events kept waiting for delivery; beyond that the oldest waiting "
            "one is dropped and counted as lost (default 1000).",
        },
        "flush_timeout": {
            **DURATION,
            "description": "How long closing may wait for queued events to be delivered; "
            "what is left then is counted as lost (default 10s).",
        },
    },
    "required": ["type"],
    "anyOf": [{"required": ["url"]}, {"required": ["url_env"]}],
    "dependentSchemas": {
        "url": {"properties": {"url_env": {"not": {}, "x-expect": "url or url_env, not both"}}}
    },
    "additionalProperties": False,
}


def settings(config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """The notifier's settings from its (validated) spec block.

    The proxy comes from ``HTTPS_PROXY`` / ``HTTP_PROXY`` (``NO_PROXY`` exempts hosts), as
    ``urllib`` reads them.
    """
    environ = os.environ if environ is None else environ
    url = _url(config, environ)
    secret = None
    name = config.get("secret_env")
    if name is not None:
        value = environ.get(name)
        if not value:
            raise PluginError(
                "webhook", f"secret_env names {name}, which is not set in the environment"
            )
        secret = value.encode()
    return Settings(
        url=url,
        secret=secret,
        timeout=parse_duration(config.get("timeout", "5s")),
        retries=int(config.get("retries", 3)),
        backoff=parse_duration(config.get("backoff", "1s")),
        queue_size=int(config.get("queue_size", 1000)),
        flush_timeout=parse_duration(config.get("flush_timeout", "10s")),
        proxy=proxy_from_environment(url),
    )


def _url(config: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    url, name = config.get("url"), config.get("url_env")
    if (url is None) == (name is None):
        raise PluginError("webhook", "give exactly one of url and url_env")
    if name is None:
        return str(url)
    value = environ.get(name, "")
    if not value:
        raise PluginError("webhook", f"url_env names {name}, which is not set in the environment")
    if not value.startswith(("http://", "https://")):  # the value itself is never shown
        raise PluginError("webhook", f"url_env names {name}, which holds no http(s):// URL")
    return value


def make_notifier(config: Mapping[str, Any]) -> WebhookNotifier:
    return WebhookNotifier(settings(config))


@hookimpl
def immutable_sdk_add_notifiers(registry: Registry[NotifierFactory]) -> None:
    registry.add(
        "webhook",
        make_notifier,
        schema=SCHEMA,
        description="Post every rollout lifecycle event as JSON to a URL.",
    )
