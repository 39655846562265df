//! TCP, UDP and UDP-Lite sockets of the scanner's own network namespace through
//! NETLINK_SOCK_DIAG (inet_diag, what `ss` uses) instead of `/proc/net/{tcp,udp,…}`,
//! whose seq_printf walk of the whole hash is the slowest part of a table read (and
//! of a `pid =` lookup, which reads the tables but few fds). A netlink socket
//! only sees the namespace of the thread that opened it, so callers use this for that
//! namespace only and fall back to the /proc tables for any other namespace or on any
//! error. Byte parsing is pure functions over `&[u8]`; the socket is bounded in time
//! (SO_RCVTIMEO), messages and bytes.

use super::procfs;
use super::socket_tables::{tcp_state_name, TableEntry, TableKind};
use crate::model::{SocketType, FAMILY_INET, FAMILY_INET6};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `struct nlmsghdr`.
pub const NLMSG_HEADER_LEN: usize = 16;
/// `struct inet_diag_req_v2` (family, protocol, ext, pad, states, 48-byte sockid).
pub const INET_DIAG_REQ_V2_LEN: usize = 56;
/// `struct inet_diag_msg` without attributes.
pub const INET_DIAG_MSG_LEN: usize = 72;
/// linux/sock_diag.h: the request type of an inet_diag_req_v2 dump.
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// One request: header plus inet_diag_req_v2.
pub const REQUEST_LEN: usize = NLMSG_HEADER_LEN + INET_DIAG_REQ_V2_LEN;
/// `TCPDIAG_GETSOCK`: the older inet_diag request, whose dump is of both
/// families (`inet_diag_dump_compat` asks for `AF_UNSPEC`), in one walk of the
/// TCP hash tables where two requests by family walk them twice (the
/// established table has 262,144 buckets here, each looked at: ~0.7 ms a walk).
pub const TCPDIAG_GETSOCK: u16 = 18;
/// `struct inet_diag_req`: family, two lengths, ext, the 48-byte sockid,
/// states, dbs.
const INET_DIAG_REQ_LEN: usize = 60;
pub const BOTH_FAMILIES_REQUEST_LEN: usize = NLMSG_HEADER_LEN + INET_DIAG_REQ_LEN;

/// TCP states asked for: every state a socket held by an fd can be listed in.
/// TIME_WAIT (6) and NEW_SYN_RECV (12) are kernel-only mini sockets (inode 0, never
/// in an fd table); BOUND_INACTIVE (13, bound but not listening) is absent from
/// /proc/net/tcp, so asking for it would make the two sources disagree.
pub const TCP_STATES: u32 = {
    let mut mask = 0u32;
    let mut state = 1;
    while state <= 11 {
        if state != 6 {
            mask |= 1 << state;
        }
        state += 1;
    }
    mask
};

/// Whether the table `kind` is read as a sock_diag dump. Raw and ping sockets stay
/// on /proc: raw_diag needs a per-protocol request and ping sockets have no diag
/// module at all.
pub fn dumpable(kind: TableKind) -> bool {
    matches!(
        kind,
        TableKind::Tcp
            | TableKind::Tcp6
            | TableKind::Udp
            | TableKind::Udp6
            | TableKind::UdpLite
            | TableKind::UdpLite6
    )
}

/// The `idiag_states` mask for a table: TCP as [`TCP_STATES`]; datagram sockets in
/// every state (unconnected ones are CLOSE, connected ones ESTABLISHED), as /proc
/// lists them.
fn states(kind: TableKind) -> u32 {
    if kind.socket_type() == SocketType::Stream {
        TCP_STATES
    } else {
        u32::MAX
    }
}

/// Receive buffer: the kernel sizes dump datagrams to at most 32 KiB.
const RECV_BUFFER: usize = 64 * 1024;
/// Upper bound on the bytes of one dump (the /proc path's table cap).
const MAX_DUMP_BYTES: usize = 64 * 1024 * 1024;
/// Upper bound on the sockets of one dump.
const MAX_ENTRIES: usize = 4_000_000;
/// A dump that stalls this long fails (and the caller falls back to /proc).
const RECV_TIMEOUT: Duration = Duration::from_secs(2);
/// Ignores foreign datagrams (other sequence numbers) up to this many.
const MAX_FOREIGN_DATAGRAMS: usize = 1024;

/// Why a netlink dump failed.
#[derive(Debug, PartialEq, Eq)]
pub enum DumpError {
    /// An errno from the kernel (NLMSG_ERROR or a failed syscall).
    Os(i32),
    /// Bytes that do not parse as the expected messages.
    Malformed(&'static str),
    /// A bound (bytes, entries, datagrams) was reached.
    TooLarge,
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpError::Os(errno) => write!(f, "{}", io::Error::from_raw_os_error(*errno)),
            DumpError::Malformed(what) => write!(f, "malformed sock_diag reply: {what}"),
            DumpError::TooLarge => write!(f, "sock_diag dump exceeded its bounds"),
        }
    }
}

impl From<io::Error> for DumpError {
    fn from(e: io::Error) -> Self {
        DumpError::Os(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// The dump request standing for the table `kind` (its protocol and family).
pub fn build_request(kind: TableKind, sequence: u32) -> [u8; REQUEST_LEN] {
    let mut out = [0u8; REQUEST_LEN];
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    out[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    out[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    out[6..8].copy_from_slice(&flags.to_ne_bytes());
    out[8..12].copy_from_slice(&sequence.to_ne_bytes());
    // nlmsg_pid 0: the kernel fills in our port id.
    out[16] = if kind.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    } as u8;
    out[17] = kind.protocol().unwrap_or(0) as u8;
    // idiag_ext 0 (no extensions), pad 0.
    out[20..24].copy_from_slice(&states(kind).to_ne_bytes());
    // The sockid stays zero: no filter on addresses, ports, interface or cookie.
    out
}

fn u16_ne(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_ne(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn port_be(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from(u16::from_be_bytes(
        bytes.get(at..at + 2)?.try_into().ok()?,
    )))
}

/// An `idiag_src`/`idiag_dst` field (16 bytes, network order); v4-mapped IPv6
/// addresses are unmapped as the /proc parser does.
fn address(bytes: &[u8], at: usize, ipv6: bool) -> Option<IpAddr> {
    let raw: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
    if !ipv6 {
        return Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])));
    }
    let v6 = Ipv6Addr::from(raw);
    Some(match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    })
}

/// The dump request for every TCP socket of both families (see
/// [`TCPDIAG_GETSOCK`]), in the states of [`TableKind::Tcp`]'s.
pub fn build_both_families_tcp_request(sequence: u32) -> [u8; BOTH_FAMILIES_REQUEST_LEN] {
    let mut out = [0u8; BOTH_FAMILIES_REQUEST_LEN];
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    out[0..4].copy_from_slice(&(BOTH_FAMILIES_REQUEST_LEN as u32).to_ne_bytes());
    out[4..6].copy_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    out[6..8].copy_from_slice(&flags.to_ne_bytes());
    out[8..12].copy_from_slice(&sequence.to_ne_bytes());
    // The family (ignored by the dump: both), lengths, ext and sockid stay 0.
    let at = NLMSG_HEADER_LEN + 52;
    out[at..at + 4].copy_from_slice(&states(TableKind::Tcp).to_ne_bytes());
    out
}

/// One `struct inet_diag_msg` of the dump for table `kind` (attributes after it are
/// ignored).
pub fn parse_diag_msg(payload: &[u8], kind: TableKind) -> Result<TableEntry, DumpError> {
    let short = DumpError::Malformed("inet_diag_msg too short");
    if payload.len() < INET_DIAG_MSG_LEN {
        return Err(short);
    }
    let family = match i32::from(payload[0]) {
        libc::AF_INET => FAMILY_INET,
        libc::AF_INET6 => FAMILY_INET6,
        _ => return Err(DumpError::Malformed("unexpected address family")),
    };
    let ipv6 = family == FAMILY_INET6;
    let socket_type = kind.socket_type();
    let tcp_state = if socket_type == SocketType::Stream {
        tcp_state_name(payload[1])
    } else {
        ""
    };
    // id: sport(4) dport(6) src(8..24) dst(24..40) if(40) cookie(44); then expires,
    // rqueue, wqueue, uid, inode at 68.
    let entry = (|| {
        Some(TableEntry {
            inode: u64::from(u32_ne(payload, 68)?),
            family,
            protocol: kind.protocol()?,
            socket_type,
            local: address(payload, 8, ipv6)?,
            local_port: port_be(payload, 4)?,
            remote: address(payload, 24, ipv6)?,
            remote_port: port_be(payload, 6)?,
            tcp_state,
            uid: u32_ne(payload, 64)?,
        })
    })();
    entry.ok_or(short)
}

/// What one datagram of a dump said.
#[derive(Debug, PartialEq, Eq)]
pub enum Datagram {
    /// More messages follow.
    More,
    /// NLMSG_DONE was seen: the dump is complete.
    Done,
    /// The datagram answers another request (a different sequence number).
    Foreign,
}

/// Parses one received datagram of the dump for table `kind` with sequence number
/// `sequence`, appending its sockets (inode 0 ones are skipped: no fd holds them)
/// to `out`.
pub fn parse_datagram(
    data: &[u8],
    kind: TableKind,
    sequence: u32,
    out: &mut Vec<TableEntry>,
) -> Result<Datagram, DumpError> {
    let mut rest = data;
    let mut saw_ours = false;
    while !rest.is_empty() {
        if rest.len() < NLMSG_HEADER_LEN {
            return Err(DumpError::Malformed("truncated nlmsghdr"));
        }
        let len = u32_ne(rest, 0).unwrap_or(0) as usize;
        let message_type = u16_ne(rest, 4).unwrap_or(0);
        let seq = u32_ne(rest, 8).unwrap_or(0);
        if len < NLMSG_HEADER_LEN || len > rest.len() {
            return Err(DumpError::Malformed("bad nlmsg_len"));
        }
        let payload = &rest[NLMSG_HEADER_LEN..len];
        if seq == sequence {
            saw_ours = true;
            match i32::from(message_type) {
                libc::NLMSG_DONE => {
                    // The payload is an int: negative if the dump itself failed.
                    return match u32_ne(payload, 0).map(|v| v as i32) {
                        Some(errno) if errno < 0 => Err(DumpError::Os(-errno)),
                        _ => Ok(Datagram::Done),
                    };
                }
                libc::NLMSG_ERROR => {
                    let errno = u32_ne(payload, 0)
                        .map(|v| v as i32)
                        .ok_or(DumpError::Malformed("short NLMSG_ERROR"))?;
                    // An error message with 0 is an ACK, which a dump never asks for.
                    return Err(DumpError::Os(if errno < 0 { -errno } else { libc::EIO }));
                }
                k if k == i32::from(SOCK_DIAG_BY_FAMILY) || k == i32::from(TCPDIAG_GETSOCK) => {
                    let entry = parse_diag_msg(payload, kind)?;
                    if entry.inode != 0 {
                        if out.len() >= MAX_ENTRIES {
                            return Err(DumpError::TooLarge);
                        }
                        out.push(entry);
                    }
                }
                _ => {} // NLMSG_NOOP and unknown types carry no sockets
            }
        }
        let aligned = (len + 3) & !3;
        rest = rest.get(aligned..).unwrap_or_default();
    }
    Ok(if saw_ours {
        Datagram::More
    } else {
        Datagram::Foreign
    })
}

/// The network namespace inode of the calling thread (a netlink socket it opens
/// sees exactly this namespace).
pub fn own_net_namespace() -> io::Result<u64> {
    let link = std::fs::read_link("/proc/thread-self/ns/net")?;
    procfs::parse_bracketed_inode(link.as_os_str().as_encoded_bytes(), b"net:[")
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

/// An open NETLINK_SOCK_DIAG socket with a receive timeout.
/// Sends one whole netlink message to the kernel (port 0) on `socket`.
pub fn send_to_kernel(socket: std::os::fd::RawFd, message: &[u8]) -> io::Result<()> {
    // SAFETY: an all-zero sockaddr_nl is valid; family set below, pid 0 = kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: message and kernel are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            socket,
            message.as_ptr().cast::<libc::c_void>(),
            message.len(),
            0,
            (&raw const kernel).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    if sent as usize != message.len() {
        return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    Ok(())
}

struct DiagSocket(OwnedFd);

impl DiagSocket {
    fn open() -> io::Result<DiagSocket> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        let socket = DiagSocket(unsafe { OwnedFd::from_raw_fd(fd) });
        let timeout = libc::timeval {
            tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: RECV_TIMEOUT.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: timeout is a valid timeval for the given length.
        let rc = unsafe {
            libc::setsockopt(
                socket.0.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast::<libc::c_void>(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(socket)
    }

    fn send_to_kernel(&self, message: &[u8]) -> io::Result<()> {
        send_to_kernel(self.0.as_raw_fd(), message)
    }

    /// One datagram into `buffer`; its length, or EMSGSIZE if it did not fit.
    fn receive(&self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: buffer is valid for writes of its length. MSG_TRUNC makes the
            // kernel return the datagram's real length so truncation is detected.
            let n = unsafe {
                libc::recv(
                    self.0.as_raw_fd(),
                    buffer.as_mut_ptr().cast::<libc::c_void>(),
                    buffer.len(),
                    libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            let n = n as usize;
            if n > buffer.len() {
                return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
            }
            return Ok(n);
        }
    }

    /// Dumps the sockets of table `kind` into `out`, handing `out` to
    /// `received` after each datagram (which may drain it).
    fn dump(
        &self,
        kind: TableKind,
        request: &[u8],
        sequence: u32,
        buffer: &mut [u8],
        out: &mut Vec<TableEntry>,
        received: &mut dyn FnMut(&mut Vec<TableEntry>),
    ) -> Result<(), DumpError> {
        self.send_to_kernel(request)?;
        let mut bytes = 0usize;
        let mut foreign = 0usize;
        loop {
            let n = self.receive(buffer)?;
            if n == 0 {
                return Err(DumpError::Malformed("empty datagram"));
            }
            bytes += n;
            if bytes > MAX_DUMP_BYTES {
                return Err(DumpError::TooLarge);
            }
            let datagram =
                parse_datagram(buffer.get(..n).unwrap_or_default(), kind, sequence, out)?;
            received(out);
            match datagram {
                Datagram::Done => return Ok(()),
                Datagram::More => {}
                Datagram::Foreign => {
                    foreign += 1;
                    if foreign > MAX_FOREIGN_DATAGRAMS {
                        return Err(DumpError::TooLarge);
                    }
                }
            }
        }
    }
}

/// Dumps for one table read: one netlink socket and buffer serve every table of
/// the calling thread's network namespace, each dump with its own sequence number.
pub struct Dumper {
    socket: DiagSocket,
    buffer: Vec<u8>,
    sequence: u32,
}

impl Dumper {
    pub fn open() -> Result<Dumper, DumpError> {
        Ok(Dumper {
            socket: DiagSocket::open()?,
            buffer: vec![0u8; RECV_BUFFER],
            sequence: 0,
        })
    }

    /// Every socket of the table `kind` (a [`dumpable`] one).
    pub fn dump(&mut self, kind: TableKind) -> Result<Vec<TableEntry>, DumpError> {
        let mut out = Vec::new();
        self.each_of(kind, build_request, &mut |entry| out.push(entry))?;
        Ok(out)
    }

    /// Every TCP socket of both families, in one dump (see [`TCPDIAG_GETSOCK`]).
    pub fn dump_tcp_both_families(&mut self) -> Result<Vec<TableEntry>, DumpError> {
        let mut out = Vec::new();
        let request = |_, sequence| build_both_families_tcp_request(sequence);
        self.each_of(TableKind::Tcp, request, &mut |entry| out.push(entry))?;
        Ok(out)
    }

    /// Every socket of the table `kind` (a [`dumpable`] one), each handed to
    /// `each` as its datagram arrives: no more than one datagram's are held.
    /// On an error, those handed over so far are a part of the table.
    pub fn dump_each(
        &mut self,
        kind: TableKind,
        each: &mut dyn FnMut(TableEntry),
    ) -> Result<(), DumpError> {
        self.each_of(kind, build_request, each)
    }

    /// One dump of the request `request` makes for `kind` and a new sequence
    /// number, its sockets handed to `each` datagram by datagram.
    fn each_of<const N: usize>(
        &mut self,
        kind: TableKind,
        request: impl Fn(TableKind, u32) -> [u8; N],
        each: &mut dyn FnMut(TableEntry),
    ) -> Result<(), DumpError> {
        self.sequence = self.sequence.wrapping_add(1);
        let request = request(kind, self.sequence);
        let mut received = Vec::new();
        let mut drain = |received: &mut Vec<TableEntry>| received.drain(..).for_each(&mut *each);
        self.socket.dump(
            kind,
            &request,
            self.sequence,
            &mut self.buffer,
            &mut received,
            &mut drain,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::sockets::NetTables;
    use super::*;

    fn header(len: usize, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&(len as u32).to_ne_bytes());
        h.extend_from_slice(&kind.to_ne_bytes());
        h.extend_from_slice(&flags.to_ne_bytes());
        h.extend_from_slice(&seq.to_ne_bytes());
        h.extend_from_slice(&4242u32.to_ne_bytes()); // nlmsg_pid
        h
    }

    /// An inet_diag_msg from literal network-order bytes.
    fn diag_msg(
        family: u8,
        state: u8,
        sport: [u8; 2],
        dport: [u8; 2],
        src: [u8; 16],
        dst: [u8; 16],
        inode: u32,
    ) -> Vec<u8> {
        let mut m = vec![family, state, 0, 0];
        m.extend_from_slice(&sport);
        m.extend_from_slice(&dport);
        m.extend_from_slice(&src);
        m.extend_from_slice(&dst);
        m.extend_from_slice(&[0u8; 4]); // if
        m.extend_from_slice(&[0xAB; 8]); // cookie
        m.extend_from_slice(&[0u8; 16]); // expires rqueue wqueue uid
        m.extend_from_slice(&inode.to_ne_bytes());
        assert_eq!(m.len(), INET_DIAG_MSG_LEN);
        m
    }

    fn message(seq: u32, payload: &[u8], attributes: usize) -> Vec<u8> {
        let len = NLMSG_HEADER_LEN + payload.len() + attributes;
        let mut out = header(len, SOCK_DIAG_BY_FAMILY, 2, seq);
        out.extend_from_slice(payload);
        out.extend(std::iter::repeat_n(0x55u8, attributes));
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(&a);
        raw
    }

    #[test]
    fn request_layout() {
        let r = build_request(TableKind::Tcp6, 7);
        assert_eq!(r.len(), 72);
        assert_eq!(u32_ne(&r, 0), Some(72));
        assert_eq!(u16_ne(&r, 4), Some(20));
        assert_eq!(u16_ne(&r, 6), Some(0x301), "NLM_F_REQUEST | NLM_F_DUMP");
        assert_eq!(u32_ne(&r, 8), Some(7));
        assert_eq!(&r[16..20], &[10, 6, 0, 0]);
        // states 1..=11 except TIME_WAIT: 0b1111_1011_1110
        assert_eq!(u32_ne(&r, 20), Some(0xFBE));
        assert!(r[24..].iter().all(|&b| b == 0));
    }

    #[test]
    fn udp_requests_ask_for_every_state() {
        let r = build_request(TableKind::UdpLite, 1);
        assert_eq!(&r[16..20], &[2, 136, 0, 0]);
        assert_eq!(u32_ne(&r, 20), Some(u32::MAX));
        assert_eq!(&build_request(TableKind::Udp6, 1)[16..18], &[10, 17]);
        assert!(dumpable(TableKind::Udp6) && dumpable(TableKind::Tcp));
        assert!(!dumpable(TableKind::Raw) && !dumpable(TableKind::Icmp6));
    }

    #[test]
    fn udp_messages_are_datagram_sockets_without_tcp_state() {
        // A connected UDP socket is in state ESTABLISHED (1); that is not a TCP state.
        let m = diag_msg(
            2,
            1,
            [0xC3, 0x50],
            [0x00, 0x35],
            v4([10, 0, 0, 2]),
            v4([192, 0, 2, 10]),
            9,
        );
        let mut m = m;
        m[64..68].copy_from_slice(&1001u32.to_ne_bytes()); // idiag_uid
        let e = parse_diag_msg(&m, TableKind::Udp).unwrap();
        assert_eq!(
            (e.protocol, e.socket_type, e.tcp_state),
            (17, SocketType::Dgram, "")
        );
        assert_eq!((e.uid, e.inode), (1001, 9));
        assert_eq!((e.local_port, e.remote_port), (50000, 53));
        assert_eq!(e.remote.to_string(), "192.0.2.10");
    }

    #[test]
    fn ipv4_message_ports_and_addresses_are_network_order() {
        let m = diag_msg(
            2,
            0x0A,
            [0x04, 0x38],
            [0, 0],
            v4([127, 0, 0, 1]),
            v4([0; 4]),
            31337,
        );
        let e = parse_diag_msg(&m, TableKind::Tcp).unwrap();
        assert_eq!(e.local.to_string(), "127.0.0.1");
        assert_eq!((e.local_port, e.remote_port), (1080, 0));
        assert_eq!(e.remote.to_string(), "0.0.0.0");
        assert_eq!((e.inode, e.family, e.protocol), (31337, 2, 6));
        assert_eq!((e.socket_type, e.tcp_state), (SocketType::Stream, "LISTEN"));
    }

    #[test]
    fn ipv6_and_v4_mapped_addresses() {
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        src[15] = 1;
        let mut mapped = [0u8; 16];
        mapped[10..].copy_from_slice(&[0xff, 0xff, 192, 168, 0, 8]);
        let m = diag_msg(10, 1, [0x1F, 0x90], [0x00, 0x35], src, mapped, 77);
        let e = parse_diag_msg(&m, TableKind::Tcp).unwrap();
        assert_eq!(e.local.to_string(), "2001:db8::1");
        assert_eq!(e.remote.to_string(), "192.168.0.8");
        assert_eq!((e.local_port, e.remote_port), (8080, 53));
        assert_eq!((e.family, e.tcp_state), (10, "ESTABLISHED"));
        // Too short, or a family that is not inet.
        assert!(parse_diag_msg(&m[..71], TableKind::Tcp).is_err());
        let mut bad = m.clone();
        bad[0] = 1;
        assert!(parse_diag_msg(&bad, TableKind::Tcp).is_err());
    }

    #[test]
    fn datagram_with_attributes_and_done() {
        let a = diag_msg(
            2,
            1,
            [0, 80],
            [0x9C, 0x40],
            v4([10, 0, 0, 1]),
            v4([10, 0, 0, 2]),
            5,
        );
        let zero = diag_msg(
            2,
            1,
            [0, 81],
            [0, 1],
            v4([10, 0, 0, 1]),
            v4([10, 0, 0, 2]),
            0,
        );
        let mut data = message(9, &a, 5); // 5 attribute bytes, padded to 8
        data.extend(message(9, &zero, 0));
        let mut out = Vec::new();
        assert_eq!(
            parse_datagram(&data, TableKind::Tcp, 9, &mut out),
            Ok(Datagram::More)
        );
        assert_eq!(out.len(), 1, "inode 0 is skipped");
        assert_eq!(
            (out[0].inode, out[0].local_port, out[0].remote_port),
            (5, 80, 40000)
        );
        let mut done = header(20, libc::NLMSG_DONE as u16, 2, 9);
        done.extend_from_slice(&0i32.to_ne_bytes());
        assert_eq!(
            parse_datagram(&done, TableKind::Tcp, 9, &mut out),
            Ok(Datagram::Done)
        );
        // Another request's datagram is ignored.
        assert_eq!(
            parse_datagram(&data, TableKind::Tcp, 8, &mut out),
            Ok(Datagram::Foreign)
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn errors_are_reported() {
        let mut out = Vec::new();
        let mut error = header(36, libc::NLMSG_ERROR as u16, 0, 3);
        error.extend_from_slice(&(-libc::EPERM).to_ne_bytes());
        error.extend(header(72, SOCK_DIAG_BY_FAMILY, 0x301, 3));
        assert_eq!(
            parse_datagram(&error, TableKind::Tcp, 3, &mut out),
            Err(DumpError::Os(libc::EPERM))
        );
        let mut failed_done = header(20, libc::NLMSG_DONE as u16, 2, 3);
        failed_done.extend_from_slice(&(-libc::ENOBUFS).to_ne_bytes());
        assert_eq!(
            parse_datagram(&failed_done, TableKind::Tcp, 3, &mut out),
            Err(DumpError::Os(libc::ENOBUFS))
        );
        // nlmsg_len larger than the datagram, smaller than a header, or a short tail.
        let mut long = header(400, SOCK_DIAG_BY_FAMILY, 2, 3);
        long.extend_from_slice(&[0; 72]);
        assert!(matches!(
            parse_datagram(&long, TableKind::Tcp, 3, &mut out),
            Err(DumpError::Malformed(_))
        ));
        let tiny = header(8, SOCK_DIAG_BY_FAMILY, 2, 3);
        assert!(matches!(
            parse_datagram(&tiny, TableKind::Tcp, 3, &mut out),
            Err(DumpError::Malformed(_))
        ));
        assert!(matches!(
            parse_datagram(&[1, 2, 3], TableKind::Tcp, 3, &mut out),
            Err(DumpError::Malformed(_))
        ));
        // A diag message too short for inet_diag_msg.
        let short = message(3, &[2, 1, 0, 0, 0, 80], 0);
        assert!(matches!(
            parse_datagram(&short, TableKind::Tcp, 3, &mut out),
            Err(DumpError::Malformed(_))
        ));
        assert!(out.is_empty());
    }

    fn inode_of(fd: &impl AsRawFd) -> u64 {
        // SAFETY: an all-zero stat is valid; fstat fills it for an open fd.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd is open for the duration of the call; st is valid for writes.
        assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }, 0);
        st.st_ino
    }

    /// Every entry of the dumps for `kinds` into a table set.
    fn dumped(kinds: [TableKind; 2]) -> Result<NetTables, DumpError> {
        let mut dumper = Dumper::open()?;
        let mut tables = NetTables::new("self".into());
        for kind in kinds {
            for entry in dumper.dump(kind)? {
                tables.insert(entry);
            }
        }
        Ok(tables)
    }

    /// Dumps `kinds` and reads their /proc tables; every `held` inode must be in
    /// /proc and give the same entry both ways. The dump, or `None` (with a printed
    /// reason) where the kernel has no diag module for it.
    fn agree_both_ways(kinds: [TableKind; 2], held: &[u64]) -> Option<NetTables> {
        let from_netlink = match dumped(kinds) {
            Ok(tables) => tables,
            Err(e) => {
                eprintln!("skip: sock_diag for {kinds:?} unavailable here: {e}");
                return None;
            }
        };
        let from_proc = from_proc(kinds);
        for inode in held {
            let proc_entry = from_proc.resolve(*inode, || None);
            assert!(proc_entry.is_some(), "inode {inode} missing from /proc");
            assert_eq!(
                from_netlink.resolve(*inode, || None),
                proc_entry,
                "inode {inode}"
            );
        }
        assert!(!from_netlink.is_empty() && !from_proc.is_empty());
        Some(from_netlink)
    }

    /// The same tables read from this thread's /proc files.
    fn from_proc(kinds: [TableKind; 2]) -> NetTables {
        let mut tables = NetTables::new("self".into());
        for kind in kinds {
            let path = format!("/proc/thread-self/{}", kind.file().to_str().unwrap());
            if let Ok(text) = std::fs::read_to_string(&path) {
                tables.add_table(kind, &text);
            }
        }
        tables
    }

    /// Real sockets of this process, read both ways: netlink and /proc agree entry for
    /// entry (addresses, ports, state, family) on every one of them.
    #[test]
    fn netlink_and_proc_agree_on_own_tcp_sockets() {
        let OwnTcp {
            listener,
            client,
            server,
            v6,
            held,
        } = OwnTcp::open();
        let Some(from_netlink) = agree_both_ways([TableKind::Tcp, TableKind::Tcp6], &held) else {
            return;
        };
        let listen = from_netlink.resolve(inode_of(&listener), || None).unwrap();
        assert_eq!(
            (listen.tcp_state, listen.local.to_string()),
            ("LISTEN", "127.0.0.1".into())
        );
        let c = from_netlink.resolve(inode_of(&client), || None).unwrap();
        assert_eq!(
            c.remote_port,
            i32::from(listener.local_addr().unwrap().port())
        );
        assert_eq!(c.tcp_state, "ESTABLISHED");
        if let Some((l6, _, s)) = &v6 {
            let l6 = from_netlink.resolve(inode_of(l6), || None).unwrap();
            assert_eq!(
                (l6.family, l6.local.to_string()),
                (FAMILY_INET6, "::".into())
            );
            let s = from_netlink.resolve(inode_of(s), || None).unwrap();
            assert_eq!(
                (s.family, s.remote.to_string()),
                (FAMILY_INET6, "127.0.0.1".into())
            );
        }
        drop((client, server, v6));
    }

    /// This process's TCP sockets: an IPv4 listener and a connected pair, and
    /// (when available) an IPv6 dual-stack listener reached over IPv4 (a
    /// v4-mapped peer) with its pair; `held` their inodes.
    struct OwnTcp {
        listener: std::net::TcpListener,
        client: std::net::TcpStream,
        server: std::net::TcpStream,
        v6: Option<(
            std::net::TcpListener,
            std::net::TcpStream,
            std::net::TcpStream,
        )>,
        held: Vec<u64>,
    }

    impl OwnTcp {
        fn open() -> OwnTcp {
            use std::net::{TcpListener, TcpStream};
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
            let (server, _) = listener.accept().expect("accept");
            let mut held = vec![inode_of(&listener), inode_of(&client), inode_of(&server)];
            let v6 = TcpListener::bind("[::]:0").ok().and_then(|l6| {
                let port = l6.local_addr().ok()?.port();
                let c = TcpStream::connect(("127.0.0.1", port)).ok()?;
                let (s, _) = l6.accept().ok()?;
                Some((l6, c, s))
            });
            if let Some((l6, c, s)) = &v6 {
                held.extend([inode_of(l6), inode_of(c), inode_of(s)]);
            }
            OwnTcp {
                listener,
                client,
                server,
                v6,
                held,
            }
        }
    }

    /// One dump of both families gives what the two dumps by family give:
    /// the same entries for this process's IPv4 and IPv6 (and v4-mapped)
    /// listeners and connections.
    #[test]
    fn one_tcp_dump_of_both_families_is_the_two_by_family() {
        let mut dumper = match Dumper::open() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("skipped: no sock_diag socket: {e}");
                return;
            }
        };
        // Every socket kept open until the end (a pattern's `..` would close them).
        let OwnTcp {
            listener: _listener,
            client,
            server,
            v6,
            held,
        } = OwnTcp::open();
        let by_inode = |entries: Vec<TableEntry>| -> std::collections::HashMap<u64, TableEntry> {
            entries.into_iter().map(|e| (e.inode, e)).collect()
        };
        let both = by_inode(dumper.dump_tcp_both_families().expect("one dump"));
        let mut by_family = by_inode(dumper.dump(TableKind::Tcp).expect("v4"));
        by_family.extend(by_inode(dumper.dump(TableKind::Tcp6).expect("v6")));
        for inode in &held {
            assert_eq!(both.get(inode), by_family.get(inode), "socket {inode}");
            assert!(both.contains_key(inode), "socket {inode}");
        }
        assert!(
            v6.is_none() || both.values().any(|e| e.family == FAMILY_INET6),
            "IPv6 sockets in the one dump"
        );
        drop((client, server, v6));
    }

    #[test]
    fn the_both_families_request_is_the_older_one_with_tcp_states() {
        let r = build_both_families_tcp_request(9);
        assert_eq!(r.len(), 76);
        assert_eq!(u32_ne(&r, 0), Some(76));
        assert_eq!(u16_ne(&r, 4), Some(TCPDIAG_GETSOCK));
        assert_eq!(u32_ne(&r, 8), Some(9));
        assert_eq!(
            u32_ne(&r, NLMSG_HEADER_LEN + 52),
            Some(states(TableKind::Tcp))
        );
        assert!(r[NLMSG_HEADER_LEN..NLMSG_HEADER_LEN + 52]
            .iter()
            .all(|&b| b == 0));
    }

    /// An IPv4 MPTCP socket (IPPROTO_MPTCP, 262); `None` where MPTCP is off.
    fn mptcp_socket() -> Option<std::os::fd::OwnedFd> {
        use std::os::fd::FromRawFd;
        // SAFETY: socket has no memory preconditions.
        let fd =
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 262) };
        // SAFETY: fd was just opened and is owned by nothing else.
        (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
    }

    fn loopback(port: u16) -> libc::sockaddr_in {
        libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        }
    }

    /// An MPTCP socket's TCP subflows are listed (sock_diag and /proc alike) as TCP
    /// under the inode of the fd holding the MPTCP socket: the /proc walk finds
    /// MPTCP connections as TCP through the tables, with their state and ports.
    #[test]
    fn mptcp_subflows_are_listed_under_the_mptcp_sockets_inode() {
        use std::net::{TcpListener, TcpStream};
        let (Some(listen_fd), Some(client_fd)) = (mptcp_socket(), mptcp_socket()) else {
            eprintln!("skip: no MPTCP here");
            return;
        };
        let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let mut address = loopback(0);
        let mut length = size;
        // SAFETY: address and length are valid for the calls' reads and writes.
        unsafe {
            let at = std::ptr::addr_of_mut!(address).cast::<libc::sockaddr>();
            assert_eq!(libc::bind(listen_fd.as_raw_fd(), at, size), 0);
            assert_eq!(libc::listen(listen_fd.as_raw_fd(), 4), 0);
            assert_eq!(libc::getsockname(listen_fd.as_raw_fd(), at, &mut length), 0);
        }
        let port = u16::from_be(address.sin_port);
        let target = loopback(port);
        // SAFETY: target is a valid sockaddr_in of the given size.
        let connected = unsafe {
            libc::connect(
                client_fd.as_raw_fd(),
                std::ptr::addr_of!(target).cast::<libc::sockaddr>(),
                size,
            )
        };
        assert_eq!(connected, 0, "{}", std::io::Error::last_os_error());
        let listener = TcpListener::from(listen_fd);
        let client = TcpStream::from(client_fd);
        let (server, _) = listener.accept().unwrap();
        let held = [inode_of(&listener), inode_of(&client), inode_of(&server)];
        let Some(from_netlink) = agree_both_ways([TableKind::Tcp, TableKind::Tcp6], &held) else {
            return;
        };
        let listen = from_netlink.resolve(held[0], || None).unwrap();
        assert_eq!(
            (listen.protocol, listen.tcp_state, listen.local_port),
            (6, "LISTEN", i32::from(port))
        );
        let c = from_netlink.resolve(held[1], || None).unwrap();
        assert_eq!(
            (c.tcp_state, c.remote_port),
            ("ESTABLISHED", i32::from(port))
        );
        let s = from_netlink.resolve(held[2], || None).unwrap();
        assert_eq!(
            (s.tcp_state, s.local_port),
            ("ESTABLISHED", i32::from(port))
        );
    }

    /// Bound, connected and IPv6 UDP sockets: the udp_diag dump and /proc/net/udp{,6}
    /// give identical entries.
    #[test]
    fn netlink_and_proc_agree_on_own_udp_sockets() {
        use std::net::UdpSocket;
        let bound = UdpSocket::bind("127.0.0.1:0").unwrap();
        let connected = UdpSocket::bind("0.0.0.0:0").unwrap();
        connected.connect("192.0.2.10:53").unwrap();
        let mut held = vec![inode_of(&bound), inode_of(&connected)];
        let v6 = UdpSocket::bind("[::1]:0").ok();
        if let Some(s) = &v6 {
            held.push(inode_of(s));
        }
        let Some(from_netlink) = agree_both_ways([TableKind::Udp, TableKind::Udp6], &held) else {
            return;
        };
        let c = from_netlink.resolve(inode_of(&connected), || None).unwrap();
        assert_eq!(
            (c.remote.to_string(), c.remote_port),
            ("192.0.2.10".into(), 53)
        );
        assert_eq!((c.protocol, c.socket_type), (17, SocketType::Dgram));
        if let Some(s) = &v6 {
            let e = from_netlink.resolve(inode_of(s), || None).unwrap();
            assert_eq!(
                (e.family, e.local.to_string()),
                (FAMILY_INET6, "::1".into())
            );
        }
    }
}
