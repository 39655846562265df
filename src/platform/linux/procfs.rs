//! Per-process reads under `/proc/<pid>`, all made through one held directory fd so
//! that a pid reused mid-read can never mix two processes (after the process exits,
//! every `openat`/`readlinkat` on the old dirfd fails with ESRCH/ENOENT).
//! Also the pure parsers for `stat`, `status` and `/proc/stat`'s boot time.

use crate::model::Pid;
use crate::platform::HostError;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

/// Upper bound for `cmdline` and `environ` reads.
pub const MAX_ARGS_BYTES: usize = 1024 * 1024;
/// Upper bound for `maps` reads (a very large process has a few MiB of maps).
pub const MAX_MAPS_BYTES: usize = 16 * 1024 * 1024;
/// Upper bound for small text files (`stat`, `status`).
pub const MAX_SMALL_BYTES: usize = 64 * 1024;

/// `PF_KTHREAD` in the stat `flags` field: kernel threads have no executable.
const PF_KTHREAD: u64 = 0x0020_0000;

/// The most threads of one process looked at for fd tables of their own.
const MAX_THREADS_FOR_FD_TABLES: usize = 16_384;
/// The most distinct fd tables compared against: beyond that, every further
/// thread's table is walked without comparing, each fd charged to its user's
/// budget. Bounds the `kcmp` calls one process's threads can cause to
/// threads x this (16,384 x 8: ~60 ms).
const MAX_DISTINCT_FD_TABLES: usize = 8;

/// `kcmp(KCMP_FILES)`: `Ok(true)` when both tasks share one fd table, an error
/// when the kernel cannot say (no `CONFIG_KCMP`, a task gone, not permitted).
/// Not permitted (a task holding capabilities the scanner lacks) also means its
/// fds cannot be read: `/proc/<pid>/task/<tid>/fd` needs the same access.
fn same_fd_table(a: Pid, b: Pid) -> Result<bool, io::Error> {
    const KCMP_FILES: libc::c_long = 2;
    // SAFETY: kcmp takes two pids, a type and two unused words; no pointers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            libc::c_long::from(a),
            libc::c_long::from(b),
            KCMP_FILES,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    match rc {
        0 => Ok(true),
        1 | 2 => Ok(false),
        _ => Err(io::Error::last_os_error()),
    }
}

/// An open `/proc/<pid>` directory.
///
/// When the main thread has exited (a zombie leader) while other threads run on,
/// `/proc/<pid>` shows an empty `fd`, `cmdline` and `maps` and no `exe`, `cwd`,
/// `root`, `ns/*` or `environ`, though the process still holds its sockets. A live
/// thread's `/proc/<pid>/task/<tid>` has the same entries. Looking for one costs a
/// `stat` read, so it is done only when an entry comes back empty or gone (or a
/// `stat`/`status` read shows the leader a zombie); from then on every read goes
/// through that thread's directory.
pub struct ProcDir {
    fd: OwnedFd,
    pid: Pid,
    /// Set once the leader was checked: a live thread's directory when the leader
    /// is a zombie, else `None` (reads stay on `fd`).
    thread: OnceLock<Option<OwnedFd>>,
}

/// Maps an errno from a whole-process operation to the host error a caller skips on.
pub fn process_error(pid: Pid, err: &io::Error) -> HostError {
    match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => HostError::Vanished(pid),
        Some(libc::EACCES) | Some(libc::EPERM) => HostError::PermissionDenied(pid),
        _ => HostError::Other(format!("process {pid}: {err}")),
    }
}

/// True for the errors that mean "the process is gone".
pub fn is_vanished(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH))
}

fn cstring(text: &str) -> io::Result<CString> {
    CString::new(text).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `openat(dirfd, name, flags | O_CLOEXEC)`.
pub fn open_at(dirfd: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: name is a valid NUL-terminated string; the returned fd is owned here.
    let fd = unsafe { libc::openat(dirfd, name.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by openat and is not owned by anything else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `readlinkat` into a caller buffer; returns the length. A target longer than the
/// buffer is reported as ENAMETOOLONG rather than silently truncated.
pub fn read_link_into(dirfd: RawFd, name: &CStr, buffer: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buffer is valid for buffer.len() bytes; name is NUL-terminated.
    let n = unsafe {
        libc::readlinkat(
            dirfd,
            name.as_ptr(),
            buffer.as_mut_ptr().cast::<libc::c_char>(),
            buffer.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    if n >= buffer.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    Ok(n)
}

/// Reads at most `limit` bytes of the entry `name` under `dirfd`.
fn read_bounded_at(dirfd: RawFd, name: &CStr, limit: usize) -> io::Result<Vec<u8>> {
    read_bounded(open_at(dirfd, name, libc::O_RDONLY)?, limit)
}

/// Whether a read of the entry returns less than asked only at its end, so no
/// second read is needed to see the end. `environ`: the kernel copies the area
/// page by page up to its end within one read, and a page it cannot copy fails
/// the whole read (nothing of it is returned), so a short read is the end.
/// `stat`: one record (a `single_open` seq file, shown whole into a buffer
/// grown to fit, then copied as far as the read asks). Not `cmdline` (a process
/// may rewrite its argv area) nor seq files of many records (`maps`), which may
/// return a record at a time.
fn ends_at_first_short_read(name: &CStr) -> bool {
    matches!(name.to_bytes(), b"environ" | b"stat")
}

/// Reads at most `limit` bytes of the entry `name` of `dirfd`, with one read
/// where a short read is the end (`ends_at_first_short_read`).
fn read_entry_at(dirfd: RawFd, name: &CStr, limit: usize) -> io::Result<Vec<u8>> {
    if ends_at_first_short_read(name) {
        read_until_short(open_at(dirfd, name, libc::O_RDONLY)?, limit)
    } else {
        read_bounded_at(dirfd, name, limit)
    }
}

/// The thread ids of process `pid` in order; `None` when they cannot be listed
/// or number over [`MAX_THREADS_FOR_FD_TABLES`] (then nothing can be compared).
pub fn thread_ids(pid: u32) -> Option<Vec<u32>> {
    use std::os::unix::fs::MetadataExt;
    let task = format!("/proc/{pid}/task");
    // The link count of `task` is 2 + the group's thread count (every thread
    // not yet reaped, as the listing gives them). One thread is the leader,
    // listed while its group lives: one `statx` instead of a listing's five
    // calls (the watch checks each watched process so every second).
    if std::fs::metadata(&task).ok()?.nlink() == 3 {
        return Some(vec![pid]);
    }
    let entries = std::fs::read_dir(&task).ok()?;
    let mut tids = Vec::new();
    for entry in entries {
        if tids.len() == MAX_THREADS_FOR_FD_TABLES {
            return None;
        }
        if let Some(tid) = entry
            .ok()?
            .file_name()
            .to_str()
            .and_then(|n| n.parse().ok())
        {
            tids.push(tid);
        }
    }
    tids.sort_unstable();
    Some(tids)
}

/// The first read of [`read_until_short`]: `environ` and `stat` mostly fit.
pub const FIRST_READ: usize = 16 * 1024;

/// Reads at most `limit` bytes of an open file whose reads return less than
/// asked only at its end (see `ends_at_first_short_read`).
fn read_until_short(file: OwnedFd, limit: usize) -> io::Result<Vec<u8>> {
    thread_local! {
        // The first read lands here: zeroing 16 KiB for each of a scan's
        // hundreds of `stat` and `environ` reads (a few hundred bytes each)
        // was most of their user time.
        static FIRST: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; FIRST_READ]);
    }
    let mut file = File::from(file);
    let room = limit.min(FIRST_READ);
    let first = FIRST.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let buffer = scratch.get_mut(..room).unwrap_or_default();
        loop {
            match file.read(buffer) {
                Ok(n) => return Ok(buffer.get(..n).unwrap_or_default().to_vec()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    })?;
    if first.len() < room || room == 0 {
        return Ok(first);
    }
    let mut data = first;
    let mut chunk = FIRST_READ.saturating_mul(2);
    loop {
        let room = limit.saturating_sub(data.len()).min(chunk);
        if room == 0 {
            return Ok(data);
        }
        let start = data.len();
        data.resize(start + room, 0);
        let read = file.read(data.get_mut(start..).unwrap_or_default());
        match read {
            Ok(n) => {
                data.truncate(start + n);
                if n < room {
                    return Ok(data);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => data.truncate(start),
            Err(e) => return Err(e),
        }
        chunk = chunk.saturating_mul(2);
    }
}

/// Reads at most `limit` bytes of an open file.
pub fn read_bounded(file: OwnedFd, limit: usize) -> io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(limit.min(16 * 1024));
    File::from(file).take(limit as u64).read_to_end(&mut data)?;
    Ok(data)
}

/// The state letter of `stat` text (`comm` may hold spaces and parentheses, so the
/// state is read after the last `)`).
fn stat_state(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat.get(close + 2).copied()
}

/// `PF_EXITING` in the stat `flags` field: the task has begun to exit.
const PF_EXITING: u64 = 0x4;

/// Whether `stat` text shows a task that has begun to exit: a zombie or dead
/// state, or `PF_EXITING` in its flags; unreadable text counts as exiting.
fn stat_says_exiting(stat: &[u8]) -> bool {
    let text = String::from_utf8_lossy(stat);
    match parse_stat(&text) {
        Some(stat) => matches!(stat.state, 'Z' | 'X' | 'x') || stat.flags & PF_EXITING != 0,
        None => true,
    }
}

/// True when `status` text says the task is a zombie (`State:\tZ (zombie)`).
fn status_says_zombie(status: &[u8]) -> bool {
    status
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"State:"))
        .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"Z"))
}

impl ProcDir {
    /// Opens `/proc/<pid>`; ENOENT -> `Vanished`, EACCES -> `PermissionDenied`.
    /// Whether the leader has exited is looked at only when a read needs it.
    pub fn open(pid: Pid) -> Result<ProcDir, HostError> {
        let path = cstring(&format!("/proc/{pid}")).map_err(|e| process_error(pid, &e))?;
        open_at(libc::AT_FDCWD, &path, libc::O_RDONLY | libc::O_DIRECTORY)
            .map(|fd| ProcDir {
                fd,
                pid,
                thread: OnceLock::new(),
            })
            .map_err(|e| process_error(pid, &e))
    }

    /// After a read of the leader came back empty or gone: when the leader is a
    /// zombie and a live thread exists, moves every later read to that thread and
    /// returns true (read again). False when reads already go to a thread, or the
    /// leader was checked before, or it is not a zombie, or no thread lives.
    pub fn switch_to_live_thread(&self) -> bool {
        if self.thread.get().is_some() {
            return false;
        }
        self.thread
            .get_or_init(|| {
                if self.leader_is_zombie() {
                    self.live_thread()
                } else {
                    None
                }
            })
            .is_some()
    }

    /// Runs `read` through this directory and once more through a live thread's
    /// when the first answer is one an exited leader gives (`empty`, or a
    /// vanished error) and the leader has exited.
    fn with_leader_fallback<T>(
        &self,
        read: impl Fn(RawFd) -> io::Result<T>,
        empty: impl Fn(&T) -> bool,
    ) -> io::Result<T> {
        let first = read(self.raw_fd());
        let again = match &first {
            Ok(value) => empty(value),
            Err(e) => is_vanished(e),
        };
        if again && self.switch_to_live_thread() {
            return read(self.raw_fd());
        }
        first
    }

    /// Whether the process still runs: its leader, or (a zombie leader) another
    /// of its threads. False when the leader's `stat` cannot be read. Other
    /// threads are counted, not looked for in a `task` listing: a listing misses
    /// threads born after it, and those it holds may be gone when looked at.
    pub fn lives_on(&self) -> bool {
        match read_bounded_at(self.fd.as_raw_fd(), c"stat", 512) {
            Err(_) => false,
            Ok(stat) if stat_state(&stat) != Some(b'Z') => true,
            Ok(_) => self.has_threads_besides_leader(),
        }
    }

    /// Whether the thread group counts a task besides the leader: the link count
    /// of `task` is 2 + the kernel's thread count (one `fstatat`, no listing).
    /// False when it cannot be read (the process is gone).
    pub fn has_threads_besides_leader(&self) -> bool {
        self.task_link_count().is_ok_and(|links| links > 3)
    }

    /// The link count of `task`: 2 + the number of threads the kernel counts
    /// (the leader, a zombie one too, and every thread not yet reaped).
    fn task_link_count(&self) -> io::Result<u64> {
        // SAFETY: an all-zero stat is a valid value for fstatat to overwrite.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: "task" is NUL-terminated and st is a valid out-pointer.
        if unsafe { libc::fstatat(self.fd.as_raw_fd(), c"task".as_ptr(), &mut st, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st.st_nlink)
    }

    /// The leader's state in `stat` is `Z`.
    fn leader_is_zombie(&self) -> bool {
        let Ok(stat) = read_bounded_at(self.fd.as_raw_fd(), c"stat", 512) else {
            return false;
        };
        stat_state(&stat) == Some(b'Z')
    }

    /// A thread of this process other than the exited leader that is not itself
    /// a zombie (at most `MAX_THREADS_LOOKED_AT` are looked at).
    fn live_thread(&self) -> Option<OwnedFd> {
        const MAX_THREADS_LOOKED_AT: usize = 4096;
        let tasks = open_at(
            self.fd.as_raw_fd(),
            c"task",
            libc::O_RDONLY | libc::O_DIRECTORY,
        )
        .ok()?;
        let entries = std::fs::read_dir(format!("/proc/self/fd/{}", tasks.as_raw_fd())).ok()?;
        for entry in entries.take(MAX_THREADS_LOOKED_AT).flatten() {
            let name = entry.file_name();
            let Some(tid) = name.to_str().and_then(|n| n.parse::<Pid>().ok()) else {
                continue;
            };
            if tid == self.pid {
                continue;
            }
            let Ok(name) = cstring(&tid.to_string()) else {
                continue;
            };
            let Ok(fd) = open_at(tasks.as_raw_fd(), &name, libc::O_RDONLY | libc::O_DIRECTORY)
            else {
                continue;
            };
            let alive = read_bounded_at(fd.as_raw_fd(), c"stat", 512)
                .is_ok_and(|stat| !stat_says_exiting(&stat));
            if alive {
                return Some(fd);
            }
        }
        None
    }

    /// Threads whose fd table is not the leader's: a thread that called
    /// `unshare(CLONE_FILES)` holds fds that `/proc/<pid>/fd` never lists (nor
    /// does `ss -p`), only `/proc/<pid>/task/<tid>/fd`. One `fstatat` of `task`
    /// answers for a single-threaded process (its link count is 2 + threads);
    /// otherwise each thread's table is compared with `kcmp(KCMP_FILES)` against
    /// the tables already kept, and a thread with a new one is returned as a
    /// directory of its own. Where `kcmp` cannot answer, the thread is kept:
    /// walking a table twice costs time, missing one hides sockets. The bool is
    /// true when there were more threads than are looked at.
    pub fn threads_with_own_fd_table(&self) -> io::Result<(Vec<ProcDir>, bool)> {
        if self.task_link_count()? <= 3 {
            return Ok((Vec::new(), false));
        }
        let tasks = open_at(
            self.fd.as_raw_fd(),
            c"task",
            libc::O_RDONLY | libc::O_DIRECTORY,
        )?;
        let tasks_fd = tasks.as_raw_fd();
        let mut tids = Vec::new();
        let mut cut = false;
        DirStream::new(tasks.try_clone()?)?.for_each_name(|name| {
            if let Some(tid) = parse_decimal(name.to_bytes()).and_then(|t| Pid::try_from(t).ok()) {
                if tids.len() == MAX_THREADS_FOR_FD_TABLES {
                    cut = true;
                    return false;
                }
                tids.push(tid);
            }
            true
        })?;
        // The leader stands for the table `for_each_fd` walks (an exited
        // leader has none: its live threads then differ from it, and the first
        // of them is walked again; the caller drops duplicate fds).
        let mut kept: Vec<Pid> = vec![self.pid];
        let mut own = Vec::new();
        for tid in tids {
            if tid == self.pid {
                continue;
            }
            if kept.len() <= MAX_DISTINCT_FD_TABLES {
                let mut shared = false;
                for &k in &kept {
                    match same_fd_table(k, tid) {
                        Ok(same) => shared |= same,
                        // Its fds are as unreadable as the comparison: walking
                        // them would only fail once per fd.
                        Err(e) if e.raw_os_error() == Some(libc::EPERM) => shared = true,
                        Err(_) => {}
                    }
                    if shared {
                        break;
                    }
                }
                if shared {
                    continue;
                }
            }
            let Ok(name) = cstring(&tid.to_string()) else {
                continue;
            };
            match open_at(tasks_fd, &name, libc::O_RDONLY | libc::O_DIRECTORY) {
                Ok(fd) => {
                    kept.push(tid);
                    own.push(ProcDir {
                        fd,
                        pid: self.pid,
                        thread: OnceLock::from(None),
                    });
                }
                Err(e) if is_vanished(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((own, cut))
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The same directory on a duplicated fd (for a worker thread).
    pub fn try_clone(&self) -> io::Result<ProcDir> {
        let fd = match self.thread.get() {
            Some(Some(thread)) => thread.try_clone()?,
            _ => self.fd.try_clone()?,
        };
        // A clone of a directory already checked (or moved to a thread) is not
        // checked again; one not yet checked checks its own leader when needed.
        let thread = if self.thread.get().is_some() {
            OnceLock::from(None)
        } else {
            OnceLock::new()
        };
        Ok(ProcDir {
            fd,
            pid: self.pid,
            thread,
        })
    }

    /// The directory reads go through: a live thread's once the leader was found
    /// exited, else `/proc/<pid>`.
    pub fn raw_fd(&self) -> RawFd {
        match self.thread.get() {
            Some(Some(thread)) => thread.as_raw_fd(),
            _ => self.fd.as_raw_fd(),
        }
    }

    /// `/proc/<pid>` itself, whatever thread reads were moved to: for paths that
    /// name a thread (`task/<tid>/fd/<n>`).
    pub fn leader_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Whether the task reads go through (a live thread they were moved to,
    /// else the leader, or for a thread's directory that thread) has begun to
    /// exit, or cannot say: what was listed through it may have been cut short,
    /// or (a zombie leader and no live thread found) nothing was listed at all.
    /// Exiting is told by `PF_EXITING` (set before the task lets go of its fd
    /// table, never cleared), not by the task being gone: an exiting task's
    /// `fd` lists nothing, without an error, while its `stat` still reads.
    pub fn reader_began_exiting(&self) -> bool {
        read_bounded_at(self.raw_fd(), c"stat", MAX_SMALL_BYTES)
            .map_or(true, |stat| stat_says_exiting(&stat))
    }

    /// Reads an entry of the leader itself, at most `limit` bytes, never from
    /// another thread (a zombie leader's `stat` still gives the process's start).
    pub fn read_leader(&self, name: &CStr, limit: usize) -> io::Result<Vec<u8>> {
        read_entry_at(self.fd.as_raw_fd(), name, limit)
    }

    /// The directory of one thread of this process (`task/<tid>`), read as is.
    pub fn thread(&self, tid: Pid) -> io::Result<ProcDir> {
        let name = cstring(&format!("task/{tid}"))?;
        open_at(
            self.fd.as_raw_fd(),
            &name,
            libc::O_RDONLY | libc::O_DIRECTORY,
        )
        .map(|fd| ProcDir {
            fd,
            pid: self.pid,
            thread: OnceLock::from(None),
        })
    }

    /// Opens an entry relative to the process directory.
    pub fn open_entry(&self, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
        self.with_leader_fallback(|dirfd| open_at(dirfd, name, flags), |_| false)
    }

    /// Reads an entry, at most `limit` bytes. A `stat` or `status` that shows the
    /// leader a zombie is read again from a live thread (its uids, its layout).
    pub fn read(&self, name: &CStr, limit: usize) -> io::Result<Vec<u8>> {
        let zombie = |data: &Vec<u8>| match name.to_bytes() {
            b"stat" => data.len() > 1 && stat_state(data) == Some(b'Z'),
            b"status" => status_says_zombie(data),
            _ => data.is_empty(),
        };
        self.with_leader_fallback(|dirfd| read_entry_at(dirfd, name, limit), zombie)
    }

    /// `stat` of what an entry leads to (`fd/0` stats the open file itself).
    pub fn stat_entry(&self, name: &CStr) -> io::Result<libc::stat> {
        self.with_leader_fallback(
            |dirfd| {
                // SAFETY: an all-zero stat is a valid value for fstatat to overwrite.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                // SAFETY: name is NUL-terminated and st is a valid out-pointer.
                let rc = unsafe { libc::fstatat(dirfd, name.as_ptr(), &mut st, 0) };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(st)
            },
            |_| false,
        )
    }

    /// The owner of `/proc/<pid>`: the process's effective uid, or root for a
    /// process that made itself non-dumpable. One `fstat` of the open directory.
    pub fn owner_uid(&self) -> io::Result<u32> {
        // SAFETY: an all-zero stat is a valid value for fstat to overwrite.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: the fd is open for the life of self and st is a valid out-pointer.
        if unsafe { libc::fstat(self.fd.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st.st_uid)
    }

    /// `readlinkat` of an entry into `buffer`, through a live thread when the
    /// leader's link is gone because it exited.
    pub fn read_link_into(&self, name: &CStr, buffer: &mut [u8]) -> io::Result<usize> {
        let first = read_link_into(self.raw_fd(), name, buffer);
        match first {
            Err(e) if is_vanished(&e) && self.switch_to_live_thread() => {
                read_link_into(self.raw_fd(), name, buffer)
            }
            other => other,
        }
    }

    /// Calls `each(fd_dir, fd_number, entry_name)` for every fd of the process
    /// (`fd_dir` is the open `fd` directory the names are relative to); an empty
    /// listing is walked again through a live thread when the leader has exited.
    pub fn for_each_fd(&self, mut each: impl FnMut(RawFd, i64, &CStr)) -> io::Result<()> {
        let mut listed = false;
        {
            let fds = FdDir::open(self)?;
            let fd_dir = fds.raw_fd();
            fds.for_each(|fd, name| {
                listed = true;
                each(fd_dir, fd, name);
            })?;
        }
        if listed || !self.switch_to_live_thread() {
            return Ok(());
        }
        let fds = FdDir::open(self)?;
        let fd_dir = fds.raw_fd();
        fds.for_each(|fd, name| each(fd_dir, fd, name))
    }

    /// Reads a symlink entry (`exe`, `cwd`, `ns/net`) as text (lossy UTF-8).
    pub fn read_link(&self, name: &CStr) -> io::Result<String> {
        let mut buffer = [0u8; 4096];
        let n = self.read_link_into(name, &mut buffer)?;
        Ok(String::from_utf8_lossy(buffer.get(..n).unwrap_or_default()).into_owned())
    }

    /// The network namespace inode from the `ns/net` link (`net:[4026531840]`).
    pub fn net_namespace(&self) -> io::Result<u64> {
        let mut buffer = [0u8; 64];
        let n = self.read_link_into(c"ns/net", &mut buffer)?;
        parse_bracketed_inode(buffer.get(..n).unwrap_or_default(), b"net:[")
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// The executable path with " (deleted)" removed, and whether it was there.
    pub fn executable(&self) -> io::Result<(String, bool)> {
        self.read_link(c"exe").map(|target| strip_deleted(&target))
    }

    /// Reads an entry, at most `limit` bytes, and says whether there was more
    /// (`limit + 1` bytes are asked for, so a cut is never silent).
    pub fn read_capped(&self, name: &CStr, limit: usize) -> io::Result<(Vec<u8>, bool)> {
        let mut data = self.read(name, limit.saturating_add(1))?;
        let truncated = data.len() > limit;
        data.truncate(limit);
        Ok((data, truncated))
    }

    /// NUL-separated byte strings of `cmdline` or `environ`, exactly as the kernel
    /// holds them, bounded by `MAX_ARGS_BYTES`; the flag says they were cut.
    pub fn nul_separated_raw(&self, name: &CStr) -> io::Result<(Vec<Vec<u8>>, bool)> {
        let (data, truncated) = self.read_capped(name, MAX_ARGS_BYTES)?;
        Ok((split_nul_bytes(&data), truncated))
    }
}

/// Bytes as text, invalid UTF-8 replaced; valid bytes are kept without a copy.
pub fn lossy_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
}

/// `/usr/bin/x (deleted)` -> (`/usr/bin/x`, true).
pub fn strip_deleted(target: &str) -> (String, bool) {
    match target.strip_suffix(" (deleted)") {
        Some(path) => (path.to_owned(), true),
        None => (target.to_owned(), false),
    }
}

/// The number inside `prefix<digits>]`, e.g. `socket:[123]` or `net:[4026531840]`.
pub fn parse_bracketed_inode(text: &[u8], prefix: &[u8]) -> Option<u64> {
    let digits = text.strip_prefix(prefix)?.strip_suffix(b"]")?;
    parse_decimal(digits)
}

/// Decimal digits to u64 without allocating; `None` on anything else or overflow.
pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(value)
}

/// Splits NUL-separated data into strings; a trailing NUL ends the last string.
pub fn split_nul(data: &[u8]) -> Vec<String> {
    split_nul_bytes(data)
        .iter()
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

/// Splits NUL-separated data into byte strings; a trailing NUL ends the last one.
pub fn split_nul_bytes(data: &[u8]) -> Vec<Vec<u8>> {
    nul_separated(data).map(<[u8]>::to_vec).collect()
}

/// The NUL-terminated strings of `data`, borrowed (see `split_nul_bytes`).
pub fn nul_separated(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let data = data.strip_suffix(b"\0").unwrap_or(data);
    let mut entries = data.split(|&b| b == 0);
    // An empty area holds no string (split would give one empty one).
    if data.is_empty() {
        entries.next();
    }
    entries
}

/// The fields of `/proc/<pid>/stat` this crate uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub state: char,
    pub parent: Pid,
    pub flags: u64,
    /// Field 22: clock ticks since boot.
    pub start_ticks: u64,
}

impl Stat {
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// Parses `pid (comm) state ppid …`. `comm` may contain spaces and parentheses, so
/// it ends at the LAST `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    // Fields after comm start at field 3 (state).
    let rest: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();
    Some(Stat {
        comm,
        state: field(3)?.chars().next()?,
        parent: field(4)?.parse().ok()?,
        flags: field(9)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
    })
}

/// The size of the process's environment area from `stat` text (fields 50 and
/// 51, `env_end - env_start`, Linux 3.5+): what a whole `environ` read gives.
/// `None` when malformed or hidden (zeros: no access to the process's memory).
pub fn environment_bytes(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let mut fields = stat.get(close + 1..)?.split(|b| b.is_ascii_whitespace());
    let mut rest = fields.by_ref().filter(|f| !f.is_empty());
    // Fields after comm start at field 3 (state): field 50 is the 48th.
    let start = parse_decimal(rest.nth(47)?)?;
    let end = parse_decimal(rest.next()?)?;
    if start == 0 && end == 0 {
        return None;
    }
    end.checked_sub(start)
}

/// `ADDR_NO_RANDOMIZE` in `/proc/<pid>/personality`.
const ADDR_NO_RANDOMIZE: u32 = 0x0040000;

/// `PF_RANDOMIZE` in the stat `flags` field: the kernel set it at this image's
/// exec when it randomized the layout. A later `personality()` call cannot set
/// or clear it, unlike the personality the process shows now.
const PF_RANDOMIZE: u64 = 0x0040_0000;

/// Start time and address-space layout from `stat` text: fields 22, 26-28
/// (code, stack) and 45-51 (data, heap, arguments, environment), for the image
/// whose executable is `executable` (device, inode). `None` when malformed, when
/// the kernel did not randomize this image's layout (field 9 without
/// `PF_RANDOMIZE`: another exec could land in the same layout), or when the
/// layout is hidden (zeros: no access to the process's memory, or a kernel
/// thread).
pub fn parse_stamp(
    pid: Pid,
    text: &str,
    executable: (u64, u64),
) -> Option<crate::platform::process_cache::ProcessStamp> {
    let close = text.rfind(')')?;
    let rest: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    let field = |n: usize| -> Option<u64> { rest.get(n - 3)?.parse().ok() };
    if field(9)? & PF_RANDOMIZE == 0 {
        return None;
    }
    let mut layout = [0u64; 10];
    for (slot, n) in layout
        .iter_mut()
        .zip([26, 27, 28, 45, 46, 47, 48, 49, 50, 51])
    {
        *slot = field(n)?;
    }
    if layout.contains(&0) {
        return None;
    }
    Some(crate::platform::process_cache::ProcessStamp {
        pid,
        start_ticks: field(22)?,
        executable,
        layout,
    })
}

/// Whether the kernel randomizes every process's layout (`randomize_va_space`
/// 2: stack, mmap base, heap), read once.
fn layouts_randomized() -> bool {
    static RANDOMIZED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *RANDOMIZED.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/randomize_va_space")
            .is_ok_and(|v| v.trim() == "2")
    })
}

impl ProcDir {
    /// What tells this process image from any other under its pid (see
    /// `ProcessStamp`). `None` (cache nothing) unless the kernel randomized this
    /// image's layout, and while the process asks for its next exec not to be
    /// (`ADDR_NO_RANDOMIZE`, as `setarch -R` sets it).
    pub fn stamp(&self) -> Option<crate::platform::process_cache::ProcessStamp> {
        if !layouts_randomized() {
            return None;
        }
        // First: an exited leader's `exe` is gone, and the personality and stat
        // below are then read from the live thread that runs.
        let executable = self.executable_file_id().ok()?;
        let personality = self.read(c"personality", 64).ok()?;
        let personality =
            u32::from_str_radix(String::from_utf8_lossy(&personality).trim(), 16).ok()?;
        if personality & ADDR_NO_RANDOMIZE != 0 {
            return None;
        }
        let stat = self.read(c"stat", MAX_SMALL_BYTES).ok()?;
        parse_stamp(self.pid, &String::from_utf8_lossy(&stat), executable)
    }

    /// The running executable's (device, inode), from the inode the kernel
    /// holds: `AT_STATX_DONT_SYNC` asks no FUSE or NFS server, so a server that
    /// never answers cannot hold the caller.
    pub fn executable_file_id(&self) -> io::Result<(u64, u64)> {
        let stx = self.with_leader_fallback(
            |dirfd| {
                // SAFETY: an all-zero statx is a valid value for statx to overwrite.
                let mut stx: libc::statx = unsafe { std::mem::zeroed() };
                // SAFETY: the name is NUL-terminated and stx is a valid out-pointer.
                let rc = unsafe {
                    libc::statx(
                        dirfd,
                        c"exe".as_ptr(),
                        libc::AT_STATX_DONT_SYNC,
                        libc::STATX_INO,
                        &mut stx,
                    )
                };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(stx)
            },
            |_| false,
        )?;
        let device = libc::makedev(stx.stx_dev_major, stx.stx_dev_minor);
        Ok((device, stx.stx_ino))
    }
}

/// The real and effective uids from `/proc/<pid>/status`
/// (`Uid:\treal\teffective\tsaved\tfs`).
pub fn parse_status_uids(text: &str) -> Option<(i64, i64)> {
    let mut uids = text
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_ascii_whitespace()
        .map(|uid| uid.parse().ok());
    Some((uids.next()??, uids.next()??))
}

/// Boot time (`btime` line of `/proc/stat`), seconds since the epoch.
/// Reads the boot time once from `/proc/stat` (its `btime` line, read up to
/// like the `processes` line: past an `intr` line of any size within the cap).
pub fn boot_time() -> Option<i64> {
    i64::try_from(read_stat_value(b"btime")?).ok()
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 nearly everywhere).
pub fn clock_ticks() -> i64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        i64::from(ticks as i32)
    } else {
        100
    }
}

/// Unique file paths of a `maps` listing, in first-seen order (" (deleted)" removed).
pub fn parse_maps_paths(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut paths = Vec::new();
    for line in text.lines() {
        // address perms offset dev inode pathname — pathname may contain spaces.
        let mut rest = line;
        for _ in 0..5 {
            rest = rest.trim_start();
            match rest.find(' ') {
                Some(i) => rest = rest.get(i..).unwrap_or_default(),
                None => {
                    rest = "";
                    break;
                }
            }
        }
        let path = rest.trim_start();
        if !path.starts_with('/') {
            continue;
        }
        let (path, _) = strip_deleted(path);
        if seen.insert(path.clone()) {
            paths.push(path);
        }
    }
    paths
}

/// `struct procmap_query` of `<linux/fs.h>` (Linux 6.11): one VMA per ioctl on an
/// open `/proc/<pid>/maps`.
#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

/// `_IOWR('f', 17, struct procmap_query)`.
const PROCMAP_QUERY: u64 =
    (3 << 30) | ((size_of::<ProcmapQuery>() as u64) << 16) | (0x66 << 8) | 17;
const PROCMAP_QUERY_VMA_EXECUTABLE: u64 = 0x04;
const PROCMAP_QUERY_COVERING_OR_NEXT_VMA: u64 = 0x10;
const PROCMAP_QUERY_FILE_BACKED_VMA: u64 = 0x20;
/// Most VMAs asked about for one process (the default `vm.max_map_count` is 65,530).
const MAX_MAP_QUERIES: usize = 1 << 18;

/// The files a process maps executable (its program and loaded libraries), from
/// the `PROCMAP_QUERY` ioctl: one call per executable file mapping and no text
/// for the others, a third of the cost of formatting the whole `maps` (which names
/// every mapping, data and anonymous ones included). A library that runs code in
/// the process has its code mapped executable. `Ok(None)` when the kernel lacks
/// the ioctl (before 6.11) or a query fails part way: read `maps` instead.
/// A process whose main thread exited is asked through a live thread.
pub fn executable_mappings(dir: &ProcDir) -> io::Result<Option<Vec<String>>> {
    let first = executable_mappings_of(dir.open_entry(c"maps", libc::O_RDONLY)?);
    let again = match &first {
        Ok(Some(paths)) => paths.is_empty(),
        Ok(None) => false,
        Err(e) => is_vanished(e),
    };
    if again && dir.switch_to_live_thread() {
        return executable_mappings_of(dir.open_entry(c"maps", libc::O_RDONLY)?);
    }
    first
}

/// `executable_mappings` over an open `maps` file.
fn executable_mappings_of(maps: OwnedFd) -> io::Result<Option<Vec<String>>> {
    // Twice PATH_MAX: the kernel builds the name in one page, so every name fits
    // and no mapping can be hidden behind ENAMETOOLONG.
    let mut name = vec![0u8; 2 * libc::PATH_MAX as usize];
    let mut paths: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut address = 0u64;
    for _ in 0..MAX_MAP_QUERIES {
        let mut query = ProcmapQuery {
            size: size_of::<ProcmapQuery>() as u64,
            query_flags: PROCMAP_QUERY_COVERING_OR_NEXT_VMA
                | PROCMAP_QUERY_FILE_BACKED_VMA
                | PROCMAP_QUERY_VMA_EXECUTABLE,
            query_addr: address,
            vma_name_size: u32::try_from(name.len()).unwrap_or(u32::MAX),
            vma_name_addr: name.as_mut_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: query is a valid procmap_query whose name buffer is `name`
        // (vma_name_size bytes, live for the call); the fd is an open maps file.
        let rc = unsafe { libc::ioctl(maps.as_raw_fd(), PROCMAP_QUERY as _, &mut query) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                // No mapping at or above the address: done.
                Some(libc::ENOENT) => Ok(Some(paths)),
                // The process is gone or not ours to read: a real answer.
                Some(libc::ESRCH) | Some(libc::EACCES) | Some(libc::EPERM) => Err(err),
                // Anything else (no ioctl before 6.11; a mapping whose name does
                // not fit the buffer, which a user can arrange): every mapping
                // must still be seen, so the caller reads `maps` instead rather
                // than take a partial list for the whole one.
                _ => Ok(None),
            };
        }
        let size = (query.vma_name_size as usize).min(name.len());
        let text = name.get(..size).unwrap_or_default();
        let text = text.strip_suffix(b"\0").unwrap_or(text);
        if text.starts_with(b"/") {
            let text = String::from_utf8_lossy(text);
            let path = text.strip_suffix(" (deleted)").unwrap_or(&text);
            if !seen.contains(path) {
                seen.insert(path.to_owned());
                paths.push(path.to_owned());
            }
        }
        if query.vma_end <= address {
            break;
        }
        address = query.vma_end;
    }
    Ok(Some(paths))
}

/// Where the kernel's pid allocation stood at one moment: the last pid it gave
/// (`/proc/loadavg`'s last field) and how many tasks, threads included, were
/// made since boot (`processes` in `/proc/stat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PidAllocation {
    pub last_pid: u64,
    pub tasks_made: u64,
}

/// Tasks whose making may not show in `last_pid` yet: the two reads are not
/// one snapshot.
const TASKS_MADE_SLACK: u64 = 64;

impl PidAllocation {
    /// Reads both counters: the last pid first, so a task made between the two
    /// reads can only count in `tasks_made` (see `came_round_since`).
    pub fn now() -> Option<PidAllocation> {
        Self::read(true)
    }

    /// Reads both counters in the other order, for the end of a span.
    pub fn now_after() -> Option<PidAllocation> {
        Self::read(false)
    }

    fn read(last_pid_first: bool) -> Option<PidAllocation> {
        let (loadavg, tasks_made) = if last_pid_first {
            let loadavg = read_small_file(c"/proc/loadavg")?;
            (loadavg, read_tasks_made()?)
        } else {
            let tasks_made = read_tasks_made()?;
            (read_small_file(c"/proc/loadavg")?, tasks_made)
        };
        Some(PidAllocation {
            last_pid: parse_loadavg_last_pid(&loadavg)?,
            tasks_made,
        })
    }

    /// Whether pid allocation may have gone past `pid_max` and started again
    /// from the bottom between `self` and `later`: the last pid went down, or
    /// more tasks were made than it went up (each new task moves it up at
    /// least one, unless it came round). Then a pass over tasks in tid order
    /// may have missed threads made meanwhile below where it was.
    pub fn came_round_since(&self, later: &PidAllocation) -> bool {
        let Some(advance) = later.last_pid.checked_sub(self.last_pid) else {
            return true;
        };
        let made = later.tasks_made.saturating_sub(self.tasks_made);
        made > advance.saturating_add(TASKS_MADE_SLACK)
    }
}

/// A whole small file by absolute path (at most `MAX_SMALL_BYTES`: longer is
/// refused, not cut).
fn read_small_file(path: &CStr) -> Option<Vec<u8>> {
    // SAFETY: the path is NUL-terminated; the flags open no device for write.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a fresh descriptor this function owns.
    let file = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut data = Vec::new();
    File::from(file)
        .take(MAX_SMALL_BYTES as u64 + 1)
        .read_to_end(&mut data)
        .ok()?;
    (data.len() <= MAX_SMALL_BYTES).then_some(data)
}

/// `0.20 0.18 0.12 1/80 11206\n` -> 11206.
fn parse_loadavg_last_pid(text: &[u8]) -> Option<u64> {
    let last = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .nth(4)?;
    parse_decimal(last)
}

/// The most of `/proc/stat` read to find its `processes` line: the lines
/// before it grow with CPUs and interrupts (`intr` alone passes 64 KiB on a
/// big host), not to megabytes.
const MAX_PROC_STAT_BYTES: usize = 4 * 1024 * 1024;
/// `/proc/stat` is read this much at a time, and only up to that line.
const PROC_STAT_CHUNK: usize = 64 * 1024;

/// Tasks made since boot: the `processes` line of `/proc/stat`.
fn read_tasks_made() -> Option<u64> {
    read_stat_value(b"processes")
}

/// The value of the `/proc/stat` line `<key> N`.
fn read_stat_value(key: &[u8]) -> Option<u64> {
    let fd = open_at(
        libc::AT_FDCWD,
        c"/proc/stat",
        libc::O_RDONLY | libc::O_NOFOLLOW,
    )
    .ok()?;
    stat_value_in(File::from(fd), key, PROC_STAT_CHUNK, MAX_PROC_STAT_BYTES)
}

/// The `<key> N` line of `/proc/stat` text read from `reader`, `chunk` bytes
/// at a time, stopping at the end of that line; `None` when it is not within
/// `limit` bytes, is malformed, or a read fails.
fn stat_value_in(mut reader: impl Read, key: &[u8], chunk: usize, limit: usize) -> Option<u64> {
    let mut finder = LineValueFinder::new(key);
    let mut buffer = vec![0u8; chunk.max(1)];
    let mut total = 0;
    loop {
        let room = buffer.len().min(limit.saturating_sub(total));
        if room == 0 {
            return None;
        }
        let n = match reader.read(buffer.get_mut(..room)?) {
            Ok(0) => return finder.finish(),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        total += n;
        if let Some(value) = finder.feed(buffer.get(..n)?) {
            return value;
        }
    }
}

/// The line `<key> <decimal>` found in text fed in pieces, keeping only the
/// first bytes of the line at hand (a line before it may be megabytes long).
struct LineValueFinder<'k> {
    key: &'k [u8],
    line: Vec<u8>,
    too_long: bool,
}

/// Longer than any `<key> <u64>` line this looks for.
const MAX_VALUE_LINE: usize = 64;

impl<'k> LineValueFinder<'k> {
    fn new(key: &'k [u8]) -> Self {
        LineValueFinder {
            key,
            line: Vec::with_capacity(MAX_VALUE_LINE),
            too_long: false,
        }
    }

    /// The next piece of text: `Some` once the key's line has ended (holding
    /// `None` when its value is malformed).
    fn feed(&mut self, mut piece: &[u8]) -> Option<Option<u64>> {
        while let Some(end) = piece.iter().position(|&b| b == b'\n') {
            self.keep(piece.get(..end).unwrap_or_default());
            if let Some(value) = self.line_ended() {
                return Some(value);
            }
            piece = piece.get(end + 1..).unwrap_or_default();
        }
        self.keep(piece);
        None
    }

    /// At the end of the text: its last line may lack a newline.
    fn finish(mut self) -> Option<u64> {
        self.line_ended().flatten()
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_VALUE_LINE - self.line.len();
        self.too_long |= bytes.len() > room;
        self.line
            .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
    }

    /// The value when the line that just ended is the key's; the line is then
    /// forgotten.
    fn line_ended(&mut self) -> Option<Option<u64>> {
        let value = self
            .line
            .strip_prefix(self.key)
            .and_then(|rest| rest.strip_prefix(b" "))
            .map(|digits| parse_decimal(digits.trim_ascii()).filter(|_| !self.too_long));
        self.line.clear();
        self.too_long = false;
        value
    }
}

/// How many tasks (threads included) exist now: the total of `/proc/loadavg`'s
/// `running/total` field.
pub fn tasks_now() -> Option<u64> {
    parse_loadavg_tasks(&read_small_file(c"/proc/loadavg")?)
}

fn parse_loadavg_tasks(text: &[u8]) -> Option<u64> {
    let field = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .nth(3)?;
    let slash = field.iter().position(|&b| b == b'/')?;
    parse_decimal(field.get(slash + 1..)?)
}

/// Processes whose fds a pass over tasks in tid order can miss in part: those
/// whose leader has exited while other threads live on (their fds are listed
/// only through those threads), and those with a thread whose fd table is not
/// the leader's (`unshare(CLONE_FILES)`: its fds are listed only through that
/// thread). Either kind of thread may have been made below the pass meanwhile
/// (see `sockets::whole_pass`; red team: a live leader's own-table thread
/// hopping below a slow pass was missed by 1 full scan in 3, nothing said).
/// One `fstatat` per process (the thread count from `task`'s link count); for
/// one with threads, `stat`, then the task list and a `kcmp` per thread, as
/// the walk compares tables (where `kcmp` cannot tell, or there are too many
/// threads to compare, the process is listed: a pass of its own costs time, a
/// missed table hides sockets). Of `among` only when given, else of every
/// process. `None` when `deadline` passed first (a user can make the listing
/// long: thousands of processes, each with threads).
pub fn processes_read_through_threads(
    among: Option<&[Pid]>,
    deadline: crate::deadline::Deadline,
) -> io::Result<Option<Vec<Pid>>> {
    let every;
    let pids = match among {
        Some(pids) => pids,
        None => {
            every = list_pids()?;
            every.as_slice()
        }
    };
    let mut listed = Vec::new();
    for &pid in pids {
        if deadline.expired() {
            return Ok(None);
        }
        let Ok(dir) = ProcDir::open(pid) else {
            continue;
        };
        if dir.has_threads_besides_leader()
            && (dir.leader_is_zombie() || has_thread_with_own_fd_table(&dir))
        {
            listed.push(pid);
        }
    }
    Ok(Some(listed))
}

/// Whether a thread of `dir`'s process has an fd table of its own, as the walk
/// tells them apart (`threads_with_own_fd_table`); true where that cannot be
/// told (too many threads to compare, the task list unreadable while the
/// process lives).
fn has_thread_with_own_fd_table(dir: &ProcDir) -> bool {
    match dir.threads_with_own_fd_table() {
        Ok((own, too_many)) => !own.is_empty() || too_many,
        Err(_) => dir.lives_on(),
    }
}

/// Every numeric entry of `/proc` (thread-group leaders).
pub fn list_pids() -> io::Result<Vec<Pid>> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if let Some(pid) =
            parse_decimal(name.as_encoded_bytes()).and_then(|p| Pid::try_from(p).ok())
        {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// A `DIR*` over an open directory fd, closed on drop.
pub struct DirStream(*mut libc::DIR);

impl DirStream {
    /// Takes over `fd` (an open directory).
    pub fn new(fd: OwnedFd) -> io::Result<DirStream> {
        use std::os::fd::IntoRawFd;
        let raw = fd.into_raw_fd();
        // SAFETY: raw is an open directory fd; on success DIR* owns it.
        let stream = unsafe { libc::fdopendir(raw) };
        if stream.is_null() {
            let err = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so raw is still ours to close.
            unsafe { libc::close(raw) };
            return Err(err);
        }
        Ok(DirStream(stream))
    }

    /// The directory's fd (valid while `self` lives).
    pub fn raw_fd(&self) -> RawFd {
        // SAFETY: self.0 is a valid DIR* until drop.
        unsafe { libc::dirfd(self.0) }
    }

    /// Calls `each(entry_name)` for every entry while it returns true; stops with
    /// the error that ended the listing, if any.
    pub fn for_each_name(&self, mut each: impl FnMut(&CStr) -> bool) -> io::Result<()> {
        loop {
            // SAFETY: errno is thread-local; resetting it tells end-of-dir from errors.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: self.0 is a valid DIR*, used by this thread only.
            let entry = unsafe { libc::readdir(self.0) };
            if entry.is_null() {
                let err = io::Error::last_os_error();
                return match err.raw_os_error() {
                    Some(0) | None => Ok(()),
                    _ => Err(err),
                };
            }
            // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
            if !each(name) {
                return Ok(());
            }
        }
    }
}

impl Drop for DirStream {
    fn drop(&mut self) {
        // SAFETY: self.0 came from fdopendir and is closed exactly once.
        unsafe { libc::closedir(self.0) };
    }
}

/// The listing of `/proc/<pid>/fd`.
pub struct FdDir(DirStream);

impl FdDir {
    pub fn open(dir: &ProcDir) -> io::Result<FdDir> {
        let fd = dir.open_entry(c"fd", libc::O_RDONLY | libc::O_DIRECTORY)?;
        DirStream::new(fd).map(FdDir)
    }

    pub fn raw_fd(&self) -> RawFd {
        self.0.raw_fd()
    }

    /// Calls `each(fd_number, entry_name)` for every fd; stops with the error that
    /// ended the listing, if any.
    pub fn for_each(&self, mut each: impl FnMut(i64, &CStr)) -> io::Result<()> {
        self.0.for_each_name(|name| {
            if let Some(fd) = parse_decimal(name.to_bytes()) {
                each(i64::try_from(fd).unwrap_or(i64::MAX), name);
            }
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One read where the kernel says all: a file is read whole, over several
    /// chunks when large, and never past the limit.
    #[test]
    fn reads_until_short_within_the_limit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("data");
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let open = || OwnedFd::from(File::open(&path).expect("open"));
        assert_eq!(read_until_short(open(), 40_001).expect("read"), data);
        assert_eq!(read_until_short(open(), 40_000).expect("read"), data);
        let cut = read_until_short(open(), 16 * 1024).expect("read");
        assert_eq!(cut, data.get(..16 * 1024).expect("prefix"));
        assert_eq!(read_until_short(open(), 0).expect("read"), b"");
    }

    /// `environ` through a ProcDir, read until its first short read, is the
    /// whole area the kernel holds.
    #[test]
    fn environ_is_read_whole() {
        let whole = std::fs::read("/proc/self/environ").expect("environ");
        let pid = Pid::try_from(std::process::id()).expect("pid");
        let dir = ProcDir::open(pid).expect("own proc dir");
        let read = dir.read(c"environ", MAX_ARGS_BYTES + 1).expect("read");
        assert_eq!(read, whole);
        assert!(ends_at_first_short_read(c"environ"));
        assert!(ends_at_first_short_read(c"stat"));
        assert!(!ends_at_first_short_read(c"maps"));
        assert!(!ends_at_first_short_read(c"cmdline"));
    }

    #[test]
    fn the_environment_area_from_stat_is_what_environ_gives() {
        let stat = std::fs::read("/proc/self/stat").expect("stat");
        let environ = std::fs::read("/proc/self/environ").expect("environ");
        assert_eq!(environment_bytes(&stat), Some(environ.len() as u64));
        // comm may hold spaces and parentheses; fields are counted after it.
        let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        fields[47] = "1000".into(); // field 50: env_start
        fields[48] = "1234".into(); // field 51: env_end
        let line = format!("7 (a) b ( c) {}", fields.join(" "));
        assert_eq!(environment_bytes(line.as_bytes()), Some(234));
        fields[47] = "0".into();
        fields[48] = "0".into();
        let hidden = format!("7 (a) {}", fields.join(" "));
        assert_eq!(environment_bytes(hidden.as_bytes()), None, "hidden");
        assert_eq!(environment_bytes(b"7 (a) S 1 2"), None, "cut");
        fields[47] = "2000".into();
        fields[48] = "1000".into();
        let backwards = format!("7 (a) {}", fields.join(" "));
        assert_eq!(environment_bytes(backwards.as_bytes()), None);
    }

    #[test]
    fn exiting_tasks_from_stat() {
        let line = |state: char, flags: u64| {
            let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
            fields[0] = state.to_string();
            fields[6] = flags.to_string(); // field 9
            format!("42 (a) b) {}", fields.join(" "))
        };
        assert!(!stat_says_exiting(line('S', 0x0040_0100).as_bytes()));
        assert!(!stat_says_exiting(line('R', 0).as_bytes()));
        assert!(
            stat_says_exiting(line('R', 0x0040_0104).as_bytes()),
            "PF_EXITING"
        );
        assert!(stat_says_exiting(line('Z', 0).as_bytes()));
        assert!(stat_says_exiting(line('X', 0).as_bytes()));
        assert!(stat_says_exiting(b"42 (a"), "cut");
        let ours = std::fs::read("/proc/thread-self/stat").expect("stat");
        assert!(!stat_says_exiting(&ours), "this thread");
    }

    #[test]
    fn zombie_states_from_stat_and_status() {
        assert_eq!(stat_state(b"42 (a) b) Z 1 42"), Some(b'Z'));
        assert_eq!(stat_state(b"42 (py) S 1 42"), Some(b'S'));
        assert_eq!(stat_state(b"4"), None);
        assert!(status_says_zombie(
            b"Name:\tpy\nState:\tZ (zombie)\nTgid:\t42\n"
        ));
        assert!(!status_says_zombie(b"Name:\tZ\nState:\tS (sleeping)\n"));
        assert!(!status_says_zombie(b""));
    }

    #[test]
    fn a_live_process_is_read_from_its_own_directory() {
        let dir = ProcDir::open(std::process::id() as Pid).expect("own /proc dir");
        let before = dir.raw_fd();
        assert!(dir
            .read(c"cmdline", MAX_ARGS_BYTES)
            .is_ok_and(|c| !c.is_empty()));
        let mut fds = 0;
        dir.for_each_fd(|_, _, _| fds += 1).expect("own fds");
        assert!(fds >= 3, "{fds}");
        // An entry that is missing for a live process checks the leader once and
        // stays on the process directory.
        assert!(dir.read_link(c"fd/999999").is_err());
        assert!(!dir.switch_to_live_thread());
        assert_eq!(dir.raw_fd(), before);
    }

    /// Threads besides the leader are counted from `task`'s link count, and the
    /// task reads go through is live: a one-thread child has no other thread;
    /// this test process (the harness runs tests on threads) has; once the
    /// child has exited (a zombie until reaped) its reader has begun exiting.
    #[test]
    fn other_threads_are_counted_and_an_exited_reader_is_told() {
        let own = ProcDir::open(std::process::id() as Pid).expect("own /proc dir");
        let spawned = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(1)));
        assert!(own.has_threads_besides_leader());
        assert!(!own.reader_began_exiting());
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .expect("sleep");
        let dir = ProcDir::open(child.id() as Pid).expect("child /proc dir");
        assert!(!dir.has_threads_besides_leader());
        assert!(!dir.reader_began_exiting());
        assert!(dir.lives_on());
        child.kill().expect("kill");
        let zombie = || {
            read_bounded_at(dir.fd.as_raw_fd(), c"stat", 512)
                .is_ok_and(|stat| stat_state(&stat) == Some(b'Z'))
        };
        for _ in 0..6000 {
            if zombie() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(zombie(), "killed child not a zombie within 30 s");
        assert!(dir.reader_began_exiting());
        assert!(!dir.lives_on());
        child.wait().expect("reap");
        assert!(dir.reader_began_exiting(), "gone: cannot say, so exited");
        assert!(!dir.has_threads_besides_leader());
        spawned.join().expect("join");
    }

    #[test]
    fn only_threads_with_a_table_of_their_own_are_walked_again() {
        use std::sync::mpsc;
        let pid = std::process::id() as Pid;
        // A thread sharing the process's table, and one that unshares its own.
        let (shared_ready, shared_seen) = mpsc::channel();
        let (own_ready, own_seen) = mpsc::channel();
        let (done, wait) = mpsc::channel::<()>();
        let wait = std::sync::Arc::new(std::sync::Mutex::new(wait));
        let hold = |ready: mpsc::Sender<i32>, unshare: bool| {
            let wait = wait.clone();
            std::thread::spawn(move || {
                // SAFETY: unshare(CLONE_FILES) affects this thread only.
                let rc = if unshare {
                    unsafe { libc::unshare(libc::CLONE_FILES) }
                } else {
                    0
                };
                // SAFETY: gettid has no arguments and cannot fail.
                let tid = unsafe { libc::gettid() };
                let _ = ready.send(if rc == 0 { tid } else { -1 });
                let _ = wait.lock().map(|w| w.recv());
            })
        };
        let shared = hold(shared_ready, false);
        let own = hold(own_ready, true);
        let shared_tid = shared_seen.recv().expect("shared thread");
        let own_tid = own_seen.recv().expect("own thread");
        assert!(own_tid > 0, "unshare(CLONE_FILES) failed");
        let dir = ProcDir::open(pid).expect("own /proc dir");
        let (threads, cut) = dir.threads_with_own_fd_table().expect("threads");
        let tids: Vec<Pid> = threads
            .iter()
            .filter_map(|t| {
                let link = std::fs::read_link(format!("/proc/self/fd/{}", t.raw_fd())).ok()?;
                link.file_name()?.to_str()?.parse().ok()
            })
            .collect();
        drop(done);
        let _ = (shared.join(), own.join());
        assert!(!cut);
        assert_eq!(tids, vec![own_tid], "not {shared_tid}, the shared one");
        assert!(threads.iter().all(|t| t.pid() == pid));
    }

    #[test]
    fn stamps_need_the_whole_layout_randomized_by_the_kernel() {
        let fields = |flags: u64, layout: &str| {
            format!(
                "42 (py (x)) S 1 42 42 0 -1 {flags} 1 0 0 0 0 0 0 0 20 0 1 0 777 1 1 1 \
                     {layout} 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 11 12 13 14 15 16 17 0"
            )
        };
        let randomized = 0x0040_0100;
        let exe = (2049, 99);
        let stamp = parse_stamp(42, &fields(randomized, "1000 2000 3000"), exe).expect("stamp");
        assert_eq!((stamp.pid, stamp.start_ticks), (42, 777));
        assert_eq!(stamp.executable, exe);
        assert_eq!(stamp.layout, [1000, 2000, 3000, 11, 12, 13, 14, 15, 16, 17]);
        // Hidden (no access to the process's memory): zeros, no stamp.
        assert_eq!(parse_stamp(42, &fields(randomized, "0 0 0"), exe), None);
        assert_eq!(parse_stamp(42, "42 (py) S 1", exe), None);
        // Exec'd without randomization (`setarch -R`), whatever its personality now.
        assert_eq!(parse_stamp(42, &fields(0x100, "1000 2000 3000"), exe), None);
    }

    #[test]
    fn stat_with_spaces_and_parentheses_in_comm() {
        let line = "4242 (my (evil) proc) S 1 4242 4242 0 -1 4194560 300 0 0 0 5 3 0 0 20 0 1 0 123456 10000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.comm, "my (evil) proc");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.parent, 1);
        assert_eq!(stat.flags, 4194560);
        assert_eq!(stat.start_ticks, 123456);
        assert!(!stat.is_kernel_thread());

        let kthread = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 7 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 1 0 0 0 0 0";
        let stat = parse_stat(kthread).unwrap();
        assert!(stat.is_kernel_thread());
        assert_eq!((stat.parent, stat.start_ticks), (0, 7));

        assert_eq!(parse_stat("12 (x) S"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_uid_and_boot_time() {
        let status = "Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t0\t0\t0\nGid:\t100\t100\t100\t100\n";
        assert_eq!(parse_status_uids(status), Some((1000, 0)));
        assert_eq!(parse_status_uids("Name:\tx\n"), None);
        assert_eq!(parse_status_uids("Uid:\t1000\n"), None);
        let stat = b"cpu  1 2 3\nintr 5\nctxt 99\nbtime 1700000000\nprocesses 10\n";
        let value = |key: &[u8]| stat_value_in(&stat[..], key, 7, MAX_PROC_STAT_BYTES);
        assert_eq!(value(b"btime"), Some(1_700_000_000));
        assert_eq!(value(b"processes"), Some(10));
        assert_eq!(value(b"ctx"), None);
        assert!(boot_time().is_some_and(|t| t > 1_000_000_000));
    }

    #[test]
    fn small_helpers() {
        assert_eq!(
            strip_deleted("/tmp/x (deleted)"),
            ("/tmp/x".to_string(), true)
        );
        assert_eq!(
            strip_deleted("/usr/bin/ls"),
            ("/usr/bin/ls".to_string(), false)
        );
        assert_eq!(
            parse_bracketed_inode(b"socket:[12345]", b"socket:["),
            Some(12345)
        );
        assert_eq!(
            parse_bracketed_inode(b"net:[4026531840]", b"net:["),
            Some(4026531840)
        );
        assert_eq!(parse_bracketed_inode(b"pipe:[5]", b"socket:["), None);
        assert_eq!(parse_bracketed_inode(b"socket:[12a]", b"socket:["), None);
        assert_eq!(parse_decimal(b"99999999999999999999999"), None);
        assert_eq!(
            split_nul(b"python3\0-c\0print(1)\0"),
            ["python3", "-c", "print(1)"]
        );
        assert_eq!(split_nul(b"a\0\0b"), ["a", "", "b"]);
        assert!(split_nul(b"").is_empty());
    }

    #[test]
    fn maps_paths_are_unique_and_keep_spaces() {
        let maps = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 1048602                    /usr/bin/cat
55d0c0a02000-55d0c0a07000 r-xp 00002000 fd:01 1048602                    /usr/bin/cat
7f1c2a000000-7f1c2a022000 r--p 00000000 fd:01 1050001                    /usr/lib/x86_64-linux-gnu/libproxychains.so.4
7f1c2b000000-7f1c2b001000 r--p 00000000 fd:01 1050002                    /tmp/my lib.so (deleted)
7ffd1d9e0000-7ffd1da01000 rw-p 00000000 00:00 0                          [stack]
7f1c2c000000-7f1c2c001000 rw-p 00000000 00:00 0 
";
        assert_eq!(
            parse_maps_paths(maps),
            [
                "/usr/bin/cat",
                "/usr/lib/x86_64-linux-gnu/libproxychains.so.4",
                "/tmp/my lib.so"
            ]
        );
    }

    #[test]
    fn pid_allocation_coming_round_is_told() {
        assert_eq!(
            parse_loadavg_last_pid(b"0.20 0.18 0.12 1/80 11206\n"),
            Some(11206)
        );
        assert_eq!(parse_loadavg_last_pid(b"0.20 0.18 0.12 1/80"), None);
        let stat: &[u8] =
            b"cpu  1 2 3\nintr 5 6\nctxt 9\nbtime 1\nprocesses 52004286\nprocs_running 1\n";
        let tasks_made =
            |text: &[u8]| stat_value_in(text, b"processes", PROC_STAT_CHUNK, MAX_PROC_STAT_BYTES);
        assert_eq!(tasks_made(stat), Some(52_004_286));
        assert_eq!(tasks_made(b"cpu 1\n"), None);
        let at = |last_pid, tasks_made| PidAllocation {
            last_pid,
            tasks_made,
        };
        let before = at(30_000, 1_000_000);
        // Quiet, or pids skipped (in use): not round.
        assert!(!before.came_round_since(&at(30_000, 1_000_000)));
        assert!(!before.came_round_since(&at(30_010, 1_000_010)));
        assert!(!before.came_round_since(&at(30_500, 1_000_010)));
        // A few tasks made between the two reads of one moment.
        assert!(!before.came_round_since(&at(30_010, 1_000_050)));
        // Down: came round.
        assert!(before.came_round_since(&at(400, 1_003_200)));
        // Up, but by far fewer than were made: came round, maybe more than once.
        assert!(before.came_round_since(&at(30_100, 1_040_000)));
        let now = PidAllocation::now().expect("loadavg and stat");
        let later = PidAllocation::now_after().expect("again");
        assert!(later.tasks_made >= now.tasks_made && later.last_pid >= 1);
    }

    /// The processes whose leader exited while a thread lives on, and those
    /// with a thread whose fd table is its own: of the given pids only when
    /// given, of every process else, and none told once the deadline has passed
    /// (the caller then says the scan was cut). The twin: a live leader whose
    /// thread shares its table is not listed.
    #[test]
    fn processes_read_through_threads_are_listed_within_the_deadline() {
        let leader_exits = "import ctypes, threading, time\n\
             threading.Thread(target=time.sleep, args=(30,)).start()\n\
             ctypes.CDLL(None).syscall(60, 0)\n";
        let mut child = std::process::Command::new("python3")
            .args(["-c", leader_exits])
            .spawn()
            .expect("python3");
        let pid = child.id() as Pid;
        let own = std::process::id() as Pid;
        let no_deadline = crate::deadline::Deadline::NONE;
        let list = |among: Option<&[Pid]>, deadline| {
            processes_read_through_threads(among, deadline).expect("/proc listed")
        };
        let mut listed = None;
        for _ in 0..2000 {
            listed = list(Some(&[own, pid]), no_deadline);
            if listed.as_deref() == Some(&[pid][..]) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(listed, Some(vec![pid]), "the child's leader exited");
        assert!(list(None, no_deadline).is_some_and(|every| every.contains(&pid)));
        assert_eq!(list(Some(&[own]), no_deadline), Some(Vec::new()));
        let passed = crate::deadline::Deadline::after(std::time::Duration::ZERO);
        assert_eq!(list(None, passed), None);
        assert_eq!(list(Some(&[pid]), passed), None);
        child.kill().expect("kill");
        child.wait().expect("reap");
        // A live leader: one thread unshares its fd table (CLONE_FILES), the
        // other child's thread keeps the leader's.
        let threaded = |unshare: bool| {
            let code = format!(
                "import ctypes, sys, threading, time\n\
                 libc = ctypes.CDLL(None, use_errno=True)\n\
                 def run():\n\
                 \x20   if {unshare} and libc.unshare(0x400) != 0:\n\
                 \x20       sys.exit('unshare failed')\n\
                 \x20   print('ready', flush=True)\n\
                 \x20   time.sleep(30)\n\
                 threading.Thread(target=run).start()\n",
                unshare = if unshare { "True" } else { "False" }
            );
            let mut child = std::process::Command::new("python3")
                .args(["-c", &code])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("python3");
            let mut line = String::new();
            use std::io::BufRead;
            std::io::BufReader::new(child.stdout.take().expect("stdout"))
                .read_line(&mut line)
                .expect("ready");
            assert_eq!(line.trim(), "ready");
            child
        };
        let own_table = threaded(true);
        let shared_table = threaded(false);
        let (own_pid, shared_pid) = (own_table.id() as Pid, shared_table.id() as Pid);
        assert_eq!(
            list(Some(&[own_pid, shared_pid]), no_deadline),
            Some(vec![own_pid]),
            "a thread with a table of its own, not one sharing the leader's"
        );
        for mut child in [own_table, shared_table] {
            child.kill().expect("kill");
            child.wait().expect("reap");
        }
    }

    /// `/proc/stat` as a big host shows it: the `intr` line alone is 300 KiB
    /// (one count per interrupt), far past the 64 KiB read of small files.
    fn stat_with_a_huge_intr_line(intr_bytes: usize) -> (Vec<u8>, usize) {
        let mut text = b"cpu  10 20 30 40\ncpu0 1 2 3 4\nintr 123456789".to_vec();
        while text.len() < intr_bytes {
            text.extend_from_slice(b" 0 17 4096");
        }
        text.extend_from_slice(b"\nctxt 99\nbtime 1700000000\n");
        let processes_at = text.len();
        text.extend_from_slice(b"processes 52004286\nprocs_running 2\nprocs_blocked 0\n");
        text.extend_from_slice(b"softirq 5 1 2 3\n");
        (text, processes_at)
    }

    /// The `processes` line is found past an `intr` line of 300 KiB, read in
    /// pieces split anywhere: inside the keyword, between it and its value,
    /// inside the digits, at the newline. Past the cap, or malformed: `None`.
    /// A single thread is told by the link count alone, and is the leader;
    /// a second thread makes it a listing, with both.
    #[test]
    fn thread_ids_are_the_leader_alone_or_every_thread_listed() {
        use std::io::BufRead;
        let mut one = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = one.id();
        assert_eq!(thread_ids(pid), Some(vec![pid]));
        let _ = one.kill();
        let _ = one.wait();
        let mut two = std::process::Command::new("python3")
            .args([
                "-c",
                "import threading, time\n\
                 threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n\
                 print('ready', flush=True)\n\
                 time.sleep(30)\n",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(two.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready");
        let pid = two.id();
        let tids = thread_ids(pid).expect("listed");
        assert_eq!(tids.len(), 2, "{tids:?}");
        assert!(tids.contains(&pid), "{tids:?}");
        let _ = two.kill();
        let _ = two.wait();
        assert_eq!(thread_ids(pid), None, "gone");
    }

    #[test]
    fn tasks_made_are_found_past_a_huge_intr_line() {
        let (text, at) = stat_with_a_huge_intr_line(300 * 1024);
        assert!(
            at > 300 * 1024,
            "an intr line past the 64 KiB small-file read"
        );
        let read = |reader: &mut dyn Read, chunk| {
            stat_value_in(reader, b"processes", chunk, MAX_PROC_STAT_BYTES)
        };
        assert_eq!(
            read(&mut text.as_slice(), PROC_STAT_CHUNK),
            Some(52_004_286)
        );
        // A read never crosses `split`, so a piece ends there.
        let line = "processes 52004286\n".len();
        for split in (at - 1..=at + line).chain([at / 2, PROC_STAT_CHUNK]) {
            let (head, tail) = text.split_at(split);
            for chunk in [4096, 7, PROC_STAT_CHUNK] {
                assert_eq!(
                    read(&mut head.chain(tail), chunk),
                    Some(52_004_286),
                    "split at {split} ({} into the line), chunk {chunk}",
                    split as i64 - at as i64
                );
            }
        }
        assert_eq!(read(&mut text.as_slice(), 1), Some(52_004_286));
        // Only up to the end of the line is read.
        let mut reader = text.as_slice();
        assert_eq!(read(&mut reader, 1), Some(52_004_286));
        assert_eq!(reader.len(), text.len() - at - line);
        // The cap: the line not within it is not found.
        assert_eq!(stat_value_in(text.as_slice(), b"processes", 4096, at), None);
        assert_eq!(
            stat_value_in(text.as_slice(), b"processes", 4096, at + line),
            Some(52_004_286)
        );
        let (beyond, _) = stat_with_a_huge_intr_line(MAX_PROC_STAT_BYTES + 1);
        assert_eq!(read(&mut beyond.as_slice(), PROC_STAT_CHUNK), None);
        // Lines like it, malformed ones, and a last line with no newline.
        let only = |text: &[u8]| read(&mut &text[..], 3);
        assert_eq!(
            only(b"procs_running 2\nprocesses_x 4\nprocesses 9\n"),
            Some(9)
        );
        assert_eq!(only(b"processes 12x\nprocesses 9\n"), None);
        assert_eq!(only(b"processes \n"), None);
        assert_eq!(only(b"xprocesses 4\n"), None);
        assert_eq!(only(b"cpu 1\nprocesses 77"), Some(77));
        let long = format!("processes 1{}\n", " ".repeat(MAX_VALUE_LINE));
        assert_eq!(only(long.as_bytes()), None);
        assert_eq!(only(b""), None);
    }
}
