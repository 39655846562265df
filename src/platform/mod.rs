//! The `Host` trait: everything an1256 asks of the operating system, behind one
//! interface. `linux/` and `macos/` implement it; `FakeHost` (fake.rs, tests and
//! the `fake-host` feature only) serves the tests.

use crate::model::{CodeIdentity, Pid, ProcessInfo, SocketQuery, SocketScan};

#[cfg(any(test, feature = "fake-host"))]
mod fake;
pub mod host_identity;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod macos;
pub mod process_cache;
pub mod trust;

#[cfg(any(test, feature = "fake-host"))]
pub use fake::{FakeHost, FakeProcessEvents};

/// Why a per-process read failed. Vanished and permission errors are normal on a
/// live host: callers skip and count them.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HostError {
    #[error("process {0} has exited")]
    Vanished(Pid),
    #[error("permission denied reading process {0} (run as root to see every process)")]
    PermissionDenied(Pid),
    /// A `/proc` area (argv, environ) was longer than the read limit and was cut:
    /// what it holds cannot be known, so callers treat the evidence as unknown.
    #[error("{what} of process {pid} is longer than {limit} bytes and was cut")]
    Truncated {
        pid: Pid,
        what: &'static str,
        limit: usize,
    },
    /// The kernel refused an area to everyone, root included (macOS withholds
    /// the environment of `CS_RESTRICT` processes): unknown, never empty.
    #[error("{what} of process {pid} is withheld by the kernel")]
    Withheld { pid: Pid, what: &'static str },
    /// A read failed for another reason; `what` names what was read.
    #[error("cannot read {what}: {reason}")]
    Unreadable { what: String, reason: String },
    /// What was read does not have the expected shape.
    #[error("{what}: {why}")]
    Malformed { what: String, why: String },
    /// More items than the bound: what lies past it is unknown.
    #[error("{what} number more than {limit}")]
    TooMany { what: String, limit: usize },
    /// The platform has no way to answer (the caller treats it as unknown).
    #[error("{what} is not available on this platform")]
    Unsupported { what: String },
    #[error("{0}")]
    Other(String),
}

/// Why a process event source cannot be opened, broke, or cannot follow a pid.
/// The system error stays attached as the source.
#[derive(Debug, thiserror::Error)]
pub enum EventSourceError {
    /// A system call on the source failed; `what` names the source and the call.
    #[error("{what}: {source}")]
    Call {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The kernel answered the subscription with an error (no CAP_NET_ADMIN).
    #[error("proc connector: subscription refused: {0}")]
    SubscriptionRefused(#[source] std::io::Error),
    /// The kernel never answered the subscription.
    #[error(
        "proc connector: no answer to the subscription within {0:?} \
         (not in the initial user and pid namespaces?)"
    )]
    NoSubscriptionAnswer(std::time::Duration),
    /// The source follows at most this many pids.
    #[error("already following {0} processes")]
    FollowLimit(usize),
    #[error("invalid pid {0}")]
    InvalidPid(Pid),
    /// The pid cannot be followed (ESRCH: it exited first).
    #[error("follow {pid}: {source}")]
    Follow {
        pid: Pid,
        #[source]
        source: std::io::Error,
    },
    #[error("no process event source on this platform")]
    Unsupported,
    /// The settings turned the source off.
    #[error("exec events turned off (watch_events: false)")]
    TurnedOff,
}

impl EventSourceError {
    /// The system call `what` failed with the last OS error.
    pub fn last_os_error(what: &'static str) -> EventSourceError {
        EventSourceError::Call {
            what,
            source: std::io::Error::last_os_error(),
        }
    }
}

/// Why a check of a running process (is its executable still on disk, what is its
/// control group) gave no answer. The system error stays attached as the source.
#[derive(Debug, thiserror::Error)]
pub enum ProcessCheckError {
    #[error(transparent)]
    Host(#[from] HostError),
    /// A read or lookup of `what` failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The process exec'd (or its pid was reused) since it was read.
    #[error("the executable path changed since the process was read")]
    ExecutableChanged,
    #[error("{what}: longer than {limit} bytes")]
    TooLong { what: &'static str, limit: usize },
    /// The backend cannot compare the running executable with the file.
    #[error("not compared on this platform")]
    NotCompared,
}

impl ProcessCheckError {
    /// A failed read or lookup of `what`, keeping the system error.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> ProcessCheckError {
        ProcessCheckError::Io {
            what: what.into(),
            source,
        }
    }
}

impl HostError {
    /// A failed read of `what`, keeping the reason.
    pub fn unreadable(what: impl std::fmt::Display, reason: impl std::fmt::Display) -> HostError {
        HostError::Unreadable {
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// A change in the process table that the watch of untrusted processes acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcessEvent {
    /// The process replaced its image (execve): what it runs must be judged again.
    Exec(Pid),
    /// A new process (not a thread): it runs its parent's image until it execs.
    Fork { parent: Pid, child: Pid },
    /// The process exited.
    Exit(Pid),
    /// Events were dropped (the receive buffer overran): anything may have changed,
    /// so the watch looks at every process again.
    Lost,
}

/// A stream of process events (Linux: the netlink proc connector; macOS: kqueue
/// `EVFILT_PROC` on followed pids). The watch falls back to listing pids every
/// second where there is none.
pub trait ProcessEvents: Send {
    /// What the source is, for `an1256_info.watch_source`.
    fn name(&self) -> &'static str;
    /// True when every exec and fork on the host is reported; false when only the
    /// pids passed to [`ProcessEvents::follow`] are (new pids then come from
    /// listing the processes).
    fn reports_every_process(&self) -> bool;
    /// Report this pid's exec and exit from now on. `Err` when it cannot be
    /// followed (it exited, or the source's own bound is reached).
    fn follow(&mut self, _pid: Pid) -> Result<(), EventSourceError> {
        Ok(())
    }
    /// Waits at most `timeout` for events and appends at most `max` of them to
    /// `out` (a full batch leaves the rest queued in the kernel). `Err` when the
    /// source broke for good; the watch then polls.
    fn wait(
        &mut self,
        timeout: std::time::Duration,
        max: usize,
        out: &mut Vec<ProcessEvent>,
    ) -> Result<(), EventSourceError>;
}

/// One process image as a listing sees it: compared between two listings to
/// notice an exec no event told, including an exec that keeps the executable
/// (`bash` running `bash evil.sh`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProcessImage {
    pub executable: String,
    /// What tells this image from the next one under the same pid, even of the
    /// same file (see `ProcessStamp`). `None` when the platform cannot say (no
    /// randomized layout, unreadable): such an image never counts as unchanged.
    pub stamp: Option<process_cache::ProcessStamp>,
}

/// Settings every backend honours.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Files larger than this are not hashed (the `error` column says so).
    pub max_hash_bytes: u64,
    /// Root of the dpkg database (`/var/lib/dpkg`); tests point it at a fixture.
    pub dpkg_root: std::path::PathBuf,
    /// Root of the rpm database (`/var/lib/rpm`), consulted when it exists.
    pub rpm_root: std::path::PathBuf,
    /// Hashing each uid may cause per window; beyond it subjects are `unknown`.
    pub hash_budget: crate::platform::trust::BudgetLimits,
    /// Keep per-process facts (executable mappings) across scans, keyed by process
    /// image: the extension, which scans every few seconds. A one-shot CLI run
    /// would only pay for the image stamps that key them.
    pub remember_process_facts: bool,
    /// Linux: full socket scans take socket fds from the BPF task_file iterator
    /// where it is exact (root, initial pid namespace), not from a walk of every
    /// `/proc/<pid>/fd`. Off: always walk (`"fd_iterator": false`).
    pub fd_iterator: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            max_hash_bytes: 256 * 1024 * 1024,
            dpkg_root: "/var/lib/dpkg".into(),
            rpm_root: "/var/lib/rpm".into(),
            hash_budget: crate::platform::trust::BudgetLimits::default(),
            remember_process_facts: false,
            fd_iterator: true,
        }
    }
}

/// Everything the tables need from the operating system.
pub trait Host: Send + Sync {
    /// `linux` or `darwin`, as osquery names platforms.
    fn platform(&self) -> &'static str;
    /// Every pid alive now.
    fn pids(&self) -> Result<Vec<Pid>, HostError>;
    /// One process. `Err(Vanished)` when it exited.
    fn process(&self, pid: Pid) -> Result<ProcessInfo, HostError>;
    /// Just the executable path of a process (cheaper than `process`).
    fn executable_path(&self, pid: Pid) -> Result<String, HostError> {
        self.process(pid).map(|p| p.path)
    }
    /// What tells the image `pid` runs now from the next (cheap: read every
    /// second for every process when the watch polls). Without a stamp the
    /// watch judges the process again at every listing, a bounded few a second.
    fn process_image(&self, pid: Pid) -> Result<ProcessImage, HostError> {
        Ok(ProcessImage {
            executable: self.executable_path(pid)?,
            stamp: None,
        })
    }
    /// Just what a process runs: a `ProcessInfo` with only `pid`, `path` and `argv`
    /// filled (cheaper than `process`; used to pick out the few processes worth a
    /// full read).
    fn command(&self, pid: Pid) -> Result<ProcessInfo, HostError> {
        self.process(pid)
    }
    /// Inet sockets of the processes and protocols the query names.
    fn sockets(&self, query: &SocketQuery) -> SocketScan;
    /// Every TCP socket on the host with its owner, and nothing else the SOCKS
    /// check would read of their holders: what a `pid =` scan's check looks
    /// at to find the owner of a listener its client reaches.
    fn host_tcp_sockets(&self) -> Vec<crate::model::SocketInfo> {
        self.sockets(&SocketQuery {
            pids: None,
            protocols: crate::model::ProtocolSet {
                tcp: true,
                ..crate::model::ProtocolSet::NONE
            },
        })
        .sockets
    }
    /// Every TCP socket of `pid`'s network namespace, owners not looked up (`pid`
    /// 0, `fd` -1): one table read instead of a walk of every process's fds. `None`
    /// when it cannot be told (the caller then walks).
    fn namespace_tcp_sockets(&self, pid: Pid) -> Option<Vec<crate::model::SocketInfo>> {
        let _ = pid;
        None
    }
    /// Code identity of what the process runs (macOS: the live process's
    /// signature; Linux: its executable file). Cached by file identity.
    fn process_identity(&self, process: &ProcessInfo) -> CodeIdentity;
    /// Code identity of a file on disk, in the scanner's own view. Cached by file
    /// identity.
    fn file_identity(&self, path: &str) -> CodeIdentity;
    /// What feeds the process's standard input (Linux: `stat` of `/proc/<pid>/fd/0`).
    /// `Unknown` where it cannot be told: an interpreter with no script is then not
    /// taken for a REPL.
    fn stdin_source(&self, _pid: Pid) -> crate::model::StdinSource {
        crate::model::StdinSource::Unknown
    }
    /// What `path` is (following symlinks, as an interpreter's import would), for
    /// module resolution. The default asks this process's own view of the file
    /// system; any error other than "not there" is `Unknown`.
    fn path_kind(&self, _pid: Pid, path: &str) -> crate::model::PathKind {
        path_kind_here(path)
    }
    /// Code identity of the script file `process` runs. `operand` is the script path
    /// exactly as argv gives it (relative paths unresolved, ruby `-C` directories
    /// joined with `/`, no `.`/`..` removed); `display_path` is the resolved name
    /// shown in rows. Backends that can (Linux) resolve `operand` as the process
    /// would, from its raw argv bytes, in its own root and cwd, and read it with its
    /// credentials. `None` when there is nothing to look at (a relative path with no
    /// way to resolve it); the caller judges that untrusted.
    fn script_identity(
        &self,
        process: &ProcessInfo,
        operand: &str,
        display_path: &str,
    ) -> Option<CodeIdentity> {
        let _ = (process, operand);
        display_path.starts_with('/').then(|| {
            let mut identity = self.file_identity(display_path);
            identity.changeable = changeable_here(display_path);
            identity
        })
    }
    /// At most `max_entries` names in a directory that `process` names (the
    /// directory of an ssh `Include` glob), listed with the process's rights where
    /// the backend can (Linux), in no particular order. `None` when it cannot be
    /// listed that way.
    fn list_user_dir(
        &self,
        process: &ProcessInfo,
        dir: &str,
        max_entries: usize,
    ) -> Option<Vec<String>> {
        let _ = process;
        list_dir_here(dir, max_entries)
    }
    /// At most `limit` bytes of a configuration file that `process` names (ssh `-F`,
    /// `Include`, proxychains configs): only a regular file, read with the process's
    /// rights where the backend can (Linux), never by opening a device or a FIFO.
    /// `None` when it cannot be read that way.
    fn read_user_file(&self, process: &ProcessInfo, path: &str, limit: u64) -> Option<Vec<u8>> {
        let _ = process;
        read_regular_file(path, limit)
    }
    /// Why the directory `dir`, as `pid` sees it, or one above it can be changed by
    /// someone other than root, so that what is missing there now may have been
    /// there at start; empty when only root can. The default looks in this
    /// process's view ([`changeable_here`]); Linux walks the process's own root
    /// without following symlinks.
    fn path_changeable(&self, pid: Pid, dir: &str) -> String {
        let _ = pid;
        changeable_here(dir)
    }
    /// Whether `path`, missing now as `pid` sees it, was missing when `pid`
    /// started too: its nearest existing directory has not changed since before
    /// the start (ctime, which an unprivileged user cannot set back). `false`
    /// when that cannot be shown, which is the default: the caller then keeps
    /// treating the absence as proving nothing.
    fn missing_since_start(&self, pid: Pid, path: &str) -> bool {
        let _ = (pid, path);
        false
    }
    /// At most `limit` bytes of a configuration file the administrator names (the
    /// policy file), read with the scanner's own rights by the same reader as
    /// `read_user_file`: only a regular file (a FIFO, device or socket at the path,
    /// or behind a symlink there, is never opened for reading), without blocking,
    /// and within a time bound where the backend has one (Linux). `Err` says why
    /// it cannot be read.
    fn read_config_file(&self, path: &str, limit: u64) -> Result<Vec<u8>, HostError> {
        read_regular(path, limit).map_err(|e| HostError::unreadable(path, e))
    }
    /// Whether the process runs the very file at `path` as this scanner sees it:
    /// the process is in the scanner's mount namespace and its executable's
    /// (device, inode) is `stat(path)`'s. Policy `path` rules hold only then: a bind
    /// mount in a user+mount namespace can put any file at a trusted path. `Err`
    /// when it cannot be told (treated as not there).
    fn executable_is_at(&self, pid: Pid, _path: &str) -> Result<bool, HostError> {
        Err(HostError::Unsupported {
            what: format!("the executable location of process {pid}"),
        })
    }
    /// Whether the file at the process's executable path is still the one it runs:
    /// `Ok(false)` when it was deleted, or the path now names another file (device
    /// and inode differ); `Err` why it cannot be told. The default knows only
    /// deletion.
    fn executable_on_disk(&self, process: &ProcessInfo) -> Result<bool, ProcessCheckError> {
        if process.exe_deleted {
            Ok(false)
        } else {
            Err(ProcessCheckError::NotCompared)
        }
    }
    /// The process's control group (Linux); empty where there are none.
    fn control_group(&self, _pid: Pid) -> Result<crate::model::ControlGroup, ProcessCheckError> {
        Ok(crate::model::ControlGroup::default())
    }
    /// Regular files the process holds open (bounded), for cross-checking argv's
    /// script operand. `None` where the platform cannot list them (the check is
    /// then skipped: argv-derived trust is best effort there).
    fn open_regular_files(
        &self,
        _pid: Pid,
    ) -> Option<Result<Vec<crate::model::OpenFile>, HostError>> {
        None
    }
    /// `(dev, ino)` of the script `path` names, resolved as the process would (its
    /// root, or its cwd for a relative path). `None` where not available.
    fn script_file_key(
        &self,
        _process: &ProcessInfo,
        _path: &str,
    ) -> Option<Result<(u64, u64), HostError>> {
        None
    }
    /// The process's environment as `KEY=value` strings (for SOCKS proxy variables).
    fn environment(&self, pid: Pid) -> Result<Vec<String>, HostError> {
        Err(HostError::Unsupported {
            what: format!("the environment of process {pid}"),
        })
    }
    /// Files mapped into the process: its program and shared libraries (Linux:
    /// the executable file mappings, `PROCMAP_QUERY`, or every file `maps` names).
    fn mapped_libraries(&self, pid: Pid) -> Result<Vec<String>, HostError> {
        Err(HostError::Unsupported {
            what: format!("the mapped libraries of process {pid}"),
        })
    }
    /// Files mapped executable into the process (its program, the loader, its
    /// libraries), named as the host sees them: the kernel's record of the native
    /// code that runs, which the process cannot rewrite as it can its argv and
    /// environment. `Err` when they cannot be listed, or when the process may see
    /// other files at those names (another user namespace or root). `None` where
    /// the platform does not tell code mappings from data ones (no check).
    fn mapped_code(&self, pid: Pid) -> Option<Result<Vec<String>, HostError>> {
        let _ = pid;
        None
    }
    /// The system-wide SOCKS proxy (macOS network settings: SOCKSProxy/SOCKSPort
    /// when SOCKSEnable), as host and port. `None` where there is no such setting.
    fn system_socks_proxy(&self) -> Option<(String, u16)> {
        None
    }
    /// Home directory of a user (to find `~/.ssh/config`). The default reads
    /// `/etc/passwd` (bounded); backends with a directory service may do better.
    fn home_directory(&self, uid: i64) -> Option<String> {
        home_from_passwd_file("/etc/passwd", uid)
    }
    /// The process the OS holds responsible for `pid` (macOS: the app behind a
    /// helper or script, as TCC sees it). `None` where the OS has no such notion.
    fn responsible_pid(&self, _pid: Pid) -> Option<Pid> {
        None
    }
    /// User name of a uid. The default reads `/etc/passwd` (bounded); backends with
    /// a directory service (macOS) may do better.
    fn user_name(&self, uid: i64) -> Option<String> {
        user_from_passwd(&read_passwd_file("/etc/passwd"), uid)
    }
    /// A source of process events (exec, fork, exit) for the watch of untrusted
    /// processes, or why there is none here (the watch then lists pids every second).
    /// Whether full scans attribute sockets to their senders: `running`, or why
    /// not; empty where there is no such record (macOS, one-shot modes).
    fn send_ledger_status(&self) -> String {
        String::new()
    }

    fn process_events(&self) -> Result<Box<dyn ProcessEvents>, EventSourceError> {
        Err(EventSourceError::Unsupported)
    }
}

/// Reads the processes `pids` names (every process when `None`), skipping the
/// ones that vanish or cannot be read. Fails only when the process list itself
/// cannot be read.
pub fn read_processes(
    host: &dyn Host,
    pids: Option<&[Pid]>,
) -> Result<Vec<ProcessInfo>, HostError> {
    // A full scan stops at the deadline; a `pid =` lookup (a JOIN's inner side)
    // still reads its few processes, whose slow parts (hashing) answer `unknown`.
    let deadline = match pids {
        Some(_) => crate::deadline::Deadline::NONE,
        None => crate::deadline::Deadline::current(),
    };
    let pids: Vec<Pid> = match pids {
        Some(list) => list.to_vec(),
        None => host.pids()?,
    };
    let mut processes = Vec::with_capacity(pids.len());
    for pid in pids {
        if deadline.expired() {
            break;
        }
        match host.process(pid) {
            Ok(p) => processes.push(p),
            Err(HostError::Vanished(_)) => {}
            Err(e) => log::debug!("skipping process {pid}: {e}"),
        }
    }
    Ok(processes)
}

/// Why the file at the absolute `path` (this process's view) and its directories
/// could be changed by someone other than root: a non-root owner, a non-root
/// group with write, other write, or a symlink on the way; empty when only root
/// can change them. The portable, conservative check behind `changeable`.
pub fn changeable_here(path: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let chain = |path: &std::path::Path| -> Vec<std::path::PathBuf> {
        path.ancestors().map(std::path::Path::to_path_buf).collect()
    };
    let resolved = match std::fs::canonicalize(path) {
        Ok(resolved) => resolved,
        Err(e) => return format!("cannot resolve the script's path: {e}"),
    };
    // As named (a link another user owns could be swapped) and as resolved.
    for component in chain(std::path::Path::new(path))
        .into_iter()
        .chain(chain(&resolved))
    {
        let shown = component.display();
        match std::fs::symlink_metadata(&component) {
            // Root's own links (macOS /var, /tmp) only root can change.
            Ok(m) if m.file_type().is_symlink() && m.uid() != 0 => {
                return format!(
                    "{shown} on the script's path is a symbolic link of uid {}",
                    m.uid()
                )
            }
            Ok(m) if m.file_type().is_symlink() => {}
            Ok(m)
                // Group write whatever the group: with an ACL it is the mask.
                if m.uid() != 0 || m.mode() & 0o022 != 0 =>
            {
                return format!(
                    "{shown} on the script's path is writable by a user other than root"
                )
            }
            Ok(_) => {}
            Err(e) => return format!("cannot check {shown} on the script's path: {e}"),
        }
    }
    String::new()
}

/// `path_kind` in this process's view of the file system.
pub fn path_kind_here(path: &str) -> crate::model::PathKind {
    use crate::model::PathKind;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => PathKind::File,
        Ok(m) if m.is_dir() => PathKind::Dir,
        Ok(_) => PathKind::Other,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PathKind::Missing,
        // ENOTDIR: a component is a file, so the path is not there.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => PathKind::Missing,
        Err(_) => PathKind::Unknown,
    }
}

/// At most `max_entries` names in `dir`, in this process's view of the file
/// system (the portable fallback of `list_user_dir`).
pub fn list_dir_here(dir: &str, max_entries: usize) -> Option<Vec<String>> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(
        entries
            .take(max_entries)
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect(),
    )
}

/// At most `limit` bytes of a regular file, never blocking on a FIFO planted at the
/// path and never reading a device (the portable fallback of `read_user_file`).
pub fn read_regular_file(path: &str, limit: u64) -> Option<Vec<u8>> {
    read_regular(path, limit).ok()
}

/// `read_regular_file`, saying why the file was not read (`NotFound` for a
/// missing one).
pub(crate) fn read_regular(path: &str, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let not_regular =
        |kind: &str| std::io::Error::other(format!("not a regular file ({kind}): not opened"));
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    // The type is checked before the open: a FIFO or device is never opened.
    let before = std::fs::metadata(path)?;
    if !before.is_file() {
        return Err(not_regular(file_type_name(&before)));
    }
    let file = options.open(path)?;
    // Checked again on what was opened: the path may have been swapped meanwhile.
    let opened = file.metadata()?;
    if !opened.is_file() {
        return Err(not_regular(file_type_name(&opened)));
    }
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A name for what a path holds, for errors.
fn file_type_name(metadata: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Largest passwd file read when looking up a user.
const MAX_PASSWD_BYTES: u64 = 4 * 1024 * 1024;

/// The passwd-format file, read bounded (empty when unreadable).
fn read_passwd_file(path: &str) -> String {
    use std::io::Read;
    let Ok(file) = std::fs::File::open(path) else {
        return String::new();
    };
    let mut bytes = Vec::new();
    let _ = file.take(MAX_PASSWD_BYTES).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Field `index` of `uid`'s line in passwd-format text
/// (`name:pw:uid:gid:gecos:home:shell`); `None` when absent or empty.
fn passwd_field(text: &str, uid: i64, index: usize) -> Option<String> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 7 && fields[2].parse::<i64>().ok() == Some(uid))
            .then(|| fields.get(index).copied().unwrap_or_default())
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
    })
}

/// Home directory of `uid` in a passwd-format file.
pub fn home_from_passwd_file(path: &str, uid: i64) -> Option<String> {
    home_from_passwd(&read_passwd_file(path), uid)
}

/// Home directory of `uid` in passwd-format text.
pub fn home_from_passwd(text: &str, uid: i64) -> Option<String> {
    passwd_field(text, uid, 5)
}

/// User name of `uid` in passwd-format text.
pub fn user_from_passwd(text: &str, uid: i64) -> Option<String> {
    passwd_field(text, uid, 0)
}

/// The backend for the OS this binary was built for.
#[cfg(target_os = "linux")]
pub fn native(config: HostConfig) -> Box<dyn Host> {
    Box::new(linux::LinuxHost::new(config))
}

/// The backend for the OS this binary was built for.
#[cfg(target_os = "macos")]
pub fn native(config: HostConfig) -> Box<dyn Host> {
    Box::new(macos::MacHost::new(config))
}

/// Settles the process for serving osquery for days: see
/// `linux::cap_allocator_arenas`. Nothing to do elsewhere.
pub fn prepare_for_serving() {
    #[cfg(target_os = "linux")]
    {
        linux::cap_allocator_arenas();
        // Loaded once for the life of the extension: `pid =` lookups then use it
        // (a one-shot CLI lookup would spend more loading it than it saves).
        if let Err(why) = linux::fd_iterator::shared() {
            log::info!("no BPF fd iterator, scans walk /proc: {why}");
        }
        // From now on, who sends on each user's datagram socket is recorded:
        // full scans give a socket sent on by a process they did not find
        // holding it to that process (`linux::send_ledger`).
        if let Err(why) = linux::send_ledger::start() {
            log::warn!(
                "no send ledger: full scans cannot attribute a socket whose sender they \
                 miss ({why})"
            );
        }
    }
}
