#!/usr/bin/env python3
"""Helpers for the sync benchmarks (bench/sync_vs_terraform.sh,
bench/sync_drift_latency.sh, bench/sync_memory.sh). boto3 (it comes with moto)
and psql; nothing else.

Subcommands:
  inventory --endpoint URL
      One line: what exists in moto's us-east-1 (VPCs, security groups, rules,
      instances, ...), straight from the EC2 API.
  populate --endpoint URL --vpcs N --sgs M [--threads T]
      Create N VPCs (10.i.0.0/16 for i < 256, then 172.16-31...) and M security
      groups spread round-robin over them, with direct EC2 calls (each group
      keeps AWS's default allow-all egress rule, so M groups = 2M resources).
  counts --file counts.json --label L --resources N [--per NAME=K ...]
      Summarise a bench/count_proxy.py counts JSON.
  floor --endpoint URL [--actions A,B,...]
      Moto's own time for the list calls of one infrasql full sync (raw HTTP,
      one after another): "SECONDS CALLS BYTES slowest calls...".
  rounds --psql "psql args" --seconds S
      Watch the sync loop: round span and start-to-start period.
  drift --endpoint URL --psql "psql args" --trials N --kinds k1,k2 --poll S
      Out-of-band changes against a running infrasql with a sync loop: for each
      trial make one change with boto3 and poll infra.drift (one psql session
      through infrasql, every S seconds) until its row appears. Prints one
      line per trial and a JSON summary on the last line.
"""

import argparse
import json
import random
import re
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def ec2_client(endpoint):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 10, "mode": "standard"}),
    )


def all_pages(ec2, op, key, **kw):
    out = []
    for page in ec2.get_paginator(op).paginate(**kw):
        out.extend(page[key])
    return out


def cmd_inventory(a):
    ec2 = ec2_client(a.endpoint)
    vpcs = all_pages(ec2, "describe_vpcs", "Vpcs")
    sgs = all_pages(ec2, "describe_security_groups", "SecurityGroups")
    rules = all_pages(ec2, "describe_security_group_rules", "SecurityGroupRules")
    res = all_pages(ec2, "describe_instances", "Reservations")
    inst = [i for r in res for i in r["Instances"]]
    running = sum(1 for i in inst if i["State"]["Name"] == "running")
    subnets = all_pages(ec2, "describe_subnets", "Subnets")
    rts = all_pages(ec2, "describe_route_tables", "RouteTables")
    igws = all_pages(ec2, "describe_internet_gateways", "InternetGateways")
    d = {
        "vpcs": len(vpcs),
        "vpcs_nondefault": sum(1 for v in vpcs if not v.get("IsDefault")),
        "security_groups": len(sgs),
        "security_groups_nondefault": sum(1 for g in sgs if g["GroupName"] != "default"),
        "security_group_rules": len(rules),
        "instances": len(inst),
        "instances_running": running,
        "subnets": len(subnets),
        "route_tables": len(rts),
        "internet_gateways": len(igws),
    }
    if a.json:
        print(json.dumps(d))
    else:
        print(" ".join(f"{k}={v}" for k, v in d.items()))


def cidr(i):
    if i < 256:
        return f"10.{i}.0.0/16"
    i -= 256
    return f"172.{16 + i // 256}.{i % 256}.0/24"


def cmd_populate(a):
    ec2 = ec2_client(a.endpoint)
    t0 = time.time()
    with ThreadPoolExecutor(a.threads) as pool:
        vpcs = list(pool.map(lambda i: ec2.create_vpc(CidrBlock=cidr(i))["Vpc"]["VpcId"],
                             range(a.vpcs)))
        t1 = time.time()

        def sg(i):
            ec2.create_security_group(GroupName=f"{a.prefix}{i}", Description="bench",
                                      VpcId=vpcs[i % len(vpcs)])

        done = 0
        for _ in pool.map(sg, range(a.sgs)):
            done += 1
            if done % 1000 == 0:
                print(f"populate: {done}/{a.sgs} security groups ({time.time() - t1:.0f}s)",
                      file=sys.stderr, flush=True)
    t2 = time.time()
    print(f"populate: {a.vpcs} VPCs in {t1 - t0:.1f}s, {a.sgs} security groups in {t2 - t1:.1f}s")


def cmd_counts(a):
    c = json.load(open(a.file))
    print(f"{a.label}: {c['total']} API calls for {a.resources} resources = "
          f"{c['total'] / max(a.resources, 1):.3f} calls/resource")
    per = [p.split("=", 1) for p in a.per]
    for action, n in c["by_action"].items():
        extra = "".join(f"  {n / int(k):7.3f} per {name}" for name, k in per if int(k) > 0)
        print(f"    {n:6d}  {action:38s}{extra}")
    if c["errors"]:
        print("    HTTP errors: " + ", ".join(f"{k} x{v}" for k, v in c["errors"].items()))


class Psql:
    """One long-lived psql session; one single-row query at a time."""

    def __init__(self, args):
        self.p = subprocess.Popen(
            shlex.split(args) + ["-X", "-A", "-t", "-q", "-F", "|", "-v", "ON_ERROR_STOP=0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def one(self, sql):
        # psql flushes its output after every query; the marker line guards
        # against a query that printed nothing (an error goes to stderr).
        self.p.stdin.write(sql.rstrip().rstrip(";") + ";\n\\echo __end__\n")
        self.p.stdin.flush()
        lines = []
        while True:
            line = self.p.stdout.readline()
            if line == "":
                raise RuntimeError("psql exited")
            line = line.rstrip("\n")
            if line == "__end__":
                return lines
            lines.append(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


def cmd_drift(a):
    ec2 = ec2_client(a.endpoint)
    db = Psql(a.psql)
    kinds = a.kinds.split(",")
    vpcs = [v["VpcId"] for v in all_pages(ec2, "describe_vpcs", "Vpcs") if not v.get("IsDefault")]
    if not vpcs:
        sys.exit("drift: no non-default VPC to change")
    groups = [g["GroupId"] for g in all_pages(ec2, "describe_security_groups", "SecurityGroups",
                                               Filters=[{"Name": "vpc-id", "Values": vpcs}])
              if g["GroupName"] != "default"]
    rnd = random.Random(a.seed)
    results = []
    for i in range(a.trials):
        kind = kinds[i % len(kinds)]
        # Sample the loop's phase uniformly: wait a random fraction of a period.
        time.sleep(rnd.uniform(0.2, a.jitter))
        base = int(db.one("SELECT coalesce(max(drift_id), 0) FROM infra.drift")[0])
        stamp = f"t{i}-{int(time.time() * 1000)}"
        t0 = time.time()
        if kind == "vpc_tag":
            rid = vpcs[i % len(vpcs)]
            ec2.create_tags(Resources=[rid], Tags=[{"Key": "drift_trial", "Value": stamp}])
            table, want = "aws.vpc", "changed"
        elif kind == "sg_tag":
            if not groups:
                sys.exit("drift: sg_tag needs non-default security groups")
            rid = groups[i % len(groups)]
            ec2.create_tags(Resources=[rid], Tags=[{"Key": "drift_trial", "Value": stamp}])
            table, want = "aws.security_group", "changed"
        elif kind == "sg_create":
            rid = ec2.create_security_group(GroupName=f"drift-{stamp}", Description="drift",
                                            VpcId=vpcs[i % len(vpcs)])["GroupId"]
            table, want = "aws.security_group", "appeared"
        elif kind == "vpc_create":
            rid = ec2.create_vpc(CidrBlock=f"192.168.{i % 256}.0/24")["Vpc"]["VpcId"]
            table, want = "aws.vpc", "appeared"
        else:
            sys.exit(f"drift: unknown kind {kind}")
        t1 = time.time()
        q = (f"SELECT count(*), coalesce(extract(epoch FROM min(detected_at)), 0) FROM infra.drift "
             f"WHERE drift_id > {base} "
             f"AND table_name = '{table}' AND resource_id = '{rid}' AND kind = '{want}'")
        polls = 0
        seen = None
        detected = None
        while time.time() - t1 < a.timeout:
            polls += 1
            n, det = db.one(q)[0].split("|")
            if int(n) > 0:
                seen = time.time()
                detected = float(det)
                break
            time.sleep(a.poll)
        if seen is None:
            print(f"trial {i + 1:2d} {kind:10s} {table} {rid}: NO drift row within {a.timeout}s",
                  flush=True)
            results.append({"trial": i + 1, "kind": kind, "latency": None})
            continue
        lat = seen - t1
        results.append({"trial": i + 1, "kind": kind, "latency": lat, "api": t1 - t0})
        # detected_at is the sync transaction's start (now()), i.e. just after
        # the listing that saw the change returned
        print(f"trial {i + 1:2d} {kind:10s} {table:20s} {rid:24s} drift row after {lat:6.3f}s "
              f"(listing returned {detected - t1:+.3f}s; change call took {t1 - t0:.3f}s; "
              f"{polls} polls)", flush=True)
    db.close()
    lats = [r["latency"] for r in results if r["latency"] is not None]
    summary = {
        "trials": len(results),
        "missed": sum(1 for r in results if r["latency"] is None),
        "median": statistics.median(lats) if lats else None,
        "max": max(lats) if lats else None,
        "min": min(lats) if lats else None,
        "mean": statistics.mean(lats) if lats else None,
        "by_kind": {k: statistics.median([r["latency"] for r in results
                                          if r["kind"] == k and r["latency"] is not None] or [0])
                    for k in kinds},
    }
    f = lambda x: "n/a" if x is None else f"{x:.3f}s"
    print(f"time to drift: median {f(summary['median'])}, max {f(summary['max'])}, "
          f"min {f(summary['min'])}, mean {f(summary['mean'])} over "
          f"{summary['trials'] - summary['missed']}/{summary['trials']} trials (median by kind: "
          + ", ".join(f"{k} {f(v)}" for k, v in summary["by_kind"].items()) + ")")
    print(json.dumps(summary))


def cmd_rounds(a):
    """Watch the sync loop for a while: round starts (aws.vpc, level 0) and
    the span of each completed round (to the last table's last_finished)."""
    db = Psql(a.psql)
    q = ("SELECT extract(epoch FROM v.s), extract(epoch FROM max(st.last_finished)), "
         "bool_and(st.last_started > v.s - interval '0.5 s' AND st.last_finished >= st.last_started) "
         "FROM infra.sync_status st, "
         "(SELECT last_started AS s FROM infra.sync_status WHERE table_name = 'aws.vpc') v GROUP BY v.s")
    done = {}
    end = time.time() + a.seconds
    while time.time() < end:
        row = db.one(q)
        if row:
            s0, f0, ok = row[0].split("|")
            if ok == "t":
                done[float(s0)] = float(f0)
        time.sleep(0.05)
    db.close()
    starts = sorted(done)
    spans = [done[s] - s for s in starts]
    periods = [b - a_ for a_, b in zip(starts, starts[1:])]
    f = lambda xs: (f"n={len(xs)} median={statistics.median(xs):.3f}s min={min(xs):.3f}s "
                    f"max={max(xs):.3f}s") if xs else "n=0"
    print(f"round span (aws.vpc start -> last table finished): {f(spans)}")
    print(f"round period (start to start): {f(periods)}")


FLOOR_ACTIONS = ("DescribeVpcs,DescribeKeyPairs,DescribeAddresses,DescribeSubnets,"
                 "DescribeInternetGateways,DescribeSecurityGroups,DescribeRouteTables,"
                 "DescribeRouteTables,DescribeRouteTables,DescribeSecurityGroupRules,"
                 "DescribeInstances")


def cmd_floor(a):
    """Moto's own time for the list calls of one full sync: each action sent
    once, in turn, as a raw HTTP POST (no SDK, no response parsing): the
    floor under any client's sync of this account on this moto."""
    import urllib.request

    auth = ("AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, "
            "SignedHeaders=host, Signature=0")
    times = []
    total_bytes = 0
    for action in a.actions.split(","):
        req = urllib.request.Request(
            a.endpoint.rstrip("/") + "/",
            data=f"Action={action}&Version=2016-11-15".encode(),
            headers={"Authorization": auth,
                     "Content-Type": "application/x-www-form-urlencoded"})
        t0 = time.time()
        with urllib.request.urlopen(req, timeout=600) as r:
            body = r.read()
        dt = time.time() - t0
        total_bytes += len(body)
        # moto writes an empty <nextToken/> (or an empty element) on last pages.
        if re.search(rb"<nextToken>[^<]+</nextToken>", body):
            print(f"floor: {action} returned a next token: only its first page was timed",
                  file=sys.stderr)
        times.append((action, dt, len(body)))
    tot = sum(t for _, t, _ in times)
    detail = ", ".join(f"{act} {t:.3f}s" for act, t, _ in sorted(times, key=lambda x: -x[1])[:4])
    print(f"{tot:.3f} {len(times)} {total_bytes} {detail}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("inventory")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("populate")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--vpcs", type=int, default=10)
    p.add_argument("--sgs", type=int, default=0)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--prefix", default="bench-")
    p = sub.add_parser("counts")
    p.add_argument("--file", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--resources", type=int, required=True)
    p.add_argument("--per", action="append", default=[])
    p = sub.add_parser("drift")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--psql", required=True)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--kinds", default="vpc_tag")
    p.add_argument("--poll", type=float, default=0.05)
    p.add_argument("--jitter", type=float, default=1.5)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("floor")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--actions", default=FLOOR_ACTIONS)
    p = sub.add_parser("rounds")
    p.add_argument("--psql", required=True)
    p.add_argument("--seconds", type=float, default=6)
    a = ap.parse_args()
    {"inventory": cmd_inventory, "populate": cmd_populate, "counts": cmd_counts,
     "drift": cmd_drift, "rounds": cmd_rounds, "floor": cmd_floor}[a.cmd](a)


if __name__ == "__main__":
    main()
