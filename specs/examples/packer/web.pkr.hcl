# The demo's golden image: Amazon Linux 2023 with the app version baked in.
#
# One template for both worlds. immutable-sdk passes these variables when declared:
#   region              the image's first region
#   ec2_endpoint        the emulator's endpoint under --sandbox / AWS_ENDPOINT_URL ("" = real AWS)
#   communicator        "none" under an emulator (no machine to SSH into); "ssh" on AWS
#   immutable_sdk_tags  lineage tags (project, image, digest, built-at, builder): give them to
#                       run_tags, run_volume_tags, tags and snapshot_tags (see below)
# and app_version from the spec's `vars`.
#
# On AWS this launches a t3.micro from the newest AL2023 AMI in the default VPC, installs the app
# (files/web.service, a static HTTP server on port 8080) over SSH and snapshots the result.
# Packer >= 1.7 needs the amazon plugin first:
#   packer plugins install github.com/hashicorp/amazon

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

variable "app_version" {
  type = string
}

variable "immutable_sdk_tags" {
  type    = map(string)
  default = {}
}

source "amazon-ebs" "web" {
  region                 = var.region
  custom_endpoint_ec2    = var.ec2_endpoint
  skip_region_validation = true
  instance_type          = "t3.micro"
  ami_name               = "demo-web-${var.app_version}-${formatdate("YYYYMMDDhhmmss", timestamp())}"
  # No ami_description / ami_users: Packer 1.6.6 would change the AMI before tagging it, which
  # the policy of `immutable-sdk iam-policy` refuses (it scopes Packer's calls by these tags).

  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-kernel-6.1-x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  communicator = var.communicator
  ssh_username = "ec2-user"

  # The SDK's tags on everything Packer creates: the build instance and its volumes (tagged at
  # launch), the AMI and its snapshots. The IAM policy lets Packer act only on what carries them.
  run_tags        = var.immutable_sdk_tags
  run_volume_tags = var.immutable_sdk_tags
  tags            = merge(var.immutable_sdk_tags, { app_version = var.app_version })
  snapshot_tags   = var.immutable_sdk_tags
}

build {
  sources = ["source.amazon-ebs.web"]

  # Provisioners need a machine to talk to: skipped when the communicator is "none".
  dynamic "provisioner" {
    for_each = var.communicator == "none" ? [] : ["file"]
    labels   = ["file"]
    content {
      source      = "files/web.service"
      destination = "/tmp/web.service"
    }
  }

  dynamic "provisioner" {
    for_each = var.communicator == "none" ? [] : ["shell"]
    labels   = ["shell"]
    content {
      inline = [
        "sudo mkdir -p /opt/web",
        "echo '${var.app_version}' | sudo tee /opt/web/version /etc/app-version",
        "sudo install -m 0644 /tmp/web.service /etc/systemd/system/web.service",
        "sudo systemctl daemon-reload",
        "sudo systemctl enable web.service",
      ]
    }
  }
}
