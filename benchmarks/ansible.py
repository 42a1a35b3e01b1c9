"""The same rolling replacement done by Ansible's ``amazon.aws.autoscaling_group``.

Ansible (the full ``ansible`` package, which bundles the amazon.aws collection) and boto3 are
installed into a separate venv, ``benchmarks/.venv-ansible`` (git-ignored), on first use. The
playbook replaces every instance of a group in batches (``replace_all_instances``,
``replace_batch_size``) against the same moto server behind the same counting proxy as the SDK.
``metrics_collection: true`` because moto lacks DisableMetricsCollection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from .child import AMI_V1, AMI_V2

VENV = Path(__file__).parent / ".venv-ansible"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: replace every instance, {batch} at a time
      amazon.aws.autoscaling_group:
        name: ans-web
        region: us-east-1
        endpoint_url: "{url}"
        launch_template: {{launch_template_name: ans-web, version: "2"}}
        min_size: {n}
        max_size: {max}
        desired_capacity: {n}
        vpc_zone_identifier: ["{subnet}"]
        health_check_type: EC2
        replace_all_instances: true
        replace_batch_size: {batch}
        wait_for_instances: true
        wait_timeout: 900
        metrics_collection: true
"""
NOOP = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.debug: {msg: start-up}
"""


def ensure_venv() -> Path | None:
    """The venv's ansible-playbook, installing it if needed; None if that is impossible."""
    playbook = VENV / "bin" / "ansible-playbook"
    if playbook.exists():
        return playbook
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "-q", "ansible", "boto3", "botocore"],
            check=True,
            timeout=1800,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"ansible could not be installed: {exc}", file=sys.stderr)
        return None
    return playbook if playbook.exists() else None


def version() -> str:
    out = subprocess.run(
        [str(VENV / "bin" / "ansible-galaxy"), "collection", "list", "amazon.aws"],
        capture_output=True,
        text=True,
    ).stdout
    core = subprocess.run(
        [str(VENV / "bin" / "ansible"), "--version"], capture_output=True, text=True
    ).stdout.splitlines()[:1]
    amazon = [ln.split()[-1] for ln in out.splitlines() if ln.startswith("amazon.aws")]
    return f"{' '.join(core)}; amazon.aws {amazon[0] if amazon else '?'}"


def setup_group(url: str, n: int) -> str:
    """A launch template (version 1 on AMI_V1, version 2 on AMI_V2) and a group of n on v1."""
    kw: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1", **CREDENTIALS}
    ec2 = boto3.client("ec2", **kw)
    asg = boto3.client("autoscaling", **kw)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.0.0/20", AvailabilityZone="us-east-1a")
    subnet_id = subnet["Subnet"]["SubnetId"]
    ec2.create_launch_template(
        LaunchTemplateName="ans-web",
        LaunchTemplateData={"ImageId": AMI_V1, "InstanceType": "t3.micro"},
    )
    ec2.create_launch_template_version(
        LaunchTemplateName="ans-web",
        LaunchTemplateData={"ImageId": AMI_V2, "InstanceType": "t3.micro"},
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName="ans-web",
        LaunchTemplate={"LaunchTemplateName": "ans-web", "Version": "1"},
        MinSize=n,
        MaxSize=2 * n,
        DesiredCapacity=n,
        VPCZoneIdentifier=subnet_id,
    )
    return str(subnet_id)


def check_replaced(url: str) -> int:
    """How many of the group's instances run AMI_V2 (all of them after a replacement)."""
    kw: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1", **CREDENTIALS}
    group = boto3.client("autoscaling", **kw).describe_auto_scaling_groups(
        AutoScalingGroupNames=["ans-web"]
    )["AutoScalingGroups"][0]
    ids = [i["InstanceId"] for i in group["Instances"]]
    out = boto3.client("ec2", **kw).describe_instances(InstanceIds=ids)
    images = [i["ImageId"] for r in out["Reservations"] for i in r["Instances"]]
    return sum(1 for image in images if image == AMI_V2)


def run_playbook(playbook: Path, text: str, env: dict[str, str]) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "play.yml"
        path.write_text(text)
        start = time.perf_counter()
        out = subprocess.run(
            [
                str(playbook),
                "-i",
                "localhost,",
                "-e",
                f"ansible_python_interpreter={VENV / 'bin' / 'python'}",
                str(path),
            ],
            env={**env, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "False"},
            capture_output=True,
            text=True,
            timeout=1800,
        )
        wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"ansible-playbook failed:\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}")
    return wall, out.stdout


def replace_with_ansible(
    playbook: Path, moto_url: str, proxy: Any, env: dict[str, str], n: int, batch: int
) -> dict[str, Any]:
    subnet = setup_group(moto_url, n)
    startup, _ = run_playbook(playbook, NOOP, env)
    proxy.take()
    wall, _ = run_playbook(
        playbook, PLAYBOOK.format(url=proxy.url, n=n, max=2 * n, batch=batch, subnet=subnet), env
    )
    calls = proxy.take()
    return {
        "wall": wall,
        "wall_without_startup": wall - startup,
        "startup": startup,
        "calls": calls,
        "total_calls": sum(calls.values()),
        "replaced": check_replaced(moto_url),
    }


def main_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


if __name__ == "__main__":  # pragma: no cover - a manual check
    print(ensure_venv(), version() if VENV.exists() else "", os.getcwd())
