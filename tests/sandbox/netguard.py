"""A guard that records every connection a process tree attempts outside loopback.

Two layers, both outside the code under test:

* a ``sitecustomize`` on ``PYTHONPATH`` that installs an audit hook in every Python process of
  the tree: a ``socket.connect``/``sendto``/``sendmsg`` to an address outside 127.0.0.0/8 and
  ::1, or a name lookup of a host that is not loopback, is written to a log and refused;
* ``strace -f`` (where it exists) on the command, for processes that are not Python (packer):
  every ``connect``/``sendto``/``sendmsg`` system call with an internet address is logged, and
  the test fails on any that is not loopback.

The environment also carries what would lead a careless run to real AWS: real-looking keys, a
profile whose ``credential_process`` leaves a marker file when it runs, a region, and proxies.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SITECUSTOMIZE = """
import ipaddress, os, socket, sys

_LOG = os.environ.get("NETGUARD_LOG")
_NAMES = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
          "socket.gethostbyaddr"}


def _loopback(host):
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%")[0].rstrip(".").lower()
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _hook(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args[0], args[-1]
        if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
            return
        host = address[0] if isinstance(address, tuple) else address
    elif event in _NAMES:
        host = args[0]
    else:
        return
    if not _loopback(host):
        with open(_LOG, "a") as log:
            log.write(f"{os.getpid()} {event} {host!r} argv={sys.argv!r}\\n")
        raise PermissionError(f"netguard: {event} {host!r} leaves loopback")


if _LOG:
    sys.addaudithook(_hook)
"""

AWS_CONFIG = """[profile prod]
region = eu-west-1
credential_process = sh -c 'touch "{marker}"; cat "{marker}.json"'

[default]
region = eu-west-1
"""

# An environment that would reach a real account if anything used it.
REAL_LOOKING = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEJr//////////wEaDAbCdEfGhIjKlMnOpQ",
    "AWS_PROFILE": "prod",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "HTTPS_PROXY": "http://proxy.corp.example:3128",
    "HTTP_PROXY": "http://proxy.corp.example:3128",
    "https_proxy": "http://proxy.corp.example:3128",
    "http_proxy": "http://proxy.corp.example:3128",
}

_SOCKADDR = re.compile(
    r"^(?P<pid>\d+)\s+(?P<call>connect|sendto|sendmsg)\(.*?sa_family=(?P<family>AF_INET6?)"
    r'.*?(?:inet_addr\("(?P<v4>[^"]+)"\)|inet_pton\(AF_INET6, "(?P<v6>[^"]+)")'
)


# The same, with the profile's credential_process as the only source of credentials.
PROFILE_ONLY = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": ""}


def _working_strace() -> str | None:
    """strace, if it exists and may trace here (containers often forbid ptrace)."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    probe = subprocess.run(
        [strace, "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect", "-o", os.devnull, "true"],
        capture_output=True,
        timeout=30,
    )
    return strace if probe.returncode == 0 else None


@dataclass
class NetGuard:
    """Runs commands under the guard; ``escapes()`` lists what left loopback."""

    root: Path

    def __post_init__(self) -> None:
        self.site = self.root / "site"
        self.site.mkdir(parents=True, exist_ok=True)
        (self.site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.log = self.root / "python-escapes.log"
        self.marker = self.root / "credential-process-ran"
        self.config = self.root / "aws-config"
        self.config.write_text(AWS_CONFIG.format(marker=self.marker))
        Path(f"{self.marker}.json").write_text(
            '{"Version": 1, "AccessKeyId": "AKIAPRODPRODPRODPROD", "SecretAccessKey": "prod"}'
        )
        self.strace = _working_strace()
        self.traces: list[Path] = []

    def env(self, extra: Mapping[str, str] = {}) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "IMMUTABLE_SDK_", "CHECKPOINT_"))
            and k.lower() != "no_proxy"
        }
        return {
            **base,
            **REAL_LOOKING,
            "AWS_CONFIG_FILE": str(self.config),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.config),
            "NETGUARD_LOG": str(self.log),
            "PYTHONPATH": os.pathsep.join(
                [str(self.site), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "COLUMNS": "200",
            "IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD": "1",
            **extra,
        }

    def argv(self, args: Sequence[str], name: str, command: Sequence[str] = ()) -> list[str]:
        command = list(command) or [sys.executable, "-m", "immutable_sdk", *args]
        if self.strace is None:
            return command
        trace = self.root / f"strace-{name}-{len(self.traces)}.log"
        self.traces.append(trace)
        return [
            self.strace,
            "-f",
            "-qq",
            "--seccomp-bpf",
            "-e",
            "trace=connect,sendto,sendmsg",
            "-e",
            "signal=none",
            "-o",
            str(trace),
            *command,
        ]

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str] = {},
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        name = "-".join(a for a in args if a.isalpha())[:40] or "command"
        return subprocess.run(
            self.argv(args, name),
            cwd=cwd,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def escapes(self) -> list[str]:
        found = self.log.read_text().splitlines() if self.log.exists() else []
        for trace in self.traces:
            if not trace.exists():
                continue
            for line in trace.read_text().splitlines():
                m = _SOCKADDR.match(line)
                if m and not ipaddress.ip_address(m["v4"] or m["v6"]).is_loopback:
                    found.append(f"{trace.name}: {line}")
        if self.marker.exists():
            found.append("the profile's credential_process ran (the user's credentials were used)")
        return found
