//! Process exec/fork/exit events from the netlink proc connector
//! (`NETLINK_CONNECTOR`, group `CN_IDX_PROC`). Root only (binding the group and
//! `PROC_CN_MCAST_LISTEN` need CAP_NET_ADMIN) and only in the initial user and pid
//! namespaces (the kernel ignores the request elsewhere, without an answer). The
//! receive buffer is bounded: when events come faster than they are read the kernel
//! drops them and `recv` fails with ENOBUFS, reported as [`ProcessEvent::Lost`].
//! Only the kernel (netlink port 0) is believed. Byte parsing is a pure function.
//! The connector drops the per-process facts the host caches as it reads each
//! exec and exit (everything after lost events), before anyone acts on them.

use crate::model::Pid;
use crate::platform::process_cache::ForgetProcesses;
use crate::platform::{EventSourceError, ProcessEvent, ProcessEvents};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// linux/connector.h: the proc connector's id.
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
/// linux/cn_proc.h `enum proc_cn_mcast_op`.
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;
/// linux/cn_proc.h `enum what`.
const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 1;
const PROC_EVENT_EXEC: u32 = 2;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// `struct nlmsghdr`.
const NLMSG_HEADER_LEN: usize = 16;
/// `struct cn_msg` without its data.
const CN_MSG_LEN: usize = 20;
/// `struct proc_event`: what, cpu, timestamp_ns, then the event's union.
const PROC_EVENT_DATA_AT: usize = 16;
/// A subscription message: header, cn_msg, one u32 op.
const SUBSCRIBE_LEN: usize = NLMSG_HEADER_LEN + CN_MSG_LEN + 4;

/// Kernel buffer for queued events (the kernel doubles it; each event costs about
/// 1 KiB of it): about 500 events of slack between two reads.
const RECEIVE_BUFFER_BYTES: libc::c_int = 256 * 1024;
/// One datagram: the connector sends one small event per datagram.
const DATAGRAM_BYTES: usize = 4096;
/// How long the kernel may take to acknowledge the subscription.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a message's `proc_event` starts in a datagram (one message each).
const EVENT_AT: u32 = (NLMSG_HEADER_LEN + CN_MSG_LEN) as u32;

/// A word of the datagram as a classic BPF absolute load sees it (network
/// order): the kernel writes host order, so compare with the bytes swapped.
fn bpf_word(value: u32) -> u32 {
    u32::from_be_bytes(value.to_ne_bytes())
}

/// The socket filter: the kernel queues only process forks, execs, process
/// exits and the subscription's answer. Thread creation and exit, comm, uid,
/// ptrace and coredump events are dropped before they take buffer space, so a
/// flood of them neither costs a read each nor pushes real events out.
fn event_filter() -> Vec<libc::sock_filter> {
    use libc::{
        BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_MISC, BPF_RET, BPF_TAX, BPF_W, BPF_X,
    };
    let load = |at: u32| libc::sock_filter {
        code: (BPF_LD | BPF_W | BPF_ABS) as u16,
        jt: 0,
        jf: 0,
        k: at,
    };
    let jump_if = |value: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
        jt,
        jf,
        k: bpf_word(value),
    };
    let jump_if_x = |jt: u8, jf: u8| libc::sock_filter {
        code: (BPF_JMP | BPF_JEQ | BPF_X) as u16,
        jt,
        jf,
        k: 0,
    };
    let tax = libc::sock_filter {
        code: (BPF_MISC | BPF_TAX) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    };
    let ret = |bytes: u32| libc::sock_filter {
        code: (BPF_RET | BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: bytes,
    };
    let data = EVENT_AT + PROC_EVENT_DATA_AT as u32;
    // Jump offsets count from the next instruction.
    vec![
        /* 0 */ load(EVENT_AT),
        /* 1 */ jump_if(PROC_EVENT_EXEC, 11, 0),
        /* 2 */ jump_if(PROC_EVENT_NONE, 10, 0),
        /* 3 */ jump_if(PROC_EVENT_FORK, 1, 0),
        /* 4 */ jump_if(PROC_EVENT_EXIT, 4, 9),
        // fork: of a process when child_pid == child_tgid.
        /* 5 */ load(data + 12),
        /* 6 */ tax,
        /* 7 */ load(data + 8),
        /* 8 */ jump_if_x(4, 5),
        // exit: of a process (its leader) when process_pid == process_tgid.
        /* 9 */
        load(data + 4),
        /* 10 */ tax,
        /* 11 */ load(data),
        /* 12 */ jump_if_x(0, 1),
        /* 13 */ ret(u32::MAX),
        /* 14 */ ret(0),
    ]
}

fn attach_filter(socket: &OwnedFd) -> io::Result<()> {
    let mut program = event_filter();
    let program = libc::sock_fprog {
        len: u16::try_from(program.len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: program points at `len` valid instructions for the call's duration
    // (the kernel copies them).
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const program).cast::<libc::c_void>(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What one connector message says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    Event(ProcessEvent),
    /// The answer to a subscription request: 0 or an errno.
    Ack {
        error: u32,
    },
    /// Thread events, and events the watch does not use (uid, comm, ptrace…).
    Ignored,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_ne_bytes(raw))
}

fn pid_at(bytes: &[u8], at: usize) -> Option<Pid> {
    Pid::try_from(u32_at(bytes, at)?).ok()
}

/// Parses one datagram from the connector into its messages (malformed tails are
/// dropped: at worst an event is missed, and the 15 s sampler pass still sees the
/// process).
pub fn parse_datagram(datagram: &[u8], out: &mut Vec<Message>) {
    let mut at = 0usize;
    while let Some(length) = u32_at(datagram, at) {
        let length = length as usize;
        let Some(message) = at
            .checked_add(length)
            .and_then(|end| datagram.get(at..end))
            .filter(|_| length >= NLMSG_HEADER_LEN)
        else {
            return;
        };
        out.push(parse_message(
            message.get(NLMSG_HEADER_LEN..).unwrap_or_default(),
        ));
        // NLMSG_ALIGN: messages start on 4-byte boundaries.
        let Some(next) = at.checked_add((length + 3) & !3) else {
            return;
        };
        at = next;
    }
}

/// One `cn_msg` carrying a `proc_event`.
fn parse_message(cn_msg: &[u8]) -> Message {
    let (Some(idx), Some(val)) = (u32_at(cn_msg, 0), u32_at(cn_msg, 4)) else {
        return Message::Ignored;
    };
    if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC) {
        return Message::Ignored;
    }
    let event = cn_msg.get(CN_MSG_LEN..).unwrap_or_default();
    let data = PROC_EVENT_DATA_AT;
    let field = |index: usize| pid_at(event, data + 4 * index);
    match u32_at(event, 0) {
        Some(PROC_EVENT_NONE) => match u32_at(event, data) {
            Some(error) => Message::Ack { error },
            None => Message::Ignored,
        },
        // parent_pid, parent_tgid, child_pid, child_tgid: a thread has pid != tgid.
        Some(PROC_EVENT_FORK) => match (field(1), field(2), field(3)) {
            (Some(parent), Some(child), Some(child_tgid)) if child == child_tgid => {
                Message::Event(ProcessEvent::Fork { parent, child })
            }
            _ => Message::Ignored,
        },
        // process_pid, process_tgid: an exec from any thread makes the tgid the
        // new image's leader.
        Some(PROC_EVENT_EXEC) => match field(1) {
            Some(tgid) => Message::Event(ProcessEvent::Exec(tgid)),
            None => Message::Ignored,
        },
        Some(PROC_EVENT_EXIT) => match (field(0), field(1)) {
            (Some(pid), Some(tgid)) if pid == tgid => Message::Event(ProcessEvent::Exit(pid)),
            _ => Message::Ignored,
        },
        _ => Message::Ignored,
    }
}

/// The subscription (or unsubscription) request.
fn subscription(op: u32, sequence: u32, port: u32) -> [u8; SUBSCRIBE_LEN] {
    let mut out = [0u8; SUBSCRIBE_LEN];
    out[0..4].copy_from_slice(&(SUBSCRIBE_LEN as u32).to_ne_bytes());
    out[4..6].copy_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
    out[8..12].copy_from_slice(&sequence.to_ne_bytes());
    out[12..16].copy_from_slice(&port.to_ne_bytes());
    let cn = NLMSG_HEADER_LEN;
    out[cn..cn + 4].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
    out[cn + 4..cn + 8].copy_from_slice(&CN_VAL_PROC.to_ne_bytes());
    out[cn + 8..cn + 12].copy_from_slice(&sequence.to_ne_bytes());
    out[cn + 16..cn + 18].copy_from_slice(&4u16.to_ne_bytes());
    out[cn + CN_MSG_LEN..].copy_from_slice(&op.to_ne_bytes());
    out
}

fn poll_failed(source: io::Error) -> EventSourceError {
    EventSourceError::Call {
        what: "proc connector: poll",
        source,
    }
}

fn recv_failed(source: io::Error) -> EventSourceError {
    EventSourceError::Call {
        what: "proc connector: recv",
        source,
    }
}

/// A subscribed proc connector socket.
pub struct ProcConnector {
    socket: OwnedFd,
    port: u32,
    buffer: Vec<u8>,
    parsed: Vec<Message>,
    /// Caches of per-process facts, told of every exec, exit and loss.
    caches: Vec<Arc<dyn ForgetProcesses>>,
}

impl ProcConnector {
    /// Opens, binds and subscribes; fails (with why) unless the kernel
    /// acknowledges the subscription. `caches` forget a pid at its exec or exit.
    pub fn open(caches: Vec<Arc<dyn ForgetProcesses>>) -> Result<ProcConnector, EventSourceError> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_CONNECTOR,
            )
        };
        if fd < 0 {
            return Err(EventSourceError::last_os_error("proc connector: socket"));
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let size = RECEIVE_BUFFER_BYTES;
        // SAFETY: size is a valid c_int for the given length.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&raw const size).cast::<libc::c_void>(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(EventSourceError::last_os_error("proc connector: SO_RCVBUF"));
        }
        // Without the filter every event is read and parsed: slower under a
        // thread flood, still bounded per wait.
        if let Err(e) = attach_filter(&socket) {
            log::warn!("proc connector: no event filter, every event is read: {e}");
        }
        // SAFETY: an all-zero sockaddr_nl is valid; port 0 lets the kernel pick one.
        let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        address.nl_groups = CN_IDX_PROC;
        let length = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: address is a valid sockaddr_nl of `length` bytes.
        let rc = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&raw const address).cast::<libc::sockaddr>(),
                length,
            )
        };
        if rc != 0 {
            return Err(EventSourceError::last_os_error(
                "proc connector: bind to CN_IDX_PROC",
            ));
        }
        let mut bound_length = length;
        // SAFETY: address and bound_length are valid for getsockname to fill.
        let rc = unsafe {
            libc::getsockname(
                socket.as_raw_fd(),
                (&raw mut address).cast::<libc::sockaddr>(),
                &mut bound_length,
            )
        };
        if rc != 0 {
            return Err(EventSourceError::last_os_error(
                "proc connector: getsockname",
            ));
        }
        let mut connector = ProcConnector {
            socket,
            port: address.nl_pid,
            buffer: vec![0u8; DATAGRAM_BYTES],
            parsed: Vec::new(),
            caches,
        };
        let sequence = std::process::id();
        connector
            .send(&subscription(
                PROC_CN_MCAST_LISTEN,
                sequence,
                connector.port,
            ))
            .map_err(|source| EventSourceError::Call {
                what: "proc connector: PROC_CN_MCAST_LISTEN",
                source,
            })?;
        connector.await_ack()?;
        Ok(connector)
    }

    fn send(&self, message: &[u8]) -> io::Result<()> {
        super::netlink::send_to_kernel(self.socket.as_raw_fd(), message)
    }

    /// Waits for the kernel's answer to the subscription: outside the initial
    /// namespaces there is none, without CAP_NET_ADMIN it carries EPERM.
    fn await_ack(&mut self) -> Result<(), EventSourceError> {
        let started = Instant::now();
        while let Some(left) = ACK_TIMEOUT.checked_sub(started.elapsed()) {
            if !self.readable(left).map_err(poll_failed)? {
                break;
            }
            match self.receive() {
                Ok(true) => {}
                Ok(false) => continue,
                // Events already overflowed the buffer: the ack may be among the lost.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(source) => return Err(recv_failed(source)),
            }
            if let Some(error) = self.parsed.iter().find_map(|m| match m {
                Message::Ack { error } => Some(*error),
                _ => None,
            }) {
                self.parsed.clear();
                return match error {
                    0 => Ok(()),
                    errno => Err(EventSourceError::SubscriptionRefused(
                        io::Error::from_raw_os_error(errno as i32),
                    )),
                };
            }
            // Events from before the ack are of no use to a watch not yet running.
            self.parsed.clear();
        }
        Err(EventSourceError::NoSubscriptionAnswer(ACK_TIMEOUT))
    }

    /// Whether a datagram is waiting, after at most `timeout`.
    fn readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut poll = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        loop {
            // SAFETY: poll is one valid pollfd.
            let rc = unsafe { libc::poll(&mut poll, 1, millis) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            return Ok(rc > 0);
        }
    }

    /// Reads one datagram without blocking and parses it into `parsed`. `Ok(false)`
    /// when nothing was waiting or the datagram did not come from the kernel.
    fn receive(&mut self) -> io::Result<bool> {
        // SAFETY: an all-zero sockaddr_nl is valid for recvfrom to fill.
        let mut from: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        let mut from_length = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: buffer and from are valid for writes of the lengths given.
        let n = unsafe {
            libc::recvfrom(
                self.socket.as_raw_fd(),
                self.buffer.as_mut_ptr().cast::<libc::c_void>(),
                self.buffer.len(),
                libc::MSG_DONTWAIT,
                (&raw mut from).cast::<libc::sockaddr>(),
                &mut from_length,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(false),
                _ => Err(e),
            };
        }
        // Only the kernel speaks for the connector (port 0).
        if from.nl_pid != 0 {
            return Ok(false);
        }
        let n = usize::try_from(n).unwrap_or(0).min(self.buffer.len());
        parse_datagram(self.buffer.get(..n).unwrap_or_default(), &mut self.parsed);
        Ok(true)
    }
}

impl ProcessEvents for ProcConnector {
    fn name(&self) -> &'static str {
        "proc_connector"
    }

    fn reports_every_process(&self) -> bool {
        true
    }

    fn wait(
        &mut self,
        timeout: Duration,
        max: usize,
        out: &mut Vec<ProcessEvent>,
    ) -> Result<(), EventSourceError> {
        if !self.readable(timeout).map_err(poll_failed)? {
            return Ok(());
        }
        // Every message counts toward `max`, whatever it says: messages the
        // watch ignores (threads, if the filter is missing) cannot keep it here.
        let mut taken = 0usize;
        while taken < max {
            match self.receive() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    for cache in &self.caches {
                        cache.forget_all();
                    }
                    out.push(ProcessEvent::Lost);
                    taken += 1;
                    continue;
                }
                Err(source) => return Err(recv_failed(source)),
            }
            taken += self.parsed.len().max(1);
            for message in self.parsed.drain(..) {
                let Message::Event(event) = message else {
                    continue;
                };
                if let ProcessEvent::Exec(pid) | ProcessEvent::Exit(pid) = event {
                    for cache in &self.caches {
                        cache.forget(pid);
                    }
                }
                out.push(event);
            }
        }
        Ok(())
    }
}

impl Drop for ProcConnector {
    fn drop(&mut self) {
        // The kernel counts listeners to decide whether to build events at all.
        let _ = self.send(&subscription(PROC_CN_MCAST_IGNORE, 0, self.port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram as the kernel builds it: nlmsghdr, cn_msg, proc_event.
    fn datagram(what: u32, fields: &[u32]) -> Vec<u8> {
        let mut event = Vec::new();
        event.extend(what.to_ne_bytes());
        event.extend(0u32.to_ne_bytes()); // cpu
        event.extend(123u64.to_ne_bytes()); // timestamp_ns
        for f in fields {
            event.extend(f.to_ne_bytes());
        }
        let mut cn = Vec::new();
        cn.extend(CN_IDX_PROC.to_ne_bytes());
        cn.extend(CN_VAL_PROC.to_ne_bytes());
        cn.extend([0u8; 8]); // seq, ack
        cn.extend((event.len() as u16).to_ne_bytes());
        cn.extend(0u16.to_ne_bytes());
        cn.extend(event);
        let mut out = Vec::new();
        out.extend(((NLMSG_HEADER_LEN + cn.len()) as u32).to_ne_bytes());
        out.extend((libc::NLMSG_DONE as u16).to_ne_bytes());
        out.extend([0u8; 10]);
        out.extend(cn);
        out
    }

    fn parse(bytes: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        parse_datagram(bytes, &mut out);
        out
    }

    #[test]
    fn events_of_processes_are_read_and_threads_ignored() {
        let fork = datagram(PROC_EVENT_FORK, &[10, 10, 11, 11]);
        let thread = datagram(PROC_EVENT_FORK, &[10, 10, 12, 10]);
        let exec = datagram(PROC_EVENT_EXEC, &[13, 11]);
        let exit = datagram(PROC_EVENT_EXIT, &[11, 11, 0, 17, 10, 10]);
        let thread_exit = datagram(PROC_EVENT_EXIT, &[12, 10, 0, 0, 10, 10]);
        let ack = datagram(PROC_EVENT_NONE, &[1]);
        let uid = datagram(4, &[11, 11, 0, 0]);
        assert_eq!(
            parse(&fork),
            [Message::Event(ProcessEvent::Fork {
                parent: 10,
                child: 11
            })]
        );
        assert_eq!(parse(&thread), [Message::Ignored]);
        assert_eq!(parse(&exec), [Message::Event(ProcessEvent::Exec(11))]);
        assert_eq!(parse(&exit), [Message::Event(ProcessEvent::Exit(11))]);
        assert_eq!(parse(&thread_exit), [Message::Ignored]);
        assert_eq!(parse(&ack), [Message::Ack { error: 1 }]);
        assert_eq!(parse(&uid), [Message::Ignored]);
        // Two messages in one datagram, then a truncated third.
        let mut both = exec.clone();
        both.extend(&exit);
        both.extend(&fork[..20]);
        assert_eq!(parse(&both).len(), 2);
    }

    #[test]
    fn malformed_datagrams_yield_nothing_or_ignored() {
        assert!(parse(&[]).is_empty());
        assert!(parse(&[1, 2, 3]).is_empty());
        let mut short = datagram(PROC_EVENT_EXEC, &[13, 11]);
        short[0..4].copy_from_slice(&8u32.to_ne_bytes()); // shorter than a header
        assert!(parse(&short).is_empty());
        let mut long = datagram(PROC_EVENT_EXEC, &[13, 11]);
        long[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse(&long).is_empty());
        let cut = datagram(PROC_EVENT_EXEC, &[]);
        assert_eq!(parse(&cut), [Message::Ignored]);
        let mut other = datagram(PROC_EVENT_EXEC, &[13, 11]);
        other[NLMSG_HEADER_LEN] = 7; // another connector id
        assert_eq!(parse(&other), [Message::Ignored]);
    }

    #[test]
    fn the_subscription_names_the_proc_connector() {
        let request = subscription(PROC_CN_MCAST_LISTEN, 9, 77);
        assert_eq!(u32_at(&request, 0), Some(SUBSCRIBE_LEN as u32));
        assert_eq!(u32_at(&request, 12), Some(77));
        assert_eq!(u32_at(&request, NLMSG_HEADER_LEN), Some(CN_IDX_PROC));
        assert_eq!(
            u32_at(&request, NLMSG_HEADER_LEN + CN_MSG_LEN),
            Some(PROC_CN_MCAST_LISTEN)
        );
    }

    /// Root in the initial namespaces: a real exec of a child is reported.
    #[test]
    fn a_real_exec_is_reported_when_root() {
        let mut connector = match ProcConnector::open(Vec::new()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("SKIP a_real_exec_is_reported_when_root: {e}");
                return;
            }
        };
        let mut child = std::process::Command::new("/bin/true")
            .spawn()
            .expect("spawn /bin/true");
        let pid = Pid::try_from(child.id()).expect("pid");
        let _ = child.wait();
        let mut events = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20)
            && !(events.contains(&ProcessEvent::Exec(pid))
                && events.contains(&ProcessEvent::Exit(pid)))
        {
            connector
                .wait(Duration::from_millis(200), 10_000, &mut events)
                .expect("wait");
        }
        assert!(events.contains(&ProcessEvent::Exec(pid)), "{events:?}");
        assert!(events.contains(&ProcessEvent::Exit(pid)), "{events:?}");
        assert!(events
            .iter()
            .any(|e| matches!(e, ProcessEvent::Fork { child, .. } if *child == pid)));
    }

    /// Root in the initial namespaces: the exec of a process drops what the
    /// caches hold for its pid as the event is read.
    #[test]
    fn an_exec_drops_the_cached_facts_of_its_pid_when_root() {
        use crate::platform::process_cache::{ProcessCache, ProcessStamp};
        let cache = Arc::new(ProcessCache::new(16, Duration::from_secs(60)));
        let mut connector = match ProcConnector::open(vec![cache.clone()]) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("SKIP an_exec_drops_the_cached_facts_of_its_pid_when_root: {e}");
                return;
            }
        };
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = Pid::try_from(child.id()).expect("pid");
        let stamp = ProcessStamp {
            pid,
            start_ticks: 1,
            executable: (1, 1),
            layout: [1; 10],
        };
        // Cached before the exec event is read (as a scan between the exec and
        // the watch's read could).
        cache.insert(stamp, "old image");
        cache.insert(ProcessStamp { pid: 1, ..stamp }, "init");
        let mut events = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20)
            && !events.contains(&ProcessEvent::Exec(pid))
        {
            connector
                .wait(Duration::from_millis(200), 10_000, &mut events)
                .expect("wait");
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(events.contains(&ProcessEvent::Exec(pid)), "{events:?}");
        assert_eq!(cache.get(&stamp), None);
        assert_eq!(cache.len(), 1, "only the exec'd pid is dropped");
    }
}
