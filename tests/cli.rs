//! The command line end to end: `an1256 scan` finds a real unsigned process with a
//! UDP socket, `an1256 query` runs the AN1256 JOIN through the embedded engine, bad
//! SQL fails with SQLite's message and exit code 2.

mod common;

use common::spawn_ready;
use sha2::{Digest, Sha256};
use std::process::Command;

const UDP_CHILD: &str = "import socket,sys,time\n\
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
s.bind(('127.0.0.1',0))\n\
print('port=%d' % s.getsockname()[1]); print('ready', flush=True)\n\
time.sleep(60)\n";

/// A copy of the real python binary under a name that is no interpreter: an
/// unsigned, unknown binary that opens a UDP socket.
fn unsigned_udp_binary(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let python =
        std::fs::canonicalize("/usr/bin/python3").expect("Debian python3 at /usr/bin/python3");
    let copy = dir.join("updater");
    common::copy_executable(&python, &copy);
    let sha = format!(
        "{:x}",
        Sha256::digest(std::fs::read(&copy).expect("read copy"))
    );
    (copy, sha)
}

/// Runs the CLI with a private baseline store, so tests never touch the host's
/// real one (`/var/lib/an1256` when root).
fn an1256(args: &[&str]) -> std::process::Output {
    let store = tempfile::tempdir().expect("tempdir");
    let config = store.path().join("config.json");
    std::fs::write(&config, "{}").expect("write config");
    Command::new(env!("CARGO_BIN_EXE_an1256"))
        .args(args)
        .env("AN1256_DB", store.path().join("an1256.db"))
        .env("AN1256_CONFIG", &config)
        .output()
        .expect("run an1256")
}

fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

#[test]
fn scan_reports_an_unsigned_binary_with_a_udp_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (binary, sha) = unsigned_udp_binary(dir.path());
    let mut command = Command::new(&binary);
    command.arg("-c").arg(UDP_CHILD);
    let child = spawn_ready(command).unwrap_or_else(|e| panic!("child: {e}"));
    let port = child.int("port");

    let out = an1256(&["scan", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "hits exit 1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hits = json_lines(&out.stdout);
    let hit = hits
        .iter()
        .find(|h| h["pid"] == child.pid)
        .unwrap_or_else(|| panic!("no hit for pid {}: {hits:?}", child.pid));
    assert_eq!(hit["subject_kind"], "binary");
    assert_eq!(hit["subject_path"], binary.to_str().unwrap());
    assert_eq!(hit["trust"], "unsigned");
    assert_eq!(hit["sha256"], sha.as_str());
    assert_eq!(hit["subject_identity"], format!("sha256:{sha}"));
    assert_eq!(hit["protocol_name"], "udp");
    assert_eq!(hit["local_address"], "127.0.0.1");
    assert_eq!(hit["local_port"], port);
    assert_eq!(hit["state"], "bound");
    assert_eq!(hit["reason"], "udp_socket");

    // The human view names the same process.
    let table = an1256(&["scan"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("unsigned"), "{text}");
}

#[test]
fn query_runs_the_join_through_the_embedded_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (binary, sha) = unsigned_udp_binary(dir.path());
    let mut command = Command::new(&binary);
    command.arg("-c").arg(UDP_CHILD);
    let child = spawn_ready(command).unwrap_or_else(|e| panic!("child: {e}"));
    let sql = format!(
        "SELECT s.pid, s.local_port, c.sha256, c.trusted, c.subject_trusted \
         FROM nonstandard_protocol_sockets s JOIN process_code_signature c ON c.pid = s.pid \
         WHERE s.pid IN ({}, 1) AND s.protocol_name = 'udp'",
        child.pid
    );
    let out = an1256(&["query", "--json", &sql]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = json_lines(&out.stdout);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["pid"], child.pid);
    assert_eq!(rows[0]["local_port"], child.int("port"));
    assert_eq!(rows[0]["sha256"], sha.as_str());
    assert_eq!(rows[0]["trusted"], 0);
    assert_eq!(rows[0]["subject_trusted"], 0);
}

#[test]
fn bad_sql_exits_2_with_sqlites_message() {
    let out = an1256(&["query", "SELEC pid FROM process_code_signature"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("syntax error"), "{err}");

    let out = an1256(&[
        "query",
        "SELECT no_such_column FROM nonstandard_protocol_sockets",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such column"));
}

#[test]
fn tables_prints_every_column_with_its_doc() {
    let out = an1256(&["tables"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for column in an1256::tables::process_code_signature::COLUMNS
        .iter()
        .chain(an1256::tables::nonstandard_protocol_sockets::COLUMNS)
    {
        assert!(!column.doc.is_empty(), "{} has no doc", column.name);
        assert!(
            text.contains(&format!("| `{}` |", column.name)),
            "{}",
            column.name
        );
    }
}

#[test]
fn socks_port_list_comes_from_the_command_line() {
    // A listener and a client connected to it, both in one python process.
    let child = spawn_ready(common::python(
        "import socket,time\n\
         l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(1)\n\
         c=socket.create_connection(l.getsockname()); a,_=l.accept()\n\
         print('port=%d' % l.getsockname()[1]); print('ready', flush=True)\n\
         time.sleep(60)\n",
    ))
    .unwrap_or_else(|e| panic!("child: {e}"));
    let port = child.int("port").to_string();
    let sql = format!(
        "SELECT reason, remote_port FROM nonstandard_protocol_sockets \
         WHERE pid = {} AND protocol_name = 'socks'",
        child.pid
    );
    let plain = an1256(&["query", "--json", &sql]);
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(
        json_lines(&plain.stdout).is_empty(),
        "no SOCKS signal, no row"
    );

    let listed = an1256(&["--socks-ports", &port, "query", "--json", &sql]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let rows = json_lines(&listed.stdout);
    // The client, and the listener: a listener on a SOCKS port is a server.
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["reason"], "socks_port,socks_server");
    assert_eq!(rows[0]["remote_port"], 0);
    assert_eq!(rows[1]["reason"], "socks_port");
    assert_eq!(rows[1]["remote_port"].to_string(), port);

    let bad = an1256(&["--socks-ports", "70000", "query", "SELECT 1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--socks-ports"));
}

#[test]
fn the_sampler_observes_socks_connections_too() {
    let child = spawn_ready(common::python(
        "import socket,time\n\
         l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(1)\n\
         c=socket.create_connection(l.getsockname()); a,_=l.accept()\n\
         print('port=%d' % l.getsockname()[1]); print('ready', flush=True)\n\
         time.sleep(60)\n",
    ))
    .unwrap_or_else(|e| panic!("child: {e}"));
    let port = child.int("port");
    let store = tempfile::tempdir().expect("tempdir");
    let config = store.path().join("config.json");
    std::fs::write(&config, format!("{{\"socks_ports\": [{port}]}}")).expect("config");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_an1256"))
            .args(args)
            .env("AN1256_DB", store.path().join("an1256.db"))
            .env("AN1256_CONFIG", &config)
            .output()
            .expect("run an1256")
    };
    let sample = run(&["baseline", "sample"]);
    assert!(
        sample.status.success(),
        "{}",
        String::from_utf8_lossy(&sample.stderr)
    );
    let out = run(&[
        "query",
        "--json",
        &format!(
            "SELECT protocol_name, remote_port, pid FROM an1256_observations \
             WHERE protocol_name = 'socks' AND remote_port = {port}"
        ),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = json_lines(&out.stdout);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["pid"], child.pid);
}
