"""The emulator answers as AWS does where a rollout depends on it (issue 14), over HTTP."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from immutable_sdk.aws.session import AWS_EXCEPTIONS, readable, to_aws_error
from immutable_sdk.sandbox.moto_fixes import extended_statistic

AMI = "ami-03c3da4cfa8e8943a"


def client(aws: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=aws, region_name="us-east-1")


def test_a_percentile_is_computed_once_data_exist(aws: str) -> None:
    """canary.yaml's p99 latency made moto answer HTTP 500 once data existed."""
    cw = client(aws, "cloudwatch")
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    dims = [{"Name": "TargetGroup", "Value": "targetgroup/blue/0123"}]
    cw.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": "TargetResponseTime",
                "Dimensions": dims,
                "Values": [float(v) for v in range(1, 201)],
                "Timestamp": now - datetime.timedelta(seconds=30),
            }
        ],
    )

    def stat(name: str) -> list[float]:
        query = {
            "Id": "q",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/ApplicationELB",
                    "MetricName": "TargetResponseTime",
                    "Dimensions": dims,
                },
                "Period": 300,
                "Stat": name,
            },
        }
        out = cw.get_metric_data(
            MetricDataQueries=[query],
            StartTime=now - datetime.timedelta(minutes=5),
            EndTime=now + datetime.timedelta(minutes=1),
        )
        return list(out["MetricDataResults"][0]["Values"])

    assert stat("p99") == [198.0]
    assert stat("p50") == [100.0]
    assert stat("p99.9") == [200.0]
    assert stat("tm90") == [90.5]  # the mean of the lowest 90%
    assert stat("Average") == [100.5]
    with pytest.raises(ClientError) as refused:
        stat("wm99")
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert "not supported by the sandbox's emulator" in str(refused.value)


def test_extended_statistics_as_cloudwatch_defines_them() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert extended_statistic("p", 50, values) == 3.0
    assert extended_statistic("p", 100, values) == 5.0
    assert extended_statistic("p", 1, values) == 1.0
    assert extended_statistic("tm", 60, values) == 2.0
    assert extended_statistic("p", 99, []) is None


def test_a_terminated_instance_gives_its_address_back(aws: str) -> None:
    """Before, a /24 ran out after about 250 launches: a rollback then failed half-way."""
    ec2 = client(aws, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
    for _ in range(60):  # 300 launches
        out = ec2.run_instances(ImageId=AMI, MinCount=5, MaxCount=5, SubnetId=subnet)
        ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in out["Instances"]])
    described = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]
    assert described["AvailableIpAddressCount"] == 251  # a /24 less AWS's 5


def test_a_full_subnet_says_so_as_aws_does(aws: str) -> None:
    ec2 = client(aws, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/28")["Subnet"]["SubnetId"]
    ec2.run_instances(ImageId=AMI, MinCount=11, MaxCount=11, SubnetId=subnet)
    with pytest.raises(ClientError) as full:
        ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnet)
    assert full.value.response["Error"]["Code"] == "InsufficientFreeAddressesInSubnet"


def test_an_html_error_page_becomes_one_readable_line(aws: str) -> None:
    """moto answers what it cannot do with an HTML page (HTTP 500): a step result, an event
    or an error line shows its words, never the markup."""
    asg = client(aws, "autoscaling")
    with pytest.raises(AWS_EXCEPTIONS) as failed:
        asg.disable_metrics_collection(AutoScalingGroupName="none")  # moto: HTTP 500
    message = str(to_aws_error(failed.value, "stopping metrics"))
    assert "<" not in message and "\n" not in message, message
    assert message.startswith("stopping metrics: ")
    assert "Internal Server Error" in message


def test_readable() -> None:
    page = (
        "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
        "<h1>Internal Server Error</h1>\n<p>The server encountered an internal error &amp; "
        "could not finish.</p>\n"
    )
    assert readable(page) == (
        "500 Internal Server Error: Internal Server Error The server encountered an internal "
        "error & could not finish."
    )
    assert readable("a < b and\n  c > d") == "a < b and c > d"  # not markup: only folded
    assert len(readable("x" * 1000)) == 300


IMAGE_BUILDER = """\
apiVersion: immutable-sdk/v1
name: demo-ib
region: us-east-1
images:
  web:
    builder: ec2-image-builder
    pipeline: arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/web
fleets:
  web:
    image: web
    instance_type: t3.micro
    subnets: [demo-private-a]
    security_groups: [demo-web]
    capacity: {min: 1, desired: 1, max: 2}
"""


@pytest.mark.parametrize("command", ["apply", "plan"])
def test_image_builder_on_the_sandbox_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    """Before: 9 moto tracebacks, lines on stdout, and '5 problem(s) found' from an HTML body."""
    spec = tmp_path / "ib.yaml"
    spec.write_text(IMAGE_BUILDER)
    args = [command, "-f", str(spec)] + (["--yes"] if command == "apply" else [])
    out = subprocess.run(
        [sys.executable, "-m", "immutable_sdk", "--sandbox", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        "error: EC2 Image Builder is not available in the sandbox: the emulator (moto) does "
        "not implement 'imagebuilder'; bake images with the packer or ami builder there, or "
        "run without --sandbox"
    ]


def test_a_cancelled_transaction_puts_back_exactly_the_items_it_wrote(aws: str) -> None:
    """moto undid a transaction by restoring a deep copy of each whole table (slow, and in
    proportion to the table); here it undoes its own items, with the same outcome."""
    ddb = client(aws, "dynamodb")
    ddb.create_table(
        TableName="tx",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )

    def key(sk: str) -> dict[str, Any]:
        return {"pk": {"S": "p"}, "sk": {"S": sk}}

    for sk, n in (("updated", "1"), ("deleted", "2"), ("bystander", "3")):
        ddb.put_item(TableName="tx", Item={**key(sk), "n": {"N": n}})

    def items() -> dict[str, str]:
        found = ddb.query(
            TableName="tx",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "p"}},
        )["Items"]
        return {i["sk"]["S"]: i["n"]["N"] for i in found}

    before = items()
    writes = [
        {"Put": {"TableName": "tx", "Item": {**key("new"), "n": {"N": "9"}}}},
        {
            "Update": {
                "TableName": "tx",
                "Key": key("updated"),
                "UpdateExpression": "SET n = :n",
                "ExpressionAttributeValues": {":n": {"N": "10"}},
            }
        },
        {"Delete": {"TableName": "tx", "Key": key("deleted")}},
    ]
    refused = {
        "ConditionCheck": {
            "TableName": "tx",
            "Key": key("bystander"),
            "ConditionExpression": "n = :x",
            "ExpressionAttributeValues": {":x": {"N": "99"}},
        }
    }
    with pytest.raises(ClientError) as cancelled:
        ddb.transact_write_items(TransactItems=[*writes, refused])
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    assert items() == before
    with pytest.raises(ClientError, match="ValidationException"):  # one item twice: refused
        ddb.transact_write_items(
            TransactItems=[writes[0], {"Delete": {"TableName": "tx", "Key": key("new")}}]
        )
    assert items() == before
    ddb.transact_write_items(TransactItems=writes)  # and one that passes writes it all
    assert items() == {"new": "9", "updated": "10", "bystander": "3"}
