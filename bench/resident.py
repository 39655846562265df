#!/usr/bin/env python3
"""Resident cost of the extension, over real Thrift, in two runs.

Plays osquery's extension manager (tests/osquery_manager.py), starts a small
bench/fixture.py (so every pack run has rows and JOIN calls) and the extension
with its osquery argv and its own config and store.

1. The real pace (15 s sampler passes): CPU per second without calls (passes, the
   1 s watch of untrusted processes, pings), then --pack-runs pack runs back to
   back. A pack run is the AN1256 pack query as osquery executes it: one
   `generate` of nonstandard_protocol_sockets, then per row a `pid =` generate of
   process_code_signature and `identity =` generates of an1256_baseline and
   an1256_observations (osquery calls a JOIN's inner tables once per outer row).
   An hour = 3,600 s of the first + 60 pack runs.
2. A simulated day at an accelerated pace: sampler passes every --interval s and
   a pack run every four intervals, 24 x 60 pack runs; RSS after each simulated
   hour (flat: within 5 MB from the first hour to the end, over 10,000+ calls).

Usage: .venv/bin/python bench/resident.py --extension target/release/an1256
       [--hours 24] [--interval 0.05] [--procs 2] [--idle 60] [--pack-runs 100]
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


def sampler_passes(log_path):
    """(wall ms, CPU ms) of every sampler pass the extension logged so far."""
    with open(log_path, encoding="utf-8", errors="replace") as f:
        log = f.read()
    return [(int(w), int(c)) for w, c in
            re.findall(r"sampler pass: .*?(\d+) ms wall, (\d+) ms cpu", log)]


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


class Extension:
    """The extension under a manager played here, with its own config and store."""

    def __init__(self, binary, work, interval, watch=True):
        self.work = work
        config = os.path.join(work, "config.json")
        with open(config, "w") as f:
            json.dump({"db_path": os.path.join(work, "an1256.db"),
                       "sample_interval_secs": interval, "watch": watch}, f)
        os.environ["AN1256_CONFIG"] = config
        self.socket = os.path.join(work, "osquery.em")
        self.handler = om.ManagerHandler()
        self.server = om.ManagerServer(self.socket, self.handler)
        self.process = om.launch(binary, self.socket, work, timeout=5, verbose=True)
        if not self.handler.registered.wait(om.REGISTER_TIMEOUT):
            self.stop()
            raise SystemExit("bench: the extension did not register")
        uuid, _ = om.registration(self.handler)
        self.calls = Calls("%s.%d" % (self.socket, uuid))
        self.log = os.path.join(work, "extension.stderr")

    def cpu(self):
        return cpu_seconds(self.process.pid)

    def rss(self):
        return rss_mb(self.process.pid)

    def stop(self):
        alive = self.process.poll() is None
        if alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.server.stop()
        return alive


def main():
    logging.getLogger("thrift").setLevel(logging.CRITICAL)
    ap = argparse.ArgumentParser()
    ap.add_argument("--extension", required=True)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--interval", type=float, default=0.05,
                    help="seconds between sampler passes in the simulated day (15 s in production)")
    ap.add_argument("--procs", type=int, default=2, help="fixture processes (6 rows each)")
    ap.add_argument("--idle", type=float, default=60,
                    help="seconds at the real pace without calls (15 s passes, watch, pings)")
    ap.add_argument("--pack-runs", type=int, default=100,
                    help="pack runs timed back to back at the real sampler pace")
    ap.add_argument("--no-watch", action="store_true",
                    help="turn the 1 s watch of untrusted processes off (its share of the cost)")
    args = ap.parse_args()
    fixture = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "fixture.py"), "--procs", str(args.procs)],
        stdout=subprocess.PIPE, text=True)
    fixture.stdout.readline()
    try:
        # 1. The real pace: what an hour costs (passes every 15 s, the watch,
        # pings), then what a pack run adds on top.
        real = Extension(args.extension, tempfile.mkdtemp(prefix="an1256-resident-"), 15,
                         not args.no_watch)
        try:
            time.sleep(2)  # the first pass (cold caches) is not the steady state
            cpu0, t0 = real.cpu(), time.monotonic()
            time.sleep(args.idle)
            base_rate = (real.cpu() - cpu0) / (time.monotonic() - t0)
            cpu0, t0 = real.cpu(), time.monotonic()
            rows = sum(pack_run(real.calls) for _ in range(args.pack_runs))
            wall = time.monotonic() - t0
            per_pack = max(0.0, real.cpu() - cpu0 - base_rate * wall) / args.pack_runs
        finally:
            real.stop()
        hourly = base_rate * 3600 + 60 * per_pack

        # 2. A simulated day: passes every --interval s, a pack run every four.
        day = Extension(args.extension, tempfile.mkdtemp(prefix="an1256-resident-"),
                        args.interval, not args.no_watch)
        try:
            minute = 4 * args.interval
            rss = []
            cpu0, t0 = day.cpu(), time.monotonic()
            for hour in range(args.hours):
                for _ in range(60):
                    started = time.monotonic()
                    pack_run(day.calls)
                    time.sleep(max(0.0, minute - (time.monotonic() - started)))
                rss.append((hour + 1, day.calls.count, day.rss()))
            day_wall = time.monotonic() - t0
            day_cpu = day.cpu() - cpu0
            passes = len(sampler_passes(day.log))
        finally:
            alive = day.stop()
    finally:
        fixture.send_signal(signal.SIGTERM)
        fixture.wait(30)

    print(f"# bench/resident.py {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load average {os.getloadavg()[0]:.1f}; fixture: {args.procs} processes, "
          f"{rows / max(args.pack_runs, 1):.0f} rows per pack run")
    print(f"real pace: {base_rate * 1000:.2f} ms CPU per second without calls (15 s passes, "
          f"watch, pings); a pack run adds {per_pack * 1000:.1f} ms")
    print(f"an hour (240 passes + 60 pack runs): {hourly:.2f} s CPU = "
          f"{hourly / 3600 * 100:.3f} % of one core")
    print(f"simulated day: {args.hours} h in {day_wall:.0f} s, {args.hours * 60} pack runs, "
          f"{day.calls.count} Thrift calls, {passes} sampler passes, {day_cpu:.1f} s CPU; "
          f"extension alive at the end: {alive}")
    print("RSS after each simulated hour (hour:calls:MB): "
          + " ".join(f"{h}:{n}:{m:.1f}" for h, n, m in rss))
    steady = [m for _, _, m in rss[1:]] or [m for _, _, m in rss]
    if not steady:
        return 0 if alive else 1
    print(f"RSS from hour 1 to the end: {min(steady):.1f}-{max(steady):.1f} MB "
          f"(spread {max(steady) - min(steady):.1f} MB over {day.calls.count - rss[0][1]} calls; "
          f"target: within 5 MB over 10,000)")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
