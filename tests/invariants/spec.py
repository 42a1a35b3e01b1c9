"""The spec the safety machine deploys: one fleet ``web``, rolling or behind traffic slots.

Every check the machine can turn bad is in it: an instance check, the target group (rolling),
a CloudWatch alarm, and an ``http`` check against the machine's own server on 127.0.0.1. The
``http`` check wants 4 good answers in a row, 5 s apart: every gate waits, so that what is
scheduled "at wait N" lands inside gates, bakes and pauses.
"""

from __future__ import annotations

from tests.engine.conftest import AMI_V1, AMI_V2

PROJECT = "inv"
FLEET = "web"
DESIRED = 4
LEASE = 60.0
ALARM = "inv-5xx"
IMAGES = {"v1": AMI_V1, "v2": AMI_V2}
ZONE = "inv.test."
RECORD = "web.inv.test."
SLOTS = ("blue", "green")

# Strategies by name (what a failing example prints), for each kind of fleet.
ROLLING = {
    "rolling-batch2-pause30s": "{type: rolling, batch_size: 2, min_healthy: 100%, pause: 30s}",
    "rolling-batch1": "{type: rolling, batch_size: 1, min_healthy: 100%}",
    "rolling-batch2-min50": "{type: rolling, batch_size: 2, min_healthy: 50%, max_surge: 0}",
}
SLOTTED = {
    "blue-green": "{type: blue-green, keep_previous: 1m}",
    "blue-green-manual": "{type: blue-green, promote_after: manual, keep_previous: 1m}",
    "canary": "{type: canary, steps: [{weight: 25, bake: 30s}, {weight: 100}], keep_previous: 1m}",
    "canary-manual": (
        "{type: canary, steps: [{weight: 25, bake: 30s}, {pause: manual}, {weight: 100}],"
        " keep_previous: 1m}"
    ),
}
MANUAL = frozenset({"blue-green-manual", "canary-manual"})

HEAD = """\
apiVersion: immutable-sdk/v1
name: {project}
region: us-east-1
images:
  app:
    builder: ami
    id: ${{IMAGE_ID}}
fleets:
  {fleet}:
    image: app
    instance_type: t3.micro
    subnets: [{project}-a, {project}-b]
    security_groups: [{project}-web]
    user_data: boot.sh
    capacity: {{min: {desired}, desired: {desired}, max: {max}}}
"""

ROLLING_WIRING = "    load_balancer: {{target_groups: [{project}-web]}}\n"
SLOT_WIRING = """\
    traffic:
      route53: {{zone: {zone}, record: {record}, ttl: 60}}
      slots:
        blue: {{target_group: {project}-blue, load_balancer: {project}-blue}}
        green: {{target_group: {project}-green, load_balancer: {project}-green}}
"""

TAIL = """\
    strategy: {strategy}
    health:
      timeout: 1m
      interval: 5s
      checks:
        - {{type: ec2}}
{elb}        - {{type: cloudwatch-alarm, alarms: [{alarm}]}}
        - {{type: http, url: 'http://127.0.0.1:{port}/h/{{instance_id}}', successes: 4,
            failures: 2, request_timeout: 1s}}
    rollback: {{automatic: true}}
"""


def spec_text(kind: str, strategy: str, http_port: int) -> str:
    """The spec for a ``rolling`` or ``slots`` fleet with the named strategy."""
    fmt = {
        "project": PROJECT,
        "fleet": FLEET,
        "desired": DESIRED,
        "max": DESIRED * 2,
        "zone": ZONE,
        "record": RECORD,
        "alarm": ALARM,
        "port": http_port,
    }
    if kind == "rolling":
        wiring, elb, text = ROLLING_WIRING, "        - {type: elb}\n", ROLLING[strategy]
    else:
        wiring, elb, text = SLOT_WIRING, "", SLOTTED[strategy]
    return HEAD.format(**fmt) + wiring.format(**fmt) + TAIL.format(**fmt, strategy=text, elb=elb)


def min_healthy(kind: str, strategy: str) -> int:
    """Healthy in-service instances the strategy promises to keep (of ``DESIRED``)."""
    if kind == "rolling" and "min50" in strategy:
        return (DESIRED + 1) // 2
    return DESIRED
