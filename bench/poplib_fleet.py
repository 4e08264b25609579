#!/usr/bin/env python3
"""The baseline of the exporter-scale scenario: the same mailbox checks as
pop3-exporter's probes, done by Python's standard poplib with nothing
around them: implicit TLS, USER/PASS, STAT, close (no QUIT), one thread a
session, each mailbox started at its fixed offset in the interval (as
Prometheus spreads its targets).

  poplib_fleet.py --port P --ca FILE --interval SECONDS < mailboxes.json

mailboxes.json: [["user", "password"], ...]. Prints one JSON object:
{"durations": [seconds per session, in mailbox order], "errors": [...],
"wall": seconds, "cpu": seconds of this process}.
"""
import argparse
import json
import poplib
import ssl
import sys
import threading
import time


def check(host, port, ctx, user, password):
    t0 = time.perf_counter()
    p = poplib.POP3_SSL(host, port, context=ctx, timeout=30)
    try:
        p.user(user)
        p.pass_(password)
        p.stat()
    finally:
        p.close()  # drops the connection, like the exporter: no QUIT
    return time.perf_counter() - t0


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--ca", required=True)
    a.add_argument("--interval", type=float, required=True)
    args = a.parse_args()
    boxes = json.load(sys.stdin)
    ctx = ssl.create_default_context(cafile=args.ca)
    durations = [None] * len(boxes)
    errors = []
    start = time.perf_counter()
    cpu0 = time.process_time()

    def run(i, user, password):
        delay = start + i * args.interval / len(boxes) - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            durations[i] = check(args.host, args.port, ctx, user, password)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            errors.append(f"{user}: {e!r}")

    threads = [threading.Thread(target=run, args=(i, u, p)) for i, (u, p) in enumerate(boxes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({
        "durations": durations,
        "errors": errors,
        "wall": time.perf_counter() - start,
        "cpu": time.process_time() - cpu0,
    }))


if __name__ == "__main__":
    main()
