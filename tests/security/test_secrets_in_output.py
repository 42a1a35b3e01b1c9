"""No secret of the corpus (``secret_corpus``) reaches any output channel.

Through the CLI, against the moto server and the real ``packer``: a careless template prints the
whole corpus and the spec's secret variables (named and bare), an ``http`` check's URL carries
credentials, the rollout fails and rolls back, a later build fails on a secret; every byte of
the console, ``-o json``, ``--log-format json`` and the final ``error:`` line is searched, and so
is every payload the webhook plugin posts to a real server on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from click.testing import CliRunner

from immutable_sdk.cli import main
from immutable_sdk.plugin import Registry, hookimpl
from immutable_sdk.testing.endpoints import LoopbackHTTPServer
from immutable_sdk.testing.testbed import SandboxAccount

from .conftest import AMI_V1, AMI_V2, World, fleet_spec
from .secret_corpus import CORPUS, SECRETS, leaked

TAG_SECRET = "tagtok-5a5a5a5a"
ALL = (*SECRETS, TAG_SECRET)

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
variable "db_password" { type = string }
variable "deploy_token" { type = string }
variable "app_version" { type = string }
variable "fail" { type = string }

source "amazon-ebs" "web" {
  region                 = var.region
  custom_endpoint_ec2    = var.ec2_endpoint
  skip_region_validation = true
  instance_type          = "t3.micro"
  source_ami             = "%(ami)s"
  ami_name               = "careless-${var.app_version}-${uuidv4()}"
  communicator           = var.communicator
  tags                   = var.immutable_sdk_tags
}

build {
  sources = ["source.amazon-ebs.web"]
  post-processor "shell-local" {
    inline = [
      "cat corpus.txt",
      "echo db_password=${var.db_password}",
      "echo ${var.db_password}",
      "echo ${var.deploy_token}",
      "if [ '${var.fail}' = yes ]; then echo db_password=${var.db_password} >&2; exit 3; fi",
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
      db_password: plainpass-1234
      deploy_token: !secret ${DEPLOY_TOKEN}
      app_version: ${APP_VERSION}
      fail: ${FAIL:-no}
notifiers:
  - {type: webhook, url: '%(hook)s'}
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [shop-a, shop-b]
    security_groups: [shop-web]
    capacity: {min: 1, desired: 1, max: 2}
    load_balancer: {target_groups: [shop-web]}
    strategy: {type: rolling, batch_size: 1}
    tags: {team: shop, api_token: %(tag)s}
    health:
      timeout: 1m
      interval: 1s
      checks:
        - type: http
          url: 'http://127.0.0.1:%(port)d/h/{instance_id}?password=qp-s3cret-9&api_key=qk-0451-xyz'
          successes: 1
          failures: 1
"""


class Recorder:
    """A real HTTP server on 127.0.0.1: answers health checks, records webhook payloads."""

    def __init__(self, world: World) -> None:
        self.bodies: list[bytes] = []
        self.is_bad: Callable[[str], bool] = lambda ami: False  # instances of it answer 500
        ec2 = world.client("ec2")
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                instance = self.path.split("?")[0].rsplit("/", 1)[-1]
                found = ec2.describe_instances(InstanceIds=[instance])["Reservations"]
                ami = found[0]["Instances"][0]["ImageId"]
                self.send_response(500 if outer.is_bad(ami) else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                outer.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = LoopbackHTTPServer(Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def recorder(world: World) -> Iterator[Recorder]:
    r = Recorder(world)
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.mark.packer
@pytest.mark.skipif(shutil.which("packer") is None, reason="needs the packer binary")
def test_no_corpus_secret_in_any_cli_output(
    world: World, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMMUTABLE_SDK_DISABLE_PLUGIN_AUTOLOAD")  # the webhook's entry point
    (world.tmp / "web.pkr.hcl").write_text(TEMPLATE % {"ami": AMI_V1})
    (world.tmp / "corpus.txt").write_text("\n".join(s.line for s in CORPUS) + "\n")
    monkeypatch.setenv("DEPLOY_TOKEN", "c0rrect-h0rse-9")
    monkeypatch.setenv("APP_VERSION", "1")
    hook = f"http://127.0.0.1:{recorder.port}/hooks/deploy"
    spec = world.tmp / "spec.yaml"
    spec.write_text(SPEC % {"hook": hook, "port": recorder.port, "tag": TAG_SECRET})
    SandboxAccount(world.url, world.tmp).engine(spec, autoload=True).close()  # seeds the network

    runner = CliRunner()
    outputs: list[str] = []

    def run(*args: str, ok: tuple[int, ...] = (0,)) -> tuple[str, str]:
        result = runner.invoke(main, ["--endpoint-url", world.url, *args], catch_exceptions=False)
        outputs.append(result.stdout + result.stderr)
        assert result.exit_code in ok, result.output
        return result.stdout, result.stderr

    f = ["-f", str(spec)]
    _, warnings = run("validate", *f)
    assert "images.web.vars.db_password: looks like a secret by its name" in warnings
    assert "fleets.web.tags.api_token: looks like a secret by its name in a tag" in warnings
    run("plan", *f)
    run("apply", *f, "--yes")  # the console: packer prints the corpus, then promoted
    console = outputs[-1]
    assert "db_password=[redacted]" in console and "promoted" in console
    assert "DB_PASSWORD=[redacted]" in console and "Authorization: [redacted]" in console
    assert "GET https://deploy:[redacted]@db.internal:5432/x" in console

    # a new image whose instances fail the http check: gate fails, rolled back
    first_ami = world.members()[0]["ImageId"]
    assert first_ami != AMI_V1  # packer baked it
    monkeypatch.setenv("APP_VERSION", "2")
    recorder.is_bad = lambda ami: ami != first_ami
    out, err = run("--log-format", "json", "apply", *f, "--yes", "-o", "json", ok=(1,))
    result = json.loads(out)
    assert result["fleets"][0]["outcome"] == "rolled_back"
    assert "password=[redacted]&api_key=[redacted]: status 500" in result["fleets"][0]["error"]
    assert '"build.output"' in err  # the JSON event stream carried the corpus, redacted
    run("status", *f)
    run("history", *f, "-o", "json")
    run("history", *f)
    run("drift", *f, "-o", "json")

    # a build that fails on a secret: the fleet's failure (a failed build is the outcome of
    # the fleets on its image since images build in parallel), its output redacted
    monkeypatch.setenv("APP_VERSION", "3")
    monkeypatch.setenv("FAIL", "yes")
    out, err = run("apply", *f, "--yes", ok=(1,))
    assert "db_password=[redacted]" in err
    out, _ = run("apply", *f, "--yes", "-o", "json", ok=(1,))  # the table wraps: read JSON
    (failed,) = json.loads(out)["fleets"]
    assert failed["outcome"] == "failed" and "packer build failed" in failed["error"], failed

    # an http check whose URL (credentials included) the spec refuses: the final error line
    spec.write_text(
        spec.read_text().replace("http://127.0.0.1", "htps://deploy:url-Pa55w0rd@127.0.0.1")
    )
    _, err = run("plan", *f, ok=(2,))
    assert err.strip().splitlines()[-1].startswith("error: "), err
    (url,) = [line for line in err.splitlines() if "checks[0].url" in line]
    assert "htps://deploy:[redacted]@127.0.0.1" in url, err

    everything = "\n".join(outputs)
    assert leaked(everything, ALL) == []
    assert "BEGIN RSA PRIVATE KEY" not in everything

    payloads = b"\n".join(recorder.bodies).decode()
    events = [json.loads(b)["event"] for b in recorder.bodies]
    assert "rollback_started" in events, events
    reasons = [json.loads(b).get("reason", "") for b in recorder.bodies]
    assert any("password=[redacted]" in r for r in reasons), reasons
    assert leaked(payloads, ALL) == []


class Heard:
    """A notifier (registered through the plugin manager) that keeps every hook's arguments."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def _keep(self, hook: str, **kwargs: Any) -> None:
        self.log.append(f"{hook} {kwargs!r}")

    @hookimpl
    def immutable_sdk_rollout_started(self, rollout: Any) -> None:
        self._keep("rollout_started", rollout=rollout)

    @hookimpl
    def immutable_sdk_step_started(self, rollout: Any, step: Any) -> None:
        self._keep("step_started", rollout=rollout, step=step)

    @hookimpl
    def immutable_sdk_step_finished(self, rollout: Any, step: Any, outcome: str) -> None:
        self._keep("step_finished", rollout=rollout, step=step, outcome=outcome)

    @hookimpl
    def immutable_sdk_rollback_started(self, rollout: Any, reason: str) -> None:
        self._keep("rollback_started", rollout=rollout, reason=reason)

    @hookimpl
    def immutable_sdk_rollout_finished(self, rollout: Any, outcome: str) -> None:
        self._keep("rollout_finished", rollout=rollout, outcome=outcome)

    def close(self) -> None:
        return None


class HeardPlugin:
    def __init__(self) -> None:
        self.log: list[str] = []

    @hookimpl
    def immutable_sdk_add_notifiers(self, registry: Registry[Any]) -> None:
        registry.add(
            "heard",
            lambda config: Heard(self.log),
            schema={"type": "object", "properties": {"type": {"const": "heard"}}},
        )


def test_notifiers_events_and_the_state_store_get_no_secret(
    world: World, recorder: Recorder
) -> None:
    plugin = HeardPlugin()
    world.extra_plugins.append(plugin)
    query = f"http://127.0.0.1:{recorder.port}/h/{{instance_id}}?password=qp-s3cret-9&v=1"
    checks = f"        - {{type: http, url: '{query}', successes: 1, failures: 1}}\n"
    tail = "notifiers:\n  - {type: heard}\n"
    world.write(fleet_spec(desired=2, checks=checks) + tail)
    with world.engine(AMI_V1) as engine:
        assert engine.apply().ok
    recorder.is_bad = lambda ami: ami == AMI_V2
    # (credentials in a check's URL are refused by validation: tests/spec/corpus)
    world.write(fleet_spec(desired=2, checks=checks) + tail)
    with world.engine(AMI_V2) as engine:
        result = engine.apply()
        assert not result.ok
        rollouts = engine.state.rollouts("web")
        journal = [entry for r in rollouts for entry in engine.state.journal(r.id)]

    heard = "\n".join(plugin.log)
    assert "rollback_started" in heard and "password=[redacted]&v=1" in heard
    events = repr(world.events)
    stored = repr(rollouts) + repr(journal)
    assert "password=[redacted]" in stored
    for text in (heard, events, stored, repr(result.to_dict())):
        assert leaked(text, ("qp-s3cret-9",)) == [], text[text.find("qp-s3") - 300 :][:400]
