//! Thin, safe wrappers over the macOS calls the backend makes per process:
//! `proc_pidinfo` (BSD info, cwd), `sysctl(KERN_PROCARGS2)`, `csops`, `getxattr`.
//! Each returns the raw errno on failure so callers can skip vanished processes.

use super::procargs::{self, ProcArgs};
use crate::model::Pid;
use crate::platform::HostError;
use libc::{c_int, c_void};
use std::ffi::{CStr, CString};

/// The errno of the call that just failed.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// ESRCH -> vanished, EPERM/EACCES -> permission, anything else described.
pub fn host_error(pid: Pid, errno: i32, what: &str) -> HostError {
    match errno {
        libc::ESRCH => HostError::Vanished(pid),
        libc::EPERM | libc::EACCES => HostError::PermissionDenied(pid),
        e => HostError::unreadable(
            format!("the {what} of process {pid}"),
            std::io::Error::from_raw_os_error(e),
        ),
    }
}

/// What `PROC_PIDTBSDINFO` (or, without privilege, the short info) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BsdInfo {
    pub ppid: Pid,
    pub ruid: u32,
    /// Effective uid (what the kernel's permission checks compare).
    pub euid: u32,
    /// Start time (seconds, microseconds); `None` from the short info.
    pub start: Option<(u64, u64)>,
    /// Size of the fd table.
    pub nfiles: u32,
}

fn pidinfo<T>(pid: Pid, flavor: c_int) -> Result<T, i32> {
    // SAFETY: T is a plain C struct of integers and arrays; all-zero is valid.
    let mut info: T = unsafe { std::mem::zeroed() };
    let size = c_int::try_from(std::mem::size_of::<T>()).map_err(|_| libc::EINVAL)?;
    // SAFETY: the buffer is `size` bytes of writable memory owned by `info`.
    let ret =
        unsafe { libc::proc_pidinfo(pid, flavor, 0, (&mut info as *mut T).cast::<c_void>(), size) };
    if ret == size {
        Ok(info)
    } else if ret <= 0 {
        Err(match errno() {
            0 => libc::ESRCH,
            e => e,
        })
    } else {
        Err(libc::EIO)
    }
}

/// Parent, real uid, start time and fd table size of a process.
pub fn bsd_info(pid: Pid) -> Result<BsdInfo, i32> {
    match pidinfo::<libc::proc_bsdinfo>(pid, libc::PROC_PIDTBSDINFO) {
        Ok(info) => Ok(BsdInfo {
            ppid: Pid::try_from(info.pbi_ppid).unwrap_or(0),
            ruid: info.pbi_ruid,
            euid: info.pbi_uid,
            start: Some((info.pbi_start_tvsec, info.pbi_start_tvusec)),
            nfiles: info.pbi_nfiles,
        }),
        Err(e) if e == libc::EPERM || e == libc::EACCES => {
            let short = pidinfo::<libc::proc_bsdshortinfo>(pid, libc::PROC_PIDT_SHORTBSDINFO)?;
            Ok(BsdInfo {
                ppid: Pid::try_from(short.pbsi_ppid).unwrap_or(0),
                ruid: short.pbsi_ruid,
                euid: short.pbsi_uid,
                start: None,
                nfiles: 0,
            })
        }
        Err(e) => Err(e),
    }
}

/// Current working directory (`PROC_PIDVNODEPATHINFO`).
pub fn cwd(pid: Pid) -> Result<String, i32> {
    let info = pidinfo::<libc::proc_vnodepathinfo>(pid, libc::PROC_PIDVNODEPATHINFO)?;
    let path = &info.pvi_cdir.vip_path;
    // SAFETY: vip_path is MAXPATHLEN contiguous c_chars (an array of arrays).
    let bytes: &[u8] = unsafe {
        std::slice::from_raw_parts(path.as_ptr().cast::<u8>(), std::mem::size_of_val(path))
    };
    Ok(CStr::from_bytes_until_nul(bytes)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned()))
}

/// argv, environment and exec path (`sysctl KERN_PROCARGS2`; root for other users).
/// The area's size is asked first (`oldp = NULL`): the kernel returns the *tail* of an
/// area larger than the buffer, so a reply that fills the buffer is unreliable.
pub fn procargs(pid: Pid) -> Result<ProcArgs, HostError> {
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
    let mut needed: usize = 0;
    // SAFETY: mib has 3 entries; a null output asks only for the size.
    let ret = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            std::ptr::null_mut(),
            &mut needed,
            std::ptr::null_mut(),
            0,
        )
    };
    if ret != 0 {
        return Err(procargs_error(pid, errno()));
    }
    let Some(capacity) = procargs::buffer_capacity(needed, argmax()) else {
        return Ok(ProcArgs {
            unreliable: true,
            ..Default::default()
        });
    };
    let mut buf = vec![0u8; capacity];
    let mut len = buf.len();
    // SAFETY: mib has 3 entries; the output buffer is `len` writable bytes.
    let ret = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            buf.as_mut_ptr().cast::<c_void>(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if ret != 0 {
        return Err(procargs_error(pid, errno()));
    }
    buf.truncate(len.min(capacity));
    procargs::parse_reply(&buf, capacity).map_err(|e| HostError::Malformed {
        what: format!("the argv of process {pid}"),
        why: e.to_string(),
    })
}

fn procargs_error(pid: Pid, e: i32) -> HostError {
    // The kernel answers EINVAL both for exited processes and for ones we may not
    // read; callers know from bsd_info whether the process is alive.
    HostError::unreadable(
        format!("the argv of process {pid}"),
        format!(
            "{}{}",
            std::io::Error::from_raw_os_error(e),
            if e == libc::EINVAL || e == libc::EPERM {
                " (another user's process: run as root)"
            } else {
                ""
            }
        ),
    )
}

/// `kern.argmax`: the largest buffer `KERN_PROCARGS2` accepts (ARG_MAX, 1 MiB).
fn argmax() -> usize {
    let mut argmax: c_int = 0;
    let mut size = std::mem::size_of::<c_int>();
    let mut mib = [libc::CTL_KERN, libc::KERN_ARGMAX];
    // SAFETY: mib has 2 entries; the output is one c_int of `size` bytes.
    let ret = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            2,
            (&mut argmax as *mut c_int).cast::<c_void>(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if ret == 0 {
        usize::try_from(argmax).unwrap_or(0)
    } else {
        1024 * 1024
    }
}

/// `task_info` flavor and size (in `integer_t`s) of `audit_token_t`.
const TASK_AUDIT_TOKEN: libc::task_flavor_t = 15;
const AUDIT_TOKEN_WORDS: usize = 8;

extern "C" {
    /// libSystem's function form of the `mach_task_self()` macro (libc's is deprecated).
    fn mach_task_self() -> libc::mach_port_t;
    fn task_name_for_pid(
        target: libc::mach_port_t,
        pid: libc::pid_t,
        name: *mut libc::mach_port_t,
    ) -> libc::kern_return_t;
    fn mach_port_deallocate(
        task: libc::mach_port_t,
        name: libc::mach_port_t,
    ) -> libc::kern_return_t;
}

/// The audit token of a running process (root only: `task_name_for_pid`). It names
/// that process incarnation, so a Security.framework lookup by it cannot reach a
/// later holder of the pid. `None` when it cannot be had or names another pid.
pub fn audit_token(pid: Pid) -> Option<[u8; 4 * AUDIT_TOKEN_WORDS]> {
    let mut name: libc::mach_port_t = 0;
    // SAFETY: mach_task_self() is always valid; `name` receives a send right.
    let kr = unsafe { task_name_for_pid(mach_task_self(), pid, &mut name) };
    if kr != libc::KERN_SUCCESS {
        return None;
    }
    let mut words = [0 as libc::integer_t; AUDIT_TOKEN_WORDS];
    let mut count = AUDIT_TOKEN_WORDS as libc::mach_msg_type_number_t;
    // SAFETY: `words` holds `count` integer_t; `name` is the send right from above.
    let kr = unsafe { libc::task_info(name, TASK_AUDIT_TOKEN, words.as_mut_ptr(), &mut count) };
    // SAFETY: releases the send right task_name_for_pid gave us.
    unsafe { mach_port_deallocate(mach_task_self(), name) };
    // audit_token_t.val[5] is the pid.
    if kr != libc::KERN_SUCCESS || count as usize != AUDIT_TOKEN_WORDS || words[5] != pid {
        return None;
    }
    let mut token = [0u8; 4 * AUDIT_TOKEN_WORDS];
    for (chunk, word) in token.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(token)
}

/// `struct proc_fileinfo` and `struct vnode_fdinfowithpath` (`sys/proc_info.h`;
/// libc does not declare them).
#[repr(C)]
struct ProcFileInfo {
    fi_openflags: u32,
    fi_status: u32,
    fi_offset: libc::off_t,
    fi_type: i32,
    fi_guardflags: u32,
}

#[repr(C)]
struct VnodeFdInfoWithPath {
    pfi: ProcFileInfo,
    pvip: libc::vnode_info_path,
}

const PROC_PIDFDVNODEPATHINFO: c_int = 2;

/// fd 0 of a process as libproc describes it (its type; mode and path for a vnode).
pub fn fd0(pid: Pid) -> Result<super::stdin::Fd0, i32> {
    use super::stdin::{Fd0, PROX_FDTYPE_VNODE};
    let nfiles = bsd_info(pid)?.nfiles as usize;
    let fds = list_fds(pid, (nfiles + 32).clamp(64, MAX_LISTED_FDS))?;
    let Some(fd) = fds.iter().find(|f| f.fd == 0) else {
        return Ok(Fd0::Absent);
    };
    if fd.fd_type != PROX_FDTYPE_VNODE {
        return Ok(Fd0::Other {
            fd_type: fd.fd_type,
        });
    }
    Ok(match vnode_of_fd(pid, 0) {
        Some(vnode) => Fd0::Vnode {
            mode: vnode.mode,
            path: vnode.path,
        },
        None => Fd0::Other {
            fd_type: fd.fd_type,
        },
    })
}

/// What `PROC_PIDFDVNODEPATHINFO` says about a vnode fd.
pub struct FdVnode {
    pub mode: u16,
    pub dev: u32,
    pub ino: u64,
    pub path: String,
}

/// The vnode behind one fd, `None` when it cannot be read (closed, not a vnode).
pub fn vnode_of_fd(pid: Pid, fd: i32) -> Option<FdVnode> {
    // SAFETY: plain C data; all-zero is valid.
    let mut info: VnodeFdInfoWithPath = unsafe { std::mem::zeroed() };
    let size = c_int::try_from(std::mem::size_of::<VnodeFdInfoWithPath>()).ok()?;
    // SAFETY: the buffer is `size` writable bytes owned by `info`.
    let ret = unsafe {
        libc::proc_pidfdinfo(
            pid,
            fd,
            PROC_PIDFDVNODEPATHINFO,
            (&mut info as *mut VnodeFdInfoWithPath).cast::<c_void>(),
            size,
        )
    };
    if ret != size {
        return None;
    }
    let stat = &info.pvip.vip_vi.vi_stat;
    Some(FdVnode {
        mode: stat.vst_mode,
        dev: stat.vst_dev,
        ino: stat.vst_ino,
        path: c_path(&info.pvip.vip_path),
    })
}

/// A `vip_path` (MAXPATHLEN c_chars, NUL-terminated) as a string.
fn c_path(path: &[[libc::c_char; 32]; 32]) -> String {
    // SAFETY: vip_path is MAXPATHLEN contiguous c_chars.
    let bytes: &[u8] = unsafe {
        std::slice::from_raw_parts(path.as_ptr().cast::<u8>(), std::mem::size_of_val(path))
    };
    CStr::from_bytes_until_nul(bytes)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Most regular files reported per process.
const MAX_OPEN_FILES: usize = 65_536;

/// The regular files a process holds open: fd, (device, inode) and the kernel's name.
pub fn open_regular_files(pid: Pid) -> Result<Vec<crate::model::OpenFile>, i32> {
    use super::stdin::PROX_FDTYPE_VNODE;
    let nfiles = bsd_info(pid)?.nfiles as usize;
    let fds = list_fds(pid, (nfiles + 32).clamp(64, MAX_LISTED_FDS))?;
    Ok(fds
        .iter()
        .filter(|f| f.fd_type == PROX_FDTYPE_VNODE)
        .filter_map(|f| {
            let vnode = vnode_of_fd(pid, f.fd)?;
            (u32::from(vnode.mode) & u32::from(libc::S_IFMT) == u32::from(libc::S_IFREG)).then(
                || crate::model::OpenFile {
                    fd: i64::from(f.fd),
                    dev: u64::from(vnode.dev),
                    ino: vnode.ino,
                    path: vnode.path,
                },
            )
        })
        .take(MAX_OPEN_FILES)
        .collect())
}

/// (device, inode) of the file the process executes: the mapped region whose vnode
/// path is the kernel's executable path (both the kernel's, never the process's word).
pub fn executable_file_id(pid: Pid) -> Result<(u32, u64), i32> {
    let exe = libproc::libproc::proc_pid::pidpath(pid).map_err(|_| libc::ESRCH)?;
    let mut found = None;
    walk_regions(pid, |path, vnode| {
        if path == exe {
            found = Some((vnode.vi_stat.vst_dev, vnode.vi_stat.vst_ino));
            false
        } else {
            true
        }
    })?;
    found.ok_or(libc::ENOENT)
}

/// Most fds listed per process (a bound on memory, far above real tables).
pub const MAX_LISTED_FDS: usize = 262_144;

/// One entry of `PROC_PIDLISTFDS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFd {
    pub fd: i32,
    pub fd_type: u32,
}

/// The open fds of a process (`proc_pidinfo(PROC_PIDLISTFDS)`, at most `capacity`).
/// A process with no open fd has an empty list: the call returns 0 bytes for it,
/// which is not an error (libproc's wrapper treats it as one).
pub fn list_fds(pid: Pid, capacity: usize) -> Result<Vec<OpenFd>, i32> {
    let entry = std::mem::size_of::<libc::proc_fdinfo>();
    let mut entries: Vec<libc::proc_fdinfo> = Vec::with_capacity(capacity);
    let bytes = c_int::try_from(capacity.saturating_mul(entry)).map_err(|_| libc::EINVAL)?;
    // libproc's proc_pidinfo returns 0 both for an empty list and for a failure
    // (then with errno set): clear errno to tell them apart.
    // SAFETY: __error() points at this thread's errno.
    unsafe { *libc::__error() = 0 };
    // SAFETY: the buffer has room for `capacity` entries (`bytes` bytes).
    let ret = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDLISTFDS,
            0,
            entries.as_mut_ptr().cast::<c_void>(),
            bytes,
        )
    };
    let filled = super::sockinfo::listed_fds(ret, errno(), entry, capacity)?;
    // SAFETY: the kernel wrote `filled` whole entries (at most `capacity`).
    unsafe { entries.set_len(filled) };
    Ok(entries
        .iter()
        .map(|f| OpenFd {
            fd: f.proc_fd,
            fd_type: f.proc_fdtype,
        })
        .collect())
}

/// `csops` operations (xnu `sys/codesign.h`).
const CS_OPS_STATUS: u32 = 0;
const CS_OPS_CDHASH: u32 = 5;
/// Length of a cdhash as the kernel reports it.
pub const CDHASH_LEN: usize = 20;

extern "C" {
    /// Private but stable libSystem call behind `codesign` and `ps`-style tools.
    fn csops(pid: libc::pid_t, ops: u32, useraddr: *mut c_void, usersize: usize) -> c_int;
}

/// The kernel's code-signing flags of a running process (no privilege needed).
pub fn kernel_cs_flags(pid: Pid) -> Result<u32, i32> {
    let mut flags: u32 = 0;
    // SAFETY: the output is one u32 of the size given.
    let ret = unsafe {
        csops(
            pid,
            CS_OPS_STATUS,
            (&mut flags as *mut u32).cast::<c_void>(),
            std::mem::size_of::<u32>(),
        )
    };
    if ret == 0 {
        Ok(flags)
    } else {
        Err(errno())
    }
}

/// The cdhash the kernel holds for a running process (fails for unsigned code).
pub fn kernel_cdhash(pid: Pid) -> Result<[u8; CDHASH_LEN], i32> {
    let mut hash = [0u8; CDHASH_LEN];
    // SAFETY: the output buffer is CDHASH_LEN writable bytes.
    let ret = unsafe {
        csops(
            pid,
            CS_OPS_CDHASH,
            hash.as_mut_ptr().cast::<c_void>(),
            CDHASH_LEN,
        )
    };
    if ret == 0 {
        Ok(hash)
    } else {
        Err(errno())
    }
}

/// An extended attribute's value (at most `max` bytes), `None` when absent.
pub fn xattr(path: &str, name: &str, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let c_path = CString::new(path).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let c_name = CString::new(name).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let mut buf = vec![0u8; max];
    // SAFETY: NUL-terminated strings; the buffer is `max` writable bytes.
    let ret = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast::<c_void>(),
            buf.len(),
            0,
            0,
        )
    };
    if ret < 0 {
        let err = std::io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOATTR) => Ok(None),
            // Bigger than we read: present, value cut.
            Some(libc::ERANGE) => Ok(Some(Vec::new())),
            _ => Err(err),
        };
    }
    buf.truncate(usize::try_from(ret).unwrap_or(0));
    Ok(Some(buf))
}

/// A user's name and home directory from Directory Services (`getpwuid_r`): on
/// macOS most accounts are not in /etc/passwd.
pub fn passwd_entry(uid: i64) -> Option<(String, String)> {
    let uid = libc::uid_t::try_from(uid).ok()?;
    // SAFETY: passwd is plain data; all-zero is a valid initial value.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live, writable memory of the sizes given.
    let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || entry.pw_dir.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name and pw_dir point into `buf`, NUL-terminated by getpwuid_r.
    let (name, dir) = unsafe { (CStr::from_ptr(entry.pw_name), CStr::from_ptr(entry.pw_dir)) };
    Some((
        name.to_string_lossy().into_owned(),
        dir.to_string_lossy().into_owned(),
    ))
}

/// A user's home directory from Directory Services.
pub fn home_directory(uid: i64) -> Option<String> {
    passwd_entry(uid).map(|(_, dir)| dir)
}

/// A user's name from Directory Services.
pub fn user_name(uid: i64) -> Option<String> {
    passwd_entry(uid).map(|(name, _)| name)
}

/// `struct proc_regioninfo` (`sys/proc_info.h`; libc does not declare it).
#[repr(C)]
struct ProcRegionInfo {
    pri_protection: u32,
    pri_max_protection: u32,
    pri_inheritance: u32,
    pri_flags: u32,
    pri_offset: u64,
    pri_behavior: u32,
    pri_user_wired_count: u32,
    pri_user_tag: u32,
    pri_pages_resident: u32,
    pri_pages_shared_now_private: u32,
    pri_pages_swapped_out: u32,
    pri_pages_dirtied: u32,
    pri_ref_count: u32,
    pri_shadow_depth: u32,
    pri_share_mode: u32,
    pri_private_pages_resident: u32,
    pri_shared_pages_resident: u32,
    pri_obj_id: u32,
    pri_depth: u32,
    pri_address: u64,
    pri_size: u64,
}

/// `struct proc_regionwithpathinfo`.
#[repr(C)]
struct ProcRegionWithPathInfo {
    prp_prinfo: ProcRegionInfo,
    prp_vip: libc::vnode_info_path,
}

const PROC_PIDREGIONPATHINFO: c_int = 8;
/// Most regions walked per process (a bound on time; real processes have a few
/// thousand).
const MAX_REGIONS: usize = 100_000;

/// The distinct files mapped into a process (executable, dylibs outside the shared
/// cache, the shared cache itself, mapped data files), in address order.
pub fn mapped_files(pid: Pid) -> Result<Vec<String>, i32> {
    let mut files: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    walk_regions(pid, |path, _| {
        if !path.is_empty() && seen.insert(path.to_string()) {
            files.push(path.to_string());
        }
        true
    })?;
    Ok(files)
}

/// Calls `visit(path, vnode)` for each mapped region in address order (bounded by
/// MAX_REGIONS) until it returns false.
fn walk_regions(
    pid: Pid,
    mut visit: impl FnMut(&str, &libc::vnode_info) -> bool,
) -> Result<(), i32> {
    let mut address: u64 = 0;
    let size =
        c_int::try_from(std::mem::size_of::<ProcRegionWithPathInfo>()).map_err(|_| libc::EINVAL)?;
    for walked in 0..MAX_REGIONS {
        // SAFETY: plain C data; all-zero is valid.
        let mut info: ProcRegionWithPathInfo = unsafe { std::mem::zeroed() };
        // SAFETY: the buffer is `size` writable bytes owned by `info`.
        let ret = unsafe {
            libc::proc_pidinfo(
                pid,
                PROC_PIDREGIONPATHINFO,
                address,
                (&mut info as *mut ProcRegionWithPathInfo).cast::<c_void>(),
                size,
            )
        };
        if ret != size {
            // Past the last region the call fails: only a failure on the first
            // region means the process could not be read.
            if walked == 0 {
                return Err(match errno() {
                    0 => libc::ESRCH,
                    e => e,
                });
            }
            break;
        }
        let path = c_path(&info.prp_vip.vip_path);
        if !visit(&path, &info.prp_vip.vip_vi) {
            break;
        }
        let region = &info.prp_prinfo;
        match region.pri_address.checked_add(region.pri_size) {
            Some(next) if next > address => address = next,
            _ => break,
        }
    }
    Ok(())
}

/// The process macOS holds responsible for `pid` (the app behind an XPC helper or a
/// script it launched, as TCC sees it). The function is private API in libSystem:
/// it is looked up at run time so a macOS without it still links and runs.
pub fn responsible_pid(pid: Pid) -> Option<Pid> {
    type Responsible = unsafe extern "C" fn(libc::pid_t) -> libc::pid_t;
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no preconditions.
    let symbol = unsafe {
        libc::dlsym(
            libc::RTLD_DEFAULT,
            c"responsibility_get_pid_responsible_for_pid".as_ptr(),
        )
    };
    if symbol.is_null() {
        return None;
    }
    // SAFETY: the symbol has this C signature (pid_t -> pid_t) on every macOS that
    // exports it.
    let responsible: Responsible =
        unsafe { std::mem::transmute::<*mut c_void, Responsible>(symbol) };
    // SAFETY: plain call with a pid; it returns -1 on error.
    let found = unsafe { responsible(pid) };
    (found > 0).then_some(found)
}
