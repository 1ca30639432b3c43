#!/usr/bin/env python3
"""Populate moto with the web-application catalogue (IAM, S3, ELBv2, ACM,
Route53) for bench/sync_catalog.sh, with direct boto3 calls. boto3 comes with
moto; nothing else is needed.

Usage:
  catalog_bench.py populate --endpoint URL --scale N [--threads T]
      Create, per unit of scale (N units):
        IAM:     3 roles, each with 1 inline policy, 1 attached AWS-managed
                 policy and 1 attached customer policy (made here, 1 per role),
                 and 1 instance profile holding the role;
        S3:      2 buckets (one with a policy, a public access block and
                 encryption; one plain);
        ELBv2:   1 target group; every 10th unit 1 load balancer with a
                 listener forwarding to that unit's target group;
        ACM:     1 certificate;
        Route53: every 10th unit 1 hosted zone; 5 records per unit in the
                 latest zone.
      That is 3 x 6 (IAM) + 2 + 1 + 0.2 + 1 + 0.1 + 5 = 27.3 resources per
      unit: --scale 80 makes 2,184. Prints one JSON line with the counts.
  floor --endpoint URL
      The reads of one full sync of those types by a raw boto3 client, one
      after another: "SECONDS CALLS".
"""

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor

REGION = "us-east-1"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}


def client(service, endpoint):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 10, "mode": "standard"},
                      s3={"addressing_style": "path"}),
    )


def doc(action, resource="*"):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": action, "Resource": resource}]})


def iam_unit(endpoint, i):
    iam = client("iam", endpoint)
    made = 0
    for j in range(3):
        role = f"bench-role-{i}-{j}"
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST),
                        Tags=[{"Key": "bench", "Value": "catalog"}])
        iam.put_role_policy(RoleName=role, PolicyName="inline",
                            PolicyDocument=doc("s3:GetObject"))
        iam.attach_role_policy(RoleName=role,
                               PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
        arn = iam.create_policy(PolicyName=f"bench-policy-{i}-{j}",
                                PolicyDocument=doc("ec2:Describe*"))["Policy"]["Arn"]
        iam.attach_role_policy(RoleName=role, PolicyArn=arn)
        iam.create_instance_profile(InstanceProfileName=role)
        iam.add_role_to_instance_profile(InstanceProfileName=role, RoleName=role)
        made += 5  # role, inline policy, 2 attachments, profile
        made += 1  # the customer policy
    return made


def s3_unit(endpoint, i):
    s3 = client("s3", endpoint)
    a, b = f"bench-secure-{i}", f"bench-plain-{i}"
    s3.create_bucket(Bucket=a)
    s3.put_bucket_policy(Bucket=a, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": f"arn:aws:s3:::{a}/*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    s3.put_public_access_block(Bucket=a, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=a, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.create_bucket(Bucket=b)
    return 2


def acm_unit(endpoint, i):
    acm = client("acm", endpoint)
    acm.request_certificate(DomainName=f"www{i}.bench.example.com", ValidationMethod="DNS")
    return 1


def populate(args):
    ep = args.endpoint
    counts = {}
    with ThreadPoolExecutor(args.threads) as pool:
        counts["iam"] = sum(pool.map(lambda i: iam_unit(ep, i), range(args.scale)))
        counts["s3_bucket"] = sum(pool.map(lambda i: s3_unit(ep, i), range(args.scale)))
        counts["acm_certificate"] = sum(pool.map(lambda i: acm_unit(ep, i), range(args.scale)))
    ec2, elb, r53 = client("ec2", ep), client("elbv2", ep), client("route53", ep)
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.77.{k}.0/24",
                                 AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
               for k, z in ((1, "a"), (2, "b"))]
    tgs = []
    for i in range(args.scale):
        tgs.append(elb.create_target_group(Name=f"bench-tg-{i}", Protocol="HTTP", Port=80,
                                           VpcId=vpc)["TargetGroups"][0]["TargetGroupArn"])
    lbs = 0
    for i in range(0, args.scale, 10):
        lb = elb.create_load_balancer(Name=f"bench-lb-{i}", Subnets=subnets)["LoadBalancers"][0]
        elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": tgs[i]}])
        lbs += 1
    counts["lb_target_group"] = len(tgs)
    counts["lb"] = lbs
    counts["lb_listener"] = lbs
    zones, records, zone = 0, 0, None
    for i in range(args.scale):
        if i % 10 == 0:
            zone = r53.create_hosted_zone(Name=f"z{i}.bench.example.com",
                                          CallerReference=f"bench-{i}")["HostedZone"]["Id"]
            zones += 1
        r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
            {"Action": "CREATE", "ResourceRecordSet": {
                "Name": f"h{i}-{k}.z{i - i % 10}.bench.example.com", "Type": "A", "TTL": 300,
                "ResourceRecords": [{"Value": f"10.0.{i % 250}.{k + 1}"}]}} for k in range(5)]})
        records += 5
    counts["route53_zone"] = zones
    counts["route53_record"] = records
    counts["total"] = sum(v for k, v in counts.items())
    print(json.dumps(counts))


def floor(args):
    """The reads of one full sync of the catalogue, made by a raw boto3 client
    one after another (all pages): bulk listings once each, then the
    per-resource calls the providers make for what no listing shows (their
    crate docs list them). Prints "SECONDS CALLS"."""
    import time

    ep = args.endpoint
    iam, s3, elb = client("iam", ep), client("s3", ep), client("elbv2", ep)
    acm, r53 = client("acm", ep), client("route53", ep)
    calls = 0

    def pages(c, op, key, **kw):
        nonlocal calls
        out = []
        for page in c.get_paginator(op).paginate(**kw):
            calls += 1
            out.extend(page.get(key, []))
        return out

    def one(fn, **kw):
        nonlocal calls
        calls += 1
        try:
            return fn(**kw)
        except Exception:  # "not configured" answers count as calls too
            return {}

    t0 = time.monotonic()
    for r in pages(iam, "list_roles", "Roles"):
        n = r["RoleName"]
        one(iam.list_role_tags, RoleName=n)
        one(iam.list_attached_role_policies, RoleName=n)
        for p in one(iam.list_role_policies, RoleName=n).get("PolicyNames", []):
            one(iam.get_role_policy, RoleName=n, PolicyName=p)
    for p in pages(iam, "list_policies", "Policies", Scope="Local"):
        one(iam.get_policy_version, PolicyArn=p["Arn"], VersionId=p["DefaultVersionId"])
        one(iam.list_policy_tags, PolicyArn=p["Arn"])
    for ip in pages(iam, "list_instance_profiles", "InstanceProfiles"):
        one(iam.get_instance_profile, InstanceProfileName=ip["InstanceProfileName"])
    for b in one(s3.list_buckets, BucketRegion=REGION).get("Buckets", []):
        for fn in (s3.get_bucket_policy, s3.get_public_access_block,
                   s3.get_bucket_encryption, s3.get_bucket_tagging,
                   s3.get_bucket_ownership_controls, s3.get_bucket_lifecycle_configuration):
            one(fn, Bucket=b["Name"])
    lbs = pages(elb, "describe_load_balancers", "LoadBalancers")
    tgs = pages(elb, "describe_target_groups", "TargetGroups")
    listeners = []
    for lb in lbs:
        listeners += pages(elb, "describe_listeners", "Listeners",
                           LoadBalancerArn=lb["LoadBalancerArn"])
    for ls in listeners:
        one(elb.describe_rules, ListenerArn=ls["ListenerArn"])
    arns = ([x["LoadBalancerArn"] for x in lbs] + [x["TargetGroupArn"] for x in tgs]
            + [x["ListenerArn"] for x in listeners])
    for i in range(0, len(arns), 20):
        one(elb.describe_tags, ResourceArns=arns[i:i + 20])
    for tg in tgs:
        one(elb.describe_target_health, TargetGroupArn=tg["TargetGroupArn"])
    for c in pages(acm, "list_certificates", "CertificateSummaryList"):
        one(acm.describe_certificate, CertificateArn=c["CertificateArn"])
        one(acm.list_tags_for_certificate, CertificateArn=c["CertificateArn"])
    for z in pages(r53, "list_hosted_zones", "HostedZones"):
        zid = z["Id"].split("/")[-1]
        one(r53.get_hosted_zone, Id=zid)
        pages(r53, "list_resource_record_sets", "ResourceRecordSets", HostedZoneId=zid)
        one(r53.list_tags_for_resource, ResourceType="hostedzone", ResourceId=zid)
    print(f"{time.monotonic() - t0:.3f} {calls}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("populate")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--scale", type=int, default=90)
    p.add_argument("--threads", type=int, default=8)
    f = sub.add_parser("floor")
    f.add_argument("--endpoint", required=True)
    args = ap.parse_args()
    if args.cmd == "populate":
        populate(args)
    elif args.cmd == "floor":
        floor(args)
    else:
        sys.exit(f"unknown command {args.cmd}")


if __name__ == "__main__":
    main()
