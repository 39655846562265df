#!/usr/bin/env python3
"""Paired benchmark of an1256 against ss(8) and lsof(8) on the fixtures of
bench/fixture.py (run by bench/run, which builds the release binary first).

For each fixture profile: start it, then run every case once per round, in turn,
for N rounds, so the shared machine's drift hits every tool alike. Each run is
timed (wall) and charged (CPU: user + system from wait4's rusage, the fairer
figure on a loaded machine) and its peak RSS recorded. A ratio is the median of
the per-round ratios (paired), with its quartiles.

Usage: bench/compare.py BINARY [--rounds N] [--profiles standard,tcp-heavy,scale]
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    """(wall ms, CPU ms, peak RSS KiB) of one run of cmd. The peak comes from GNU
    time, a small C program that forks the command: a child forked from this
    Python would carry Python's RSS into its peak (the high-water mark survives
    exec). CPU is wait4's (the command's, and time's own fraction of a ms)."""
    with tempfile.NamedTemporaryFile("r") as report:
        started = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", report.name, *cmd],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(proc.pid, 0)
        wall = (time.perf_counter() - started) * 1000
        peak = int(report.read().split()[-1])
    return wall, (usage.ru_utime + usage.ru_stime) * 1000, peak


def host_counts():
    """(processes, fds, inet sockets by /proc/net) on the host now."""
    procs = fds = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fds += len(os.listdir(f"/proc/{name}/fd"))
            procs += 1
        except OSError:
            pass
    return procs, fds


def start_fixture(profile):
    fixture = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "fixture.py"), "--profile", profile],
        stdout=subprocess.PIPE, text=True)
    line = fixture.stdout.readline().split()
    if not line or line[0] != "ready":
        fixture.kill()
        raise SystemExit(f"bench: fixture {profile} did not start")
    return fixture, line[1].split(",")


def stop_fixture(fixture):
    fixture.send_signal(signal.SIGTERM)
    try:
        fixture.wait(60)
    except subprocess.TimeoutExpired:
        fixture.kill()


def before_cases(before, pid):
    """The same CLI cases with another build (`--before`), for paired before/after."""
    if not before:
        return []
    query = lambda sql: [before, "query", sql]
    return [
        ("before: full scan", query("SELECT count(*) FROM nonstandard_protocol_sockets")),
        ("before: pid = lookup",
         query(f"SELECT count(*) FROM nonstandard_protocol_sockets WHERE pid = {pid}")),
        ("before: signature pid =",
         query(f"SELECT trust FROM process_code_signature WHERE pid = {pid}")),
        ("before: scan (hit query)", [before, "scan", "--json"]),
    ]


def cases_for(profile, binary, pid):
    query = lambda sql: [binary, "query", sql]
    full = ("an1256 full scan", query("SELECT count(*) FROM nonstandard_protocol_sockets"))
    ss_u = ("ss -uapn", ["ss", "-uapn"])
    ss_t = ("ss -tapn", ["ss", "-tapn"])
    by_pid = ("an1256 pid = lookup",
              query(f"SELECT count(*) FROM nonstandard_protocol_sockets WHERE pid = {pid}"))
    if profile == "standard":
        return [
            full,
            ("an1256 udp only",
             query("SELECT count(*) FROM nonstandard_protocol_sockets WHERE protocol_name = 'udp'")),
            ss_u, ss_t, ("ss -wapn", ["ss", "-wapn"]), ("lsof -nP -i", ["lsof", "-nP", "-i"]),
            by_pid,
            ("an1256 signature pid =",
             query(f"SELECT trust FROM process_code_signature WHERE pid = {pid}")),
            ("an1256 scan (hit query)", [binary, "scan", "--json"]),
        ]
    if profile == "tcp-heavy":
        return [full, ss_u, ss_t, by_pid]
    return [full, ss_u, ss_t]


def bench(profile, binary, rounds, before=None):
    fixture, pids = start_fixture(profile)
    try:
        procs, fds = host_counts()
        cases = cases_for(profile, binary, pids[0])
        if profile == "standard":
            cases += before_cases(before, pids[0])
        for _, cmd in cases:  # warms the page cache
            run(cmd)
        results = {name: [] for name, _ in cases}
        for _ in range(rounds):
            for name, cmd in cases:
                results[name].append(run(cmd))
        rows = subprocess.run(
            [binary, "query", "SELECT count(*) AS n FROM nonstandard_protocol_sockets"],
            capture_output=True, text=True).stdout.split()
    finally:
        stop_fixture(fixture)

    print(f"\n## {profile}: {len(pids)} fixture processes; host {procs} processes, "
          f"{fds} fds; an1256 full scan rows: {rows[-1] if rows else '?'}; {rounds} rounds")
    print(f"{'case':26s} {'wall ms':>9s} {'CPU ms':>8s} {'peak RSS':>9s}")
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rss = max(r[2] for r in runs) / 1024
        print(f"{name:26s} {wall:9.1f} {cpu:8.1f} {rss:7.1f} MB")

    def ratio(num, den, field):
        per_round = [results[num][i][field] / max(results[den][i][field], 1e-9)
                     for i in range(rounds)]
        if len(per_round) < 2:
            return f"{per_round[0]:.2f}"
        q = statistics.quantiles(per_round, n=4)
        return f"{statistics.median(per_round):.2f} ({q[0]:.2f}-{q[2]:.2f})"

    print("paired ratios, median (quartiles):        wall               CPU")
    for den in ("ss -uapn", "ss -tapn"):
        print(f"  full scan / {den:29s} {ratio('an1256 full scan', den, 0):18s} "
              f"{ratio('an1256 full scan', den, 1)}")
    if "an1256 udp only" in results:
        print(f"  udp only / ss -uapn (like for like)       {ratio('an1256 udp only', 'ss -uapn', 0):18s} "
              f"{ratio('an1256 udp only', 'ss -uapn', 1)}")
    for name in [n for n in results if n.startswith("before: ")]:
        now = "an1256 " + name[len("before: "):]
        print(f"  {now[7:]:22s} this build / before:    {ratio(now, name, 0):18s} {ratio(now, name, 1)}")
    cpu = statistics.median(r[1] for r in results["an1256 full scan"])
    print(f"  full scan CPU per 1,000 fds: {cpu / max(fds, 1) * 1000:.2f} ms; "
          f"per process: {cpu / max(procs, 1) * 1000:.0f} us")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--profiles", default="standard,tcp-heavy,scale")
    ap.add_argument("--before", help="another an1256 build, timed beside this one")
    args = ap.parse_args()
    load = os.getloadavg()
    print(f"# bench/run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} CPUs")
    for profile in args.profiles.split(","):
        # The largest fixture is slow to start and to walk: fewer rounds.
        rounds = args.rounds if profile != "scale" else max(3, args.rounds // 4)
        bench(profile, args.binary, rounds, args.before)


if __name__ == "__main__":
    main()
