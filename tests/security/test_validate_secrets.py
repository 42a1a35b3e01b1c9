"""``validate`` warns about secrets written in image vars and user data; ``--strict`` refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from immutable_sdk.cli import main
from immutable_sdk.errors import ExitCode

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
TOKEN = "ghp_R8x2Lq9ZpV4mT7nK1wB5cY3dF6hJ0sUa2eGi"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\\nMIIEpAIBAAKCAQEA7\\n-----END RSA PRIVATE KEY-----"

SPEC = f"""\
apiVersion: immutable-sdk/v1
name: shop
region: us-east-1
images:
  web:
    builder: packer
    template: web.pkr.hcl
    vars:
      app_version: "1.4.2"
      api_key: "{ACCESS_KEY_ID}"
      db_password: hunter2
      deploy_key: "{PRIVATE_KEY}"
      from_env: "${{SHOP_TOKEN}}"
fleets:
  web:
    image: web
    instance_type: t3.micro
    user_data: boot.sh
    capacity: {{min: 1, max: 2}}
"""
USER_DATA = f"#!/bin/sh\nexport APP=shop\nexport GITHUB_TOKEN={TOKEN}\n"
SECRETS = (ACCESS_KEY_ID, TOKEN, "hunter2", "MIIEpAIBAAKCAQEA7")


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHOP_TOKEN", "Zx9" + TOKEN[3:])  # from the environment: fine
    names = ("app_version", "api_key", "db_password", "deploy_key", "from_env")
    (tmp_path / "web.pkr.hcl").write_text(  # a build refuses vars the template does not declare
        "".join(f'variable "{name}" {{ type = string }}\n' for name in names)
    )
    (tmp_path / "boot.sh").write_text(USER_DATA)
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def no_secret_in(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_warnings_name_the_place_and_the_kind_never_the_secret(spec: Path) -> None:
    result = run("validate", "-f", str(spec))
    assert result.exit_code == 0
    assert result.stdout.startswith("ok: ") and "(4 warnings)" in result.stdout
    lines = result.stderr.splitlines()
    assert lines == [  # sorted by place: boot.sh before spec.yaml
        f"warning: {spec.parent / 'boot.sh'}:3:21: fleets.web.user_data: looks like a GitHub "
        "token in user data; fetch it at boot from a secret store (SSM Parameter Store, "
        "Secrets Manager) instead",
        f"warning: {spec}:10:16: images.web.vars.api_key: looks like an AWS access key id "
        "written in the spec; pass it with ${VAR} from the environment instead",
        f"warning: {spec}:11:20: images.web.vars.db_password: looks like a secret by its name "
        "written in the spec; pass it with ${VAR} from the environment instead",
        f"warning: {spec}:12:19: images.web.vars.deploy_key: looks like a private key block "
        "written in the spec; pass it with ${VAR} from the environment instead",
    ]
    no_secret_in(result.output)


def test_strict_turns_warnings_into_errors(spec: Path) -> None:
    result = run("validate", "-f", str(spec), "--strict")
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr.splitlines()[-1] == "error: 4 problem(s) found"
    no_secret_in(result.output)
    as_json = run("validate", "-f", str(spec), "--strict", "-o", "json")
    assert as_json.exit_code == ExitCode.INVALID
    data = json.loads(as_json.stdout)
    assert data["valid"] is False
    assert [p["path"] for p in data["problems"]] == [
        "fleets.web.user_data",
        "images.web.vars.api_key",
        "images.web.vars.db_password",
        "images.web.vars.deploy_key",
    ]
    no_secret_in(as_json.output)


def test_json_lists_warnings_and_a_clean_spec_has_none(spec: Path) -> None:
    data = json.loads(run("validate", "-f", str(spec), "-o", "json").stdout)
    assert data["valid"] is True and len(data["warnings"]) == 4
    assert data["warnings"][0]["file"] == str(spec.parent / "boot.sh")
    spec.write_text(SPEC.split("      api_key")[0] + SPEC.split('from_env: "${SHOP_TOKEN}"\n')[1])
    (spec.parent / "boot.sh").write_text("#!/bin/sh\nsystemctl start shop\n")
    clean = run("validate", "-f", str(spec), "--strict", "-o", "json")
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["warnings"] == []
