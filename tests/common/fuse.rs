//! A one-file FUSE file system for tests (tests/stalling_fuse.py): reads block
//! forever, or trickle, for everyone but one uid. Shared by the test binaries that
//! include it; each binary has its own scanner statics (the stuck-device table),
//! which is why a slow-read test lives apart from a stalled-read one.
#![allow(dead_code)]

use super::common;
use std::process::{Child, Command, Stdio};

/// A mounted stalling file system; unmounted (lazily) and its server killed on
/// drop, which also releases any thread blocked in it.
pub struct StallingMount {
    pub server: Child,
    pub mountpoint: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for StallingMount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&self.mountpoint)
            .stderr(Stdio::null())
            .status();
        // SIGKILL: the server's main thread sits in the FUSE loop.
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

pub fn mount_stalling(script: &str, reader_uid: u32) -> Result<StallingMount, String> {
    mount_fuse(script, reader_uid, false)
}

/// `mount_stalling`, or with `trickle` a file system that answers everyone else
/// slowly but steadily (4 KiB per 100 ms).
pub fn mount_fuse(script: &str, reader_uid: u32, trickle: bool) -> Result<StallingMount, String> {
    use std::os::unix::fs::PermissionsExt;
    if !std::path::Path::new("/dev/fuse").exists() || common::which("fusermount3").is_none() {
        return Err("no /dev/fuse or fusermount3".into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let source = dir.path().join("job.sh.src");
    std::fs::write(&source, script).map_err(|e| e.to_string())?;
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).map_err(|e| e.to_string())?;
    let mut command = Command::new("/usr/bin/python3");
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/stalling_fuse.py"
        ))
        .arg(&mountpoint)
        .arg(reader_uid.to_string())
        .arg(&source)
        .args(trickle.then_some("trickle"));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut server = command.spawn().map_err(|e| e.to_string())?;
    let stdout = server.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.trim() == "ready" {
                let _ = tx.send(());
            }
        }
    });
    let mounted = StallingMount {
        server,
        mountpoint,
        _dir: dir,
    };
    rx.recv_timeout(common::READY_TIMEOUT)
        .map_err(|_| "the FUSE server did not mount (fusepy missing?)".to_string())?;
    Ok(mounted)
}
