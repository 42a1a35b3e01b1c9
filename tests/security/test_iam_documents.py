"""``iam-policy``'s documents as AWS and a linter read them: sizes, parts, parliament's findings,
condition keys, and the same policies in every output format.

parliament (a dev dependency) lints each managed policy as it would be attached, with its
community auditors. Every finding must be in ``ALLOWED_FINDINGS``, each with its reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import parliament
import pytest
import yaml
from click.testing import CliRunner

from immutable_sdk.cli import main
from immutable_sdk.core.iam.builder import PolicyBuilder
from immutable_sdk.core.iam.pack import (
    MANAGED_POLICY_CHARACTERS,
    PolicyTooLarge,
    pack,
    size,
    split,
)
from immutable_sdk.core.iam.policy import allowed_actions, policy_document
from immutable_sdk.core.iam.purposes import PURPOSES, STAR_BY_CHOICE, purpose, statement_table

from .iam_specs import EVERYTHING, ROOT, every_spec, large_spec_text, load, written

# (issue, action) -> why the finding is right for this policy
ALLOWED_FINDINGS: dict[tuple[str, str], str] = {
    ("RESOURCE_STAR", "cloudwatch:DescribeAlarms"): STAR_BY_CHOICE["cloudwatch:DescribeAlarms"],
    ("RESOURCE_STAR", "ec2:DescribeImageAttribute"): STAR_BY_CHOICE["ec2:DescribeImageAttribute"],
    # RunInstances, CreateImage and CreateSnapshot authorize several resources; the tag
    # condition applies to some (the new instance and volumes; the imaged instance) and not to
    # the others (AMI, subnet, security group; the new AMI and snapshots, untagged until Packer
    # tags them last), so each is split over two statements, one of which parliament sees
    # without the other's resources. test_split_actions_cover_every_resource_they_need checks
    # that together they cover every resource type the action requires.
    ("RESOURCE_MISMATCH", "ec2:RunInstances"): "split by tag condition (see above)",
    ("RESOURCE_MISMATCH", "ec2:CreateImage"): "split by tag condition (see above)",
    ("RESOURCE_MISMATCH", "ec2:CreateSnapshot"): "split by tag condition (see above)",
    # a fleet with an instance profile: its launch template passes the role to EC2 (and only to
    # EC2: iam:PassedToService), and Auto Scaling checks that the caller may launch with it
    ("PERMISSIONS_MANAGEMENT_ACTIONS", "iam:passrole"): "instance profiles (see above)",
    ("PRIVILEGE_ESCALATION", "iam:passrole"): "instance profiles (see above)",
    ("PRIVILEGE_ESCALATION", "ec2:runinstances"): "instance profiles (see above)",
}
SPLIT_ACTIONS = {"ec2:RunInstances", "ec2:CreateImage", "ec2:CreateSnapshot"}


def _actions(finding: Any) -> set[str]:
    """The actions a finding is about (community auditors put them in its location)."""
    detail = finding.detail
    if finding.issue == "RESOURCE_MISMATCH":
        return {d["action"] for d in detail}
    if not detail and isinstance(finding.location, dict):
        return set(finding.location.get("actions", []))
    return set(detail)


def _policies(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    for label, spec, options in every_spec(tmp_path):
        for policy in pack(policy_document(spec, **options), f"immutable-sdk-{spec.name}"):
            yield label, policy


def test_parliament_finds_nothing_but_the_allowed_findings(tmp_path: Path) -> None:
    unexplained = []
    seen = set()
    for label, policy in _policies(tmp_path):
        linted = parliament.analyze_policy_string(
            json.dumps(policy.document), include_community_auditors=True
        )
        for finding in linted.findings:
            for action in _actions(finding) or {""}:
                key = (finding.issue, action)
                seen.add(key)
                if key not in ALLOWED_FINDINGS:
                    unexplained.append((label, policy.name, key, finding.detail))
    assert unexplained == []
    assert seen == set(ALLOWED_FINDINGS)  # no stale entry: each is still needed


def test_split_actions_cover_every_resource_they_need(tmp_path: Path) -> None:
    from parliament import is_arn_strictly_valid
    from parliament.statement import get_arn_format, get_privilege_info

    for label, spec, options in every_spec(tmp_path):
        statements = policy_document(spec, **options)["Statement"]
        for action in SPLIT_ACTIONS & allowed_actions({"Statement": statements}):
            resources = [
                r
                for s in statements
                if action in s["Action"]
                for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
            ]
            service, name = action.split(":")
            info = get_privilege_info(service, name)
            for kind in info["resource_types"]:
                if not kind["resource_type"].endswith("*"):
                    continue  # optional
                arn = get_arn_format(kind["resource_type"], info["service_resources"])
                assert any(
                    is_arn_strictly_valid(kind["resource_type"], arn, r) for r in resources
                ), (label, action, kind["resource_type"])


def test_reads_on_star_are_the_ones_aws_allows_only_there(tmp_path: Path) -> None:
    """Every action on ``*`` either has no resource-level permission in AWS, or is one of
    ``STAR_BY_CHOICE``, whose reason the output gives."""
    from parliament.statement import get_privilege_info

    for _label, spec, options in every_spec(tmp_path):
        for statement in policy_document(spec, **options)["Statement"]:
            if statement["Resource"] != "*":
                continue
            for action in statement["Action"]:
                kinds = get_privilege_info(*action.split(":"))["resource_types"]
                scoped = [k["resource_type"] for k in kinds if k["resource_type"]]
                assert not scoped or action in STAR_BY_CHOICE, (action, scoped)
                assert action.split(":")[1].startswith(("Describe", "Get", "List")), action


def test_conditions_only_on_actions_that_carry_their_keys(tmp_path: Path) -> None:
    """A condition key an action does not carry is absent from its request: StringEquals on it
    refuses, ForAllValues on it allows everything. parliament's definitions say which keys each
    action carries (global aws: keys aside); ForAllValues always comes with Null: false."""
    from parliament.statement import get_privilege_info

    for label, spec, options in every_spec(tmp_path):
        for statement in policy_document(spec, **options)["Statement"]:
            for operator, block in statement.get("Condition", {}).items():
                for key in block:
                    if operator.startswith("ForAllValues:"):
                        assert statement["Condition"]["Null"][key] == "false", statement
                    if key.startswith(("aws:ResourceTag/", "aws:RequestTag/")):
                        key = key.split("/")[0] + "/${TagKey}"  # as the definitions write it
                    elif key.startswith("aws:"):
                        continue  # global: every request carries it (aws:RequestedRegion)
                    for action in statement["Action"]:
                        info = get_privilege_info(*action.split(":"))
                        keys = {k for t in info["resource_types"] for k in t["condition_keys"]}
                        assert key in keys, (label, statement["Sid"], action, key)


def test_forallvalues_without_a_null_check_is_refused() -> None:
    p = PolicyBuilder("us-east-1")
    key = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
    with pytest.raises(ValueError, match="without a Null check"):
        p.allow(
            "X",
            ["route53:ChangeResourceRecordSets"],
            ["*"],
            {"ForAllValues:StringEquals": {key: ["a"]}},
        )


# --- size: 50 fleets in 10 regions -------------------------------------------------------


def test_a_large_spec_fits_in_three_managed_policies(tmp_path: Path) -> None:
    spec = load(written(tmp_path, "large", large_spec_text()))
    assert len(spec.fleets) == 50 and len(spec.regions) == 10
    whole = policy_document(spec, account="123456789012")
    policies = pack(whole, "immutable-sdk-bigshop")
    assert [p.name for p in policies] == [f"immutable-sdk-bigshop-{n}" for n in (1, 2, 3)]
    assert all(p.characters <= MANAGED_POLICY_CHARACTERS for p in policies)

    # the parts allow exactly what the whole does: the same statements (each goes into the
    # first policy with room for it)
    def key(s: dict[str, Any]) -> str:
        return json.dumps(s, sort_keys=True)

    assert sorted(map(key, (s for p in policies for s in p.statements))) == sorted(
        map(key, whole["Statement"])
    )
    # what grows with fleets is names (groups, target groups, records), not regions: ten
    # times the regions adds only the region list of the few statements without a tag condition
    one_region = large_spec_text().replace(
        "  regions: [us-east-1, us-east-2", "  regions: [us-east-1]#"
    )
    smaller = policy_document(load(written(tmp_path, "one", one_region)), account="123456789012")
    assert size(whole) - size(smaller) < 9 * 15 * 8


def test_every_example_fits_in_two_managed_policies(tmp_path: Path) -> None:
    for label, spec, options in every_spec(tmp_path):
        policies = pack(policy_document(spec, **options), "p")
        assert all(p.characters <= MANAGED_POLICY_CHARACTERS for p in policies), label
        assert len(policies) <= (3 if label == "large" else 2), (label, len(policies))


def test_a_statement_too_large_alone_is_cut_into_parts() -> None:
    arns = [f"arn:aws:elasticloadbalancing:*:1:targetgroup/tg-{n:04d}/*" for n in range(400)]
    statement = {"Sid": "DeregisterTargets", "Effect": "Allow", "Action": ["x:Y"], "Resource": arns}
    parts = split(statement, MANAGED_POLICY_CHARACTERS)
    assert len(parts) > 1 and [p["Sid"] for p in parts][:2] == [
        "DeregisterTargetsPart1",
        "DeregisterTargetsPart2",
    ]
    assert [r for p in parts for r in p["Resource"]] == arns
    assert all(
        size({"Version": "2012-10-17", "Statement": [p]}) <= MANAGED_POLICY_CHARACTERS
        for p in parts
    )
    assert purpose("DeregisterTargetsPart2") == PURPOSES["DeregisterTargets"]
    # a long any-of condition list is cut the same way
    names = [f"group-{n:04d}" for n in range(600)]
    key = "aws:ResourceTag/aws:autoscaling:groupName"
    statement = {
        "Sid": "T",
        "Effect": "Allow",
        "Action": ["a:B"],
        "Resource": "*",
        "Condition": {"StringEquals": {key: names}},
    }
    parts = split(statement, MANAGED_POLICY_CHARACTERS)
    assert len(parts) > 1
    assert [n for p in parts for n in p["Condition"]["StringEquals"][key]] == names
    # a ForAllValues list too: each part allows batches of its names only (less, never more)
    statement["Condition"] = {"ForAllValues:StringEquals": {key: names}, "Null": {key: "false"}}
    parts = split(statement, MANAGED_POLICY_CHARACTERS)
    assert len(parts) > 1 and all(p["Condition"]["Null"] == {key: "false"} for p in parts)
    assert [n for p in parts for n in p["Condition"]["ForAllValues:StringEquals"][key]] == names
    # what cannot be cut is an error the CLI reports (exit 2), not a traceback
    statement = {"Sid": "X", "Effect": "Allow", "Action": ["a:B"], "Resource": "x" * 7000}
    with pytest.raises(PolicyTooLarge, match="exceeds"):
        split(statement, MANAGED_POLICY_CHARACTERS)
    assert PolicyTooLarge("x").exit_code == 2


# --- outputs ---------------------------------------------------------------------------------


def _run(path: Path, *args: str) -> Any:
    result = CliRunner().invoke(
        main, ["iam-policy", "-f", str(path), *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result


def _documents(path: Path) -> list[dict[str, Any]]:
    return [p["document"] for p in json.loads(_run(path, "-o", "json").stdout)["policies"]]


MULTI = ROOT / "specs/examples/multi-region.yaml"


def test_json_output_says_what_each_statement_is_for_and_how_to_attach(tmp_path: Path) -> None:
    out = json.loads(_run(MULTI, "-o", "json", "--account", "123456789012").stdout)
    assert out["limits"] == {
        "managed_policy_characters": 6144,
        "inline_characters_per_role": 10240,
        "managed_policies_per_role": 10,
    }
    names = [p["name"] for p in out["policies"]]
    assert names == ["immutable-sdk-demo-global-1", "immutable-sdk-demo-global-2"]
    for policy in out["policies"]:
        assert policy["characters"] == size(policy["document"]) <= 6144
        sids = [s["Sid"] for s in policy["document"]["Statement"]]
        assert [s["sid"] for s in policy["statements"]] == sids
        for statement, why in zip(
            policy["document"]["Statement"], policy["statements"], strict=True
        ):
            assert why["purpose"]
            assert (why["on_star"] is not None) == (statement["Resource"] == "*")
    read = out["policies"][0]["statements"][0]
    assert read["sid"] == "Read" and "composite alarms" in read["on_star"]
    attach = "\n".join(out["attach"])
    assert "arn:aws:iam::123456789012:policy/immutable-sdk-demo-global-2" in attach
    assert "10,240" in attach and "10 managed policies" in attach
    assert any("temporary security group" in n for n in out["notes"])


def test_text_output_shows_each_policy_and_its_statements(tmp_path: Path) -> None:
    result = _run(MULTI, "--out-dir", str(tmp_path / "out"))
    text = result.stdout
    assert "== immutable-sdk-demo-global-1 (managed policy 1 of 2" in text
    assert "  Read - reads of planning" in text and "    on *: " in text
    assert "== how to attach" in text and "aws iam attach-role-policy" in text
    written_files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written_files == ["immutable-sdk-demo-global-1.json", "immutable-sdk-demo-global-2.json"]
    documents = _documents(MULTI)
    assert [json.loads((tmp_path / "out" / f).read_text()) for f in written_files] == documents


def test_cloudformation_output_is_the_same_policies(tmp_path: Path) -> None:
    template = yaml.safe_load(_run(MULTI, "-o", "cloudformation").stdout)
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    resources = template["Resources"]
    assert [r["Type"] for r in resources.values()] == ["AWS::IAM::ManagedPolicy"] * 2
    assert [r["Properties"]["PolicyDocument"] for r in resources.values()] == _documents(MULTI)
    for r in resources.values():
        assert r["Properties"]["Roles"] == [{"Ref": "RoleName"}]  # attached to the role
        assert all("purpose" in s for s in r["Metadata"]["immutable-sdk"]["statements"])
    assert template["Parameters"]["RoleName"]["Type"] == "String"
    if shutil.which("cfn-lint"):  # CloudFormation's linter, where installed
        path = tmp_path / "template.yaml"
        path.write_text(_run(MULTI, "-o", "cloudformation").stdout)
        lint = subprocess.run(["cfn-lint", str(path)], capture_output=True, text=True, timeout=120)
        assert lint.returncode == 0, lint.stdout + lint.stderr


def _terraform_policies(text: str) -> list[dict[str, Any]]:
    """The argument of each ``jsonencode(...)``: JSON's shape, HCL comments and escapes."""
    bodies = re.findall(r"policy = jsonencode\((\{.*?\n  \})\)\n\}", text, flags=re.S)
    out = []
    for body in bodies:
        lines = [line for line in body.splitlines() if not line.strip().startswith("#")]
        out.append(json.loads("\n".join(lines).replace("$${", "${").replace("%%{", "%{")))
    return out


def test_terraform_output_is_the_same_policies(tmp_path: Path) -> None:
    text = _run(MULTI, "-o", "terraform").stdout
    assert _terraform_policies(text) == _documents(MULTI)
    blocks = re.findall(r'^(resource|variable) "([^"]+)"(?: "([^"]+)")? \{$', text, flags=re.M)
    assert blocks == [
        ("variable", "immutable_sdk_role_name", ""),
        ("resource", "aws_iam_policy", "immutable_sdk_demo_global_1"),
        ("resource", "aws_iam_role_policy_attachment", "immutable_sdk_demo_global_1"),
        ("resource", "aws_iam_policy", "immutable_sdk_demo_global_2"),
        ("resource", "aws_iam_role_policy_attachment", "immutable_sdk_demo_global_2"),
    ]
    assert "policy_arn = aws_iam_policy.immutable_sdk_demo_global_2.arn" in text
    assert "      # Read - reads of planning" in text
    if shutil.which("terraform"):  # terraform's own parser, where installed (no provider needed)
        fmt = subprocess.run(
            ["terraform", "fmt", "-"], input=text, capture_output=True, text=True, timeout=120
        )
        assert fmt.returncode == 0, fmt.stderr


# --- docs ----------------------------------------------------------------------------------


def test_docs_explain_every_statement(tmp_path: Path) -> None:
    docs = (ROOT / "docs/operations.md").read_text()
    start, end = "<!-- iam-statements: start -->\n", "\n<!-- iam-statements: end -->"
    assert docs[docs.index(start) + len(start) : docs.index(end)] == statement_table(), (
        "docs/operations.md's statement table differs from core.iam.purposes.statement_table()"
    )
    emitted = {
        re.sub(r"\d+$", "", s["Sid"])
        for _label, spec, options in every_spec(tmp_path)
        for s in policy_document(spec, **options)["Statement"]
    }
    assert emitted == set(PURPOSES)  # every statement explained, no explanation left over


def test_terraform_strings_keep_iam_variables_literal() -> None:
    """``${aws:username}`` is an IAM policy variable, and a template sequence to HCL: escaped."""
    from immutable_sdk.cli.iam_output import PolicyOutput, terraform
    from immutable_sdk.core.iam.pack import ManagedPolicy

    statement = {
        "Sid": "Read",
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": "arn:aws:s3:::bucket/${aws:username}/%{x}",
    }
    document = {"Version": "2012-10-17", "Statement": [statement]}
    text = terraform(PolicyOutput("p", "*", [ManagedPolicy("p-1", document)], []))
    assert '"arn:aws:s3:::bucket/$${aws:username}/%%{x}"' in text
    assert _terraform_policies(text) == [document]


def test_a_policy_name_must_be_one_iam_accepts(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["iam-policy", "-f", str(MULTI), "--name", "ci deploy"])
    assert result.exit_code == 2 and "an IAM policy name" in result.output
    out = json.loads(_run(MULTI, "--name", "ci-deploy", "-o", "json").stdout)
    assert [p["name"] for p in out["policies"]] == ["ci-deploy-1", "ci-deploy-2"]


@pytest.mark.parametrize("fmt", ["text", "json", "terraform", "cloudformation"])
def test_no_output_trips_the_secret_redactor(tmp_path: Path, fmt: str) -> None:
    """Everything printed passes the redactor: a purpose must not read as a secret to it."""
    spec = written(tmp_path, "everything", EVERYTHING)
    result = _run(spec, "-o", fmt, "--images-gc", "--packer-temporary-security-group")
    assert "[redacted]" not in result.stdout
