"""Loopback only: what counts as 127.0.0.1, and the guard that keeps a sandboxed process there.

``--sandbox`` promises that no connection leaves the machine. The AWS session enforces it for
AWS calls (``AwsSession(sandboxed=True)`` refuses any endpoint that is not loopback); ``guard``
enforces it for everything else in the process (health checks, notifiers, plugins): an audit
hook (PEP 578) that refuses every socket connect, send and name lookup outside 127.0.0.0/8 and
::1 before it happens. An audit hook cannot be removed, so only a process that is sandboxed for
its whole life installs it: the CLI under ``--sandbox`` and ``sandbox serve``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import urllib.parse
from typing import Any

LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)
_ADDRESS_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_NAME_EVENTS = frozenset(
    {
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyname_ex",
        "socket.gethostbyaddr",
    }
)


class LoopbackViolation(PermissionError):
    """A sandboxed process tried to reach (or look up) a host outside loopback."""


def is_loopback_host(host: str | bytes | None) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (also ``[::1]`` and ``::ffff:127.0.0.1``)."""
    if host is None:
        return False
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = host.strip("[]").split("%", 1)[0].rstrip(".").lower()
    if host in LOCALHOST_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def is_loopback_url(url: str | None) -> bool:
    """True when ``url``'s host is loopback (``http://127.0.0.1:5000``)."""
    if not url:
        return False
    try:
        return is_loopback_host(urllib.parse.urlsplit(url).hostname)
    except ValueError:
        return False


_installed = False
_install_lock = threading.Lock()


def guard() -> None:
    """From now on, refuse every connection and name lookup of this process outside loopback.

    Idempotent. A refused operation raises ``LoopbackViolation`` (an ``OSError``), which the
    code that tried it reports as the failure to connect that it is.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        sys.addaudithook(_audit)
        _installed = True


def guarded() -> bool:
    """True once ``guard`` has run in this process."""
    return _installed


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not event.startswith("socket."):
        return
    if event in _ADDRESS_EVENTS:
        sock, address = args[0], args[-1]
        if getattr(sock, "family", None) not in _INET_FAMILIES or address is None:
            return  # Unix sockets, netlink...: local by construction
        host = address[0] if isinstance(address, tuple) and address else address
        if not is_loopback_host(host):
            raise LoopbackViolation(_refusal(event, address))
    elif event in _NAME_EVENTS:
        host = args[0]
        if host is not None and not is_loopback_host(host):
            if isinstance(host, bytes):
                host = host.decode("ascii", "replace")
            if event == "socket.getaddrinfo" and _is_address(host):  # the step before connect
                raise LoopbackViolation(_refusal("socket.connect", (host, args[1])))
            raise LoopbackViolation(_refusal(event, host))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _refusal(event: str, where: Any) -> str:
    what = "look up" if event in _NAME_EVENTS else "connect to"
    if isinstance(where, tuple) and len(where) >= 2:
        where = f"{where[0]}:{where[1]}" if where[1] is not None else where[0]
    return f"sandbox: refused to {what} {where}; a sandboxed run reaches only 127.0.0.1"


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
