//! Exec and exit events of followed pids through kqueue `EVFILT_PROC`
//! (`NOTE_EXEC | NOTE_EXIT`): what macOS offers without an Endpoint Security
//! entitlement. kqueue cannot announce new pids, so the watch lists the pids
//! every second ([`ProcessEvents::reports_every_process`] is false) and follows
//! each new one here. At most [`MAX_FOLLOWED`] pids are followed; the kernel drops
//! a knote by itself when its process exits.

use crate::model::Pid;
use crate::platform::{EventSourceError, ProcessEvent, ProcessEvents};
use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Pids followed at once (one knote each, kernel memory).
pub const MAX_FOLLOWED: usize = 8192;
/// Events read per `kevent` call.
const BATCH: usize = 256;

pub struct KqueueEvents {
    queue: OwnedFd,
    followed: HashSet<Pid>,
}

impl KqueueEvents {
    pub fn open() -> Result<KqueueEvents, EventSourceError> {
        // SAFETY: plain kqueue(2) call; the result is checked before use.
        let fd = unsafe { libc::kqueue() };
        if fd < 0 {
            return Err(EventSourceError::last_os_error("kqueue"));
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        let queue = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(queue.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        Ok(KqueueEvents {
            queue,
            followed: HashSet::new(),
        })
    }
}

impl ProcessEvents for KqueueEvents {
    fn name(&self) -> &'static str {
        "kqueue"
    }

    fn reports_every_process(&self) -> bool {
        false
    }

    fn follow(&mut self, pid: Pid) -> Result<(), EventSourceError> {
        if self.followed.contains(&pid) {
            return Ok(());
        }
        if self.followed.len() >= MAX_FOLLOWED {
            return Err(EventSourceError::FollowLimit(MAX_FOLLOWED));
        }
        let ident = usize::try_from(pid).map_err(|_| EventSourceError::InvalidPid(pid))?;
        let change = libc::kevent {
            ident,
            filter: libc::EVFILT_PROC,
            flags: libc::EV_ADD | libc::EV_CLEAR,
            fflags: libc::NOTE_EXIT | libc::NOTE_EXEC,
            data: 0,
            udata: std::ptr::null_mut(),
        };
        // SAFETY: one valid change, no event list.
        let rc = unsafe {
            libc::kevent(
                self.queue.as_raw_fd(),
                &change,
                1,
                std::ptr::null_mut(),
                0,
                std::ptr::null(),
            )
        };
        if rc < 0 {
            // ESRCH: it exited before it could be followed.
            return Err(EventSourceError::Follow {
                pid,
                source: io::Error::last_os_error(),
            });
        }
        self.followed.insert(pid);
        Ok(())
    }

    fn wait(
        &mut self,
        timeout: Duration,
        max: usize,
        out: &mut Vec<ProcessEvent>,
    ) -> Result<(), EventSourceError> {
        // SAFETY: an all-zero kevent array is valid for the kernel to fill.
        let mut events: [libc::kevent; BATCH] = unsafe { std::mem::zeroed() };
        let wanted = libc::c_int::try_from(max.clamp(1, BATCH)).unwrap_or(1);
        let timeout = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
        };
        // SAFETY: no changes; `events` holds `wanted` entries; timeout is valid.
        let n = unsafe {
            libc::kevent(
                self.queue.as_raw_fd(),
                std::ptr::null(),
                0,
                events.as_mut_ptr(),
                wanted,
                &timeout,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(EventSourceError::Call {
                what: "kevent",
                source: e,
            });
        }
        for event in events.iter().take(usize::try_from(n).unwrap_or(0)) {
            let Ok(pid) = Pid::try_from(event.ident) else {
                continue;
            };
            if event.flags & libc::EV_ERROR != 0 {
                continue;
            }
            if event.fflags & libc::NOTE_EXEC != 0 {
                out.push(ProcessEvent::Exec(pid));
            }
            if event.fflags & libc::NOTE_EXIT != 0 {
                self.followed.remove(&pid);
                out.push(ProcessEvent::Exit(pid));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A followed child's exec and exit are reported (runs on the macOS CI job).
    #[test]
    fn a_followed_childs_exec_and_exit_are_reported() {
        let mut events = KqueueEvents::open().expect("kqueue");
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 1; exec /bin/sleep 1"])
            .spawn()
            .expect("spawn sh");
        let pid = Pid::try_from(child.id()).expect("pid");
        events.follow(pid).expect("follow");
        assert!(events.follow(pid).is_ok(), "following twice is harmless");
        let mut seen = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30)
            && !seen.contains(&ProcessEvent::Exit(pid))
        {
            events
                .wait(Duration::from_millis(200), 64, &mut seen)
                .expect("wait");
        }
        let _ = child.wait();
        assert!(seen.contains(&ProcessEvent::Exec(pid)), "{seen:?}");
        assert!(seen.contains(&ProcessEvent::Exit(pid)), "{seen:?}");
        assert!(
            events.followed.is_empty(),
            "an exited pid is no longer followed"
        );
    }
}
