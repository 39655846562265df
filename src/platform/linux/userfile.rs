//! Reading files a user names (script operands, ssh and proxychains configs) without
//! reading *for* them. The scanner runs as root; the user chooses the path. So:
//! - the path is resolved with `openat2` as the process would resolve it (inside its
//!   own root, from raw bytes, no magic links), on a short-lived worker thread that
//!   carries the process's file-system credentials (`setfsuid`/`setfsgid`/groups are
//!   per-thread on Linux), so search and read permissions are the user's;
//! - the result is opened `O_PATH` first and must be a regular file (`fstat`): device
//!   nodes, FIFOs and sockets are never opened for reading (`/dev/watchdog`, a FIFO
//!   with no writer);
//! - only then is it reopened read-only (`O_NONBLOCK | O_NOCTTY`) through
//!   `/proc/self/fd/N`, still as the user.
//!
//! What cannot be read this way is an error for the caller to report (the subject is
//! then `unknown`), never a reason to retry as root.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// How long one open (resolution, stat, reopen) may take before the file is given
/// up as unreadable (a hung FUSE server the user mounted must not stall a scan).
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(2);

/// Most supplementary groups taken from `/proc/<pid>/status` (`NGROUPS_MAX`).
const MAX_GROUPS: usize = 65_536;

/// The file-system identity a read is done with: the process's fsuid, fsgid and
/// supplementary groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FsCredentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl FsCredentials {
    /// Root's: `may_write` then asks whether anyone *but* root can change a file.
    pub const ROOT: FsCredentials = FsCredentials {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
    };

    /// True when a directory or file with this owner, group and mode can be changed
    /// by these credentials (owner, group or other write bit; an owner can always
    /// chmod). For root, whose own writes prove nothing, whether anyone *but* root
    /// can change it. A group write bit counts whatever the group: with a POSIX ACL
    /// the group bits are the mask, and a named user or group entry (invisible in
    /// the mode) may grant write through it.
    pub fn may_write(&self, owner: u32, group: u32, mode: u32) -> bool {
        if self.uid == 0 {
            return owner != 0 || mode & 0o022 != 0;
        }
        if owner == self.uid {
            return true;
        }
        if group == self.gid || self.groups.contains(&group) {
            return mode & 0o020 != 0;
        }
        mode & 0o022 != 0
    }
}

/// The fs credentials in `/proc/<pid>/status` text: the fourth (`fs`) field of
/// `Uid:` and `Gid:`, and `Groups:`. `None` when a line is missing or malformed.
pub fn parse_fs_credentials(status: &str) -> Option<FsCredentials> {
    let field = |prefix: &str| -> Option<u32> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(prefix))?
            .split_ascii_whitespace()
            .nth(3)?
            .parse()
            .ok()
    };
    let uid = field("Uid:")?;
    let gid = field("Gid:")?;
    let groups_line = status
        .lines()
        .find_map(|line| line.strip_prefix("Groups:"))?;
    let mut groups = Vec::new();
    for group in groups_line.split_ascii_whitespace().take(MAX_GROUPS) {
        groups.push(group.parse().ok()?);
    }
    Some(FsCredentials { uid, gid, groups })
}

/// Where a path starts and what it may not leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The base directory is the root: `/` and `..` stay inside it, as for the
    /// process whose `/proc/<pid>/root` it is (`RESOLVE_IN_ROOT`).
    InRoot,
    /// Relative to the base directory and never out of it (`RESOLVE_BENEATH`): a
    /// relative operand against a cwd whose way up is not known to be the process's.
    Beneath,
}

/// A path resolved to an `O_PATH` fd, and how.
#[derive(Debug)]
pub struct Resolved {
    pub fd: OwnedFd,
    /// A symbolic link was followed on the way.
    pub through_symlink: bool,
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dirfd, path, how)` (Linux >= 5.6). ENOSYS on older kernels.
fn openat2(dirfd: RawFd, path: &CString, flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: path is NUL-terminated, how is a valid open_how of the size passed;
    // the returned fd is owned here.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: fd was just returned by openat2 and is not owned by anything else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Resolves `path` from `base` to an `O_PATH` fd: no magic links, symlinks only when
/// `follow_symlinks` (and then `through_symlink` says whether one was taken). Runs
/// with the calling thread's fs credentials. Never opens the file for I/O.
pub fn resolve(
    base: RawFd,
    path: &[u8],
    anchor: Anchor,
    follow_symlinks: bool,
) -> io::Result<Resolved> {
    if path.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let path = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let anchor_flag = match anchor {
        Anchor::InRoot => libc::RESOLVE_IN_ROOT,
        Anchor::Beneath => libc::RESOLVE_BENEATH,
    };
    let strict = anchor_flag | libc::RESOLVE_NO_MAGICLINKS;
    match openat2(
        base,
        &path,
        libc::O_PATH,
        strict | libc::RESOLVE_NO_SYMLINKS,
    ) {
        Ok(fd) => Ok(Resolved {
            fd,
            through_symlink: false,
        }),
        Err(e) if follow_symlinks && e.raw_os_error() == Some(libc::ELOOP) => {
            openat2(base, &path, libc::O_PATH, strict).map(|fd| Resolved {
                fd,
                through_symlink: true,
            })
        }
        Err(e) => Err(e),
    }
}

/// `fstat` of an fd (an `O_PATH` fd included).
pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data; fstat fills it or fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is valid for writes; fd is an open descriptor.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// A name for a non-regular file type, for the `error` column.
pub fn file_kind(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "regular file",
        libc::S_IFDIR => "directory",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        libc::S_IFIFO => "FIFO",
        libc::S_IFSOCK => "socket",
        libc::S_IFLNK => "symbolic link",
        _ => "special file",
    }
}

/// Opens an `O_PATH` fd for reading, only when it is a regular file: `fstat` first,
/// then a reopen through `/proc/self/fd/N` (`O_RDONLY | O_NONBLOCK | O_NOCTTY`), which
/// checks read permission with the calling thread's fs credentials. The reopened fd
/// must be the same inode.
pub fn reopen_regular(opath: &OwnedFd) -> io::Result<File> {
    let st = fstat(opath.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::other(format!(
            "not a regular file ({}): not opened",
            file_kind(st.st_mode)
        )));
    }
    let proc_path = CString::new(format!("/proc/self/fd/{}", opath.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fd = crate::platform::linux::procfs::open_at(
        libc::AT_FDCWD,
        &proc_path,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
    )?;
    let again = fstat(fd.as_raw_fd())?;
    if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
        return Err(io::Error::other("file changed while it was opened"));
    }
    Ok(File::from(fd))
}

/// Whether [`assume`] changes the calling thread's credentials (root scanner,
/// non-root user).
fn changes_credentials(credentials: &FsCredentials) -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    euid == 0 && credentials.uid != 0
}

/// Takes on `credentials` for file-system checks on the calling thread. Only the
/// fs ids and the thread's own group list change (raw syscalls: glibc's
/// `setgroups` would change every thread). A scanner that is not root keeps its own
/// rights, which never exceed its user's.
fn assume(credentials: &FsCredentials) -> io::Result<()> {
    if !changes_credentials(credentials) {
        return Ok(());
    }
    let groups: Vec<libc::gid_t> = credentials.groups.clone();
    // SAFETY: groups is valid for groups.len() gid_t values; the raw syscall
    // changes only this thread's supplementary groups.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: setfsgid/setfsuid have no memory-safety preconditions; they change
    // this thread's fs ids only. Called with -1 they report the current id.
    let (gid_now, uid_now) = unsafe {
        libc::setfsgid(credentials.gid);
        libc::setfsuid(credentials.uid);
        (
            libc::setfsgid(u32::MAX) as u32,
            libc::setfsuid(u32::MAX) as u32,
        )
    };
    if (uid_now, gid_now) != (credentials.uid, credentials.gid) {
        return Err(io::Error::other(
            "could not take on the process's fs credentials",
        ));
    }
    Ok(())
}

/// Longest one read pass over a user-named file (hashing, a config read) may take:
/// a FUSE server or a hung NFS hard mount can block `read()` forever, and a blocked
/// syscall cannot be interrupted, so the caller stops waiting instead.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a hash may keep reading while bytes still flow (a big executable on a
/// loaded host); a stall of `READ_TIMEOUT` ends it sooner.
pub const HASH_WAIT_CAP: Duration = Duration::from_secs(60);

/// Most worker threads left blocked on a file system that does not answer; past
/// this no new worker is started (those reads are `unknown`), so stuck threads
/// cannot pile up without end.
pub const MAX_ABANDONED_WORKERS: usize = 8;

/// How long a device (`st_dev`) whose read got stuck is refused at once.
pub const STUCK_DEVICE_QUARANTINE: Duration = Duration::from_secs(600);

/// Devices tracked as stuck before the table starts over (bounded memory).
const MAX_STUCK_DEVICES: usize = 256;

static ABANDONED_WORKERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

static STUCK_DEVICES: std::sync::Mutex<Vec<(u64, std::time::Instant)>> =
    std::sync::Mutex::new(Vec::new());

/// Workers currently abandoned (blocked in a syscall nobody waits for).
pub fn abandoned_workers() -> usize {
    ABANDONED_WORKERS.load(std::sync::atomic::Ordering::SeqCst)
}

fn device_is_stuck(device: u64, now: std::time::Instant) -> bool {
    let mut stuck = STUCK_DEVICES.lock().unwrap_or_else(|p| p.into_inner());
    stuck.retain(|(_, since)| now.saturating_duration_since(*since) < STUCK_DEVICE_QUARANTINE);
    stuck.iter().any(|(d, _)| *d == device)
}

fn mark_device_stuck(device: u64, now: std::time::Instant) {
    let mut stuck = STUCK_DEVICES.lock().unwrap_or_else(|p| p.into_inner());
    if stuck.len() >= MAX_STUCK_DEVICES {
        stuck.clear();
    }
    stuck.retain(|(d, _)| *d != device);
    stuck.push((device, now));
}

/// Work handed to a worker thread.
type Job = Box<dyn FnOnce() + Send>;

/// Idle worker threads kept for reads that take on no credentials (the scanner's
/// own: the stat and hash of an executable). A new thread per read cost more than
/// the read. A thread that took on a user's credentials is never reused.
const MAX_IDLE_WORKERS: usize = 4;

static IDLE_WORKERS: std::sync::Mutex<Vec<std::sync::mpsc::Sender<Job>>> =
    std::sync::Mutex::new(Vec::new());

/// Runs `job` on an idle reusable worker, or on a new thread (which, when
/// `reusable`, then waits for more work while fewer than `MAX_IDLE_WORKERS` wait).
fn run_on_worker(reusable: bool, job: Job) -> io::Result<()> {
    let mut job = job;
    if reusable {
        loop {
            let idle = IDLE_WORKERS.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(worker) = idle else { break };
            match worker.send(job) {
                Ok(()) => return Ok(()),
                // That worker ended (a panic in its last job): try another.
                Err(std::sync::mpsc::SendError(back)) => job = back,
            }
        }
    }
    std::thread::Builder::new()
        .name("an1256-userfile".into())
        .spawn(move || {
            job();
            if !reusable {
                return;
            }
            let (sender, receiver) = std::sync::mpsc::channel::<Job>();
            loop {
                {
                    let mut idle = IDLE_WORKERS.lock().unwrap_or_else(|p| p.into_inner());
                    if idle.len() >= MAX_IDLE_WORKERS {
                        return;
                    }
                    idle.push(sender.clone());
                }
                match receiver.recv() {
                    Ok(next) => next(),
                    Err(_) => return,
                }
            }
        })
        .map(drop)
}

const WORKER_RUNNING: u8 = 0;
const WORKER_DONE: u8 = 1;
const WORKER_ABANDONED: u8 = 2;

/// Bytes a worker has got through so far; the waiting caller reads it to tell a
/// slow but moving read (a big file on a loaded host) from one that is stuck.
#[derive(Clone, Debug, Default)]
pub struct Progress(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Progress {
    fn advance(&self, bytes: usize) {
        self.0.fetch_add(
            u64::try_from(bytes).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `reader`, counting every byte it returns.
    pub fn reader<R: Read>(&self, reader: R) -> ProgressReader<R> {
        ProgressReader {
            inner: reader,
            progress: self.clone(),
        }
    }
}

/// A reader that reports what it reads to a `Progress`.
pub struct ProgressReader<R> {
    inner: R,
    progress: Progress,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n);
        Ok(n)
    }
}

/// Runs `work` on a new thread that carries `credentials` (or the scanner's own when
/// `None`) and the caller's current deadline, waiting at most `timeout`. A thread
/// that does not answer in time is abandoned (it cannot be killed) and counted
/// until it finishes; while `MAX_ABANDONED_WORKERS` are abandoned no new one
/// starts. With `device`, a timeout also refuses that device for
/// `STUCK_DEVICE_QUARANTINE`, and a refused device is not read at all.
pub fn on_worker<T: Send + 'static>(
    credentials: Option<FsCredentials>,
    device: Option<u64>,
    timeout: Duration,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    on_progressing_worker(credentials, device, timeout, timeout, move |_| work())
}

/// `on_worker` for long reads that report `Progress`: the caller waits while the
/// worker keeps moving, up to `cap` in all, and gives up after `stall` without a
/// byte. A stall, or reading on past `cap`, marks the device stuck; a slow but
/// moving read within `cap` does not: a big file hashed slowly on a loaded host
/// (which an unprivileged user can arrange) must not quarantine the whole file
/// system it sits on.
pub fn on_progressing_worker<T: Send + 'static>(
    credentials: Option<FsCredentials>,
    device: Option<u64>,
    stall: Duration,
    cap: Duration,
    work: impl FnOnce(Progress) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    use std::sync::atomic::{AtomicU8, Ordering};
    let now = std::time::Instant::now();
    if let Some(device) = device.filter(|d| device_is_stuck(*d, now)) {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "read refused: a read on this file system (device {device:#x}) timed out earlier; file system not answering"
            ),
        ));
    }
    let abandoned = abandoned_workers();
    if abandoned >= MAX_ABANDONED_WORKERS {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "read refused: {abandoned} reads are already stuck on file systems not answering"
            ),
        ));
    }
    let deadline = crate::deadline::Deadline::current();
    let state = std::sync::Arc::new(AtomicU8::new(WORKER_RUNNING));
    let worker_state = state.clone();
    let progress = Progress::default();
    let worker_progress = progress.clone();
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    let reusable = credentials.as_ref().is_none_or(|c| !changes_credentials(c));
    run_on_worker(
        reusable,
        Box::new(move || {
            let _deadline = deadline.enter();
            let result = match credentials.as_ref().map(assume).unwrap_or(Ok(())) {
                Ok(()) => work(worker_progress),
                Err(e) => Err(e),
            };
            let _ = sender.send(result);
            if worker_state.swap(WORKER_DONE, Ordering::SeqCst) == WORKER_ABANDONED {
                ABANDONED_WORKERS.fetch_sub(1, Ordering::SeqCst);
            }
        }),
    )?;
    let cap = cap.max(stall);
    let mut seen = progress.get();
    let why = loop {
        // The query's deadline bounds the wait too; a wait cut short by it, or by
        // `cap` while bytes still flow, says nothing about the file system: only a
        // full `stall` without progress marks the device.
        let waited = now.elapsed();
        let left_in_cap = cap.saturating_sub(waited);
        let slice = deadline
            .remaining()
            .map_or(stall, |left| left.min(stall))
            .min(left_in_cap);
        match receiver.recv_timeout(slice) {
            Ok(result) => return result,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other("read worker ended without an answer"))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        let moved = progress.get();
        if deadline.expired() {
            break Stop::Deadline;
        }
        if now.elapsed() >= cap {
            break if moved != seen {
                Stop::Cap
            } else {
                Stop::Stalled
            };
        }
        if moved == seen && slice >= stall {
            break Stop::Stalled;
        }
        seen = moved;
    };
    // Counted before it is marked, so the worker never subtracts first.
    ABANDONED_WORKERS.fetch_add(1, Ordering::SeqCst);
    if state
        .compare_exchange(
            WORKER_RUNNING,
            WORKER_ABANDONED,
            Ordering::SeqCst,
            Ordering::SeqCst,
        )
        .is_err()
    {
        // It finished just now: its answer is in the channel.
        ABANDONED_WORKERS.fetch_sub(1, Ordering::SeqCst);
        if let Ok(result) = receiver.recv() {
            return result;
        }
    }
    let waited = now.elapsed().as_millis();
    let message = match why {
        Stop::Stalled => {
            if let Some(device) = device {
                mark_device_stuck(device, now);
            }
            format!(
                "read timed out: file system not answering (no progress for {} ms)",
                stall.as_millis()
            )
        }
        Stop::Deadline => format!("read timed out: the query's deadline passed after {waited} ms"),
        Stop::Cap => {
            // Its worker may read on for as long as the file system trickles: one
            // such mount must not pin a worker per file, so it is refused too.
            if let Some(device) = device {
                mark_device_stuck(device, now);
            }
            format!("read timed out: still reading after {waited} ms; given up")
        }
    };
    Err(io::Error::new(io::ErrorKind::TimedOut, message))
}

/// Why a wait on a worker ended without its answer.
enum Stop {
    Stalled,
    Deadline,
    Cap,
}

/// `on_worker` for opening: no device known yet.
pub fn as_user<T: Send + 'static>(
    credentials: Option<FsCredentials>,
    timeout: Duration,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    on_worker(credentials, None, timeout, work)
}

/// At most `max_entries` names in the directory `path` names from `base`, opened
/// and listed as the user `credentials` would (resolved within `anchor`, symlinks
/// followed there); `.` and `..` left out, in no particular order.
pub fn list_dir(
    credentials: Option<FsCredentials>,
    base: &OwnedFd,
    path: &[u8],
    anchor: Anchor,
    max_entries: usize,
) -> io::Result<Vec<String>> {
    let base = base.try_clone()?;
    let path = path.to_vec();
    as_user(credentials, OPEN_TIMEOUT, move || {
        let resolved = resolve(base.as_raw_fd(), &path, anchor, true)?;
        // Opened through the O_PATH fd with the user's credentials: listing needs
        // their read permission on the directory, never root's.
        // SAFETY: resolved.fd is an open O_PATH fd; "." is NUL-terminated.
        let fd = unsafe {
            libc::openat(
                resolved.fd.as_raw_fd(),
                c".".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and is owned here.
        let dir = super::procfs::DirStream::new(unsafe { OwnedFd::from_raw_fd(fd) })?;
        let mut names = Vec::new();
        dir.for_each_name(|name| {
            let name = name.to_bytes();
            if names.len() < max_entries && name != b"." && name != b".." {
                if let Ok(name) = std::str::from_utf8(name) {
                    names.push(name.to_owned());
                }
            }
            names.len() < max_entries
        })?;
        Ok(names)
    })
}

/// A regular file opened for reading as a user would.
#[derive(Debug)]
pub struct UserFile {
    pub file: File,
    /// The `O_PATH` fd it was reached by (for further `fstat`/`readlink`).
    pub path_fd: OwnedFd,
    pub through_symlink: bool,
    /// The device it is on (`st_dev`), for `on_worker`.
    pub device: u64,
}

/// Resolves and opens `path` for reading with `credentials`: `resolve`, then
/// `reopen_regular`, all on a worker thread. `base` (duplicated for the worker) is
/// where the path starts; `None` is the scanner's own root.
pub fn open_regular(
    credentials: Option<FsCredentials>,
    base: Option<&OwnedFd>,
    path: &[u8],
    anchor: Anchor,
    follow_symlinks: bool,
) -> io::Result<UserFile> {
    let base = match base {
        Some(fd) => Some(fd.try_clone()?),
        None => None,
    };
    let path = path.to_vec();
    as_user(credentials, OPEN_TIMEOUT, move || {
        // No base: the scanner's own root (openat2 would take AT_FDCWD as the root).
        let base = match base {
            Some(fd) => fd,
            None => crate::platform::linux::procfs::open_at(
                libc::AT_FDCWD,
                c"/",
                libc::O_PATH | libc::O_DIRECTORY,
            )?,
        };
        let resolved = resolve(base.as_raw_fd(), &path, anchor, follow_symlinks)?;
        let file = reopen_regular(&resolved.fd)?;
        let device = fstat(file.as_raw_fd())?.st_dev;
        Ok(UserFile {
            file,
            path_fd: resolved.fd,
            through_symlink: resolved.through_symlink,
            device,
        })
    })
}

/// Reopens an `O_PATH` fd the caller already holds (a process's open script fd) for
/// reading with `credentials`.
pub fn reopen_as(credentials: Option<FsCredentials>, opath: &OwnedFd) -> io::Result<File> {
    let opath = opath.try_clone()?;
    as_user(credentials, OPEN_TIMEOUT, move || reopen_regular(&opath))
}

/// Reads at most `limit` bytes of a user-named regular file (configs): anchored at
/// the scanner's own root when `base` is `None`, symlinks followed (as the program
/// reading it would), with `credentials`.
pub fn read_regular(
    credentials: Option<FsCredentials>,
    base: Option<&OwnedFd>,
    path: &[u8],
    anchor: Anchor,
    limit: u64,
) -> io::Result<Vec<u8>> {
    let opened = open_regular(credentials, base, path, anchor, true)?;
    // Read on a worker too: a FUSE or hung NFS file can block `read()` forever.
    let file = opened.file;
    on_worker(None, Some(opened.device), READ_TIMEOUT, move || {
        let mut bytes = Vec::new();
        file.take(limit).read_to_end(&mut bytes)?;
        Ok(bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_does_not_answer_is_abandoned_and_its_device_refused() {
        let device = u64::MAX - 11;
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let started = std::time::Instant::now();
        let stuck = on_worker(None, Some(device), Duration::from_millis(100), move || {
            let _ = blocked.recv();
            Ok(1)
        });
        let error = stuck.unwrap_err().to_string();
        assert!(error.contains("file system not answering"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let refused = on_worker(None, Some(device), Duration::from_secs(5), || Ok(2))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("read refused"), "{refused}");
        assert_eq!(
            on_worker(None, Some(device - 1), Duration::from_secs(5), || Ok(3)).unwrap(),
            3,
            "other devices are read"
        );
        // The abandoned worker ends once its syscall returns, and is no longer counted.
        drop(release);
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while abandoned_workers() > 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(abandoned_workers(), 0);
    }

    #[test]
    fn a_slow_read_that_keeps_moving_is_waited_for_and_never_quarantines_its_device() {
        let device = u64::MAX - 21;
        let stall = Duration::from_millis(100);
        // Eight slow chunks over ~0.4 s: four stall windows, bytes in each one.
        let slow = on_progressing_worker(None, Some(device), stall, Duration::from_secs(5), |p| {
            let chunks = std::iter::repeat_n(&[7u8; 4][..], 8).collect::<Vec<_>>();
            let mut total = 0;
            for chunk in chunks {
                std::thread::sleep(Duration::from_millis(50));
                total += p.reader(chunk).read(&mut [0u8; 4])?;
            }
            Ok(total)
        });
        assert_eq!(slow.unwrap(), 32);
        assert_eq!(
            on_worker(None, Some(device), stall, || Ok(1)).unwrap(),
            1,
            "not refused"
        );

        // Still moving when the cap comes: given up, and that device refused (its
        // worker reads on; one trickling mount must not pin a worker per file).
        let endless =
            on_progressing_worker(None, Some(device), stall, Duration::from_millis(300), |p| {
                for _ in 0..40 {
                    std::thread::sleep(Duration::from_millis(20));
                    p.reader(&[1u8][..]).read_exact(&mut [0u8; 1])?;
                }
                Ok(0)
            });
        let error = endless.unwrap_err().to_string();
        assert!(error.contains("still reading"), "{error}");
        assert!(
            on_worker(None, Some(device), stall, || Ok(2)).is_err(),
            "refused: its worker reads on"
        );
        let device = device - 1;

        // Moved once, then stuck: a stall, and the device is refused.
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let stuck = on_progressing_worker(
            None,
            Some(device),
            stall,
            Duration::from_secs(5),
            move |p| {
                p.reader(&[1u8][..]).read_exact(&mut [0u8; 1])?;
                let _ = blocked.recv();
                Ok(0)
            },
        );
        let error = stuck.unwrap_err().to_string();
        assert!(error.contains("no progress"), "{error}");
        assert!(
            on_worker(None, Some(device), stall, || Ok(3)).is_err(),
            "refused"
        );
        drop(release);
    }

    #[test]
    fn fs_credentials_come_from_the_fs_fields() {
        let status =
            "Name:\tx\nUid:\t1000\t1001\t1002\t1003\nGid:\t50\t51\t52\t53\nGroups:\t4 24 27 \n";
        assert_eq!(
            parse_fs_credentials(status),
            Some(FsCredentials {
                uid: 1003,
                gid: 53,
                groups: vec![4, 24, 27]
            })
        );
        let no_groups = "Uid:\t1\t1\t1\t1\nGid:\t2\t2\t2\t2\nGroups:\t\n";
        assert_eq!(
            parse_fs_credentials(no_groups).map(|c| c.groups),
            Some(vec![])
        );
        assert_eq!(parse_fs_credentials("Uid:\t1\t1\t1\n"), None);
        assert_eq!(
            parse_fs_credentials("Uid:\t1\t1\t1\t1\nGid:\t2\t2\t2\t2\nGroups:\tx\n"),
            None
        );
    }

    #[test]
    fn write_permission_follows_owner_group_and_other_bits() {
        let user = FsCredentials {
            uid: 1000,
            gid: 1000,
            groups: vec![27],
        };
        assert!(user.may_write(1000, 0, 0o500), "an owner can chmod");
        assert!(!user.may_write(0, 0, 0o755));
        assert!(
            user.may_write(0, 0, 0o1777),
            "sticky /tmp is still writable"
        );
        assert!(user.may_write(0, 27, 0o775));
        assert!(!user.may_write(0, 27, 0o757), "group bits rule a member");
        // Another group's write bit may be an ACL mask over a named-user entry.
        assert!(user.may_write(0, 5, 0o775));
        assert!(!user.may_write(0, 5, 0o755));
        let root = FsCredentials::default();
        assert!(!root.may_write(0, 0, 0o755), "root's own directories");
        assert!(root.may_write(0, 0, 0o775), "group root: maybe an ACL mask");
        assert!(root.may_write(5, 0, 0o755), "owned by a user");
        assert!(root.may_write(0, 5, 0o775), "writable by a user group");
        assert!(root.may_write(0, 0, 0o1777), "/tmp");
    }

    #[test]
    fn only_regular_files_are_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x");
        std::fs::write(&file, b"hello").unwrap();
        let fifo = dir.path().join("fifo");
        let c = CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: c is a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();

        let read = |p: &std::path::Path| {
            read_regular(
                None,
                None,
                p.to_str().unwrap().as_bytes(),
                Anchor::InRoot,
                3,
            )
        };
        assert_eq!(read(&file).unwrap(), b"hel");
        assert_eq!(read(&link).unwrap(), b"hel");
        let fifo_error = read(&fifo).unwrap_err().to_string();
        assert!(fifo_error.contains("FIFO"), "{fifo_error}");
        let dev = read(std::path::Path::new("/dev/null"))
            .unwrap_err()
            .to_string();
        assert!(dev.contains("character device"), "{dev}");

        let opened = open_regular(
            None,
            None,
            link.to_str().unwrap().as_bytes(),
            Anchor::InRoot,
            false,
        );
        assert_eq!(
            opened.unwrap_err().raw_os_error(),
            Some(libc::ELOOP),
            "no symlinks unless asked"
        );
        let through = open_regular(
            None,
            None,
            link.to_str().unwrap().as_bytes(),
            Anchor::InRoot,
            true,
        )
        .unwrap();
        assert!(through.through_symlink);
    }

    #[test]
    fn in_root_keeps_dotdot_and_absolute_links_inside_the_base() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), b"inner").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.path().join("abs")).unwrap();
        let base: OwnedFd = File::open(root.path()).unwrap().into();
        let read = |p: &str, anchor| read_regular(None, Some(&base), p.as_bytes(), anchor, 64);
        assert_eq!(read("/etc/passwd", Anchor::InRoot).unwrap(), b"inner");
        assert_eq!(read("/../../etc/passwd", Anchor::InRoot).unwrap(), b"inner");
        assert_eq!(read("abs", Anchor::InRoot).unwrap(), b"inner");
        assert!(read("../etc/passwd", Anchor::Beneath).is_err());
        assert_eq!(read("etc/passwd", Anchor::Beneath).unwrap(), b"inner");
    }
}
