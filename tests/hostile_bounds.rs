//! Hostile-user bounds (issue 11): one unprivileged process must not blow up the
//! scanner's memory or output, and sockets it hides must still be seen (issue 10).
//! Every case runs as a user created by the test; bounds are measured from outside
//! (`/usr/bin/time -v` on the real `an1256` binary).
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;

/// Held by tests that run a full scan, and by those whose processes make any
/// full scan partial (`a_user_holding_many_fds_…`, `threads_listing_…`): tests
/// in this file run in parallel, and other binaries' full-scan tests (the fd
/// iterator's) may run beside this one on a shared machine.
fn full_scan_lock() -> common::FullScanLock {
    common::FullScanLock::exclusive()
}

/// Runs the real `an1256` with a private store under `/usr/bin/time -v`; returns
/// (exit code, stdout, stderr, max RSS in KiB).
fn measured_an1256(args: &[&str]) -> (Option<i32>, Vec<u8>, String, u64) {
    let run = measure_an1256(args);
    (run.code, run.stdout, run.stderr, run.rss_kib)
}

/// One measured `an1256` run.
struct Measured {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    rss_kib: u64,
    /// User + system CPU seconds.
    cpu_seconds: f64,
    wall_seconds: f64,
}

fn measure_an1256(args: &[&str]) -> Measured {
    let store = tempfile::tempdir().unwrap();
    let db = store.path().join("an1256.db");
    let timing = store.path().join("time.txt");
    let started = std::time::Instant::now();
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
    let wall_seconds = started.elapsed().as_secs_f64();
    let timing = std::fs::read_to_string(&timing).unwrap_or_default();
    let field = |name: &str| {
        timing
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name:?} in /usr/bin/time output: {timing}"))
    };
    let rss_kib = field("Maximum resident set size (kbytes): ")
        .parse()
        .unwrap_or_else(|e| panic!("RSS: {e}: {timing}"));
    let cpu_seconds = ["User time (seconds): ", "System time (seconds): "]
        .iter()
        .map(|name| {
            field(name)
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("{e}: {timing}"))
        })
        .sum();
    Measured {
        code: output.status.code(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        rss_kib,
        cpu_seconds,
        wall_seconds,
    }
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
    let _full_scan = full_scan_lock();
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

/// Rows of the socket table for one pid, through the real binary.
fn socket_rows(pid: i32) -> Vec<serde_json::Value> {
    let (code, stdout, stderr, _) = measured_an1256(&[
        "query",
        "--json",
        &format!(
            "SELECT fd, socket, family, protocol, protocol_name, state, reason \
             FROM nonstandard_protocol_sockets WHERE pid = {pid}"
        ),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    json_lines(&stdout)
}

/// Issue 10 item 8a: a UDP, UDPv6, UDP-Lite or UDP-Lite v6 socket that has neither
/// bound nor sent is in no /proc/net table and no sock_diag dump; it is reported
/// from the fd's `system.sockprotoname`, state `unbound`.
#[test]
fn unbound_udp_sockets_are_reported() {
    if !common::is_root() {
        return common::skip("unbound_udp_sockets_are_reported", "needs root");
    }
    let user = common::attacker("unboundudp");
    let holder = common::spawn_ready(user.python(
        "import socket, time\n\
         held = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM),\n\
         \x20       socket.socket(socket.AF_INET6, socket.SOCK_DGRAM),\n\
         \x20       socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136),\n\
         \x20       socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, 136)]\n\
         print('fds=' + ','.join(str(s.fileno()) for s in held))\n\
         print('ready', flush=True)\n\
         time.sleep(600)\n",
    ))
    .expect("holder starts");
    let fds: Vec<i64> = holder
        .value("fds")
        .unwrap_or_default()
        .split(',')
        .filter_map(|f| f.parse().ok())
        .collect();
    let rows = socket_rows(holder.pid);
    let seen: Vec<(i64, i64, i64, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["fd"].as_i64().unwrap_or(-2),
                r["family"].as_i64().unwrap_or(0),
                r["protocol"].as_i64().unwrap_or(0),
                r["protocol_name"].as_str().unwrap_or_default().to_owned(),
                r["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(i64, i64, i64, String, String)> = fds
        .iter()
        .zip([
            (2, 17, "udp"),
            (10, 17, "udp"),
            (2, 136, "udplite"),
            (10, 136, "udplite"),
        ])
        .map(|(fd, (family, protocol, name))| {
            (*fd, family, protocol, name.to_owned(), "unbound".to_owned())
        })
        .collect();
    assert_eq!(seen, expected, "{rows:?}");
}

/// The benign twin: a bound UDP socket is listed by the kernel and appears once,
/// as bound (no second, xattr-named row for the same inode).
#[test]
fn bound_udp_socket_appears_once() {
    if !common::is_root() {
        return common::skip("bound_udp_socket_appears_once", "needs root");
    }
    let user = common::attacker("boundudp");
    let holder = common::spawn_ready(user.python(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('127.0.0.1', 0))\n\
         print('fd=%d' % s.fileno())\n\
         print('ready', flush=True)\n\
         time.sleep(600)\n",
    ))
    .expect("holder starts");
    let rows = socket_rows(holder.pid);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["fd"].as_i64(), Some(holder.int("fd")));
    assert_eq!(rows[0]["state"], "bound");
    assert_eq!(rows[0]["protocol_name"], "udp");
}

/// The SOCKS rows of `pid` with their owner's verdict, from a full scan (as `scan`
/// does: a `pid =` query of a server alone does not look at other processes'
/// clients), through the real binary.
fn socks_rows(pid: i32) -> Vec<serde_json::Value> {
    let _full_scan = full_scan_lock();
    let (code, stdout, stderr, _) = measured_an1256(&[
        "query",
        "--json",
        "SELECT s.pid, s.fd, s.local_port, s.state, s.reason, c.subject_trusted \
         FROM nonstandard_protocol_sockets s JOIN process_code_signature c \
         ON c.pid = s.pid WHERE s.protocol_name = 'socks'",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    json_lines(&stdout)
        .into_iter()
        .filter(|r| r["pid"].as_i64() == Some(i64::from(pid)))
        .collect()
}

/// An unprivileged copy of microsocks under another name, listening on `ports`'
/// first free port (1080 unless taken), with a python client connected to it
/// (`client_env` set in the client's environment).
fn renamed_microsocks_with_client(
    tag: &str,
    ports: &[u16],
    client_env: impl Fn(u16) -> Vec<(String, String)>,
) -> Option<(common::KillOnDrop, common::ReadyChild, u16)> {
    let microsocks = common::which("microsocks")?;
    let user = common::attacker(tag);
    let helper = user.write(
        ".cache/svc-helper",
        &std::fs::read(&microsocks).expect("read microsocks"),
        true,
    );
    for &port in ports {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue; // taken by someone else
        }
        let mut server = user
            .command(&helper)
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the renamed microsocks");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                let _ = server.kill();
                let _ = server.wait();
                panic!("the renamed microsocks never listened on {port}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut client = user.python(&format!(
            "import socket, time\n\
             c = socket.create_connection(('127.0.0.1', {port}))\n\
             print('ready', flush=True)\n\
             time.sleep(600)\n"
        ));
        for (key, value) in client_env(port) {
            client.env(key, value);
        }
        let server = common::KillOnDrop(server);
        let client = common::spawn_ready(client).expect("client starts");
        return Some((server, client, port));
    }
    None
}

/// Issue 10 item 8b: an unsigned copy of microsocks under another name, listening
/// on a SOCKS port with a client connected, is a `socks_server` row (by its port),
/// and a hit (untrusted owner).
#[test]
fn renamed_socks_server_on_a_socks_port_is_a_server() {
    if !common::is_root() {
        return common::skip("renamed_socks_server_on_a_socks_port", "needs root");
    }
    let Some((server, _client, port)) =
        renamed_microsocks_with_client("renamedsocks", &[1080, 1081, 1085, 1086, 10808], |_| {
            Vec::new()
        })
    else {
        return common::skip(
            "renamed_socks_server_on_a_socks_port",
            "no microsocks or no free SOCKS port",
        );
    };
    let rows = socks_rows(server.pid());
    let listener = rows
        .iter()
        .find(|r| r["state"] == "LISTEN")
        .unwrap_or_else(|| panic!("no listener row on {port}: {rows:?}"));
    assert_eq!(listener["reason"], "socks_port,socks_server");
    assert_eq!(listener["local_port"], i64::from(port));
    assert_eq!(listener["subject_trusted"], 0);
}

/// Issue 10 item 8b: a renamed SOCKS server on an ordinary port is a server when a
/// local client reaches it as its SOCKS proxy by its environment; the same
/// listener reached by a client without that signal is not (benign twin).
#[test]
fn listener_reached_through_an_env_proxy_is_a_server() {
    if !common::is_root() {
        return common::skip("listener_reached_through_an_env_proxy", "needs root");
    }
    let port = {
        let probe = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("free port");
        probe.local_addr().expect("addr").port()
    };
    let Some((server, _client, port)) =
        renamed_microsocks_with_client("envproxysrv", &[port], |port| {
            vec![("ALL_PROXY".into(), format!("socks5h://127.0.0.1:{port}"))]
        })
    else {
        return common::skip("listener_reached_through_an_env_proxy", "no microsocks");
    };
    let rows = socks_rows(server.pid());
    let listener = rows
        .iter()
        .find(|r| r["state"] == "LISTEN")
        .unwrap_or_else(|| panic!("no listener row on {port}: {rows:?}"));
    assert_eq!(listener["reason"], "socks_server");
    assert_eq!(listener["subject_trusted"], 0);

    // Twin: the same renamed server with a plain client (no SOCKS signal).
    let port = {
        let probe = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("free port");
        probe.local_addr().expect("addr").port()
    };
    let Some((server, _client, _)) =
        renamed_microsocks_with_client("plainclisrv", &[port], |_| Vec::new())
    else {
        return;
    };
    let rows = socks_rows(server.pid());
    assert!(rows.is_empty(), "no signal, no row: {rows:?}");
}

/// Issue 10 item 8c: a process that calls itself `ssh` through argv[0] (with an
/// ssh-like `-D` in its argv) and listens on that port is not taken for ssh: no
/// socks_server row (the port is not a SOCKS port).
#[test]
fn a_process_calling_itself_ssh_is_not_ssh() {
    if !common::is_root() {
        return common::skip("a_process_calling_itself_ssh_is_not_ssh", "needs root");
    }
    let user = common::attacker("fakessh");
    let port = {
        let probe = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("free port");
        probe.local_addr().expect("addr").port()
    };
    let code = format!(
        "import socket, time\n\
         s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(8)\n\
         print('ready', flush=True)\n\
         time.sleep(600)\n"
    );
    let mut command = user.command("/bin/bash");
    command.arg("-c").arg(format!(
        "exec -a ssh /usr/bin/python3 -c \"$0\" -D {port} -N user@example"
    ));
    command.arg(&code);
    let fake = common::spawn_ready(command).expect("fake ssh starts");
    let argv0 = std::fs::read(format!("/proc/{}/cmdline", fake.pid)).unwrap_or_default();
    assert!(argv0.starts_with(b"ssh\0"), "argv[0] is ssh");
    let rows = socks_rows(fake.pid);
    assert!(rows.is_empty(), "argv[0] alone made it ssh: {rows:?}");
}

/// The twin of the fd attacks: another user's connected UDP socket is a row.
fn assert_connected_row_of(run: &Measured, pid: i32) {
    let rows = json_lines(&run.stdout);
    assert!(
        rows.iter()
            .any(|r| r["pid"].as_i64() == Some(i64::from(pid)) && r["state"] == "connected"),
        "the other user's UDP socket is a row; stderr: {}",
        run.stderr
    );
}

/// Processes of `attacker` running `code` (each prints `held=<n>`) until they
/// hold `at_least` fds between them: the processes and the fds held.
fn hoard(
    attacker: &common::Attacker,
    code: &str,
    at_least: usize,
) -> (Vec<common::ReadyChild>, usize) {
    let mut hoarders = Vec::new();
    let mut held = 0;
    while held < at_least && hoarders.len() < 60 {
        let hoarder = common::spawn_ready(attacker.python(code)).expect("hoarder starts");
        let count = hoarder.int("held") as usize;
        assert!(count > 500, "the hoarder held only {count} fds");
        held += count;
        hoarders.push(hoarder);
    }
    assert!(
        held >= at_least,
        "{held} fds in {} processes",
        hoarders.len()
    );
    (hoarders, held)
}

/// Another user's process holding one connected UDP socket: the benign twin a
/// hoarder must not push out of the result.
fn connected_udp_holder(other: &common::Attacker) -> common::ReadyChild {
    let script = other.write("holder.py", udp_holder(1).as_bytes(), false);
    let mut command = other.command("/usr/bin/python3");
    command.arg(&script);
    common::spawn_ready(command).expect("holder starts")
}

/// A process of the user holding as many fds as its hard limit allows (dups of
/// one pipe end, at most 19,000); prints `held=<n>` and `ready`.
const FD_HOARDER: &str = "import os, resource, time\n\
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n\
r, w = os.pipe()\n\
held = [os.dup(r) for _ in range(min(hard - 64, 19000))]\n\
print('held=%d' % len(held))\n\
print('ready', flush=True)\n\
time.sleep(600)\n";

/// Red team: one user holding millions of fds made every full scan walk them all
/// (4M fds in 150 processes: 26 s wall, 10.6 s CPU). Each user's processes now get
/// a budget of fd entries per scan; past it, that user's further processes are not
/// walked and the result says so, naming the uid. Another user's socket holder is
/// still a row (the twin). Here the attacker holds ~300,000 fds.
#[test]
fn a_user_holding_many_fds_is_cut_at_its_budget_and_others_are_walked() {
    if !common::is_root() {
        return common::skip(
            "a_user_holding_many_fds_is_cut_at_its_budget_and_others_are_walked",
            "needs root",
        );
    }
    let _full_scan = full_scan_lock();
    let attacker = common::attacker("fdhoard");
    let (hoarders, held) = hoard(&attacker, FD_HOARDER, 300_000);
    let other = common::attacker("fdhoard-twin");
    let holder = connected_udp_holder(&other);

    // The budget bounds the /proc walk; the BPF fd iterator (below) never walks
    // fds that are not sockets.
    let run = measure_an1256(&[
        "--fd-iterator",
        "false",
        "query",
        "--json",
        "SELECT pid, fd, state FROM nonstandard_protocol_sockets",
    ]);
    eprintln!(
        "full socket scan with {held} fds held by uid {} in {} processes: \
         {:.2} s wall, {:.2} s CPU, exit {:?}",
        attacker.uid,
        hoarders.len(),
        run.wall_seconds,
        run.cpu_seconds,
        run.code
    );
    assert_connected_row_of(&run, holder.pid);
    // The result is partial, and says whose processes were not walked.
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "uid {} used up its budget of 200000 fd entries per scan",
            attacker.uid
        )),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(&format!("uid {} ", other.uid)),
        "{}",
        run.stderr
    );
    // Generous (a loaded box): the budget caps the walk near 200,000 readlinks.
    assert!(run.wall_seconds < 30.0, "{:.2} s", run.wall_seconds);
    if an1256::platform::linux::fd_iterator::shared().is_err() {
        return;
    }
    // Through the iterator the hoarded pipe ends cost no readlink: nothing is cut.
    let run = measure_an1256(&[
        "query",
        "--json",
        "SELECT pid, fd, state FROM nonstandard_protocol_sockets",
    ]);
    eprintln!(
        "the same through the fd iterator: {:.2} s wall, {:.2} s CPU, exit {:?}",
        run.wall_seconds, run.cpu_seconds, run.code
    );
    let rows = json_lines(&run.stdout);
    assert!(
        rows.iter()
            .any(|r| r["pid"].as_i64() == Some(i64::from(holder.pid)) && r["state"] == "connected"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr
            .contains(&format!("uid {} used up", attacker.uid)),
        "{}",
        run.stderr
    );
    assert!(run.wall_seconds < 30.0, "{:.2} s", run.wall_seconds);
}

/// A process of the user holding one UDP socket dup'd as often as its hard
/// limit allows (at most 19,000): every dup is a socket fd, so a row.
const SOCKET_HOARDER: &str = "import os, resource, socket, time\n\
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n\
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
u.connect(('192.0.2.77', 53))\n\
held = [os.dup(u.fileno()) for _ in range(min(hard - 64, 19000))]\n\
print('held=%d' % len(held))\n\
print('ready', flush=True)\n\
time.sleep(600)\n";

/// Red team: the iterator path built a row for every socket fd, so one user's
/// ~700,000 dups of one UDP socket took a full scan to 402 MB (the walk: 126 MB,
/// its budget). Each user's socket fds now come out of the same budget on both
/// paths: past it that user's processes are cut, and the result says so naming
/// the uid; another user's socket holder is still a row (the twin).
#[test]
fn a_user_holding_many_socket_fds_is_cut_at_its_budget_through_the_iterator() {
    let test = "a_user_holding_many_socket_fds_is_cut_at_its_budget_through_the_iterator";
    if !common::is_root() {
        return common::skip(test, "needs root");
    }
    if let Err(why) = an1256::platform::linux::fd_iterator::shared() {
        return common::skip(test, format!("no fd iterator: {why}"));
    }
    let _full_scan = full_scan_lock();
    let attacker = common::attacker("sockhoard");
    let (hoarders, held) = hoard(&attacker, SOCKET_HOARDER, 260_000);
    let holder = connected_udp_holder(&common::attacker("sockhoard-twin"));
    let run = measure_an1256(&[
        "query",
        "--json",
        "SELECT pid, fd, state FROM nonstandard_protocol_sockets",
    ]);
    eprintln!(
        "full scan through the iterator with {held} socket fds of uid {}: {:.2} s wall, \
         {:.2} s CPU, {} MiB peak, exit {:?}",
        attacker.uid,
        run.wall_seconds,
        run.cpu_seconds,
        run.rss_kib / 1024,
        run.code
    );
    assert_connected_row_of(&run, holder.pid);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "uid {} used up its budget of 200000 fd entries per scan",
            attacker.uid
        )),
        "{}",
        run.stderr
    );
    let rows = json_lines(&run.stdout);
    let theirs = rows
        .iter()
        .filter(|r| {
            hoarders
                .iter()
                .any(|h| r["pid"].as_i64() == Some(i64::from(h.pid)))
        })
        .count();
    assert!(theirs <= 200_000, "{theirs} rows of the hoarder");
    assert!(run.wall_seconds < 60.0, "{:.2} s", run.wall_seconds);
}

/// One process: a UDP socket dup'd `argv[1]` times, then an ICMP ping socket
/// connected to 192.0.2.11 (its highest fd, its only `icmp` one: a row of its own
/// or, past the 64 rows kept per process, a summary of its own); then `argv[2]`
/// chains of threads, each living 100 µs (or 100 s with `argv[3]` = "slow"),
/// starting its successor and exiting; the leader exits. Red team: a pass over
/// its tasks resumes at the thread it stopped at, and that thread is gone.
const CHURNING_HOLDER: &str = r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
static int life;
static pthread_attr_t attr;
static void *chain(void *unused) {
    usleep(life);
    pthread_t next;
    while (pthread_create(&next, &attr, chain, 0)) usleep(100);
    return unused;
}
int main(int argc, char **argv) {
    int dups = atoi(argv[1]), chains = atoi(argv[2]);
    life = strcmp(argv[3], "slow") == 0 ? 100000000 : 100;
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, "192.0.2.10", &to.sin_addr);
    sendto(udp, "x", 1, 0, (void *)&to, sizeof to);
    for (int i = 0; i < dups; i++) dup(udp);
    int last = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    struct sockaddr_in peer = {.sin_family = AF_INET};
    inet_pton(AF_INET, "192.0.2.11", &peer.sin_addr);
    if (last < 0 || connect(last, (void *)&peer, sizeof peer) != 0) {
        printf("error=no ping socket\n");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 65536);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t first;
    for (int i = 0; i < chains; i++) pthread_create(&first, &attr, chain, 0);
    syscall(SYS_exit, 0);
}
"#;

/// Red team (high): a process whose threads keep replacing each other while
/// its fds are read lost its highest sockets (there a SOCKS connection) from
/// every full scan, on both paths, and the result said nothing (exit 0). The pass
/// per process now compares its thread list before and after, and the walk
/// counts a thread that exits mid-read: either the connection is a row or the
/// result says the process may lack sockets (exit 2). The twin, the same
/// program with threads living 100 s, is complete with its connection.
#[test]
fn a_process_whose_threads_keep_replacing_each_other_is_not_silently_cut_short() {
    const TEST: &str =
        "a_process_whose_threads_keep_replacing_each_other_is_not_silently_cut_short";
    if !common::is_root() {
        return common::skip(TEST, "needs root");
    }
    let _full_scan = full_scan_lock();
    let attacker = common::attacker("churn");
    let Some(binary) = common::compiled(&attacker, "churn", CHURNING_HOLDER) else {
        return common::skip(TEST, "no C compiler");
    };
    let start = |speed: &str| {
        let mut command = attacker.command(&binary);
        command.args(["19000", "3", speed]);
        common::spawn_ready(command)
    };
    let (Ok(churning), Ok(steady)) = (start("fast"), start("slow")) else {
        return common::skip(TEST, "no ping socket for this user (ping_group_range)");
    };
    let has_connection = |run: &Measured, child: &common::ReadyChild| {
        json_lines(&run.stdout).iter().any(|r| {
            r["pid"].as_i64() == Some(i64::from(child.pid)) && r["protocol_name"] == "icmp"
        })
    };
    for fd_iterator in ["true", "false"] {
        let run = measure_an1256(&[
            "--fd-iterator",
            fd_iterator,
            "query",
            "--json",
            "SELECT pid, fd, protocol_name, state FROM nonstandard_protocol_sockets",
        ]);
        eprintln!(
            "iterator {fd_iterator}: {:.2} s wall, exit {:?}, churning row: {}",
            run.wall_seconds,
            run.code,
            has_connection(&run, &churning)
        );
        let said = run.code == Some(2) && run.stderr.contains(&format!("process {}", churning.pid));
        assert!(
            has_connection(&run, &churning) || said,
            "iterator {fd_iterator}: the churning process's connection is missing and \
             nothing says so: exit {:?}, {}",
            run.code,
            run.stderr
        );
        assert!(
            has_connection(&run, &steady),
            "iterator {fd_iterator}: the twin's connection: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains(&format!("process {}", steady.pid)),
            "{}",
            run.stderr
        );
    }
}

/// Red team: through the /proc walk, the churning process above was missing
/// from about 2 full scans in 30 with nothing said. Its leader is a zombie, so its
/// fds are read through a live thread found by listing `task`; threads born
/// after that listing are not in it and those in it soon die, so at times no
/// live thread was found: the walk then read nothing and called the process
/// gone (not living on), and the one thread table walked after it was cut when
/// that thread exited, silently. Here each of many walks of the process alone
/// must list its ping socket or name the process unsure; the steady twin's
/// walks are complete every time.
#[test]
fn every_walk_of_a_process_whose_threads_keep_replacing_each_other_finds_it_or_says_so() {
    const TEST: &str =
        "every_walk_of_a_process_whose_threads_keep_replacing_each_other_finds_it_or_says_so";
    const WALKS: usize = 2000;
    if !common::is_root() {
        return common::skip(TEST, "needs root");
    }
    // Its churning process makes any full scan beside it partial.
    let _full_scan = full_scan_lock();
    let attacker = common::attacker("churnwalk");
    let Some(binary) = common::compiled(&attacker, "churn", CHURNING_HOLDER) else {
        return common::skip(TEST, "no C compiler");
    };
    let start = |speed: &str| {
        let mut command = attacker.command(&binary);
        command.args(["2000", "3", speed]);
        common::spawn_ready(command)
    };
    let (Ok(churning), Ok(steady)) = (start("fast"), start("slow")) else {
        return common::skip(TEST, "no ping socket for this user (ping_group_range)");
    };
    let host = an1256::platform::linux::LinuxHost::new(an1256::platform::HostConfig {
        fd_iterator: false,
        ..an1256::platform::HostConfig::default()
    });
    let walk = |pid: i32| {
        an1256::platform::Host::sockets(
            &host,
            &an1256::model::SocketQuery {
                pids: Some(vec![pid]),
                protocols: an1256::model::ProtocolSet::ALL,
            },
        )
    };
    let has_ping = |scan: &an1256::model::SocketScan, pid: i32| {
        scan.sockets
            .iter()
            .any(|s| s.pid == pid && s.protocol == 1 && s.remote_address == "192.0.2.11")
    };
    let (mut found, mut said, mut quiet) = (0, 0, Vec::new());
    for walk_number in 0..WALKS {
        let scan = walk(churning.pid);
        let unsure = scan
            .incomplete
            .iter()
            .any(|note| note.contains(&format!("process {}", churning.pid)));
        if has_ping(&scan, churning.pid) {
            found += 1;
        } else if unsure {
            said += 1;
        } else {
            quiet.push((walk_number, scan.incomplete, scan.errors));
        }
    }
    eprintln!(
        "{WALKS} walks of the churning process: ping socket found {found}, unsure {said}, \
         missing with nothing said {}",
        quiet.len()
    );
    assert!(
        quiet.is_empty(),
        "quiet misses (walk, incomplete, errors): {quiet:?}"
    );
    for _ in 0..20 {
        let scan = walk(steady.pid);
        assert!(has_ping(&scan, steady.pid), "the twin: {scan:?}");
        assert!(
            scan.incomplete.is_empty(),
            "the twin: {:?}",
            scan.incomplete
        );
    }
}

/// Red team: through the fd iterator, the churning process above was missing
/// from about 1 full scan in 100 with nothing said. Its leader is a zombie, so
/// only its threads list its fds, and the pass over every task goes in tid
/// order; with threads made every few microseconds pids come round past
/// `pid_max` (32768 here) every second, and a pass during which they did could
/// end with every live thread of the process made below its position: no
/// record of it at all. Such a pass is now made again, and when pids came round
/// during each one, every process gets a pass of its own. Each of many full
/// scans must list the churning process's ping socket or name it unsure; the
/// steady twin is complete every time.
#[test]
fn every_full_scan_beside_threads_that_make_pids_come_round_finds_them_or_says_so() {
    const TEST: &str =
        "every_full_scan_beside_threads_that_make_pids_come_round_finds_them_or_says_so";
    const SCANS: usize = 250;
    if !common::is_root() {
        return common::skip(TEST, "needs root");
    }
    let _full_scan = full_scan_lock();
    let attacker = common::attacker("churnround");
    let Some(binary) = common::compiled(&attacker, "churn", CHURNING_HOLDER) else {
        return common::skip(TEST, "no C compiler");
    };
    let start = |speed: &str| {
        let mut command = attacker.command(&binary);
        command.args(["2000", "6", speed]);
        common::spawn_ready(command)
    };
    let (Ok(churning), Ok(steady)) = (start("fast"), start("slow")) else {
        return common::skip(TEST, "no ping socket for this user (ping_group_range)");
    };
    let host = an1256::platform::linux::LinuxHost::new(an1256::platform::HostConfig {
        fd_iterator: true,
        ..an1256::platform::HostConfig::default()
    });
    let query = an1256::model::SocketQuery {
        pids: None,
        protocols: an1256::model::ProtocolSet::ALL,
    };
    let has_ping = |scan: &an1256::model::SocketScan, pid: i32| {
        scan.sockets
            .iter()
            .any(|s| s.pid == pid && s.protocol == 1 && s.remote_address == "192.0.2.11")
    };
    let names = |scan: &an1256::model::SocketScan, pid: i32| {
        scan.incomplete
            .iter()
            .any(|note| note.contains(&format!("process {pid}")))
    };
    let (mut found, mut said, mut quiet) = (0, 0, Vec::new());
    for scan_number in 0..SCANS {
        let scan = an1256::platform::Host::sockets(&host, &query);
        assert!(has_ping(&scan, steady.pid), "scan {scan_number}: the twin");
        assert!(
            !names(&scan, steady.pid),
            "scan {scan_number}: the twin: {:?}",
            scan.incomplete
        );
        if has_ping(&scan, churning.pid) {
            found += 1;
        } else if names(&scan, churning.pid) {
            said += 1;
        } else {
            quiet.push((scan_number, scan.incomplete));
        }
    }
    eprintln!(
        "{SCANS} full scans: the churning process's ping socket found {found}, unsure {said}, \
         missing with nothing said {}",
        quiet.len()
    );
    assert!(
        quiet.is_empty(),
        "quiet misses (scan, incomplete): {quiet:?}"
    );
}

/// One process: a UDP socket, `argv[2]` dups of /dev/null, `argv[1]` idle
/// threads; then its leader exits, so the kernel's fd iterator lists the one
/// fd table once per thread. Prints `threads=<n>` and `ready`.
const THREADED_FD_HOARDER: &str = r#"
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
static void *idle(void *unused) { for (;;) pause(); return unused; }
int main(int argc, char **argv) {
    int threads = atoi(argv[1]), fds = atoi(argv[2]), started = 0;
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    socket(AF_INET, SOCK_DGRAM, 0);
    int null = open("/dev/null", O_RDONLY);
    for (int i = 0; i < fds && dup(null) >= 0; i++) {}
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 65536);
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, idle, NULL) == 0) started++;
    }
    printf("threads=%d\nready\n", started);
    fflush(stdout);
    pthread_exit(NULL);
}
"#;

/// Red team (F2): 4,000 threads of an exited leader, each listing a table of
/// 18,000 fds, made the fd iterator's kernel pass take ~19 s (72M objects):
/// a full scan under an 8 s limit returned no rows at all, every user's gone.
/// The pass now gets at most 2 s (a quarter of the scan's time), read in small
/// chunks so the deadline is seen; past it the scan walks `/proc` under the
/// per-uid budgets. Another user's socket is a row (the twin).
#[test]
fn threads_listing_one_huge_fd_table_cannot_hold_up_the_full_scan() {
    const TEST: &str = "threads_listing_one_huge_fd_table_cannot_hold_up_the_full_scan";
    if !common::is_root() {
        return common::skip(TEST, "needs root");
    }
    if an1256::platform::linux::fd_iterator::shared().is_err() {
        return common::skip(TEST, "no BPF fd iterator here");
    }
    let _full_scan = full_scan_lock();
    let attacker = common::attacker("fd-threads");
    let Some(binary) = common::compiled(&attacker, "hoard", THREADED_FD_HOARDER) else {
        return common::skip(TEST, "no C compiler");
    };
    let mut command = attacker.command(&binary);
    command.args(["4000", "18000"]);
    let hoarder = common::spawn_ready(command).expect("hoarder starts");
    assert!(hoarder.int("threads") >= 2000, "{:?}", hoarder.lines);
    let other = common::attacker("fd-threads-twin");
    let script = other.write("holder.py", udp_holder(1).as_bytes(), false);
    let mut command = other.command("/usr/bin/python3");
    command.arg("-s").arg(&script);
    let holder = common::spawn_ready(command).expect("holder starts");
    // Sockets the walk misses: an exited leader's fd table that a relay of
    // short-lived threads carries. Each process's own pass still sees them.
    let relay = common::spawn_ready(other.python(RELAYED_SOCKET)).expect("relay starts");

    let run = measure_an1256(&[
        "query",
        "--json",
        "--time-limit",
        "8",
        "SELECT pid, fd, state FROM nonstandard_protocol_sockets",
    ]);
    eprintln!(
        "full scan beside {} threads listing 18,000 fds each: {:.2} s wall, {:.2} s CPU, exit {:?}",
        hoarder.int("threads"),
        run.wall_seconds,
        run.cpu_seconds,
        run.code
    );
    assert_connected_row_of(&run, holder.pid);
    assert_connected_row_of(&run, relay.pid);
    // The whole pass stops at 2 s; then each process gets a pass of its own,
    // and the hoarder's (cut at its share) is walked: ~36,000 fds, well within
    // the limit. Nothing is cut; the only doubt the result may state is the
    // relay's (its threads come and go during its own pass, which therefore
    // cannot be told whole: it is walked and said).
    let doubts: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("incomplete result"))
        .collect();
    let relay_only = format!("process {}: its threads came or went", relay.pid);
    assert!(
        run.code == Some(0)
            || (run.code == Some(2)
                && doubts.iter().all(|l| {
                    l.split("; ").all(|part| {
                        part.contains(&relay_only)
                            || !part.contains("process ")
                                && !part.contains("uid ")
                                && !part.contains("deadline")
                    })
                })),
        "complete but for the relay: {}",
        run.stderr
    );
    assert!(run.wall_seconds < 12.0, "{:.2} s", run.wall_seconds);
}

/// Six connected UDP sockets; the leader exits and the fd table is carried by
/// a relay of threads living 0.5 ms each (each starts the next, then exits).
const RELAYED_SOCKET: &str = r#"
import ctypes, socket, threading, time
libc = ctypes.CDLL(None, use_errno=True)
held = []
for i in range(6):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.connect(("192.0.2.10", 53 + i)); u.send(b"x"); held.append(u)
def body():
    time.sleep(0.0005)
    threading.Thread(target=body).start()
threading.Thread(target=body).start()
print("ready", flush=True)
libc.syscall(60, 0)
"#;

/// Many TCP clients whose proxy variables are huge: the scan reads each
/// environment whole (up to 1 MiB) but keeps only the SOCKS check's variables,
/// within a budget per scan worker, so they cost a scan a bounded amount of
/// memory. Clients past the budget are judged unread (`socks_env_truncated`),
/// never clean. The twin, the same clients with short proxy variables, is quiet;
/// so is another user's client with an ordinary proxy variable started after
/// the red team's fill of the budget (each user spends a share of its own).
#[test]
fn huge_proxy_variables_in_many_clients_cost_a_scan_bounded_memory() {
    const TEST: &str = "huge_proxy_variables_in_many_clients_cost_a_scan_bounded_memory";
    if !common::is_root() {
        return common::skip(TEST, "needs root");
    }
    const CLIENTS: usize = 150;
    // A listener, and CLIENTS forked children each connected to it: every one
    // has the same environment area as the parent (copy on write, no memory).
    let clients = "import os, socket, sys, time\n\
        n = int(sys.argv[1])\n\
        listener = socket.socket()\n\
        listener.bind(('127.0.0.1', 0))\n\
        listener.listen(n + 8)\n\
        port = listener.getsockname()[1]\n\
        for _ in range(n):\n\
        \x20   if os.fork() == 0:\n\
        \x20       s = socket.create_connection(('127.0.0.1', port))\n\
        \x20       time.sleep(300)\n\
        \x20       os._exit(0)\n\
        held = [listener.accept()[0] for _ in range(n)]\n\
        print('ready', flush=True)\n\
        time.sleep(300)\n";
    let attacker = common::attacker("huge-proxy-vars");
    let start = |value_bytes: usize| {
        // Eight variables the check reads, none naming a SOCKS proxy, each
        // under the kernel's 128 KiB limit on one string: 1,000,000 bytes,
        // under the 1 MiB read limit, so each environment is read whole.
        let mut command = attacker.command("env");
        command.args(["-i", "PATH=/usr/bin:/bin"]);
        for name in an1256::model::PROXY_VARIABLES {
            let padding = "a".repeat(value_bytes.saturating_sub(20));
            command.arg(format!("{name}=http://web:3128/{padding}"));
        }
        command.args(["python3", "-c", clients, &CLIENTS.to_string()]);
        common::spawn_ready(command).expect("clients")
    };
    let _full_scan = full_scan_lock();
    let scan = |holder: &common::ReadyChild| {
        let run = measure_an1256(&[
            "query",
            "--json",
            "SELECT pid, protocol_name, reason FROM nonstandard_protocol_sockets",
        ]);
        let flagged = |run: &Measured| {
            let mine = format!("{}", holder.pid);
            json_lines(&run.stdout)
                .iter()
                .filter(|r| {
                    let pid = r["pid"].as_i64().unwrap_or(-1).to_string();
                    // The holder's children hold the connections: its group.
                    std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .map(|s| {
                            s.rsplit(')').next().unwrap_or("").split_whitespace().nth(2)
                                == Some(mine.as_str())
                        })
                        .unwrap_or(false)
                        || pid == mine
                })
                .map(|r| r["reason"].as_str().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        };
        let reasons = flagged(&run);
        (run, reasons)
    };
    let twin = start(40);
    let (quiet, quiet_reasons) = scan(&twin);
    drop(twin);
    let huge = start(125_000);
    // Another user's client with an ordinary proxy variable, started after
    // them: the budget they spend is their own (red team: it was shared, and
    // such a client came out `socks_env_truncated`).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("address").port();
    // The red team's fill: holders whose kept variables halve in size, so a
    // budget taken first come is spent to within a few bytes.
    let fill = "import subprocess, sys, time\n\
        port = int(sys.argv[1])\n\
        names = ['ALL_PROXY', 'all_proxy', 'socks_proxy', 'SOCKS_PROXY', 'https_proxy',\n\
        \x20        'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY', 'PROXYCHAINS_CONF_FILE']\n\
        def env_of(size):\n\
        \x20   env, left = {'PATH': '/usr/bin:/bin'}, size\n\
        \x20   for n in names:\n\
        \x20       if left <= 0: break\n\
        \x20       take = min(left, 120000)\n\
        \x20       if left - take and left - take < len(n) + 2: take -= 64\n\
        \x20       env[n] = 'x' * (take - len(n) - 1)\n\
        \x20       left -= take\n\
        \x20   return env\n\
        sizes = [1 << 19] * 27 + [s for e in range(18, 3, -1) for s in [1 << e] * 4]\n\
        held = [subprocess.Popen(['/usr/bin/python3', '-c',\n\
        \x20   'import socket, sys, time; s = socket.create_connection((\"127.0.0.1\", int(sys.argv[1]))); time.sleep(300)',\n\
        \x20   str(port)], env=env_of(size)) for size in sizes]\n\
        time.sleep(3)\n\
        print('ready', flush=True)\n\
        time.sleep(300)\n";
    let mut command = attacker.command("python3");
    command.args(["-c", fill, &port.to_string()]);
    let _fill = common::spawn_ready(command).expect("the fill");
    let other = common::attacker("huge-proxy-other");
    let mut command = other.command("env");
    command.args([
        "-i",
        "PATH=/usr/bin:/bin",
        "http_proxy=http://proxy.corp:3128",
        "python3",
        "-c",
        "import socket, sys, time\n\
         s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
         print('ready', flush=True)\n\
         time.sleep(300)\n",
        &port.to_string(),
    ]);
    let victim = common::spawn_ready(command).expect("the other user's client");
    let (loud, loud_reasons) = scan(&huge);
    let victim_rows: Vec<_> = json_lines(&loud.stdout)
        .into_iter()
        .filter(|r| r["pid"].as_i64() == Some(i64::from(victim.pid)))
        .collect();
    assert!(
        victim_rows.is_empty(),
        "another user's client is judged by its own variables: {victim_rows:?}"
    );
    eprintln!(
        "twin: peak RSS {} KiB, {} rows of its clients; huge variables: {} KiB, {} rows",
        quiet.rss_kib,
        quiet_reasons.len(),
        loud.rss_kib,
        loud_reasons.len()
    );
    assert!(quiet_reasons.is_empty(), "the twin: {quiet_reasons:?}");
    // Kept: one user's 4 MiB share of each of three budgets (the calling
    // thread's first 5 ms and two workers); read: one 1 MiB environment at a
    // time on each; allocator slack. Everything kept would be ~150 MB more.
    let grew_kib = loud.rss_kib.saturating_sub(quiet.rss_kib);
    assert!(
        grew_kib < 24 * 1024,
        "{CLIENTS} clients with 1 MB of proxy variables grew the scan by {grew_kib} KiB"
    );
    assert!(
        !loud_reasons.is_empty()
            && loud_reasons
                .iter()
                .all(|r| r.split(',').any(|r| r == "socks_env_truncated")),
        "clients past the budget are unread, never clean: {loud_reasons:?}"
    );
}

/// The red team's pid-lapping program (round 3): `lap stall TARGET THREADS FDS`
/// moves the pid cursor to TARGET with clones that fail after their pid was
/// given (a full fd table and CLONE_PIDFD: `processes` in /proc/stat does not
/// count them), then forks a process whose leader exits, with THREADS idle
/// threads and FDS dups of a UDP socket (a pass spends its time there);
/// `lap hide BELOW ABOVE HOLD_MS` forks a UDP holder whose leader exits and
/// whose one live thread keeps moving from above the staller to below it,
/// lapping the cursor and pushing it past where it was, so the last pid never
/// goes down over a pass and few tasks are made.
const PID_LAPPER: &str = r#"
// Item 3 PoC. Two roles (run as an unprivileged user):
//  lap stall TARGET NTHREADS NFDS : moves the pid cursor to TARGET with failed
//     clones, then forks a "staller": leader exits, NTHREADS idle threads,
//     NFDS dup'd TCP? no: UDP fds -> the whole pass spends its time at ~TARGET.
//  lap hide BELOW ABOVE HOLD_MS : a UDP holder whose leader exits; its one live
//     thread sits at a tid > ABOVE; in a loop it laps the pid cursor with
//     failed clones (CLONE_PIDFD with a full fd table: alloc_pid runs, the
//     clone fails with EMFILE, total_forks (/proc/stat processes) is not
//     counted), makes a thread at tid ~BELOW (< the staller), exits the old
//     one, pushes the cursor past ABOVE again with failed clones (so
//     loadavg's last pid does not go down over the pass), holds HOLD_MS,
//     then makes a thread above again.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <linux/sched.h>
static char cstack[65536];
static int lfd=-1;
static long cursor(void){ char b[256]; if(lfd<0) lfd=open("/proc/loadavg",O_RDONLY); int n=pread(lfd,b,255,0); if(n<=0){perror("loadavg");exit(1);} b[n]=0;
  char *p=strrchr(b,' '); return atol(p+1); }
static void failclone(long n){ for(long i=0;i<n;i++){ struct clone_args a; memset(&a,0,sizeof a); int pfd=-1;
  a.flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_PIDFD; a.pidfd=(unsigned long)&pfd;
  a.stack=(unsigned long)cstack; a.stack_size=sizeof cstack; long r=syscall(SYS_clone3,&a,sizeof a); if(r==0) for(;;) pause(); } }
static long pid_max=32768;
// move cursor forward until last pid in [t-8, t) (wrapping if needed)
static void cursor_to(long t){ for(;;){ long c=cursor(); long d= (t-1>=c)? (t-1-c) : (pid_max-1-c)+(t-1-300); if(d<=8) return; failclone(d>2000? d-1000 : (d>16? d/2 : 1));} }
static void fill_fds(void){ struct rlimit r; getrlimit(RLIMIT_NOFILE,&r); r.rlim_cur=r.rlim_max<4096?r.rlim_max:4096; setrlimit(RLIMIT_NOFILE,&r);
  while(open("/dev/null",O_RDONLY)>=0); }
static void *idle(void*x){ for(;;) pause(); }
static long BELOW, ABOVE, HOLD; static volatile long laps, c_start;
static void *hider(void *x){
  long phase=(long)x; // 0: I am above; 1: I am below
  pthread_detach(pthread_self());
  pthread_t t;
  if(phase==0){ // above: wait a bit, then lap to BELOW and dip
    struct timespec ts={0,(rand()%100)*1000000L}; nanosleep(&ts,0);
    c_start=cursor(); cursor_to(BELOW); pthread_create(&t,0,hider,(void*)1); pthread_exit(0);
  } else {      // below: push cursor above ABOVE (no task made), hold, climb
    laps++;
    cursor_to((c_start+100)%pid_max);
    struct timespec ts={HOLD/1000,(HOLD%1000)*1000000L}; nanosleep(&ts,0);
    pthread_create(&t,0,hider,(void*)0); pthread_exit(0);
  }
  return 0;
}
// hideown: the first hider thread unshares its fd table (the live leader's
// holds no socket), makes the socket there and fills the table for the failed
// clones; the threads it makes share that table.
static void *first(void *x){
  if(unshare(CLONE_FILES)){perror("unshare");exit(1);}
  for(int fd=3; fd<4096; fd++) close(fd);
  lfd=-1; cursor();
  int s=socket(AF_INET,SOCK_DGRAM,0); if(s<0){perror("socket");exit(1);}
  fill_fds();
  return hider((void*)0);
}
int main(int c,char**v){
  FILE *pm=fopen("/proc/sys/kernel/pid_max","r"); if(pm){ if(fscanf(pm,"%ld",&pid_max)!=1) pid_max=32768; fclose(pm);} 
  cursor();
  if(!strcmp(v[1],"stall")){ long target=atol(v[2]); int nt=atoi(v[3]), nf=atoi(v[4]);
    int s=socket(AF_INET,SOCK_DGRAM,0);
    struct rlimit r; getrlimit(RLIMIT_NOFILE,&r); long keep=r.rlim_max;
    r.rlim_cur=64; setrlimit(RLIMIT_NOFILE,&r); int fds[64]; int k=0; int f; while((f=open("/dev/null",O_RDONLY))>=0) fds[k++]=f;
    cursor_to(target); for(int i=0;i<k;i++) close(fds[i]); r.rlim_cur=keep; setrlimit(RLIMIT_NOFILE,&r);
    pid_t p=fork(); if(p){ printf("staller %d\n",p); return 0; }
    for(int i=1;i<nf;i++) if(dup(s)<0){perror("dup");break;}
    for(int i=0;i<nt;i++){pthread_t t; pthread_create(&t,0,idle,0);} pthread_exit(0); }
  BELOW=atol(v[2]); ABOVE=atol(v[3]); HOLD=atol(v[4]);
  if(!strcmp(v[1],"hideown")){ // the leader lives; the socket is in a thread's own table
    fill_fds();
    cursor_to(ABOVE+40);
    pid_t p=fork(); if(p){ printf("hider %d\n",p); return 0; }
    pthread_t t; pthread_create(&t,0,first,0); for(;;) pause();
  }
  int s=socket(AF_INET,SOCK_DGRAM,0); (void)s; // the socket to hide
  fill_fds();
  cursor_to(ABOVE+40);
  pid_t p=fork(); if(p){ printf("hider %d\n",p); return 0; }
  pthread_t t; pthread_create(&t,0,hider,(void*)0); pthread_exit(0);
}
"#;

/// Red team (high, round 3): a whole pass's check that pids came round reads
/// two counters an unprivileged user can move apart (failed clones move the
/// last pid without counting a task), so a holder whose leader exited and whose
/// one thread hops below a slow pass was missing from about 1 full scan in 3,
/// exit 0, nothing said. The processes whose leader had exited when the pass
/// ended now get passes of their own. Each full scan must list the hider's
/// socket or name it unsure; the staller (a process whose leader exited too,
/// with no hopping thread) is found every time.
#[test]
fn a_thread_that_hops_below_the_pass_is_found_or_said() {
    hider_below_the_pass_is_found_or_said(
        "a_thread_that_hops_below_the_pass_is_found_or_said",
        "hide",
        "piplap",
    );
}

/// Red team (this session): the same lapper, but the hider's leader lives and
/// its socket is in the fd table of a thread that unshared it (CLONE_FILES);
/// that thread hops below the pass. Neither the came-round check nor the
/// exited-leader listing caught it: 10 of 30 CLI full scans missed the socket,
/// exit 0. A process with a thread whose table is its own now gets a pass of
/// its own.
#[test]
fn a_thread_with_a_table_of_its_own_that_hops_below_the_pass_is_found_or_said() {
    hider_below_the_pass_is_found_or_said(
        "a_thread_with_a_table_of_its_own_that_hops_below_the_pass_is_found_or_said",
        "hideown",
        "piplapown",
    );
}

/// Starts the lapper's staller and a hider of `role`, then makes full scans:
/// each must list the hider's socket or name it unsure; the staller is found
/// every time.
fn hider_below_the_pass_is_found_or_said(test: &str, role: &str, tag: &str) {
    const SCANS: usize = 15;
    if !common::is_root() {
        return common::skip(test, "needs root");
    }
    let _full_scan = full_scan_lock();
    let attacker = common::attacker(tag);
    let _kill = common::KillUser(attacker.name.clone());
    // libgcc_s linked in: a thread's exit loads it, and the hider's fd table
    // is full by then.
    let Some(binary) = common::compiled_with(
        &attacker,
        "lap",
        PID_LAPPER,
        &["-Wl,--no-as-needed", "-lgcc_s"],
    ) else {
        return common::skip(test, "no C compiler");
    };
    let pid_max: i64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if pid_max > 100_000 {
        // A lap of millions of pids takes the lapper far too long here.
        return common::skip(test, format!("pid_max {pid_max}"));
    }
    // Each role forks and its parent exits: its output goes to a file (the
    // forked process holds it open, so a pipe would never end).
    let output = tempfile::tempfile().expect("temporary file");
    let started = |args: &[String], what: &str| -> Option<i32> {
        use std::io::{Read, Seek};
        let mut out = output.try_clone().ok()?;
        out.set_len(0).ok()?;
        out.rewind().ok()?;
        let status = attacker
            .command(&binary)
            .args(args)
            .stdout(out.try_clone().ok()?)
            .status()
            .ok()?;
        let mut text = String::new();
        out.rewind().ok()?;
        out.read_to_string(&mut text).ok()?;
        if !status.success() {
            return None;
        }
        text.strip_prefix(what)?.trim().parse().ok()
    };
    let mid = pid_max / 2;
    let Some(staller) = started(
        &["stall".into(), mid.to_string(), "20".into(), "19900".into()],
        "staller ",
    ) else {
        return common::skip(test, "the staller did not start (fd limit?)");
    };
    let Some(hider) = started(
        &[
            role.into(),
            (mid - 100).to_string(),
            (mid + 100).to_string(),
            "400".into(),
        ],
        "hider ",
    ) else {
        return common::skip(test, "the hider did not start");
    };
    std::thread::sleep(std::time::Duration::from_secs(2));
    let host = an1256::platform::linux::LinuxHost::new(an1256::platform::HostConfig {
        fd_iterator: true,
        ..an1256::platform::HostConfig::default()
    });
    let query = an1256::model::SocketQuery {
        pids: None,
        protocols: an1256::model::ProtocolSet::ALL,
    };
    let (mut found, mut said, mut quiet) = (0, 0, Vec::new());
    for scan_number in 0..SCANS {
        let scan = an1256::platform::Host::sockets(&host, &query);
        let holds = |pid: i32| {
            scan.sockets
                .iter()
                .any(|s| s.pid == pid && s.protocol == 17)
        };
        let named = |pid: i32| {
            scan.incomplete
                .iter()
                .any(|note| note.contains(&format!("process {pid}")))
        };
        assert!(
            holds(staller) || named(staller),
            "scan {scan_number}: the staller"
        );
        if holds(hider) {
            found += 1;
        } else if named(hider) {
            said += 1;
        } else {
            quiet.push((scan_number, scan.incomplete.clone()));
        }
    }
    eprintln!(
        "{SCANS} full scans: the hider's socket found {found}, unsure {said}, missing with \
         nothing said {}",
        quiet.len()
    );
    assert!(
        quiet.is_empty(),
        "quiet misses (scan, incomplete): {quiet:?}"
    );
}

/// The red team's hopping holder (F2) and lapper: `hop PORT HOP_US STATIC`
/// binds UDP 127.0.0.1:PORT, prints `holder <pid>`, then every HOP_US µs forks
/// and the parent exits, so the socket moves to a new process each hop (with
/// STATIC 1 it never hops: the twin); `lap SECONDS` keeps the pid cursor
/// lapping with clones that fail after their pid was given (a full fd table
/// and CLONE_PIDFD), so a pass over every task keeps coming round.
const FORK_HOPPER: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static char stack[65536];
int main(int argc, char **argv) {
  if (argc > 2 && !strcmp(argv[1], "lap")) {
    time_t end = time(0) + atol(argv[2]);
    struct rlimit r = {32, 32};
    setrlimit(RLIMIT_NOFILE, &r);
    while (open("/dev/null", O_RDONLY) >= 0) {}
    while (time(0) < end) {
      struct clone_args a; memset(&a, 0, sizeof a); int pidfd = -1;
      a.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                CLONE_SYSVSEM | CLONE_PIDFD;
      a.pidfd = (unsigned long)&pidfd;
      a.stack = (unsigned long)stack; a.stack_size = sizeof stack;
      if (syscall(SYS_clone3, &a, sizeof a) == 0) for (;;) pause();
    }
    return 0;
  }
  if (argc < 5) return 2;
  int port = atoi(argv[2]); long us = atol(argv[3]); int still = atoi(argv[4]);
  time_t end = time(0) + 120;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(0x7f000001)};
  if (s < 0 || bind(s, (void *)&a, sizeof a)) return 1;
  printf("holder %d\n", getpid());
  fflush(stdout);
  if (fork()) return 0; /* the caller's child returns at once */
  for (;;) {
    usleep(us);
    if (time(0) > end) _exit(0);
    if (still) continue;
    pid_t p = fork();
    if (p < 0) { usleep(100000); continue; }
    if (p) _exit(0);
  }
}
"#;

/// Red team (F2, high): a UDP socket whose holder forks every 2 ms and exits
/// (its child gets a new pid), beside a lapper that keeps pid allocation
/// coming round, was missed by the pass (its child's pid was behind the
/// cursor), by the per-process fallback (a pid made after the list was taken)
/// and by the walk, with exit 0. The scan now lists its namespace's datagram
/// sockets before and after, and a user's socket open through the scan that no
/// holder found is named. Each full scan must list the hopper's socket or name
/// it; the twin (the same socket held still) is found every time, never named.
#[test]
fn a_socket_whose_holder_keeps_forking_is_found_or_said() {
    const SCANS: usize = 12;
    if !common::is_root() {
        return common::skip(
            "a_socket_whose_holder_keeps_forking_is_found_or_said",
            "needs root",
        );
    }
    let _full_scan = full_scan_lock();
    let attacker = common::attacker("forkhop");
    let _kill = common::KillUser(attacker.name.clone());
    let Some(binary) = common::compiled(&attacker, "hop", FORK_HOPPER) else {
        return common::skip(
            "a_socket_whose_holder_keeps_forking_is_found_or_said",
            "no C compiler",
        );
    };
    let port_of = || {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    };
    let (hopping, still) = (port_of(), port_of());
    for (port, is_still) in [(hopping, "0"), (still, "1")] {
        let status = attacker
            .command(&binary)
            .args(["hop", &port.to_string(), "2000", is_still])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("the holder");
        assert!(status.success(), "the holder of {port} did not start");
    }
    // The lapper's staller (a process whose leader exited, its threads listing
    // 19,900 fds) makes a pass long enough for pids to come round in it.
    let Some(lap) = common::compiled_with(
        &attacker,
        "lap",
        PID_LAPPER,
        &["-Wl,--no-as-needed", "-lgcc_s"],
    ) else {
        return common::skip(
            "a_socket_whose_holder_keeps_forking_is_found_or_said",
            "no C compiler",
        );
    };
    let staller = attacker
        .command(&lap)
        .args(["stall", "1000", "20", "19900"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("the staller");
    assert!(staller.success(), "the staller did not start");
    let mut lapper = attacker
        .command(&binary)
        .args(["lap", "300"])
        .spawn()
        .expect("the lapper");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let host = an1256::platform::linux::LinuxHost::new(an1256::platform::HostConfig {
        fd_iterator: true,
        ..an1256::platform::HostConfig::default()
    });
    let query = an1256::model::SocketQuery {
        pids: None,
        protocols: an1256::model::ProtocolSet::ALL,
    };
    let named = |notes: &[String], port: u16| {
        notes.iter().any(|note| {
            note.contains(&format!("127.0.0.1:{port} (socket "))
                && note.contains(&format!("of uid {}", attacker.uid))
        })
    };
    let (mut found, mut said, mut quiet) = (0, 0, Vec::new());
    for scan_number in 0..SCANS {
        let scan = an1256::platform::Host::sockets(&host, &query);
        let holds = |port: u16| {
            scan.sockets
                .iter()
                .any(|s| s.local_port == i32::from(port) && s.protocol == 17)
        };
        assert!(
            holds(still) && !named(&scan.incomplete, still),
            "scan {scan_number}: the twin held still is found and never named: {:?}",
            scan.incomplete
        );
        if holds(hopping) {
            found += 1;
        } else if named(&scan.incomplete, hopping) {
            said += 1;
        } else {
            quiet.push((scan_number, scan.incomplete.clone()));
        }
    }
    let _ = lapper.kill();
    let _ = lapper.wait();
    drop(_kill);
    // Killed processes take a moment to exit (the staller closes 19,900 fds);
    // a hopper that escaped the kill would still be forking after 10 s.
    let mut left = String::new();
    for _ in 0..100 {
        left = Command::new("pgrep")
            .args(["-u", &attacker.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if left.trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(left.trim().is_empty(), "the hopper left processes: {left}");
    eprintln!(
        "{SCANS} full scans: the hopping socket found {found}, named {said}, missing with \
         nothing said {}",
        quiet.len()
    );
    assert!(
        quiet.is_empty(),
        "quiet misses (scan, incomplete): {quiet:?}"
    );
}

/// A UDP socket held by no process: sent over a UNIX socket pair to itself
/// (SCM_RIGHTS) and closed, it lives in the pair's queue and still sends once
/// received. No fd table holds it, so the pass never found it; the full scan
/// now names it (and `an1256 query` exits 2 with its uid on stderr). The twin,
/// the same socket kept as an fd, is found and never named.
#[test]
fn a_socket_held_by_no_process_is_named_and_its_held_twin_is_found() {
    if !common::is_root() {
        return common::skip(
            "a_socket_held_by_no_process_is_named_and_its_held_twin_is_found",
            "needs root",
        );
    }
    let _full_scan = full_scan_lock();
    let attacker = common::attacker("inflight");
    let holder = "import socket, sys, time\n\
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        u.bind(('127.0.0.1', 0))\n\
        port = u.getsockname()[1]\n\
        if sys.argv[1] == 'inflight':\n\
        \x20   a, b = socket.socketpair()\n\
        \x20   socket.send_fds(a, [b'x'], [u.fileno()])\n\
        \x20   u.close()\n\
        print(f'port={port}', flush=True)\n\
        print('ready', flush=True)\n\
        time.sleep(300)\n";
    let started = |how: &str| {
        let mut command = attacker.command("python3");
        command.args(["-c", holder, how]);
        common::spawn_ready(command).expect("the holder")
    };
    let inflight = started("inflight");
    let held = started("held");
    let port = |child: &common::ReadyChild| -> u16 {
        child
            .value("port")
            .and_then(|p| p.parse().ok())
            .expect("a port")
    };
    let (inflight_port, held_port) = (port(&inflight), port(&held));
    let host = an1256::platform::linux::LinuxHost::new(an1256::platform::HostConfig {
        fd_iterator: true,
        ..an1256::platform::HostConfig::default()
    });
    let scan = an1256::platform::Host::sockets(
        &host,
        &an1256::model::SocketQuery {
            pids: None,
            protocols: an1256::model::ProtocolSet::ALL,
        },
    );
    let name = |port: u16| format!("UDP socket 127.0.0.1:{port} (socket ");
    let uid = format!("of uid {}", attacker.uid);
    assert!(
        scan.incomplete
            .iter()
            .any(|n| n.contains(&name(inflight_port)) && n.contains(&uid)),
        "the socket in flight is named: {:?}",
        scan.incomplete
    );
    assert!(
        scan.sockets
            .iter()
            .any(|s| s.pid == held.pid && s.local_port == i32::from(held_port)),
        "the twin is found"
    );
    assert!(
        !scan.incomplete.iter().any(|n| n.contains(&name(held_port))),
        "the twin is never named: {:?}",
        scan.incomplete
    );
    // The CLI says so and exits 2 (an incomplete result).
    let (code, _, stderr, _) = measured_an1256(&[
        "query",
        "--json",
        "SELECT pid FROM nonstandard_protocol_sockets WHERE protocol_name = 'udp'",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&name(inflight_port)) && stderr.contains(&uid),
        "{stderr}"
    );
    // A `pid =` query lists no census: the twin's own scan is complete.
    let (code, _, stderr, _) = measured_an1256(&[
        "query",
        "--json",
        &format!(
            "SELECT pid FROM nonstandard_protocol_sockets WHERE pid = {}",
            held.pid
        ),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
}

/// `count` processes (argv[1]), each holding one connected UDP socket and a
/// second thread; with argv[2] `exited` each one's leader then exits (the
/// thread lives on), else it stays. Prints `pids=<p>,<p>,…`, then `ready`.
const THREADED_UDP_HOLDERS: &str = r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static void *idle(void *x) { for (;;) pause(); return x; }
int main(int argc, char **argv) {
  if (argc < 3) return 2;
  long n = atol(argv[1]);
  int leader_exits = !strcmp(argv[2], "exited");
  printf("pids=");
  for (long i = 0; i < n; i++) {
    int ready[2];
    if (pipe(ready)) return 1;
    pid_t p = fork();
    if (p < 0) return 1;
    if (p == 0) {
      close(ready[0]);
      int s = socket(AF_INET, SOCK_DGRAM, 0);
      struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(5000 + i % 1000) };
      inet_pton(AF_INET, "192.0.2.7", &to.sin_addr);
      if (s < 0 || connect(s, (struct sockaddr *)&to, sizeof to)) _exit(1);
      pthread_attr_t a; pthread_attr_init(&a); pthread_attr_setstacksize(&a, 65536);
      pthread_t t;
      if (pthread_create(&t, &a, idle, 0)) _exit(1);
      if (write(ready[1], "x", 1) != 1) _exit(1);
      if (leader_exits) pthread_exit(0);
      for (;;) pause();
    }
    close(ready[1]);
    char c;
    if (read(ready[0], &c, 1) != 1) return 1;
    close(ready[0]);
    printf("%s%d", i ? "," : "", p);
  }
  printf("\nready\n");
  fflush(stdout);
  for (;;) pause();
}
"#;

/// A full scan on `host` with `limit` as its deadline: the scan, how long it
/// took, and how many passes of their own processes got.
fn timed_full_scan(
    host: &an1256::platform::linux::LinuxHost,
    limit: std::time::Duration,
) -> (an1256::model::SocketScan, std::time::Duration, u64) {
    let query = an1256::model::SocketQuery {
        pids: None,
        protocols: an1256::model::ProtocolSet::ALL,
    };
    let _deadline = an1256::deadline::Deadline::after(limit).enter();
    let pid_passes = an1256::platform::linux::fd_iterator::pid_passes_on_this_thread();
    let started = std::time::Instant::now();
    let scan = an1256::platform::Host::sockets(host, &query);
    let took = started.elapsed();
    let passes = an1256::platform::linux::fd_iterator::pid_passes_on_this_thread() - pid_passes;
    (scan, took, passes)
}

/// Issue 14: after each whole pass, every process whose leader exited while a
/// thread lives on gets a pass of its own. A user who makes thousands of them
/// makes every full scan pay a pass per process (~50 us each here): the
/// listing of them and their passes stop at the scan's deadline, and the
/// answer then says it was cut, never a quiet partial one. Given time, each
/// holder is found. The twin, as many ordinary two-thread holders (leaders
/// alive), costs no pass of its own and leaves the scan whole and quiet.
#[test]
fn thousands_of_processes_whose_leader_exited_cannot_hold_a_scan_past_its_deadline() {
    const TEST: &str =
        "thousands_of_processes_whose_leader_exited_cannot_hold_a_scan_past_its_deadline";
    const HOLDERS: usize = 3000;
    if !common::is_root() {
        return common::skip(TEST, "needs root");
    }
    if an1256::platform::linux::fd_iterator::shared().is_err() {
        return common::skip(TEST, "no BPF fd iterator here");
    }
    let _full_scan = full_scan_lock();
    let host = an1256::platform::linux::LinuxHost::new(an1256::platform::HostConfig {
        fd_iterator: true,
        ..an1256::platform::HostConfig::default()
    });
    let generous = std::time::Duration::from_secs(60);
    let start_holders = |tag: &str, mode: &str| {
        let user = common::attacker(tag);
        let kill = common::KillUser(user.name.clone());
        let binary = common::compiled(&user, "holders", THREADED_UDP_HOLDERS)?;
        let mut command = user.command(&binary);
        command.args([HOLDERS.to_string(), mode.to_string()]);
        let holders = common::spawn_ready(command).expect("holders start");
        let pids: Vec<i32> = holders
            .value("pids")
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.parse().ok())
            .collect();
        assert_eq!(pids.len(), HOLDERS, "{:.300?}", holders.lines);
        Some((holders, kill, pids))
    };
    let missing = |scan: &an1256::model::SocketScan, pids: &[i32]| {
        let held: std::collections::HashSet<i32> = scan
            .sockets
            .iter()
            .filter(|s| s.protocol == 17 && s.remote_port >= 5000)
            .map(|s| s.pid)
            .collect();
        pids.iter().filter(|p| !held.contains(p)).count()
    };

    let Some((holders, kill, pids)) = start_holders("leaders-gone", "exited") else {
        return common::skip(TEST, "no C compiler");
    };
    // Given time: each holder got a pass of its own and is found.
    let (whole, took, passes) = timed_full_scan(&host, generous);
    assert_eq!(missing(&whole, &pids), 0, "{:?}", whole.incomplete);
    assert!(passes >= HOLDERS as u64, "{passes} passes of their own");
    // A deadline well inside that: the scan ends near it and says what was cut.
    let limit = (took / 4).max(std::time::Duration::from_millis(20));
    let (cut, cut_took, _) = timed_full_scan(&host, limit);
    eprintln!(
        "{HOLDERS} processes whose leader exited: full scan {:.0} ms ({passes} passes of \
         their own); under a {:.0} ms deadline {:.0} ms, {} holders missing, said: {:?}",
        took.as_secs_f64() * 1e3,
        limit.as_secs_f64() * 1e3,
        cut_took.as_secs_f64() * 1e3,
        missing(&cut, &pids),
        cut.incomplete
    );
    assert!(
        cut_took < limit + std::time::Duration::from_secs(3),
        "{cut_took:?} for a {limit:?} deadline"
    );
    assert!(
        !cut.incomplete.is_empty(),
        "{} holders missing, nothing said",
        missing(&cut, &pids)
    );
    drop(holders);
    drop(kill);

    let Some((twin, _kill_twin, twin_pids)) = start_holders("leaders-live", "alive") else {
        return common::skip(TEST, "no C compiler");
    };
    let (quiet, twin_took, twin_passes) = timed_full_scan(&host, generous);
    eprintln!(
        "{HOLDERS} two-thread holders, leaders alive: full scan {:.0} ms, {twin_passes} \
         passes of their own",
        twin_took.as_secs_f64() * 1e3
    );
    assert!(quiet.incomplete.is_empty(), "{:?}", quiet.incomplete);
    assert_eq!(missing(&quiet, &twin_pids), 0);
    assert!(
        twin_passes < HOLDERS as u64 / 10,
        "{twin_passes} passes of their own for live leaders"
    );
    drop(twin);
}
