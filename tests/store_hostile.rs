//! The baseline store and its CLI under hostile conditions, through the real
//! binary: text that would rewrite the operator's terminal, a store that is
//! read-only, full, locked, corrupted, deleted or placed where others can write.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A private store path (in a fresh 0700 temp dir) and an empty config beside it,
/// so the host's /etc/an1256 is never read.
struct TestStore {
    _dir: tempfile::TempDir,
    db: PathBuf,
    config: PathBuf,
}

fn test_store() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store_dir = dir.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    std::fs::set_permissions(
        &store_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, "{}").unwrap();
    TestStore {
        db: store_dir.join("an1256.db"),
        config,
        _dir: dir,
    }
}

/// `an1256 --db DB --config CONFIG <args>`.
fn an1256(db: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_an1256"))
        .arg("--db")
        .arg(db)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run an1256")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SHA: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

#[test]
fn baseline_list_escapes_terminal_controls_and_writes_refuse_bidi() {
    let s = test_store();
    // Benign twin: a plain note is printed as written.
    let out = an1256(
        &s.db,
        &s.config,
        &[
            "baseline",
            "approve",
            SHA,
            "--protocol",
            "udp",
            "--note",
            "DNS relay, ticket 42",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // An escape sequence is stored (notes are free text) but never printed raw.
    let out = an1256(
        &s.db,
        &s.config,
        &[
            "baseline",
            "approve",
            SHA,
            "--protocol",
            "icmp",
            "--note",
            "ok\x1b[2J\x1b]0;pwned\x07",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Bidi controls are refused in notes and identities.
    let out = an1256(
        &s.db,
        &s.config,
        &[
            "baseline",
            "approve",
            SHA,
            "--protocol",
            "raw",
            "--note",
            "safe\u{202e}gpj.exe",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("U+202E"),
        "{}",
        text(&out.stderr)
    );
    let out = an1256(
        &s.db,
        &s.config,
        &[
            "baseline",
            "approve",
            "path:/tmp/\u{2067}x",
            "--protocol",
            "udp",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("U+2067"),
        "{}",
        text(&out.stderr)
    );
    // A note written before these checks existed (straight into the file).
    let conn = rusqlite::Connection::open(&s.db).unwrap();
    conn.execute(
        "UPDATE entries SET note = ?1 WHERE protocol_name = 'udp'",
        ["DNS relay, ticket 42 \u{202e}evil"],
    )
    .unwrap();
    drop(conn);

    let out = an1256(&s.db, &s.config, &["baseline", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(
        !listed.contains('\x1b') && !listed.contains('\x07') && !listed.contains('\u{202e}'),
        "raw control characters reached the terminal: {listed:?}"
    );
    assert!(
        listed.contains("ok\\u{1b}[2J\\u{1b}]0;pwned\\u{7}"),
        "{listed}"
    );
    assert!(
        listed.contains("DNS relay, ticket 42 \\u{202e}evil"),
        "{listed}"
    );
}

/// An unsigned implant: a copy of python3 in a temp dir, holding a UDP socket
/// connected to 192.0.2.10:53 (TEST-NET-1, never answered).
struct Implant {
    _dir: tempfile::TempDir,
    child: common::ReadyChild,
}

fn implant(tag: &str) -> Implant {
    let dir = tempfile::tempdir().expect("temp dir");
    let python = std::fs::canonicalize(common::which("python3").expect("python3")).unwrap();
    let copy = dir.path().join(format!("beacon-{tag}"));
    common::copy_executable(&python, &copy);
    let mut command = Command::new(&copy);
    command.arg("-c").arg(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.connect(('192.0.2.10', 53))\n\
         print('ready', flush=True)\n\
         time.sleep(120)\n",
    );
    let child = common::spawn_ready(command).expect("implant child");
    Implant { _dir: dir, child }
}

/// `scan --format json`: the exit code, the hits (one JSON object each) and stderr.
fn scan(db: &Path, config: &Path) -> (Option<i32>, Vec<serde_json::Value>, String, Duration) {
    let started = Instant::now();
    let out = an1256(db, config, &["scan", "--format", "json"]);
    let took = started.elapsed();
    let hits = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON hit per line"))
        .collect();
    (out.status.code(), hits, text(&out.stderr), took)
}

fn hit_of(hits: &[serde_json::Value], pid: i32) -> Option<&serde_json::Value> {
    hits.iter().find(|h| h["pid"] == serde_json::json!(pid))
}

/// `SELECT <column> FROM an1256_info` through the CLI.
fn info(db: &Path, config: &Path, column: &str) -> String {
    let out = an1256(
        db,
        config,
        &[
            "query",
            &format!("SELECT {column} FROM an1256_info"),
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let row: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    match &row[column] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs `command`, panicking with its stderr if it fails.
fn must(command: &mut Command) {
    let out = command.output().expect("run");
    assert!(out.status.success(), "{command:?}: {}", text(&out.stderr));
}

/// Unmounts a mount the test made, on drop (lazily, so a busy mount never
/// blocks the test's end).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The store's checks reported, the implant still a hit, the exit code 1.
fn assert_detected_despite(
    what: &str,
    (code, hits, stderr, took): &(Option<i32>, Vec<serde_json::Value>, String, Duration),
    implant: &Implant,
    problem: &str,
) {
    eprintln!("{what}: scan took {took:?}, exit {code:?}\nstderr: {stderr}");
    assert_eq!(*code, Some(1), "{what}: exit code; stderr: {stderr}");
    let hit = hit_of(hits, implant.child.pid)
        .unwrap_or_else(|| panic!("{what}: the implant is not reported; stderr: {stderr}"));
    assert_eq!(hit["protocol_name"], "udp");
    assert_eq!(
        hit["first_seen_before_start"],
        serde_json::Value::Null,
        "no store, no history"
    );
    assert!(
        stderr.contains(problem),
        "{what}: stderr does not say {problem:?}: {stderr}"
    );
}

#[test]
fn a_read_only_store_still_reports_the_implant() {
    if !common::is_root() {
        return common::skip(
            "a_read_only_store_still_reports_the_implant",
            "needs root (mount)",
        );
    }
    let s = test_store();
    let out = an1256(
        &s.db,
        &s.config,
        &[
            "baseline",
            "approve",
            SHA,
            "--protocol",
            "udp",
            "--note",
            "kept",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let store_dir = s.db.parent().unwrap().to_owned();
    must(
        Command::new("mount")
            .arg("--bind")
            .arg(&store_dir)
            .arg(&store_dir),
    );
    let _mounted = Mounted(store_dir.clone());
    must(
        Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(&store_dir),
    );
    let beacon = implant("ro");
    let result = scan(&s.db, &s.config);
    assert_detected_despite("read-only store", &result, &beacon, "read-only");
    // The store still answers lookups, and says why it is degraded.
    assert!(info(&s.db, &s.config, "store_error").contains("read-only"));
    assert_eq!(info(&s.db, &s.config, "approved_entries"), "1");
    let out = an1256(
        &s.db,
        &s.config,
        &["baseline", "approve", SHA, "--protocol", "icmp"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("read-only"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_full_store_still_reports_the_implant() {
    if !common::is_root() {
        return common::skip(
            "a_full_store_still_reports_the_implant",
            "needs root (mount)",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    must(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512k,mode=0700", "an1256-full"])
            .arg(&mnt),
    );
    let _mounted = Mounted(mnt.clone());
    let store_dir = mnt.join("store");
    std::fs::create_dir(&store_dir).unwrap();
    std::fs::set_permissions(
        &store_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let db = store_dir.join("an1256.db");
    let config = dir.path().join("config.json");
    std::fs::write(&config, "{}").unwrap();
    let out = an1256(
        &db,
        &config,
        &["baseline", "approve", SHA, "--protocol", "udp"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Fill the file system.
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(mnt.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while filler.write_all(&block).is_ok() {}
    }
    let beacon = implant("full");
    let result = scan(&db, &config);
    assert_detected_despite("full store", &result, &beacon, "baseline store");
}

#[test]
fn a_locked_store_still_reports_the_implant_in_bounded_time() {
    let s = test_store();
    let out = an1256(
        &s.db,
        &s.config,
        &["baseline", "approve", SHA, "--protocol", "udp"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Another process takes the store's lock and keeps it: exclusive locking mode
    // keeps even readers out of a WAL database.
    let holder = common::spawn_ready(common::python(&format!(
        "import sqlite3, time\n\
         c = sqlite3.connect({:?}, isolation_level=None)\n\
         c.execute('PRAGMA locking_mode=EXCLUSIVE')\n\
         c.execute('BEGIN EXCLUSIVE')\n\
         c.execute(\"INSERT OR REPLACE INTO meta (key, value) VALUES ('held', '1')\")\n\
         print('ready', flush=True)\n\
         time.sleep(120)\n",
        s.db.to_str().unwrap()
    )))
    .expect("lock holder");
    let beacon = implant("locked");
    let result = scan(&s.db, &s.config);
    assert_detected_despite("locked store", &result, &beacon, "locked");
    // The scan's own time depends on the host; the store's share is bounded by
    // the read timeout: asking an1256_info alone must not wait on the lock.
    assert!(result.3 < Duration::from_secs(90), "{:?}", result.3);
    let started = Instant::now();
    assert!(info(&s.db, &s.config, "store_error").contains("locked"));
    let took = started.elapsed();
    eprintln!("an1256_info on the locked store took {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "waited on the lock: {took:?}"
    );
    drop(holder);
}

/// Benign twin of the three above: a healthy store gives a hit with no store
/// warning, and an approval in it silences the implant.
#[test]
fn a_healthy_store_reports_then_honours_an_approval() {
    let s = test_store();
    let out = an1256(&s.db, &s.config, &["baseline", "learn", "--stop"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let beacon = implant("healthy");
    let (code, hits, stderr, took) = scan(&s.db, &s.config);
    eprintln!("healthy store: scan took {took:?}");
    assert_eq!(code, Some(1), "{stderr}");
    let hit = hit_of(&hits, beacon.child.pid).expect("the implant is a hit");
    assert!(!stderr.contains("baseline store"), "{stderr}");
    assert_eq!(info(&s.db, &s.config, "store_error"), "");
    let identity = hit["subject_identity"].as_str().unwrap().to_owned();
    let out = an1256(
        &s.db,
        &s.config,
        &["baseline", "approve", &identity, "--protocol", "udp"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, hits, stderr, _) = scan(&s.db, &s.config);
    assert!(
        hit_of(&hits, beacon.child.pid).is_none(),
        "approved: {stderr}"
    );
}

/// `baseline list --json`: the stored entries.
fn entries(db: &Path, config: &Path) -> Vec<serde_json::Value> {
    let out = an1256(db, config, &["baseline", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn learned(db: &Path, config: &Path) -> usize {
    entries(db, config)
        .iter()
        .filter(|e| e["source"] == "learned")
        .count()
}

fn remove_store_files(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

/// A store rebuilt after corruption or deletion opens no learning window: the
/// next sample learns nothing (the implant stays a stranger), and the loss of
/// the approvals is reported on stderr and in an1256_info.
#[test]
fn a_rebuilt_store_opens_no_learning_window_and_reports_the_loss() {
    let beacon = implant("rebuilt");
    for damage in ["corrupt", "delete"] {
        let s = test_store();
        for args in [
            &["baseline", "learn", "--stop"][..],
            &[
                "baseline",
                "approve",
                SHA,
                "--protocol",
                "udp",
                "--note",
                "ours",
            ],
        ] {
            let out = an1256(&s.db, &s.config, args);
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        assert_eq!(entries(&s.db, &s.config).len(), 1);
        remove_store_files(&s.db);
        if damage == "corrupt" {
            std::fs::write(&s.db, vec![0x5au8; 8192]).unwrap();
            std::fs::set_permissions(&s.db, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
        let out = an1256(&s.db, &s.config, &["baseline", "sample"]);
        assert!(out.status.success(), "{damage}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        eprintln!("{damage}: {stderr}");
        assert!(
            stderr.contains("recovered") && stderr.contains("approved and learned entries"),
            "{damage}: the loss is not reported: {stderr}"
        );
        assert!(stderr.contains("learning stays off"), "{damage}: {stderr}");
        assert_eq!(learned(&s.db, &s.config), 0, "{damage}: the sample learned");
        assert_eq!(info(&s.db, &s.config, "learning"), "0", "{damage}");
        assert_eq!(info(&s.db, &s.config, "store_recovered"), "1", "{damage}");
        assert!(info(&s.db, &s.config, "recovery_events").contains("approved and learned"));
    }
    // Benign twin: a first install opens the window and the same sample learns.
    let s = test_store();
    let out = an1256(&s.db, &s.config, &["baseline", "sample"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(info(&s.db, &s.config, "learning"), "1");
    assert_eq!(info(&s.db, &s.config, "store_recovered"), "0");
    assert!(
        entries(&s.db, &s.config)
            .iter()
            .any(|e| e["source"] == "learned"
                && e["remote_port"] == 53
                && e["protocol_name"] == "udp"),
        "a first install learns what runs"
    );
    drop(beacon);
}

#[test]
fn a_store_in_a_directory_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, "{}").unwrap();
    for mode in [0o1777, 0o777, 0o775] {
        let shared = dir.path().join(format!("shared-{mode:o}"));
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
        let db = shared.join("an1256.db");
        let out = an1256(&db, &config, &["baseline", "list"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "mode {mode:o}: {stderr}");
        assert!(
            stderr.contains("writable by others") && stderr.contains("chmod 0700"),
            "mode {mode:o}: {stderr}"
        );
        assert!(!db.exists(), "mode {mode:o}: the store was created anyway");
    }
    // Benign twin: a 0700 directory of ours.
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let out = an1256(&private.join("an1256.db"), &config, &["baseline", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn foreign_wal_files_and_foreign_parents_are_refused() {
    if !common::is_root() {
        return common::skip(
            "foreign_wal_files_and_foreign_parents_are_refused",
            "needs root",
        );
    }
    let attacker = common::attacker("walplant");
    let s = test_store();
    let out = an1256(
        &s.db,
        &s.config,
        &["baseline", "approve", SHA, "--protocol", "udp"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for suffix in ["-wal", "-shm"] {
        let mut name = s.db.as_os_str().to_owned();
        name.push(suffix);
        let side = PathBuf::from(name);
        std::fs::write(&side, b"planted").unwrap();
        std::os::unix::fs::chown(&side, Some(attacker.uid), Some(attacker.gid)).unwrap();
        let out = an1256(&s.db, &s.config, &["baseline", "list"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{suffix}: {stderr}");
        assert!(
            stderr.contains(suffix) && stderr.contains("owner"),
            "{stderr}"
        );
        std::fs::remove_file(&side).unwrap();
    }
    // Benign twin: without the planted files the store opens, entry intact.
    assert_eq!(entries(&s.db, &s.config).len(), 1);

    // A 0700 root directory inside a home another user owns: its owner could
    // rename it away and put their own in its place.
    let inside = attacker.home.join("store");
    std::fs::create_dir(&inside).unwrap();
    std::fs::set_permissions(&inside, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let out = an1256(&inside.join("an1256.db"), &s.config, &["baseline", "list"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("owned by uid {}", attacker.uid)),
        "{stderr}"
    );
}

/// `an1256 query SQL --json`: the rows.
fn query_rows(db: &Path, config: &Path, sql: &str) -> Vec<serde_json::Value> {
    let out = an1256(db, config, &["query", sql, "--json"]);
    assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every CLI write (approve, revoke, import, learn, and SQL INSERT/UPDATE/DELETE
/// through the embedded engine) is logged at WARN and recorded in
/// an1256_baseline_audit with the entry before and after; reads record nothing.
#[test]
fn every_cli_write_is_audited_with_before_and_after() {
    let s = test_store();
    let sha2 = format!("sha256:{}", "2".repeat(64));
    let import = s.db.with_extension("import.json");
    std::fs::write(
        &import,
        format!(r#"[{{"identity": "{sha2}", "protocol_name": "icmp", "note": "imported"}}]"#),
    )
    .unwrap();
    let import = import.to_str().unwrap().to_owned();
    let steps: Vec<Vec<&str>> = vec![
        vec![
            "baseline",
            "approve",
            SHA,
            "--protocol",
            "udp",
            "--note",
            "first",
        ],
        vec![
            "baseline",
            "approve",
            SHA,
            "--protocol",
            "udp",
            "--note",
            "second",
        ],
        vec![
            "query",
            "UPDATE an1256_baseline SET note = 'third' WHERE entry_id = 1",
        ],
        vec!["query", "DELETE FROM an1256_baseline WHERE entry_id = 1"],
        vec!["baseline", "import", &import],
        vec!["baseline", "revoke", "--identity", &sha2],
        vec!["baseline", "learn", "--stop"],
    ];
    for step in &steps {
        let out = an1256(&s.db, &s.config, step);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{step:?}: {stderr}");
        assert!(
            stderr.contains(" WARN ") && stderr.contains("by cli"),
            "{step:?} was not logged at WARN: {stderr}"
        );
    }
    let trail = query_rows(
        &s.db,
        &s.config,
        "SELECT source, action, entry_id, before, after FROM an1256_baseline_audit ORDER BY id",
    );
    let actions: Vec<&str> = trail
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["approve", "approve", "update", "revoke", "import", "revoke", "learn"],
        "{trail:#?}"
    );
    assert!(trail.iter().all(|r| r["source"] == "cli"), "{trail:#?}");
    let note = |field: &str, i: usize| -> String {
        match trail[i][field].as_str().unwrap() {
            "" => "(none)".into(),
            json => serde_json::from_str::<serde_json::Value>(json).unwrap()["note"]
                .as_str()
                .unwrap()
                .to_owned(),
        }
    };
    let notes: Vec<(String, String)> = (0..6)
        .map(|i| (note("before", i), note("after", i)))
        .collect();
    assert_eq!(
        notes,
        [
            ("(none)", "first"),
            ("first", "second"),
            ("second", "third"),
            ("third", "(none)"),
            ("(none)", "imported"),
            ("imported", "(none)"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert!(trail[6]["after"]
        .as_str()
        .unwrap()
        .contains("\"learning_until\":0"));

    // Benign twin: reads leave no trace.
    for read in [
        &["baseline", "list"][..],
        &["baseline", "export"],
        &["query", "SELECT * FROM an1256_baseline"],
    ] {
        let out = an1256(&s.db, &s.config, read);
        assert!(out.status.success(), "{read:?}: {}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains(" WARN "),
            "{read:?}: {}",
            text(&out.stderr)
        );
    }
    let count = query_rows(
        &s.db,
        &s.config,
        "SELECT count(*) AS n FROM an1256_baseline_audit",
    );
    assert_eq!(count[0]["n"], 7);
}
