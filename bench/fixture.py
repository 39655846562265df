#!/usr/bin/env python3
"""Benchmark fixtures: hosts that look busy.

Starts PROCS child processes, each holding the same set of descriptors (a
profile), prints one line `ready <pid,pid,...>` when every child is set up, then
waits until it is killed (SIGTERM/SIGINT kill the children too). A summary line
(`# ...`) goes to stderr.

Profiles (per child process):
  standard   200 processes: 4 UDP (2 IPv4, 2 IPv6, bound), 3 TCP (a listener and
             a connected pair), 1-2 ICMP ping, a raw socket in every other
             process (root only), 20 other fds (/dev/null, UNIX socket pairs).
  tcp-heavy  500 processes: a listener and 10 connected pairs (20 TCP
             connections each), nothing else.
  scale      5,000 processes, 100,000 fds: 2 UDP, 1 ping, 1 TCP pair and 15
             other fds each; each child then execs `sleep` holding them (a
             forked Python costs ~1 MB of private memory, sleep a tenth of that).
             RLIMIT_NOFILE is raised to its hard limit.

Usage: bench/fixture.py [--profile standard|tcp-heavy|scale] [--procs N]
"""
import argparse
import os
import resource
import signal
import socket
import sys
import time

PROFILES = {
    # name: (processes, udp, tcp_pairs, listener, ping, raw_every, other_fds, exec_sleep)
    "standard": (200, 4, 1, True, 2, 2, 20, False),
    "tcp-heavy": (500, 0, 10, True, 0, 0, 0, False),
    "scale": (5000, 2, 1, False, 1, 0, 15, True),
}


def tcp_pair(listener):
    """A connected TCP pair through `listener` (client side, accepted side)."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect(listener.getsockname())
    accepted, _ = listener.accept()
    return [client, accepted]


def child(index, spec, can_raw, can_ping):
    _, udp, tcp_pairs, keep_listener, ping, raw_every, other, _ = spec
    held = []
    for i in range(udp):
        if i % 2 == 0:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
        else:
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.bind(("::1", 0))
        held.append(s)
    if tcp_pairs or keep_listener:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(max(1, tcp_pairs))
        for _ in range(tcp_pairs):
            held.extend(tcp_pair(listener))
        if keep_listener:
            held.append(listener)
        else:
            listener.close()
    if can_ping:
        # 1-2 ping sockets: the standard profile alternates.
        for _ in range(ping if ping < 2 else 1 + index % 2):
            held.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP))
    if can_raw and raw_every and index % raw_every == 0:
        held.append(socket.socket(socket.AF_INET, socket.SOCK_RAW, 255))
    while other > 0:
        if other >= 2 and other % 4 == 0:
            held.extend(socket.socketpair())
            other -= 2
        else:
            held.append(open("/dev/null", "rb"))
            other -= 1
    return held


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", choices=sorted(PROFILES), default="standard")
    ap.add_argument("--procs", type=int, help="override the profile's process count")
    args = ap.parse_args()
    spec = PROFILES[args.profile]
    procs = args.procs or spec[0]

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    can_raw = os.geteuid() == 0
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
        can_ping = True
    except OSError:
        can_ping = False

    r, w = os.pipe()
    pids = []
    for index in range(procs):
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0
            try:
                held = child(index, spec, can_raw, can_ping)
                os.write(w, b"x")
                os.close(w)
                if spec[7]:
                    for obj in held:
                        os.set_inheritable(obj.fileno(), True)
                    os.execv("/bin/sleep", ["sleep", "infinity"])
                signal.pause()
                del held
            except BaseException as e:  # a child that cannot set up says so
                print(f"fixture child {index}: {e}", file=sys.stderr, flush=True)
                code = 1
            finally:
                os._exit(code)
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
    deadline = time.time() + 300
    while got < procs and time.time() < deadline:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        got += len(chunk)
    fds = sum(len(os.listdir(f"/proc/{p}/fd")) for p in pids[:50]) * procs // min(procs, 50)
    print("ready " + ",".join(map(str, pids)), flush=True)
    print(f"# profile {args.profile}: {got}/{procs} processes ready, ~{fds} fds "
          f"(raw: {can_raw}, ping: {can_ping})", file=sys.stderr, flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
