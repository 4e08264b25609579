#!/usr/bin/env python3
"""The slow link's floor: how long the link takes to deliver N bytes in
answer to one request on a fresh TCP connection (slow start included), with
no protocol on top. No POP3 client can fetch the same bytes faster.

  tcp-floor.py serve ADDR          prints {"port": N}; per connection reads an
                                   8-byte big-endian count and sends that many
                                   bytes; runs until stdin closes
  tcp-floor.py fetch HOST PORT BYTES REPS
                                   per repetition: connect (not timed), send the
                                   count, time until the last byte; prints
                                   {"seconds": [...]}
"""
import json
import os
import select
import socket
import struct
import sys
import threading
import time

CHUNK = b"x" * 65536


def serve(addr):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, 0))
    srv.listen()
    print(json.dumps({"port": srv.getsockname()[1]}), flush=True)

    def one(c):
        with c:
            head = b""
            while len(head) < 8:
                d = c.recv(8 - len(head))
                if not d:
                    return
                head += d
            (n,) = struct.unpack(">Q", head)
            while n > 0:
                k = min(n, len(CHUNK))
                c.sendall(CHUNK[:k])
                n -= k
            c.recv(1)  # until the client closes

    while True:
        r, _, _ = select.select([srv, sys.stdin], [], [])
        if sys.stdin in r and not os.read(sys.stdin.fileno(), 4096):
            return
        if srv in r:
            c, _ = srv.accept()
            threading.Thread(target=one, args=(c,), daemon=True).start()


def fetch(host, port, n, reps):
    seconds = []
    for _ in range(reps):
        with socket.create_connection((host, port), timeout=300) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t0 = time.perf_counter()
            s.sendall(struct.pack(">Q", n))
            got = 0
            while got < n:
                d = s.recv(1 << 20)
                if not d:
                    raise SystemExit(f"closed after {got} of {n} bytes")
                got += len(d)
            seconds.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        fetch(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
