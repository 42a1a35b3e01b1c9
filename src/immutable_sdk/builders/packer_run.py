"""Running the ``packer`` binary: an argument list (no shell), streamed output, a hard timeout.

Packer runs in its own process group with ``-machine-readable`` output. Its lines are parsed as
they arrive (``timestamp,target,type,data...``; commas inside data are ``%!(PACKER_COMMA)``): ``ui``
lines become progress, ``artifact,N,id,region:ami-...`` lines become AMIs per region. On timeout (or
when this process is interrupted) the group gets SIGINT, which makes Packer clean up what it
launched, then SIGKILL if it has not exited after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

INTERRUPT_GRACE = 120.0  # seconds Packer gets to clean up after SIGINT before SIGKILL
TAIL_LINES = 30
_SOURCE_AMI = re.compile(r"Found Image ID: (ami-[0-9a-f]+)")
_AMI = re.compile(r"^ami-[0-9a-f]+$")


class PackerNotFound(Exception):
    """The packer executable does not exist."""


def unescape(data: str) -> str:
    return data.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n").replace("\\r", "\r")


@dataclass
class PackerOutput:
    """What was learnt from Packer's machine-readable lines so far."""

    amis: dict[str, str] = field(default_factory=dict)  # region -> AMI id
    source_ami: str | None = None
    errors: list[str] = field(default_factory=list)  # Packer's error messages (multi-line)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    def feed(self, raw: str) -> list[str]:
        """Parse one line of output; returns the human-readable lines it carried."""
        parts = raw.rstrip("\r\n").split(",")
        if len(parts) < 3 or not parts[0].isdigit():
            text = raw.strip()  # not machine-readable: stderr, a panic, an HCL diagnostic
            lines = [text] if text else []
        else:
            _, target, kind, *data = parts
            data = [unescape(d) for d in data]
            lines = self._machine(target, kind, data)
        self.tail.extend(lines)
        return lines

    def _machine(self, target: str, kind: str, data: list[str]) -> list[str]:
        if kind == "ui" and len(data) >= 2:
            level, text = data[0], ",".join(data[1:])
            lines = [line.rstrip() for line in text.strip("\n").splitlines() if line.strip()]
            if level == "error" and lines:
                self.errors.append("\n".join(lines))
            for line in lines:
                m = _SOURCE_AMI.search(line)
                if m:
                    self.source_ami = m.group(1)
            return lines
        if kind == "artifact" and len(data) >= 3 and data[1] == "id":
            for pair in ",".join(data[2:]).split(","):
                region, _, ami = pair.strip().partition(":")
                if region and _AMI.match(ami):
                    self.amis[region] = ami
        return []

    def summary(self) -> str:
        """Packer's own words for a failure: its last error line, or its last line."""
        errors = [e.strip().lstrip("=-> ") for e in self.errors if e.strip("=-> \n")]
        if errors:
            last = errors[-1].splitlines()
            return _diagnostic(last) if last[0].startswith("Error: ") else " ".join(last)
        lines = list(self.tail)
        starts = [i for i, line in enumerate(lines) if line.startswith("Error: ")]
        if starts:  # an HCL diagnostic, printed before machine-readable output begins
            return _diagnostic(lines[starts[0] : (starts[1:] or [len(lines)])[0]])
        return lines[-1] if lines else "no output"


_EXCERPT = re.compile(r"^\s*\d+:")


def _diagnostic(block: list[str]) -> str:
    """An HCL diagnostic block as one line: ``TITLE (on FILE line N): DETAIL``."""
    title = block[0].removeprefix("Error: ").strip()
    rest = [line.strip() for line in block[1:] if line.strip() and not _EXCERPT.match(line)]
    where = next((line.rstrip(":") for line in rest if line.startswith("on ")), "")
    detail = " ".join(line for line in rest if not line.startswith("on "))
    return title + (f" ({where})" if where else "") + (f": {detail}" if detail else "")


@dataclass(frozen=True)
class PackerRun:
    returncode: int
    output: PackerOutput
    timed_out: bool


def _signal_group(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def run_packer(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    on_line: Callable[[str], None],
) -> PackerRun:
    """Run Packer to completion or ``timeout`` (seconds), passing each output line to ``on_line``.

    ``on_line`` is called on this thread, so it may emit events.
    """
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,  # its own process group: signals reach its plugins too
        )
    except FileNotFoundError as exc:
        raise PackerNotFound(str(argv[0])) from exc
    output = PackerOutput()
    done = threading.Event()
    timed_out = threading.Event()

    def watchdog() -> None:
        if not done.wait(timeout):
            timed_out.set()
            _signal_group(proc, signal.SIGINT)
            if not done.wait(INTERRUPT_GRACE):
                _signal_group(proc, signal.SIGKILL)

    threading.Thread(target=watchdog, name="packer-timeout", daemon=True).start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            for line in output.feed(raw):
                on_line(line)
        returncode = proc.wait()
    except BaseException:  # interrupted: let Packer clean up what it launched, then go
        if proc.poll() is None:
            _signal_group(proc, signal.SIGINT)
            try:
                proc.wait(INTERRUPT_GRACE)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        raise
    finally:
        done.set()
    return PackerRun(returncode, output, timed_out.is_set())
