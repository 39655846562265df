//! MPTCP (`socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)`, open to any user where
//! `net.mptcp.enabled` is 1, the default) is TCP on the wire: a connection an
//! unprivileged user makes through a SOCKS proxy over MPTCP is reported as its
//! plain-TCP twin is, on full scans and `pid =`, with the fd iterator on and
//! off; an MPTCP connection to a port no SOCKS signal names is no row. Real
//! processes: a root MPTCP listener, clients run by an unprivileged user. Skips
//! (printed) without root or MPTCP.
#![cfg(target_os = "linux")]

mod common;

use an1256::judge::socks::SocksConfig;
use an1256::model::{ProtocolSet, SocketInfo, SocketQuery};
use an1256::platform::linux::{fd_iterator, LinuxHost};
use an1256::platform::{Host, HostConfig};
use an1256::tables::QueryContext;
use common::{python, skip, spawn_ready, FullScanLock, ReadyChild};
use std::sync::Arc;

use common::NamedRow;

const IPPROTO_MPTCP: i32 = 262;

/// Whether MPTCP sockets can be made here (prints why not).
fn mptcp_here(test: &str) -> bool {
    if !common::is_root() {
        skip(test, "needs root (attacker user)");
        return false;
    }
    let enabled = std::fs::read_to_string("/proc/sys/net/mptcp/enabled");
    if !enabled.as_deref().is_ok_and(|value| value.trim() == "1") {
        skip(test, format!("MPTCP is disabled: {enabled:?}"));
        return false;
    }
    // SAFETY: socket has no memory preconditions; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, IPPROTO_MPTCP) };
    if fd < 0 {
        let why = std::io::Error::last_os_error();
        skip(test, format!("no MPTCP socket: {why}"));
        return false;
    }
    // SAFETY: fd was just opened by this function.
    unsafe { libc::close(fd) };
    true
}

/// A root python with two MPTCP listeners on 127.0.0.1 (`proxy_port`,
/// `other_port`), holding every connection it accepts.
const LISTENERS: &str = r#"
import socket, threading, time
def serve(name):
    l = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
    l.bind(("127.0.0.1", 0)); l.listen(16)
    print(f"{name}={l.getsockname()[1]}", flush=True)
    held = []
    def accept():
        while True:
            held.append(l.accept()[0])
    threading.Thread(target=accept, daemon=True).start()
for name in ("proxy_port", "other_port"):
    serve(name)
print("ready", flush=True)
time.sleep(600)
"#;

/// A client holding one connection to 127.0.0.1:argv[2] over protocol argv[1]
/// (262 MPTCP, 6 TCP); prints its fd, inode, local port, and whether the
/// connection is MPTCP end to end (MPTCP_INFO answers only then, not on a
/// fallback to TCP).
const CLIENT: &str = r#"
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, int(sys.argv[1]))
s.connect(("127.0.0.1", int(sys.argv[2])))
try:
    s.getsockopt(284, 1, 256)  # SOL_MPTCP, MPTCP_INFO
    mptcp = 1
except OSError:
    mptcp = 0
print(f"fd={s.fileno()}", f"ino={os.fstat(s.fileno()).st_ino}", sep="\n")
print(f"port={s.getsockname()[1]}", f"mptcp={mptcp}", "ready", sep="\n", flush=True)
time.sleep(600)
"#;

fn host(fd_iterator: bool) -> Arc<LinuxHost> {
    Arc::new(LinuxHost::new(HostConfig {
        fd_iterator,
        ..HostConfig::default()
    }))
}

/// Every row of `child`'s connection (its inode), from a full scan and from a
/// `pid =` query, with the iterator on and off: (how, its rows).
fn rows_everywhere(
    config: &SocksConfig,
    child: &ReadyChild,
    iterator: bool,
) -> Vec<(String, Vec<NamedRow>)> {
    let inode = child.int("ino").to_string();
    let mut legs = Vec::new();
    let mut paths = vec![false];
    if iterator {
        paths.push(true);
    }
    for on in paths {
        let host = host(on);
        for (name, context) in [
            ("full scan", QueryContext::new()),
            (
                "pid =",
                QueryContext::new().with_equals("pid", child.pid.to_string()),
            ),
        ] {
            let pid_passes = fd_iterator::pid_passes_on_this_thread();
            let full_passes = fd_iterator::passes_on_this_thread();
            let rows: Vec<NamedRow> = common::socket_rows_in(&host, config, &context)
                .into_iter()
                .filter(|r| r["pid"] == child.pid.to_string() && r["socket"] == inode)
                .collect();
            // The leg took the path it names.
            let passes = fd_iterator::pid_passes_on_this_thread() - pid_passes
                + fd_iterator::passes_on_this_thread()
                - full_passes;
            assert_eq!(passes > 0, on, "{name}, iterator {on}: the other path");
            legs.push((format!("{name}, iterator {on}"), rows));
        }
    }
    legs
}

/// The TCP sockets the host sees for `pid` through the walk and, when it can
/// run, the iterator (so a no-row result is a judgement, not a blind spot).
fn tcp_sockets_seen(pid: i32, iterator: bool) -> Vec<Vec<SocketInfo>> {
    let mut seen = vec![false];
    if iterator {
        seen.push(true);
    }
    seen.into_iter()
        .map(|on| {
            host(on)
                .sockets(&SocketQuery {
                    pids: Some(vec![pid]),
                    protocols: ProtocolSet {
                        tcp: true,
                        ..ProtocolSet::NONE
                    },
                })
                .sockets
        })
        .collect()
}

#[test]
fn an_mptcp_connection_through_a_socks_proxy_is_reported_like_its_tcp_twin() {
    const TEST: &str = "an_mptcp_connection_through_a_socks_proxy_is_reported_like_its_tcp_twin";
    if !mptcp_here(TEST) {
        return;
    }
    // Full scans of the host must be whole: no fd hoarder meanwhile.
    let _whole_scans = FullScanLock::shared();
    let iterator = match fd_iterator::shared() {
        Ok(_) => true,
        Err(why) => {
            skip(TEST, format!("no BPF fd iterator, the walk alone: {why}"));
            false
        }
    };
    let attacker = common::attacker("mptcp-socks");
    let listeners = spawn_ready(python(LISTENERS)).expect("MPTCP listeners");
    let proxy_port = listeners.int("proxy_port");
    let other_port = listeners.int("other_port");
    // The proxy port is a SOCKS port (as 1080 is; a free one, so that parallel
    // tests never collide) and the clients' ALL_PROXY names it.
    let mut config = SocksConfig::default();
    config.ports.push(u16::try_from(proxy_port).expect("port"));
    let client = |protocol: i32, port: i64, proxy: bool| {
        let mut command = attacker.python(CLIENT);
        command.arg(protocol.to_string()).arg(port.to_string());
        if proxy {
            command.env("ALL_PROXY", format!("socks5://127.0.0.1:{proxy_port}"));
        }
        spawn_ready(command).expect("client")
    };
    let mptcp = client(IPPROTO_MPTCP, proxy_port, true);
    let tcp_twin = client(libc::IPPROTO_TCP, proxy_port, true);
    let benign = client(IPPROTO_MPTCP, other_port, false);
    // The premise: the attacker's connections are MPTCP end to end.
    assert_eq!(mptcp.value("mptcp"), Some("1"), "{:?}", mptcp.lines);
    assert_eq!(benign.value("mptcp"), Some("1"), "{:?}", benign.lines);
    assert_eq!(tcp_twin.value("mptcp"), Some("0"));

    let twin_legs = rows_everywhere(&config, &tcp_twin, iterator);
    let mptcp_legs = rows_everywhere(&config, &mptcp, iterator);
    let mut first: Option<NamedRow> = None;
    for ((how, twin_rows), (_, rows)) in twin_legs.iter().zip(&mptcp_legs) {
        assert_eq!(twin_rows.len(), 1, "TCP twin, {how}: {twin_rows:#?}");
        assert_eq!(rows.len(), 1, "MPTCP, {how}: {rows:#?}");
        let (twin_row, row) = (&twin_rows[0], &rows[0]);
        for column in [
            "protocol",
            "protocol_name",
            "socket_type",
            "state",
            "reason",
        ] {
            assert_eq!(row[column], twin_row[column], "{column}, {how}: {row:?}");
        }
        assert_eq!(row["reason"], "socks_port,socks_env_proxy", "{how}");
        assert_eq!(
            (row["protocol"].as_str(), row["protocol_name"].as_str()),
            ("6", "socks"),
            "{how}"
        );
        assert_eq!(row["fd"], mptcp.int("fd").to_string(), "{how}");
        assert_eq!(row["local_port"], mptcp.int("port").to_string(), "{how}");
        assert_eq!(row["remote_port"], proxy_port.to_string(), "{how}");
        assert_eq!(row["state"], "ESTABLISHED", "{how}");
        // Every path gives the same row, field by field.
        match &first {
            None => first = Some(row.clone()),
            Some(first) => assert_eq!(row, first, "{how}"),
        }
    }

    // The benign twin: an MPTCP connection to a port no SOCKS signal names, no
    // proxy variable. It is seen as TCP, and is no row.
    for seen in tcp_sockets_seen(benign.pid, iterator) {
        let connection: Vec<&SocketInfo> = seen
            .iter()
            .filter(|s| s.socket == benign.int("ino") as u64)
            .collect();
        assert_eq!(connection.len(), 1, "{seen:#?}");
        assert_eq!(
            (
                connection[0].protocol,
                connection[0].remote_port,
                connection[0].tcp_state.as_str()
            ),
            (6, i32::try_from(other_port).expect("port"), "ESTABLISHED")
        );
    }
    for (how, rows) in rows_everywhere(&config, &benign, iterator) {
        assert!(rows.is_empty(), "benign twin, {how}: {rows:#?}");
    }
}
