"""Reading Packer templates and computing the packer builder's digest, without packer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from immutable_sdk.aws.session import AwsSession
from immutable_sdk.builders.packer import PackerBuilder
from immutable_sdk.builders.packer_run import PackerOutput
from immutable_sdk.builders.packer_template import (
    HCL2,
    LEGACY_JSON,
    load_template,
)
from immutable_sdk.clock import VirtualClock
from immutable_sdk.core.context import Context
from immutable_sdk.plugin import BuildError

from .conftest import EXAMPLES, image_spec

HCL = """
variable "region" {
  default = "us-east-1"
}
variable plain {}
# variable "commented" {}
/* variable "blocked" {} */
variables {
  from_block = "x"
  nested     = { inner = 1 }
}
locals { script = <<EOT
variable "in_heredoc" {}
EOT
}
build {
  provisioner "file" {
    source      = "files/app.conf"   # a comment
    destination = "/etc/app.conf"
  }
  provisioner "shell" {
    script  = "${path.root}/scripts/setup.sh"
    scripts = ["scripts/a.sh", "scripts/b.sh"]
  }
  provisioner "shell" {
    script = "${var.dynamic}/x.sh"
  }
}
"""


def test_hcl_variables_are_read_like_packer_declares_them(tmp_path: Path) -> None:
    (tmp_path / "t.pkr.hcl").write_text(HCL)
    t = load_template(tmp_path / "t.pkr.hcl")
    assert t.variables == {"region", "plain", "from_block", "nested"}


def test_hcl_references_are_paths_relative_to_the_template(tmp_path: Path) -> None:
    (tmp_path / "t.pkr.hcl").write_text(HCL)
    t = load_template(tmp_path / "t.pkr.hcl")
    assert set(t.references) == {
        "files/app.conf",
        "scripts/setup.sh",
        "scripts/a.sh",
        "scripts/b.sh",
    }
    assert t.unresolved == ("${var.dynamic}/x.sh",)  # counted as written
    with_value = load_template(tmp_path / "t.pkr.hcl", {"dynamic": "more"})
    assert "more/x.sh" in with_value.references and not with_value.unresolved


def test_legacy_json_template(tmp_path: Path) -> None:
    doc = {
        "variables": {"app_version": "1", "region": ""},
        "builders": [{"type": "amazon-ebs", "user_data_file": "{{template_dir}}/ud.sh"}],
        "provisioners": [
            {"type": "shell", "scripts": ["s/one.sh", "{{user `x`}}/two.sh"]},
            {"type": "file", "source": "f.txt", "destination": "/tmp/f.txt"},
        ],
    }
    (tmp_path / "t.json").write_text(json.dumps(doc))
    t = load_template(tmp_path / "t.json")
    assert t.kind == LEGACY_JSON
    assert t.variables == {"app_version", "region"}
    assert t.references == ("f.txt", "s/one.sh", "ud.sh")


def test_hcl2_json_syntax_is_hcl2(tmp_path: Path) -> None:
    doc = {
        "variable": {"app_version": {}},
        "source": {"amazon-ebs": {"web": {"user_data_file": "ud.sh"}}},
    }
    (tmp_path / "t.pkr.json").write_text(json.dumps(doc))
    t = load_template(tmp_path / "t.pkr.json")
    assert (t.kind, t.variables, t.references) == (HCL2, {"app_version"}, ("ud.sh",))


def test_the_demo_template_declares_the_sdk_contract() -> None:
    t = load_template(EXAMPLES / "packer" / "web.pkr.hcl")
    assert t.kind == HCL2
    expected = {"region", "ec2_endpoint", "communicator", "app_version", "immutable_sdk_tags"}
    assert t.variables == expected
    assert t.references == ("files/web.service",)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "a"
    (folder / "files").mkdir(parents=True)
    shutil.copy(EXAMPLES / "packer" / "web.pkr.hcl", folder / "web.pkr.hcl")
    (folder / "files" / "web.service").write_text("[Service]\n")
    return folder


CONFIG: dict[str, Any] = {
    "builder": "packer",
    "template": "web.pkr.hcl",
    "vars": {"app_version": "1"},
}


def offline_ctx(endpoint: str | None = None) -> Context:
    return Context("t", "us-east-1", AwsSession("us-east-1", endpoint_url=endpoint), VirtualClock())


def test_the_digest_follows_every_input(project: Path, tmp_path: Path, ctx: Context) -> None:
    def digest(folder: Path, config: dict[str, Any] = CONFIG) -> str:
        # the demo template's base image (source_ami_filter) is looked up on the emulator
        return PackerBuilder(config).digest(image_spec(config, base_dir=folder), ctx)

    base = digest(project)
    assert base.startswith("sha256:") and digest(project) == base

    moved = tmp_path / "elsewhere"
    shutil.copytree(project, moved)
    assert digest(moved) == base  # paths enter relative: same inputs, same digest anywhere

    assert digest(project, {**CONFIG, "vars": {"app_version": "2"}}) != base

    (project / "files" / "web.service").write_text("[Service]\nUser=web\n")
    assert digest(project) != base
    (project / "files" / "web.service").write_text("[Service]\n")
    assert digest(project) == base

    template = project / "web.pkr.hcl"
    template.write_bytes(template.read_bytes() + b"\n")
    assert digest(project) != base


def test_the_sdk_passes_only_declared_variables(tmp_path: Path) -> None:
    (tmp_path / "t.pkr.hcl").write_text('variable "app_version" {}\nvariable "region" {}\n')
    config = {"builder": "packer", "template": "t.pkr.hcl", "vars": {"app_version": "1"}}
    builder = PackerBuilder(config)
    image = image_spec(config, base_dir=tmp_path, regions=("eu-west-1", "us-east-1"))
    template = builder._template(image)
    assert builder.variables(image, offline_ctx(), template, {"k": "v"}) == {
        "app_version": "1",
        "region": "eu-west-1",
    }


def test_the_demo_template_gets_the_emulator_endpoint_and_no_communicator() -> None:
    config = {"builder": "packer", "template": "packer/web.pkr.hcl", "vars": {"app_version": "3"}}
    builder = PackerBuilder(config)
    image = image_spec(config)
    template = builder._template(image)
    on_aws = builder.variables(image, offline_ctx(), template, {"a:b": "c"})
    assert on_aws == {
        "app_version": "3",
        "region": "us-east-1",
        "immutable_sdk_tags": '{"a:b": "c"}',
    }
    emulated = builder.variables(image, offline_ctx("http://127.0.0.1:5000"), template, {})
    assert emulated["ec2_endpoint"] == "http://127.0.0.1:5000"
    assert emulated["communicator"] == "none"


def test_vars_cannot_set_what_the_sdk_sets() -> None:
    config = {**CONFIG, "template": "packer/web.pkr.hcl", "vars": {"region": "x"}}
    with pytest.raises(BuildError, match=r"vars\.region: set by immutable-sdk"):
        PackerBuilder(config).digest(image_spec(config), offline_ctx())


def test_a_missing_template_is_a_build_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no such file"):
        PackerBuilder(CONFIG).digest(image_spec(CONFIG, base_dir=tmp_path), offline_ctx())


def test_machine_readable_artifacts_per_region() -> None:
    out = PackerOutput()
    lines = [
        "1,,ui,message,    amazon-ebs.web: Found Image ID: ami-0abc",
        "2,amazon-ebs.web,artifact,0,id,us-east-1:ami-1%!(PACKER_COMMA)eu-west-1:ami-2",
        "3,,ui,error,Build 'web' errored: boom%!(PACKER_COMMA) twice",
        "not machine readable",
    ]
    shown = [line for raw in lines for line in out.feed(raw)]
    assert out.amis == {"us-east-1": "ami-1", "eu-west-1": "ami-2"}
    assert out.source_ami == "ami-0abc"
    assert out.summary() == "Build 'web' errored: boom, twice"
    assert shown[-1] == "not machine readable"


# --- a real HCL2 parser: heredocs, multi-line lists, computed paths, base images -------------

PARSED = """
variable "files" {
  default = "files"
}
locals {
  conf = "${path.root}/${var.files}/app.conf"
}
source "amazon-ebs" "web" {
  region    = var.region
  user_data = <<-EOT
    #!/bin/sh
    source = "not/a/reference.sh"
  EOT
  source_ami_filter {
    filters = {
      name                  = "golden-base-${var.flavour}-*"
      "virtualization-type" = "hvm"
    }
    owners      = ["self", "099720109477"]
    most_recent = true
  }
}
build {
  sources = ["source.amazon-ebs.web"]
  provisioner "shell" {
    scripts = [
      "scripts/a.sh",
      "${path.root}/scripts/b.sh",
    ]
  }
  provisioner "file" {
    source      = local.conf
    destination = "/etc/app.conf"
  }
}
"""


def test_hcl2_is_read_with_a_parser(tmp_path: Path) -> None:
    (tmp_path / "t.pkr.hcl").write_text(PARSED)
    t = load_template(tmp_path / "t.pkr.hcl", {"flavour": "min", "region": "eu-west-1"})
    # multi-line lists and computed paths (locals, variables, path.root) are references; a
    # heredoc's body is data, never mistaken for an attribute
    assert t.references == ("files/app.conf", "scripts/a.sh", "scripts/b.sh")
    assert t.unresolved == ()
    (base,) = t.bases
    assert base.source == "amazon-ebs.web" and base.most_recent and not base.unresolved
    assert dict(base.filters) == {"name": "golden-base-min-*", "virtualization-type": "hvm"}
    assert base.owners == ("self", "099720109477")
    unknown = load_template(tmp_path / "t.pkr.hcl")  # flavour has no value: not looked up
    assert unknown.bases[0].unresolved


def test_every_file_of_a_computed_path_counts_in_the_digest(tmp_path: Path, ctx: Context) -> None:
    template = PARSED.replace("source_ami_filter", 'source_ami = "ami-1"\n  ignored')
    template = template.replace('"golden-base-${var.flavour}-*"', '"x"')
    (tmp_path / "t.pkr.hcl").write_text(template)
    for name in ("files/app.conf", "scripts/a.sh", "scripts/b.sh"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("1")
    config = {"builder": "packer", "template": "t.pkr.hcl"}
    image = image_spec(config, base_dir=tmp_path)
    first = PackerBuilder(config).digest(image, ctx)
    for name in ("files/app.conf", "scripts/b.sh"):
        (tmp_path / name).write_text("2")
        changed = PackerBuilder(config).digest(image, ctx)
        assert changed != first, name
        first = changed


def test_base_images_of_json_templates(tmp_path: Path) -> None:
    legacy = {
        "variables": {"owner": "self"},
        "builders": [
            {
                "type": "amazon-ebs",
                "name": "web",
                "source_ami_filter": {
                    "filters": {"name": "base-*"},
                    "owners": ["{{user `owner`}}"],
                    "most_recent": True,
                },
            },
            {"type": "docker", "image": "ubuntu"},
        ],
    }
    (tmp_path / "t.json").write_text(json.dumps(legacy))
    (base,) = load_template(tmp_path / "t.json").bases
    assert (base.source, dict(base.filters), base.owners) == (
        "amazon-ebs.web",
        {"name": "base-*"},
        ("self",),
    )
    hcl_json = {"source": {"amazon-ebs": {"web": {"source_ami": "ami-0123"}}}}
    (tmp_path / "t.pkr.json").write_text(json.dumps(hcl_json))
    (base,) = load_template(tmp_path / "t.pkr.json").bases
    assert (base.source, base.ami) == ("amazon-ebs.web", "ami-0123")


def test_the_base_image_enters_the_digest(tmp_path: Path, ctx: Context) -> None:
    ec2 = ctx.client("ec2")
    (tmp_path / "t.pkr.hcl").write_text(
        'source "amazon-ebs" "web" {\n  source_ami_filter {\n'
        '    filters = { name = "al2023-ami-*" }\n'
        '    owners = ["amazon"]\n    most_recent = true\n  }\n}\n'
    )
    config = {"builder": "packer", "template": "t.pkr.hcl"}
    image = image_spec(config, base_dir=tmp_path)
    builder = PackerBuilder(config)
    base = builder.base_image(image, ctx)
    found = ec2.describe_images(
        Filters=[{"Name": "name", "Values": ["al2023-ami-*"]}],
        Owners=["amazon"],
    )["Images"]
    newest = max(found, key=lambda i: (i["CreationDate"], i["ImageId"]))
    assert base == newest["ImageId"]
    before = builder.digest(image, ctx)
    ec2.deregister_image(ImageId=newest["ImageId"])  # the newest is gone: another base
    assert PackerBuilder(config).base_image(image, ctx) != base
    assert PackerBuilder(config).digest(image, ctx) != before
    (tmp_path / "t.pkr.hcl").write_text(
        'source "amazon-ebs" "web" {\n  source_ami_filter {\n'
        '    filters = { name = "no-such-*" }\n    owners = ["self"]\n  }\n}\n'
    )
    with pytest.raises(BuildError, match="no AMI in us-east-1 matches the source_ami_filter"):
        PackerBuilder(config).digest(image, ctx)
