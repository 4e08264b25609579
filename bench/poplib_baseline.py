#!/usr/bin/env python3
"""The baseline: Python's standard poplib, one command at a time (lockstep).

  poplib_baseline.py scan  [--host H] --port P --user U --password W [--limit K]
  poplib_baseline.py retr  [--host H] --port P --user U --password W [--ssl --ca FILE] [--ids 1-1000 | --ids 1] [--limit K]
  poplib_baseline.py rtt   [--host H] --port P

scan: LIST, UIDL, then TOP n 0 for every message (or the first K with
--limit), decoding From/To/Subject/Date/Message-ID of each header block, the
same result pop3-wasm's summaries() returns. retr: RETR of the given
messages (or the first K of them). Connecting and logging in are not timed.
Prints one JSON object: {"seconds", "listSeconds", "messages", "bytes"}
(bytes: the LIST sizes of what was fetched; listSeconds: the part of
"seconds" before the first TOP, 0 for retr). rtt: the median time of 5 TCP
connects, {"milliseconds"}.
"""
import argparse
import json
import poplib
import socket
import ssl
import sys
import time
from email.parser import BytesHeaderParser
from email.policy import compat32


def connect(a):
    if a.ssl:
        ctx = ssl.create_default_context(cafile=a.ca)
        p = poplib.POP3_SSL(a.host, a.port, context=ctx, timeout=600)
    else:
        p = poplib.POP3(a.host, a.port, timeout=600)
    p.user(a.user)
    p.pass_(a.password)
    return p


def ids_arg(s):
    if "-" in s:
        lo, hi = s.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(x) for x in s.split(",")]


def scan(p, limit):
    parser = BytesHeaderParser(policy=compat32)
    t0 = time.perf_counter()
    _, listing, _ = p.list()
    _, uidls, _ = p.uidl()
    sizes = [tuple(int(x) for x in l.split()[:2]) for l in listing]
    uid = dict(l.split()[:2] for l in uidls)
    if limit:
        sizes = sizes[:limit]
    out = []
    t_list = time.perf_counter() - t0
    for n, size in sizes:
        _, lines, _ = p.top(n, 0)
        h = parser.parsebytes(b"\r\n".join(lines))
        out.append((n, uid.get(str(n).encode()), size, h["from"], h["to"], h["subject"], h["date"], h["message-id"]))
    seconds = time.perf_counter() - t0
    assert out and out[0][5], "no subject decoded"
    return {"seconds": seconds, "listSeconds": t_list, "messages": len(out), "bytes": sum(s for _, s in sizes)}


def retr(p, ids, limit):
    sizes = {}
    for l in p.list()[1]:
        n, s = l.split()[:2]
        sizes[int(n)] = int(s)
    if limit:
        ids = ids[:limit]
    t0 = time.perf_counter()
    got = 0
    for n in ids:
        _, lines, octets = p.retr(n)
        got += octets
    seconds = time.perf_counter() - t0
    assert got > 0
    return {"seconds": seconds, "listSeconds": 0, "messages": len(ids), "bytes": sum(sizes[n] for n in ids)}


def rtt(a):
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        socket.create_connection((a.host, a.port), timeout=60).close()
        times.append((time.perf_counter() - t0) * 1000)
    return {"milliseconds": sorted(times)[2]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["scan", "retr", "rtt"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--ssl", action="store_true")
    ap.add_argument("--ca")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--ids", default="1")
    a = ap.parse_args()
    if a.mode == "rtt":
        r = rtt(a)
    else:
        p = connect(a)
        r = scan(p, a.limit) if a.mode == "scan" else retr(p, ids_arg(a.ids), a.limit)
        p.quit()
    json.dump(r, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
