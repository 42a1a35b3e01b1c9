"""Secrets never reach any output: a rollout whose image vars and user data hold secret-looking
values, with a careless Packer template that echoes them, run through the CLI in every output
format; every byte printed is searched for every secret."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from immutable_sdk.cli import main

from .conftest import AMI_V1, World

ACCESS_KEY_ID = "AKIAZ7QF3XKD2M5LNP4R"
TOKEN = "tok_9fQ2xLm7ZpV4Rb8KwT1nYc3dH6jS0uEa5gBi"
KEY_LINES = (
    "MIIEowIBAAKCAQEAvX3kZ8Qp2LmN7rT5wY1cB4dF6hJ9sUa0eGi3oK8lP2qR5tV7",
    "xW9yZ1aB3cD5eF7gH9iJ2kL4mN6oP8qR0sT2uV4wX6yZ8aB1cD3eF5gH7iJ9kL2",
    "Qm4N6oP8qR1sT3uV5wX7yZ9aB2cD4eF6gH8iJ1kL3mN5oP7qR9sT2uV4wX6yZ8a",
)
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(KEY_LINES) + "\n-----END RSA PRIVATE KEY-----"
)
SECRETS = (ACCESS_KEY_ID, TOKEN, *KEY_LINES)

TEMPLATE = """
variable "region" {
  type    = string
  default = "us-east-1"
}
variable "ec2_endpoint" {
  type    = string
  default = ""
}
variable "communicator" {
  type    = string
  default = "ssh"
}
variable "immutable_sdk_tags" {
  type    = map(string)
  default = {}
}
variable "access_key" { type = string }
variable "api_token" { type = string }
variable "deploy_key" { type = string }

source "amazon-ebs" "web" {
  region                 = var.region
  custom_endpoint_ec2    = var.ec2_endpoint
  skip_region_validation = true
  instance_type          = "t3.micro"
  source_ami             = "%(ami)s"
  ami_name               = "careless-${formatdate("YYYYMMDDhhmmss", timestamp())}"
  communicator           = var.communicator
  tags                   = var.immutable_sdk_tags
}

build {
  sources = ["source.amazon-ebs.web"]
  post-processor "shell-local" {
    inline = [
      "echo access key ${var.access_key}",
      "echo token ${var.api_token}",
      "echo '${var.deploy_key}'",
    ]
  }
}
"""

SPEC = """
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
state: {path: state.db}
images:
  web:
    builder: packer
    template: web.pkr.hcl
    vars:
      access_key: ${ACCESS_KEY}
      api_token: ${API_TOKEN}
      deploy_key: ${DEPLOY_KEY}
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    user_data: boot.sh
    capacity: {min: 1, desired: 1, max: 2}
    load_balancer: {target_groups: [shop-web]}
    strategy: {type: rolling, batch_size: 1}
    health:
      checks:
        - {type: ec2}
"""


@pytest.mark.packer
@pytest.mark.skipif(shutil.which("packer") is None, reason="needs the packer binary")
def test_no_secret_in_any_output(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    (world.tmp / "web.pkr.hcl").write_text(TEMPLATE % {"ami": AMI_V1})
    monkeypatch.setenv("ACCESS_KEY", ACCESS_KEY_ID)
    monkeypatch.setenv("API_TOKEN", TOKEN)
    monkeypatch.setenv("DEPLOY_KEY", PRIVATE_KEY)
    spec = world.tmp / "spec.yaml"
    spec.write_text(SPEC)
    (world.tmp / "boot.sh").write_text(
        f"#!/bin/sh\nexport AWS_ACCESS_KEY_ID={ACCESS_KEY_ID}\nexport TOKEN={TOKEN}\n"
    )
    world.engine().close()  # seeds the account with the spec's network

    runner = CliRunner()
    outputs: list[str] = []

    def run(*args: str, ok: tuple[int, ...] = (0,)) -> None:
        result = runner.invoke(main, ["--endpoint-url", world.url, *args], catch_exceptions=False)
        outputs.append(result.stdout + result.stderr)
        assert result.exit_code in ok, result.output

    f = ["-f", str(spec)]
    run("validate", *f)
    run("plan", *f)
    run("--log-format", "json", "apply", *f, "--yes", "--output", "json")
    echoed = [o for o in outputs if "build.output" in o and "access key" in o]
    assert echoed, "the template's echo must have reached the output, redacted"
    assert "[redacted]" in echoed[0]
    run("status", *f)
    run("history", *f, "-o", "json")
    run("drift", *f, "-o", "json")
    # a new image (another token) through the console printer and the result table
    monkeypatch.setenv("API_TOKEN", TOKEN[::-1])
    run("apply", *f, "--yes")
    run("--log-format", "json", "plan", *f, "--output", "json")
    run("drift", *f)

    everything = "\n".join(outputs)
    assert "promoted" in everything
    for secret in (*SECRETS, TOKEN[::-1]):
        assert secret not in everything
    assert "BEGIN RSA PRIVATE KEY" not in everything
    assert Path(spec).exists()
