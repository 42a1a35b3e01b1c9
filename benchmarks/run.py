"""Run the benchmarks, print a table and write ``benchmarks/results.json``.

    python -m benchmarks            # the full set (about 15 minutes on 2 cores)
    python -m benchmarks --quick    # CI-sized: smaller N, no 1,000-instance fleet, no Ansible
    python -m benchmarks --only step-functions   # one group; the others' numbers are kept

Each SDK scenario runs in a child process (``benchmarks.child``) against a moto server in a
process of its own, so the SDK's CPU time and peak RSS are its own. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .servers import CountingProxy, MotoProcess, env_for

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results.json"
SIM = {"boot": 90, "warmup": 45, "bake": 120, "deregistration": 60}


def child(
    moto: MotoProcess,
    scenario: str,
    url: str | None = None,
    src: Path = ROOT / "src",
    **args: Any,
) -> dict[str, Any]:
    moto.reset()
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.child", scenario, json.dumps(args)],
        # The SDK of this checkout (or ``src``), whichever one the venv was installed from.
        env={
            **env_for(url or moto.url),
            "BENCH_MOTO_PID": str(moto.pid),
            "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)]),
        },
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=3600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{scenario} {args} failed:\n{out.stderr[-4000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def machine() -> dict[str, Any]:
    import boto3
    import moto

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem = f"{int(line.split()[1]) // 1024} MiB"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "moto": moto.__version__,
        "boto3": boto3.__version__,
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
    }


def best_wall(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=env, timeout=300)
        best = min(best, time.perf_counter() - start)
    return best


def spec_of_fleets(count: int) -> str:
    head = (
        "apiVersion: immutable-sdk/v1\nname: big\nregion: us-east-1\n"
        "images:\n  web:\n    builder: ami\n    id: ami-03c3da4cfa8e8943a\nfleets:\n"
    )
    fleet = (
        "  f{i}:\n    image: web\n    instance_type: t3.small\n    subnets: [a, b]\n"
        "    security_groups: [sg-{i}]\n    capacity: {{min: 1, desired: 2, max: 4}}\n"
        "    strategy: {{type: rolling, batch_size: 25%, bake: {i}s}}\n"
        "    health:\n      checks:\n        - {{type: ec2}}\n"
        "        - {{type: http, url: 'http://{{private_ip}}:{port}/healthz'}}\n"
    )
    return head + "".join(fleet.format(i=i, port=8000 + i % 1000) for i in range(count))


def cli_timings(data: dict[str, Any], quick: bool) -> None:
    exe = str(Path(sys.executable).parent / "immutable-sdk")
    if not Path(exe).exists():
        exe = shutil.which("immutable-sdk") or exe
    env = {**os.environ, "IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD": "1"}
    data["help_cold_start"] = {"wall": best_wall([exe, "--help"], 5, env)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.yaml"
        path.write_text(spec_of_fleets(1000))
        wall = best_wall([exe, "validate", "-f", str(path)], 3, env)
        code = (
            "import time, sys\nfrom immutable_sdk.spec.load import load_spec\n"
            "from immutable_sdk.plugins import load_plugins\np = load_plugins(autoload=False)\n"
            f"load_spec([{str(path)!r}], plugins=p, environ={{}})\n"
            "best = 9e9\nfor _ in range(3):\n    s = time.perf_counter()\n"
            f"    load_spec([{str(path)!r}], plugins=p, environ={{}})\n"
            "    best = min(best, time.perf_counter() - s)\nprint(best)\n"
        )
        warm = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        data["validate_1000"] = {"cli_wall": wall, "in_process_wall": float(warm.stdout)}


GROUPS = (
    "cli",
    "hostile",
    "rolling",
    "virtual",
    "fleets",
    "slots",
    "plan",
    "bake",
    "ticks",
    "ansible",
    "step-functions",
)


def run(quick: bool, groups: tuple[str, ...], data: dict[str, Any]) -> dict[str, Any]:
    """Run ``groups`` of scenarios into ``data`` (a previous run's results, or empty)."""
    data.update({"machine": machine(), "quick": quick, "simulation": SIM})
    when = data["machine"]["date"]
    data.setdefault("ran", {}).update(dict.fromkeys(groups, when))  # when each group last ran
    if "cli" in groups:
        cli_timings(data, quick)
    if "hostile" in groups:
        from . import hostile

        data["hostile"] = hostile.run()
    with MotoProcess() as moto:
        if "rolling" in groups:
            data["rolling"] = {}
            for n in (10, 100) if quick else (10, 100, 1000):
                data["rolling"][str(n)] = child(moto, "rolling", n=n, batches=10)
                print(f"rolling N={n}: {data['rolling'][str(n)]['wall']:.1f}s", file=sys.stderr)
        if "virtual" in groups:
            n = 20 if quick else 100
            virtual = child(moto, "rolling", n=n, batches=10, simulate=SIM)
            virtual["ideal"] = virtual["batches"] * (
                SIM["boot"] + SIM["warmup"] + SIM["bake"] + SIM["deregistration"]
            )
            virtual["ratio"] = virtual["duration"] / virtual["ideal"]
            virtual["n"] = n
            data["virtual"] = virtual
        if "fleets" in groups:
            data["fleets"] = {}
            for k in (1, 10) if quick else (1, 10, 50):
                data["fleets"][str(k)] = child(
                    moto, "rolling", n=4, batches=2, fleets=k, parallelism=50, simulate=SIM
                )
                print(f"fleets K={k}: {data['fleets'][str(k)]['wall']:.1f}s", file=sys.stderr)
            one = data["fleets"]["1"]["duration"]
            for entry in data["fleets"].values():
                entry["relative"] = entry["duration"] / one
        if "slots" in groups:
            data["slots"] = {s: slot_scenario(moto, s) for s in ("blue-green", "canary")}
        if "plan" in groups:
            data["plan"] = child(moto, "plan", fleets=100 if quick else 1000)
        if "bake" in groups:
            data["bake"] = bake_scenarios(moto, quick)
        if "ticks" in groups:
            data["ticks"] = child(moto, "ticks", n=4, batch=2)
            t = data["ticks"]
            print(f"ticks: {t['ticks']} ticks, idle tick {t['idle_calls']} calls", file=sys.stderr)
            from . import idle

            n = 100 if quick else 1000
            env = {
                **env_for(moto.url),
                "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            }
            data["idle"] = idle.run(moto.url, env, spec_of_fleets(n), n)
            i = data["idle"]
            print(
                f"idle reconcile of {n} fleets: {i['wall']:.2f}s, {i['api_calls']} calls",
                file=sys.stderr,
            )
        if "ansible" in groups:
            data["ansible"] = ansible(moto)
    if "step-functions" in groups:  # its emulator runs state machines: one of its own
        from . import step_functions

        data["step_functions"] = step_functions.run(quick)
    return data


# The SDK before bakes shared their reads (issue 21): "today" in the bake comparison.
BAKE_BASELINE = "782b38c"


def bake_calls(moto: MotoProcess, seconds: int, src: Path = ROOT / "src", **args: Any) -> Any:
    """The calls of a bake of ``seconds`` (see ``benchmarks.child.bake``)."""
    out = child(moto, "bake", src=src, seconds=seconds, **args)
    return {**out["bake"], "wall": out["wall"], "duration": out["duration"]}


def bake_scenarios(moto: MotoProcess, quick: bool) -> dict[str, Any]:
    """A one-hour bake of 50 fleets (quick: 10 fleets), checks ec2, elb and a CloudWatch alarm
    each, its target groups shared by all fleets or one per fleet: calls now, and today's
    (the SDK at BAKE_BASELINE).

    A bake makes the same calls at every tick, so each is measured over ``sample`` seconds of
    bake (the emulator is slow: one hour of 50 fleets' per-fleet target health is 18,000
    calls) and scaled to the hour. Today's SDK made one DescribeTargetHealth per fleet per
    poll whichever the layout, so its figure is measured once (shared target group).
    """
    fleets, seconds, sample = (10, 3600, 300) if quick else (50, 3600, 300)
    out: dict[str, Any] = {"fleets": fleets, "seconds": seconds, "sample": sample}
    polls = (seconds / 10 + 1) / (sample / 10 + 1)  # an hour's polls per sample's (interval 10 s)
    base = baseline_src()
    today = None
    if base is not None:
        then = bake_calls(moto, sample, src=base, fleets=fleets, shared_tg=True)
        today = {**then, "scaled": then["total"] * polls}
    for layout, shared in (("shared", True), ("per_fleet", False)):
        now = bake_calls(moto, sample, fleets=fleets, shared_tg=shared)
        entry: dict[str, Any] = {"now": {**now, "scaled": now["total"] * polls}}
        if today is not None:
            entry["today"] = today
            entry["ratio"] = entry["now"]["scaled"] / today["scaled"]
        out[layout] = entry
        print(f"bake {layout}: {entry['now']['scaled']:.0f} calls an hour", file=sys.stderr)
    return out


def baseline_src() -> Path | None:
    """The source tree at BAKE_BASELINE (git archive into a temporary directory), or None."""
    target = Path(tempfile.gettempdir()) / f"immutable-sdk-{BAKE_BASELINE}"
    if (target / "src" / "immutable_sdk").exists():
        return target / "src"
    try:
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", BAKE_BASELINE, "src"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"no baseline for the bake comparison: {exc}", file=sys.stderr)
        return None
    return target / "src"


def slot_scenario(moto: MotoProcess, strategy: str) -> dict[str, Any]:
    """Blue/green or canary (10%, 50%, 100%) of 10 instances; ideal: the waits they impose."""
    out = child(moto, "slots", n=10, strategy=strategy, simulate=SIM)
    gate = SIM["boot"] + SIM["warmup"]
    shift = SIM["bake"] + out["ttl"]  # the TTL lengthens the first bake after a shift
    shifts = 1 if strategy == "blue-green" else 3  # canary: each weight step provisions more
    out["ideal"] = shifts * (gate + shift) + out["keep_previous"] + SIM["deregistration"]
    out["ratio"] = out["duration"] / out["ideal"]
    print(f"{strategy}: {out['duration']:.0f}s / {out['ideal']}s", file=sys.stderr)
    return out


def ansible(moto: MotoProcess) -> dict[str, Any]:
    from . import ansible as ans

    playbook = ans.ensure_venv()
    if playbook is None:
        return {"error": "ansible could not be installed"}
    out: dict[str, Any] = {"version": ans.version()}
    with CountingProxy(moto.url) as proxy:
        for n in (6, 24):
            moto.reset()
            theirs = ans.replace_with_ansible(playbook, moto.url, proxy, env_for(moto.url), n, 2)
            proxy.take()
            ours = child(
                moto, "rolling", url=proxy.url, n=n, batches=n // 2, real_clock=True, lb=False
            )
            ours["proxy_calls"] = proxy.take()  # setup and measured apply, as the proxy saw
            out[str(n)] = {
                "ansible": theirs,
                "sdk": ours,
                "calls_ratio": theirs["total_calls"] / ours["total_calls"],
                "wall_ratio": theirs["wall_without_startup"] / ours["wall"],
            }
            print(f"ansible N={n}: {theirs['wall']:.1f}s vs {ours['wall']:.1f}s", file=sys.stderr)
    return out


def hostile_targets(d: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """Each hostile spec validates (or is refused) in under a second of CPU."""
    return [
        (f"validate {name}", f"{e['cpu']:.2f}s", "<= 1 s", e["cpu"] <= 1.0)
        for name, e in (d.get("hostile") or {}).items()
    ]


def targets(d: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(what, measured, target, met)."""
    rows = hostile_targets(d)
    if "step_functions" in d:
        from . import step_functions

        rows += step_functions.targets(d["step_functions"])
    if "rolling" not in d:  # only these were measured
        return rows
    r = d["rolling"]
    big, mid = ("1000", "100") if "1000" in r else ("100", "10")
    ratio = r[big]["total_calls"] / r[mid]["total_calls"]
    rows.append((f"calls N={big} / N={mid}", f"{ratio:.2f}", "<= 1.5", ratio <= 1.5))
    v = d["virtual"]
    rows.append(("virtual duration / ideal", f"{v['ratio']:.3f}", "<= 1.05", v["ratio"] <= 1.05))
    for name, e in (d.get("slots") or {}).items():
        rows.append(
            (f"{name}: virtual / ideal", f"{e['ratio']:.3f}", "<= 1.05", e["ratio"] <= 1.05)
        )
    k = max(d["fleets"], key=int)
    rel = d["fleets"][k]["relative"]
    rows.append((f"{k} fleets / 1 fleet (virtual)", f"{rel:.3f}", "<= 1.2", rel <= 1.2))
    val = d["validate_1000"]["in_process_wall"]
    rows.append(("validate 1,000 fleets (in process)", f"{val:.2f}s", "<= 1 s", val <= 1.0))
    cli = d["validate_1000"]["cli_wall"]
    rows.append(("validate 1,000 fleets (CLI, cold)", f"{cli:.2f}s", "<= 1 s", cli <= 1.0))
    h = d["help_cold_start"]["wall"]
    rows.append(("immutable-sdk --help", f"{h:.2f}s", "<= 0.4 s", h <= 0.4))
    rss = r[big]["peak_rss_mb"]
    rows.append((f"peak RSS N={big}", f"{rss:.0f} MB", "<= 200 MB", rss <= 200))
    b = d.get("bake") or {}
    for layout in ("shared", "per_fleet"):
        e = b.get(layout) or {}
        if "ratio" in e:
            what = f"bake {b['fleets']} fleets {b['seconds'] // 60} min ({layout} TG) / today"
            rows.append((what, f"{e['ratio']:.1%}", "< 10%", e["ratio"] < 0.10))
    t = d.get("ticks") or {}
    if "idle_calls" in t:
        rows.append(
            ("AWS calls of a tick with nothing due", str(t["idle_calls"]), "0", not t["idle_calls"])
        )
        rows.append(("reconcile ticks per rollout (4 in 2 batches)", str(t["ticks"]), "-", True))
    i = d.get("idle") or {}
    if "wall" in i:
        what = f"reconcile {i['fleets']:,} fleets, nothing due (CLI, cold)"
        rows.append((what, f"{i['wall']:.2f}s", "<= 2 s", i["wall"] <= 2.0))
        what = f"AWS calls of that reconcile ({i['units']:,} units waiting)"
        rows.append((what, str(i["api_calls"]), "0", i["api_calls"] == 0))
    for n, a in (d.get("ansible") or {}).items():
        if isinstance(a, dict) and "calls_ratio" in a:
            c, w = a["calls_ratio"], a["wall_ratio"]
            rows.append((f"Ansible / SDK calls N={n}", f"{c:.1f}x", ">= 3x", c >= 3))
            rows.append((f"Ansible / SDK wall N={n}", f"{w:.1f}x", ">= 10x", w >= 10))
    return rows


def table(d: dict[str, Any]) -> str:
    lines = ["scenario                                  wall     cpu   calls  virtual   RSS"]
    for name, e in (d.get("hostile") or {}).items():
        lines.append(
            f"validate {name:<33}{e['wall']:6.2f}s {e['cpu']:6.2f}s  ({e['bytes'] // 1000} KB: "
            f"{e['outcome']})"
        )
    if "step_functions" in d:
        from . import step_functions

        lines += step_functions.table_lines(d["step_functions"])
    if "rolling" not in d:
        return _targets_table(lines, d)
    for n, e in d["rolling"].items():
        lines.append(
            f"rolling N={n:<5} 10 batches (moto)         {e['wall']:6.1f}s {e['cpu']:6.1f}s "
            f"{e['total_calls']:6d}  {'-':>7}  {e['peak_rss_mb']:4.0f}MB"
        )
    v = d["virtual"]
    lines.append(
        f"rolling N={v['n']:<5} simulated waits           {v['wall']:6.1f}s {v['cpu']:6.1f}s "
        f"{v['total_calls']:6d}  {v['duration']:6.0f}s  {v['peak_rss_mb']:4.0f}MB"
        f"  (ideal {v['ideal']}s)"
    )
    for k, e in d["fleets"].items():
        lines.append(
            f"{k:>2} fleets x 4 instances, parallelism 50   {e['wall']:6.1f}s {e['cpu']:6.1f}s "
            f"{e['total_calls']:6d}  {e['duration']:6.0f}s  {e['peak_rss_mb']:4.0f}MB"
        )
    for k, e in d["fleets"].items():
        if e.get("moto_cpu") is not None:
            lines.append(
                f"{k:>2} fleets: wall {e['wall']:.1f}s = emulator CPU {e['moto_cpu']:.1f}s "
                f"({e['moto_cpu'] / e['wall']:.0%} of wall) + SDK CPU {e['cpu']:.1f}s"
            )
    for name, e in (d.get("slots") or {}).items():
        lines.append(
            f"{name:<10} N=10 simulated waits          {e['wall']:6.1f}s {e['cpu']:6.1f}s "
            f"{e['total_calls']:6d}  {e['duration']:6.0f}s  {e['peak_rss_mb']:4.0f}MB"
            f"  (ideal {e['ideal']}s)"
        )
    p = d["plan"]
    lines.append(
        f"plan {p['items']} fleets, no changes              {p['wall']:6.1f}s {p['cpu']:6.1f}s "
        f"{p['total_calls']:6d}  {'-':>7}  {p['peak_rss_mb']:4.0f}MB"
    )
    b = d.get("bake") or {}
    for layout in ("shared", "per_fleet"):
        e = b.get(layout)
        if e:
            today = f"; today {e['today']['scaled']:.0f}" if "today" in e else ""
            lines.append(
                f"bake {b['fleets']} fleets x {b['seconds']}s, {layout} target groups: "
                f"{e['now']['scaled']:.0f} calls{today}"
            )
    for n, a in (d.get("ansible") or {}).items():
        if isinstance(a, dict) and "ansible" in a:
            t, o = a["ansible"], a["sdk"]
            lines.append(
                f"replace N={n} batch 2: Ansible {t['wall_without_startup']:.1f}s "
                f"{t['total_calls']} calls; SDK {o['wall']:.1f}s {o['total_calls']} calls"
            )
    return _targets_table(lines, d)


def _targets_table(lines: list[str], d: dict[str, Any]) -> str:
    lines.append("")
    lines.append(f"{'target':52} {'measured':>10}  {'goal':>9}  met")
    for what, got, goal, met in targets(d):
        lines.append(f"{what:52} {got:>10}  {goal:>9}  {'yes' if met else 'NO'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI-sized runs.")
    parser.add_argument("--no-ansible", action="store_true", help="Skip the Ansible comparison.")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON file (default {RESULTS}).")
    parser.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        help="Run only these groups (repeatable) and keep the others' numbers from the JSON.",
    )
    args = parser.parse_args(argv)
    groups = tuple(args.only or GROUPS)
    if args.no_ansible or args.quick:
        groups = tuple(g for g in groups if g != "ansible")
    quick_out = RESULTS.parent / "results" / "quick.json"  # git-ignored
    out = args.out or (quick_out if args.quick else RESULTS)
    previous = json.loads(out.read_text()) if args.only and out.exists() else {}
    data = run(args.quick, groups, previous)
    data["targets"] = [
        {"what": w, "measured": g, "goal": t, "met": m} for w, g, t, m in targets(data)
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(table(data))
    print(f"\nwritten to {out}")
    return 0
