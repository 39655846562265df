//! Issue 11, "no user can stall the scanner": a script on a file system whose
//! `read()` never returns (a user's FUSE mount, a hung NFS hard mount). The FUSE
//! server runs as root here (`/dev/fuse` is root-only on this host) but answers
//! reads only for the unprivileged user running the script; the scanner's reads
//! block forever, uninterruptibly. The real `an1256 scan` must still finish in
//! bounded time and report the script as `unknown` with the timeout.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/fuse.rs"]
mod fuse;

use an1256::judge::subject;
use an1256::model::Trust;
use an1256::platform::{self, HostConfig};
use fuse::mount_stalling;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An unsigned copy of python3 in the user's home holding UDP to TEST-NET.
const UDP_HOLDER: &str = "import socket, time\n\
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
    s.connect(('192.0.2.62', 5062))\n\
    print('ready', flush=True)\n\
    time.sleep(600)\n";

/// The script bash runs: a UDP socket to TEST-NET held by bash itself, which then
/// waits in a builtin (no child left behind).
const UDP_SCRIPT: &str = "exec 3<>/dev/udp/192.0.2.61/5061\necho ready\nread -t 600 -u 3\n";

/// Runs the real `scan` with a private store and config. Returns the exit code,
/// stdout and the wall time until the scan's main thread was done: a thread the
/// scanner abandoned in the stalled read keeps the process from being reaped until
/// the file system answers (kernel FUSE waits are uninterruptible once sent), so
/// the end is seen in /proc and the exit code is read after `release` ran.
fn scan_until_main_exits(
    limit: Duration,
    release: impl FnOnce(),
) -> (Option<i32>, String, Duration) {
    let store = tempfile::tempdir().expect("tempdir");
    let config = store.path().join("config.json");
    std::fs::write(&config, "{}").expect("config");
    let out_path = store.path().join("out.json");
    let out = std::fs::File::create(&out_path).expect("out");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_an1256"))
        .args(["scan", "--format", "json"])
        .env("AN1256_DB", store.path().join("an1256.db"))
        .env("AN1256_CONFIG", &config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .expect("run scan");
    let pid = child.id();
    let leader = format!("/proc/{pid}/task/{pid}/stat");
    let mut took = None;
    while started.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            took = Some(started.elapsed());
            break;
        }
        let state = std::fs::read_to_string(&leader).unwrap_or_default();
        let state = state.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        if matches!(state, Some(Some('Z'))) || !std::path::Path::new(&leader).exists() {
            took = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    release();
    let took = took.unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("scan still running after {limit:?}: a read stalled it");
    });
    let status = child.wait().expect("reap scan");
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    (status.code(), stdout, took)
}

fn line_of(stdout: &str, pid: i32) -> Option<String> {
    stdout
        .lines()
        .find(|l| {
            l.contains(&format!("\"pid\":{pid},")) || l.contains(&format!("\"pid\":\"{pid}\""))
        })
        .map(str::to_owned)
}

#[test]
fn a_script_on_a_file_system_that_never_answers_reads_cannot_stall_a_scan() {
    const TEST: &str = "a_script_on_a_file_system_that_never_answers_reads_cannot_stall_a_scan";
    if !common::is_root() {
        return common::skip(TEST, "needs root (users, FUSE)");
    }
    let user = common::attacker("fstall");
    let mut mount = match mount_stalling(UDP_SCRIPT, user.uid) {
        Ok(mount) => mount,
        Err(e) => return common::skip(TEST, e),
    };
    let script = mount.mountpoint.join("job.sh");
    let mut bash = user.command("/bin/bash");
    bash.arg(&script);
    let stalled = common::spawn_ready(bash).expect("bash runs its FUSE script");
    std::fs::copy("/usr/bin/python3", user.home.join("py")).expect("copy python3");
    std::os::unix::fs::chown(user.home.join("py"), Some(user.uid), Some(user.gid)).expect("chown");
    let mut holder = user.command(user.home.join("py"));
    holder.arg("-c").arg(UDP_HOLDER);
    let implant = common::spawn_ready(holder).expect("udp holder");

    // In process: the verdict and its reason; a second look refuses the device at once.
    let host = platform::native(HostConfig::default());
    let process = host.process(stalled.pid).expect("read the process");
    let first = Instant::now();
    let verdict = subject::evaluate(host.as_ref(), process.clone());
    let first = first.elapsed();
    let identity = verdict.script_identity.clone().expect("a script identity");
    assert_eq!(identity.trust, Trust::Unknown, "{identity:?}");
    assert!(
        identity
            .error
            .contains("read timed out: file system not answering"),
        "{identity:?}"
    );
    assert!(!verdict.subject.trusted);
    let again = Instant::now();
    let refused = subject::evaluate(host.as_ref(), process)
        .script_identity
        .expect("identity");
    let again = again.elapsed();
    eprintln!(
        "first stalled judgement {first:?}, second (device refused) {again:?}: {}",
        refused.error
    );
    // One 5 s stall wait plus the judgement around it; ~9 s at load 16.
    assert!(first < Duration::from_secs(20), "{first:?}");
    assert!(again < Duration::from_secs(1), "{again:?}");
    assert_eq!(refused.trust, Trust::Unknown);
    assert!(
        refused.error.contains("file system not answering"),
        "{refused:?}"
    );

    let (code, stdout, took) = scan_until_main_exits(Duration::from_secs(60), || {
        // Abort the file system: the thread left blocked in it can end.
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&mount.mountpoint)
            .stderr(Stdio::null())
            .status();
        let _ = mount.server.kill();
    });
    eprintln!("scan with a stalling FUSE script finished in {took:?}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert_eq!(code, Some(1), "{stdout}");
    let implant_line = line_of(&stdout, implant.pid).unwrap_or_else(|| panic!("implant: {stdout}"));
    assert!(implant_line.contains("192.0.2.62"), "{implant_line}");
    let stalled_line =
        line_of(&stdout, stalled.pid).unwrap_or_else(|| panic!("stalled script: {stdout}"));
    // The scan's rows carry no error column: the reason is checked in process above.
    assert!(
        stalled_line.contains("\"script_trust\":\"unknown\""),
        "{stalled_line}"
    );
    assert!(
        stalled_line.contains("\"script_sha256\":\"\""),
        "{stalled_line}"
    );
    assert!(
        stalled_line.contains("\"subject_trusted\":0"),
        "{stalled_line}"
    );
    drop(mount);
}

/// Benign twin: the same bash script on an ordinary file system is hashed as before.
#[test]
fn a_script_on_an_ordinary_file_system_is_hashed() {
    const TEST: &str = "a_script_on_an_ordinary_file_system_is_hashed";
    if !common::is_root() {
        return common::skip(TEST, "needs root (users)");
    }
    let user = common::attacker("fstallok");
    let script = user.write("job.sh", UDP_SCRIPT.as_bytes(), false);
    let sha = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(UDP_SCRIPT.as_bytes());
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let mut bash = user.command("/bin/bash");
    bash.arg(&script);
    let running = common::spawn_ready(bash).expect("bash runs its script");
    let (code, stdout, took) = scan_until_main_exits(Duration::from_secs(60), || {});
    eprintln!("scan with an ordinary script finished in {took:?}");
    let line = line_of(&stdout, running.pid).unwrap_or_else(|| panic!("script: {stdout}"));
    assert!(line.contains(&sha), "hashed as before: {line}");
    assert!(!line.contains("timed out"), "{line}");
    assert_eq!(
        code,
        Some(1),
        "an unsigned UDP script is a finding: {stdout}"
    );
}
