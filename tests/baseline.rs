//! The baseline end to end on the real host: real child processes open real
//! sockets, the pack's own queries run through the embedded SQLite engine over
//! the native backend, and approvals go through the CLI binary and SQL INSERT.

mod common;

use an1256::baseline::store::{Entry, Observation, Source, Store};
use an1256::baseline::Baseline;
use an1256::cli::packs::{hit_query, pack_queries};
use an1256::platform::{self, HostConfig};
use an1256::settings::{ObservationLimits, Settings};
use an1256::sql::Engine;
use common::{python, skip, spawn_ready, ReadyChild};
use rusqlite::types::Value as SqlValue;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// A baseline over the native host with its store in `dir`.
fn baseline_in(dir: &Path, learning_secs: i64) -> Arc<Baseline> {
    let mut settings = Settings::with_db(dir.join("store/an1256.db"));
    settings.policy_path = dir.join("policy.json");
    settings.learning_secs = learning_secs;
    let host: Arc<dyn platform::Host> = Arc::from(platform::native(HostConfig::default()));
    Arc::new(Baseline::new(settings, host))
}

fn engine(baseline: &Arc<Baseline>) -> Engine {
    let host = baseline.host().clone();
    Engine::new(an1256::all_tables(host, baseline.clone())).expect("engine")
}

type Rows = Vec<HashMap<String, SqlValue>>;

fn run(engine: &Engine, sql: &str) -> Rows {
    let (columns, rows) = engine
        .query(sql)
        .unwrap_or_else(|e| panic!("query failed: {e}\n{sql}"));
    rows.into_iter()
        .map(|r| columns.iter().cloned().zip(r).collect())
        .collect()
}

fn int(row: &HashMap<String, SqlValue>, key: &str) -> i64 {
    match row.get(key) {
        Some(SqlValue::Integer(i)) => *i,
        other => panic!("{key} is not an integer: {other:?}"),
    }
}

fn text(row: &HashMap<String, SqlValue>, key: &str) -> String {
    match row.get(key) {
        Some(SqlValue::Text(t)) => t.clone(),
        other => panic!("{key} is not text: {other:?}"),
    }
}

/// Hit rows (the pack's an1256_hits) of one process.
fn hits_of(engine: &Engine, pid: i32) -> Rows {
    let sql = hit_query().expect("pack hit query");
    run(engine, &sql)
        .into_iter()
        .filter(|r| int(r, "pid") == i64::from(pid))
        .collect()
}

fn subject_identity(engine: &Engine, pid: i32) -> String {
    let rows = run(
        engine,
        &format!("SELECT subject_identity, subject_trusted FROM process_code_signature WHERE pid = {pid}"),
    );
    assert_eq!(rows.len(), 1, "process {pid} not found");
    text(&rows[0], "subject_identity")
}

const UDP_PROGRAM: &str = r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_port = htons(4789);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof to) != 0) { printf("error=socket\n"); return 1; }
    printf("fd=%d\nready\n", fd);
    fflush(stdout);
    sleep(120);
    return 0;
}
"#;

/// Compiles the tiny unsigned UDP program into `dir`; `None` (skip) without cc.
fn compile_udp_program(dir: &Path) -> Option<PathBuf> {
    let source = dir.join("udp.c");
    std::fs::write(&source, UDP_PROGRAM).unwrap();
    let binary = dir.join("udp-client");
    match Command::new("cc")
        .arg("-O0")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
    {
        Ok(out) if out.status.success() => Some(binary),
        Ok(out) => {
            skip(
                "unsigned binary",
                format!("cc failed: {}", String::from_utf8_lossy(&out.stderr)),
            );
            None
        }
        Err(e) => {
            skip(
                "unsigned binary",
                format!("no C compiler (install gcc): {e}"),
            );
            None
        }
    }
}

/// An empty config file beside the store, so the host's /etc/an1256 is not read.
fn test_config(db: &Path) -> PathBuf {
    let config = db.with_extension("config.json");
    std::fs::write(&config, "{}").unwrap();
    config
}

fn an1256_cli(db: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_an1256"))
        .arg("--db")
        .arg(db)
        .arg("--config")
        .arg(test_config(db))
        .arg("baseline")
        .args(args)
        .output()
        .expect("run an1256")
}

#[test]
fn unsigned_udp_binary_is_a_hit_until_approved_and_again_once_modified() {
    let dir = tempfile::tempdir().unwrap();
    let Some(binary) = compile_udp_program(dir.path()) else {
        return;
    };
    // Learning off: only approvals count.
    let baseline = baseline_in(dir.path(), 0);
    let engine = engine(&baseline);
    let db = baseline.settings.db_path.clone();

    let child = spawn_ready(Command::new(&binary)).expect("udp program");
    let hits = hits_of(&engine, child.pid);
    assert_eq!(hits.len(), 1, "one hit for the one UDP socket: {hits:?}");
    let identity = subject_identity(&engine, child.pid);
    assert!(identity.starts_with("sha256:"), "{identity}");
    assert_eq!(text(&hits[0], "protocol_name"), "udp");
    assert_eq!(int(&hits[0], "remote_port"), 4789);
    assert_eq!(text(&hits[0], "subject_identity"), identity);
    assert_eq!(text(&hits[0], "trust"), "unsigned");

    // Approve through the CLI (another process, its own connection).
    let out = an1256_cli(
        &db,
        &[
            "approve",
            &identity,
            "--protocol",
            "udp",
            "--port",
            "4789",
            "--note",
            "test tool",
        ],
    );
    assert!(
        out.status.success(),
        "approve: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(hits_of(&engine, child.pid).is_empty(), "approved: no hit");
    let rows = run(
        &engine,
        &format!("SELECT * FROM an1256_baseline WHERE identity = '{identity}'"),
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (text(&rows[0], "source"), text(&rows[0], "note")),
        ("approved".into(), "test tool".into())
    );

    // Revoke through SQL DELETE, approve again through SQL INSERT (any port).
    let id = int(&rows[0], "entry_id");
    let deleted = engine
        .connection()
        .execute("DELETE FROM an1256_baseline WHERE entry_id = ?1", [id])
        .expect("delete");
    assert_eq!(deleted, 1);
    assert_eq!(hits_of(&engine, child.pid).len(), 1, "revoked: a hit again");
    engine
        .connection()
        .execute(
            "INSERT INTO an1256_baseline (identity, protocol_name, remote_port, note) VALUES (?1, 'udp', -1, 'sql')",
            [&identity],
        )
        .expect("insert");
    assert!(hits_of(&engine, child.pid).is_empty(), "inserted: no hit");
    // An approval for another protocol does not cover UDP.
    let out = an1256_cli(&db, &["list", "--json"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(&identity) && listed.contains("\"sql\""),
        "{listed}"
    );

    // The same program, modified by one byte: a new sha256, a new subject, a hit.
    let modified = dir.path().join("udp-client-modified");
    let mut bytes = std::fs::read(&binary).unwrap();
    bytes.push(0);
    std::fs::write(&modified, &bytes).unwrap();
    std::fs::set_permissions(
        &modified,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let changed = spawn_ready(Command::new(&modified)).expect("modified program");
    let new_identity = subject_identity(&engine, changed.pid);
    assert_ne!(new_identity, identity);
    assert_eq!(
        hits_of(&engine, changed.pid).len(),
        1,
        "modified binary is a hit"
    );
    assert!(
        hits_of(&engine, child.pid).is_empty(),
        "original still approved"
    );
}

/// A child holding an ICMP socket (ping socket, else raw) until killed.
fn icmp_child() -> Option<ReadyChild> {
    let code = r#"
import socket, sys, time
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    print("kind=ping")
except PermissionError:
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        print("kind=raw")
    except PermissionError:
        print("error=EPERM"); sys.exit(0)
s.connect(("127.0.0.1", 0))
print("ready", flush=True)
time.sleep(120)
"#;
    match spawn_ready(python(code)) {
        Ok(child) => Some(child),
        Err(e) => {
            skip("icmp child", format!("no ICMP socket allowed here: {e}"));
            None
        }
    }
}

#[test]
fn short_lived_ping_socket_is_caught_by_hits_recent_after_a_sampler_pass() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = baseline_in(dir.path(), 0);
    let engine = engine(&baseline);
    let Some(mut child) = icmp_child() else {
        return;
    };
    let pid = child.pid;
    let identity = subject_identity(&engine, pid);
    let report = baseline.sample().expect("sampler pass");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.sockets > 0 && report.processes > 0);
    let live = hits_of(&engine, pid);
    assert_eq!(live.len(), 1, "{live:?}");
    child.kill(); // the socket is gone before the scheduled query runs
    assert!(
        hits_of(&engine, pid).is_empty(),
        "the live query cannot see it any more"
    );

    let queries = pack_queries().unwrap();
    let recent = &queries["an1256_hits_recent"].query;
    let rows: Rows = run(&engine, recent)
        .into_iter()
        .filter(|r| text(r, "subject_identity") == identity)
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(text(&rows[0], "protocol_name"), "icmp");
    assert_eq!(int(&rows[0], "pid"), i64::from(pid));
    assert_eq!(text(&rows[0], "subject_kind"), "script");
    // Scored as the live hit was: untrusted inline code (python3 -c), new.
    assert_eq!(text(&rows[0], "script_kind"), "inline");
    for column in ["severity", "attack_techniques", "socket_type", "reason"] {
        assert_eq!(rows[0].get(column), live[0].get(column), "{column}");
    }
    assert!(int(&rows[0], "severity") >= 50, "{rows:?}");
    assert_eq!(text(&rows[0], "attack_techniques"), "T1095,T1059,T1027");

    // The sampler's cost is recorded and shown.
    let info = run(&engine, "SELECT * FROM an1256_info");
    assert_eq!(info.len(), 1);
    assert!(int(&info[0], "last_sample_time") > 0);
    assert!(int(&info[0], "observations") >= 1);
    eprintln!(
        "sampler pass: {} sockets, {} processes, {} ms wall, {} ms cpu",
        report.sockets, report.processes, report.wall_ms, report.cpu_ms
    );
}

/// As `user`, a python whose one UDP socket is connected to 127.0.0.2:`port` and,
/// once the file `switch-<tag>` appears in the home, to 127.0.0.3:`port` (it then
/// creates `switched-<tag>`).
fn udp_switching_child(user: &common::Attacker, tag: &str, port: u16) -> ReadyChild {
    let code = format!(
        r#"
import os, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def talk(address):
    s.connect((address, {port}))
    try:
        s.send(b"{tag}")
    except OSError:
        pass  # ICMP port unreachable from the first remote: nothing listens
talk("127.0.0.2")
print("ready", flush=True)
until = time.time() + 120
while not os.path.exists("switch-{tag}") and time.time() < until:
    time.sleep(0.05)
talk("127.0.0.3")
open("switched-{tag}", "w").close()
time.sleep(120)
"#
    );
    // `-s`: with the user site (which its user can change, even missing) the
    // key would be a class, which is approved only with --force.
    let mut command = user.command("python3");
    command.args(["-s", "-c", &code]);
    spawn_ready(command).unwrap_or_else(|e| panic!("udp child {tag}: {e}"))
}

/// Red-team finding 9: a process that sends to a first remote and later to a new
/// one (same protocol, port and scope) shows up in `an1256_hits_recent` with both
/// remotes, each first seen when it was; further passes add no rows. Real
/// sockets, unprivileged attacker, two sampler passes. Benign twin: the same
/// behaviour by a subject approved for udp/5998 stays out of hits_recent, though
/// its two remotes are observed.
#[test]
fn a_later_remote_is_not_masked_by_the_first_in_hits_recent() {
    if !common::is_root() {
        return skip("hits_recent remotes", "needs root (attacker user)");
    }
    let dir = tempfile::tempdir().unwrap();
    let baseline = baseline_in(dir.path(), 0);
    let engine = engine(&baseline);
    let user = common::attacker("newremote");
    let attacker = udp_switching_child(&user, "attack", 5998);
    let twin = udp_switching_child(&user, "twin", 5998);
    let attack_identity = subject_identity(&engine, attacker.pid);
    let twin_identity = subject_identity(&engine, twin.pid);
    assert_ne!(attack_identity, twin_identity);
    engine
        .connection()
        .execute(
            "INSERT INTO an1256_baseline (identity, protocol_name, remote_port) VALUES (?1, 'udp', 5998)",
            [&twin_identity],
        )
        .expect("approve the twin");

    // Errors about other processes (a loaded box, other tests' children exiting)
    // do not matter here: the rows below say whether these two were seen.
    let first = baseline.sample().expect("first sampler pass");
    if !first.errors.is_empty() {
        eprintln!("first pass errors: {:?}", first.errors);
    }
    for tag in ["attack", "twin"] {
        std::fs::write(user.home.join(format!("switch-{tag}")), b"").unwrap();
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ["attack", "twin"]
        .iter()
        .any(|tag| !user.home.join(format!("switched-{tag}")).exists())
    {
        assert!(std::time::Instant::now() < until, "children did not switch");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The later remote is seen in a later second than the first one.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    baseline.sample().expect("second sampler pass");
    baseline.sample().expect("third sampler pass");

    let recent = &pack_queries().unwrap()["an1256_hits_recent"].query;
    let rows = run(&engine, recent);
    let of = |identity: &str| -> Vec<(String, i64, i64)> {
        let mut found: Vec<(String, i64, i64)> = rows
            .iter()
            .filter(|r| text(r, "subject_identity") == identity)
            .map(|r| {
                (
                    text(r, "remote_address"),
                    int(r, "remote_port"),
                    int(r, "first_seen"),
                )
            })
            .collect();
        found.sort();
        found
    };
    let attack = of(&attack_identity);
    let remotes: Vec<(&str, i64)> = attack.iter().map(|(a, p, _)| (a.as_str(), *p)).collect();
    assert_eq!(
        remotes,
        [("127.0.0.2", 5998), ("127.0.0.3", 5998)],
        "{attack:?}"
    );
    assert!(attack[1].2 > attack[0].2, "first seen in order: {attack:?}");
    assert!(attack.iter().all(|r| {
        rows.iter().any(|row| {
            text(row, "remote_address") == r.0 && int(row, "pid") == i64::from(attacker.pid)
        })
    }));
    assert_eq!(of(&twin_identity), [], "the approved twin stays quiet");
    let observed = run(
        &engine,
        "SELECT remote_address FROM an1256_observations WHERE protocol_name = 'udp' AND remote_port = 5998",
    )
    .iter()
    .filter(|r| text(r, "remote_address").starts_with("127.0.0."))
    .count();
    assert_eq!(
        observed, 4,
        "both children's two remotes are observed, once each"
    );
}

fn udp_python_child(tag: &str) -> ReadyChild {
    let code = format!(
        r#"
import socket, time
# {tag}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", 5999))
print("ready", flush=True)
time.sleep(120)
"#
    );
    spawn_ready(python(&code)).expect("python udp child")
}

#[test]
fn learning_records_entries_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = baseline_in(dir.path(), 3600);
    let engine = engine(&baseline);
    let db = baseline.settings.db_path.clone();
    let info = run(&engine, "SELECT learning, learning_until FROM an1256_info");
    assert_eq!(int(&info[0], "learning"), 1);

    let first = udp_python_child("first");
    let first_identity = subject_identity(&engine, first.pid);
    // `script:<code>:<interpreter>` when the PATH's python3 is not a package's (pyenv).
    assert!(
        first_identity.starts_with("inline:") || first_identity.starts_with("script:"),
        "{first_identity}"
    );
    assert_eq!(
        hits_of(&engine, first.pid).len(),
        1,
        "before the pass it is a hit"
    );
    let report = baseline.sample().unwrap();
    assert!(report.learning && report.write.learned >= 1, "{report:?}");
    let learned = run(
        &engine,
        &format!("SELECT * FROM an1256_baseline WHERE identity = '{first_identity}'"),
    );
    assert_eq!(learned.len(), 1);
    assert_eq!(text(&learned[0], "source"), "learned");
    assert_eq!(
        (
            text(&learned[0], "protocol_name").as_str(),
            int(&learned[0], "remote_port")
        ),
        ("udp", 5999)
    );
    assert!(hits_of(&engine, first.pid).is_empty(), "learned: no hit");

    let out = an1256_cli(&db, &["learn", "--stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("learning: off"));
    let info = run(&engine, "SELECT learning FROM an1256_info");
    assert_eq!(int(&info[0], "learning"), 0);

    let second = udp_python_child("second");
    let second_identity = subject_identity(&engine, second.pid);
    assert_ne!(second_identity, first_identity);
    let report = baseline.sample().unwrap();
    assert!(!report.learning);
    assert_eq!(report.write.learned, 0);
    let none = run(
        &engine,
        &format!("SELECT * FROM an1256_baseline WHERE identity = '{second_identity}'"),
    );
    assert!(none.is_empty(), "nothing learned after --stop: {none:?}");
    assert_eq!(hits_of(&engine, second.pid).len(), 1, "not learned: a hit");
    assert!(hits_of(&engine, first.pid).is_empty(), "still learned");

    let out = an1256_cli(&db, &["learn", "--until", "2d"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("learning: on"));
}

#[test]
fn corrupt_store_files_are_moved_aside_and_serving_continues() {
    // 1. Not SQLite at all.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store/an1256.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::set_permissions(
        db.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let garbage = vec![0x5au8; 8192];
    std::fs::write(&db, &garbage).unwrap();
    let baseline = baseline_in(dir.path(), 0);
    let engine = engine(&baseline);
    let info = run(&engine, "SELECT * FROM an1256_info");
    assert_eq!(text(&info[0], "store_error"), "");
    assert_eq!(int(&info[0], "store_recovered"), 1);
    let events = text(&info[0], "recovery_events");
    assert!(events.contains(".corrupt-"), "{events}");
    let moved: Vec<PathBuf> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        std::fs::read(&moved[0]).unwrap(),
        garbage,
        "kept, not deleted"
    );
    // The fresh store serves reads and writes.
    engine
        .connection()
        .execute(
            "INSERT INTO an1256_baseline (identity, protocol_name) VALUES ('apple:com.example.x', 'icmp')",
            [],
        )
        .expect("insert into the fresh store");
    let rows = run(&engine, &hit_query().unwrap());
    let _ = rows; // the hit query runs (its content depends on the host)

    // 2. A real store whose pages were damaged.
    let dir2 = tempfile::tempdir().unwrap();
    let db2 = dir2.path().join("an1256.db");
    {
        let store = Store::open(&db2, 0).unwrap();
        let entries: Vec<Entry> = (0..2000)
            .map(|i| Entry {
                id: 0,
                identity: format!("path:/opt/tool-{i}-{}", "x".repeat(100)),
                protocol_name: "udp".into(),
                remote_port: -1,
                source: Source::Approved,
                first_seen: 0,
                last_seen: 0,
                seen_count: 0,
                note: String::new(),
            })
            .collect();
        store.import(&entries).unwrap();
        let conn = rusqlite::Connection::open(&db2).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let mut bytes = std::fs::read(&db2).unwrap();
    assert!(bytes.len() > 4096 * 8);
    for b in &mut bytes[4096 * 3..4096 * 6] {
        *b = 0xff;
    }
    std::fs::write(&db2, &bytes).unwrap();
    let store = Store::open(&db2, 0).expect("fresh store after damage");
    let summary = store.summary().unwrap();
    assert_eq!(summary.recoveries.len(), 1, "{summary:?}");
    assert_eq!(summary.entries, 0);
    assert!(Path::new(&summary.recoveries[0].moved_to).exists());
}

#[test]
fn two_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("an1256.db");
    drop(Store::open(&db, 3600).unwrap());
    let identity = |writer: usize, i: usize| format!("sha256:{:064x}", writer * 100_000 + i);
    // Two child processes importing at once, while two threads approve one by one
    // and record sampler passes, each with its own connection.
    let mut files = Vec::new();
    for writer in 0..2 {
        let entries: Vec<Entry> = (0..300)
            .map(|i| Entry {
                id: 0,
                identity: identity(writer, i),
                protocol_name: "udp".into(),
                remote_port: -1,
                source: Source::Approved,
                first_seen: 0,
                last_seen: 0,
                seen_count: 0,
                note: String::new(),
            })
            .collect();
        let file = dir.path().join(format!("import-{writer}.json"));
        std::fs::write(
            &file,
            an1256::cli::baseline::export_document(&entries).to_string(),
        )
        .unwrap();
        files.push(file);
    }
    let children: Vec<_> = files
        .iter()
        .map(|f| {
            Command::new(env!("CARGO_BIN_EXE_an1256"))
                .arg("--db")
                .arg(&db)
                .arg("--config")
                .arg(test_config(&db))
                .args(["baseline", "import"])
                .arg(f)
                .spawn()
                .unwrap()
        })
        .collect();
    let threads: Vec<_> = (2..4)
        .map(|writer| {
            let db = db.clone();
            std::thread::spawn(move || {
                let store = Store::open(&db, 3600).unwrap();
                for i in 0..150 {
                    let key = an1256::baseline::identity::validate_entry(
                        &format!("sha256:{:064x}", writer * 100_000 + i),
                        "icmp",
                        -1,
                    )
                    .unwrap();
                    store.approve(&key, "").unwrap();
                    let obs = Observation {
                        identity: format!("sha256:{:064x}", writer * 100_000 + i),
                        protocol_name: "udp".into(),
                        remote_port: 53,
                        remote_scope: "public".into(),
                        remote_address: "192.0.2.1".into(),
                        pid: 1,
                        path: String::new(),
                        exe_path: String::new(),
                        interpreter: String::new(),
                        subject_kind: "binary".into(),
                        subject_trusted: false,
                        ..Default::default()
                    };
                    store
                        .record_pass(&[obs], true, 1000 + i as i64, ObservationLimits::default())
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "import child failed");
    }
    let store = Store::open(&db, 0).unwrap();
    let entries = store.entries(None).unwrap();
    // 2 x 300 imported + 2 x 150 approved (icmp) + 2 x 150 learned (udp).
    // On failure, say which writes are missing and whether a store was moved
    // aside (a recovery) while they ran. (Under load this once lost writes and
    // corrupted the store: a second open in the process dropped the first one's
    // locks; see a_second_open_in_the_process_keeps_the_first_ones_writes_visible.)
    let mut by_source: std::collections::BTreeMap<String, usize> = Default::default();
    for e in &entries {
        *by_source
            .entry(format!("{:?}/{}", e.source, e.protocol_name))
            .or_default() += 1;
    }
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .map(|d| {
            d.flatten()
                .map(|f| f.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let recoveries = store
        .summary()
        .map(|s| format!("{:?}", s.recoveries))
        .unwrap_or_default();
    assert_eq!(
        entries.len(),
        600 + 300 + 300,
        "by source: {by_source:?}; files: {files:?}; recoveries: {recoveries}; read-only: {:?}",
        store.read_only()
    );
    assert_eq!(store.observations(None).unwrap().len(), 300);
    assert!(entries.iter().any(|e| e.identity == identity(1, 299)));
}

/// A second store opened in a process whose first store is open must not drop
/// the first one's file locks: POSIX locks belong to the process, and closing any
/// descriptor of the file releases them all. Without its shared lock, another
/// process closing its connection believes itself the last one, checkpoints and
/// deletes the WAL; the first store's later commits then go to the unlinked WAL,
/// reported as written but seen by no other process (the two_writers flake).
#[test]
fn a_second_open_in_the_process_keeps_the_first_ones_writes_visible() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("an1256.db");
    let key = |i: usize| {
        an1256::baseline::identity::validate_entry(&format!("sha256:{i:064x}"), "icmp", -1).unwrap()
    };
    let first = Store::open(&db, 0).unwrap();
    first.approve(&key(1), "").unwrap();
    let second = Store::open(&db, 0).unwrap();
    // Another process opens and closes the store (a read, as `baseline list` does).
    let out = an1256_cli(&db, &["list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    first.approve(&key(2), "").unwrap();
    second.approve(&key(3), "").unwrap();
    let out = an1256_cli(&db, &["list", "--json"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    for i in 1..=3 {
        assert!(
            listed.contains(&key(i).identity),
            "write {i}, committed in this process, is not seen by another process: {listed}"
        );
    }
}

#[test]
fn writes_are_validated_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = baseline_in(dir.path(), 0);
    let engine = engine(&baseline);
    let conn = engine.connection();
    for (sql, reason) in [
        ("INSERT INTO an1256_baseline (identity, protocol_name) VALUES ('sha256:abc', 'udp')", "64 hex"),
        ("INSERT INTO an1256_baseline (identity, protocol_name) VALUES ('apple:x', 'tcp')", "protocol_name"),
        ("INSERT INTO an1256_baseline (identity, protocol_name, remote_port) VALUES ('apple:x', 'udp', 70000)", "out of range"),
        ("INSERT INTO an1256_baseline (identity, protocol_name, source) VALUES ('apple:x', 'udp', 'policy')", "policy"),
        ("INSERT INTO an1256_baseline (protocol_name) VALUES ('udp')", "identity is required"),
    ] {
        let err = conn.execute(sql, []).unwrap_err().to_string();
        assert!(err.contains(reason), "{sql}: {err}");
    }
    conn.execute(
        "INSERT INTO an1256_baseline (identity, protocol_name, remote_port) VALUES ('team:ABCDE12345:io.x', 'udp', 53)",
        [],
    )
    .unwrap();
    let n = conn
        .execute(
            "UPDATE an1256_baseline SET remote_port = 123, note = 'ntp' WHERE identity = 'team:ABCDE12345:io.x'",
            [],
        )
        .unwrap();
    assert_eq!(n, 1);
    let rows = run(&engine, "SELECT remote_port, note, source FROM an1256_baseline WHERE identity = 'team:ABCDE12345:io.x'");
    assert_eq!(
        (int(&rows[0], "remote_port"), text(&rows[0], "note")),
        (123, "ntp".into())
    );
    assert_eq!(text(&rows[0], "source"), "approved");
}

#[test]
fn policy_rules_answer_the_identity_lookup_the_join_pushes_down() {
    let dir = tempfile::tempdir().unwrap();
    let Some(binary) = compile_udp_program(dir.path()) else {
        return;
    };
    let pattern = format!("{}/udp-*", dir.path().display());
    std::fs::write(
        dir.path().join("policy.json"),
        format!(
            r#"{{"version": 1, "rules": [{{"name": "test-tool", "path": "{pattern}", "protocols": ["udp"], "ports": [4789], "reason": "test tool allowed by path"}}]}}"#
        ),
    )
    .unwrap();
    let baseline = baseline_in(dir.path(), 0);
    let engine = engine(&baseline);
    let child = spawn_ready(Command::new(&binary)).expect("udp program");
    // No sampler pass has run: the lookup itself learns the subject's path.
    assert!(
        hits_of(&engine, child.pid).is_empty(),
        "allowed by the path rule"
    );
    let identity = subject_identity(&engine, child.pid);
    let rows = run(
        &engine,
        &format!("SELECT * FROM an1256_baseline WHERE identity = '{identity}'"),
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(text(&rows[0], "source"), "policy");
    assert_eq!(text(&rows[0], "rule"), "test-tool");
    assert!(int(&rows[0], "entry_id") < 0);
    let err = engine
        .connection()
        .execute("DELETE FROM an1256_baseline WHERE rule = 'test-tool'", [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("policy file"), "{err}");
    // A malformed edit keeps the rule in force and is reported.
    std::fs::write(dir.path().join("policy.json"), "{ broken").unwrap();
    std::thread::sleep(
        an1256::baseline::policy::RELOAD_CHECK + std::time::Duration::from_millis(200),
    );
    assert!(
        hits_of(&engine, child.pid).is_empty(),
        "last good rules kept"
    );
    let info = run(
        &engine,
        "SELECT policy_error, policy_rules FROM an1256_info",
    );
    assert!(
        text(&info[0], "policy_error").contains("policy"),
        "{info:?}"
    );
}

/// `an1256_info`'s policy columns for a baseline whose policy file is `policy`,
/// or `None` when building the baseline and querying did not finish in time (a
/// read that blocked).
fn policy_info_within(policy: PathBuf, limit: std::time::Duration) -> Option<(String, i64)> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::with_db(dir.path().join("store/an1256.db"));
        settings.policy_path = policy;
        settings.policy_path_explicit = true;
        let host: Arc<dyn platform::Host> = Arc::from(platform::native(HostConfig::default()));
        let baseline = Arc::new(Baseline::new(settings, host));
        let info = run(
            &engine(&baseline),
            "SELECT policy_error, policy_rules FROM an1256_info",
        );
        let _ = sender.send((
            text(&info[0], "policy_error"),
            int(&info[0], "policy_rules"),
        ));
    });
    receiver.recv_timeout(limit).ok()
}

/// A policy path that names a FIFO with no writer, or a symlink to a device, is
/// refused without being opened for reading: `an1256_info` shows a policy error
/// and the built-in rules stay in force; nothing blocks. The FIFO and the symlink
/// are planted by an unprivileged user (a policy path in a directory they can
/// write). Twin: the same user's symlink to a regular policy file loads.
#[test]
fn a_fifo_or_device_at_the_policy_path_is_a_policy_error_not_a_hang() {
    if !common::is_root() {
        return skip("policy fifo", "needs root (attacker user)");
    }
    let user = common::attacker("policyfifo");
    let plant = |args: &[&str]| {
        let status = user
            .command(args[0])
            .args(&args[1..])
            .status()
            .expect(args[0]);
        assert!(status.success(), "{args:?}");
    };
    plant(&["mkfifo", "policy-fifo.json"]);
    plant(&["ln", "-s", "/dev/ptmx", "policy-device.json"]);
    let rule =
        r#"{"version":1,"rules":[{"name":"twin","reason":"benign twin","package":"an1256-twin"}]}"#;
    user.write("real-policy.json", rule.as_bytes(), false);
    plant(&["ln", "-s", "real-policy.json", "policy-link.json"]);
    // Generous: a loaded CI box; a blocked open never returns at all.
    let limit = std::time::Duration::from_secs(60);

    let (twin_error, twin_rules) =
        policy_info_within(user.home.join("policy-link.json"), limit).expect("twin read");
    assert_eq!(twin_error, "", "a symlink to a regular file still loads");
    for (name, kind) in [
        ("policy-fifo.json", "FIFO"),
        ("policy-device.json", "character device"),
    ] {
        let (error, rules) = policy_info_within(user.home.join(name), limit)
            .unwrap_or_else(|| panic!("reading the {kind} policy did not return"));
        assert!(error.starts_with("policy "), "{name}: {error}");
        assert!(
            error.contains(&format!("not a regular file ({kind})")),
            "{name}: {error}"
        );
        assert_eq!(
            rules,
            twin_rules - 1,
            "{name}: only the built-in rules apply"
        );
    }
}

#[test]
fn every_pack_query_runs_on_this_host() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = baseline_in(dir.path(), 0);
    let engine = engine(&baseline);
    // Something for the socket and observation queries to find.
    let child = udp_python_child("pack");
    let report = baseline.sample().expect("sampler pass");
    eprintln!(
        "first sampler pass (cold trust cache): {} sockets, {} processes, {} ms wall, {} ms cpu",
        report.sockets, report.processes, report.wall_ms, report.cpu_ms
    );
    let report = baseline.sample().expect("second sampler pass");
    eprintln!(
        "second sampler pass (warm cache): {} sockets, {} processes, {} ms wall, {} ms cpu",
        report.sockets, report.processes, report.wall_ms, report.cpu_ms
    );
    let queries = pack_queries().expect("pack parses");
    assert_eq!(queries.len(), 5);
    for (name, q) in &queries {
        let started = std::time::Instant::now();
        let rows = run(&engine, &q.query);
        eprintln!("{name}: {} rows in {:?}", rows.len(), started.elapsed());
        match name.as_str() {
            "an1256_health" => {
                assert_eq!(rows.len(), 1);
                assert_eq!(
                    text(&rows[0], "db_path"),
                    baseline.settings.db_path.display().to_string()
                );
                assert_eq!(int(&rows[0], "last_sample_cpu_ms"), report.cpu_ms);
            }
            "an1256_hits" | "an1256_socket_inventory" => {
                assert!(
                    rows.iter().any(|r| int(r, "pid") == i64::from(child.pid)),
                    "{name}"
                );
            }
            "an1256_untrusted_processes" => {
                assert!(
                    rows.iter().any(|r| int(r, "pid") == i64::from(child.pid)),
                    "{name}"
                );
            }
            "an1256_hits_recent" => {
                assert!(
                    rows.iter().any(|r| int(r, "pid") == i64::from(child.pid)),
                    "{name}"
                );
            }
            other => panic!("untested pack query {other}"),
        }
    }
}

/// A client that connects to `port` on loopback, then prints `ready` and waits.
fn tcp_client(port: u16, all_proxy: Option<String>) -> ReadyChild {
    let mut command = python(&format!(
        "import socket,time\n\
         s=socket.create_connection(('127.0.0.1',{port}))\n\
         print('ready',flush=True)\n\
         time.sleep(300)\n"
    ));
    command.env_remove("ALL_PROXY").env_remove("all_proxy");
    if let Some(proxy) = all_proxy {
        command.env("ALL_PROXY", proxy);
    }
    spawn_ready(command).expect("tcp client")
}

#[test]
fn approve_by_pid_approves_the_socks_protocol_a_client_uses() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("socks.db");
    // A plain listener on an ephemeral port: SOCKS only through the client's own
    // environment (socks_env_proxy), the signal a proxy-aware tool gives.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = tcp_client(port, Some(format!("socks5h://127.0.0.1:{port}")));
    let out = an1256_cli(&db, &["approve", "--pid", &client.pid.to_string()]);
    assert!(
        out.status.success(),
        "approve --pid: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = an1256_cli(&db, &["list", "--json"]);
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["protocol_name"], "socks", "{entries:?}");
    assert_eq!(entries[0]["source"], "approved");
    assert!(
        entries[0]["identity"]
            .as_str()
            .is_some_and(|i| !i.is_empty()),
        "{entries:?}"
    );

    // The twin: the same connection with no SOCKS signal is plain TCP, nothing
    // AN1256 watches, so there is nothing to approve by pid.
    let plain = tcp_client(port, None);
    let db2 = dir.path().join("plain.db");
    let out = an1256_cli(&db2, &["approve", "--pid", &plain.pid.to_string()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("holds no ICMP, UDP, raw or SOCKS socket"),
        "{stderr}"
    );
    drop(listener);
}
