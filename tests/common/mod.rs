//! Shared helpers for integration tests: real child processes that print
//! `key=value` lines, then `ready` once their sockets/files are set up, and are
//! killed when the handle drops. Generic: any command works, python3 is a shortcut.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a child may take to print `ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running child that printed `ready`. Killed (and reaped) on drop.
pub struct ReadyChild {
    child: Child,
    /// The child's pid.
    pub pid: i32,
    /// Lines printed before `ready`.
    pub lines: Vec<String>,
}

impl ReadyChild {
    /// The value of a `key=value` line printed before `ready`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.lines.iter().find_map(|line| {
            line.split_once('=')
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v)
        })
    }

    /// Like `value`, parsed as an integer; panics with the child's output if absent.
    pub fn int(&self, key: &str) -> i64 {
        self.value(key)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("child printed no integer {key}=…: {:?}", self.lines))
    }

    /// Stops the child now (as drop would) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ReadyChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Why a child never became ready: its output, for a skip reason or a failure.
#[derive(Debug)]
pub struct NotReady {
    pub lines: Vec<String>,
    pub stderr: String,
}

impl NotReady {
    /// A `key=value` line the child printed before giving up (e.g. `error=EACCES`).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.lines.iter().find_map(|line| {
            line.split_once('=')
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v)
        })
    }
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stdout {:?}, stderr {:?}",
            self.lines,
            self.stderr.trim()
        )
    }
}

/// Spawns `command` with piped stdout/stderr and waits for a `ready` line.
pub fn spawn_ready(mut command: Command) -> Result<ReadyChild, NotReady> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| NotReady {
        lines: Vec::new(),
        stderr: format!("spawn failed: {e}"),
    })?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(Some(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(None);
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Some(line)) if line.trim() == "ready" => {
                let pid = i32::try_from(child.id()).expect("pid fits i32");
                return Ok(ReadyChild { child, pid, lines });
            }
            Ok(Some(line)) => lines.push(line),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                return Err(NotReady { lines, stderr });
            }
        }
    }
}

/// `python3 -c <code>`.
pub fn python(code: &str) -> Command {
    let mut command = Command::new("python3");
    command.arg("-c").arg(code);
    command
}

/// A program in the system directories (tests skip what is not installed).
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|dir| std::path::Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// Prints why a test returns early (the kernel or the sandbox forbids something).
pub fn skip(test: &str, reason: impl std::fmt::Display) {
    eprintln!("SKIP {test}: {reason}");
}

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
