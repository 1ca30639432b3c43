# The terraform side of bench/sync_vs_terraform.sh: $vpc_count VPCs,
# $sg_count security groups spread round-robin over them (each with one inline
# ingress rule; no egress blocks, so terraform revokes AWS's default allow-all
# egress rule), and $instance_count instances (ami-760aaa0f, t2.micro) in the
# default VPC's default subnet.
# `terraform apply` creates them once (so terraform manages them: they are in
# its state); the benchmark then times `terraform plan -refresh-only` on that
# state against infrasql's full sync of the same account.
# Copied into a scratch directory by the script; never run terraform here.

variable "endpoint" {
  description = "AWS-compatible endpoint (moto, or bench/count_proxy.py in front of it)"
  type        = string
}

variable "vpc_count" {
  type    = number
  default = 100
}

variable "sg_count" {
  type    = number
  default = 2000
}

variable "instance_count" {
  type    = number
  default = 500
}

# false: no tags at all. moto looks up each resource's tags by scanning every
# tag in the account, so an unfiltered Describe* of N tagged resources costs
# O(N x all tags) in moto (not in AWS); the untagged variant shows the
# comparison without that emulator artefact.
variable "tagged" {
  type    = bool
  default = true
}

terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  skip_region_validation      = true
  s3_use_path_style           = true

  endpoints {
    ec2 = var.endpoint
    sts = var.endpoint
    iam = var.endpoint
  }
}

resource "aws_vpc" "bench" {
  count      = var.vpc_count
  cidr_block = "10.${count.index}.0.0/16"
  tags = var.tagged ? {
    Name  = "bench-${count.index}"
    bench = "sync_vs_terraform"
  } : null
}

resource "aws_security_group" "bench" {
  count       = var.sg_count
  name        = "bench-${count.index}"
  description = "bench"
  vpc_id      = aws_vpc.bench[count.index % var.vpc_count].id

  ingress {
    protocol    = "tcp"
    from_port   = 443
    to_port     = 443
    cidr_blocks = ["10.0.0.0/8"]
  }

  tags = var.tagged ? {
    bench = "sync_vs_terraform"
  } : null
}

resource "aws_instance" "bench" {
  count         = var.instance_count
  ami           = "ami-760aaa0f"
  instance_type = "t2.micro"
  tags = var.tagged ? {
    Name  = "bench-${count.index}"
    bench = "sync_vs_terraform"
  } : null
}
