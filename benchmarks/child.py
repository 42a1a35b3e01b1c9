"""One scenario in its own process: ``python -m benchmarks.child SCENARIO JSON-ARGS``.

Prints one JSON line: wall and CPU seconds of the measured part, the process's peak RSS
(VmHWM), the engine's AWS API calls by operation and, for rollouts, the clock's duration.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

AMI_V1 = "ami-03c3da4cfa8e8943a"  # two Amazon Linux AMIs moto ships in us-east-1
AMI_V2 = "ami-0d27e0fb3bac4d724"
SUBNETS = "[bench-big]"  # a /18 made by big_subnet(): moto places a group in one subnet

FLEET = """
  {name}:
    image: web
    instance_type: t3.micro
    subnets: {subnets}
    security_groups: [bench-web]
    capacity: {{min: {n}, desired: {n}, max: {max}}}
{lb}    strategy: {{type: rolling, batch_size: {batch}, min_healthy: 100%{bake}}}
    health:
      timeout: 1h
      interval: {interval}
      checks:
{checks}
"""


def spec_text(
    fleets: int,
    n: int,
    batch: int,
    *,
    checks: str,
    bake: str = "",
    lb: bool = True,
    interval: str = "10s",
) -> str:
    head = (
        "apiVersion: immutable-sdk/v1\nname: bench\nregion: us-east-1\n"
        "images:\n  web:\n    builder: ami\n    id: ${WEB_AMI}\nfleets:\n"
    )
    body = "".join(
        FLEET.format(
            name=f"web{i}" if fleets > 1 else "web",
            subnets=SUBNETS,
            n=n,
            max=max(2 * n, 1),
            lb="    load_balancer: {target_groups: [bench-web]}\n" if lb else "",
            batch=batch,
            bake=f", bake: {bake}" if bake else "",
            interval=interval,
            checks=checks,
        )
        for i in range(fleets)
    )
    return head + body


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def big_subnet(url: str) -> None:
    """A subnet with room for thousands of instances, in the sandbox's VPC, named bench-big."""
    import boto3

    from immutable_sdk.sandbox import Sandbox

    Sandbox.attach(url).seed({"region": "us-east-1", "fleets": {"x": {"subnets": ["bench-a"]}}})
    ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1")
    subnets = ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["bench-a"]}])
    vpc = subnets["Subnets"][0]["VpcId"]
    if ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["bench-big"]}])["Subnets"]:
        return
    ec2.create_subnet(
        VpcId=vpc,
        CidrBlock="10.0.192.0/18",
        AvailabilityZone="us-east-1a",
        TagSpecifications=[
            {"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "bench-big"}]}
        ],
    )


class Bench:
    def __init__(self, text: str, url: str, *, virtual: bool, plugins: list[Any] = ()) -> None:
        from immutable_sdk.clock import RealClock, VirtualClock

        self.dir = Path(tempfile.mkdtemp(prefix="bench-"))
        self.path = self.dir / "spec.yaml"
        self.path.write_text(text)
        self.url = url
        self.clock = VirtualClock() if virtual else RealClock()
        self.plugins = list(plugins)
        big_subnet(url)

    def engine(self, ami: str, sink: Any = None) -> Any:
        from immutable_sdk.aws.session import AwsSession
        from immutable_sdk.core.engine import Engine
        from immutable_sdk.plugins import load_plugins
        from immutable_sdk.sandbox import Sandbox
        from immutable_sdk.spec.load import load_spec
        from immutable_sdk.state.sqlite import SqliteStateStore

        os.environ["WEB_AMI"] = ami
        plugins = load_plugins(self.plugins, autoload=False)
        spec = load_spec([self.path], plugins=plugins)
        Sandbox.attach(self.url).seed(spec)
        return Engine(
            spec,
            plugins=plugins,
            session=AwsSession("us-east-1", endpoint_url=self.url),
            clock=self.clock,
            state=SqliteStateStore(self.dir / "state.db", spec.name),
            **({"sink": sink} if sink is not None else {}),
        )


def moto_cpu() -> float | None:
    """CPU seconds the emulator's process has used so far (None when its pid is unknown)."""
    from .servers import process_cpu

    pid = os.environ.get("BENCH_MOTO_PID")
    return process_cpu(int(pid)) if pid else None


def measure(run: Any) -> dict[str, Any]:
    """Wall and CPU time of ``run``: this process's (the SDK's) and the emulator's."""
    wall, c, m = time.perf_counter(), cpu(), moto_cpu()
    out = run()
    after = moto_cpu()
    emulator = after - m if after is not None and m is not None else None
    return {"wall": time.perf_counter() - wall, "cpu": cpu() - c, "moto_cpu": emulator, **out}


def planned_apply(
    engine: Any, expected: Any, *, require_ok: bool = True, **apply: Any
) -> dict[str, Any]:
    """What `immutable-sdk apply` does, plan then apply; the calls of both count."""
    before = engine.session.calls.snapshot()
    plan = engine.plan()
    assert expected(plan), plan.to_dict()
    result = engine.apply(plan, **apply)
    assert result.ok or not require_ok, result.to_dict()
    calls = engine.session.calls.since(before)
    return {
        "duration": result.duration,
        "calls": calls,
        "total_calls": sum(calls.values()),
        "plan_calls": sum(calls.values()) - result.api_calls["total"],
        "launched": sum(len(f.launched) for f in result.fleets),
        "failed": {f.fleet: f.error for f in result.fleets if not f.ok},
    }


def rolling(
    url: str,
    n: int,
    batches: int,
    simulate: dict[str, Any] | None = None,
    fleets: int = 1,
    parallelism: int = 10,
    real_clock: bool = False,
    lb: bool = True,
) -> dict[str, Any]:
    batch = max(1, math.ceil(n / batches))
    plugins: list[Any] = []
    checks = "        - {type: ec2}\n" + ("        - {type: elb}\n" if lb else "")
    bake = ""
    if simulate:
        from .simulate import Simulation

        checks += (
            f"        - {{type: simulated-boot, boot: '{simulate['boot']}s', "
            f"warmup: '{simulate['warmup']}s'}}\n"
        )
        bake = f"{simulate['bake']}s"
    bench = Bench(
        spec_text(fleets, n, batch, checks=checks.rstrip("\n"), bake=bake, lb=lb),
        url,
        virtual=not real_clock,
        plugins=plugins,
    )
    if simulate:
        sim = Simulation(bench.clock, float(simulate["deregistration"]))
        bench.plugins.append(sim)
    with bench.engine(AMI_V1) as engine:
        first = engine.apply(parallelism=parallelism)
        assert first.ok, first.to_dict()
    with bench.engine(AMI_V2) as engine:

        def replace() -> dict[str, Any]:
            return planned_apply(
                engine,
                lambda plan: all(i.action == "replace" for i in plan.items),
                parallelism=parallelism,
            )

        out = measure(replace)
    out["batch_size"] = batch
    out["batches"] = math.ceil(n / batch)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def plan_many(url: str, fleets: int, parallelism: int = 50) -> dict[str, Any]:
    bench = Bench(
        spec_text(fleets, 0, 1, checks="        - {type: ec2}", lb=False), url, virtual=True
    )
    with bench.engine(AMI_V1) as engine:
        setup = measure(lambda: {"ok": engine.apply(parallelism=parallelism).ok})
    with bench.engine(AMI_V1) as engine:
        before = engine.session.calls.snapshot()

        def plan() -> dict[str, Any]:
            p = engine.plan()
            return {"changes": p.changes, "items": len(p.items)}

        out = measure(plan)
        out["calls"] = engine.session.calls.since(before)
        out["total_calls"] = sum(out["calls"].values())
    out["setup_apply_wall"] = setup["wall"]
    out["setup_ok"] = setup["ok"]
    out["peak_rss_mb"] = peak_rss_mb()
    return out


SLOT_FLEET = """
  web:
    image: web
    instance_type: t3.micro
    subnets: [bench-big]
    security_groups: [bench-web]
    capacity: {{min: {n}, desired: {n}, max: {max}}}
    traffic:
      route53: {{zone: bench.example.com., record: web.bench.example.com, ttl: {ttl}}}
      slots:
        blue: {{target_group: bench-blue, load_balancer: bench-blue}}
        green: {{target_group: bench-green, load_balancer: bench-green}}
    strategy: {strategy}
    health:
      timeout: 1h
      interval: 10s
      checks:
        - {{type: ec2}}
        - {{type: elb}}
        - {{type: simulated-boot, boot: '{boot}s', warmup: '{warmup}s'}}
"""


def slots(
    url: str,
    n: int,
    strategy: str,
    simulate: dict[str, Any],
    ttl: int = 60,
    keep_previous: int = 300,
) -> dict[str, Any]:
    """A blue/green or canary replacement between two traffic slots, on the virtual clock."""
    from .simulate import Simulation

    bake = f"{simulate['bake']}s"
    if strategy == "blue-green":
        config = f"{{type: blue-green, bake: {bake}, keep_previous: {keep_previous}s}}"
    else:
        steps = ", ".join(f"{{weight: {w}, bake: {bake}}}" for w in (10, 50, 100))
        config = f"{{type: canary, steps: [{steps}], keep_previous: {keep_previous}s}}"
    head = (
        "apiVersion: immutable-sdk/v1\nname: bench\nregion: us-east-1\n"
        "images:\n  web:\n    builder: ami\n    id: ${WEB_AMI}\nfleets:\n"
    )
    text = head + SLOT_FLEET.format(
        n=n, max=2 * n, ttl=ttl, strategy=config, boot=simulate["boot"], warmup=simulate["warmup"]
    )
    bench = Bench(text, url, virtual=True)
    bench.plugins.append(Simulation(bench.clock, float(simulate["deregistration"])))
    with bench.engine(AMI_V1) as engine:
        first = engine.apply()
        assert first.ok, first.to_dict()
    with bench.engine(AMI_V2) as engine:

        def replace() -> dict[str, Any]:
            return planned_apply(engine, lambda plan: plan.items[0].action == "replace")

        out = measure(replace)
    out["ttl"], out["keep_previous"] = ttl, keep_previous
    out["peak_rss_mb"] = peak_rss_mb()
    return out


BAKE_FLEET = """
  web{i}:
    image: web
    instance_type: t3.micro
    subnets: [bench-big]
    security_groups: [bench-web]
    capacity: {{min: {n}, desired: {n}, max: {max}}}
    load_balancer: {{target_groups: [{tg}]}}
    strategy: {{type: rolling, batch_size: 100%, min_healthy: 100%, bake: {bake}s}}
    health:
      timeout: 1h
      interval: {interval}s
      checks:
        - {{type: ec2}}
        - {{type: elb}}
        - {{type: cloudwatch-alarm, alarms: [bench-errors-{i}]}}
"""


def bake(
    url: str, fleets: int, seconds: int, n: int = 2, interval: int = 10, shared_tg: bool = True
) -> dict[str, Any]:
    """``fleets`` fleets replaced in one batch each, then baked ``seconds`` (virtual clock),
    watched by ``ec2``, ``elb`` and one CloudWatch alarm each; target groups: one shared by
    all fleets (``shared_tg``) or one per fleet.

    The bake's calls are those made while every fleet was baking (between the last bake's
    start and the first one's end, on the virtual clock), per tick, times the polls of a bake of
    ``seconds``: the rollout's other calls (launch, gate, retire) are left out.
    """
    head = (
        "apiVersion: immutable-sdk/v1\nname: bench\nregion: us-east-1\n"
        "images:\n  web:\n    builder: ami\n    id: ${WEB_AMI}\nfleets:\n"
    )
    text = head + "".join(
        BAKE_FLEET.format(
            i=i,
            n=n,
            max=2 * n,
            tg="bench-web" if shared_tg else f"bench-web-{i}",
            bake=seconds,
            interval=interval,
        )
        for i in range(fleets)
    )
    bench = Bench(text, url, virtual=True)
    with bench.engine(AMI_V1) as engine:
        first = engine.apply(parallelism=fleets)
        assert first.ok, first.to_dict()
    starts: list[float] = []
    ends: list[float] = []
    stamped: list[tuple[float, str]] = []

    def sink(event: Any) -> None:
        if event.kind in ("step.started", "step.finished"):
            kind = event.data.get("step", {}).get("kind") if event.kind == "step.started" else None
            if kind == "bake":
                starts.append(event.at)
            elif event.kind == "step.finished" and event.data.get("seconds") == seconds:
                ends.append(event.at)

    with bench.engine(AMI_V2, sink=sink) as engine:
        counter = engine.session.calls
        count = counter._call

        def stamp(name: str) -> None:
            stamped.append((bench.clock.now(), name))
            count(name)

        counter._call = stamp

        def replace() -> dict[str, Any]:
            return planned_apply(
                engine,
                lambda plan: all(i.action == "replace" for i in plan.items),
                parallelism=fleets,
                require_ok=False,  # reported: a fleet failed by an overloaded emulator
            )

        out = measure(replace)
    assert len(starts) == fleets and len(ends) >= fleets - len(out["failed"]), out["failed"]
    # Strictly inside the window: at its first instant (virtual time stands still while the
    # other fleets launch and gate) and at its last, the rollouts' own calls mix in. The polls
    # inside are those of its inner ticks; a bake of ``seconds`` polls seconds/interval + 1 times.
    window = (max(starts), min(ends))
    length = window[1] - window[0]
    during: dict[str, int] = {}
    for at, name in stamped:
        if window[0] < at < window[1]:
            during[name] = during.get(name, 0) + 1
    inner = math.ceil(length / interval - 1e-6) - 1
    assert inner > 0, f"the bakes overlapped for {length}s only"
    scale = (seconds / interval + 1) / inner
    out["bake"] = {
        "window": length,
        "ticks": inner,
        "calls": {k: round(v * scale) for k, v in sorted(during.items())},
        "total": round(sum(during.values()) * scale),
    }
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def ticks(url: str, n: int = 4, batch: int = 2) -> dict[str, Any]:
    """Release 2 of a rolling fleet (``n`` instances in batches of ``batch``, a 10-minute bake
    after each gate, a 5-minute pause between batches) by reconcile ticks: a fresh engine per
    tick on a shared virtual clock moved to each ``next_at``. Counts the ticks, each tick's
    AWS calls, and those of a tick made before anything is due (goal: none: it reads only the
    state store); the same release by one ``apply`` for comparison."""
    text = spec_text(
        1, n, batch, checks="        - {type: ec2}", bake="10m, pause: 5m", interval="5m"
    )
    from immutable_sdk.clock import VirtualClock

    bench = Bench(text, url, virtual=True)
    assert isinstance(bench.clock, VirtualClock)
    with bench.engine(AMI_V1) as engine:
        assert engine.apply().ok
    per_tick: list[int] = []
    idle: list[int] = []

    def tick_all() -> dict[str, Any]:
        for _ in range(200):
            with bench.engine(AMI_V2) as engine:
                result = engine.reconcile(start=True, budget=60)
            per_tick.append(result.api_calls["total"])
            if result.exit_code != 10:
                assert result.exit_code == 0, result.to_dict()
                return {"ticks": len(per_tick), "total_calls": sum(per_tick)}
            wake = result.next_at
            assert wake is not None
            with bench.engine(AMI_V2) as engine:  # a cron tick before anything is due
                early = engine.reconcile(start=True, budget=60)
            assert early.exit_code == 10, early.to_dict()
            idle.append(early.api_calls["total"])
            bench.clock.advance(max(0.0, wake - bench.clock.now()))
        raise AssertionError("not converged in 200 ticks")

    out = measure(tick_all)
    out.update(per_tick=per_tick, idle_calls=max(idle, default=0), idle_ticks=len(idle))
    again = Bench(text, url, virtual=True)
    with again.engine(AMI_V1) as engine:
        assert engine.apply().ok
    with again.engine(AMI_V2) as engine:
        out["apply_calls"] = planned_apply(engine, lambda plan: plan.changes)["total_calls"]
    return out


SCENARIOS = {
    "rolling": rolling,
    "plan": plan_many,
    "slots": slots,
    "bake": bake,
    "ticks": ticks,
}

if __name__ == "__main__":
    name, args = sys.argv[1], json.loads(sys.argv[2])
    result = SCENARIOS[name](os.environ["BENCH_AWS_URL"], **args)
    print(json.dumps(result))
