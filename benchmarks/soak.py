"""The safety soak: the deployment safety machine (tests/invariants) for minutes to hours.

    python -m benchmarks soak --minutes 10 --seed 1

Runs rounds of random examples (hypothesis, seeded: round ``k`` uses seed ``S + k``) against a
moto server on 127.0.0.1 until the time is up, then prints a table and writes
``benchmarks/results/soak.json``: examples run, rules exercised (counts per rule), invariant
checks (counts per invariant) and every failure with its shrunk sequence of rules.
See docs/safety.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "soak.json"
ROUND = 5  # examples per round: the granularity of --minutes


def soak(minutes: float, seed: int, steps: int, shrink: bool = True) -> dict[str, Any]:
    from hypothesis.reporting import with_reporter
    from tests.invariants.monitor import INVARIANTS
    from tests.invariants.profiles import soak as soak_profile
    from tests.invariants.rules import Bench, describe, run_machine

    from immutable_sdk.aws.loopback import SANDBOX_CREDENTIALS
    from immutable_sdk.sandbox.emulator import Emulator

    for key, value in SANDBOX_CREDENTIALS.items():
        os.environ[key.upper()] = value
    os.environ.update(AWS_DEFAULT_REGION="us-east-1", IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD="1")
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(var, None)
    failures: list[dict[str, Any]] = []
    start = time.monotonic()
    rounds = 0
    with Emulator() as emulator, tempfile.TemporaryDirectory(prefix="soak-") as root:
        bench = Bench(emulator, Path(root))
        while time.monotonic() - start < minutes * 60:
            report: list[str] = []
            printed = io.StringIO()
            try:
                with with_reporter(report.append), redirect_stdout(printed):
                    profile = soak_profile(ROUND, steps, shrink=shrink)
                    run_machine(bench, profile, seed=seed + rounds)
            except Exception as exc:  # a violated invariant, or an SDK bug's traceback
                failures.append(
                    {
                        "seed": seed + rounds,
                        "error": explain(exc)[:4000],
                        # hypothesis attaches the shrunk steps to the exception as notes
                        "sequence": "\n".join(
                            [*getattr(exc, "__notes__", []), *report, printed.getvalue()]
                        ).strip(),
                    }
                )
            rounds += 1
    out = describe(bench.stats)
    out.update(
        {
            "seed": seed,
            "minutes": round((time.monotonic() - start) / 60, 2),
            "rounds": rounds,
            "steps_per_example": steps,
            "shrink": shrink,
            "invariants": INVARIANTS,
            "failures": failures,
            "date": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        }
    )
    return out


def table(d: dict[str, Any]) -> str:
    lines = [
        f"safety soak: {d['examples']} examples (shrinking included) in {d['minutes']} min "
        f"(seed {d['seed']}, {d['rounds']} rounds, up to {d['steps_per_example']} rules each)",
        "",
        f"{'rule':34} {'runs':>7}",
    ]
    for name, n in sorted(Counter(d["rules"]).items()):
        lines.append(f"{name:34} {n:7d}")
    lines += ["", f"{'invariant':70} {'checks':>7}"]
    for number, text in d["invariants"].items():
        lines.append(f"{number}. {text[:66]:67} {d['checks'].get(number, 0):7d}")
    lines += ["", f"failures: {len(d['failures'])}"]
    for f in d["failures"]:
        lines += [f"--- seed {f['seed']}", *f["error"].splitlines()[:3], f["sequence"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="How long to run.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the first round.")
    parser.add_argument("--steps", type=int, default=10, help="Rules per example, at most.")
    parser.add_argument(
        "--no-shrink",
        action="store_true",
        help="Report failing sequences as found (hypothesis spends up to 5 minutes shrinking one).",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON file (default {RESULTS}).")
    args = parser.parse_args(argv)
    data = soak(args.minutes, args.seed, args.steps, shrink=not args.no_shrink)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(table(data))
    print(f"\nwritten to {args.out}")
    return 1 if data["failures"] else 0


def explain(exc: BaseException) -> str:
    """The exception, and for a group (hypothesis's FlakyFailure: failed once, then not on
    replay) the exceptions inside it, so a timing-dependent violation still says which."""
    text = f"{type(exc).__name__}: {exc}"
    for inner in getattr(exc, "exceptions", ()):
        text += "\n  " + explain(inner).replace("\n", "\n  ")
    return text
