//! Socket scan with libproc: every pid (or the ones asked for), its fd list
//! (`PROC_PIDLISTFDS`, an empty list for a process with no fd), and `PROC_PIDFDSOCKETINFO` for each socket fd. The fields
//! are copied into a plain [`RawInetSocket`] and converted by `sockinfo.rs`.
//!
//! A process that exits (ESRCH) or belongs to another user while we are not root
//! (EPERM) is skipped and counted; an fd closed between listing and reading
//! (EBADF) is skipped. The process's start time is compared before and after its
//! fds are read: a different start time means the pid was reused mid-scan, and
//! what was read is discarded.

use super::sockinfo::{self, RawInetSocket, ReadFailure, SOCKINFO_IN, SOCKINFO_TCP};
use super::sys;
use crate::model::{Pid, SocketInfo, SocketQuery, SocketScan};
use libproc::libproc::file_info::pidfdinfo;
use libproc::libproc::net_info::{InSockInfo, SocketFDInfo};
use libproc::processes::{pids_by_type, ProcFilter};

/// Most error notes kept in a scan result.
const MAX_ERROR_NOTES: usize = 32;

/// Every pid alive now.
pub fn all_pids() -> std::io::Result<Vec<Pid>> {
    Ok(pids_by_type(ProcFilter::All)?
        .into_iter()
        .filter_map(|p| Pid::try_from(p).ok())
        .filter(|&p| p > 0)
        .collect())
}

/// Scans the processes and protocols `query` names.
pub fn scan(query: &SocketQuery) -> SocketScan {
    let mut result = SocketScan::default();
    if query.protocols.is_empty() {
        return result;
    }
    let pids = match &query.pids {
        Some(pids) => pids.clone(),
        None => match all_pids() {
            Ok(pids) => pids,
            Err(e) => {
                result.errors.push(format!("cannot list processes: {e}"));
                return result;
            }
        },
    };
    let mut closed_fds = 0usize;
    let mut denied = 0usize;
    for pid in pids {
        match scan_process(pid, &mut closed_fds) {
            Ok(sockets) => result
                .sockets
                .extend(sockets.into_iter().filter(|s| query.protocols.wants(s))),
            Err((failure, note)) => {
                result.skipped_processes += 1;
                if failure == ReadFailure::Permission {
                    denied += 1;
                } else if failure != ReadFailure::Vanished && result.errors.len() < MAX_ERROR_NOTES
                {
                    result.errors.push(note);
                }
            }
        }
    }
    if denied > 0 {
        result.errors.push(format!(
            "{denied} processes of other users skipped (permission denied: run as root)"
        ));
    }
    if closed_fds > 0 {
        result.errors.push(format!(
            "{closed_fds} socket fds closed (or unreadable) between listing and reading"
        ));
    }
    result
}

type Failure = (ReadFailure, String);

fn failure_from_errno(pid: Pid, errno: i32, what: &str) -> Failure {
    (
        sockinfo::read_failure(Some(errno)),
        format!(
            "{what} of process {pid}: {}",
            std::io::Error::from_raw_os_error(errno)
        ),
    )
}

fn failure_from_message(pid: Pid, message: &str, what: &str) -> Failure {
    (
        sockinfo::read_failure(sockinfo::errno_in_message(message)),
        format!("{what} of process {pid}: {message}"),
    )
}

/// The inet sockets of one process, or why it was skipped.
fn scan_process(pid: Pid, closed_fds: &mut usize) -> Result<Vec<SocketInfo>, Failure> {
    let before = sys::bsd_info(pid).map_err(|e| failure_from_errno(pid, e, "bsd info"))?;
    // pbi_nfiles is the fd table's size; the margin covers fds opened since.
    let capacity = (before.nfiles as usize + 32).clamp(64, sys::MAX_LISTED_FDS);
    // Directly, not libproc's listpidinfo: it reports a process with no open fd
    // as an error.
    let fds = sys::list_fds(pid, capacity).map_err(|e| failure_from_errno(pid, e, "fd list"))?;
    let mut sockets = Vec::new();
    for fd in fds {
        if fd.fd_type != libc::PROX_FDTYPE_SOCKET as u32 {
            continue;
        }
        let info = match pidfdinfo::<SocketFDInfo>(pid, fd.fd) {
            Ok(info) => info,
            Err(m) => match sockinfo::read_failure(sockinfo::errno_in_message(&m)) {
                ReadFailure::Closed | ReadFailure::Other => {
                    *closed_fds += 1;
                    continue;
                }
                _ => return Err(failure_from_message(pid, &m, "socket info")),
            },
        };
        if let Some(raw) = raw_socket(fd.fd, &info) {
            if let Some(socket) = sockinfo::to_socket_info(pid, &raw) {
                sockets.push(socket);
            }
        }
    }
    // Pid reuse: the process we listed must be the one still there.
    let after = sys::bsd_info(pid).map_err(|e| failure_from_errno(pid, e, "bsd info"))?;
    if after.start != before.start {
        return Err((
            ReadFailure::Vanished,
            format!("process {pid} was replaced during the scan (pid reused)"),
        ));
    }
    Ok(sockets)
}

/// Copies the valid union member (named by `soi_kind`) into a plain struct.
fn raw_socket(fd: i32, info: &SocketFDInfo) -> Option<RawInetSocket> {
    let psi = &info.psi;
    let (ini, tcp_state): (InSockInfo, i32) = match psi.soi_kind {
        // SAFETY: soi_kind names the union member the kernel filled.
        SOCKINFO_TCP => unsafe {
            (
                psi.soi_proto.pri_tcp.tcpsi_ini,
                psi.soi_proto.pri_tcp.tcpsi_state,
            )
        },
        // SAFETY: as above.
        SOCKINFO_IN => unsafe { (psi.soi_proto.pri_in, 0) },
        _ => return None,
    };
    // SAFETY: both union members are 16 plain bytes; in6_addr views all of them.
    let (local_addr, foreign_addr) =
        unsafe { (ini.insi_laddr.ina_6.s6_addr, ini.insi_faddr.ina_6.s6_addr) };
    Some(RawInetSocket {
        fd,
        socket_id: psi.soi_so,
        soi_kind: psi.soi_kind,
        soi_type: psi.soi_type,
        soi_protocol: psi.soi_protocol,
        soi_family: psi.soi_family,
        insi_vflag: ini.insi_vflag,
        local_port: ini.insi_lport,
        foreign_port: ini.insi_fport,
        local_addr,
        foreign_addr,
        tcp_state,
    })
}
