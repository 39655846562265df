//! Hostile-user bounds (issue 11): one unprivileged process must not blow up the
//! scanner's memory or output, and sockets it hides must still be seen (issue 10).
//! Every case runs as a user created by the test; bounds are measured from outside
//! (`/usr/bin/time -v` on the real `an1256` binary).
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;

/// Runs the real `an1256` with a private store under `/usr/bin/time -v`; returns
/// (exit code, stdout, stderr, max RSS in KiB).
fn measured_an1256(args: &[&str]) -> (Option<i32>, Vec<u8>, String, u64) {
    let store = tempfile::tempdir().unwrap();
    let db = store.path().join("an1256.db");
    let timing = store.path().join("time.txt");
    let output = Command::new("/usr/bin/time")
        .arg("-v")
        .arg("-o")
        .arg(&timing)
        .arg(env!("CARGO_BIN_EXE_an1256"))
        .arg("--db")
        .arg(&db)
        .args(args)
        .output()
        .expect("run an1256 under /usr/bin/time");
    let timing = std::fs::read_to_string(&timing).unwrap_or_default();
    let rss_kib = timing
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS in /usr/bin/time output: {timing}"));
    (
        output.status.code(),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
        rss_kib,
    )
}

fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:.200}")))
        .collect()
}

/// A python script (untrusted: the user's own file) that opens `count` UDP sockets
/// connected to TEST-NET addresses, then waits.
fn udp_holder(count: usize) -> String {
    format!(
        "import socket, time\n\
         held = []\n\
         for i in range({count}):\n\
         \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         \x20   s.connect(('192.0.2.%d' % (1 + i % 200), 5000 + i))\n\
         \x20   held.append(s)\n\
         print('ready', flush=True)\n\
         time.sleep(600)\n"
    )
}

/// Issue 11 item 4: 1 MB of argv × 500 UDP sockets. Before the caps, `scan` printed
/// the 1 MB cmdline in every one of the 500 joined rows (500 MB of output, 531 MB of
/// RSS on the reference host); now the cmdline is capped at 8 KiB, the rows per
/// process at 64 plus a summary row, and RSS stays under 100 MB.
#[test]
fn huge_argv_times_many_sockets_stays_bounded() {
    if !common::is_root() {
        return common::skip("huge_argv_times_many_sockets_stays_bounded", "needs root");
    }
    let user = common::attacker("bigargv");
    let script = user.write("holder.py", udp_holder(500).as_bytes(), false);
    // One argument may hold at most 128 KiB (MAX_ARG_STRLEN): ten of 100 KB.
    let filler = "A".repeat(100_000);
    let mut command = user.command("/usr/bin/python3");
    command.arg(&script);
    for _ in 0..10 {
        command.arg(&filler);
    }
    let holder = common::spawn_ready(command).expect("holder starts");

    let (code, stdout, stderr, rss_kib) = measured_an1256(&["scan", "--format", "json"]);
    eprintln!(
        "scan: exit {code:?}, {} bytes of output, max RSS {rss_kib} KiB",
        stdout.len()
    );
    assert_eq!(code, Some(1), "hits expected; stderr: {stderr}");
    assert!(rss_kib < 100 * 1024, "max RSS {rss_kib} KiB");
    assert!(stdout.len() < 4 * 1024 * 1024, "{} bytes", stdout.len());
    let hits = json_lines(&stdout);
    let ours: Vec<&serde_json::Value> = hits
        .iter()
        .filter(|h| h["pid"].as_i64() == Some(i64::from(holder.pid)))
        .collect();
    let summaries: Vec<&&serde_json::Value> = ours
        .iter()
        .filter(|h| h["fd"].as_i64() == Some(-1))
        .collect();
    assert_eq!(ours.len(), 64 + 1, "64 rows and one summary");
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0]["state"], "omitted:436");
    assert_eq!(summaries[0]["protocol_name"], "udp");
    assert!(
        summaries[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("udp_socket") && r.contains("rows_omitted")),
        "{}",
        summaries[0]["reason"]
    );
    assert_eq!(summaries[0]["subject_trusted"], 0);
    for hit in &ours {
        let cmdline = hit["cmdline"].as_str().unwrap_or_default();
        assert!(cmdline.len() <= 8 * 1024 + 64, "{}", cmdline.len());
        assert!(cmdline.contains("…[truncated "), "cmdline is marked as cut");
    }
}

/// The benign twin: a process with an ordinary argv and a few sockets gets every
/// row, its cmdline whole, and no summary row.
#[test]
fn ordinary_socket_holder_is_reported_whole() {
    if !common::is_root() {
        return common::skip("ordinary_socket_holder_is_reported_whole", "needs root");
    }
    let user = common::attacker("fewsocks");
    let script = user.write("holder.py", udp_holder(3).as_bytes(), false);
    let mut command = user.command("/usr/bin/python3");
    command.arg(&script).arg("--quiet");
    let holder = common::spawn_ready(command).expect("holder starts");
    let (code, stdout, stderr, _) = measured_an1256(&[
        "query",
        "--json",
        &format!(
            "SELECT s.fd, s.state, c.cmdline FROM nonstandard_protocol_sockets s \
             JOIN process_code_signature c ON c.pid = s.pid WHERE s.pid = {}",
            holder.pid
        ),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let rows = json_lines(&stdout);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        assert_ne!(row["fd"], -1);
        assert_eq!(row["state"], "connected");
        assert_eq!(
            row["cmdline"],
            format!("/usr/bin/python3 {} --quiet", script.display())
        );
    }
}
