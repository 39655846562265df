//! A process whose main thread has exited while another thread holds the socket:
//! `/proc/<pid>` then shows no `fd`, `exe`, `cmdline` or `environ` (the leader is
//! a zombie), so a scan that looks only there sees nothing. The scanner reads a
//! live thread's `/proc/<pid>/task/<tid>` instead.
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;

/// The user's unsigned copy of python3 opens `kind` to TEST-NET (a listener on
/// loopback for TCP), starts a thread that keeps the socket, says ready and ends
/// its main thread with a raw `exit` (SYS_exit, not exit_group).
fn holder(kind: &str) -> String {
    format!(
        "import ctypes, socket, threading, time\n\
         kind = '{kind}'\n\
         if kind == 'udp':\n\
         \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         \x20   s.connect(('192.0.2.71', 5071))\n\
         else:\n\
         \x20   server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen(1)\n\
         \x20   s = socket.create_connection(server.getsockname())\n\
         def hold():\n\
         \x20   while True:\n\
         \x20       time.sleep(1)\n\
         threading.Thread(target=hold).start()\n\
         print('ready', flush=True)\n\
         ctypes.CDLL(None).syscall(60, 0)\n"
    )
}

fn query(sql: &str) -> Vec<serde_json::Value> {
    let store = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_an1256"))
        .arg("--db")
        .arg(store.path().join("an1256.db"))
        .args(["query", "--json", sql])
        .output()
        .expect("run an1256 query");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:.200}")))
        .collect()
}

/// Waits until the process's main thread is a zombie while the process lives on.
fn wait_for_exited_leader(pid: i32) {
    for _ in 0..100 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the main thread of {pid} did not exit");
}

fn run_holder(tag: &str, kind: &str) -> (common::Attacker, common::ReadyChild, std::path::PathBuf) {
    let user = common::attacker(tag);
    let python = user.home.join("py");
    common::copy_executable("/usr/bin/python3", &python);
    std::os::unix::fs::chown(&python, Some(user.uid), Some(user.gid)).expect("chown");
    let mut command = user.command(&python);
    command.arg("-c").arg(holder(kind));
    let child = common::spawn_ready(command).expect("holder starts");
    wait_for_exited_leader(child.pid);
    (user, child, python)
}

#[test]
fn a_udp_socket_kept_by_a_thread_after_the_main_thread_exits_is_a_hit() {
    const TEST: &str = "a_udp_socket_kept_by_a_thread_after_the_main_thread_exits_is_a_hit";
    if !common::is_root() {
        return common::skip(TEST, "needs root (users)");
    }
    let (_user, child, python) = run_holder("exitlead", "udp");
    let rows = query(&format!(
        "SELECT s.remote_address, s.protocol_name, c.path, c.subject_trusted \
         FROM nonstandard_protocol_sockets s JOIN process_code_signature c ON c.pid = s.pid \
         WHERE s.pid = {}",
        child.pid
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["remote_address"], "192.0.2.71", "{rows:?}");
    assert_eq!(rows[0]["protocol_name"], "udp", "{rows:?}");
    assert_eq!(rows[0]["path"], python.display().to_string(), "{rows:?}");
    assert_eq!(rows[0]["subject_trusted"], 0, "{rows:?}");
    // The whole-host scan finds it too (no pid constraint).
    let all =
        query("SELECT pid FROM nonstandard_protocol_sockets WHERE remote_address = '192.0.2.71'");
    assert!(all.iter().any(|r| r["pid"] == child.pid), "{all:?}");
}

/// Benign twin: the same exited main thread with only a TCP connection held is
/// not a non-standard protocol socket, and the process is still seen whole.
#[test]
fn a_tcp_connection_kept_after_the_main_thread_exits_is_not_listed() {
    const TEST: &str = "a_tcp_connection_kept_after_the_main_thread_exits_is_not_listed";
    if !common::is_root() {
        return common::skip(TEST, "needs root (users)");
    }
    let (_user, child, python) = run_holder("exitleadtcp", "tcp");
    let rows = query(&format!(
        "SELECT pid FROM nonstandard_protocol_sockets WHERE pid = {}",
        child.pid
    ));
    assert!(rows.is_empty(), "{rows:?}");
    let process = query(&format!(
        "SELECT path FROM process_code_signature WHERE pid = {}",
        child.pid
    ));
    assert_eq!(process.len(), 1, "{process:?}");
    assert_eq!(
        process[0]["path"],
        python.display().to_string(),
        "{process:?}"
    );
}
