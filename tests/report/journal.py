"""A canary rollout's journal, written through the state store's own API, as a runner writes it:
a 10% shift, a bake, an analysis judged three times that fails on the 5xx rate, and the
rollback; two more rollouts of the same apply in other waves and regions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from immutable_sdk.lifecycle import Analyze, Bake, Gate, Provision, Retire, ShiftTraffic
from immutable_sdk.state.base import RolloutRecord
from immutable_sdk.state.sqlite import SqliteStateStore

T0 = 1_800_000_000.0
OWNER = "ci-runner:4242:abcdef"
ANALYSIS = {
    "type": "cloudwatch-metrics",
    "window": "5m",
    "interval": "1m",
    "min_samples": 100,
    "metrics": [
        {"name": "errors", "preset": "5xx-rate", "max": 0.02, "max_ratio": 2},
        {"name": "latency", "preset": "p99-latency", "max_ratio": 1.5},
    ],
}
STEPS = [
    Provision(slot="green", capacity=1),
    Gate(slot="green"),
    ShiftTraffic({"blue": 90, "green": 10}),
    Bake(300.0),
    Analyze(ANALYSIS),
    ShiftTraffic({"blue": 50, "green": 50}),
    Retire(count=4, slot="blue"),
]
THRESHOLDS = {
    "thresholds": {
        "errors": {"max": 0.02, "max_ratio": 2.0, "min_samples": 100},
        "latency": {"max": None, "max_ratio": 1.5, "min_samples": 100},
    },
    "interval": 60.0,
    "window_seconds": 300.0,
}


def capacity(slots: dict[str, tuple[int, int, int]]) -> dict[str, Any]:
    """slot -> (in service, healthy, weight)."""
    return {
        "note": "capacity",
        "desired": sum(s[0] for s in slots.values()),
        "in_service": sum(s[0] for s in slots.values()),
        "healthy": sum(s[1] for s in slots.values()),
        "by_release": {},
        "slots": {
            name: {"in_service": n, "healthy": h, "weight": w, "desired": n, "release": None}
            for name, (n, h, w) in slots.items()
        },
    }


def judgement(at: float, canary_errors: float, verdict: str) -> dict[str, Any]:
    errors_verdict = "fail" if canary_errors > 0.02 else "pass"
    return {
        "note": "analysis",
        "verdict": verdict,
        "window": {"start": at - 300, "end": at},
        "metrics": [
            {
                "name": "errors",
                "verdict": errors_verdict,
                "canary": canary_errors,
                "baseline": 0.01,
                "samples": {"canary": 400, "baseline": 3600},
                "reason": (
                    f"canary {canary_errors:g} > max 0.02 (400 canary samples)"
                    if errors_verdict == "fail"
                    else f"canary {canary_errors:g}, baseline 0.01 within thresholds (400 samples)"
                ),
            },
            {
                "name": "latency",
                "verdict": "pass",
                "canary": 0.21,
                "baseline": 0.18,
                "samples": {"canary": 400, "baseline": 3600},
                "reason": "canary 0.21, baseline 0.18 within thresholds (400 samples)",
            },
        ],
        **THRESHOLDS,
    }


def record(rid: str, fleet: str, start: float, end: float, outcome: str) -> RolloutRecord:
    return RolloutRecord(
        id=rid,
        fleet=fleet,
        strategy="canary",
        from_release="r-old",
        to_release="r-new",
        phase=outcome,
        started_at=start,
        finished_at=end,
        outcome=outcome,
        owner=OWNER,
        steps=tuple(s.to_dict() for s in STEPS),
    )


def write_canary_journal(path: Path) -> SqliteStateStore:
    """The store holding rollout ``ro-canary`` of ``checkout`` (and its apply's others)."""
    state = SqliteStateStore(path, "shop")
    rid = "ro-canary"
    main = record(rid, "checkout", T0, T0 + 1200, "rolled_back")
    state.start_rollout(main)
    state.update_rollout(
        rid,
        error="analysis failed: errors: canary 0.05 > max 0.02 (400 canary samples) <script>",
    )

    def at(t: float, index: int, status: str, data: dict[str, Any]) -> None:
        state.append_journal(rid, index, status, T0 + t, data)

    at(
        0,
        -1,
        "note",
        {
            "note": "context",
            "unit": "checkout",
            "region": "us-east-1",
            "capacity": {"min": 2, "desired": 4, "max": 8},
            "min_healthy": None,
            "strategy": {"type": "canary"},
            "slots": ["blue", "green"],
            "ttl": 60,
        },
    )
    at(0, -1, "note", capacity({"blue": (4, 4, 100), "green": (0, 0, 0)}))
    at(0, 0, "started", STEPS[0].to_dict())
    at(40, 0, "note", capacity({"blue": (4, 4, 100), "green": (1, 0, 0)}))
    at(40, 0, "finished", {"slot": "green", "capacity": 1, "launched": ["i-1"]})
    at(40, 1, "started", STEPS[1].to_dict())
    at(95, 1, "note", capacity({"blue": (4, 4, 100), "green": (1, 1, 0)}))
    at(95, 1, "finished", {"slot": "green", "checks": {"ec2": "healthy", "elb": "healthy"}})
    at(95, 2, "started", STEPS[2].to_dict())
    at(97, 2, "note", capacity({"blue": (4, 4, 90), "green": (1, 1, 10)}))
    at(97, 2, "finished", {"weights": {"blue": 90, "green": 10}, "before": {"blue": 100}})
    at(97, 3, "started", STEPS[3].to_dict())
    at(457, 3, "finished", {"seconds": 300.0, "dns_ttl_wait": 60.0})
    at(457, 4, "started", STEPS[4].to_dict())
    at(517, 4, "note", judgement(517, 0.012, "pass"))
    at(577, 4, "note", judgement(577, 0.03, "fail"))
    at(577, 4, "note", judgement(577, 0.05, "fail"))
    at(577, 4, "failed", {"error": "analysis failed: errors: canary 0.05 > max 0.02"})
    at(578, 7, "started", ShiftTraffic({"blue": 100, "green": 0}).to_dict())
    at(580, 7, "note", capacity({"blue": (4, 4, 100), "green": (1, 1, 0)}))
    at(580, 7, "finished", {"weights": {"blue": 100, "green": 0}})
    at(580, 8, "started", Retire(count=1, slot="green").to_dict())
    at(940, 8, "note", capacity({"blue": (4, 4, 100), "green": (0, 0, 0)}))
    at(940, 8, "finished", {"slot": "green", "retired": ["i-1"]})
    # the rest of the apply: the same owner, other waves and regions
    state.start_rollout(record("ro-web-west", "web@us-west-2", T0 - 900, T0 - 60, "promoted"))
    state.start_rollout(record("ro-web-east", "web", T0 - 30, T0 + 400, "promoted"))
    state.start_rollout(record("ro-api-eu", "api@eu-west-1", T0 + 420, T0 + 900, "promoted"))
    return state
