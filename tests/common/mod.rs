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

/// A running child that printed `ready`. It leads its own process group, and the
/// whole group is killed (and the child reaped) on drop, so what it started (a
/// shell's subshell, a command substitution) does not outlive the test.
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

    /// Stops the child and its process group now (as drop would) and reaps it.
    pub fn kill(&mut self) {
        kill_group(&mut self.child);
    }
}

impl Drop for ReadyChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A child started without `spawn_ready` (a server, a background script): killed
/// and reaped when the handle drops, pass or fail.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// The child's pid.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).expect("pid fits i32")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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

/// SIGKILL to the child's whole process group (it leads one: `spawn_ready` starts
/// it with `process_group(0)`), then reaps the child. Descendants that made
/// their own group or session are out of reach, as they would be for a real
/// supervisor.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill has no memory preconditions; a negative pid names the group
        // this child leads, and nothing else (the child is not reaped yet, so its
        // pid and group id cannot have been reused).
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Spawns `command` in a process group of its own, with piped stdout/stderr, and
/// waits for a `ready` line. Without cargo's `LD_LIBRARY_PATH` (target
/// directories): it would rightly make any child's code identity a class.
pub fn spawn_ready(mut command: Command) -> Result<ReadyChild, NotReady> {
    use std::os::unix::process::CommandExt;
    command
        .env_remove("LD_LIBRARY_PATH")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A script or binary the test just wrote may still be open for writing in a
    // sibling test's child between its fork and exec: ETXTBSY passes in moments.
    let mut attempts = 0;
    let mut child = loop {
        match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 100 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => {
                break other.map_err(|e| NotReady {
                    lines: Vec::new(),
                    stderr: format!("spawn failed: {e}"),
                })?
            }
        }
    };
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
                kill_group(&mut child);
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                return Err(NotReady { lines, stderr });
            }
        }
    }
}

/// Copies an executable in a child process (`cp -p`, mode kept), so no fd open for
/// writing on the copy ever exists in this multi-threaded test process: a sibling
/// test forking at that moment would inherit it, and executing the copy would then
/// fail with ETXTBSY ("Text file busy").
pub fn copy_executable(from: impl AsRef<std::path::Path>, to: impl AsRef<std::path::Path>) {
    let status = Command::new("cp")
        .arg("-p")
        .arg(from.as_ref())
        .arg(to.as_ref())
        .status()
        .expect("run cp");
    assert!(
        status.success(),
        "cp {:?} {:?}: {status}",
        from.as_ref(),
        to.as_ref()
    );
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

/// An unprivileged local user created by the test suite: the adversary of the
/// threat model. Each tag is its own user (`a1256-<tag>`), so tests running in
/// parallel never share a home; users are kept between runs (creation is idempotent).
pub struct Attacker {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// A home directory owned by the user, mode 0700, emptied on creation.
    pub home: std::path::PathBuf,
}

/// Creates (or reuses) the unprivileged user `a1256-<tag>` with a fresh, empty home
/// under `/home`. Needs root; callers skip otherwise. Retries while another test
/// holds the passwd lock.
pub fn attacker(tag: &str) -> Attacker {
    assert!(is_root(), "attacker() needs root");
    let name = format!("a1256-{tag}");
    assert!(name.len() <= 32, "user name too long: {name}");
    let home = std::path::PathBuf::from("/home").join(&name);
    for attempt in 0..100 {
        if let Some((uid, gid)) = user_ids(&name) {
            let _ = std::fs::remove_dir_all(&home);
            std::fs::create_dir_all(&home).expect("create attacker home");
            std::os::unix::fs::chown(&home, Some(uid), Some(gid)).expect("chown attacker home");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))
                .expect("chmod attacker home");
            return Attacker {
                name,
                uid,
                gid,
                home,
            };
        }
        let status = Command::new("useradd")
            .args(["--no-create-home", "--home-dir"])
            .arg(&home)
            .args(["--shell", "/bin/sh", "--user-group", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run useradd");
        if !status.success() && attempt > 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("could not create user {name}");
}

/// uid and gid of a user name, from `id`.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(name).output().ok()?;
        out.status.success().then_some(())?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

impl Attacker {
    /// `program` run as this user (real and effective uid/gid, no supplementary
    /// groups, HOME/USER/LOGNAME set), in the user's home.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(program);
        command
            .uid(self.uid)
            .gid(self.gid)
            .current_dir(&self.home)
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env_remove("LD_LIBRARY_PATH");
        command
    }

    /// `python3 -c <code>` as this user.
    pub fn python(&self, code: &str) -> Command {
        let mut command = self.command("python3");
        command.arg("-c").arg(code);
        command
    }

    /// An unsigned copy of python3 named `name` in the home, owned by the user,
    /// made unique by `tag` appended to its bytes (a child appends it, so no write
    /// descriptor on the copy exists in this process).
    pub fn unsigned_python_copy(&self, name: &str, tag: &str) -> std::path::PathBuf {
        let python = std::fs::canonicalize("/usr/bin/python3").expect("python3");
        let copy = self.home.join(name);
        copy_executable(&python, &copy);
        let status = Command::new("sh")
            .args(["-c", "printf '%s' \"$1\" >> \"$2\"", "sh", tag])
            .arg(&copy)
            .status()
            .expect("append tag");
        assert!(status.success());
        std::os::unix::fs::chown(&copy, Some(self.uid), Some(self.gid)).expect("chown");
        copy
    }

    /// `binary` (a python) holding a UDP socket connected to 127.0.0.1:`port`.
    pub fn udp_holder(&self, binary: &std::path::Path, port: u16) -> ReadyChild {
        let code = format!(
            "import socket,time\n\
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
s.connect(('127.0.0.1',{port}))\n\
print('ready', flush=True)\n\
time.sleep(300)\n"
        );
        let mut command = self.command(binary);
        command.arg("-c").arg(code);
        spawn_ready(command).unwrap_or_else(|e| panic!("udp holder: {e}"))
    }

    /// Writes `contents` to `relative` under the home, owned by the user (mode 0644,
    /// or 0755 when `executable`).
    pub fn write(&self, relative: &str, contents: &[u8], executable: bool) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.home.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
            let mut dir = parent.to_path_buf();
            while dir.starts_with(&self.home) {
                let _ = std::os::unix::fs::chown(&dir, Some(self.uid), Some(self.gid));
                if !dir.pop() {
                    break;
                }
            }
        }
        std::fs::write(&path, contents).expect("write attacker file");
        std::os::unix::fs::chown(&path, Some(self.uid), Some(self.gid)).expect("chown");
        let mode = if executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }
}

/// A lock on host-wide full socket scans, across test processes (other test
/// binaries, other checkouts' runs on the same machine): a full scan is of the
/// whole host, so a test holding hostile processes (an fd hoarder, thousands of
/// threads listing one huge fd table) makes every other full scan partial or
/// cuts its fd iterator pass. Released on drop (`flock` on an open file).
pub struct FullScanLock(std::fs::File);

impl FullScanLock {
    /// For a test whose processes make full scans partial: no other full scan
    /// runs meanwhile.
    pub fn exclusive() -> FullScanLock {
        Self::take(libc::LOCK_EX)
    }

    /// For a test that asserts its full scans are whole: no hostile test
    /// (holding `exclusive`) runs meanwhile; such tests may run together.
    pub fn shared() -> FullScanLock {
        Self::take(libc::LOCK_SH)
    }

    fn take(kind: libc::c_int) -> FullScanLock {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let path = std::env::temp_dir().join("an1256-tests-full-scan.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        // Generous: the hostile tests holding it take well under a minute each.
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), kind | libc::LOCK_NB) } == 0 {
                return FullScanLock(file);
            }
            let err = std::io::Error::last_os_error();
            assert!(
                err.kind() == std::io::ErrorKind::WouldBlock,
                "flock {}: {err}",
                path.display()
            );
            assert!(
                std::time::Instant::now() < deadline,
                "{} stayed locked for 10 minutes",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A `nonstandard_protocol_sockets` row by column name.
pub type NamedRow = std::collections::HashMap<&'static str, String>;

/// The socket table's rows for a query context on `host` with `config`, by
/// column name.
#[cfg(target_os = "linux")]
pub fn socket_rows_in(
    host: &std::sync::Arc<an1256::platform::linux::LinuxHost>,
    config: &an1256::judge::socks::SocksConfig,
    context: &an1256::tables::QueryContext,
) -> Vec<NamedRow> {
    use an1256::tables::nonstandard_protocol_sockets::{NonstandardProtocolSockets, COLUMNS};
    use an1256::tables::TableDef;
    NonstandardProtocolSockets::with_socks_config(host.clone(), config.clone())
        .generate(context)
        .expect("generate")
        .into_iter()
        .map(|row| {
            COLUMNS
                .iter()
                .zip(row.iter())
                .map(|(c, v)| (c.name, v.to_osquery_string()))
                .collect()
        })
        .collect()
}

/// Kills every process of a test's attacker user when dropped, pass or fail
/// (the lapper's processes are not children of the test).
pub struct KillUser(pub String);

impl Drop for KillUser {
    fn drop(&mut self) {
        // kill(-1) by the user itself: the kernel signals every process of the
        // user at once, so a holder that keeps forking cannot leave a child
        // behind (a fork with a fatal signal pending fails), as it can between
        // pkill's listing and its kills. It would make later full scans incomplete.
        let _ = Command::new("runuser")
            .args(["-u", &self.0, "--", "kill", "-9", "-1"])
            .status();
        let _ = Command::new("pkill").args(["-9", "-u", &self.0]).status();
    }
}

/// `source` (C, with pthreads) built as `name` in the attacker's home; `None`
/// without a C compiler.
pub fn compiled(attacker: &Attacker, name: &str, source: &str) -> Option<std::path::PathBuf> {
    compiled_with(attacker, name, source, &[])
}

/// `compiled`, with more arguments for the linker (after the source).
pub fn compiled_with(
    attacker: &Attacker,
    name: &str,
    source: &str,
    link: &[&str],
) -> Option<std::path::PathBuf> {
    let file = attacker.write(&format!("{name}.c"), source.as_bytes(), false);
    let binary = attacker.home.join(name);
    Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&binary)
        .arg(&file)
        .args(link)
        .status()
        .is_ok_and(|s| s.success())
        .then_some(binary)
}
