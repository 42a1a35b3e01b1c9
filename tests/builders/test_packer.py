"""The packer builder against the moto server, with the real packer binary."""

from __future__ import annotations

import re
import shutil
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from immutable_sdk.builders.packer import PackerBuilder
from immutable_sdk.core.context import Context
from immutable_sdk.plugin import (
    TAG_BUILDER,
    TAG_BUILT_AT,
    TAG_DIGEST,
    TAG_IMAGE,
    TAG_PROJECT,
    TAG_SOURCE_AMI,
    BuildError,
)

from .conftest import Recorder, image_spec, own_images, running_instances, tags_of

pytestmark = [
    pytest.mark.packer,
    pytest.mark.skipif(shutil.which("packer") is None, reason="needs the packer binary"),
]

REPO = Path(__file__).resolve().parents[2]
WEB = {"builder": "packer", "template": "packer/web.pkr.hcl", "vars": {"app_version": "1.0.0"}}

JSON_TEMPLATE = """\
{
  "variables": {"region": "us-east-1", "ec2_endpoint": "", "app_version": "0",
                "immutable_sdk_project": ""},
  "builders": [{
    "type": "amazon-ebs",
    "region": "{{user `region`}}",
    "custom_endpoint_ec2": "{{user `ec2_endpoint`}}",
    "skip_region_validation": true,
    "instance_type": "t3.micro",
    "source_ami_filter": {
      "filters": {"name": "al2023-ami-2023.*-kernel-6.1-x86_64"},
      "owners": ["amazon"],
      "most_recent": true
    },
    "communicator": "none",
    "run_tags": {"immutable-sdk:project": "{{user `immutable_sdk_project`}}"},
    "ami_name": "json-{{user `app_version`}}-{{timestamp}}"
  }]
}
"""


def hcl_template(tmp_path: Path, build_body: str, name: str = "t.pkr.hcl") -> Path:
    """The demo's source block with a custom build block (failing provisioners, sleeps)."""
    demo = (Path(__file__).resolve().parents[2] / "specs/examples/packer/web.pkr.hcl").read_text()
    head = demo[: demo.index("build {")]
    path = tmp_path / name
    path.write_text(head + "build {\n" + textwrap.dedent(build_body) + "}\n")
    return path


def test_bakes_an_ami_tagged_with_its_lineage(ctx: Context, events: Recorder) -> None:
    image = image_spec(WEB)
    builder = PackerBuilder(WEB)

    artifact = builder.build(image, ctx)

    assert artifact.built and artifact.builder == "packer"
    assert artifact.digest == builder.digest(image, ctx)
    ami_id = artifact.amis["us-east-1"]
    ami = ctx.client("ec2").describe_images(ImageIds=[ami_id])["Images"][0]
    tags = tags_of(ami)
    assert tags[TAG_DIGEST] == artifact.digest
    assert tags[TAG_PROJECT] == "t"
    assert tags[TAG_IMAGE] == "web"
    assert tags[TAG_BUILDER] == "packer"
    assert tags[TAG_BUILT_AT] == "2027-01-15T08:00:00Z"  # the virtual clock's now
    assert tags[TAG_SOURCE_AMI].startswith("ami-")
    assert tags["app_version"] == "1.0.0"  # the template's own tag
    assert ami["Name"].startswith("demo-web-1.0.0-")
    snapshot = ami["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    snap = ctx.client("ec2").describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]
    assert tags_of(snap)[TAG_DIGEST] == artifact.digest
    assert any("Creating AMI" in line for line in events.lines())
    assert events.kinds()[-1] == "build.tagged"
    assert running_instances(ctx) == []


def test_same_inputs_are_found_not_rebuilt(ctx: Context, events: Recorder) -> None:
    image = image_spec(WEB)
    builder = PackerBuilder(WEB)
    assert builder.find(image, ctx) is None
    built = builder.build(image, ctx)
    events.events.clear()

    found = PackerBuilder(WEB).find(image, ctx)

    assert found is not None and not found.built
    assert found.amis == built.amis and found.digest == built.digest
    assert found.lineage[TAG_DIGEST] == built.digest
    assert events.lines() == []  # packer did not run
    assert len(own_images(ctx)) == 1


def test_a_changed_var_is_a_new_digest_and_a_new_ami(ctx: Context) -> None:
    first = PackerBuilder(WEB).build(image_spec(WEB), ctx)
    changed = {**WEB, "vars": {"app_version": "1.0.1"}}
    image = image_spec(changed)
    builder = PackerBuilder(changed)

    assert builder.digest(image, ctx) != first.digest
    assert builder.find(image, ctx) is None
    second = builder.build(image, ctx)

    assert second.amis["us-east-1"] != first.amis["us-east-1"]
    assert len(own_images(ctx)) == 2
    # the first artifact is still found for its own inputs
    assert PackerBuilder(WEB).find(image_spec(WEB), ctx) is not None


def test_a_template_error_is_a_located_build_error(ctx: Context, tmp_path: Path) -> None:
    template = tmp_path / "broken.pkr.hcl"
    template.write_text(
        'variable "app_version" {}\nvariable "ec2_endpoint" {}\n'
        'source "amazon-ebs" "web" {\n  region = \n}\n'
    )
    config = {"builder": "packer", "template": "broken.pkr.hcl", "vars": {"app_version": "1"}}
    with pytest.raises(BuildError) as err:
        PackerBuilder(config).build(image_spec(config, base_dir=tmp_path), ctx)
    # The template is parsed (python-hcl2) before packer runs: the error names the place.
    assert "broken.pkr.hcl:4:" in str(err.value) and "invalid HCL2" in str(err.value)
    with pytest.raises(BuildError, match="invalid HCL2"):  # plan (find) says so too
        PackerBuilder(config).find(image_spec(config, base_dir=tmp_path), ctx)


def test_a_failing_provisioner_leaves_no_instance_running(
    ctx: Context, events: Recorder, tmp_path: Path
) -> None:
    hcl_template(
        tmp_path,
        """\
        sources = ["source.amazon-ebs.web"]
        provisioner "shell-local" {
          inline = ["echo the app failed to install >&2", "exit 3"]
        }
        """,
    )
    config = {"builder": "packer", "template": "t.pkr.hcl", "vars": {"app_version": "1"}}
    with pytest.raises(BuildError) as err:
        PackerBuilder(config).build(image_spec(config, base_dir=tmp_path), ctx)
    assert "non-zero exit status: 3" in str(err.value)
    assert any("the app failed to install" in line for line in err.value.output)
    assert any("Instance ID: i-" in line for line in events.lines())  # one was launched
    assert running_instances(ctx) == []
    assert own_images(ctx) == []


def test_timeout_interrupts_packer_which_cleans_up(
    ctx: Context, events: Recorder, tmp_path: Path
) -> None:
    hcl_template(
        tmp_path,
        """\
        sources = ["source.amazon-ebs.web"]
        provisioner "shell-local" {
          inline = ["sleep 60"]
        }
        """,
    )
    config = {
        "builder": "packer",
        "template": "t.pkr.hcl",
        "vars": {"app_version": "1"},
        "timeout": "2s",
    }
    started = time.monotonic()
    with pytest.raises(BuildError, match="did not finish within 2s"):
        PackerBuilder(config).build(image_spec(config, base_dir=tmp_path), ctx)
    assert time.monotonic() - started < 30
    assert any("Instance ID: i-" in line for line in events.lines())
    assert any("Terminating the source AWS instance" in line for line in events.lines())
    assert running_instances(ctx) == []


def test_json_template(ctx: Context, tmp_path: Path) -> None:
    (tmp_path / "web.json").write_text(JSON_TEMPLATE)
    config = {"builder": "packer", "template": "web.json", "vars": {"app_version": "7"}}
    image = image_spec(config, base_dir=tmp_path)

    artifact = PackerBuilder(config).build(image, ctx)

    ami = ctx.client("ec2").describe_images(ImageIds=[artifact.amis["us-east-1"]])["Images"][0]
    assert ami["Name"].startswith("json-7-")
    assert tags_of(ami)[TAG_DIGEST] == artifact.digest  # tagged by the SDK after the build
    assert PackerBuilder(config).find(image, ctx) is not None
    (instance,) = build_instances(ctx)
    assert tags_of(instance)[TAG_PROJECT] == "t"  # from immutable_sdk_project, at launch


def build_instances(ctx: Context) -> list[dict[str, Any]]:
    """The instances Packer launched (terminated now; the emulator still lists them)."""
    reservations = ctx.client("ec2").describe_instances()["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def test_packer_tags_everything_it_creates_with_the_project(ctx: Context) -> None:
    """The IAM policy lets Packer act only on resources with the project's tag: the build
    instance and its volumes must carry it from their launch, the AMI and snapshots after."""
    image = image_spec(WEB)
    artifact = PackerBuilder(WEB).build(image, ctx)

    (instance,) = build_instances(ctx)
    assert instance["State"]["Name"] == "terminated"
    lineage = {k: v for k, v in tags_of(instance).items() if k.startswith("immutable-sdk:")}
    assert lineage[TAG_PROJECT] == "t" and lineage[TAG_IMAGE] == "web"
    ami = ctx.client("ec2").describe_images(ImageIds=[artifact.amis["us-east-1"]])["Images"][0]
    snapshots = [m["Ebs"]["SnapshotId"] for m in ami["BlockDeviceMappings"] if "Ebs" in m]
    described = ctx.client("ec2").describe_snapshots(SnapshotIds=snapshots)["Snapshots"]
    assert all(tags_of(snap)[TAG_PROJECT] == "t" for snap in described)
    template = (REPO / "specs/examples/packer/web.pkr.hcl").read_text()
    for setting in ("run_tags", "run_volume_tags", "tags", "snapshot_tags"):
        assert re.search(rf"^\s*{setting}\s*=.*var\.immutable_sdk_tags", template, re.M), setting


def test_copies_to_the_images_other_regions(ctx: Context, events: Recorder) -> None:
    image = image_spec(WEB, regions=("us-east-1", "eu-west-1"))

    artifact = PackerBuilder(WEB).build(image, ctx)

    assert set(artifact.amis) == {"us-east-1", "eu-west-1"}
    source = ctx.client("ec2").describe_images(ImageIds=[artifact.amis["us-east-1"]])["Images"][0]
    eu = ctx.client("ec2", "eu-west-1")
    copy = eu.describe_images(ImageIds=[artifact.amis["eu-west-1"]])["Images"][0]
    assert copy["Name"] == source["Name"]
    assert tags_of(copy) == tags_of(source)
    snap = eu.describe_snapshots(SnapshotIds=[copy["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]])
    assert tags_of(snap["Snapshots"][0])[TAG_DIGEST] == artifact.digest

    # a region added later gets a copy, not a rebuild
    events.events.clear()
    wider = image_spec(WEB, regions=("us-east-1", "eu-west-1", "us-west-2"))
    found = PackerBuilder(WEB).find(wider, ctx)
    assert found is not None and not found.built
    assert found.amis["us-east-1"] == artifact.amis["us-east-1"]
    assert set(found.amis) == {"us-east-1", "eu-west-1", "us-west-2"}
    assert events.lines() == [] and "build.copy" in events.kinds()
    west = ctx.client("ec2", "us-west-2").describe_images(ImageIds=[found.amis["us-west-2"]])
    assert tags_of(west["Images"][0])[TAG_DIGEST] == artifact.digest


def test_an_undeclared_var_is_refused_before_packer_runs(ctx: Context, events: Recorder) -> None:
    config = {**WEB, "vars": {"app_version": "1", "app_verison": "2"}}
    with pytest.raises(BuildError, match="declares no variable 'app_verison'"):
        PackerBuilder(config).build(image_spec(config), ctx)
    assert events.kinds() == []


def test_a_template_without_ec2_endpoint_is_refused_on_an_emulator(
    ctx: Context, tmp_path: Path
) -> None:
    (tmp_path / "web.json").write_text(JSON_TEMPLATE.replace('"ec2_endpoint": "", ', ""))
    config = {"builder": "packer", "template": "web.json"}
    with pytest.raises(BuildError, match="would bake against real AWS"):
        PackerBuilder(config).build(image_spec(config, base_dir=tmp_path), ctx)


def test_a_missing_binary_says_how_to_install_it(ctx: Context) -> None:
    config = {**WEB, "binary": "packer-that-does-not-exist"}
    with pytest.raises(BuildError, match="apt-get install -y packer"):
        PackerBuilder(config).build(image_spec(config), ctx)
