"""Driving rollouts with ``immutable-sdk reconcile`` only, one fresh process per tick.

Each tick is its own ``python -m immutable_sdk reconcile`` process on a virtual clock that
starts where the test says (``IMMUTABLE_SDK_VIRTUAL_CLOCK``): between ticks the test moves
time to the ``next_at`` the last tick returned, so hours of bakes and pauses pass without
sleeping, and no process lives from one tick to the next.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from tests.cli.output_schema import schema
from tests.engine.crashkit import command, environ

START = 1_800_000_000.0  # the virtual epoch of the first tick
TICK_SECONDS = 30.0  # real seconds one tick may take (each returns within seconds)


def validate(data: dict[str, Any]) -> None:
    """``reconcile -o json`` as the published output schema describes it."""
    full = schema()
    one = {"$defs": full["$defs"], "$ref": "#/$defs/reconcile"}
    jsonschema.Draft202012Validator(one).validate(data)


def epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


@dataclass
class Tick:
    code: int
    data: dict[str, Any]
    stderr: str
    at: float  # the virtual time it started at
    seconds: float  # real seconds it took

    def unit(self, key: str) -> dict[str, Any]:
        unit: dict[str, Any] = self.data["units"][key]
        return unit

    @property
    def next_at(self) -> float | None:
        value = self.data.get("next_at")
        return epoch(value) if value else None


@dataclass
class Ticker:
    """Ticks the spec at ``url`` from fresh processes; keeps the virtual time between them."""

    url: str
    spec: Path
    now: float = START
    ticks: list[Tick] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # for every command (WEB_AMI=...)

    def command(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        extra = {"IMMUTABLE_SDK_VIRTUAL_CLOCK": repr(self.now), **self.env, **(env or {})}
        return subprocess.Popen(
            command(self.url, self.spec, *args),
            cwd=self.spec.parent,
            env={**environ(), **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = self.command(*args)
        out, err = proc.communicate(timeout=TICK_SECONDS * 4)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def tick(self, *options: str) -> Tick:
        began = time.monotonic()
        done = self.run("reconcile", "-o", "json", *options)
        seconds = time.monotonic() - began
        try:
            data = json.loads(done.stdout)
        except ValueError:
            raise AssertionError(
                f"reconcile exited {done.returncode} without JSON: {done.stderr[-3000:]}"
            ) from None
        validate(data)
        tick = Tick(done.returncode, data, done.stderr, self.now, seconds)
        self.ticks.append(tick)
        assert seconds < TICK_SECONDS, f"a tick took {seconds:.1f}s"
        return tick

    def advance_to(self, moment: float | None, at_least: float = 0.0) -> None:
        """Let virtual time pass: to ``moment`` (a tick's next_at), at least ``at_least``."""
        self.now = max(self.now + at_least, moment if moment is not None else self.now)

    def until_settled(self, *options: str, limit: int = 60) -> Tick:
        """Tick (advancing to each next_at) while the ticks say progressing (exit 10)."""
        for _ in range(limit):
            tick = self.tick(*options)
            if tick.code != 10:
                return tick
            assert tick.next_at is not None, tick.data
            assert tick.next_at > self.now - 1e-3, (tick.next_at, self.now)
            self.advance_to(tick.next_at)
        raise AssertionError(f"not settled after {limit} ticks: {self.ticks[-1].data}")


def waits(ticks: list[Tick], key: str) -> list[str]:
    """What ``key`` waited for, tick by tick (its ``waiting_for``; "" when it did not wait)."""
    return [t.unit(key).get("waiting_for") or "" for t in ticks if key in t.data["units"]]
