import boto3
import pytest


def test_emulator_serves_ec2_on_loopback_and_resets(aws: str, emulator) -> None:
    assert aws.startswith("http://127.0.0.1:")
    ec2 = boto3.client("ec2", endpoint_url=aws, region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    assert vpc in [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]]
    emulator.reset()
    assert vpc not in [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]]


def test_a_request_sent_again_meets_what_aws_would_answer(aws: str) -> None:
    """A retry after a lost answer: a second detach is refused (moto lowered desired capacity
    again), deregistering a target that is not registered succeeds (moto refused it)."""
    import pytest
    from botocore.exceptions import ClientError

    def client(service: str):  # type: ignore[no-untyped-def]
        return boto3.client(service, endpoint_url=aws, region_name="us-east-1")

    ec2, asg, elbv2 = client("ec2"), client("autoscaling"), client("elbv2")
    ec2.create_launch_template(
        LaunchTemplateName="tpl", LaunchTemplateData={"ImageId": "ami-03c3da4cfa8e8943a"}
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName="grp",
        LaunchTemplate={"LaunchTemplateName": "tpl"},
        MinSize=0,
        MaxSize=4,
        DesiredCapacity=3,
        AvailabilityZones=["us-east-1a"],
    )
    ids = [
        i["InstanceId"]
        for i in asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]
    ]
    asg.detach_instances(
        AutoScalingGroupName="grp", InstanceIds=ids[:1], ShouldDecrementDesiredCapacity=True
    )
    with pytest.raises(ClientError, match="not part of Auto Scaling group grp"):
        asg.detach_instances(
            AutoScalingGroupName="grp", InstanceIds=ids[:1], ShouldDecrementDesiredCapacity=True
        )
    assert asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]["DesiredCapacity"] == 2

    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    tg = elbv2.create_target_group(Name="tg", Protocol="HTTP", Port=80, VpcId=vpc)
    arn = tg["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": ids[1]}])
    for _ in range(2):  # the second time: nothing registered any more, and no error
        elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": ids[1]}])
    assert elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"] == []


def test_a_launch_template_version_sent_again_with_its_token_is_made_once(aws: str) -> None:
    """CreateLaunchTemplateVersion honours its ClientToken as EC2 does: the same token answers
    with the version made the first time; another token makes a new version."""
    ec2 = boto3.client("ec2", endpoint_url=aws, region_name="us-east-1")
    ec2.create_launch_template(
        LaunchTemplateName="tpl", LaunchTemplateData={"ImageId": "ami-03c3da4cfa8e8943a"}
    )
    data = {"ImageId": "ami-0d27e0fb3bac4d724"}

    def create(token: str) -> int:
        out = ec2.create_launch_template_version(
            LaunchTemplateName="tpl", LaunchTemplateData=data, ClientToken=token
        )
        return int(out["LaunchTemplateVersion"]["VersionNumber"])

    assert [create("a"), create("a"), create("b"), create("a")] == [2, 2, 3, 2]
    versions = ec2.describe_launch_template_versions(LaunchTemplateName="tpl")
    assert sorted(int(v["VersionNumber"]) for v in versions["LaunchTemplateVersions"]) == [1, 2, 3]


def test_a_percentile_statistic_answers_instead_of_failing(aws: str) -> None:
    """moto failed GetMetricData with p99 (HTTP 500) once data existed; the emulator's fix
    answers the nearest-rank percentile of the values; from a statistic set of several samples
    AWS computes no percentile, so that period has no data point."""
    import datetime as dt

    cloudwatch = boto3.client("cloudwatch", endpoint_url=aws, region_name="us-east-1")
    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    dims = [{"Name": "TargetGroup", "Value": "targetgroup/web/1"}]
    values = [
        {"MetricName": "Latency", "Dimensions": dims, "Timestamp": now, "Value": v / 100}
        for v in range(1, 101)
    ]
    cloudwatch.put_metric_data(Namespace="Test", MetricData=values)
    sets = [
        {
            "MetricName": "Sets",
            "Dimensions": dims,
            "Timestamp": now,
            "StatisticValues": {"SampleCount": 10, "Sum": 2, "Minimum": 0.1, "Maximum": 0.7},
        }
    ]
    cloudwatch.put_metric_data(Namespace="Test", MetricData=sets)

    def p99(metric: str) -> list[float]:
        out = cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "q",
                    "MetricStat": {
                        "Metric": {"Namespace": "Test", "MetricName": metric, "Dimensions": dims},
                        "Period": 60,
                        "Stat": "p99",
                    },
                }
            ],
            StartTime=now - dt.timedelta(minutes=1),
            EndTime=now + dt.timedelta(minutes=1),
        )
        return [float(v) for v in out["MetricDataResults"][0]["Values"]]

    assert p99("Latency") == [0.99]
    assert p99("Sets") == []


def test_task_tokens_are_answered_as_aws_answers_them(aws: str) -> None:
    """Executions run (the emulator enables them); a token is refused once its task timed out,
    each Retry has its own token, and a heartbeat sent at once is taken."""
    import json

    from immutable_sdk.clock import RealClock

    kw = {"endpoint_url": aws, "region_name": "us-east-1"}
    sqs, sfn = boto3.client("sqs", **kw), boto3.client("stepfunctions", **kw)
    queue = sqs.create_queue(QueueName="ticks")["QueueUrl"]
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
        "HeartbeatSeconds": 1,
        "Retry": [{"ErrorEquals": ["States.Timeout"], "MaxAttempts": 1, "IntervalSeconds": 1}],
        "End": True,
    }
    machine = sfn.create_state_machine(
        name="m",
        definition=json.dumps({"StartAt": "T", "States": {"T": task}}),
        roleArn="arn:aws:iam::123456789012:role/r",
    )["stateMachineArn"]
    run = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]

    def token() -> str:
        got = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=10)["Messages"][0]
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=got["ReceiptHandle"])
        return str(json.loads(got["Body"])["token"])

    first = token()
    sfn.send_task_heartbeat(taskToken=first)  # at once: taken
    second = token()  # no heartbeat for a second: the Retry sends a new token
    assert second != first
    with pytest.raises(sfn.exceptions.TaskTimedOut):
        sfn.send_task_success(taskToken=first, output="{}")
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.send_task_heartbeat(taskToken="not-a-token")
    sfn.send_task_success(taskToken=second, output='{"ok": true}')
    clock = RealClock()
    deadline = clock.monotonic() + 10
    while sfn.describe_execution(executionArn=run)["status"] == "RUNNING":
        assert clock.monotonic() < deadline
        clock.sleep(0.05)
    done = sfn.describe_execution(executionArn=run)
    assert (done["status"], json.loads(done["output"])) == ("SUCCEEDED", {"ok": True})


def test_a_reset_frees_the_account_it_dropped(aws: str, emulator) -> None:
    """moto's method caches (a subnet's address iterator, the regions of a backend) kept every
    dropped account alive: a test session grew by tens of MB a test. The emulator runs in this
    process, so the dropped EC2 backend can be watched."""
    import gc
    import weakref

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    ec2 = boto3.client("ec2", endpoint_url=aws, region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    ec2.run_instances(ImageId="ami-03c3da4cfa8e8943a", MinCount=1, MaxCount=1, SubnetId=subnet)
    dropped = weakref.ref(ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"])
    emulator.reset()
    gc.collect()
    assert dropped() is None
    assert ec2.describe_subnets(SubnetIds=[])["Subnets"]  # the new account answers
