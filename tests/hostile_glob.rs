//! A hostile user against the ssh_config glob (issue 11, finding 1): a process
//! named `ssh` holding a listener, with thousands of `*` in the `Host` patterns of
//! its `-F` file and of `~/.ssh/config`, must not stall `an1256 scan`, and the
//! scan must still report a separate implant. The benign twin: a normal
//! ssh_config still marks its `DynamicForward` listener `socks_server`.

mod common;

use common::{attacker, is_root, skip, spawn_ready, Attacker, ReadyChild};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the whole scan may take (issue 11: "finishes within 5 s"), in CPU time.
const SCAN_BOUND: Duration = Duration::from_secs(5);

/// A TCP listener on loopback that prints its port, then `ready`.
const LISTENER: &str = "import socket,time\n\
s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(8)\n\
print('port=%d' % s.getsockname()[1], flush=True)\n\
print('ready', flush=True)\n\
time.sleep(120)\n";

/// A UDP socket connected to TEST-NET-1 (RFC 5737: never routed).
const IMPLANT: &str = "import socket,time\n\
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.connect(('192.0.2.77',53))\n\
print('ready', flush=True)\n\
time.sleep(120)\n";

/// A copy of the real python3 in the attacker's home, under `name`: an unsigned
/// binary the attacker owns.
fn python_copy(user: &Attacker, name: &str) -> std::path::PathBuf {
    let python = std::fs::canonicalize("/usr/bin/python3").expect("python3");
    let bytes = std::fs::read(python).expect("read python3");
    user.write(name, &bytes, true)
}

/// `~/ssh -c LISTENER [ssh options…] destination`: python runs the listener and
/// ignores the rest; an1256 sees a process named `ssh` with that ssh argv.
fn fake_ssh(user: &Attacker, ssh: &std::path::Path, ssh_args: &[&str]) -> ReadyChild {
    let mut command = user.command(ssh);
    command.arg("-c").arg(LISTENER).args(ssh_args);
    spawn_ready(command).expect("fake ssh")
}

/// How `an1256` ran: wall time, CPU time (user + system, from the kernel's
/// rusage of the child: other builds sharing the machine slow the wall clock, not
/// this), exit code and stdout.
struct Run {
    wall: Duration,
    cpu: Duration,
    code: i32,
    stdout: String,
}

/// Runs `an1256` (private store and config) and measures it from outside; kills
/// it after `limit` of wall time.
// The child is reaped by wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn timed_an1256(dir: &std::path::Path, args: &[&str], limit: Duration) -> Run {
    let config = dir.join("config.json");
    std::fs::write(&config, "{}").expect("config");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_an1256"))
        .arg("--db")
        .arg(dir.join("an1256.db"))
        .arg("--config")
        .arg(&config)
        // Other suites on a shared test host may hold UDP from large unsigned
        // debug binaries: hashing those measures the hasher, not the glob.
        .args(["--max-hash-bytes", "33554432"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run an1256");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let pid = i32::try_from(child.id()).expect("pid");
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our unreaped child; status and usage are valid pointers.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(reaped >= 0, "wait4: {}", std::io::Error::last_os_error());
        if reaped == pid {
            break (status, usage);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("an1256 {args:?} still running after {limit:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed();
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Run {
        wall,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
        stdout: reader.join().unwrap_or_default(),
    }
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Host patterns that made the old recursive matcher backtrack exponentially:
/// runs of `*` (and `*?`) that can never match the destination.
fn pathological_hosts(stars: usize) -> String {
    let mut text = String::new();
    for end in ["x", "y", "z"] {
        text.push_str(&format!(
            "Host {}{end}\n  DynamicForward 1\n",
            "*".repeat(stars)
        ));
        text.push_str(&format!(
            "Host !{}{end} {}{end}\n  DynamicForward 2\n",
            "*?".repeat(stars / 2),
            "*".repeat(stars)
        ));
    }
    text
}

#[test]
fn a_pathological_ssh_config_neither_stalls_the_scan_nor_hides_an_implant() {
    if !is_root() {
        return skip("hostile ssh glob", "needs root (creates a user)");
    }
    let user = attacker("sshglob");
    let ssh = python_copy(&user, "bin/ssh");
    let destination = format!("bastion-{}", "a".repeat(60));

    // One `ssh` with `-F` (relative: to its cwd, the home), one reading
    // ~/.ssh/config.
    let with_file = fake_ssh(&user, &ssh, &["-F", "evil.conf", &destination]);
    let with_home = fake_ssh(&user, &ssh, &[&destination]);
    // After the pathological blocks, a block that applies: it proves the whole
    // file was read and matched, not abandoned.
    let config_for = |port: i64| {
        format!(
            "{}Host {destination}\n  DynamicForward 127.0.0.1:{port}\n",
            pathological_hosts(5000)
        )
    };
    let file_port = with_file.int("port");
    let home_port = with_home.int("port");
    user.write("evil.conf", config_for(file_port).as_bytes(), false);
    user.write(".ssh/config", config_for(home_port).as_bytes(), false);
    let implant_path = python_copy(&user, "implant");
    let mut command = user.command(&implant_path);
    command.arg("-c").arg(IMPLANT);
    let implant = spawn_ready(command).expect("implant");

    let dir = tempfile::tempdir().unwrap();
    let run = timed_an1256(
        dir.path(),
        &["scan", "--format", "json"],
        Duration::from_secs(60),
    );
    eprintln!(
        "scan with a pathological ssh_config: {:?} CPU, {:?} wall",
        run.cpu, run.wall
    );
    assert!(
        run.cpu < SCAN_BOUND,
        "scan took {:?} of CPU (bound {SCAN_BOUND:?})",
        run.cpu
    );
    let out = run.stdout;
    assert_eq!(run.code, 1, "hits exit 1: {out}");
    let hits = json_lines(&out);
    let implant_hit = hits
        .iter()
        .find(|h| h["pid"] == implant.pid)
        .unwrap_or_else(|| panic!("implant {} not reported: {out}", implant.pid));
    assert_eq!(implant_hit["protocol_name"], "udp");
    assert_eq!(implant_hit["remote_address"], "192.0.2.77");
    assert_eq!(implant_hit["subject_path"], implant_path.to_str().unwrap());
    for (child, port) in [(&with_file, file_port), (&with_home, home_port)] {
        let server = hits
            .iter()
            .find(|h| h["pid"] == child.pid && h["local_port"] == port)
            .unwrap_or_else(|| panic!("ssh {} listener {port} not reported: {out}", child.pid));
        assert_eq!(server["protocol_name"], "socks");
        assert_eq!(server["reason"], "socks_server");
    }
}

#[test]
fn a_normal_ssh_config_gives_the_same_socks_verdicts() {
    if !is_root() {
        return skip("benign ssh glob", "needs root (creates a user)");
    }
    let user = attacker("sshglobok");
    let ssh = python_copy(&user, "bin/ssh");
    let applies = fake_ssh(&user, &ssh, &["bastion-1.corp"]);
    let other = fake_ssh(&user, &ssh, &["db.example.org"]);
    let (port, other_port) = (applies.int("port"), other.int("port"));
    // The usual shapes: suffix and `?` globs, a negation, `Match all`.
    let config = format!(
        "Host *.example.org !bastion-?.corp\n  DynamicForward 1\n\
         Host bastion-?.CORP *.internal\n  DynamicForward {port}\n\
         Host db.*\n  DynamicForward 127.0.0.1:9\n\
         Match all\n  ServerAliveInterval 30\n"
    );
    user.write(".ssh/config", config.as_bytes(), false);
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "SELECT pid, local_port, protocol_name, reason FROM nonstandard_protocol_sockets \
         WHERE pid IN ({}, {})",
        applies.pid, other.pid
    );
    let run = timed_an1256(
        dir.path(),
        &["query", "--json", &sql],
        Duration::from_secs(60),
    );
    let out = run.stdout;
    assert_eq!(run.code, 0, "{out}");
    assert!(run.cpu < SCAN_BOUND, "query took {:?} of CPU", run.cpu);
    let rows = json_lines(&out);
    let row = |pid: i32, port: i64| {
        rows.iter()
            .find(|r| r["pid"] == pid && r["local_port"] == port)
            .cloned()
    };
    let server = row(applies.pid, port).unwrap_or_else(|| panic!("no row: {out}"));
    assert_eq!(server["protocol_name"], "socks");
    assert_eq!(server["reason"], "socks_server");
    // db.example.org: its block forwards port 9 (and 1), not the port it listens
    // on, so its listener is no SOCKS server.
    assert!(row(other.pid, other_port).is_none(), "{out}");
}
