#!/usr/bin/env python3
"""Benchmark fixture: a host that looks busy.

Starts PROCS processes that together hold about SOCKETS inet sockets (UDP, ICMP
ping, raw when root, TCP) plus unix sockets and enough other fds to reach about
FDS descriptors in all. Prints one line `ready <pid,pid,...>` when every child
is set up, then waits until it is killed (SIGTERM/SIGINT kill the children too).

Usage: bench/fixture.py [--procs 200] [--sockets 2000] [--fds 7000]
"""
import argparse
import os
import signal
import socket
import sys
import time


def child(n_sockets, n_fds, can_raw, can_ping, ready_w):
    held = []
    kinds = ["udp", "udp6", "ping", "raw", "tcp", "unix"]
    i = 0
    while len(held) < n_sockets:
        kind = kinds[i % len(kinds)]
        i += 1
        try:
            if kind == "udp":
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", 0))
            elif kind == "udp6":
                s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                s.bind(("::1", 0))
            elif kind == "ping":
                if not can_ping:
                    continue
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
            elif kind == "raw":
                if not can_raw:
                    continue
                s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 255)
            elif kind == "tcp":
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.1", 0))
                s.listen(1)
            else:
                s, peer = socket.socketpair()
                held.append(peer)
        except OSError:
            continue
        held.append(s)
    while len(held) < n_fds:
        held.append(open("/dev/null", "rb"))
    os.write(ready_w, b"x")
    os.close(ready_w)
    signal.pause()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=200)
    ap.add_argument("--sockets", type=int, default=2000)
    ap.add_argument("--fds", type=int, default=7000)
    args = ap.parse_args()

    can_raw = os.geteuid() == 0
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
        can_ping = True
    except OSError:
        can_ping = False

    per_sockets = max(1, args.sockets // args.procs)
    per_fds = max(per_sockets, args.fds // args.procs)
    r, w = os.pipe()
    pids = []
    for _ in range(args.procs):
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                child(per_sockets, per_fds, can_raw, can_ping, w)
            finally:
                os._exit(0)
        pids.append(pid)
    os.close(w)

    def stop(*_):
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    got = 0
    deadline = time.time() + 120
    while got < args.procs and time.time() < deadline:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        got += len(chunk)
    print("ready " + ",".join(map(str, pids)), flush=True)
    print(f"# {args.procs} processes, ~{per_sockets * args.procs} sockets, ~{per_fds * args.procs} fds "
          f"(raw: {can_raw}, ping: {can_ping})", file=sys.stderr, flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
