"""A moto server on loopback: the embedded AWS emulator behind ``--sandbox`` and the tests.

Always binds 127.0.0.1 (moto's own default is 0.0.0.0) on a free port chosen by the kernel.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from types import TracebackType
from typing import Any

SANDBOX_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}
# A discard port on loopback: a subprocess's request that is not for loopback goes to a proxy
# that is not there, and fails on this host instead of leaving it.
DEAD_PROXY = "http://127.0.0.1:9"
LOOPBACK_NO_PROXY = "127.0.0.1,localhost,::1"
# The user's AWS settings that would lead a subprocess (packer) to real credentials or AWS.
_USER_AWS_SETTINGS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_SDK_LOAD_CONFIG",
)


def sandbox_env(url: str, region: str = "us-east-1") -> dict[str, str]:
    """Environment for a subprocess (packer) that must reach the emulator at ``url`` and
    nothing else: its dummy credentials, no profile or config file of the user, no instance
    metadata, and every proxy variable pointed at a dead port on loopback (Go and Python HTTP
    clients never proxy loopback, so the emulator stays reachable)."""
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        **{key.upper(): value for key, value in SANDBOX_CREDENTIALS.items()},
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        **{name: "" for name in _USER_AWS_SETTINGS},
        "CHECKPOINT_DISABLE": "1",
    }
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = DEAD_PROXY
    env["NO_PROXY"] = env["no_proxy"] = LOOPBACK_NO_PROXY
    return env


# What the SDK may call that the emulator does not implement, as AWS names it.
_SERVICE_NAMES = {"imagebuilder": "EC2 Image Builder"}


def missing_service(service: str) -> str | None:
    """Why the emulator cannot serve ``service`` (a botocore service name), or None.

    moto answers a service it does not implement with tracebacks and an HTML error page; the
    sandbox says so before the first call instead."""
    try:
        from moto.backend_index import backend_url_patterns
    except ImportError:  # pragma: no cover - depends on the install
        return None
    served = {name for name, _ in backend_url_patterns}
    if service.replace("-", "") in served or service in served:
        return None
    name = _SERVICE_NAMES.get(service, service)
    return (
        f"{name} is not available in the sandbox: the emulator (moto) does not implement "
        f"{service!r}"
        + (
            "; bake images with the packer or ami builder there, or run without --sandbox"
            if service == "imagebuilder"
            else "; run without --sandbox"
        )
    )


class Emulator:
    """Start, reset and stop an in-process moto server over HTTP on 127.0.0.1."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from .loopback import is_loopback_host

        if not is_loopback_host(host):
            raise ValueError("the emulator binds loopback only")
        self._host = host
        self._port = port
        self._server: Any = None

    def start(self) -> Emulator:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:  # pragma: no cover - depends on the install
            from .errors import UsageError

            raise UsageError(
                "the sandbox needs moto's server: pip install 'immutable-sdk[sandbox]'"
            ) from exc
        from . import emulator_ops

        emulator_ops.install()
        # werkzeug logs every request at INFO, and the traceback of every request moto fails
        # on at ERROR: the client gets the answer (an HTTP 500, made readable by the SDK's
        # error handling), so the emulator's thread writes nothing to this process's stderr.
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        self._server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        self._server.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def reset(self) -> None:
        """Forget every resource (moto's reset API): a clean account, in milliseconds."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
