import boto3


def test_emulator_serves_ec2_on_loopback_and_resets(aws: str, emulator) -> None:
    assert aws.startswith("http://127.0.0.1:")
    ec2 = boto3.client("ec2", endpoint_url=aws, region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    assert vpc in [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]]
    emulator.reset()
    assert vpc not in [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]]
