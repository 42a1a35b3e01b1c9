"""Hostile specs: ``validate`` must cost the document's bytes, not what its aliases expand to.

YAML aliases let a few bytes stand for a large value (``v2: *big``). A spec that loads
validates in under a second, whatever its aliases would expand to; a spec whose aliases would
expand past the reader's limit is refused, located, as fast.

    python -m benchmarks --only hostile
"""

from __future__ import annotations

import random
import string
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HEAD = (
    "apiVersion: immutable-sdk/v1\nname: hostile\nregion: us-east-1\n"
    "images:\n  web:\n    builder: packer\n    template: web.pkr.hcl\n    vars:\n"
)
TEMPLATE = 'variable "v0" {\n  type = string\n}\n'  # validate only checks that it exists
FLEET = (
    "fleets:\n  web:\n    image: web\n    instance_type: t3.micro\n    subnets: [a, b]\n"
    "    security_groups: [sg]\n    capacity: {min: 1, desired: 2, max: 4}\n"
)


def alias_bomb(aliases: int = 20_000, size: int = 300_000, *, token: bool = False) -> str:
    """One ``size``-byte value aliased ``aliases`` times in image vars (issue 14: 630 KB).

    ``token``: the value looks like a secret (mixed case and digits, high entropy), so the
    secret scan reports every alias and the redactor registers the value.
    """
    if token:
        rng = random.Random(14)
        value = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(size))
    else:
        value = "x" * size
    lines = [f"      v0: &big {value}\n"]
    lines += [f"      v{i}: *big\n" for i in range(1, aliases)]
    return HEAD + "".join(lines) + FLEET


def substituted_bomb(aliases: int = 20_000, size: int = 300_000) -> str:
    """As ``alias_bomb``, the value holding a ``${VAR}`` that the reader substitutes."""
    lines = [f'      v0: &big "{"y" * size}${{SUFFIX:-z}}"\n']
    lines += [f"      v{i}: *big\n" for i in range(1, aliases)]
    return HEAD + "".join(lines) + FLEET


def nested_lists(width: int = 17, depth: int = 3) -> str:
    """Lists of aliased lists (``width ** (depth + 1)`` strings once expanded: 83,521), just
    under the reader's alias limit, where vars must be scalars: every level is refused."""
    lines = [f"      l0: &l0 [{', '.join(['a' * 64] * width)}]\n"]
    for level in range(1, depth + 1):
        items = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"      l{level}: &l{level} [{items}]\n")
    return HEAD + "".join(lines) + FLEET


def billion_laughs(levels: int = 9) -> str:
    """The classic: each level ten aliases of the one before (10**9 strings once expanded)."""
    lines = ['      lol0: &lol0 "lol"\n']
    for level in range(1, levels + 1):
        items = ", ".join([f"*lol{level - 1}"] * 10)
        lines.append(f"      lol{level}: &lol{level} [{items}]\n")
    return HEAD + "".join(lines) + FLEET


CASES: dict[str, Callable[[], str]] = {
    "alias bomb 300 KB x 20,000": alias_bomb,
    "alias bomb, secret-looking value": lambda: alias_bomb(token=True),
    "alias bomb, ${VAR} in the value": substituted_bomb,
    "nested lists, 88,000 nodes (refused)": nested_lists,
    "billion laughs (refused)": billion_laughs,
}


def validate_seconds(path: Path) -> tuple[float, float, str]:
    """Wall and CPU time of what ``immutable-sdk validate`` does in process, and its outcome.

    CPU time is the figure to hold to the target: other processes sharing the machine
    lengthen the wall time, not the work."""
    from immutable_sdk.errors import SpecError
    from immutable_sdk.plugins import load_plugins
    from immutable_sdk.redaction import forget_secrets
    from immutable_sdk.spec.load import load_spec, scan_spec

    plugins = load_plugins(autoload=False)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        load_spec([path], plugins=plugins, environ={})
        outcome = f"ok, {len(scan_spec([path]))} warnings"
    except SpecError as exc:
        first = exc.problems[0]
        outcome = f"refused at {first.location.line}:{first.location.column}"
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    forget_secrets()
    return wall, cpu, outcome


def run() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in CASES.items():
            path = Path(tmp) / "hostile.yaml"
            path.write_text(make())
            (Path(tmp) / "web.pkr.hcl").write_text(TEMPLATE)
            validate_seconds(path)  # warm: imports, the compiled validator
            wall, cpu, outcome = validate_seconds(path)
            out[name] = {
                "bytes": path.stat().st_size,
                "wall": wall,
                "cpu": cpu,
                "outcome": outcome,
            }
    return out
