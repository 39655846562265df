//! Issue 11's stall guard must not be an attacker's switch: a user-named file the
//! scanner can read only slowly, though steadily (a big file on a loaded host, which
//! an unprivileged user can arrange), is still hashed, and its file system is not
//! refused afterwards. Apart from tests/stalled_reads.rs because the stuck-device
//! table is per process and FUSE device numbers are reused between mounts.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/fuse.rs"]
mod fuse;

use an1256::judge::subject;
use an1256::platform::{self, HostConfig};
use std::time::{Duration, Instant};

/// The script bash runs: a UDP socket to TEST-NET held by bash itself.
const UDP_SCRIPT: &str = "exec 3<>/dev/udp/192.0.2.63/5063\necho ready\nread -t 600 -u 3\n";

/// A script the scanner can read only slowly, though steadily, as a big file on a
/// loaded host (which an unprivileged user can arrange): it is hashed, not given
/// up on, and its file system is not refused afterwards. Before the stall check
/// counted progress, the whole read had 5 s, so this script was `unknown` ("file
/// system not answering") and every later read on its device refused for 10 min.
#[test]
fn a_script_read_slowly_but_steadily_is_hashed_and_its_file_system_not_refused() {
    const TEST: &str =
        "a_script_read_slowly_but_steadily_is_hashed_and_its_file_system_not_refused";
    if !common::is_root() {
        return common::skip(TEST, "needs root (users, FUSE)");
    }
    let user = common::attacker("ftrickle");
    // ~320 KiB: 80 slow reads, about 8 s, longer than the 5 s a read may stall.
    let script = format!("{UDP_SCRIPT}# {}\n", "x".repeat(320 * 1024));
    let sha = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(script.as_bytes());
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let mount = match fuse::mount_fuse(&script, user.uid, true) {
        Ok(mount) => mount,
        Err(e) => return common::skip(TEST, e),
    };
    let mut bash = user.command("/bin/bash");
    bash.arg(mount.mountpoint.join("job.sh"));
    let running = common::spawn_ready(bash).expect("bash runs its FUSE script");

    let host = platform::native(HostConfig::default());
    let process = host.process(running.pid).expect("read the process");
    let started = Instant::now();
    let identity = subject::evaluate(host.as_ref(), process.clone())
        .script_identity
        .expect("a script identity");
    eprintln!(
        "slow steady script judged in {:?}: {identity:?}",
        started.elapsed()
    );
    assert_eq!(identity.sha256, sha, "{identity:?}");
    assert!(!identity.error.contains("timed out"), "{identity:?}");
    assert!(
        started.elapsed() > userfile_read_timeout(),
        "the read really was slow"
    );
    // Its device is still read: a second look hashes again (or answers from the
    // cache), and is never refused.
    let again = subject::evaluate(host.as_ref(), process)
        .script_identity
        .expect("identity");
    assert!(!again.error.contains("refused"), "{again:?}");
    drop(mount);
}

fn userfile_read_timeout() -> Duration {
    an1256::platform::linux::userfile::READ_TIMEOUT
}
