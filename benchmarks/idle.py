"""A ``reconcile`` of 1,000 fleets with nothing due: the cron tick that finds every rollout
waiting (issue 21's target: within 2 s, and no AWS call).

The state store is seeded directly: each fleet has an unfinished rollout suspended in an
hour-long bake (a ``waiting`` note with its ``next_at``), as a tick leaves it. The command then
runs as cron would run it, a fresh ``immutable-sdk reconcile -f SPEC -o json`` process (on a
virtual clock a minute after the waits began, against the benchmark's emulator), timed from
start to exit; its JSON says what each unit waits for and how many AWS calls the tick made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

START = 1_800_000_000.0
BAKE = 3600.0


def seed(db: Path, project: str, fleets: int) -> None:
    from immutable_sdk.state.base import RolloutRecord
    from immutable_sdk.state.sqlite import SqliteStateStore

    store = SqliteStateStore(db, project)
    try:
        bake = {"kind": "bake", "seconds": BAKE}
        for i in range(fleets):
            rollout = f"r-idle-{i}"
            store.start_rollout(
                RolloutRecord(
                    rollout, f"f{i}", "rolling", "r-old", "r-new", "replacing", START, steps=(bake,)
                )
            )
            store.append_journal(rollout, 0, "started", START, bake)
            wait = {"note": "waiting", "for": "bake", "since": START, "until": START + BAKE}
            store.append_journal(rollout, 0, "note", START, {**wait, "next_at": START + BAKE})
    finally:
        store.close()


def run(
    url: str, env: dict[str, str], spec_text: str, fleets: int, runs: int = 3
) -> dict[str, Any]:
    exe = str(Path(sys.executable).parent / "immutable-sdk")
    if not Path(exe).exists():
        exe = shutil.which("immutable-sdk") or exe
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "big.yaml"
        spec.write_text(
            spec_text.replace(
                "region: us-east-1\n",
                "region: us-east-1\nstate: {backend: local, path: state.db}\n",
                1,
            )
        )
        seed(Path(tmp) / "state.db", "big", fleets)
        argv = [exe, "--endpoint-url", url, "reconcile", "-f", str(spec), "-o", "json"]
        clock = {"IMMUTABLE_SDK_VIRTUAL_CLOCK": repr(START + 60)}
        best, answer = float("inf"), None
        for _ in range(runs):
            began = time.perf_counter()
            done = subprocess.run(
                argv, capture_output=True, text=True, env={**env, **clock}, cwd=tmp, timeout=300
            )
            best = min(best, time.perf_counter() - began)
            if done.returncode != 10:
                raise RuntimeError(f"reconcile exited {done.returncode}: {done.stderr[-3000:]}")
            answer = json.loads(done.stdout)
    assert answer is not None
    waits = {u.get("waiting_for") for u in answer["units"].values()}
    return {
        "fleets": fleets,
        "units": len(answer["units"]),
        "waiting_for": sorted(str(w) for w in waits),
        "api_calls": int((answer.get("api_calls") or {}).get("total", -1)),
        "wall": best,
        "next_at": answer.get("next_at"),
        "cpus": os.cpu_count(),
    }
