#!/usr/bin/env python3
"""The baseline: Python's standard poplib, one command at a time (lockstep).

  poplib_baseline.py scan  [--host H] --port P --user U --password W [--limit K]
  poplib_baseline.py retr  [--host H] --port P --user U --password W [--ssl --ca FILE] [--ids 1-1000 | --ids 1] [--limit K]
  poplib_baseline.py rtt   [--host H] --port P

scan: LIST, UIDL, then TOP n 0 for every message (or the first K with
--limit), decoding From/To/Subject/Date/Message-ID of each header block, the
same result pop3-wasm's summaries() returns. retr: RETR of the given
messages (or the first K of them). Connecting and logging in are not timed.
Prints one JSON object: {"seconds", "listSeconds", "messages", "bytes",
"wireBytes"} (bytes: the LIST sizes of what was fetched; wireBytes: the
answers' octets on the wire, status lines and terminators included, for
scan also "listWireBytes", those of LIST and UIDL;
listSeconds: the part of "seconds" before the first TOP, 0 for retr). rtt:
the median time of 5 TCP connects, {"milliseconds"}.
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


def wire(answer):
    """Octets of a multi-line answer on the wire: status line, body, ".CRLF"."""
    resp, _, octets = answer
    return len(resp) + 2 + octets + 3


def scan(p, limit):
    parser = BytesHeaderParser(policy=compat32)
    t0 = time.perf_counter()
    listed = p.list()
    uidled = p.uidl()
    listing, uidls = listed[1], uidled[1]
    received = list_received = wire(listed) + wire(uidled)
    sizes = [tuple(int(x) for x in l.split()[:2]) for l in listing]
    uid = dict(l.split()[:2] for l in uidls)
    if limit:
        sizes = sizes[:limit]
    out = []
    t_list = time.perf_counter() - t0
    for n, size in sizes:
        answer = p.top(n, 0)
        received += wire(answer)
        lines = answer[1]
        h = parser.parsebytes(b"\r\n".join(lines))
        out.append((n, uid.get(str(n).encode()), size, h["from"], h["to"], h["subject"], h["date"], h["message-id"]))
    seconds = time.perf_counter() - t0
    assert out and out[0][5], "no subject decoded"
    return {"seconds": seconds, "listSeconds": t_list, "messages": len(out), "bytes": sum(s for _, s in sizes),
            "wireBytes": received, "listWireBytes": list_received}


def retr(p, ids, limit):
    sizes = {}
    for l in p.list()[1]:
        n, s = l.split()[:2]
        sizes[int(n)] = int(s)
    if limit:
        ids = ids[:limit]
    t0 = time.perf_counter()
    received = 0
    for n in ids:
        received += wire(p.retr(n))
    seconds = time.perf_counter() - t0
    assert received > 0
    return {"seconds": seconds, "listSeconds": 0, "messages": len(ids), "bytes": sum(sizes[n] for n in ids),
            "wireBytes": received}


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
