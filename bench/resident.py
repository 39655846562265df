#!/usr/bin/env python3
"""Resident cost of the extension: a simulated day of 60 s pack runs and 15 s
sampler passes, at an accelerated pace, over real Thrift.

Plays osquery's extension manager (tests/osquery_manager.py), starts the
extension with its osquery argv and a config whose sampler runs every
--interval seconds, starts a small bench/fixture.py (so every pack run has rows
and JOIN calls), then for each simulated minute runs the AN1256 pack query the
way osquery executes it: one `generate` of nonstandard_protocol_sockets, then per
row a `pid =` generate of process_code_signature and `identity =` generates of
an1256_baseline and an1256_observations (osquery calls the inner tables of a
JOIN once per outer row). Between pack runs it waits so that about four sampler
passes fall in each simulated minute.

Reports: sampler passes (counted from the extension's debug log, each with its
thread CPU), pack runs, Thrift calls, the extension's CPU (whole process, from
/proc), CPU per real hour at the real pace (240 passes + 60 pack runs), and RSS
sampled along the way (flat means within 5 MB from after the first simulated
hour to the end).

Usage: .venv/bin/python bench/resident.py --extension target/release/an1256
       [--hours 24] [--interval 0.05] [--procs 3]
"""
import argparse
import json
import logging
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import osquery_manager as om  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def constraint(name, affinity, value):
    return {"name": name, "affinity": affinity, "list": [{"op": 2, "expr": str(value)}]}


class Calls:
    def __init__(self, ext):
        self.ext = ext
        self.count = 0

    def generate(self, table, constraints=()):
        self.count += 1
        reply = om.extension_call(self.ext, "call", "table", table, {
            "action": "generate", "context": json.dumps({"constraints": list(constraints)})})
        if reply.status.code != 0:
            raise RuntimeError(f"{table}: {reply.status.message}")
        return reply.response or []


def pack_run(calls):
    """The pack's hit query as osquery runs it (outer scan, inner calls per row)."""
    rows = calls.generate("nonstandard_protocol_sockets")
    for row in rows:
        signature = calls.generate("process_code_signature",
                                   [constraint("pid", "INTEGER", row["pid"])])
        identity = signature[0].get("subject_identity", "") if signature else ""
        calls.generate("an1256_baseline", [constraint("identity", "TEXT", identity)])
        calls.generate("an1256_observations", [constraint("identity", "TEXT", identity)])
    return len(rows)


def main():
    logging.getLogger("thrift").setLevel(logging.CRITICAL)
    ap = argparse.ArgumentParser()
    ap.add_argument("--extension", required=True)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--interval", type=float, default=0.05,
                    help="seconds between sampler passes (15 s in production)")
    ap.add_argument("--procs", type=int, default=3, help="fixture processes (6 rows each)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="an1256-resident-")
    config = os.path.join(work, "config.json")
    with open(config, "w") as f:
        json.dump({"db_path": os.path.join(work, "an1256.db"),
                   "sample_interval_secs": args.interval}, f)
    os.environ["AN1256_CONFIG"] = config
    fixture = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "fixture.py"), "--procs", str(args.procs)],
        stdout=subprocess.PIPE, text=True)
    fixture.stdout.readline()
    socket_path = os.path.join(work, "osquery.em")
    handler = om.ManagerHandler()
    server = om.ManagerServer(socket_path, handler)
    process = om.launch(args.extension, socket_path, work, timeout=5, verbose=True)
    try:
        if not handler.registered.wait(om.REGISTER_TIMEOUT):
            raise SystemExit("bench: the extension did not register")
        uuid, _ = om.registration(handler)
        calls = Calls("%s.%d" % (socket_path, uuid))
        minute = 4 * args.interval
        pack_runs = 0
        rows = 0
        rss = []
        cpu_start = cpu_seconds(process.pid)
        wall_start = time.monotonic()
        for hour in range(args.hours):
            for _ in range(60):
                started = time.monotonic()
                rows += pack_run(calls)
                pack_runs += 1
                time.sleep(max(0.0, minute - (time.monotonic() - started)))
            rss.append((hour + 1, calls.count, rss_mb(process.pid)))
        wall = time.monotonic() - wall_start
        cpu = cpu_seconds(process.pid) - cpu_start
        alive = process.poll() is None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        server.stop()
        fixture.send_signal(signal.SIGTERM)
        fixture.wait(30)

    log = open(os.path.join(work, "extension.stderr"), encoding="utf-8", errors="replace").read()
    passes = [(int(w), int(c)) for w, c in
              re.findall(r"sampler pass: .*?(\d+) ms wall, (\d+) ms cpu", log)]
    pass_cpu = sum(c for _, c in passes) / 1000
    print(f"# bench/resident.py {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load average {os.getloadavg()[0]:.1f}; extension alive at the end: {alive}")
    print(f"simulated {args.hours} h in {wall:.0f} s: {pack_runs} pack runs "
          f"({rows / max(pack_runs, 1):.0f} rows each), {calls.count} Thrift calls, "
          f"{len(passes)} sampler passes (every {args.interval} s)")
    print(f"extension CPU {cpu:.1f} s: sampler passes {pass_cpu:.1f} s "
          f"(median {statistics.median(c for _, c in passes) if passes else 0} ms each), "
          f"pack runs and the rest {cpu - pass_cpu:.1f} s")
    per_pass = pass_cpu / max(len(passes), 1)
    per_pack = (cpu - pass_cpu) / max(pack_runs, 1)
    hourly = 240 * per_pass + 60 * per_pack
    print(f"at the real pace (240 passes + 60 pack runs an hour): {hourly:.2f} s CPU per hour "
          f"= {hourly / 3600 * 100:.3f} % of one core")
    print("RSS after each simulated hour (hour, calls so far, MB): "
          + ", ".join(f"{h}:{n}:{m:.1f}" for h, n, m in rss))
    steady = [m for _, _, m in rss[1:]] or [m for _, _, m in rss]
    print(f"RSS from hour 1 to the end: {min(steady):.1f}-{max(steady):.1f} MB "
          f"(spread {max(steady) - min(steady):.1f} MB over {calls.count - rss[0][1]} calls; "
          f"target: within 5 MB over 10,000)")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
