#!/usr/bin/env python3
"""The benchmark's slow link: two network namespaces joined by a pair of TUN
devices, every IP packet delayed on its way across (this kernel has no
`tc netem`).

  tun-delay.py CLIENT_NS SERVER_NS DEV DELAY_MS

Creates a TUN device named DEV in each namespace (/run/netns/NAME, made by
`ip netns add`), prints "ready" once both exist, then copies every packet
read from one device into the other DELAY_MS later (half the round-trip
time: the same delay each way), in the order it came. Nothing else is
changed: no bandwidth limit, no loss, no reordering. The devices are not
persistent: they go away with this process. The caller gives them their
addresses and brings them up (bench/slow-link.mjs).

Reads commands from stdin, one a line: "delay MS" changes the delay for the
packets read from then on. Exits when stdin closes (its parent is gone).
"""
import collections
import ctypes
import fcntl
import os
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000

libc = ctypes.CDLL(None, use_errno=True)


def enter(ns):
    """Moves this (single-threaded) process into network namespace `ns`."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


def tun(name):
    """A TUN device `name` (IP packets, no extra header) in the current namespace."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    client_ns, server_ns, dev, delay_ms = sys.argv[1:5]
    delay = float(delay_ms) / 1000
    enter(client_ns)
    a = tun(dev)
    enter(server_ns)
    b = tun(dev)
    # Each queue holds (due, packet) for the other device, in arrival order;
    # one delay for all, so the head is always due first.
    to = {a: collections.deque(), b: collections.deque()}
    other = {a: b, b: a}
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    pending = b""
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        now = time.monotonic()
        due = None
        for dst, q in to.items():
            while q and q[0][0] <= now:
                try:
                    os.write(dst, q.popleft()[1])
                except OSError:
                    # EIO: that side is not up yet (IPv6 chatter while the
                    # caller configures it); EAGAIN: its backlog is full.
                    # Dropped, as a link would.
                    pass
            if q and (due is None or q[0][0] < due):
                due = q[0][0]
        timeout = None if due is None else max(0.0, due - time.monotonic())
        readable, _, _ = select.select([a, b, stdin], [], [], timeout)
        for fd in readable:
            if fd == stdin:
                data = os.read(stdin, 4096)
                if not data:
                    return
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    words = line.split()
                    if len(words) == 2 and words[0] == b"delay":
                        delay = float(words[1]) / 1000
                        sys.stdout.write("ok\n")
                        sys.stdout.flush()
                continue
            q = to[other[fd]]
            while True:
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                q.append((time.monotonic() + delay, packet))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
