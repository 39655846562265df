#!/usr/bin/env python3
"""Plays osquery's extension manager for tests/thrift_roundtrip.rs.

Serves osquery's ExtensionManager Thrift interface on a Unix socket the way
osqueryd does (TBufferedTransport + TBinaryProtocol, one thread per connection),
launches the extension with osquery's argv and environment, then talks to it as
osquery would: a new connection to `<socket>.<uuid>` per call. It records what
it saw and prints one JSON object on stdout; the Rust test asserts on it.

Uses osquery's generated Python Thrift code from the PyPI `osquery` package
(run `scripts/setup-test-venv`, then `.venv/bin/python tests/osquery_manager.py`).

Scenarios:
  roundtrip  register, columns, generate (pid constraint), malformed context,
             then the manager goes away: the extension must exit by itself.
  sigterm    register, then SIGTERM: the extension must deregister and exit 0.
  shutdown_rpc  register, then osquery's Extension.shutdown() call: same.
  refused    the manager refuses the registration (as osquery does for a table
             name another extension owns): the extension must exit non-zero.
  duplicate  an an1256 is already registered: the extension must not register
             a second copy and must exit non-zero.
  hang       register, then the manager accepts calls but answers none (a hung
             osqueryd): the extension must notice and exit non-zero by itself.
"""

import argparse
import json
import logging
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

from osquery.extensions import Extension, ExtensionManager
from osquery.extensions.ttypes import (
    ExtensionResponse,
    ExtensionStatus,
    InternalExtensionInfo,
)
from thrift.protocol import TBinaryProtocol
from thrift.transport import TSocket, TTransport

# Every wait below is bounded; the Rust test also bounds the whole script.
REGISTER_TIMEOUT = 15.0
CONNECT_TIMEOUT = 5.0
EXIT_TIMEOUT = 10.0


class ManagerHandler(ExtensionManager.Iface):
    """osquery's side of the protocol, recording what the extension does."""

    def __init__(self):
        self.lock = threading.Lock()
        self.registered = threading.Event()
        self.extensions_by_uuid = {}
        self.registries = {}
        self.deregistered = []
        self.pings = 0
        self.refuse = False
        self.register_calls = 0
        self.hung = threading.Event()
        self.released = threading.Event()

    def _answer(self):
        """While hung, a call is accepted but not answered (until released)."""
        if self.hung.is_set():
            self.released.wait(120)

    # Extension interface (osquery's manager is also an extension).
    def ping(self):
        self._answer()
        with self.lock:
            self.pings += 1
        return ExtensionStatus(code=0, message="OK")

    def call(self, registry, item, request):
        return ExtensionResponse(
            status=ExtensionStatus(code=1, message="test manager serves no plugins"),
            response=[],
        )

    def shutdown(self):
        pass

    # ExtensionManager interface.
    def extensions(self):
        self._answer()
        with self.lock:
            return dict(self.extensions_by_uuid)

    def options(self):
        return {}

    def registerExtension(self, info, registry):
        with self.lock:
            self.register_calls += 1
        if self.refuse:
            # osquery's answer when a registry item is already taken: no uuid.
            self.registered.set()
            return ExtensionStatus(
                code=1, message="Duplicate registry item: table nonstandard_protocol_sockets")
        uuid = random.randint(1000, 2**31 - 1)
        with self.lock:
            self.extensions_by_uuid[uuid] = info
            self.registries[uuid] = registry
        self.registered.set()
        return ExtensionStatus(code=0, message="OK", uuid=uuid)

    def deregisterExtension(self, uuid):
        with self.lock:
            known = uuid in self.extensions_by_uuid
            self.deregistered.append(uuid)
            self.extensions_by_uuid.pop(uuid, None)
        if not known:
            return ExtensionStatus(code=1, message="no extension with uuid %d" % uuid)
        return ExtensionStatus(code=0, message="OK")

    def query(self, sql):
        return ExtensionResponse(
            status=ExtensionStatus(code=1, message="test manager runs no SQL"),
            response=[],
        )

    def getQueryColumns(self, sql):
        return self.query(sql)


class ManagerServer:
    """A Unix-socket Thrift server whose connections can all be dropped at once,
    as they are when osqueryd exits."""

    def __init__(self, path, handler):
        self.path = path
        self.processor = ExtensionManager.Processor(handler)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(16)
        self.connections = []
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.stopped:
                    conn.close()
                    return
                self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        handle = TSocket.TSocket()
        handle.setHandle(conn)
        transport = TTransport.TBufferedTransport(handle)
        protocol = TBinaryProtocol.TBinaryProtocol(transport)
        try:
            while True:
                self.processor.process(protocol, protocol)
        except (TTransport.TTransportException, OSError, EOFError):
            pass
        finally:
            conn.close()

    def stop(self):
        """Stops answering: no listener, every open connection shut down."""
        with self.lock:
            self.stopped = True
            connections = list(self.connections)
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def extension_call(path, method, *args):
    """One call on a fresh connection to the extension, as osquery does."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        handle = TSocket.TSocket(unix_socket=path)
        handle.setTimeout(30_000)
        transport = TTransport.TBufferedTransport(handle)
        try:
            transport.open()
            break
        except TTransport.TTransportException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        client = Extension.Client(TBinaryProtocol.TBinaryProtocol(transport))
        return getattr(client, method)(*args)
    finally:
        transport.close()


def response_json(reply):
    status = reply.status
    return {
        "code": None if status is None else status.code,
        "message": None if status is None else status.message,
        "rows": reply.response or [],
    }


def launch(binary, manager_socket, work, timeout, verbose, umask=None):
    argv = [binary]
    if verbose:
        argv.append("--verbose")
    argv += ["--socket", manager_socket, "--timeout", str(timeout), "--interval", "1"]
    env = dict(os.environ, OSQUERY_EXTENSION=str(os.getpid()))
    stderr = open(os.path.join(work, "extension.stderr"), "wb")
    # umask -1: the child keeps this process's umask.
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=stderr,
                            umask=-1 if umask is None else umask)


def wait_exit(process, timeout):
    """(exit code or None if still running, seconds waited)."""
    started = time.monotonic()
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = None
    return code, round(time.monotonic() - started, 3)


def registration(handler):
    with handler.lock:
        (uuid, info), = handler.extensions_by_uuid.items()
        registry = handler.registries[uuid]
    tables = {
        name: [
            {"name": r.get("name"), "type": r.get("type"), "op": r.get("op"), "id": r.get("id")}
            for r in routes
        ]
        for name, routes in (registry.get("table") or {}).items()
    }
    return uuid, {
        "uuid": uuid,
        "name": info.name,
        "version": info.version,
        "sdk_version": info.sdk_version,
        "min_sdk_version": info.min_sdk_version,
        "registries": sorted(registry.keys()),
        "tables": tables,
    }


def context_for_pid(pid):
    return json.dumps({"constraints": [
        {"name": "pid", "affinity": "INTEGER", "list": [{"op": 2, "expr": str(pid)}]},
        {"name": "fd", "affinity": "INTEGER", "list": ""},
    ]})


def roundtrip(args, handler, server, process, result):
    uuid, result["registration"] = registration(handler)
    ext = "%s.%d" % (args.socket, uuid)
    result["ping"] = response_json(ExtensionResponse(status=extension_call(ext, "ping")))
    result["extension_socket_existed"] = os.path.exists(ext)
    result["extension_socket_mode"] = stat.S_IMODE(os.stat(ext).st_mode)
    result["columns"] = response_json(extension_call(
        ext, "call", "table", "process_code_signature", {"action": "columns"}))
    started = time.monotonic()
    result["generate_sockets"] = response_json(extension_call(
        ext, "call", "table", "nonstandard_protocol_sockets",
        {"action": "generate", "context": context_for_pid(args.pid)}))
    result["generate_sockets_seconds"] = round(time.monotonic() - started, 3)
    result["generate_signature"] = response_json(extension_call(
        ext, "call", "table", "process_code_signature",
        {"action": "generate", "context": context_for_pid(args.pid)}))
    result["malformed_context"] = response_json(extension_call(
        ext, "call", "table", "nonstandard_protocol_sockets",
        {"action": "generate", "context": '{"constraints": [{"name": "pid", "list": [{"op": 2'}))
    result["insert_readonly"] = response_json(extension_call(
        ext, "call", "table", "nonstandard_protocol_sockets",
        {"action": "insert", "auto_rowid": "true", "json_value_array": "[]"}))
    # Several osquery workers at once: the extension serves calls concurrently.
    replies = []
    def generate():
        replies.append(extension_call(ext, "call", "table", "nonstandard_protocol_sockets",
                                      {"action": "generate", "context": context_for_pid(args.pid)}))
    threads = [threading.Thread(target=generate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    result["concurrent_generate_codes"] = sorted(r.status.code for r in replies)

    time.sleep(1.2)  # let the extension's 500 ms ping loop reach the manager
    with handler.lock:
        result["manager_pings_received"] = handler.pings
    server.stop()
    code, waited = wait_exit(process, EXIT_TIMEOUT)
    result["exit_after_manager_loss"] = {"code": code, "seconds": waited}
    result["extension_socket_removed"] = not os.path.exists(ext)


def generate_all(ext, table):
    """One unconstrained generate of `table`, as a scheduled query makes it."""
    return response_json(extension_call(
        ext, "call", "table", table,
        {"action": "generate", "context": json.dumps({"constraints": []})}))


def stop_manager(server, process, result):
    server.stop()
    code, waited = wait_exit(process, EXIT_TIMEOUT)
    result["exit_after_manager_loss"] = {"code": code, "seconds": waited}


def full_scan(args, handler, server, process, result):
    """One unconstrained generate of the sockets table, as a scheduled hit query."""
    uuid, result["registration"] = registration(handler)
    ext = "%s.%d" % (args.socket, uuid)
    result["generate_all"] = generate_all(ext, "nonstandard_protocol_sockets")
    stop_manager(server, process, result)


def full_scan_after_send(args, handler, server, process, result):
    """The extension serving, a user's process (--pid) is told to send (SIGUSR1)
    and says it has (--wait-file appears); then one unconstrained generate."""
    uuid, result["registration"] = registration(handler)
    ext = "%s.%d" % (args.socket, uuid)
    os.kill(args.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not os.path.exists(args.wait_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    result["sent"] = os.path.exists(args.wait_file)
    result["generate_all"] = generate_all(ext, "nonstandard_protocol_sockets")
    result["info"] = generate_all(ext, "an1256_info")
    stop_manager(server, process, result)


def sigterm(args, handler, server, process, result):
    uuid, result["registration"] = registration(handler)
    ext = "%s.%d" % (args.socket, uuid)
    result["ping"] = response_json(ExtensionResponse(status=extension_call(ext, "ping")))
    process.send_signal(signal.SIGTERM)
    code, waited = wait_exit(process, EXIT_TIMEOUT)
    result["exit_after_sigterm"] = {"code": code, "seconds": waited}
    with handler.lock:
        result["deregistered"] = [u == uuid for u in handler.deregistered]
    result["extension_socket_removed"] = not os.path.exists(ext)
    server.stop()


def shutdown_rpc(args, handler, server, process, result):
    uuid, result["registration"] = registration(handler)
    ext = "%s.%d" % (args.socket, uuid)
    extension_call(ext, "shutdown")
    code, waited = wait_exit(process, EXIT_TIMEOUT)
    result["exit_after_shutdown_rpc"] = {"code": code, "seconds": waited}
    with handler.lock:
        result["deregistered"] = [u == uuid for u in handler.deregistered]
    result["extension_socket_removed"] = not os.path.exists(ext)
    server.stop()


def baseline_write(args, handler, server, process, result):
    """osquery's side of INSERT / DELETE on the writable an1256_baseline table:
    osquery sends every column in order in json_value_array (NULL for those the
    statement left out) and reads `status` / `id` from the one reply row."""
    uuid, result["registration"] = registration(handler)
    ext = "%s.%d" % (args.socket, uuid)
    columns = response_json(extension_call(
        ext, "call", "table", "an1256_baseline", {"action": "columns"}))
    names = [r["name"] for r in columns["rows"]]
    result["baseline_columns"] = names

    def values(**given):
        return json.dumps([given.get(n) for n in names])

    def lookup():
        context = json.dumps({"constraints": [
            {"name": "identity", "affinity": "TEXT",
             "list": [{"op": 2, "expr": args.identity}]}]})
        return response_json(extension_call(
            ext, "call", "table", "an1256_baseline",
            {"action": "generate", "context": context}))

    result["insert"] = response_json(extension_call(
        ext, "call", "table", "an1256_baseline",
        {"action": "insert", "auto_rowid": "true",
         "json_value_array": values(identity=args.identity, protocol_name="udp",
                                    remote_port=-1, note="approved through osquery")}))
    result["after_insert"] = lookup()
    result["insert_bad_port"] = response_json(extension_call(
        ext, "call", "table", "an1256_baseline",
        {"action": "insert", "auto_rowid": "true",
         "json_value_array": values(identity=args.identity, protocol_name="udp",
                                    remote_port=70000)}))
    rows = result["after_insert"]["rows"]
    rowid = rows[0].get("rowid") if rows else None
    result["delete"] = response_json(extension_call(
        ext, "call", "table", "an1256_baseline",
        {"action": "delete", "id": str(rowid)}))
    result["after_delete"] = lookup()
    result["audit"] = response_json(extension_call(
        ext, "call", "table", "an1256_baseline_audit",
        {"action": "generate", "context": "{}"}))
    # The extension's sampler thread records its first pass (and its cost) soon
    # after start, and the watch its first tick; wait for both, bounded.
    deadline = time.monotonic() + 60
    while True:
        result["info"] = response_json(extension_call(
            ext, "call", "table", "an1256_info", {"action": "generate", "context": "{}"}))
        rows = result["info"]["rows"]
        ready = rows and rows[0].get("last_sample_time", "0") != "0" \
            and rows[0].get("watch_source", "") != ""
        if ready or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    code, waited = wait_exit(process, EXIT_TIMEOUT)
    result["exit_after_sigterm"] = {"code": code, "seconds": waited}
    server.stop()


def exits_unregistered(key):
    """A scenario in which the extension must exit by itself, unregistered."""
    def scenario(args, handler, server, process, result):
        # A refused registration has no uuid: osquery-rust-ng listens on <socket>.0
        # until the extension notices the refusal (3 s); a duplicate never listens.
        unregistered = args.socket + ".0"
        deadline = time.monotonic() + 2.5
        existed = False
        while not existed and process.poll() is None and time.monotonic() < deadline:
            existed = os.path.exists(unregistered)
            time.sleep(0.05)
        result["extension_socket_existed"] = existed
        code, waited = wait_exit(process, EXIT_TIMEOUT)
        result[key] = {"code": code, "seconds": waited}
        with handler.lock:
            result["register_calls"] = handler.register_calls
        result["extension_socket_removed"] = not os.path.exists(unregistered)
        server.stop()
    return scenario


refused = exits_unregistered("exit_after_refusal")
duplicate = exits_unregistered("exit_on_duplicate")


HANG_EXIT_TIMEOUT = 40.0


def hang(args, handler, server, process, result):
    uuid, result["registration"] = registration(handler)
    time.sleep(1.5)  # the extension's watch confirms the registration first
    handler.hung.set()
    code, waited = wait_exit(process, HANG_EXIT_TIMEOUT)
    result["exit_after_hang"] = {"code": code, "seconds": waited}
    handler.released.set()
    server.stop()


def idle_flood(args, handler, server, process, result):
    """Ten idle connections, a garbage one and a huge length prefix take no
    worker a real call needs: it still answers, quickly."""
    uuid, result["registration"] = registration(handler)
    ext = "%s.%d" % (args.socket, uuid)
    extension_call(ext, "ping")  # the socket is up
    held = []
    for _ in range(10):
        idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        idle.connect(ext)
        held.append(idle)
    garbage = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    garbage.connect(ext)
    garbage.sendall(b"GET / HTTP/1.0\r\n\r\n" + os.urandom(64))
    held.append(garbage)
    # A strict header naming a 2 GiB method name, then silence.
    huge = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    huge.connect(ext)
    huge.sendall(b"\x80\x01\x00\x01\x7f\xff\xff\xff")
    held.append(huge)
    time.sleep(0.5)
    started = time.monotonic()
    reply = extension_call(ext, "call", "table", "nonstandard_protocol_sockets",
                           {"action": "generate", "context": context_for_pid(args.pid)})
    result["call_seconds"] = round(time.monotonic() - started, 3)
    result["call"] = response_json(reply)
    started = time.monotonic()
    result["ping_after"] = response_json(ExtensionResponse(status=extension_call(ext, "ping")))
    result["ping_seconds"] = round(time.monotonic() - started, 3)
    result["alive"] = process.poll() is None
    for s in held:
        s.close()
    server.stop()
    code, waited = wait_exit(process, EXIT_TIMEOUT)
    result["exit_after_manager_loss"] = {"code": code, "seconds": waited}


SCENARIOS = {"idle_flood": idle_flood, "roundtrip": roundtrip, "full_scan": full_scan,
             "full_scan_after_send": full_scan_after_send,
             "sigterm": sigterm, "shutdown_rpc": shutdown_rpc,
             "baseline_write": baseline_write, "refused": refused, "duplicate": duplicate,
             "hang": hang}
# Scenarios in which the manager does not see a (successful) registration first.
NO_REGISTRATION = {"refused", "duplicate"}


def main():
    # thrift logs each refused connect while the extension's socket comes up.
    logging.getLogger("thrift").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--extension", required=True, help="path of the an1256 binary")
    parser.add_argument("--work", required=True, help="private directory for the sockets")
    parser.add_argument("--pid", type=int, default=0, help="pid to constrain generate to")
    parser.add_argument("--identity", default="", help="baseline identity to write")
    parser.add_argument("--wait-file", default="", help="file whose existence says the --pid sent")
    parser.add_argument("--umask", type=lambda v: int(v, 8), default=None,
                        help="octal umask the extension starts with")
    args = parser.parse_args()
    args.socket = os.path.join(args.work, "osquery.em")

    handler = ManagerHandler()
    handler.refuse = args.scenario == "refused"
    if args.scenario == "duplicate":
        handler.extensions_by_uuid[777] = InternalExtensionInfo(
            name="an1256", version="0.1.0", sdk_version="", min_sdk_version="")
    server = ManagerServer(args.socket, handler)
    process = launch(args.extension, args.socket, args.work, timeout=5, verbose=True,
                     umask=args.umask)
    result = {"scenario": args.scenario, "ok": False}
    try:
        started = time.monotonic()
        if args.scenario in NO_REGISTRATION:
            pass
        elif not handler.registered.wait(REGISTER_TIMEOUT):
            raise RuntimeError("the extension did not register within %ss" % REGISTER_TIMEOUT)
        result["registration_seconds"] = round(time.monotonic() - started, 3)
        SCENARIOS[args.scenario](
            args, handler, server, process, result)
        result["ok"] = True
    except Exception as e:  # reported in the JSON; the Rust test shows it
        result["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        server.stop()
        with open(os.path.join(args.work, "extension.stderr"), "rb") as f:
            result["extension_stderr"] = f.read()[-8000:].decode("utf-8", "replace")
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
