//! A real Thrift round trip: `tests/osquery_manager.py` plays osquery's extension
//! manager with osquery's own generated Thrift code (PyPI `osquery`), launches the
//! real `an1256` binary with osquery's argv, and talks to it over Unix sockets the
//! way osqueryd does. These tests drive it and assert on the JSON it prints.
//!
//! Needs `.venv` (run `scripts/setup-test-venv`; CI does).

mod common;

use serde_json::Value as Json;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const EXTENSION: &str = env!("CARGO_BIN_EXE_an1256");
/// Bound on one manager scenario (it bounds each of its own waits too).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(90);

fn venv_python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-test-venv first (it installs osquery's Python \
         Thrift bindings, which these tests use to play osquery's extension manager)",
        python.display()
    );
    python
}

fn manager_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/osquery_manager.py")
}

/// Waits for `child` at most `limit`; kills it past that.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real process holding a UDP socket bound to 127.0.0.1 until dropped.
struct UdpHolder {
    child: Child,
    port: u16,
}

impl UdpHolder {
    fn start() -> UdpHolder {
        let mut child = Command::new(venv_python())
            .args([
                "-c",
                "import socket, sys\n\
                 s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                 s.bind(('127.0.0.1', 0))\n\
                 print(s.getsockname()[1], flush=True)\n\
                 sys.stdin.read()\n",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the UDP holder");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the UDP port");
        let port = line.trim().parse().expect("UDP port");
        UdpHolder { child, port }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for UdpHolder {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        if wait_bounded(&mut self.child, Duration::from_secs(5)).is_none() {
            eprintln!("UDP holder {} had to be killed", self.child.id());
        }
    }
}

/// Runs one manager scenario and returns its JSON report; panics with the
/// report (and the extension's stderr) when the scenario itself failed.
fn run_scenario(scenario: &str, pid: u32) -> Json {
    run_scenario_with(scenario, pid, &[])
}

/// `run_scenario` with extra manager arguments. The extension's baseline store
/// lives in the scenario's private directory (never the system default).
fn run_scenario_with(scenario: &str, pid: u32, extra: &[&str]) -> Json {
    // An empty config file: the host's /etc/an1256 must not steer the test.
    run_scenario_configured(scenario, pid, extra, "{}")
}

/// Like `run_scenario_with`, with this an1256 config file.
fn run_scenario_configured(scenario: &str, pid: u32, extra: &[&str], config_json: &str) -> Json {
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("config.json");
    std::fs::write(&config, config_json).expect("write the test config");
    let started = Instant::now();
    let mut child = Command::new(venv_python())
        .arg(manager_script())
        .arg(scenario)
        .arg("--extension")
        .arg(EXTENSION)
        .arg("--work")
        .arg(work.path())
        .arg("--pid")
        .arg(pid.to_string())
        .args(extra)
        .env("AN1256_DB", work.path().join("store/an1256.db"))
        .env("AN1256_CONFIG", &config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tests/osquery_manager.py");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let mut err = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = stderr.read_to_string(&mut err);
        (out, err)
    });
    let status = wait_bounded(&mut child, SCENARIO_TIMEOUT);
    let (out, err) = reader.join().expect("reader thread");
    eprintln!(
        "scenario {scenario}: {:.2} s, status {status:?}",
        started.elapsed().as_secs_f64()
    );
    let report: Json = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!("manager script printed no JSON ({e}); status {status:?}\nstdout:\n{out}\nstderr:\n{err}")
    });
    assert_eq!(
        report["ok"],
        true,
        "scenario {scenario} failed: {}\nextension stderr:\n{}\nscript stderr:\n{err}",
        report["error"],
        report["extension_stderr"].as_str().unwrap_or("")
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "manager script status {status:?}"
    );
    assert!(
        !report["extension_stderr"]
            .as_str()
            .unwrap_or("")
            .contains("panicked"),
        "the extension panicked:\n{}",
        report["extension_stderr"]
    );
    report
}

fn code(reply: &Json) -> i64 {
    reply["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("reply without a status code: {reply}"))
}

/// The column list osquery received, as (name, type, op).
fn columns_of(routes: &Json) -> Vec<(String, String, String)> {
    routes
        .as_array()
        .expect("column routes")
        .iter()
        .map(|r| {
            assert_eq!(r["id"], "column");
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["type"].as_str().unwrap_or_default().to_owned(),
                r["op"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn expected_columns(columns: &[an1256::tables::Column]) -> Vec<(String, String, String)> {
    columns
        .iter()
        .map(|c| {
            (
                c.name.to_owned(),
                c.ty.as_str().to_owned(),
                if c.index { "1" } else { "0" }.to_owned(),
            )
        })
        .collect()
}

#[test]
fn registers_serves_and_exits_when_osquery_goes_away() {
    // umask 000: the extension's socket must be its owner's alone whatever umask
    // osquery starts it with (any local user could otherwise call its tables).
    let report = run_scenario_with("roundtrip", std::process::id(), &["--umask", "000"]);

    let registration = &report["registration"];
    assert_eq!(registration["name"], "an1256");
    // osquery_extensions.version tells releases apart: the crate version, not
    // osquery-rust-ng's hard-coded "1.0"; sdk_version names the Rust SDK.
    assert_eq!(registration["version"], env!("CARGO_PKG_VERSION"));
    let sdk = registration["sdk_version"].as_str().unwrap_or_default();
    assert!(
        sdk.starts_with("osquery-rust-ng/") && sdk.len() > "osquery-rust-ng/".len(),
        "sdk_version {sdk:?}"
    );
    let tables = registration["tables"].as_object().expect("tables");
    let mut names: Vec<&String> = tables.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "an1256_baseline",
            "an1256_baseline_audit",
            "an1256_info",
            "an1256_observations",
            "nonstandard_protocol_sockets",
            "process_code_signature"
        ]
    );
    use an1256::tables::{nonstandard_protocol_sockets as sockets, process_code_signature as pcs};
    assert_eq!(
        columns_of(&tables["process_code_signature"]),
        expected_columns(pcs::COLUMNS)
    );
    assert_eq!(
        columns_of(&tables["nonstandard_protocol_sockets"]),
        expected_columns(sockets::COLUMNS)
    );

    // osquery-rust-ng answers ping itself with an unset code, which osquery's
    // C++ client reads as 0 (healthy).
    assert!(
        report["ping"]["code"].is_null() || report["ping"]["code"] == 0,
        "{}",
        report["ping"]
    );
    assert_eq!(report["extension_socket_existed"], true);
    assert_eq!(
        report["extension_socket_mode"], 0o600,
        "the extension socket's mode under umask 000"
    );

    let columns = &report["columns"];
    assert_eq!(code(columns), 0);
    assert_eq!(columns["message"], "OK");
    assert_eq!(columns_of(&columns["rows"]), expected_columns(pcs::COLUMNS));

    for reply in [&report["generate_sockets"], &report["generate_signature"]] {
        assert_eq!(code(reply), 0, "{reply}");
        assert_eq!(reply["message"], "OK");
    }
    assert_eq!(
        report["concurrent_generate_codes"],
        serde_json::json!([0, 0, 0, 0])
    );

    let malformed = &report["malformed_context"];
    assert_eq!(code(malformed), 1);
    let message = malformed["message"].as_str().expect("message");
    assert!(message.contains("bad query context"), "{message}");
    assert_eq!(malformed["rows"], serde_json::json!([]));

    let insert = &report["insert_readonly"];
    assert_eq!(code(insert), 1);
    assert_eq!(insert["rows"][0]["status"], "readonly");

    assert!(
        report["manager_pings_received"].as_i64().unwrap_or(0) >= 1,
        "the extension never pinged the manager"
    );
    let exit = &report["exit_after_manager_loss"];
    assert_eq!(
        exit["code"], 0,
        "the extension did not exit cleanly within the script's bound once the manager went away: {exit}\n{}",
        report["extension_stderr"]
    );
    assert!(exit["seconds"].as_f64().unwrap_or(f64::MAX) < 5.0, "{exit}");
    assert_eq!(report["extension_socket_removed"], true);
}

#[test]
fn generate_over_thrift_returns_a_real_processes_udp_socket() {
    let holder = UdpHolder::start();
    let report = run_scenario("roundtrip", holder.pid());
    let pid = holder.pid().to_string();
    let port = holder.port.to_string();

    let sockets = &report["generate_sockets"];
    assert_eq!(code(sockets), 0, "{sockets}");
    let rows = sockets["rows"].as_array().expect("rows");
    assert_eq!(
        rows.len(),
        1,
        "expected exactly the holder's UDP socket for pid {pid} (port {port}), got {sockets}"
    );
    let row = &rows[0];
    assert_eq!(row["pid"], pid.as_str());
    assert_eq!(row["protocol_name"], "udp");
    assert_eq!(row["socket_type"], "dgram");
    assert_eq!(row["local_address"], "127.0.0.1");
    assert_eq!(row["local_port"], port.as_str());
    assert_eq!(row["family"], "2");
    assert_eq!(row["protocol"], "17");
    assert_eq!(row["remote_scope"], "unspecified");
    assert_eq!(row["state"], "bound");
    assert!(
        row["path"].as_str().is_some_and(|p| p.contains("python")),
        "{row}"
    );
    // Every column travels, as text.
    assert_eq!(
        row.as_object().map(|o| o.len()),
        Some(an1256::tables::nonstandard_protocol_sockets::COLUMNS.len())
    );

    let signature = &report["generate_signature"];
    assert_eq!(code(signature), 0, "{signature}");
    let rows = signature["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{signature}");
    assert_eq!(rows[0]["pid"], pid.as_str());
    // Every holder query answered the same from four concurrent connections.
    assert_eq!(
        report["concurrent_generate_codes"],
        serde_json::json!([0, 0, 0, 0])
    );
}

/// Red team (F6): a user who keeps a UDP socket in flight (sent over a UNIX
/// socket to itself and closed) makes every full scan incomplete, and an
/// incomplete call was answered as a failure, whose rows osquery drops: the hit
/// query returned nothing for the whole host. It now answers with its rows,
/// status 0, and says it is incomplete in its message, naming the socket.
#[test]
fn an_incomplete_full_scan_answers_osquery_with_its_rows_and_says_so() {
    if !common::is_root() {
        return common::skip(
            "an_incomplete_full_scan_answers_osquery_with_its_rows_and_says_so",
            "needs root",
        );
    }
    let _alone = common::FullScanLock::exclusive();
    let attacker = common::attacker("thrift-inflight");
    let mut command = attacker.command("python3");
    command.args([
        "-c",
        "import socket, time\n\
         held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         held.bind(('127.0.0.1', 0))\n\
         u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         u.bind(('127.0.0.1', 0))\n\
         a, b = socket.socketpair()\n\
         socket.send_fds(a, [b'x'], [u.fileno()])\n\
         print('held=%d' % held.getsockname()[1])\n\
         print('inflight=%d' % u.getsockname()[1])\n\
         u.close()\n\
         print('ready', flush=True)\n\
         time.sleep(300)\n",
    ]);
    let holder = common::spawn_ready(command).expect("the holder");
    let (held, inflight) = (
        holder.value("held").expect("held port").to_owned(),
        holder.value("inflight").expect("in-flight port").to_owned(),
    );
    let report = run_scenario("full_scan", 0);
    let reply = &report["generate_all"];
    assert_eq!(
        code(reply),
        0,
        "rows of a failed call are dropped by osquery"
    );
    let message = reply["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("incomplete: ")
            && message.contains(&format!("UDP socket 127.0.0.1:{inflight} (socket "))
            && message.contains(&format!("of uid {}", attacker.uid)),
        "{message}"
    );
    let rows = reply["rows"].as_array().expect("rows");
    assert!(
        rows.iter().any(
            |r| r["pid"] == holder.pid.to_string().as_str() && r["local_port"] == held.as_str()
        ),
        "the holder's own socket is a row: {reply}"
    );
}

/// Red team F3 over a real Thrift round trip: the extension, serving, records
/// sends. An unsigned program as a test user, told to send once the extension
/// is up, sends on its UDP socket, hands it to `/usr/bin/sleep` and closes its
/// own copy. The unconstrained generate osquery's hit query makes answers a
/// row of the sender (fd -1, state `sent_not_held`, its own path), beside
/// sleep's; its twin, which keeps its socket, has one row, its own.
#[test]
fn a_full_scan_gives_a_socket_handed_to_a_trusted_process_to_its_sender() {
    if !common::is_root() {
        return common::skip(
            "a_full_scan_gives_a_socket_handed_to_a_trusted_process_to_its_sender",
            "needs root",
        );
    }
    let _full_scan = common::FullScanLock::shared();
    let attacker = common::attacker("thrift-handoff");
    let _kill = common::KillUser(attacker.name.clone());
    let python = attacker.unsigned_python_copy("relay", "thrift-handoff");
    let sent = attacker.home.join("sent");
    let script = "import os, signal, socket, subprocess, sys, time\n\
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\n\
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        u.bind(('127.0.0.1', 0))\n\
        port = u.getsockname()[1]\n\
        print(f'port={port}')\n\
        print('ready', flush=True)\n\
        if sys.argv[1] == 'keep':\n\
        \x20   u.sendto(b'x', ('127.0.0.1', port))\n\
        \x20   time.sleep(300)\n\
        signal.sigwait({signal.SIGUSR1})\n\
        u.sendto(b'x', ('127.0.0.1', port))\n\
        s = subprocess.Popen(['/usr/bin/sleep', '300'], pass_fds=[u.fileno()])\n\
        u.close()\n\
        open(sys.argv[2], 'w').write(str(s.pid))\n\
        time.sleep(300)\n";
    let start = |mode: &str| {
        let mut command = attacker.command(&python);
        command.arg("-c").arg(script).arg(mode).arg(&sent);
        common::spawn_ready(command).expect("the sender")
    };
    let sender = start("handoff");
    let twin = start("keep");
    let report = run_scenario_with(
        "full_scan_after_send",
        sender.pid as u32,
        &["--wait-file", sent.to_str().expect("a UTF-8 path")],
    );
    assert_eq!(report["sent"], true, "{report}");
    let sleep = std::fs::read_to_string(&sent).expect("sleep's pid");
    let reply = &report["generate_all"];
    let rows = reply["rows"].as_array().expect("rows");
    let port = sender.value("port").expect("port");
    let of_port = |port: &str| -> Vec<(String, String, String, String)> {
        rows.iter()
            .filter(|r| r["local_port"] == port && r["protocol"] == "17")
            .map(|r| {
                let text = |c: &str| r[c].as_str().unwrap_or_default().to_owned();
                (text("pid"), text("fd"), text("state"), text("path"))
            })
            .collect()
    };
    let handed = of_port(port);
    assert!(
        handed
            .iter()
            .any(|(pid, fd, _, _)| *pid == sleep && fd != "-1"),
        "sleep's row: {handed:?}"
    );
    assert!(
        handed.contains(&(
            sender.pid.to_string(),
            "-1".into(),
            "sent_not_held".into(),
            python.to_string_lossy().into_owned()
        )),
        "the sender's row: {handed:?}\n{}",
        report["extension_stderr"]
    );
    let info = &report["info"]["rows"][0];
    assert_eq!(info["send_ledger"], "running", "{info}");
    let kept = of_port(twin.value("port").expect("port"));
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        (kept[0].0.as_str(), kept[0].2.as_str()),
        (twin.pid.to_string().as_str(), "bound")
    );
}

/// Issue 11: idle and garbage connections must not take the extension's workers.
/// osquery-rust-ng's stock server (thrift's 10-worker pool, no read timeout) let
/// ten idle connections wedge every table call while pings still answered.
#[test]
fn idle_and_garbage_connections_leave_table_calls_answering() {
    let holder = UdpHolder::start();
    let report = run_scenario("idle_flood", holder.pid());
    let call = &report["call"];
    assert_eq!(code(call), 0, "{report}");
    let rows = call["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{call}");
    assert_eq!(rows[0]["local_port"], holder.port.to_string().as_str());
    let seconds = report["call_seconds"].as_f64().unwrap_or(f64::MAX);
    assert!(
        seconds < 2.0,
        "a real call took {seconds} s behind idle connections"
    );
    let ping = report["ping_seconds"].as_f64().unwrap_or(f64::MAX);
    assert!(ping < 2.0, "a ping took {ping} s");
    assert_eq!(report["alive"], true);
    // The garbage was refused, and the 2 GiB length prefix before any allocation.
    let stderr = report["extension_stderr"].as_str().unwrap_or_default();
    assert!(stderr.contains("invalid thrift version"), "{stderr}");
    assert!(stderr.contains("message too long"), "{stderr}");
    let exit = &report["exit_after_manager_loss"];
    assert_eq!(exit["code"], 0, "{exit}");
}

#[test]
fn sigterm_deregisters_and_exits_cleanly() {
    let report = run_scenario("sigterm", std::process::id());
    assert_eq!(report["registration"]["name"], "an1256");
    let exit = &report["exit_after_sigterm"];
    assert_eq!(exit["code"], 0, "{exit}\n{}", report["extension_stderr"]);
    assert!(exit["seconds"].as_f64().unwrap_or(f64::MAX) < 5.0, "{exit}");
    assert_eq!(
        report["deregistered"],
        serde_json::json!([true]),
        "the extension must deregister its own uuid once"
    );
    assert_eq!(report["extension_socket_removed"], true);
}

#[test]
fn missing_manager_socket_exits_nonzero_with_a_clear_message_after_timeout() {
    let work = tempfile::tempdir().expect("tempdir");
    let socket = work.path().join("osquery.em");
    let started = Instant::now();
    let mut child = Command::new(EXTENSION)
        .arg("--socket")
        .arg(&socket)
        .args(["--timeout", "2", "--interval", "1"])
        .env("AN1256_DB", socket.with_file_name("store/an1256.db"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start an1256");
    let status = wait_bounded(&mut child, Duration::from_secs(2 + 8))
        .expect("an1256 kept waiting for the socket well past --timeout");
    let elapsed = started.elapsed();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        elapsed >= Duration::from_secs(2),
        "gave up after {elapsed:?}"
    );
    let expected = format!(
        "osquery's extension socket {} did not appear within 2 s; is osqueryd running with --extensions_socket?",
        socket.display()
    );
    assert!(stderr.contains(&expected), "stderr: {stderr}");
}

#[test]
fn a_refused_registration_exits_nonzero_instead_of_lingering() {
    let report = run_scenario("refused", std::process::id());
    let exit = &report["exit_after_refusal"];
    let stderr = report["extension_stderr"].as_str().unwrap_or("");
    assert_eq!(report["register_calls"], 1);
    assert_eq!(exit["code"], 1, "{exit}\n{stderr}");
    assert!(exit["seconds"].as_f64().unwrap_or(f64::MAX) < 8.0, "{exit}");
    assert!(
        stderr.contains("refused to register an1256"),
        "stderr: {stderr}"
    );
    assert_eq!(report["extension_socket_existed"], true);
    assert_eq!(report["extension_socket_removed"], true);
}

#[test]
fn a_second_copy_does_not_register_and_says_why() {
    let report = run_scenario("duplicate", std::process::id());
    let exit = &report["exit_on_duplicate"];
    let stderr = report["extension_stderr"].as_str().unwrap_or("");
    assert_eq!(report["register_calls"], 0, "{stderr}");
    assert_eq!(report["extension_socket_existed"], false, "it never serves");
    assert_eq!(exit["code"], 1, "{exit}\n{stderr}");
    assert!(exit["seconds"].as_f64().unwrap_or(f64::MAX) < 5.0, "{exit}");
    assert!(
        stderr.contains("already has an an1256 extension registered (uuid 777)"),
        "stderr: {stderr}"
    );
}

#[test]
fn a_hung_manager_makes_the_extension_exit() {
    let report = run_scenario("hang", std::process::id());
    let exit = &report["exit_after_hang"];
    let stderr = report["extension_stderr"].as_str().unwrap_or("");
    assert_eq!(exit["code"], 1, "{exit}\n{stderr}");
    // --interval 1: ten intervals (at least 10 s) unanswered, plus the grace.
    let seconds = exit["seconds"].as_f64().unwrap_or(f64::MAX);
    assert!((9.0..30.0).contains(&seconds), "{exit}");
    assert!(
        stderr.contains("answered none for 10 s"),
        "stderr: {stderr}"
    );
}

#[test]
fn shutdown_rpc_deregisters_and_exits_cleanly() {
    let report = run_scenario("shutdown_rpc", std::process::id());
    let exit = &report["exit_after_shutdown_rpc"];
    assert_eq!(exit["code"], 0, "{exit}\n{}", report["extension_stderr"]);
    assert!(exit["seconds"].as_f64().unwrap_or(f64::MAX) < 5.0, "{exit}");
    assert_eq!(report["deregistered"], serde_json::json!([true]));
    assert_eq!(report["extension_socket_removed"], true);
}

#[test]
fn osquery_side_insert_and_delete_on_the_baseline_table() {
    let identity = format!("sha256:{}", "c".repeat(64));
    let report = run_scenario_with("baseline_write", 0, &["--identity", &identity]);
    let names: Vec<&str> = report["baseline_columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(Json::as_str)
        .collect();
    let expected: Vec<&str> = an1256::tables::an1256_baseline::COLUMNS
        .iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, expected);

    let insert = &report["insert"];
    assert_eq!(code(insert), 0, "{insert}");
    assert_eq!(insert["rows"][0]["status"], "success", "{insert}");
    let new_id = insert["rows"][0]["id"]
        .as_str()
        .expect("new row id")
        .to_owned();

    let rows = report["after_insert"]["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["identity"], identity.as_str());
    assert_eq!(rows[0]["source"], "approved");
    assert_eq!(rows[0]["remote_port"], "-1");
    assert_eq!(rows[0]["note"], "approved through osquery");
    assert_eq!(
        rows[0]["rowid"],
        new_id.as_str(),
        "osquery reads row ids from `rowid`"
    );

    let bad = &report["insert_bad_port"];
    assert_eq!(bad["rows"][0]["status"], "constraint", "{bad}");
    assert!(
        bad["message"]
            .as_str()
            .unwrap_or("")
            .contains("out of range")
            || bad["rows"][0]["message"]
                .as_str()
                .unwrap_or("")
                .contains("out of range"),
        "{bad}"
    );

    assert_eq!(
        report["delete"]["rows"][0]["status"], "success",
        "{}",
        report["delete"]
    );
    assert_eq!(report["after_delete"]["rows"], serde_json::json!([]));
    // Both writes are in the audit trail, as osquery's, with before and after.
    let audit = report["audit"]["rows"].as_array().expect("audit rows");
    let trail: Vec<(&str, &str)> = audit
        .iter()
        .rev()
        .map(|r| {
            (
                r["source"].as_str().unwrap_or(""),
                r["action"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [("osquery", "approve"), ("osquery", "revoke")],
        "{audit:?}"
    );
    let approve = audit.last().expect("approve record");
    assert_eq!(approve["before"], "");
    assert!(approve["after"]
        .as_str()
        .unwrap_or("")
        .contains("approved through osquery"));
    assert_eq!(
        audit[0]["before"], approve["after"],
        "revoke shows what was removed"
    );
    assert_eq!(audit[0]["after"], "");
    let info = &report["info"]["rows"][0];
    assert!(
        info["db_path"]
            .as_str()
            .unwrap_or("")
            .ends_with("store/an1256.db"),
        "{info}"
    );
    // The sampler thread ran in extension mode and recorded its cost.
    let sampled: i64 = info["last_sample_time"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    assert!(sampled > 0, "no sampler pass recorded: {info}");
    eprintln!(
        "extension sampler: first pass {} ms wall, {} ms cpu",
        info["last_sample_duration_ms"], info["last_sample_cpu_ms"]
    );
    // The 1 s watch of untrusted processes runs beside it: on exec events as
    // root, polling (and saying why) otherwise.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let (source, note) = (info["watch_source"].as_str(), info["watch_note"].as_str());
    if root {
        assert_eq!((source, note), (Some("proc_connector"), Some("")), "{info}");
    } else {
        assert_eq!(source, Some("polling"), "{info}");
        assert!(note.is_some_and(|n| n.contains("proc connector")), "{info}");
    }
    assert_eq!(report["exit_after_sigterm"]["code"], 0);
}

/// `osquery_writes: false`: osquery's INSERT and DELETE answer `readonly` and
/// change nothing (the benign twin is the test above, with the default config).
#[test]
fn osquery_writes_false_makes_the_baseline_read_only_from_osquery() {
    let identity = format!("sha256:{}", "d".repeat(64));
    let report = run_scenario_configured(
        "baseline_write",
        0,
        &["--identity", &identity],
        r#"{"osquery_writes": false}"#,
    );
    assert_eq!(
        report["insert"]["rows"][0]["status"], "readonly",
        "{}",
        report["insert"]
    );
    assert_eq!(report["after_insert"]["rows"], serde_json::json!([]));
    assert_eq!(
        report["delete"]["rows"][0]["status"], "readonly",
        "{}",
        report["delete"]
    );
    assert_eq!(report["audit"]["rows"], serde_json::json!([]));
}
