#!/usr/bin/env python3
"""A synthetic EC2 endpoint for sync benchmarks at 100,000 resources (issue #15).

moto cannot list 100k resources quickly enough to measure infrasql at that
scale, so this serves the EC2 Query API's listings from pages rendered once:
POST form bodies (`Action=...&Version=2016-11-15&...`), XML answers in AWS's
namespace with a `requestId` and `nextToken` pagination that honours
`MaxResults`/`NextToken`. What a sync sees is then infrasql's own cost.

Actions: DescribeVpcs, DescribeSubnets, DescribeSecurityGroups,
DescribeSecurityGroupRules, DescribeInstances, and DescribeVolumes (the
instance listing reads every root volume's size and type). Anything else
gets AWS's `InvalidAction` error; every request is counted per action
(GET /_synth/stats, and the log), so a benchmark can say what infrasql sent.
Filters and id lists are not applied (a sync sends none but DescribeInstances'
instance-state filter, which every synthetic instance passes); the
parameters ignored are counted too.

The inventory, per VPC (`--vpcs`, default 1,000 → 100,000 resources):
  1 VPC (10.<v%256>.0.0/16), 9 subnets (/24 each, zones a-f),
  40 security groups (the first one `default`), 1 rule per group
  (even groups: egress all traffic to 0.0.0.0/0; odd: ingress tcp 443 from
  10.0.0.0/8; every fourth from the VPC's default group instead),
  10 instances (one per reservation, each in a subnet of its VPC, with one
  or two groups of its VPC, an 8 GiB gp3 root volume).
Everything is consistent: subnets in existing VPCs, groups in VPCs, rules on
groups, instances in subnets with groups of the same VPC.

Without MaxResults a page holds --page items (default 1,000, AWS's
largest page), so a listing of 40,000 groups is 40 calls, as AWS would page.

Usage: bench/synth_ec2.py [--port 0] [--vpcs 1000] [--port-file F] [--log F]
Prints `listening on PORT` once every page is rendered.
"""

import argparse
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
ACCOUNT = "123456789012"
ZONES = ["a", "b", "c", "d", "e", "f"]
SUBNETS_PER_VPC = 9
GROUPS_PER_VPC = 40
INSTANCES_PER_VPC = 10
LAUNCH = "2026-11-01T00:00:00.000Z"
# Parameters every listing may carry; others are counted as ignored.
PAGING = {"Action", "Version", "MaxResults", "NextToken"}


def hexid(prefix, n):
    return f"{prefix}-{n:017x}"


def vpc_id(v):
    return hexid("vpc", v)


def subnet_id(v, k):
    return hexid("subnet", v * SUBNETS_PER_VPC + k)


def group_id(v, g):
    return hexid("sg", v * GROUPS_PER_VPC + g)


def group_name(v, g):
    return "default" if g == 0 else f"synth-{v}-{g}"


def tags(pairs):
    if not pairs:
        return "<tagSet/>"
    items = "".join(f"<item><key>{k}</key><value>{val}</value></item>" for k, val in pairs)
    return f"<tagSet>{items}</tagSet>"


def net(v):
    return f"10.{v % 256}"


def render_vpc(v, region):
    cidr = f"{net(v)}.0.0/16"
    return (
        f"<item><vpcId>{vpc_id(v)}</vpcId><ownerId>{ACCOUNT}</ownerId>"
        f"<state>available</state><cidrBlock>{cidr}</cidrBlock>"
        f"<cidrBlockAssociationSet><item><associationId>{hexid('vpc-cidr-assoc', v)}</associationId>"
        f"<cidrBlock>{cidr}</cidrBlock><cidrBlockState><state>associated</state></cidrBlockState>"
        f"</item></cidrBlockAssociationSet><ipv6CidrBlockAssociationSet/>"
        f"<dhcpOptionsId>{hexid('dopt', 1)}</dhcpOptionsId><instanceTenancy>default</instanceTenancy>"
        f"<isDefault>false</isDefault>{tags([('Name', f'synth-{v}'), ('bench', 'synth')])}</item>"
    )


def render_subnet(v, k, region):
    sid = subnet_id(v, k)
    z = k % len(ZONES)
    return (
        f"<item><subnetId>{sid}</subnetId><subnetArn>arn:aws:ec2:{region}:{ACCOUNT}:subnet/{sid}</subnetArn>"
        f"<state>available</state><vpcId>{vpc_id(v)}</vpcId><ownerId>{ACCOUNT}</ownerId>"
        f"<cidrBlock>{net(v)}.{k}.0/24</cidrBlock><ipv6CidrBlockAssociationSet/>"
        f"<availableIpAddressCount>{251 - INSTANCES_PER_VPC // SUBNETS_PER_VPC}</availableIpAddressCount>"
        f"<availabilityZone>{region}{ZONES[z]}</availabilityZone><availabilityZoneId>use1-az{z + 1}</availabilityZoneId>"
        f"<defaultForAz>false</defaultForAz><mapPublicIpOnLaunch>false</mapPublicIpOnLaunch>"
        f"<assignIpv6AddressOnCreation>false</assignIpv6AddressOnCreation><ipv6Native>false</ipv6Native>"
        f"<privateDnsNameOptionsOnLaunch><hostnameType>ip-name</hostnameType>"
        f"<enableResourceNameDnsARecord>false</enableResourceNameDnsARecord>"
        f"<enableResourceNameDnsAAAARecord>false</enableResourceNameDnsAAAARecord></privateDnsNameOptionsOnLaunch>"
        f"{tags([('Name', f'synth-{v}-{k}'), ('bench', 'synth')])}</item>"
    )


def rule_of(v, g):
    """The one rule of group g: (egress, protocol, from, to, cidr, referenced group)."""
    if g % 2 == 0:
        return (True, "-1", -1, -1, "0.0.0.0/0", None)
    if g % 4 == 3:
        return (False, "tcp", 22, 22, None, group_id(v, 0))
    return (False, "tcp", 443, 443, "10.0.0.0/8", None)


def permission(v, g):
    _, proto, lo, hi, cidr, ref = rule_of(v, g)
    ports = "" if proto == "-1" else f"<fromPort>{lo}</fromPort><toPort>{hi}</toPort>"
    ranges = f"<ipRanges><item><cidrIp>{cidr}</cidrIp></item></ipRanges>" if cidr else "<ipRanges/>"
    groups = (
        f"<groups><item><groupId>{ref}</groupId><userId>{ACCOUNT}</userId></item></groups>"
        if ref
        else "<groups/>"
    )
    return f"<item><ipProtocol>{proto}</ipProtocol>{ports}{groups}{ranges}<ipv6Ranges/><prefixListIds/></item>"


def render_group(v, g, region):
    gid = group_id(v, g)
    egress = rule_of(v, g)[0]
    perm = permission(v, g)
    inbound, outbound = ("<ipPermissions/>", f"<ipPermissionsEgress>{perm}</ipPermissionsEgress>") if egress else (
        f"<ipPermissions>{perm}</ipPermissions>",
        "<ipPermissionsEgress/>",
    )
    name = group_name(v, g)
    tagset = tags([] if g == 0 else [("Name", name), ("bench", "synth")])
    desc = "default VPC security group" if g == 0 else f"synthetic group {g} of VPC {v}"
    return (
        f"<item><ownerId>{ACCOUNT}</ownerId><groupId>{gid}</groupId><groupName>{name}</groupName>"
        f"<groupDescription>{desc}</groupDescription><vpcId>{vpc_id(v)}</vpcId>"
        f"<securityGroupArn>arn:aws:ec2:{region}:{ACCOUNT}:security-group/{gid}</securityGroupArn>"
        f"{inbound}{outbound}{tagset}</item>"
    )


def render_rule(v, g, region):
    rid = hexid("sgr", v * GROUPS_PER_VPC + g)
    egress, proto, lo, hi, cidr, ref = rule_of(v, g)
    peer = f"<cidrIpv4>{cidr}</cidrIpv4>" if cidr else (
        f"<referencedGroupInfo><groupId>{ref}</groupId><userId>{ACCOUNT}</userId></referencedGroupInfo>"
    )
    desc = "" if egress else "<description>synthetic</description>"
    return (
        f"<item><securityGroupRuleId>{rid}</securityGroupRuleId><groupId>{group_id(v, g)}</groupId>"
        f"<groupOwnerId>{ACCOUNT}</groupOwnerId><isEgress>{'true' if egress else 'false'}</isEgress>"
        f"<ipProtocol>{proto}</ipProtocol><fromPort>{lo}</fromPort><toPort>{hi}</toPort>{peer}{desc}"
        f"<securityGroupRuleArn>arn:aws:ec2:{region}:{ACCOUNT}:security-group-rule/{rid}</securityGroupRuleArn>"
        f"<tagSet/></item>"
    )


def instance_groups(v, n):
    """One or two groups of the instance's VPC (every other one also the default)."""
    own = 1 + n % (GROUPS_PER_VPC - 1)
    return [0, own] if n % 2 == 0 else [own]


def instance_parts(v, n):
    i = v * INSTANCES_PER_VPC + n
    k = n % SUBNETS_PER_VPC
    ip = f"{net(v)}.{k}.{4 + n}"
    return i, k, ip


def render_reservation(v, n, region):
    i, k, ip = instance_parts(v, n)
    iid, vol = hexid("i", i), hexid("vol", i)
    zone = f"{region}{ZONES[k % len(ZONES)]}"
    groupset = "".join(
        f"<item><groupId>{group_id(v, g)}</groupId><groupName>{group_name(v, g)}</groupName></item>"
        for g in instance_groups(v, n)
    )
    dns = f"ip-{ip.replace('.', '-')}.ec2.internal"
    eni = (
        f"<networkInterfaceSet><item><networkInterfaceId>{hexid('eni', i)}</networkInterfaceId>"
        f"<subnetId>{subnet_id(v, k)}</subnetId><vpcId>{vpc_id(v)}</vpcId><description/>"
        f"<ownerId>{ACCOUNT}</ownerId><status>in-use</status><macAddress>02:00:00:00:{i % 256:02x}:{i // 256 % 256:02x}</macAddress>"
        f"<privateIpAddress>{ip}</privateIpAddress><privateDnsName>{dns}</privateDnsName>"
        f"<sourceDestCheck>true</sourceDestCheck><groupSet>{groupset}</groupSet>"
        f"<attachment><attachmentId>{hexid('eni-attach', i)}</attachmentId><deviceIndex>0</deviceIndex>"
        f"<status>attached</status><attachTime>{LAUNCH}</attachTime><deleteOnTermination>true</deleteOnTermination>"
        f"<networkCardIndex>0</networkCardIndex></attachment>"
        f"<privateIpAddressesSet><item><privateIpAddress>{ip}</privateIpAddress><privateDnsName>{dns}</privateDnsName>"
        f"<primary>true</primary></item></privateIpAddressesSet><ipv6AddressesSet/>"
        f"<interfaceType>interface</interfaceType></item></networkInterfaceSet>"
    )
    instance = (
        f"<item><instanceId>{iid}</instanceId><imageId>ami-0123456789abcdef0</imageId>"
        f"<instanceState><code>16</code><name>running</name></instanceState>"
        f"<privateDnsName>{dns}</privateDnsName><dnsName/><reason/><amiLaunchIndex>0</amiLaunchIndex>"
        f"<productCodes/><instanceType>t3.micro</instanceType><launchTime>{LAUNCH}</launchTime>"
        f"<placement><availabilityZone>{zone}</availabilityZone><groupName/><tenancy>default</tenancy></placement>"
        f"<monitoring><state>disabled</state></monitoring><subnetId>{subnet_id(v, k)}</subnetId>"
        f"<vpcId>{vpc_id(v)}</vpcId><privateIpAddress>{ip}</privateIpAddress>"
        f"<sourceDestCheck>true</sourceDestCheck><groupSet>{groupset}</groupSet>"
        f"<architecture>x86_64</architecture><rootDeviceType>ebs</rootDeviceType>"
        f"<rootDeviceName>/dev/xvda</rootDeviceName><blockDeviceMapping><item><deviceName>/dev/xvda</deviceName>"
        f"<ebs><volumeId>{vol}</volumeId><status>attached</status><attachTime>{LAUNCH}</attachTime>"
        f"<deleteOnTermination>true</deleteOnTermination></ebs></item></blockDeviceMapping>"
        f"<virtualizationType>hvm</virtualizationType><clientToken>{hexid('tok', i)}</clientToken>"
        f"{tags([('Name', f'synth-{v}-{n}'), ('bench', 'synth')])}"
        f"<hypervisor>xen</hypervisor>{eni}<ebsOptimized>false</ebsOptimized><enaSupport>true</enaSupport>"
        f"<metadataOptions><state>applied</state><httpTokens>required</httpTokens>"
        f"<httpPutResponseHopLimit>2</httpPutResponseHopLimit><httpEndpoint>enabled</httpEndpoint></metadataOptions>"
        f"<platformDetails>Linux/UNIX</platformDetails><bootMode>uefi-preferred</bootMode></item>"
    )
    return (
        f"<item><reservationId>{hexid('r', i)}</reservationId><ownerId>{ACCOUNT}</ownerId>"
        f"<groupSet/><instancesSet>{instance}</instancesSet></item>"
    )


def render_volume(v, n, region):
    i, k, _ = instance_parts(v, n)
    vol = hexid("vol", i)
    zone = f"{region}{ZONES[k % len(ZONES)]}"
    return (
        f"<item><volumeId>{vol}</volumeId><size>8</size><snapshotId>snap-0123456789abcdef0</snapshotId>"
        f"<availabilityZone>{zone}</availabilityZone><status>in-use</status><createTime>{LAUNCH}</createTime>"
        f"<attachmentSet><item><volumeId>{vol}</volumeId><instanceId>{hexid('i', i)}</instanceId>"
        f"<device>/dev/xvda</device><status>attached</status><attachTime>{LAUNCH}</attachTime>"
        f"<deleteOnTermination>true</deleteOnTermination></item></attachmentSet>"
        f"<volumeType>gp3</volumeType><iops>3000</iops><throughput>125</throughput>"
        f"<encrypted>false</encrypted><multiAttachEnabled>false</multiAttachEnabled><tagSet/></item>"
    )


# Action → (the list element's name, the items, counted as resources?).
def inventory(vpcs, region):
    r = range(vpcs)
    return {
        "DescribeVpcs": ("vpcSet", [render_vpc(v, region) for v in r], True),
        "DescribeSubnets": (
            "subnetSet",
            [render_subnet(v, k, region) for v in r for k in range(SUBNETS_PER_VPC)],
            True,
        ),
        "DescribeSecurityGroups": (
            "securityGroupInfo",
            [render_group(v, g, region) for v in r for g in range(GROUPS_PER_VPC)],
            True,
        ),
        "DescribeSecurityGroupRules": (
            "securityGroupRuleSet",
            [render_rule(v, g, region) for v in r for g in range(GROUPS_PER_VPC)],
            True,
        ),
        "DescribeInstances": (
            "reservationSet",
            [render_reservation(v, n, region) for v in r for n in range(INSTANCES_PER_VPC)],
            True,
        ),
        # Root volumes: read with the instances, not rows of their own.
        "DescribeVolumes": (
            "volumeSet",
            [render_volume(v, n, region) for v in r for n in range(INSTANCES_PER_VPC)],
            False,
        ),
    }


class Pages:
    """Pages as bytes, keyed by (action, offset, size): rendered once each.

    A page's bytes are its items joined; the response wraps them with the
    request's own requestId, so nothing but a join happens per request."""

    def __init__(self, items, default_page):
        self.items = {a: (el, [s.encode() for s in it]) for a, (el, it, _) in items.items()}
        self.default_page = default_page
        self.cache = {}
        self.lock = threading.Lock()

    def page(self, action, offset, size):
        key = (action, offset, size)
        with self.lock:
            hit = self.cache.get(key)
        if hit is not None:
            return hit
        el, items = self.items[action]
        chunk = items[offset : offset + size]
        end = offset + len(chunk)
        token = f"<nextToken>synth:{end}</nextToken>".encode() if end < len(items) else b""
        body = b"".join([f"<{el}>".encode(), *chunk, f"</{el}>".encode(), token])
        with self.lock:
            self.cache[key] = body
        return body

    def warm(self):
        for a, (_, items) in self.items.items():
            for off in range(0, len(items), self.default_page):
                self.page(a, off, self.default_page)


def error_body(code, message, request_id):
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
    ).encode()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.actions = {}
        self.ignored = {}
        self.seconds = 0.0

    def count(self, action, ignored, seconds):
        with self.lock:
            self.actions[action] = self.actions.get(action, 0) + 1
            for p in ignored:
                self.ignored[p] = self.ignored.get(p, 0) + 1
            self.seconds += seconds

    def snapshot(self):
        with self.lock:
            return {
                "actions": dict(self.actions),
                "ignored_params": dict(self.ignored),
                "serving_seconds": round(self.seconds, 3),
            }


def make_handler(pages, stats, log):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the SDK reuses connections

        def log_message(self, *_):
            pass

        def send(self, status, body, request_id, ctype="text/xml;charset=UTF-8"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-requestid", request_id)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/_synth/stats":
                self.send(200, json.dumps(stats.snapshot()).encode(), "stats", "application/json")
            else:
                self.send(404, b"", "none", "text/plain")

        def do_POST(self):
            t0 = time.perf_counter()
            request_id = str(uuid.uuid4())
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            arg = lambda k: (form.get(k) or [None])[0]
            action = arg("Action") or "(none)"
            ignored = sorted({k.split(".")[0] for k in form} - PAGING)
            status, body = 200, None
            if action not in pages.items:
                status = 400
                body = error_body(
                    "InvalidAction",
                    f"The action {action} is not valid for this web service (synthetic EC2 endpoint).",
                    request_id,
                )
            else:
                try:
                    size = int(arg("MaxResults") or pages.default_page)
                    token = arg("NextToken")
                    offset = int(token.split(":", 1)[1]) if token else 0
                    if size < 1 or offset < 0 or (token and not token.startswith("synth:")):
                        raise ValueError
                except (ValueError, IndexError):
                    status = 400
                    body = error_body("InvalidParameterValue", "bad MaxResults or NextToken", request_id)
                else:
                    page = pages.page(action, offset, size)
                    body = b"".join(
                        [
                            f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{NS}">'
                            f"<requestId>{request_id}</requestId>".encode(),
                            page,
                            f"</{action}Response>".encode(),
                        ]
                    )
            self.send(status, body, request_id)
            spent = time.perf_counter() - t0
            stats.count(action, ignored, spent)
            if log:
                log.write(f"{time.time():.3f} {action} {status} {len(body)}B {spent * 1000:.1f}ms ignored={','.join(ignored)}\n")
                log.flush()

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--vpcs", type=int, default=1000, help="100 resources per VPC")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--page", type=int, default=1000, help="items per page without MaxResults")
    ap.add_argument("--port-file", help="write the port here once serving")
    ap.add_argument("--log", help="one line per request")
    a = ap.parse_args()
    t0 = time.perf_counter()
    items = inventory(a.vpcs, a.region)
    pages = Pages(items, a.page)
    pages.warm()
    counts = {k: len(v[1]) for k, v in items.items()}
    total = sum(len(v[1]) for v in items.values() if v[2])
    del items
    stats = Stats()
    log = open(a.log, "a") if a.log else None
    server = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(pages, stats, log))
    server.daemon_threads = True
    port = server.server_address[1]
    print(
        f"synth_ec2: {total} resources {json.dumps(counts)} rendered in {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
        flush=True,
    )
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(a.port_file + ".tmp", a.port_file)
    print(f"listening on {port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
