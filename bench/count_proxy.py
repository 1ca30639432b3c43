#!/usr/bin/env python3
"""A tiny counting HTTP reverse proxy for AWS APIs: query protocol (EC2, STS,
IAM, ELBv2, RDS), JSON (ACM) and REST (S3, Route53).

Put it between an AWS client and moto to see which API calls the client
really makes. Every request is forwarded unchanged (same method, path, headers
and body, so SigV4 signatures stay valid) over a kept-alive connection per
client connection; the response is passed back unchanged. Each request is
tallied by its `Action=` parameter (from the form body, else the query string)
and by the HTTP status moto answered with.

Python standard library only.

Usage:
    count_proxy.py --upstream http://127.0.0.1:MOTOPORT [--listen 127.0.0.1:0]
                   [--port-file FILE] [--summary-file FILE]

It prints `count_proxy listening on 127.0.0.1:PORT` once ready (and writes
PORT to --port-file). On SIGTERM/SIGINT it prints a summary (and writes it as
JSON to --summary-file).

Control endpoints (answered by the proxy itself, never forwarded):
    GET  /__count_proxy__/counts   -> JSON {"total": n, "by_action": {...},
                                            "by_status": {...}, "errors": {...}}
    GET  /__count_proxy__/requests -> JSON list of every request since the
                                      last reset, in arrival order: action,
                                      method, path, the headers a replay needs,
                                      body, status, response body, start and
                                      end times (bench/replay_floor.py replays it)
    POST /__count_proxy__/reset    -> zero the counters, forget the requests
"""

import argparse
import http.client
import http.server
import json
import signal
import socketserver
import sys
import threading
import time
import urllib.parse
from collections import Counter

CONTROL = "/__count_proxy__/"
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.by_action = Counter()
            self.by_status = Counter()
            self.errors = Counter()  # "Action status" for status >= 400
            self.total = 0
            self.started = time.time()
            self.requests = []

    def add(self, action, status):
        with self.lock:
            self.total += 1
            self.by_action[action] += 1
            self.by_status[str(status)] += 1
            if status >= 400:
                self.errors[f"{action} {status}"] += 1

    def record(self, entry):
        with self.lock:
            self.requests.append(entry)

    def recorded(self):
        with self.lock:
            return list(self.requests)

    def snapshot(self):
        with self.lock:
            return {
                "total": self.total,
                "by_action": dict(self.by_action.most_common()),
                "by_status": dict(self.by_status),
                "errors": dict(self.errors),
                "seconds": round(time.time() - self.started, 3),
            }


TALLY = Tally()


# S3's subresources: GET /bucket?policy is GetBucketPolicy, and so on.
S3_SUBRESOURCES = {
    "policy": "BucketPolicy", "publicAccessBlock": "PublicAccessBlock",
    "encryption": "BucketEncryption", "tagging": "BucketTagging",
    "versioning": "BucketVersioning", "ownershipControls": "BucketOwnershipControls",
    "lifecycle": "BucketLifecycleConfiguration", "location": "BucketLocation",
    "versions": "ObjectVersions", "delete": "Objects", "acl": "BucketAcl",
}
S3_VERBS = {"GET": "Get", "PUT": "Put", "DELETE": "Delete", "HEAD": "Head", "POST": "Post"}


def rest_action(method, path):
    """A name for a REST-protocol call: Route53 (/2013-04-01/...) or S3."""
    parts = urllib.parse.urlsplit(path)
    segs = [s for s in parts.path.split("/") if s]
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    if segs and segs[0] == "2013-04-01":  # Route53
        rest = segs[1:]
        if rest and rest[0] == "hostedzone":
            if len(rest) >= 3 and rest[2] == "rrset":
                return ("Change" if method == "POST" else "List") + "ResourceRecordSets"
            if len(rest) == 1:
                return "CreateHostedZone" if method == "POST" else "ListHostedZones"
            return {"GET": "GetHostedZone", "DELETE": "DeleteHostedZone",
                    "POST": "UpdateHostedZoneComment"}.get(method, method)
        if rest and rest[0] == "tags":
            if len(rest) == 2:  # POST /tags/hostedzone: many resources at once
                return "ListTagsForResources"
            return ("Change" if method == "POST" else "List") + "TagsForResource"
        if rest and rest[0] == "change":
            return "GetChange"
        return "Route53 " + method + " /" + "/".join(rest[:1])
    verb = S3_VERBS.get(method, method)
    if not segs:
        return "ListBuckets" if method == "GET" else "S3 " + method + " /"
    for key, name in S3_SUBRESOURCES.items():
        if key in query:
            if key == "versions":
                return "ListObjectVersions"
            if key == "delete":
                return "DeleteObjects"
            return verb + name
    if len(segs) == 1:
        return {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket",
                "GET": "ListObjects"}.get(method, "S3 " + method)
    return verb + "Object"


def action_of(path, body, content_type, method="POST", target=""):
    """The AWS action of a request: the query protocol's `Action=`, the JSON
    protocol's `X-Amz-Target` (ACM), or the REST path (S3, Route53)."""
    if target:
        return target.split(".")[-1]
    params = {}
    if body and (not content_type or "x-www-form-urlencoded" in content_type):
        try:
            params = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        except Exception:
            params = {}
    if "Action" not in params:
        query = urllib.parse.urlsplit(path).query
        params = urllib.parse.parse_qs(query)
    if "Action" in params:
        return params["Action"][0]
    return rest_action(method, path)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep client connections alive
    upstream = None  # (host, port), set in main()

    def log_message(self, fmt, *args):  # silence per-request logging
        pass

    def _upstream(self, fresh=False):
        conn = getattr(self, "_conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            host, port = self.upstream
            conn = http.client.HTTPConnection(host, port, timeout=120)
            self._conn = conn
        return conn

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    # trailers up to the blank line
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _control(self):
        what = self.path[len(CONTROL):].split("?")[0]
        if what == "counts":
            return self._reply(200, json.dumps(TALLY.snapshot()).encode())
        if what == "requests":
            return self._reply(200, json.dumps(TALLY.recorded()).encode())
        if what == "reset":
            TALLY.reset()
            return self._reply(200, b'{"reset": true}')
        return self._reply(404, b'{"error": "unknown control endpoint"}')

    def _forward(self):
        if self.path.startswith(CONTROL):
            self._read_body()
            return self._control()
        body = self._read_body()
        headers = {}
        for k, v in self.headers.items():
            if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                continue
            headers[k] = v
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        action = action_of(self.path, body, self.headers.get("Content-Type", ""),
                           self.command, self.headers.get("X-Amz-Target", ""))
        resp = None
        t0 = time.time()
        for attempt in range(2):
            # A kept-alive upstream connection may have been closed by moto;
            # retry once on a fresh one (the request never reached moto).
            try:
                conn = self._upstream(fresh=attempt > 0)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if attempt == 1:
                    raise
        TALLY.add(action, resp.status)
        # What a replay needs (moto checks no signature; the region is read
        # from the Authorization header's scope).
        keep = {k: v for k, v in headers.items()
                if k.lower() in ("content-type", "authorization", "x-amz-date", "x-amz-target")}
        TALLY.record({"action": action, "method": self.command, "path": self.path,
                      "headers": keep, "body": body.decode("utf-8", "replace"),
                      "status": resp.status, "response": data.decode("utf-8", "replace"),
                      "t0": t0, "t1": time.time()})
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                continue
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        if resp.getheader("Connection", "").lower() == "close":
            self._upstream(fresh=True)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

    def finish(self):
        try:
            super().finish()
        finally:
            conn = getattr(self, "_conn", None)
            if conn is not None:
                conn.close()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def summary_text(snap):
    lines = [f"count_proxy: {snap['total']} requests"]
    for action, n in snap["by_action"].items():
        lines.append(f"  {n:6d}  {action}")
    if snap["errors"]:
        lines.append("  errors: " + ", ".join(f"{k} x{v}" for k, v in snap["errors"].items()))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:5000")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--port-file")
    ap.add_argument("--summary-file")
    args = ap.parse_args()

    up = urllib.parse.urlsplit(args.upstream)
    Handler.upstream = (up.hostname, up.port or 80)
    host, port = args.listen.rsplit(":", 1)
    server = Server((host, int(port)), Handler)
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file, "w") as f:
            f.write(f"{port}\n")
    print(f"count_proxy listening on {host}:{port}", flush=True)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        snap = TALLY.snapshot()
        print(summary_text(snap), flush=True)
        if args.summary_file:
            with open(args.summary_file, "w") as f:
                json.dump(snap, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
