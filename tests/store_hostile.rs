//! The baseline store and its CLI under hostile conditions, through the real
//! binary: text that would rewrite the operator's terminal, a store that is
//! read-only, full, locked, corrupted, deleted or placed where others can write.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
