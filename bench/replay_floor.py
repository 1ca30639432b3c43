#!/usr/bin/env python3
"""The moto floor: replay the exact requests a client sent (recorded by
bench/count_proxy.py, `GET /__count_proxy__/requests`) against a freshly
reset moto with a raw HTTP client, and time it. No client can create the
same resources with the same calls faster than moto answers them, so this
wall time is the floor an apply is measured against.

Ids AWS assigned in the recording (vpc-..., sg-..., subnet-...) differ in
the replay: each id in a recorded answer is mapped to the id at the same
place in the replay's answer, and later request bodies are rewritten with
the new ids. A request that names an id an earlier answer made waits until
that answer is in (as the client waited for it), so at any concurrency the
replay keeps the recording's dependencies: the VPC before its groups, a
group's create before its revoke. moto checks no signature, so the recorded
form bodies and headers replay as they are.

Python standard library only.

Usage:
    replay_floor.py --moto http://127.0.0.1:PORT --requests FILE.json
                    --concurrency N [N ...] [--rounds R]
Prints one line per concurrency and round, then a JSON line
{"floor": best seconds, "by_concurrency": {N: best}, "calls": n,
 "recorded_overlap": the most requests the recording had in flight at once}.
Resets moto (POST /moto-api/reset) before every replay.
"""

import argparse
import http.client
import json
import re
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

ID = re.compile(r"\b(?:vpc|sg|subnet|igw|rtb|eipalloc|sgr|i|key|acl|eni|vol)-[0-9a-f]{8,17}\b")


def ids_in(text):
    return ID.findall(text)


def max_overlap(reqs):
    events = sorted([(r["t0"], 1) for r in reqs] + [(r["t1"], -1) for r in reqs])
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def reset(host, port):
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.request("POST", "/moto-api/reset")
    c.getresponse().read()
    c.close()


class Replay:
    def __init__(self, host, port, reqs):
        self.host, self.port, self.reqs = host, port, reqs
        self.lock = threading.Condition()
        self.mapped = {}  # recorded id -> replayed id
        # ids each recorded answer made, and which request made each id
        self.made_by = {}
        sent = set()
        for i, r in enumerate(reqs):
            sent.update(ids_in(r["body"]))
            for old in ids_in(r["response"]):
                if old not in self.made_by and old not in sent:
                    self.made_by[old] = i
        self.failures = []
        self.resent = 0
        self.dead = set()  # recorded ids whose request failed in the replay

    def body_for(self, r, i):
        body = r["body"]
        needed = [old for old in set(ids_in(body)) if self.made_by.get(old, i) < i]
        with self.lock:
            self.lock.wait_for(
                lambda: all(o in self.mapped or o in self.dead for o in needed), timeout=120)
            lost = [o for o in needed if o not in self.mapped]
            if lost:
                raise RuntimeError(f"{r['action']} names {lost}, which the replay did not make")
            for old in needed:
                body = body.replace(old, self.mapped[old])
        return body

    def send(self, i):
        r = self.reqs[i]
        body = self.body_for(r, i)
        headers = dict(r["headers"])
        headers["Content-Length"] = str(len(body.encode()))
        # moto is not thread-safe: under concurrency it sometimes answers
        # 500 where the recording had 200; such a call is sent again (at
        # most twice, counted), as an SDK would.
        for attempt in range(3):
            c = http.client.HTTPConnection(self.host, self.port, timeout=120)
            c.request(r["method"], r["path"], body=body.encode(), headers=headers)
            resp = c.getresponse()
            data = resp.read().decode("utf-8", "replace")
            c.close()
            if resp.status == r["status"] or resp.status < 500:
                break
            with self.lock:
                self.resent += 1
        if resp.status != r["status"]:
            with self.lock:
                self.failures.append(f"{r['action']}: {resp.status} (recorded {r['status']}): "
                                     f"{data[:200]}")
                self.dead.update(o for o, i2 in self.made_by.items() if i2 == i)
                self.lock.notify_all()
            return
        old_ids = list(dict.fromkeys(o for o in ids_in(r["response"]) if self.made_by.get(o) == i))
        new_ids = ids_in(data)
        with self.lock:
            taken = set(self.mapped.values())
            for old in old_ids:
                new = next((n for n in new_ids if n.split("-")[0] == old.split("-")[0]
                            and n not in taken), None)
                if new:
                    self.mapped[old] = new
                    taken.add(new)
            self.lock.notify_all()

    def run(self, concurrency):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            # In recorded order: a request is only taken once every earlier
            # one has been taken, so waiting on an id never starves the pool
            # of the request that makes it.
            list(pool.map(self.send, range(len(self.reqs))))
        return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moto", required=True)
    ap.add_argument("--requests", required=True)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    u = urllib.parse.urlsplit(args.moto)
    reqs = json.load(open(args.requests))
    by = {}
    for rnd in range(1, args.rounds + 1):
        for n in args.concurrency:
            reset(u.hostname, u.port)
            rp = Replay(u.hostname, u.port, reqs)
            secs = rp.run(n)
            if rp.failures:
                print(f"replay concurrency {n}: {len(rp.failures)} answers differ from the "
                      f"recording, e.g. {rp.failures[:3]}", file=sys.stderr)
                sys.exit(1)
            print(f"replay round {rnd} concurrency {n}: {len(reqs)} calls in {secs:.3f}s"
                  f" ({rp.resent} resent after a moto 5xx)")
            by[n] = min(by.get(n, secs), secs)
    print(json.dumps({"floor": round(min(by.values()), 3),
                      "by_concurrency": {str(k): round(v, 3) for k, v in by.items()},
                      "calls": len(reqs), "recorded_overlap": max_overlap(reqs)}))


if __name__ == "__main__":
    main()
