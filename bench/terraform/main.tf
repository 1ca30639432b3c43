# The terraform side of bench/apply_vs_terraform.sh: 1 VPC + N security groups,
# the same end state infrasql's one COMMIT produces (aws_security_group revokes
# AWS's default allow-all egress rule, as infrasql does, because the resource
# declares no egress blocks).
# Copied into a scratch directory by the script; never run terraform here.

variable "endpoint" {
  description = "AWS-compatible endpoint (moto, or bench/count_proxy.py in front of it)"
  type        = string
}

variable "sg_count" {
  type    = number
  default = 200
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
  cidr_block = "10.0.0.0/16"
  tags = {
    Name = "bench"
  }
}

resource "aws_security_group" "bench" {
  count       = var.sg_count
  name        = "bench-${count.index + 1}"
  description = "bench"
  vpc_id      = aws_vpc.bench.id
  tags = {
    bench = "apply_vs_terraform"
  }
}
