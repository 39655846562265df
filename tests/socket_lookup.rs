//! `pid =` lookups through each process's own fds (`socket_lookup`: the socket
//! taken with pidfd_getfd, sock_diag asked only for its local ports) against the
//! table path that reads the whole namespace, on real processes: the rows are the
//! same for every kind of socket, a local port another process shares
//! (SO_REUSEPORT) does not give that process's socket away, and a socket the
//! filtered dump does not list sends the process down the table path. Needs root
//! (pidfd_getfd of other processes, raw and ping sockets); skips otherwise.
#![cfg(target_os = "linux")]

mod common;

use an1256::model::{ProtocolSet, SocketInfo};
use an1256::platform::linux::socket_lookup;
use an1256::platform::linux::sockets::Scan;
use common::{python, skip, spawn_ready, ReadyChild};

const PRELUDE: &str = r#"
import os, socket, sys, time
held = []
def keep(name, s):
    held.append(s); print(f"{name}={os.fstat(s.fileno()).st_ino}", flush=True)
"#;

const EVERY_KIND: &str = r#"
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); keep("udp", u)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.connect(("127.0.0.1", 9)); keep("udp_connected", c)
keep("udp_unbound", socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
keep("udp6_unbound", socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); v6.bind(("::1", 0)); keep("udp6", v6)
c6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); c6.connect(("::1", 9)); keep("udp6_connected", c6)
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(); keep("tcp_listen", l)
a = socket.create_connection(l.getsockname()); keep("tcp_client", a)
b, _ = l.accept(); keep("tcp_server", b)
l6 = socket.socket(socket.AF_INET6); l6.bind(("::1", 0)); l6.listen(); keep("tcp6_listen", l6)
keep("raw", socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
keep("raw6", socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6))
keep("ping", socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP))
p = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP); p.bind(("127.0.0.1", 0)); keep("ping_bound", p)
keep("unix", socket.socketpair()[0])
files = [open("/proc/self/status") for _ in range(5)]
print("ready", flush=True)
time.sleep(600)
"#;

/// The rows of `pid` by one path, and whether the lookup answered.
fn rows(pid: i32, look_up: bool) -> (Vec<SocketInfo>, bool) {
    let before = socket_lookup::lookups_on_this_thread();
    let scan = Scan::new(&ProtocolSet::ALL, false)
        .with_lookups(look_up)
        .run(&[pid]);
    assert!(scan.incomplete.is_empty(), "{:?}", scan.incomplete);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    (
        scan.sockets,
        socket_lookup::lookups_on_this_thread() > before,
    )
}

/// The rows by both paths, asserted equal; `looked_up`: which path the lookup took.
fn both_paths(child: &ReadyChild, looked_up: bool) -> Vec<SocketInfo> {
    let (table_rows, used) = rows(child.pid, false);
    assert!(!used);
    let (lookup_rows, used) = rows(child.pid, true);
    assert_eq!(used, looked_up, "the lookup took the other path");
    assert_eq!(lookup_rows, table_rows, "the two paths disagree");
    lookup_rows
}

fn inode(child: &ReadyChild, key: &str) -> u64 {
    child.int(key) as u64
}

fn root_here(test: &str) -> bool {
    if !common::is_root() {
        skip(
            test,
            "needs root (pidfd_getfd of other processes, raw sockets)",
        );
        return false;
    }
    true
}

#[test]
fn looked_up_rows_are_the_table_rows_for_every_kind() {
    let test = "looked_up_rows_are_the_table_rows_for_every_kind";
    if !root_here(test) {
        return;
    }
    let root_child = spawn_ready(python(&format!("{PRELUDE}{EVERY_KIND}"))).expect("root fixture");
    // An unprivileged user's process (no raw socket: it may not make one).
    let attacker = common::attacker("lookup-kinds");
    let user_code = EVERY_KIND
        .lines()
        .filter(|l| !l.contains("SOCK_RAW") && !l.contains("IPPROTO_ICMP"))
        .collect::<Vec<_>>()
        .join("\n");
    let user_child =
        spawn_ready(attacker.python(&format!("{PRELUDE}{user_code}"))).expect("user fixture");
    for child in [&root_child, &user_child] {
        let found = both_paths(child, true);
        for line in &child.lines {
            let Some((kind, number)) = line.split_once('=') else {
                continue;
            };
            let socket: u64 = number.parse().expect("inode");
            let holders: Vec<_> = found.iter().filter(|s| s.socket == socket).collect();
            let expected = usize::from(kind != "unix");
            assert_eq!(
                holders.len(),
                expected,
                "{kind} of {}: {found:?}",
                child.pid
            );
        }
    }
    let raw = inode(&root_child, "raw");
    assert!(both_paths(&root_child, true)
        .iter()
        .any(|s| s.socket == raw && s.protocol == 1));
}

const REUSEPORT: &str = r#"
port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1); u.bind(("127.0.0.1", port)); keep("udp", u)
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1); t.bind(("127.0.0.1", u.getsockname()[1])); t.listen(); keep("tcp", t)
print(f"port={u.getsockname()[1]}", flush=True)
print("ready", flush=True)
time.sleep(600)
"#;

#[test]
fn a_local_port_another_process_shares_does_not_give_its_socket_away() {
    let test = "a_local_port_another_process_shares_does_not_give_its_socket_away";
    if !root_here(test) {
        return;
    }
    let first = spawn_ready(python(&format!("{PRELUDE}{REUSEPORT}"))).expect("first");
    let port = first.int("port");
    let mut second = python(&format!("{PRELUDE}{REUSEPORT}"));
    second.arg(port.to_string());
    let second = spawn_ready(second).expect("second");
    assert_eq!(
        second.int("port"),
        port,
        "the premise: one port, two processes"
    );
    for (child, other) in [(&first, &second), (&second, &first)] {
        let found = both_paths(child, true);
        let own: Vec<u64> = vec![inode(child, "udp"), inode(child, "tcp")];
        let theirs: Vec<u64> = vec![inode(other, "udp"), inode(other, "tcp")];
        let seen: Vec<u64> = found.iter().map(|s| s.socket).collect();
        assert!(own.iter().all(|s| seen.contains(s)), "{found:?}");
        assert!(!theirs.iter().any(|s| seen.contains(s)), "{found:?}");
        assert!(found.iter().all(|s| s.local_port == port as i32));
    }
}

#[test]
fn a_socket_the_filtered_dump_does_not_list_sends_the_process_to_the_tables() {
    let test = "a_socket_the_filtered_dump_does_not_list_sends_the_process_to_the_tables";
    if !root_here(test) {
        return;
    }
    // A TCP socket bound but neither listening nor connected is in no dump.
    let child = spawn_ready(python(&format!(
        r#"{PRELUDE}
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); keep("udp", u)
t = socket.socket(); t.bind(("127.0.0.1", 0)); keep("tcp_bound", t)
print("ready", flush=True)
time.sleep(600)
"#
    )))
    .expect("holder");
    let found = both_paths(&child, false);
    let udp = inode(&child, "udp");
    assert_eq!(
        found.iter().map(|s| s.socket).collect::<Vec<_>>(),
        [udp],
        "{found:?}"
    );
}

#[test]
fn a_loopback_client_hands_the_whole_tcp_table_to_the_socks_check() {
    let test = "a_loopback_client_hands_the_whole_tcp_table_to_the_socks_check";
    if !root_here(test) {
        return;
    }
    // Another process's listener, which only the whole table shows.
    let listener = spawn_ready(python(&format!(
        r#"{PRELUDE}
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(); keep("listener", l)
print(f"port={{l.getsockname()[1]}}", flush=True)
print("ready", flush=True)
time.sleep(600)
"#
    )))
    .expect("listener");
    let port = listener.int("port");
    let client = spawn_ready(python(&format!(
        r#"{PRELUDE}
c = socket.create_connection(("127.0.0.1", {port})); keep("client", c)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); keep("udp", u)
print("ready", flush=True)
time.sleep(600)
"#
    )))
    .expect("client");
    let handed_over = |pid: i32| {
        let before = socket_lookup::lookups_on_this_thread();
        let scan = Scan::new(&ProtocolSet::ALL, false)
            .with_lookups(true)
            .run(&[pid]);
        assert!(socket_lookup::lookups_on_this_thread() > before);
        scan.namespace_tcp
    };
    let tables = handed_over(client.pid);
    let listener_socket = inode(&listener, "listener");
    assert!(
        tables
            .values()
            .flatten()
            .any(|s| s.socket == listener_socket && s.tcp_state == "LISTEN"),
        "{tables:?}"
    );
    // A process with no such client reads no whole table.
    assert!(handed_over(listener.pid).is_empty());
    both_paths(&client, true);
}
