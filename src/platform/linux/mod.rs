//! Linux backend: processes from /proc (every read through a held `/proc/<pid>`
//! dirfd), inet sockets from each network namespace's `/proc/<pid>/net/*` tables
//! joined to owners by an fd walk, and code trust from package provenance (dpkg,
//! then rpm where `/var/lib/rpm` exists) with a verdict cache keyed by file identity.

pub mod dpkg;
pub mod fd_iterator;
pub mod library_pass;
pub mod netlink;
pub mod proc_events;
pub mod procfs;
pub mod provenance;
pub mod rpm;
pub mod script_file;
pub mod send_ledger;
pub mod socket_tables;
pub mod sockets;
pub mod unseen_sockets;
pub mod userfile;

use crate::model::{CodeIdentity, Pid, ProcessInfo, SocketQuery, SocketScan};
use crate::platform::process_cache::{ForgetProcesses, ProcessCache};
use crate::platform::trust::{
    hash_reader, sparse_reason, CacheStats, FileId, HashBudget, RehashLimiter, TrustCache,
    DEFAULT_CACHE_ENTRIES, REHASH_INTERVAL, SPARSE_SLACK_BYTES,
};
use crate::platform::{Host, HostConfig, HostError, ProcessCheckError};
use procfs::{process_error, ProcDir};
use provenance::{Claim, ProvenanceSource};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, OnceLock};

/// Caps glibc's malloc arenas at two. The Thrift listener serves each osquery
/// connection on its own thread, and glibc gives busy threads arenas of their own
/// (up to 8 per core) that keep their peak for good: a burst of large results left a
/// resident extension ~90 MB bigger (`bench/resident.py`).
pub fn cap_allocator_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; called before serving starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

pub struct LinuxHost {
    config: HostConfig,
    /// Consulted in order; the first source with a claim decides: dpkg, then rpm
    /// when `config.rpm_root` holds an rpmdb.sqlite.
    provenance: Vec<Box<dyn ProvenanceSource>>,
    cache: TrustCache<FileId>,
    /// Hashing each uid may cause per window (`HostConfig::hash_budget`).
    budget: HashBudget,
    /// One re-hash per file (device, inode) per `REHASH_INTERVAL`.
    rehash: RehashLimiter,
    boot_time: OnceLock<Option<i64>>,
    clock_ticks: i64,
    /// Executable mappings by process image, across scans (extension mode): the
    /// SOCKS preload check of every TCP client, each pass.
    mapped: Arc<ProcessCache<Vec<String>>>,
}

/// Processes whose mappings are remembered, and for how long: a library the
/// process maps later (`dlopen`) is seen within this age.
const MAPPED_CACHE_ENTRIES: usize = 65_536;
const MAPPED_CACHE_AGE: std::time::Duration = std::time::Duration::from_secs(120);

impl LinuxHost {
    pub fn new(config: HostConfig) -> Self {
        let mut provenance: Vec<Box<dyn ProvenanceSource>> =
            vec![Box::new(dpkg::DpkgDatabase::new(config.dpkg_root.clone()))];
        if let Some(rpm) = rpm::RpmDatabase::at(&config.rpm_root) {
            provenance.push(Box::new(rpm));
        }
        let budget = HashBudget::new(config.hash_budget);
        LinuxHost {
            config,
            provenance,
            cache: TrustCache::new(DEFAULT_CACHE_ENTRIES),
            budget,
            rehash: RehashLimiter::default(),
            boot_time: OnceLock::new(),
            clock_ticks: procfs::clock_ticks(),
            mapped: Arc::new(ProcessCache::new(MAPPED_CACHE_ENTRIES, MAPPED_CACHE_AGE)),
        }
    }

    /// Trust-cache hits and misses (a second query over the same files hashes nothing).
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Every cache of per-process facts, for the event source to drop a pid's
    /// entry at its exec or exit.
    fn process_caches(&self) -> Vec<Arc<dyn ForgetProcesses>> {
        vec![self.mapped.clone()]
    }

    fn boot_time(&self) -> Option<i64> {
        *self.boot_time.get_or_init(procfs::boot_time)
    }

    /// When the process behind `dir` started, as wall-clock nanoseconds since the
    /// epoch: the wall clock at boot (now minus the boot clock, read in that
    /// order so it errs early) plus its start ticks (rounded down). `None` when
    /// that boot time is not the `btime` this host first read (the clock was set
    /// since, and file times from before the step are on another scale).
    fn start_wall_clock_ns(&self, dir: &ProcDir) -> Option<i128> {
        let wall_now = clock_ns(libc::CLOCK_REALTIME)?;
        let boot_clock_now = clock_ns(libc::CLOCK_BOOTTIME)?;
        let boot_ns = wall_now - boot_clock_now;
        let btime_ns = i128::from(self.boot_time()?) * 1_000_000_000;
        // btime is the same instant rounded down to a second.
        if !(btime_ns - 1_000_000_000..btime_ns + 2_000_000_000).contains(&boot_ns) {
            return None;
        }
        let stat = dir.read(c"stat", procfs::MAX_SMALL_BYTES).ok()?;
        let ticks = procfs::parse_stat(&String::from_utf8_lossy(&stat))?.start_ticks;
        let per_second = i128::from(self.clock_ticks.max(1));
        Some(boot_ns + i128::from(ticks) * 1_000_000_000 / per_second)
    }

    /// The first provenance source's claims on `path`, with its authority.
    fn claims(&self, path: &str) -> (Vec<Claim>, &'static str) {
        for source in &self.provenance {
            let claims = source.claims(path);
            if !claims.is_empty() {
                return (claims, source.authority());
            }
        }
        (Vec::new(), "")
    }

    /// The verdict for an open file, cached by its identity. `path` is the name the
    /// package databases know it by; `uid` is charged for the hashing (the user
    /// whose process made it necessary). Mostly-hole files are not hashed; over
    /// `uid`'s budget, or re-hashing a file changed within `REHASH_INTERVAL`, the
    /// verdict is `unknown` and not cached (a later pass tries again).
    fn identity_of_open_file(
        &self,
        file: OwnedFd,
        path: &str,
        replaced: bool,
        uid: u32,
    ) -> CodeIdentity {
        use std::os::unix::fs::MetadataExt;
        let file = File::from(file);
        // Every touch of the file's content runs on a worker the caller stops
        // waiting for: a FUSE or hung NFS file can block any syscall forever. A
        // timed-out verdict is `unknown` and never cached.
        let meta = match file.try_clone().and_then(|f| {
            userfile::on_worker(None, None, userfile::READ_TIMEOUT, move || f.metadata())
        }) {
            Ok(meta) => meta,
            Err(e) => return CodeIdentity::unknown(format!("cannot stat {path}: {e}")),
        };
        if !meta.is_file() {
            return CodeIdentity::unknown(format!("{path} is not a regular file"));
        }
        let key = FileId::from_metadata(&meta);
        if let Some(found) = self.cache.get(&key) {
            return found;
        }
        let allocated = meta.blocks().saturating_mul(512);
        if meta.len() > allocated.saturating_add(SPARSE_SLACK_BYTES) {
            let size = meta.len();
            let holes = match file.try_clone().and_then(|f| {
                userfile::on_worker(None, Some(key.dev), userfile::READ_TIMEOUT, move || {
                    Ok(hole_bytes(&f, size, allocated))
                })
            }) {
                Ok(holes) => holes,
                Err(e) => return CodeIdentity::unknown(format!("cannot read {path}: {e}")),
            };
            if let Some(why) = sparse_reason(meta.len(), allocated, holes) {
                let verdict = CodeIdentity::unknown(why);
                self.cache.insert(key, verdict.clone());
                return verdict;
            }
        }
        let cost = if meta.len() > self.config.max_hash_bytes {
            0 // refused by size below, nothing read
        } else {
            meta.len()
        };
        let now = std::time::Instant::now();
        if let Err(why) = self.rehash.allow((key.dev, key.ino), now, REHASH_INTERVAL) {
            return CodeIdentity::unknown(why.to_string());
        }
        if let Err(why) = self.budget.reserve(uid, cost, now) {
            return CodeIdentity::unknown(why.to_string());
        }
        let (claims, authority) = self.claims(path);
        let with_md5 = claims
            .iter()
            .any(|c| c.digest.is_some_and(|d| d.needs_md5()));
        let (size, limit) = (meta.len(), self.config.max_hash_bytes);
        let worked = userfile::on_progressing_worker(
            None,
            Some(key.dev),
            userfile::READ_TIMEOUT,
            userfile::HASH_WAIT_CAP,
            move |progress| {
                // Only the hashing is charged (not the package index built on first
                // use), in CPU time: a loaded box must not spend root's budget on waiting.
                let hashing = thread_cpu_time();
                let hashed = hash_reader(&mut progress.reader(&file), size, limit, with_md5);
                Ok((hashed, thread_cpu_time().saturating_sub(hashing)))
            },
        );
        let hashed = match worked {
            Ok((hashed, took)) => {
                self.budget.record_time(uid, took, now);
                hashed
            }
            Err(e) => return CodeIdentity::unknown(format!("cannot hash {path}: {e}")),
        };
        let verdict = provenance::judge(&claims, hashed, authority, replaced);
        self.cache.insert(key, verdict.clone());
        verdict
    }
}

/// The executable path of the process `dir` holds; empty for a kernel thread.
/// The environment of the process behind `dir`; `Truncated` when cut,
/// `Unreadable` when a page of it could not be read. The process may rewrite
/// its environment area, or move it (`PR_SET_MM_MAP`, unprivileged), at any
/// time: what it holds is evidence of a variable, never of its absence.
fn environment_of(dir: &ProcDir) -> Result<Vec<String>, HostError> {
    Ok(procfs::nul_separated(&environment_area(dir)?)
        .map(|entry| procfs::lossy_string(entry.to_vec()))
        .collect())
}

/// Only the variables of `names` in the environment of `dir`'s process, read
/// whole as `environment_of` reads it; nothing else is copied or kept.
fn environment_variables_of(dir: &ProcDir, names: &[&str]) -> Result<Vec<String>, HostError> {
    Ok(procfs::nul_separated(&environment_area(dir)?)
        .filter(|entry| crate::model::sets_one_of(entry, names))
        .map(|entry| procfs::lossy_string(entry.to_vec()))
        .collect())
}

/// The bytes of a process's environment area, whole or an error.
fn environment_area(dir: &ProcDir) -> Result<Vec<u8>, HostError> {
    let pid = dir.pid();
    let (data, truncated) = dir
        .read_capped(c"environ", procfs::MAX_ARGS_BYTES)
        .map_err(|e| process_error(pid, &e))?;
    if truncated {
        return Err(HostError::Truncated {
            pid,
            what: "environ",
            limit: procfs::MAX_ARGS_BYTES,
        });
    }
    // A page of the area the kernel cannot copy (the process unmapped it or
    // made it PROT_NONE) makes that read return nothing, which also ends a
    // read at the area's end: a read that ended so (an empty area, or one past
    // the first read) is whole only if it is as long as the area `stat` gives.
    if data.is_empty() || data.len() >= procfs::FIRST_READ {
        let area = dir
            .read(c"stat", procfs::MAX_SMALL_BYTES)
            .ok()
            .and_then(|stat| procfs::environment_bytes(&stat));
        if area != Some(data.len() as u64) {
            return Err(HostError::Unreadable {
                what: format!("the environment of process {pid}"),
                reason: format!(
                    "{} bytes read of an area of {}: a page of it could not be read",
                    data.len(),
                    area.map_or("unknown size".to_string(), |n| format!("{n} bytes"))
                ),
            });
        }
    }
    Ok(data)
}

fn executable_path_of(dir: &ProcDir) -> Result<String, HostError> {
    let pid = dir.pid();
    match dir.read_link(c"exe") {
        Ok(target) => Ok(procfs::strip_deleted(&target).0),
        Err(e) if procfs::is_vanished(&e) => {
            // Kernel threads have no executable; a gone process has no directory.
            if dir.read(c"stat", 1).is_ok() {
                Ok(String::new())
            } else {
                Err(HostError::Vanished(pid))
            }
        }
        Err(e) => Err(process_error(pid, &e)),
    }
}

/// `ProcDir::stat_entry` on a worker the caller stops waiting for: `exe` and
/// `fd/N` stat the file itself, and a FUSE server that never answers `getattr`
/// would hold the calling thread (a query, the watch) forever.
fn stat_entry_bounded(dir: &ProcDir, name: &'static std::ffi::CStr) -> std::io::Result<libc::stat> {
    let dir = dir.try_clone()?;
    userfile::on_worker(None, None, userfile::READ_TIMEOUT, move || {
        dir.stat_entry(name)
    })
}

/// CPU time of the calling thread (zero where the clock cannot be read).
fn thread_cpu_time() -> std::time::Duration {
    // SAFETY: timespec is plain data; clock_gettime fills it or fails.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: now is valid for writes.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// Most hole/data extents walked when measuring a file's holes.
const MAX_EXTENTS: usize = 4096;

/// Bytes in holes of an open file (`SEEK_HOLE`/`SEEK_DATA`; nothing is read). A
/// file system without hole reporting counts none; a walk cut at `MAX_EXTENTS`
/// counts at least the unallocated bytes (fail closed). The offset is reset.
fn hole_bytes(file: &File, size: u64, allocated: u64) -> u64 {
    let fd = file.as_raw_fd();
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    let mut holes: i64 = 0;
    let mut position: i64 = 0;
    let mut finished = false;
    for _ in 0..MAX_EXTENTS {
        // SAFETY: lseek on an open fd has no memory-safety preconditions.
        let hole = unsafe { libc::lseek(fd, position, libc::SEEK_HOLE) };
        if hole < 0 || hole >= size {
            finished = true;
            break;
        }
        // SAFETY: as above.
        let data = unsafe { libc::lseek(fd, hole, libc::SEEK_DATA) };
        if data < 0 {
            // ENXIO: no data after this hole.
            holes = holes.saturating_add(size - hole);
            finished = true;
            break;
        }
        holes = holes.saturating_add(data.saturating_sub(hole));
        position = data;
    }
    // SAFETY: as above.
    unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    let holes = u64::try_from(holes).unwrap_or(0);
    if finished {
        holes
    } else {
        holes.max(u64::try_from(size).unwrap_or(0).saturating_sub(allocated))
    }
}

/// The uid a process's hashing is charged to.
fn uid_of(process: &ProcessInfo) -> u32 {
    u32::try_from(process.uid).unwrap_or(u32::MAX)
}

/// Fills `argv`, `argv_raw` and `argv_truncated` from `cmdline`.
fn read_argv(dir: &ProcDir, info: &mut ProcessInfo) -> std::io::Result<()> {
    let (raw, truncated) = dir.nul_separated_raw(c"cmdline")?;
    info.argv = raw
        .iter()
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    info.argv_raw = raw;
    info.argv_truncated = truncated;
    Ok(())
}

/// The fs credentials of the process behind `dir` (from its `status`).
fn credentials_of(dir: &ProcDir) -> Result<userfile::FsCredentials, HostError> {
    let status = dir.read(c"status", procfs::MAX_SMALL_BYTES).map_err(|e| {
        HostError::unreadable(format!("the credentials of process {}", dir.pid()), e)
    })?;
    userfile::parse_fs_credentials(&String::from_utf8_lossy(&status)).ok_or_else(|| {
        HostError::Malformed {
            what: format!("status of process {}", dir.pid()),
            why: "no fs credentials".into(),
        }
    })
}

/// Most fds looked at when listing a process's open files.
const MAX_OPEN_FILES: usize = 65_536;

/// Regular files `pid` holds open: fd, (dev, ino) by `fstatat` through the fd link
/// (no open, so no side effect on any file type) and the link's text.
fn open_regular_files(pid: Pid) -> Result<Vec<crate::model::OpenFile>, HostError> {
    let dir = ProcDir::open(pid)?;
    let mut files = Vec::new();
    let mut seen = 0usize;
    let mut truncated = false;
    dir.for_each_fd(|fd_dir, fd, name| {
        seen += 1;
        if seen > MAX_OPEN_FILES {
            truncated = true;
            return;
        }
        // SAFETY: st is plain data filled by fstatat; name is NUL-terminated.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd_dir is an open directory fd, st is valid for writes.
        let ok = unsafe { libc::fstatat(fd_dir, name.as_ptr(), &mut st, 0) } == 0;
        if ok && st.st_mode & libc::S_IFMT == libc::S_IFREG {
            let mut buffer = [0u8; 4096];
            let path = procfs::read_link_into(fd_dir, name, &mut buffer)
                .map(|n| String::from_utf8_lossy(buffer.get(..n).unwrap_or_default()).into_owned())
                .unwrap_or_default();
            files.push(crate::model::OpenFile {
                fd,
                dev: st.st_dev,
                ino: st.st_ino,
                path,
            });
        }
    })
    .map_err(|e| HostError::unreadable(format!("the fds of process {pid}"), e))?;
    if truncated {
        return Err(HostError::TooMany {
            what: format!("the fds of process {pid}"),
            limit: MAX_OPEN_FILES,
        });
    }
    // Read again: a pid reused meanwhile fails here.
    dir.read(c"stat", 1).map_err(|e| process_error(pid, &e))?;
    Ok(files)
}

/// The path of an open fd as the kernel names it (follows every symlink).
fn fd_path(fd: &OwnedFd) -> Option<String> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn note(errors: &mut Vec<String>, field: &str, err: &std::io::Error) {
    errors.push(format!("{field}: {err}"));
}

impl Host for LinuxHost {
    fn platform(&self) -> &'static str {
        "linux"
    }

    fn pids(&self) -> Result<Vec<Pid>, HostError> {
        procfs::list_pids().map_err(|e| HostError::Other(format!("cannot list /proc: {e}")))
    }

    fn process(&self, pid: Pid) -> Result<ProcessInfo, HostError> {
        let dir = ProcDir::open(pid)?;
        let stat_bytes = dir
            .read(c"stat", procfs::MAX_SMALL_BYTES)
            .map_err(|e| process_error(pid, &e))?;
        let stat = procfs::parse_stat(&String::from_utf8_lossy(&stat_bytes))
            .ok_or_else(|| HostError::Other(format!("process {pid}: unparseable stat")))?;
        let mut info = ProcessInfo {
            pid,
            parent: stat.parent,
            name: stat.comm.clone(),
            ..Default::default()
        };
        let mut errors = Vec::new();
        let mut vanished = false;
        let mut check = |field: &str, err: &std::io::Error, errors: &mut Vec<String>| {
            vanished |= procfs::is_vanished(err) && field != "exe";
            note(errors, field, err);
        };

        match dir.read(c"status", procfs::MAX_SMALL_BYTES) {
            Ok(status) => match procfs::parse_status_uids(&String::from_utf8_lossy(&status)) {
                Some((uid, euid)) => {
                    info.uid = uid;
                    info.euid = Some(euid);
                }
                None => errors.push("uid: no Uid line in status".into()),
            },
            Err(e) => check("uid", &e, &mut errors),
        }
        info.kernel_thread = stat.is_kernel_thread();
        if !info.kernel_thread {
            match dir.executable() {
                Ok((path, deleted)) => {
                    info.path = path;
                    info.exe_deleted = deleted;
                }
                Err(e) => check("exe", &e, &mut errors),
            }
            match read_argv(&dir, &mut info) {
                Ok(()) => {}
                Err(e) => check("cmdline", &e, &mut errors),
            }
            if info.argv_truncated {
                errors.push(format!(
                    "cmdline: longer than {} bytes and cut: the script it names cannot be known",
                    procfs::MAX_ARGS_BYTES
                ));
            }
        }
        match dir.read_link(c"cwd") {
            Ok(cwd) => info.cwd = cwd,
            Err(e) => check("cwd", &e, &mut errors),
        }
        match dir.net_namespace() {
            Ok(ns) => info.net_namespace = ns.to_string(),
            Err(e) => check("net_namespace", &e, &mut errors),
        }
        if let Some(boot) = self.boot_time() {
            let ticks = i64::try_from(stat.start_ticks).unwrap_or(i64::MAX);
            info.start_time = boot.saturating_add(ticks / self.clock_ticks.max(1));
        }
        if vanished || (!errors.is_empty() && dir.read(c"stat", 1).is_err()) {
            return Err(HostError::Vanished(pid));
        }
        info.error = errors.join("; ");
        Ok(info)
    }

    fn executable_path(&self, pid: Pid) -> Result<String, HostError> {
        // Through ProcDir: a process whose main thread exited has its `exe` only
        // under a live thread's directory.
        executable_path_of(&ProcDir::open(pid)?)
    }

    fn process_image(&self, pid: Pid) -> Result<crate::platform::ProcessImage, HostError> {
        let dir = ProcDir::open(pid)?;
        let executable = executable_path_of(&dir)?;
        let stamp = if executable.is_empty() {
            // A kernel thread never execs: its start time names it for good.
            dir.read(c"stat", procfs::MAX_SMALL_BYTES)
                .ok()
                .and_then(|stat| procfs::parse_stat(&String::from_utf8_lossy(&stat)))
                .filter(procfs::Stat::is_kernel_thread)
                .map(|stat| crate::platform::process_cache::ProcessStamp {
                    pid,
                    start_ticks: stat.start_ticks,
                    executable: (0, 0),
                    layout: [0; 10],
                })
        } else {
            dir.stamp()
        };
        Ok(crate::platform::ProcessImage { executable, stamp })
    }

    fn command(&self, pid: Pid) -> Result<ProcessInfo, HostError> {
        let dir = ProcDir::open(pid)?;
        let mut info = ProcessInfo {
            pid,
            ..Default::default()
        };
        // Kernel threads and unreadable links leave `path` empty; the cmdline read
        // below tells a vanished process from them.
        if let Ok((path, _)) = dir.executable() {
            info.path = path;
        }
        match read_argv(&dir, &mut info) {
            Ok(()) => {}
            Err(e) if procfs::is_vanished(&e) => return Err(HostError::Vanished(pid)),
            Err(e) => return Err(process_error(pid, &e)),
        }
        Ok(info)
    }

    fn sockets(&self, query: &SocketQuery) -> SocketScan {
        // A one-shot run walks every TCP client's mappings afresh; the extension
        // remembers them by process image (`mapped_libraries`).
        let library_pass = if self.config.remember_process_facts {
            sockets::LibraryPassUse::Never
        } else {
            sockets::LibraryPassUse::WhenItPays
        };
        sockets::scan(query, self.config.fd_iterator, true, library_pass)
    }

    fn host_tcp_sockets(&self) -> Vec<crate::model::SocketInfo> {
        let query = SocketQuery {
            pids: None,
            protocols: crate::model::ProtocolSet {
                tcp: true,
                ..crate::model::ProtocolSet::NONE
            },
        };
        sockets::scan(
            &query,
            self.config.fd_iterator,
            false,
            sockets::LibraryPassUse::Never,
        )
        .sockets
    }

    fn process_events(
        &self,
    ) -> Result<Box<dyn crate::platform::ProcessEvents>, crate::platform::EventSourceError> {
        proc_events::ProcConnector::open(self.process_caches())
            .map(|c| Box::new(c) as Box<dyn crate::platform::ProcessEvents>)
    }

    fn send_ledger_status(&self) -> String {
        send_ledger::status()
    }

    fn namespace_tcp_sockets(&self, pid: Pid) -> Option<Vec<crate::model::SocketInfo>> {
        sockets::namespace_tcp_sockets(pid)
    }

    fn process_identity(&self, process: &ProcessInfo) -> CodeIdentity {
        if process.path.is_empty() {
            return CodeIdentity::unknown("no executable (kernel thread or unreadable)");
        }
        let dir = match ProcDir::open(process.pid) {
            Ok(dir) => dir,
            Err(e) => return CodeIdentity::unknown(e.to_string()),
        };
        // The name the running image had, read now through the same dirfd as the
        // file we hash (the `process` snapshot may be older).
        let (path, deleted) = match dir.executable() {
            Ok(found) => found,
            Err(e) => return CodeIdentity::unknown(process_error(process.pid, &e).to_string()),
        };
        // /proc/<pid>/exe opens the image that runs, even when deleted or replaced.
        match dir.open_entry(c"exe", libc::O_RDONLY | libc::O_NOCTTY) {
            Ok(file) => self.identity_of_open_file(file, &path, deleted, uid_of(process)),
            Err(e) => CodeIdentity::unknown(format!(
                "cannot open the executable of {}: {}",
                process.pid,
                process_error(process.pid, &e)
            )),
        }
    }

    fn file_identity(&self, path: &str) -> CodeIdentity {
        // O_PATH, regular files only, then a non-blocking reopen: a FIFO or device
        // planted at the path is never opened.
        let opened = match userfile::open_regular(
            None,
            None,
            path.as_bytes(),
            userfile::Anchor::InRoot,
            true,
        ) {
            Ok(opened) => opened,
            Err(e) => return CodeIdentity::unknown(format!("cannot open {path}: {e}")),
        };
        // Package databases know the real file, not the symlink that led to it.
        let real = fd_path(&opened.path_fd).unwrap_or_else(|| path.to_owned());
        // No process: the scanner's own reading, charged to root.
        self.identity_of_open_file(opened.file.into(), &real, false, 0)
    }

    fn script_identity(
        &self,
        process: &ProcessInfo,
        operand: &str,
        _display_path: &str,
    ) -> Option<CodeIdentity> {
        let raw = match script_file::raw_operand(&process.argv, &process.argv_raw, operand) {
            Ok(raw) => raw,
            Err(e) => return Some(CodeIdentity::unknown(e.to_string())),
        };
        let dir = match ProcDir::open(process.pid) {
            Ok(dir) => dir,
            Err(e) => return Some(CodeIdentity::unknown(e.to_string())),
        };
        let credentials = match credentials_of(&dir) {
            Ok(credentials) => credentials,
            Err(e) => return Some(CodeIdentity::unknown(e.to_string())),
        };
        let resolved = match script_file::resolve(&dir, &raw, &credentials) {
            Ok(resolved) => resolved,
            Err(e) => return Some(CodeIdentity::unknown(e.to_string())),
        };
        let refusal = script_file::package_refusal(&resolved.facts);
        let changeable = script_file::changeable(&resolved);
        let mut identity = self.identity_of_open_file(
            resolved.file.into(),
            &resolved.claim_path,
            false,
            credentials.uid,
        );
        identity.changeable = changeable;
        Some(script_file::apply_refusal(identity, refusal.as_ref()))
    }

    fn list_user_dir(
        &self,
        process: &ProcessInfo,
        dir: &str,
        max_entries: usize,
    ) -> Option<Vec<String>> {
        let procdir = ProcDir::open(process.pid).ok()?;
        let credentials = credentials_of(&procdir).ok()?;
        let (base, anchor) = path_base(&procdir, dir).ok()?;
        userfile::list_dir(
            Some(credentials),
            &base,
            dir.as_bytes(),
            anchor,
            max_entries,
        )
        .ok()
    }

    fn read_user_file(&self, process: &ProcessInfo, path: &str, limit: u64) -> Option<Vec<u8>> {
        let dir = ProcDir::open(process.pid).ok()?;
        let credentials = credentials_of(&dir).ok()?;
        let (base, anchor) = path_base(&dir, path).ok()?;
        userfile::read_regular(
            Some(credentials),
            Some(&base),
            path.as_bytes(),
            anchor,
            limit,
        )
        .ok()
    }

    fn read_config_file(&self, path: &str, limit: u64) -> Result<Vec<u8>, HostError> {
        // Resolved from the scanner's root: a relative name is taken from its cwd.
        let absolute = std::path::absolute(path).map_err(|e| HostError::unreadable(path, e))?;
        userfile::read_regular(
            None,
            None,
            absolute.as_os_str().as_bytes(),
            userfile::Anchor::InRoot,
            limit,
        )
        .map_err(|e| HostError::unreadable(path, e))
    }

    fn stdin_source(&self, pid: Pid) -> crate::model::StdinSource {
        let Ok(dir) = ProcDir::open(pid) else {
            return crate::model::StdinSource::Unknown;
        };
        match stat_entry_bounded(&dir, c"fd/0") {
            Ok(st) => crate::model::stdin_source_of(st.st_mode, st.st_rdev),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // No fd 0, or no process: only a live process has a closed stdin.
                if dir.read(c"stat", 1).is_ok() {
                    crate::model::StdinSource::Closed
                } else {
                    crate::model::StdinSource::Unknown
                }
            }
            Err(_) => crate::model::StdinSource::Unknown,
        }
    }

    fn path_changeable(&self, pid: Pid, dir: &str) -> String {
        if !dir.starts_with('/') {
            return format!("{dir:?} is not an absolute path");
        }
        let root = ProcDir::open(pid).map_err(|e| e.to_string()).and_then(|d| {
            d.open_entry(c"root", libc::O_PATH | libc::O_DIRECTORY)
                .map_err(|e| e.to_string())
        });
        match root {
            Ok(root) => script_file::changeable_directory(&root, dir.as_bytes()),
            Err(e) => format!("cannot open the root of process {pid}: {e}"),
        }
    }

    fn missing_since_start(&self, pid: Pid, path: &str) -> bool {
        let Ok(dir) = ProcDir::open(pid) else {
            return false;
        };
        // In another user namespace or root, what it saw need not be here at all.
        if script_file::other_view(&dir).is_some() {
            return false;
        }
        let Some(start_ns) = self.start_wall_clock_ns(&dir) else {
            return false;
        };
        let Ok(root) = dir.open_entry(c"root", libc::O_PATH | libc::O_DIRECTORY) else {
            return false;
        };
        // One tick earlier: the start is known to a tick, a coarse ctime to a jiffy.
        let tick_ns = 1_000_000_000 / i128::from(self.clock_ticks.max(1));
        script_file::missing_before(&root, path.as_bytes(), start_ns - tick_ns)
    }

    fn path_kind(&self, pid: Pid, path: &str) -> crate::model::PathKind {
        use crate::model::PathKind;
        // In the process's own root (a container's files, not the host's), following
        // symlinks as an import would; O_PATH only, so nothing is opened for I/O.
        let Ok(dir) = ProcDir::open(pid) else {
            return PathKind::Unknown;
        };
        let Ok(root) = dir.open_entry(c"root", libc::O_PATH | libc::O_DIRECTORY) else {
            return PathKind::Unknown;
        };
        let found = userfile::resolve(
            root.as_raw_fd(),
            path.as_bytes(),
            userfile::Anchor::InRoot,
            true,
        )
        .and_then(|r| userfile::fstat(r.fd.as_raw_fd()));
        match found {
            Ok(st) => match st.st_mode & libc::S_IFMT {
                libc::S_IFREG => PathKind::File,
                libc::S_IFDIR => PathKind::Dir,
                _ => PathKind::Other,
            },
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                PathKind::Missing
            }
            Err(_) => PathKind::Unknown,
        }
    }

    fn open_regular_files(
        &self,
        pid: Pid,
    ) -> Option<Result<Vec<crate::model::OpenFile>, HostError>> {
        Some(open_regular_files(pid))
    }

    fn script_file_key(
        &self,
        process: &ProcessInfo,
        path: &str,
    ) -> Option<Result<(u64, u64), HostError>> {
        let find = || -> Result<(u64, u64), HostError> {
            let dir = ProcDir::open(process.pid)?;
            let (base, anchor) = path_base(&dir, path)?;
            // O_PATH only: nothing is opened for reading.
            let resolved = userfile::resolve(base.as_raw_fd(), path.as_bytes(), anchor, true)
                .map_err(|e| HostError::unreadable(path, e))?;
            let st = userfile::fstat(resolved.fd.as_raw_fd())
                .map_err(|e| HostError::unreadable(path, e))?;
            Ok((st.st_dev, st.st_ino))
        };
        Some(find())
    }

    fn executable_is_at(&self, pid: Pid, path: &str) -> Result<bool, HostError> {
        use std::os::unix::fs::MetadataExt;
        let dir = ProcDir::open(pid)?;
        let namespace = || format!("the mount namespace of process {pid}");
        let theirs = dir
            .read_link(c"ns/mnt")
            .map_err(|e| HostError::unreadable(namespace(), e))?;
        let ours = std::fs::read_link("/proc/self/ns/mnt")
            .map_err(|e| HostError::unreadable("the scanner's own mount namespace", e))?;
        if std::path::Path::new(&theirs) != ours {
            return Ok(false);
        }
        let exe = stat_entry_bounded(&dir, c"exe")
            .map_err(|e| HostError::unreadable(format!("the executable of process {pid}"), e))?;
        let owned_path = path.to_owned();
        let file = userfile::on_worker(None, None, userfile::READ_TIMEOUT, move || {
            std::fs::metadata(owned_path)
        })
        .map_err(|e| HostError::unreadable(path, e))?;
        // Read again: the namespace link of a pid reused meanwhile would fail.
        dir.read_link(c"ns/mnt")
            .map_err(|e| HostError::unreadable(namespace(), e))?;
        Ok(exe.st_dev == file.dev() && exe.st_ino == file.ino())
    }

    fn executable_on_disk(&self, process: &ProcessInfo) -> Result<bool, ProcessCheckError> {
        let dir = ProcDir::open(process.pid)?;
        let (path, deleted) = dir
            .executable()
            .map_err(|e| ProcessCheckError::io("executable", e))?;
        if path.is_empty() || path != process.path {
            return Err(ProcessCheckError::ExecutableChanged);
        }
        if deleted {
            return Ok(false);
        }
        let exe =
            stat_entry_bounded(&dir, c"exe").map_err(|e| ProcessCheckError::io("executable", e))?;
        let running = (exe.st_dev, exe.st_ino);
        let credentials = credentials_of(&dir)?;
        let their_root = dir
            .open_entry(c"root", libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| ProcessCheckError::io("root of the process", e))?;
        // The kernel names the executable from the reader's root when it can reach
        // it (a chroot in our mount namespace), else from the process's own: look in
        // both, as the process's user (no lookup for it as root).
        let mut bases = vec![their_root];
        let our_root = procfs::open_at(libc::AT_FDCWD, c"/", libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| ProcessCheckError::io("/", e))?;
        let same_root = |a: &std::os::fd::OwnedFd, b: &std::os::fd::OwnedFd| match (
            userfile::fstat(a.as_raw_fd()),
            userfile::fstat(b.as_raw_fd()),
        ) {
            (Ok(x), Ok(y)) => (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino),
            _ => false,
        };
        if !same_root(&bases[0], &our_root) {
            bases.push(our_root);
        }
        for base in bases {
            let path = path.clone().into_bytes();
            let found = userfile::as_user(
                Some(credentials.clone()),
                userfile::OPEN_TIMEOUT,
                move || {
                    let resolved =
                        userfile::resolve(base.as_raw_fd(), &path, userfile::Anchor::InRoot, true)?;
                    let st = userfile::fstat(resolved.fd.as_raw_fd())?;
                    Ok((st.st_dev, st.st_ino))
                },
            );
            match found {
                Ok(key) if key == running => return Ok(true),
                // Another file, or none, at the path: replaced or deleted.
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {}
                Err(e) => return Err(ProcessCheckError::io(process.path.clone(), e)),
            }
        }
        Ok(false)
    }

    fn control_group(&self, pid: Pid) -> Result<crate::model::ControlGroup, ProcessCheckError> {
        let dir = ProcDir::open(pid)?;
        let (text, truncated) = dir
            .read_capped(c"cgroup", procfs::MAX_SMALL_BYTES)
            .map_err(|e| ProcessCheckError::io("cgroup", e))?;
        if truncated {
            return Err(ProcessCheckError::TooLong {
                what: "cgroup",
                limit: procfs::MAX_SMALL_BYTES,
            });
        }
        Ok(crate::model::ControlGroup::parse(&String::from_utf8_lossy(
            &text,
        )))
    }

    fn environment(&self, pid: Pid) -> Result<Vec<String>, HostError> {
        environment_of(&ProcDir::open(pid)?)
    }

    fn mapped_code(&self, pid: Pid) -> Option<Result<Vec<String>, HostError>> {
        Some(executable_mappings(pid))
    }

    fn mapped_libraries(&self, pid: Pid) -> Result<Vec<String>, HostError> {
        let dir = ProcDir::open(pid)?;
        let stamp = if self.config.remember_process_facts {
            dir.stamp()
        } else {
            None
        };
        if let Some(found) = stamp.as_ref().and_then(|s| self.mapped.get(s)) {
            return Ok(found);
        }
        if let Some(paths) =
            procfs::executable_mappings(&dir).map_err(|e| process_error(pid, &e))?
        {
            // Kept only when the image did not change while it was read.
            if let Some(stamp) = stamp.filter(|s| dir.stamp().as_ref() == Some(s)) {
                self.mapped.insert(stamp, paths.clone());
            }
            return Ok(paths);
        }
        let maps = whole_maps(&dir)?;
        Ok(procfs::parse_maps_paths(&String::from_utf8_lossy(&maps)))
    }
}

/// The process's `maps` text, whole: a mapping named past the read limit would
/// be missed, so a cut is an error (unknown, not absent).
fn whole_maps(dir: &ProcDir) -> Result<Vec<u8>, HostError> {
    let pid = dir.pid();
    let (maps, truncated) = dir
        .read_capped(c"maps", procfs::MAX_MAPS_BYTES)
        .map_err(|e| process_error(pid, &e))?;
    if truncated {
        return Err(HostError::Truncated {
            pid,
            what: "maps",
            limit: procfs::MAX_MAPS_BYTES,
        });
    }
    Ok(maps)
}

/// The files mapped executable into `pid`, as the host names them (see
/// `Host::mapped_code`): `PROCMAP_QUERY`, else the executable lines of `maps`.
fn executable_mappings(pid: Pid) -> Result<Vec<String>, HostError> {
    let dir = ProcDir::open(pid)?;
    if let Some(why) = script_file::other_view(&dir) {
        return Err(HostError::Malformed {
            what: format!("the code mapped into process {pid}"),
            why,
        });
    }
    if let Some(paths) = procfs::executable_mappings(&dir).map_err(|e| process_error(pid, &e))? {
        return Ok(paths);
    }
    let maps = whole_maps(&dir)?;
    // `address perms offset dev inode path`: only mappings with `x` in perms.
    let text = String::from_utf8_lossy(&maps);
    let executable: String = text
        .lines()
        .filter(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|perms| perms.contains('x'))
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    Ok(procfs::parse_maps_paths(&executable))
}

/// Where a user-named path starts, as the program naming it would resolve it:
/// absolute paths in the process's root, relative ones from its cwd (never above
/// it: the way up is not known to be its own).
fn path_base(
    dir: &ProcDir,
    path: &str,
) -> Result<(std::os::fd::OwnedFd, userfile::Anchor), HostError> {
    let (entry, anchor) = if path.starts_with('/') {
        (c"root", userfile::Anchor::InRoot)
    } else {
        (c"cwd", userfile::Anchor::Beneath)
    };
    dir.open_entry(entry, libc::O_PATH | libc::O_DIRECTORY)
        .map(|base| (base, anchor))
        .map_err(|e| HostError::unreadable(format!("the {entry:?} of process {}", dir.pid()), e))
}

/// A clock's reading in nanoseconds; `None` if it cannot be read.
/// `CLOCK_BOOTTIME` in ns: the clock `bpf_ktime_get_boot_ns` reads.
pub(super) fn boot_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: now is valid for writes.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) };
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

fn clock_ns(clock: libc::clockid_t) -> Option<i128> {
    // SAFETY: timespec is plain data; clock_gettime fills it or fails.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: ts is valid for writes.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}
