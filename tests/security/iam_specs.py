"""Specs whose IAM policies the tests read: the shipped examples, one with every kind of
statement, and a large one (50 fleets in 10 regions)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from immutable_sdk.plugins import load_plugins
from immutable_sdk.spec.load import load_spec
from immutable_sdk.spec.model import Spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "specs/examples").glob("*.yaml"))
DEMO_TEMPLATE = ROOT / "specs/examples/packer/web.pkr.hcl"
REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-central-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-southeast-2",
)

EVERYTHING = """
apiVersion: immutable-sdk/v1
name: shop
region: eu-west-1
state: {backend: dynamodb, table: shop-state, region: us-east-1}
images:
  web: {builder: packer, template: web.pkr.hcl, regions: [us-east-2]}
  batch:
    builder: ec2-image-builder
    pipeline: "arn:aws:imagebuilder:eu-west-1:123456789012:image-pipeline/batch"
  jobs:
    builder: ec2-image-builder
    recipe: "arn:aws:imagebuilder:eu-west-1:123456789012:image-recipe/jobs/1.0.0"
    infrastructure: "arn:aws:imagebuilder:eu-west-1:123456789012:infrastructure-configuration/jobs"
fleets:
  web:
    image: web
    instance_type: t3.micro
    capacity: {min: 1, max: 2}
    iam_instance_profile: web
    load_balancer: {target_groups: [shop-web]}
    health:
      checks:
        - {type: ec2}
        - {type: elb}
        - {type: cloudwatch-alarm, alarms: [shop-5xx]}
  batch:
    image: batch
    instance_type: t3.micro
    capacity: {min: 1, max: 2}
  jobs:
    image: jobs
    instance_type: t3.micro
    capacity: {min: 1, max: 2}
  checkout:
    image: web
    instance_type: t3.micro
    capacity: {min: 1, max: 2}
    traffic:
      route53: {zone: example.com., record: Checkout.Example.com}
      slots:
        blue: {target_group: checkout-blue}
        green: {target_group: checkout-green}
    strategy: {type: blue-green}
  api:
    image: web
    instance_type: t3.micro
    capacity: {min: 1, max: 2}
    traffic:
      route53: {zone: Z2FDTNDATAQYW2, record: api.example.com.}
      slots:
        blue: {target_group: api-blue}
        green: {target_group: api-green}
    strategy: {type: blue-green}
"""


def large_spec_text(fleets: int = 50, traffic: int = 10) -> str:
    """``fleets`` fleets with three health checks, each in all 10 regions with a target group,
    except the first ``traffic``: blue/green behind Route 53 weighted records, in one region
    each (as weighted records require)."""
    lines = [
        "apiVersion: immutable-sdk/v1",
        "name: bigshop",
        "region: us-east-1",
        "state: {backend: dynamodb, table: bigshop-state}",
        "images:",
        "  web: {builder: packer, template: web.pkr.hcl}",
        "defaults:",
        f"  regions: [{', '.join(REGIONS)}]",
        "  instance_type: t3.micro",
        "  subnets: [private-a, private-b]",
        "  security_groups: [web]",
        "  health:",
        "    checks:",
        "      - {type: ec2}",
        "      - {type: elb}",
        "      - {type: cloudwatch-alarm, alarms: [bigshop-5xx]}",
        "fleets:",
    ]
    for n in range(fleets):
        name = f"service{n:02d}"
        lines += [
            f"  {name}:",
            "    image: web",
            "    capacity: {min: 1, max: 4}",
        ]
        if n < traffic:
            lines += [
                "    strategy: {type: blue-green}",
                f"    regions: [{REGIONS[n % len(REGIONS)]}]",  # weighted records: one region
                "    traffic:",
                f"      route53: {{zone: Z0{n:02d}EXAMPLE, record: {name}.example.com}}",
                "      slots:",
                f"        blue: {{target_group: {name}-blue}}",
                f"        green: {{target_group: {name}-green}}",
            ]
        else:
            lines.append(f"    load_balancer: {{target_groups: [{name}-tg]}}")
    return "\n".join(lines) + "\n"


def load(path: Path) -> Spec:
    return load_spec([path], plugins=load_plugins(autoload=True))


def written(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / "web.pkr.hcl").write_text(DEMO_TEMPLATE.read_text())
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def every_spec(tmp_path: Path) -> Iterator[tuple[str, Spec, dict[str, Any]]]:
    """(label, spec, policy_document options) for every spec and option the tests read."""
    for path in EXAMPLES:
        yield path.stem, load(path), {}
    everything = load(written(tmp_path, "everything", EVERYTHING))
    yield "everything", everything, {}
    yield (
        "everything+options",
        everything,
        {"account": "123456789012", "images_gc": True, "packer_temporary_security_group": True},
    )
    yield "large", load(written(tmp_path, "large", large_spec_text())), {}
