//! The Linux host against real processes: python3 children open real sockets
//! (UDP v4/v6, connected UDP, ICMP ping, raw, another network namespace, a socket
//! shared after fork) and the scan must report each exactly; trust verdicts come
//! from the real dpkg database and from fixture databases made here.
#![cfg(target_os = "linux")]

mod common;

use an1256::model::{
    ProtocolSet, SocketInfo, SocketQuery, SocketScan, SocketType, Trust, FAMILY_INET, FAMILY_INET6,
};
use an1256::platform::linux::LinuxHost;
use an1256::platform::{Host, HostConfig, HostError};
use an1256::tables::nonstandard_protocol_sockets::{NonstandardProtocolSockets, COLUMNS};
use an1256::tables::process_code_signature::ProcessCodeSignature;
use an1256::tables::{QueryContext, TableDef, Value};
use common::{python, skip, spawn_ready, ReadyChild};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

const PRELUDE: &str = r#"
import os, socket, sys, time
def out(key, value):
    print(f"{key}={value}", flush=True)
def ino(s):
    return os.fstat(s.fileno()).st_ino
def ready():
    print("ready", flush=True)
    time.sleep(600)
"#;

fn script(body: &str) -> String {
    format!("{PRELUDE}\n{body}")
}

/// As the extension runs it: per-process facts kept across scans.
fn host() -> Arc<LinuxHost> {
    Arc::new(LinuxHost::new(HostConfig {
        remember_process_facts: true,
        ..HostConfig::default()
    }))
}

/// Every datagram kind (the table's default scan).
fn protocols() -> ProtocolSet {
    ProtocolSet {
        tcp: false,
        ..ProtocolSet::ALL
    }
}

fn pid_scan(host: &LinuxHost, pid: i32) -> SocketScan {
    host.sockets(&SocketQuery {
        pids: Some(vec![pid]),
        protocols: protocols(),
    })
}

fn full_scan(host: &LinuxHost) -> SocketScan {
    host.sockets(&SocketQuery {
        pids: None,
        protocols: protocols(),
    })
}

fn by_fd(scan: &SocketScan, pid: i32, fd: i64) -> SocketInfo {
    let found: Vec<&SocketInfo> = scan
        .sockets
        .iter()
        .filter(|s| s.pid == pid && s.fd == fd)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one socket for pid {pid} fd {fd}, scan: {:#?}",
        scan.sockets
            .iter()
            .filter(|s| s.pid == pid)
            .collect::<Vec<_>>()
    );
    found[0].clone()
}

/// The sockets of `pid` must be the same in a pid-limited and a full scan.
fn assert_full_scan_agrees(host: &LinuxHost, pid: i32, expected: &[SocketInfo]) {
    let full = full_scan(host);
    for socket in expected {
        assert_eq!(&by_fd(&full, pid, socket.fd), socket, "full scan differs");
    }
}

/// Rows of `nonstandard_protocol_sockets WHERE pid = <pid>`, keyed by fd.
fn table_rows(host: Arc<LinuxHost>, pid: i32) -> HashMap<i64, HashMap<&'static str, String>> {
    let table = NonstandardProtocolSockets::new(host);
    let rows = table
        .generate(&QueryContext::new().with_equals("pid", pid.to_string()))
        .expect("generate");
    rows.into_iter()
        .map(|row| {
            let named: HashMap<&'static str, String> = COLUMNS
                .iter()
                .zip(row.iter())
                .map(|(c, v)| (c.name, v.to_osquery_string()))
                .collect();
            let fd = named["fd"].parse().expect("fd is an integer");
            assert_eq!(named["pid"], pid.to_string());
            (fd, named)
        })
        .collect()
}

fn own_namespace(host: &LinuxHost) -> String {
    let me = i32::try_from(std::process::id()).unwrap();
    host.process(me).expect("own process").net_namespace
}

#[test]
fn udp_v4_connected_and_v6_sockets_are_reported_exactly() {
    let child = spawn_ready(python(&script(
        r#"
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.bind(("127.0.0.1", 0))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b.connect(("127.0.0.1", a.getsockname()[1]))
out("a_fd", a.fileno()); out("a_port", a.getsockname()[1]); out("a_ino", ino(a))
out("b_fd", b.fileno()); out("b_port", b.getsockname()[1]); out("b_ino", ino(b))
try:
    c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    c.bind(("::1", 0))
    out("c_fd", c.fileno()); out("c_port", c.getsockname()[1]); out("c_ino", ino(c))
except OSError as e:
    out("no_ipv6", e)
ready()
"#,
    )))
    .expect("udp child");
    let host = host();
    let namespace = own_namespace(&host);
    let scan = pid_scan(&host, child.pid);
    assert_eq!(scan.skipped_processes, 0, "{:?}", scan.errors);
    // The holder's executable was read during the walk, as the full read gives it.
    let path = host.process(child.pid).expect("child").path;
    assert_eq!(scan.executables.get(&child.pid), Some(&path));
    assert!(path.contains("python3"), "{path}");

    let a = by_fd(&scan, child.pid, child.int("a_fd"));
    let expected_a = SocketInfo {
        pid: child.pid,
        fd: child.int("a_fd"),
        socket: child.int("a_ino") as u64,
        family: FAMILY_INET,
        protocol: 17,
        socket_type: SocketType::Dgram,
        local_address: "127.0.0.1".into(),
        local_port: child.int("a_port") as i32,
        remote_address: "0.0.0.0".into(),
        remote_port: 0,
        tcp_state: String::new(),
        net_namespace: namespace.clone(),
    };
    assert_eq!(a, expected_a);

    let b = by_fd(&scan, child.pid, child.int("b_fd"));
    let expected_b = SocketInfo {
        fd: child.int("b_fd"),
        socket: child.int("b_ino") as u64,
        local_port: child.int("b_port") as i32,
        remote_address: "127.0.0.1".into(),
        remote_port: child.int("a_port") as i32,
        ..expected_a.clone()
    };
    assert_eq!(b, expected_b);
    let mut expected = vec![expected_a, expected_b];

    if let Some(reason) = child.value("no_ipv6") {
        skip("udp v6 part", reason);
    } else {
        let c = by_fd(&scan, child.pid, child.int("c_fd"));
        let expected_c = SocketInfo {
            pid: child.pid,
            fd: child.int("c_fd"),
            socket: child.int("c_ino") as u64,
            family: FAMILY_INET6,
            protocol: 17,
            socket_type: SocketType::Dgram,
            local_address: "::1".into(),
            local_port: child.int("c_port") as i32,
            remote_address: "::".into(),
            remote_port: 0,
            tcp_state: String::new(),
            net_namespace: namespace.clone(),
        };
        assert_eq!(c, expected_c);
        expected.push(expected_c);
    }
    // python3 holds no other inet sockets.
    assert_eq!(scan.sockets.len(), expected.len(), "{:#?}", scan.sockets);
    assert_full_scan_agrees(&host, child.pid, &expected);

    let rows = table_rows(host.clone(), child.pid);
    let a_row = &rows[&child.int("a_fd")];
    assert_eq!(a_row["protocol_name"], "udp");
    assert_eq!(a_row["state"], "bound");
    assert_eq!(a_row["reason"], "udp_socket");
    assert_eq!(a_row["remote_scope"], "unspecified");
    assert_eq!(a_row["net_namespace"], namespace);
    assert!(a_row["path"].contains("python3"), "{}", a_row["path"]);
    let b_row = &rows[&child.int("b_fd")];
    assert_eq!(b_row["state"], "connected");
    assert_eq!(b_row["remote_scope"], "loopback");
    assert_eq!(b_row["remote_port"], child.value("a_port").unwrap());

    // An icmp-only query reads no UDP table and so reports none of them.
    let icmp_only = host.sockets(&SocketQuery {
        pids: Some(vec![child.pid]),
        protocols: ProtocolSet {
            icmp: true,
            ..ProtocolSet::NONE
        },
    });
    assert!(icmp_only.sockets.is_empty(), "{:?}", icmp_only.sockets);
}

/// Spawns a child that needs unprivileged ICMP ping sockets, opening them up once
/// through `ping_group_range` (as root) if the kernel refuses. `None` = skip.
fn spawn_ping_child(body: &str) -> Option<ReadyChild> {
    let code = script(&format!(
        r#"
try:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    probe.close()
except PermissionError:
    out("error", "EACCES"); sys.exit(0)
{body}
"#
    ));
    match spawn_ready(python(&code)) {
        Ok(child) => return Some(child),
        Err(e) if e.value("error") == Some("EACCES") => {}
        Err(e) => panic!("ping child failed: {e}"),
    }
    let range = "/proc/sys/net/ipv4/ping_group_range";
    let before = std::fs::read_to_string(range).unwrap_or_default();
    if let Err(e) = std::fs::write(range, "0 2147483647") {
        skip(
            "ping sockets",
            format!("ping sockets refused (EACCES) and {range} is not writable: {e}"),
        );
        return None;
    }
    eprintln!(
        "note: {range} was {:?}, set to \"0 2147483647\"",
        before.trim()
    );
    match spawn_ready(python(&code)) {
        Ok(child) => Some(child),
        Err(e) => {
            skip("ping sockets", format!("still refused after {range}: {e}"));
            None
        }
    }
}

#[test]
fn ping_sockets_bound_and_unbound() {
    let Some(child) = spawn_ping_child(
        r#"
bound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
bound.bind(("127.0.0.1", 0))
unbound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
out("bound_fd", bound.fileno()); out("bound_ident", bound.getsockname()[1]); out("bound_ino", ino(bound))
out("unbound_fd", unbound.fileno()); out("unbound_ino", ino(unbound))
try:
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6)
    v6.bind(("::1", 0))
    out("v6_fd", v6.fileno()); out("v6_ident", v6.getsockname()[1]); out("v6_ino", ino(v6))
except OSError as e:
    out("no_v6", e)
ready()
"#,
    ) else {
        return;
    };
    let host = host();
    let namespace = own_namespace(&host);
    let scan = pid_scan(&host, child.pid);
    let bound = by_fd(&scan, child.pid, child.int("bound_fd"));
    let expected_bound = SocketInfo {
        pid: child.pid,
        fd: child.int("bound_fd"),
        socket: child.int("bound_ino") as u64,
        family: FAMILY_INET,
        protocol: 1,
        socket_type: SocketType::Dgram,
        local_address: "127.0.0.1".into(),
        local_port: child.int("bound_ident") as i32,
        remote_address: "0.0.0.0".into(),
        remote_port: 0,
        tcp_state: String::new(),
        net_namespace: namespace.clone(),
    };
    assert_eq!(bound, expected_bound);
    let unbound = by_fd(&scan, child.pid, child.int("unbound_fd"));
    let expected_unbound = SocketInfo {
        fd: child.int("unbound_fd"),
        socket: child.int("unbound_ino") as u64,
        local_address: "0.0.0.0".into(),
        local_port: 0,
        ..expected_bound.clone()
    };
    assert_eq!(unbound, expected_unbound);
    let mut expected = vec![expected_bound, expected_unbound];
    if let Some(reason) = child.value("no_v6") {
        skip("icmpv6 ping part", reason);
    } else {
        let v6 = by_fd(&scan, child.pid, child.int("v6_fd"));
        let expected_v6 = SocketInfo {
            pid: child.pid,
            fd: child.int("v6_fd"),
            socket: child.int("v6_ino") as u64,
            family: FAMILY_INET6,
            protocol: 58,
            socket_type: SocketType::Dgram,
            local_address: "::1".into(),
            local_port: child.int("v6_ident") as i32,
            remote_address: "::".into(),
            remote_port: 0,
            tcp_state: String::new(),
            net_namespace: namespace.clone(),
        };
        assert_eq!(v6, expected_v6);
        expected.push(expected_v6);
    }
    // One entry per socket: no icmp/icmp6 duplicates.
    assert_eq!(scan.sockets.len(), expected.len(), "{:#?}", scan.sockets);
    assert_full_scan_agrees(&host, child.pid, &expected);

    let rows = table_rows(host.clone(), child.pid);
    let row = &rows[&child.int("bound_fd")];
    assert_eq!(
        (
            row["protocol_name"].as_str(),
            row["state"].as_str(),
            row["reason"].as_str()
        ),
        ("icmp", "bound", "icmp_socket")
    );
    assert_eq!(row["socket_type"], "dgram");
    let row = &rows[&child.int("unbound_fd")];
    assert_eq!(
        (
            row["protocol_name"].as_str(),
            row["state"].as_str(),
            row["reason"].as_str()
        ),
        ("icmp", "unbound", "icmp_socket")
    );
    if child.value("v6_fd").is_some() {
        let row = &rows[&child.int("v6_fd")];
        assert_eq!(
            (row["protocol_name"].as_str(), row["state"].as_str()),
            ("icmpv6", "bound")
        );
    }
}

#[test]
fn raw_sockets_report_their_protocol() {
    let child = spawn_ready(python(&script(
        r#"
try:
    r1 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    r255 = socket.socket(socket.AF_INET, socket.SOCK_RAW, 255)
except PermissionError as e:
    out("error", "EPERM"); sys.exit(0)
out("icmp_fd", r1.fileno()); out("icmp_ino", ino(r1))
out("any_fd", r255.fileno()); out("any_ino", ino(r255))
ready()
"#,
    )));
    let child = match child {
        Ok(child) => child,
        Err(e) if e.value("error") == Some("EPERM") => {
            return skip("raw sockets", "needs CAP_NET_RAW (run as root)");
        }
        Err(e) => panic!("raw child failed: {e}"),
    };
    let host = host();
    let namespace = own_namespace(&host);
    let scan = pid_scan(&host, child.pid);
    let raw_icmp = SocketInfo {
        pid: child.pid,
        fd: child.int("icmp_fd"),
        socket: child.int("icmp_ino") as u64,
        family: FAMILY_INET,
        protocol: 1,
        socket_type: SocketType::Raw,
        local_address: "0.0.0.0".into(),
        local_port: 0,
        remote_address: "0.0.0.0".into(),
        remote_port: 0,
        tcp_state: String::new(),
        net_namespace: namespace,
    };
    assert_eq!(by_fd(&scan, child.pid, child.int("icmp_fd")), raw_icmp);
    let raw_any = SocketInfo {
        fd: child.int("any_fd"),
        socket: child.int("any_ino") as u64,
        protocol: 255,
        ..raw_icmp.clone()
    };
    assert_eq!(by_fd(&scan, child.pid, child.int("any_fd")), raw_any);
    assert_eq!(scan.sockets.len(), 2, "{:#?}", scan.sockets);
    assert_full_scan_agrees(&host, child.pid, &[raw_icmp, raw_any]);

    let rows = table_rows(host.clone(), child.pid);
    let row = &rows[&child.int("icmp_fd")];
    assert_eq!(
        (
            row["protocol_name"].as_str(),
            row["socket_type"].as_str(),
            row["reason"].as_str()
        ),
        ("icmp", "raw", "icmp_socket,raw_socket")
    );
    assert_eq!(
        (row["state"].as_str(), row["local_port"].as_str()),
        ("unbound", "0")
    );
    let row = &rows[&child.int("any_fd")];
    assert_eq!(
        (
            row["protocol_name"].as_str(),
            row["protocol"].as_str(),
            row["reason"].as_str()
        ),
        ("raw", "255", "raw_socket")
    );

    // A raw-only query keeps both (a raw ICMP socket is raw too); udp-only keeps none.
    let only = |set: ProtocolSet| {
        host.sockets(&SocketQuery {
            pids: Some(vec![child.pid]),
            protocols: set,
        })
        .sockets
        .len()
    };
    let none = ProtocolSet::NONE;
    assert_eq!(only(ProtocolSet { raw: true, ..none }), 2);
    assert_eq!(only(ProtocolSet { icmp: true, ..none }), 1);
    assert_eq!(only(ProtocolSet { udp: true, ..none }), 0);
}

#[test]
fn socket_in_another_network_namespace() {
    let mut command = std::process::Command::new("unshare");
    command.arg("-n").arg("python3").arg("-c").arg(script(
        r#"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
out("pid", os.getpid()); out("fd", s.fileno()); out("port", s.getsockname()[1]); out("ino", ino(s))
ready()
"#,
    ));
    let child = match spawn_ready(command) {
        Ok(child) => child,
        Err(e) => return skip("netns socket", format!("unshare -n failed: {e}")),
    };
    // unshare execs python3 in place: same pid.
    assert_eq!(child.int("pid"), i64::from(child.pid));
    let host = host();
    let ours = own_namespace(&host);
    let theirs = host.process(child.pid).expect("child").net_namespace;
    assert!(!theirs.is_empty());
    assert_ne!(theirs, ours, "unshare -n must give a new network namespace");
    let scan = pid_scan(&host, child.pid);
    let expected = SocketInfo {
        pid: child.pid,
        fd: child.int("fd"),
        socket: child.int("ino") as u64,
        family: FAMILY_INET,
        protocol: 17,
        socket_type: SocketType::Dgram,
        local_address: "0.0.0.0".into(),
        local_port: child.int("port") as i32,
        remote_address: "0.0.0.0".into(),
        remote_port: 0,
        tcp_state: String::new(),
        net_namespace: theirs.clone(),
    };
    assert_eq!(by_fd(&scan, child.pid, child.int("fd")), expected);
    assert_full_scan_agrees(&host, child.pid, std::slice::from_ref(&expected));
    let rows = table_rows(host.clone(), child.pid);
    assert_eq!(rows[&child.int("fd")]["net_namespace"], theirs);
}

#[test]
fn a_socket_shared_after_fork_gives_one_row_per_holder() {
    let child = spawn_ready(python(&script(
        r#"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
parent = os.getpid()
kid = os.fork()
if kid == 0:
    # Leaves as soon as the parent is gone.
    while os.getppid() == parent:
        time.sleep(0.1)
    os._exit(0)
out("fd", s.fileno()); out("ino", ino(s)); out("kid", kid)
ready()
"#,
    )))
    .expect("fork child");
    let kid = child.int("kid") as i32;
    let host = host();
    let scan = host.sockets(&SocketQuery {
        pids: Some(vec![child.pid, kid]),
        protocols: protocols(),
    });
    let parent_row = by_fd(&scan, child.pid, child.int("fd"));
    let kid_row = by_fd(&scan, kid, child.int("fd"));
    assert_eq!(parent_row.socket, child.int("ino") as u64);
    assert_eq!(kid_row.socket, parent_row.socket);
    assert_eq!(
        SocketInfo {
            pid: child.pid,
            ..kid_row.clone()
        },
        parent_row
    );
    let full = full_scan(&host);
    let holders: Vec<i32> = full
        .sockets
        .iter()
        .filter(|s| s.socket == parent_row.socket)
        .map(|s| s.pid)
        .collect();
    assert_eq!(holders, [child.pid, kid]);
    assert_eq!(table_rows(host.clone(), kid).len(), 1);
}

#[test]
fn full_scan_skips_vanished_and_lists_only_wanted_kinds() {
    let host = host();
    let scan = full_scan(&host);
    assert!(scan.errors.len() <= 20);
    for socket in &scan.sockets {
        assert!(
            matches!(socket.family, FAMILY_INET | FAMILY_INET6),
            "{socket:?}"
        );
        assert_ne!(
            socket.socket_type,
            SocketType::Stream,
            "tcp was not asked for"
        );
        assert!(!socket.net_namespace.is_empty());
    }
    // A pid that does not exist is skipped and counted, not an error row.
    let mut gone = std::process::Command::new("true").spawn().expect("true");
    let gone_pid = gone.id() as i32;
    gone.wait().expect("wait");
    let scan = pid_scan(&host, gone_pid);
    assert!(scan.sockets.is_empty());
    assert_eq!(scan.skipped_processes, 1);
    assert_eq!(host.process(gone_pid), Err(HostError::Vanished(gone_pid)));
    assert_eq!(host.command(gone_pid), Err(HostError::Vanished(gone_pid)));
}

#[test]
fn process_fields_environment_and_libraries() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut command = python(&script("ready()"));
    command
        .current_dir(cwd.path())
        .env("AN1256_TEST_MARK", "present");
    let child = spawn_ready(command).expect("child");
    let host = host();
    let info = host.process(child.pid).expect("process");
    let me = std::process::id() as i32;
    assert_eq!(info.pid, child.pid);
    assert_eq!(info.parent, me);
    assert!(info.path.contains("python3"), "{}", info.path);
    assert!(!info.exe_deleted);
    assert!(
        info.argv.first().is_some_and(|a| a.ends_with("python3")),
        "{:?}",
        info.argv
    );
    assert_eq!(info.argv.get(1).map(String::as_str), Some("-c"));
    assert!(info
        .argv
        .get(2)
        .is_some_and(|code| code.contains("def ready")));
    // The cheap read agrees with the full one on what the process runs.
    let command = host.command(child.pid).expect("command");
    assert_eq!(
        (command.pid, &command.path, &command.argv),
        (child.pid, &info.path, &info.argv)
    );
    assert_eq!(info.uid, i64::from(unsafe { libc::getuid() }));
    assert_eq!(
        std::path::Path::new(&info.cwd),
        cwd.path().canonicalize().unwrap()
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - 60..=now + 2).contains(&info.start_time),
        "start_time {} vs now {now}",
        info.start_time
    );
    assert_eq!(info.net_namespace, own_namespace(&host));
    assert!(info.error.is_empty(), "{}", info.error);
    assert_eq!(host.executable_path(child.pid).unwrap(), info.path);

    let env = host.environment(child.pid).expect("environ");
    assert!(
        env.iter().any(|e| e == "AN1256_TEST_MARK=present"),
        "{env:?}"
    );
    let libs = host.mapped_libraries(child.pid).expect("maps");
    assert!(
        libs.iter()
            .any(|l| l.contains("libc.so") || l.contains("libc-")),
        "{libs:?}"
    );
    assert!(
        libs.iter()
            .any(|l| l == &info.path || l.contains("python3")),
        "{libs:?}"
    );
    assert!(host.pids().unwrap().contains(&child.pid));
}

fn sha256_of(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).expect("read");
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn copied_binary_is_unsigned_with_its_sha256_and_cached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("true");
    common::copy_executable("/bin/true", &copy);
    let host = LinuxHost::new(HostConfig::default());
    let id = host.file_identity(copy.to_str().unwrap());
    assert_eq!(id.trust, Trust::Unsigned, "{id:?}");
    assert!(!id.signed);
    assert_eq!(id.sha256, sha256_of(&copy));
    assert_eq!((id.notarized, id.platform_binary), (-1, -1));

    let before = host.cache_stats();
    let again = host.file_identity(copy.to_str().unwrap());
    assert_eq!(again, id);
    let after = host.cache_stats();
    assert_eq!(after.hits, before.hits + 1, "second look is a cache hit");
    assert_eq!(after.misses, before.misses);

    // A new mtime is a new file identity: evaluated again.
    let file = std::fs::File::options().write(true).open(&copy).unwrap();
    file.set_modified(
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000),
    )
    .unwrap();
    drop(file);
    host.file_identity(copy.to_str().unwrap());
    assert_eq!(host.cache_stats().misses, after.misses + 1);
}

#[test]
fn package_owned_binary_is_trusted_through_real_dpkg() {
    if !std::path::Path::new("/var/lib/dpkg/info/coreutils.md5sums").exists() {
        return skip("dpkg trust", "no dpkg database with coreutils here");
    }
    let host = LinuxHost::new(HostConfig::default());
    for path in ["/usr/bin/ls", "/bin/ls"] {
        let id = host.file_identity(path);
        assert_eq!(id.trust, Trust::Package, "{path}: {id:?}");
        assert!(id.signed);
        assert_eq!(id.identifier, "coreutils");
        assert_eq!(id.authority, "dpkg");
        assert_eq!(id.sha256, sha256_of(std::path::Path::new(path)));
    }
    // The running image of a coreutils `sleep` is package-owned too, and a second
    // look hashes nothing.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("sleep");
    let pid = sleeper.id() as i32;
    let process = host.process(pid).expect("sleep process");
    let id = host.process_identity(&process);
    assert_eq!(
        (id.trust, id.identifier.as_str()),
        (Trust::Package, "coreutils"),
        "{id:?}"
    );
    let before = host.cache_stats();
    assert_eq!(host.process_identity(&process), id);
    assert_eq!(host.cache_stats().hits, before.hits + 1);
    assert_eq!(host.cache_stats().misses, before.misses);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[test]
fn digest_mismatch_against_a_fixture_database_is_invalid() {
    let files = tempfile::tempdir().expect("tempdir");
    let target = files.path().join("tool");
    std::fs::write(&target, b"#!/bin/sh\necho tampered\n").unwrap();
    let real = target.canonicalize().unwrap();
    let root = tempfile::tempdir().expect("dpkg root");
    std::fs::create_dir(root.path().join("info")).unwrap();
    let relative = real.to_str().unwrap().trim_start_matches('/');
    std::fs::write(
        root.path().join("info/fakepkg.md5sums"),
        format!("00112233445566778899aabbccddeeff  {relative}\n"),
    )
    .unwrap();
    std::fs::write(
        root.path().join("info/fakepkg.list"),
        format!("/.\n{}\n", real.display()),
    )
    .unwrap();
    let host = LinuxHost::new(HostConfig {
        dpkg_root: root.path().to_owned(),
        ..HostConfig::default()
    });
    let id = host.file_identity(real.to_str().unwrap());
    assert_eq!(id.trust, Trust::Invalid, "{id:?}");
    assert_eq!(id.identifier, "fakepkg");
    assert!(
        id.error.contains("digest differs from package fakepkg"),
        "{}",
        id.error
    );
    assert_eq!(id.sha256, sha256_of(&real));

    // Owned with the right digest: package.
    let md5 = {
        use md5::Digest as _;
        let digest = md5::Md5::digest(std::fs::read(&real).unwrap());
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let other = files.path().join("good");
    std::fs::write(&other, b"#!/bin/sh\necho tampered\n").unwrap();
    let other = other.canonicalize().unwrap();
    std::fs::write(
        root.path().join("info/goodpkg.md5sums"),
        format!(
            "{md5}  {}\n",
            other.to_str().unwrap().trim_start_matches('/')
        ),
    )
    .unwrap();
    let host = LinuxHost::new(HostConfig {
        dpkg_root: root.path().to_owned(),
        ..HostConfig::default()
    });
    let id = host.file_identity(other.to_str().unwrap());
    assert_eq!(
        (id.trust, id.identifier.as_str()),
        (Trust::Package, "goodpkg")
    );

    // Over the hashing cap: no digest, and the error says why.
    let small = LinuxHost::new(HostConfig {
        dpkg_root: root.path().to_owned(),
        max_hash_bytes: 4,
        ..HostConfig::default()
    });
    let id = small.file_identity(real.to_str().unwrap());
    assert!(id.sha256.is_empty());
    assert!(id.error.contains("max_hash_bytes"), "{}", id.error);
    assert!(!id.trust.is_trusted());
}

#[test]
fn a_deleted_running_executable_still_gets_a_sha256() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("sleepy");
    common::copy_executable("/bin/sleep", &copy);
    let expected = sha256_of(&copy);
    let mut running = std::process::Command::new(&copy)
        .arg("30")
        .spawn()
        .expect("run copy");
    let pid = running.id() as i32;
    // Wait until the exec is done (the exe link names the copy).
    let host = LinuxHost::new(HostConfig::default());
    for _ in 0..100 {
        if host
            .executable_path(pid)
            .is_ok_and(|p| p.ends_with("sleepy"))
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let host = Arc::new(host);
    assert_eq!(
        signature_cell(&host, pid, "on_disk"),
        Value::Int(1),
        "the executable is still at its path"
    );
    std::fs::remove_file(&copy).expect("delete the executable");
    let process = host.process(pid).expect("process");
    assert!(process.exe_deleted, "{process:?}");
    assert_eq!(signature_cell(&host, pid, "on_disk"), Value::Int(0));
    assert_eq!(signature_cell(&host, pid, "name"), Value::from("sleepy"));
    let real_dir = dir.path().canonicalize().unwrap();
    assert_eq!(process.path, real_dir.join("sleepy").to_str().unwrap());
    let id = host.process_identity(&process);
    assert_eq!(id.sha256, expected);
    assert_eq!(id.trust, Trust::Unsigned);
    let _ = running.kill();
    let _ = running.wait();
}

/// One cell of `process_code_signature` for `pid`.
fn signature_cell(host: &Arc<LinuxHost>, pid: i32, column: &str) -> Value {
    let table = ProcessCodeSignature::new(host.clone());
    let rows = table
        .generate(&QueryContext::new().with_equals("pid", pid.to_string()))
        .expect("process_code_signature");
    assert_eq!(rows.len(), 1, "one row for {pid}: {rows:?}");
    rows[0].cell(column).cloned().expect("declared column")
}

/// An attacker puts another file at its running executable's path without deleting
/// it (a bind mount in its own user and mount namespace): `on_disk` is 0, as the
/// comparison of device and inode with /proc/<pid>/exe shows. Its benign twin, the
/// same copy left alone, is 1. `name` and `euid` are the process's own.
#[test]
fn an_executable_covered_by_a_bind_mount_is_not_on_disk() {
    if !common::is_root() {
        return skip(
            "an_executable_covered_by_a_bind_mount_is_not_on_disk",
            "needs root",
        );
    }
    let attacker = common::attacker("ondisk");
    let sleepy = attacker.home.join("sleepy");
    common::copy_executable("/bin/sleep", &sleepy);
    std::os::unix::fs::chown(&sleepy, Some(attacker.uid), Some(attacker.gid)).expect("chown");
    let decoy = attacker.home.join("decoy");
    common::copy_executable("/bin/true", &decoy);
    // The copy starts first, then the mount covers its path in that namespace only.
    let mut covered = attacker.command("unshare");
    covered.args(["-Urm", "sh", "-c"]).arg(
        r#"./sleepy 60 & echo "pid=$!"; sleep 0.3; mount --bind ./decoy ./sleepy && echo ready; wait"#,
    );
    let covered = match spawn_ready(covered) {
        Ok(child) => child,
        Err(e) => {
            return skip(
                "an_executable_covered_by_a_bind_mount_is_not_on_disk",
                format!("no unprivileged user+mount namespace here: {e:?}"),
            )
        }
    };
    let mut twin = attacker.command(&sleepy);
    twin.arg("60");
    let mut twin = twin.spawn().expect("run the twin");
    let twin_pid = twin.id() as i32;
    let host = host();
    for _ in 0..100 {
        if host
            .executable_path(twin_pid)
            .is_ok_and(|p| p.ends_with("sleepy"))
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = covered.int("pid") as i32;
    let covered_process = host.process(pid).expect("covered process");
    assert!(
        covered_process.path.ends_with("/sleepy") && !covered_process.exe_deleted,
        "not deleted, same path: {covered_process:?}"
    );
    assert_eq!(signature_cell(&host, pid, "on_disk"), Value::Int(0));
    assert_eq!(signature_cell(&host, twin_pid, "on_disk"), Value::Int(1));
    for pid in [pid, twin_pid] {
        assert_eq!(signature_cell(&host, pid, "name"), Value::from("sleepy"));
    }
    assert_eq!(
        signature_cell(&host, twin_pid, "euid"),
        Value::Int(attacker.uid.into())
    );
    let _ = twin.kill();
    let _ = twin.wait();
}

/// A process moved into a cgroup named like a docker container's shows that path
/// and id; its twin in the root cgroup shows no container id.
#[test]
fn a_process_in_a_container_cgroup_shows_its_cgroup_and_id() {
    let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(std::path::Path::new)
        .find(|dir| dir.join("cgroup.procs").exists() && !dir.join("cpu").exists());
    let Some(root) = root.filter(|_| common::is_root()) else {
        return skip(
            "a_process_in_a_container_cgroup_shows_its_cgroup_and_id",
            "needs root and a cgroup v2 hierarchy",
        );
    };
    let id = format!("{:016x}", std::process::id()).repeat(4);
    let name = format!("docker-{id}.scope");
    let dir = root.join(&name);
    if let Err(e) = std::fs::create_dir(&dir) {
        return skip(
            "a_process_in_a_container_cgroup_shows_its_cgroup_and_id",
            format!("cannot create a cgroup: {e}"),
        );
    }
    let mut inside = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("sleep");
    let mut outside = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("sleep");
    let moved = std::fs::write(dir.join("cgroup.procs"), inside.id().to_string());
    let host = host();
    let cgroup = signature_cell(&host, inside.id() as i32, "cgroup");
    let container = signature_cell(&host, inside.id() as i32, "container_id");
    let twin = signature_cell(&host, outside.id() as i32, "container_id");
    for child in [&mut inside, &mut outside] {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir(&dir);
    moved.expect("move the child into the cgroup");
    assert_eq!(cgroup, Value::Text(format!("/{name}")));
    assert_eq!(container, Value::Text(id));
    assert_eq!(twin, Value::from(""));
}

/// TCP listeners in this namespace (read through sock_diag netlink) and in another
/// one (netlink cannot see it: read from that process's /proc tcp tables) are both
/// reported exactly, in one full scan and in pid scans.
#[test]
fn tcp_listeners_in_own_and_another_namespace() {
    let body = r#"
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("0.0.0.0", 0)); s.listen(1)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s6.bind(("::", 0)); s6.listen(1)
out("pid", os.getpid()); out("fd", s.fileno()); out("port", s.getsockname()[1]); out("ino", ino(s))
out("fd6", s6.fileno()); out("port6", s6.getsockname()[1]); out("ino6", ino(s6))
ready()
"#;
    let mut here = std::process::Command::new("python3");
    here.arg("-c").arg(script(body));
    let here = spawn_ready(here).expect("python3 TCP listener");
    let mut there = std::process::Command::new("unshare");
    there.arg("-n").arg("python3").arg("-c").arg(script(body));
    let there = match spawn_ready(there) {
        Ok(child) => Some(child),
        Err(e) => {
            skip("tcp in another netns", format!("unshare -n failed: {e}"));
            None
        }
    };
    let host = host();
    let tcp = ProtocolSet {
        tcp: true,
        ..ProtocolSet::NONE
    };
    let full = host.sockets(&SocketQuery {
        pids: None,
        protocols: tcp,
    });
    for child in std::iter::once(&here).chain(there.as_ref()) {
        let namespace = host.process(child.pid).expect("child").net_namespace;
        let listener = |fd: &str, port: &str, ino: &str, family, address: &str| SocketInfo {
            pid: child.pid,
            fd: child.int(fd),
            socket: child.int(ino) as u64,
            family,
            protocol: 6,
            socket_type: SocketType::Stream,
            local_address: address.into(),
            local_port: child.int(port) as i32,
            remote_address: address.into(),
            remote_port: 0,
            tcp_state: "LISTEN".into(),
            net_namespace: namespace.clone(),
        };
        let v4 = listener("fd", "port", "ino", FAMILY_INET, "0.0.0.0");
        let v6 = listener("fd6", "port6", "ino6", FAMILY_INET6, "::");
        let alone = host.sockets(&SocketQuery {
            pids: Some(vec![child.pid]),
            protocols: tcp,
        });
        for expected in [&v4, &v6] {
            assert_eq!(&by_fd(&full, child.pid, expected.fd), expected);
            assert_eq!(&by_fd(&alone, child.pid, expected.fd), expected);
        }
    }
    if let Some(there) = &there {
        let theirs = host.process(there.pid).expect("child").net_namespace;
        assert_ne!(theirs, own_namespace(&host));
    }
}

/// A package built by the real `rpmbuild` and installed by the real `rpm` into a
/// private rpmdb (SQLite backend): its files are `package` with authority `rpm`
/// (a running binary through /proc/<pid>/exe, a script, a %config file), a
/// modified file is `invalid`, an unowned neighbour `unsigned`.
#[test]
fn rpm_owned_files_through_a_real_rpm_database() {
    let test = "rpm_owned_files_through_a_real_rpm_database";
    let (Some(rpm), Some(rpmbuild)) = (common::which("rpm"), common::which("rpmbuild")) else {
        return skip(
            test,
            "rpm and rpmbuild are not installed (apt-get install rpm)",
        );
    };
    let work = tempfile::tempdir().expect("tempdir");
    let prefix = tempfile::tempdir().expect("install prefix");
    let prefix_path = prefix.path().canonicalize().unwrap();
    let pfx = prefix_path.display().to_string();
    let top = work.path().join("top");
    std::fs::create_dir_all(top.join("SPECS")).unwrap();
    let spec = top.join("SPECS/demo.spec");
    std::fs::write(
        &spec,
        format!(
            "Name: an1256-rpm-demo\nVersion: 1.0\nRelease: 1\nSummary: an1256 test package\n\
             License: MIT\n%global debug_package %{{nil}}\n%global __os_install_post %{{nil}}\n\
             %description\nTest package.\n%install\n\
             mkdir -p %{{buildroot}}{pfx}/bin %{{buildroot}}{pfx}/etc\n\
             cp /bin/sleep %{{buildroot}}{pfx}/bin/pinger\n\
             printf '#!/bin/sh\\necho hi\\n' > %{{buildroot}}{pfx}/bin/helper.sh\n\
             echo setting > %{{buildroot}}{pfx}/etc/demo.conf\n\
             %files\n{pfx}/bin/pinger\n{pfx}/bin/helper.sh\n%config {pfx}/etc/demo.conf\n"
        ),
    )
    .unwrap();
    let built = std::process::Command::new(&rpmbuild)
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("-bb")
        .arg(&spec)
        .output()
        .expect("rpmbuild");
    assert!(
        built.status.success(),
        "rpmbuild failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let package = std::fs::read_dir(top.join("RPMS"))
        .unwrap()
        .flat_map(|arch| std::fs::read_dir(arch.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "rpm"))
        .expect("built rpm");
    let db = work.path().join("rpmdb");
    let installed = std::process::Command::new(&rpm)
        .arg("--dbpath")
        .arg(&db)
        .args(["-i", "--nodeps", "--noscripts", "--replacefiles"])
        .arg(&package)
        .output()
        .expect("rpm -i");
    if !installed.status.success() {
        return skip(
            test,
            format!(
                "rpm -i refused here: {}",
                String::from_utf8_lossy(&installed.stderr)
            ),
        );
    }
    assert!(db.join("rpmdb.sqlite").exists(), "rpm used another backend");
    let host = LinuxHost::new(HostConfig {
        rpm_root: db.clone(),
        ..HostConfig::default()
    });

    // The running binary, judged through /proc/<pid>/exe.
    let pinger = prefix_path.join("bin/pinger");
    let mut child = std::process::Command::new(&pinger)
        .arg("30")
        .spawn()
        .expect("run the packaged binary");
    let process = host.process(child.id() as i32).expect("process");
    let id = host.process_identity(&process);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        (id.trust, id.authority.as_str(), id.identifier.as_str()),
        (Trust::Package, "rpm", "an1256-rpm-demo"),
        "{id:?}"
    );
    assert_eq!(id.sha256, sha256_of(&pinger));
    for file in ["bin/helper.sh", "etc/demo.conf"] {
        let id = host.file_identity(prefix_path.join(file).to_str().unwrap());
        assert_eq!(
            (id.trust, id.authority.as_str()),
            (Trust::Package, "rpm"),
            "{file}: {id:?}"
        );
    }
    // Tampered after install: the header's SHA-256 no longer matches.
    let helper = prefix_path.join("bin/helper.sh");
    std::fs::write(&helper, "#!/bin/sh\necho tampered\n").unwrap();
    let id = host.file_identity(helper.to_str().unwrap());
    assert_eq!(id.trust, Trust::Invalid, "{id:?}");
    assert!(id.error.contains("an1256-rpm-demo"), "{}", id.error);
    // Not in the package: unsigned.
    let stranger = prefix_path.join("bin/stranger");
    common::copy_executable(&pinger, &stranger);
    let id = host.file_identity(stranger.to_str().unwrap());
    assert_eq!(id.trust, Trust::Unsigned, "{id:?}");
}

/// The attacker helper really drops privileges: the child's real and effective ids
/// are the created user's, with no supplementary groups.
#[test]
fn attacker_helper_runs_unprivileged() {
    if !common::is_root() {
        return common::skip("attacker_helper_runs_unprivileged", "needs root");
    }
    let attacker = common::attacker("smoke");
    assert_ne!(attacker.uid, 0);
    let out = attacker
        .command("sh")
        .args([
            "-c",
            "id -u; id -G; echo $HOME; touch /root/.a1256-should-fail 2>/dev/null && echo wrote",
        ])
        .output()
        .expect("run as attacker");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], attacker.uid.to_string(), "{text}");
    assert_eq!(
        lines[1],
        attacker.gid.to_string(),
        "no supplementary groups: {text}"
    );
    assert_eq!(lines[2], attacker.home.to_string_lossy(), "{text}");
    assert!(
        !text.contains("wrote"),
        "the attacker could write /root: {text}"
    );
}

/// A process image's stamp (the per-process cache key) holds while it runs and
/// changes when the process execs the same program with the same argv (pid and
/// start time stay): a fact cached for the old image never answers for the new.
#[test]
fn an_exec_of_the_same_program_and_argv_changes_the_process_stamp() {
    use an1256::platform::linux::procfs::ProcDir;
    let dir = tempfile::tempdir().expect("tempdir");
    let go = dir.path().join("go");
    let again = dir.path().join("again");
    let up = dir.path().join("up");
    // `sys.orig_argv`, not `sys.argv` (just `['-c']` under `-c`): an exec with
    // that would start a python that reads stdin and exits, leaving a zombie
    // with no stamp. The new image says it is up, then waits.
    let code = format!(
        "import os, sys, time\n\
         if os.path.exists({again:?}):\n    open({up:?}, 'w').close()\n    time.sleep(600)\n\
         print('ready', flush=True)\n\
         while not os.path.exists({go:?}):\n    time.sleep(0.02)\n\
         open({again:?}, 'w').close()\n\
         os.execv(sys.executable, sys.orig_argv)\n",
        go = go.display().to_string(),
        again = again.display().to_string(),
        up = up.display().to_string()
    );
    let child = spawn_ready(python(&code)).expect("python child");
    let cmdline = |pid: i32| std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    let argv_before = cmdline(child.pid);
    let Some(before) = ProcDir::open(child.pid).expect("proc dir").stamp() else {
        skip(
            "an_exec_of_the_same_program_and_argv_changes_the_process_stamp",
            "address-space randomization is off here: nothing is cached",
        );
        return;
    };
    let host = host();
    let libs = host.mapped_libraries(child.pid).expect("mappings");
    assert_eq!(ProcDir::open(child.pid).unwrap().stamp(), Some(before));
    assert_eq!(host.mapped_libraries(child.pid).expect("cached"), libs);
    std::fs::write(&go, b"").expect("go");
    // Generous: python starts twice on a loaded machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !up.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the new image never came up: marker {}",
            again.exists()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The premise: the same program with the same argv.
    assert_eq!(cmdline(child.pid), argv_before, "not the same argv");
    let after = ProcDir::open(child.pid)
        .expect("proc dir")
        .stamp()
        .expect("the new image has a stamp");
    assert_eq!(
        (after.pid, after.start_ticks, after.executable),
        (before.pid, before.start_ticks, before.executable)
    );
    assert_ne!(after.layout, before.layout);
}

/// Red-team finding 7: under `setarch -R` (no layout randomization) an attacker
/// execs the same python with argv and environment of the same sizes, and
/// clears `ADDR_NO_RANDOMIZE` from its personality after each exec: the second
/// image has the first one's pid, start time and layout. The libraries the
/// second image maps (a SOCKS preload) must be read fresh, never answered from
/// what was read for the first. Its benign twin, a plain (randomized) process,
/// keeps a stamp and is cached.
#[test]
fn a_setarch_exec_into_the_old_layout_never_reuses_the_old_images_facts() {
    use an1256::platform::linux::procfs::ProcDir;
    const TEST: &str = "a_setarch_exec_into_the_old_layout_never_reuses_the_old_images_facts";
    if !common::is_root() {
        return skip(TEST, "needs root (attacker user)");
    }
    let Some(setarch) = common::which("setarch") else {
        return skip(TEST, "setarch (util-linux) is not installed");
    };
    let Some(library) = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/lib64",
    ]
    .iter()
    .map(|dir| std::path::Path::new(dir).join("libz.so.1"))
    .find(|p| p.is_file()) else {
        return skip(TEST, "no libz.so.1 to stand in for libproxychains");
    };
    let user = common::attacker("setarch-stamp");
    let preload = user.home.join("libproxychains.so.4");
    common::copy_executable(&library, &preload);
    let preload = preload.display().to_string();
    let (go, again) = (user.home.join("go"), user.home.join("again"));
    // Stage one clears ADDR_NO_RANDOMIZE (the old check looked at it), waits,
    // sets it again and execs itself with the same argv and, in place of a
    // padding variable, LD_PRELOAD of the same length.
    let code = format!(
        "import ctypes, os, sys, time\n\
         libc = ctypes.CDLL(None)\n\
         libc.personality(0)\n\
         if os.path.exists({again:?}):\n    open({again:?} + '.up', 'w').close()\n    time.sleep(600)\n\
         print('ready', flush=True)\n\
         while not os.path.exists({go:?}):\n    time.sleep(0.02)\n\
         open({again:?}, 'w').close()\n\
         libc.personality(0x0040000)\n\
         env = {{(b'LD_PRELOAD' if k == b'XX_PRELOAD' else k): v for k, v in os.environb.items()}}\n\
         argv = open('/proc/self/cmdline', 'rb').read().split(b'\\0')[:-1]\n\
         os.execve('/usr/bin/python3', argv, env)\n",
        go = go.display().to_string(),
        again = again.display().to_string()
    );
    let mut command = user.command(&setarch);
    command
        .env("XX_PRELOAD", &preload)
        .args(["-R", "/usr/bin/python3", "-c", &code]);
    let child = spawn_ready(command).expect("stage one");
    let layout = |pid: i32| -> Vec<String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let rest: Vec<String> = stat[stat.rfind(')').expect("comm") + 2..]
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        [22, 26, 27, 28, 45, 46, 47, 48, 49, 50, 51]
            .iter()
            .map(|n| rest[n - 3].clone())
            .collect()
    };
    let before = layout(child.pid);
    let host = host();
    let first = host
        .mapped_libraries(child.pid)
        .expect("stage one's mappings");
    assert!(!first.iter().any(|l| l == &preload), "{first:?}");
    std::fs::write(&go, b"").expect("go");
    let up = user.home.join("again.up");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !up.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "stage two never came up"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        layout(child.pid),
        before,
        "the attack needs the same start time and layout"
    );
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{}/personality", child.pid))
            .expect("personality")
            .trim(),
        "00000000"
    );
    let second = host
        .mapped_libraries(child.pid)
        .expect("stage two's mappings");
    assert!(
        second.iter().any(|l| l == &preload),
        "the preload of the second image was not read fresh: {second:?}"
    );
    assert_eq!(
        ProcDir::open(child.pid).expect("proc dir").stamp(),
        None,
        "an image the kernel did not randomize is never cached"
    );

    // The benign twin: a randomized process has a stamp, and its facts hold.
    let mut twin = user.command("/usr/bin/python3");
    twin.args([
        "-c",
        "import time\nprint('ready', flush=True)\ntime.sleep(600)",
    ]);
    let twin = spawn_ready(twin).expect("twin");
    let stamp = ProcDir::open(twin.pid).expect("proc dir").stamp();
    assert!(stamp.is_some(), "a randomized image is cached");
    let libs = host.mapped_libraries(twin.pid).expect("twin's mappings");
    assert!(
        !libs.iter().any(|l| l.contains("libproxychains")),
        "{libs:?}"
    );
    assert_eq!(host.mapped_libraries(twin.pid).expect("cached"), libs);
}

/// `missing_since_start` against a real process's start: a path missing below a
/// directory made before the process started is shown missing at start; after an
/// entry there is made and removed (its ctime now), or for a process (this test)
/// that started before the directory existed, it is not.
#[test]
fn a_path_is_missing_since_start_only_below_a_directory_older_than_the_start() {
    let host = host();
    let dir = tempfile::tempdir().expect("tempdir");
    let site = dir.path().join("lib/python3.11/site-packages");
    let site = site.to_str().expect("utf-8");
    let this_test = i32::try_from(std::process::id()).expect("pid");
    assert!(!host.missing_since_start(this_test, site), "started before");
    // Past a clock tick and a coarse timestamp's jiffy.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let child = spawn_ready(python(&script("ready()"))).expect("child");
    assert!(
        host.missing_since_start(child.pid, site),
        "missing at start"
    );
    std::fs::create_dir_all(dir.path().join("lib/python3.11")).expect("mkdir");
    assert!(
        !host.missing_since_start(child.pid, site),
        "made after start"
    );
    std::fs::remove_dir_all(dir.path().join("lib")).expect("rmdir");
    assert!(
        !host.missing_since_start(child.pid, site),
        "removed after start"
    );
}

/// `PF_KTHREAD` marks kernel threads (the watch does not watch them); no
/// process can set it, whatever it names itself.
#[test]
fn only_kernel_threads_are_marked_kernel_threads() {
    let host = host();
    let kthreadd = host.process(2).expect("kthreadd");
    assert!(kthreadd.kernel_thread, "{kthreadd:?}");
    let mut child = spawn_ready(python(
        "import ctypes\nctypes.CDLL(None).prctl(15, b'kthreadd', 0, 0, 0)\n\
         print('ready', flush=True)\nimport time\ntime.sleep(600)",
    ))
    .expect("child");
    let named = host.process(child.pid).expect("child");
    assert_eq!(named.name, "kthreadd", "it renamed itself");
    assert!(!named.kernel_thread);
    child.kill();
}

/// The socket scan reads each TCP client's environment through the directory
/// that named its fds, so the SOCKS check opens no process again: a client in
/// its own user and mount namespace (an unprivileged user's) and its twin in
/// the host's are read alike; a process holding only a listener, and every
/// holder in the owners-only scan a `pid =` check asks for, have nothing read.
/// By the fd iterator and by the walk alike.
#[test]
fn a_scan_reads_each_tcp_clients_environment_with_its_sockets() {
    const TEST: &str = "a_scan_reads_each_tcp_clients_environment_with_its_sockets";
    if !common::is_root() {
        return skip(TEST, "needs root (attacker user)");
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("address").port();
    let client = format!(
        "import socket, time\ns = socket.create_connection(('127.0.0.1', {port}))\n\
         print('ready', flush=True)\ntime.sleep(600)"
    );
    let user = common::attacker("scan-environment");
    let mut command = user.command("unshare");
    command
        .args(["-Urm", "python3", "-c", &client])
        .env("ALL_PROXY", format!("socks5://127.0.0.1:{port}"));
    let Ok(inside) = spawn_ready(command) else {
        return skip(TEST, "unprivileged user namespaces are not available");
    };
    let mut twin = user.python(&client);
    twin.env("ALL_PROXY", format!("socks5://127.0.0.1:{port}"));
    let twin = spawn_ready(twin).expect("twin");
    let only_listening = spawn_ready(python(&script(
        "l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()\nready()",
    )))
    .expect("listener");
    let tcp = ProtocolSet {
        tcp: true,
        ..ProtocolSet::NONE
    };
    for fd_iterator in [true, false] {
        let host = LinuxHost::new(HostConfig {
            fd_iterator,
            ..HostConfig::default()
        });
        let pids = vec![inside.pid, twin.pid, only_listening.pid];
        for pids in [None, Some(pids)] {
            let what = format!("fd_iterator {fd_iterator}, pids {pids:?}");
            let scan = host.sockets(&SocketQuery {
                pids: pids.clone(),
                protocols: tcp,
            });
            let proxy = format!("ALL_PROXY=socks5://127.0.0.1:{port}");
            for pid in [inside.pid, twin.pid] {
                let read = scan
                    .environments
                    .get(&pid)
                    .unwrap_or_else(|| panic!("{what}: {pid} not read: {scan:?}"));
                assert!(
                    read.variables.as_ref().is_some_and(|v| v.contains(&proxy)),
                    "{what}: {pid}: {read:?}"
                );
            }
            assert!(
                scan.sockets.iter().any(|s| s.pid == only_listening.pid),
                "{what}: the listener is seen"
            );
            assert!(
                !scan.environments.contains_key(&only_listening.pid),
                "{what}: a listener's holder is no client"
            );
            let owners_only = an1256::platform::linux::sockets::scan(
                &SocketQuery {
                    pids,
                    protocols: tcp,
                },
                fd_iterator,
                false,
                an1256::platform::linux::sockets::LibraryPassUse::Never,
            );
            assert!(
                owners_only.sockets.iter().any(|s| s.pid == twin.pid),
                "{what}: owners-only scan sees the twin"
            );
            assert!(owners_only.environments.is_empty(), "{what}: nothing read");
        }
    }
}
