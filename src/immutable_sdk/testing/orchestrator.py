"""A scripted tick for orchestrator tests: each unit answers from a list, journaling each step.

``worker --tick immutable_sdk.testing.orchestrator:scripted_tick`` runs it; the environment
names its files (``IMMUTABLE_SDK_TEST_TICK_SCRIPT``, ``IMMUTABLE_SDK_TEST_TICK_JOURNAL``). The
script is JSON: per unit key, the answers of its steps in order::

    {"web": [{"state": "progressing", "next_in": 1}, {"state": "converged"}],
     "api": [{"state": "progressing", "next_in": 1, "sleep": 30}, ...]}

``next_in``: seconds from now for ``next_at``; ``sleep``: the first attempt of that step
sleeps that long before doing it (a test kills the worker then); ``raise``: the first attempt
raises an ImmutableSdkError with that message instead (a tick that failed and is retried).
A step is journaled when it is done (``{"unit", "step", "pid", "execution"}`` lines); which
step a tick does is how many steps of its unit the journal holds, as a real tick reads its
journal: a tick asked again after its worker died does the step that died with it, never one
twice. Every attempt is written to the journal's ``.attempts`` file first.
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..clock import RealClock
from ..core.orchestrator.tick import TickAnswer, TickRequest
from ..core.orchestrator.ticks import TickContext
from ..errors import ImmutableSdkError

SCRIPT_VAR = "IMMUTABLE_SDK_TEST_TICK_SCRIPT"
JOURNAL_VAR = "IMMUTABLE_SDK_TEST_TICK_JOURNAL"


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The records of a journal file (read under its lock: never a half-written line)."""
    if not path.exists():
        return []
    with path.open() as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        text = f.read()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


class ScriptedTick:
    def __init__(self, script: dict[str, list[dict[str, Any]]], journal: Path) -> None:
        self.script = script
        self.journal = journal
        self.attempts = journal.with_suffix(".attempts")

    def tick(self, request: TickRequest) -> TickAnswer:
        steps = self.script[request.unit]
        done = [
            r
            for r in read_lines(self.journal)
            if r["unit"] == request.unit and r["execution"] == request.execution
        ]
        index = min(len(done), len(steps) - 1)
        step = steps[index]
        record = {
            "unit": request.unit,
            "step": index,
            "pid": os.getpid(),
            "execution": request.execution,
        }
        _append(self.attempts, record)
        tried = [
            r
            for r in read_lines(self.attempts)
            if r["unit"] == request.unit
            and r["step"] == index
            and r["execution"] == request.execution
        ]
        if step.get("sleep") and len(tried) == 1:
            RealClock().sleep(float(step["sleep"]))  # the test kills this process meanwhile
        if step.get("raise") and len(tried) == 1:
            raise ImmutableSdkError(str(step["raise"]))  # before the step: nothing done
        if len(done) < len(steps):
            _append(self.journal, record)
        next_at = None
        if "next_in" in step:
            when = datetime.now(timezone.utc) + timedelta(seconds=float(step["next_in"]))
            next_at = when.isoformat()
        return TickAnswer(state=step["state"], next_at=next_at, reason=str(step.get("reason", "")))


def scripted_tick(context: TickContext) -> ScriptedTick:
    """The ``--tick`` factory: the script and journal named by the environment."""
    script = json.loads(Path(os.environ[SCRIPT_VAR]).read_text())
    return ScriptedTick(script, Path(os.environ[JOURNAL_VAR]))
