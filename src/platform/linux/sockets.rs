//! Inet sockets per process: the `/proc/<pid>/net/*` tables of each network
//! namespace (read once per scan, only the tables the protocol set needs), joined to
//! owners by walking `/proc/<pid>/fd` (`socket:[inode]` links). TCP, UDP and
//! UDP-Lite sockets of the scanner's own namespace come from sock_diag netlink
//! instead (see `netlink`), with the /proc tables as the fallback. Sockets found in
//! no table (unbound ping sockets) are named by the `system.sockprotoname` xattr.
//! A full scan by a privileged scanner takes its socket fds from the BPF
//! task_file iterator (see `fd_iterator`) instead of walking every fd: the
//! iterator reads each IPv4/IPv6 socket's facts from the kernel's `struct sock`,
//! so no table is read and only the processes holding such sockets are opened,
//! each checked to be the process the iterator saw (`scan_facts`).

use super::fd_iterator::{self, SocketFd};
use super::netlink;
use super::procfs::{self, ProcDir};
use super::socket_tables::{tables_for, tcp_state_name, TableEntry, TableKind, UNKNOWN_UID};
use super::unseen_sockets;
use crate::model::{
    Pid, ProtocolSet, ScannedEnvironment, SocketInfo, SocketQuery, SocketScan, SocketType,
    FAMILY_INET, FAMILY_INET6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
    IPPROTO_UDPLITE, SOCKS_ENVIRONMENT_VARIABLES,
};
use crate::platform::HostError;
use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// At most this many error notes per scan (they are for logs, not rows).
pub const MAX_ERRORS: usize = 20;
/// Bytes of socket holders' environment variables one scan worker keeps for
/// the holders of one user (only the SOCKS check's variables are kept; a
/// process has a few hundred bytes of them). A holder past its user's share is
/// kept as unknown, never clean: one user's many processes with huge proxy
/// variables cannot spend another user's share (red team: they made other
/// users' clients `socks_env_truncated`).
const MAX_KEPT_ENVIRONMENT_BYTES_PER_USER: usize = 4 * 1024 * 1024;
/// The same for every user together, per worker: what many users' holders can
/// cost a scan in memory, no more.
const MAX_KEPT_ENVIRONMENT_BYTES: usize = 16 * 1024 * 1024;
/// Upper bound on one socket table read (a table line is ~150 bytes).
const MAX_TABLE_BYTES: usize = 64 * 1024 * 1024;
/// Threads for a full scan: the walk is syscall-bound and the target host has 2 cores.
const SCAN_THREADS: usize = 2;
/// The calling thread walks alone for this long before workers join: starting
/// two threads costs more than walking the fds of a few dozen processes (the
/// watch's 1 s re-check of 50 processes: 1.1-1.5 ms CPU with workers, about
/// 0.9 ms without).
const WALK_ALONE: std::time::Duration = std::time::Duration::from_millis(5);
/// fd entries one user's processes may have walked in one scan; further processes
/// of that user are not walked (the scan says so). Any user can hold millions of
/// fds (dup2 up to `nr_open` in each of many processes) and the walk costs a
/// readlink per fd: 4M fds made a full scan take 26 s. Root is not bounded: its
/// processes hold what the system opens, not what a user asks for.
pub const FD_BUDGET_PER_UID: usize = 200_000;
/// fd entries taken from a user's budget at once, so the walk locks it rarely.
const FD_BUDGET_CHUNK: usize = 4096;
/// Listings of one (fd, socket) of a process read at most: the leader's and a
/// thread's copy, or those of threads sharing an exited leader's table.
const COPIES_TRIED: usize = 3;
/// Threads with fd tables of their own whose network namespace one process's
/// iterator records may look up; the rest are not read (the scan says so).
const MAX_THREAD_TABLES: usize = 1024;
/// Upper bound on one pass of the fd iterator: 64 MiB is 2.8M socket records. A
/// pass cut there is thrown away and the scan walks `/proc` (its budgets bound it).
const MAX_ITERATOR_BYTES: usize = 64 * 1024 * 1024;
/// A query for up to this many pids makes one iterator pass per process (a
/// link each); for more, one pass over every task serves them all.
const MAX_PID_PASSES: usize = 64;
/// The longest one process's own pass may take (at most an eighth of the time
/// left); past it that process is walked.
const MAX_PID_PASS_TIME: std::time::Duration = std::time::Duration::from_millis(250);
/// The longest a full scan's fd iterator pass may take (at most a quarter of
/// the scan's time): ~4 ms on 7,000 fds, ~50 ms on 115,000.
const MAX_ITERATOR_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// A table address: IPv4 is one `%08X` of the address as a host-order u32; IPv6 is
/// four such words. v4-mapped IPv6 addresses are unmapped.
pub fn parse_address(hex: &str, ipv6: bool) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let text = hex.get(i * 8..i * 8 + 8)?;
        u32::from_str_radix(text, 16).ok().map(u32::to_ne_bytes)
    };
    if !ipv6 {
        if hex.len() != 8 {
            return None;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(word(0)?)));
    }
    if hex.len() != 32 {
        return None;
    }
    let mut octets = [0u8; 16];
    for (i, chunk) in octets.chunks_exact_mut(4).enumerate() {
        chunk.copy_from_slice(&word(i)?);
    }
    let v6 = Ipv6Addr::from(octets);
    Some(match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    })
}

fn parse_endpoint(text: &str, ipv6: bool) -> Option<(IpAddr, i32)> {
    let (address, port) = text.split_once(':')?;
    let port = i32::from_str_radix(port, 16).ok()?;
    Some((parse_address(address, ipv6)?, port))
}

/// Parses one data line of a table (`sl local rem st tx:rx tr:when retrnsmt uid
/// timeout inode …`); `None` for the header and malformed lines.
pub fn parse_line(kind: TableKind, line: &str) -> Option<TableEntry> {
    let mut fields = line.split_ascii_whitespace();
    let slot = fields.next()?;
    if !slot.ends_with(':') {
        return None;
    }
    let ipv6 = kind.is_ipv6();
    let (local, local_port) = parse_endpoint(fields.next()?, ipv6)?;
    let (remote, remote_port) = parse_endpoint(fields.next()?, ipv6)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    // tx:rx, tr:when, retrnsmt, uid, timeout, then the inode.
    let uid: u32 = fields.nth(3)?.parse().ok()?;
    let inode: u64 = fields.nth(1)?.parse().ok()?;
    let (protocol, local_port) = match kind.protocol() {
        Some(protocol) => (protocol, local_port),
        // Raw sockets: the local "port" is the IP protocol given to socket(2).
        None => (local_port, 0),
    };
    let tcp_state = if kind.socket_type() == SocketType::Stream {
        tcp_state_name(state)
    } else {
        ""
    };
    Some(TableEntry {
        inode,
        family: kind.family(),
        protocol,
        socket_type: kind.socket_type(),
        local,
        local_port,
        remote,
        remote_port,
        tcp_state,
        uid,
    })
}

/// `socket(AF_INET[6], SOCK_STREAM, IPPROTO_MPTCP)`: multipath TCP, open to any
/// user wherever `net.mptcp.enabled` is 1 (the default).
const IPPROTO_MPTCP: i32 = 262;

/// The fd link an iterator record names, under its process's directory:
/// `fd/<n>`, or `task/<tid>/fd/<n>` for a thread's own table.
fn record_link(record: &SocketFd) -> Option<std::ffi::CString> {
    let path = if record.tid == record.tgid {
        format!("fd/{}", record.fd)
    } else {
        format!("task/{}/fd/{}", record.tid, record.fd)
    };
    std::ffi::CString::new(path).ok()
}

/// Whether the link `name` under `dir` names the socket `inode` now.
fn names_socket(dir: &ProcDir, name: &CStr, inode: u64, buffer: &mut [u8]) -> bool {
    procfs::read_link_into(dir.leader_fd(), name, buffer).is_ok_and(|n| {
        procfs::parse_bracketed_inode(buffer.get(..n).unwrap_or_default(), b"socket:[")
            == Some(inode)
    })
}

/// The entry of an IPv4/IPv6 socket from the facts the fd iterator read in its
/// `struct sock`, as its table line would give it; `None` for a socket type no
/// table lists (SOCK_SEQPACKET; an SCTP stream is not TCP).
pub fn facts_entry(inode: u64, facts: &fd_iterator::SocketFacts) -> Option<TableEntry> {
    const TCP_CLOSE: u8 = 7;
    const SOCK_STREAM: u16 = 1;
    const SOCK_DGRAM: u16 = 2;
    const SOCK_RAW: u16 = 3;
    let family = match i32::from(facts.family) {
        FAMILY_INET => FAMILY_INET,
        FAMILY_INET6 => FAMILY_INET6,
        _ => return None,
    };
    let protocol = match i32::from(facts.protocol) {
        // An MPTCP stream is TCP on the wire: TCP subflows, or plain TCP once the
        // peer does not speak MPTCP. The tables list its subflows as TCP under
        // the fd's inode, and its own `struct sock` carries the first subflow's
        // addresses, ports and state (the kernel's mptcp_copy_inaddrs). Kept as
        // protocol 262 it was dropped here: any user could reach a SOCKS proxy
        // unseen by the iterator path. As TCP both paths give the same row.
        IPPROTO_MPTCP if facts.socket_type == SOCK_STREAM => IPPROTO_TCP,
        protocol => protocol,
    };
    let (socket_type, local_port, remote_port) = match facts.socket_type {
        SOCK_STREAM => (SocketType::Stream, facts.local_port, facts.remote_port),
        SOCK_DGRAM => (SocketType::Dgram, facts.local_port, facts.remote_port),
        // A raw socket's "port" is its protocol; the tables print no ports.
        SOCK_RAW => (SocketType::Raw, 0, 0),
        _ => return None,
    };
    let tcp = socket_type == SocketType::Stream && protocol == IPPROTO_TCP;
    // A TCP socket in CLOSE (never connected nor listening, or reset) is in no
    // table and sends nothing: the walk never lists it, so neither does this.
    if tcp && facts.state == TCP_CLOSE {
        return None;
    }
    let tcp_state = if tcp { tcp_state_name(facts.state) } else { "" };
    Some(TableEntry {
        inode,
        family,
        protocol,
        socket_type,
        local: facts.local,
        local_port: i32::from(local_port),
        remote: facts.remote,
        remote_port: i32::from(remote_port),
        tcp_state,
        // The record's uid is its holder's, not the socket's.
        uid: UNKNOWN_UID,
    })
}

/// The inode of a `net/unix` line (`Num RefCount Protocol Flags Type St Inode Path`).
pub fn parse_unix_inode(line: &str) -> Option<u64> {
    let mut fields = line.split_ascii_whitespace();
    if !fields.next()?.ends_with(':') {
        return None;
    }
    fields.nth(5)?.parse().ok()
}

/// What `system.sockprotoname` says about a socket fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockProtoName {
    Ping,
    Ping6,
    Raw,
    Raw6,
    /// A UDP or UDP-Lite socket that has neither bound nor sent is in no table
    /// and no sock_diag dump.
    Udp,
    Udp6,
    UdpLite,
    UdpLite6,
    /// UNIX, NETLINK, TCP… — nothing the fallback reports.
    Other,
}

pub fn parse_sockprotoname(value: &[u8]) -> SockProtoName {
    let value = value.strip_suffix(b"\0").unwrap_or(value);
    match value {
        b"PING" => SockProtoName::Ping,
        b"PINGv6" => SockProtoName::Ping6,
        b"RAW" => SockProtoName::Raw,
        b"RAWv6" => SockProtoName::Raw6,
        b"UDP" => SockProtoName::Udp,
        b"UDPv6" => SockProtoName::Udp6,
        // The kernel spells the IPv4 one "UDP-Lite".
        b"UDP-Lite" | b"UDPLITE" => SockProtoName::UdpLite,
        b"UDPLITEv6" => SockProtoName::UdpLite6,
        _ => SockProtoName::Other,
    }
}

impl SockProtoName {
    /// The entry reported for a socket found in no table: unbound ping, UDP and
    /// UDP-Lite sockets (and sockets created after the tables were read).
    pub fn unlisted_entry(self, inode: u64) -> Option<TableEntry> {
        let (family, protocol, socket_type) = match self {
            SockProtoName::Ping => (FAMILY_INET, IPPROTO_ICMP, SocketType::Dgram),
            SockProtoName::Ping6 => (FAMILY_INET6, IPPROTO_ICMPV6, SocketType::Dgram),
            SockProtoName::Raw => (FAMILY_INET, 0, SocketType::Raw),
            SockProtoName::Raw6 => (FAMILY_INET6, 0, SocketType::Raw),
            SockProtoName::Udp => (FAMILY_INET, IPPROTO_UDP, SocketType::Dgram),
            SockProtoName::Udp6 => (FAMILY_INET6, IPPROTO_UDP, SocketType::Dgram),
            SockProtoName::UdpLite => (FAMILY_INET, IPPROTO_UDPLITE, SocketType::Dgram),
            SockProtoName::UdpLite6 => (FAMILY_INET6, IPPROTO_UDPLITE, SocketType::Dgram),
            SockProtoName::Other => return None,
        };
        let unspecified = if family == FAMILY_INET6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        Some(TableEntry {
            inode,
            family,
            protocol,
            socket_type,
            local: unspecified,
            local_port: 0,
            remote: unspecified,
            remote_port: 0,
            tcp_state: "",
            uid: UNKNOWN_UID,
        })
    }
}

/// The sockets of one network namespace, by inode.
#[derive(Debug, Default)]
pub struct NetTables {
    /// The namespace inode as text (copied into every row).
    pub namespace: String,
    entries: HashMap<u64, TableEntry>,
    /// A ping socket listed in both icmp and icmp6: the second listing, kept until
    /// the socket's own family (PING vs PINGv6) decides.
    ping_alternates: HashMap<u64, TableEntry>,
    /// Inodes of sockets known to be of a kind the scan does not want (UNIX; TCP
    /// when TCP is not wanted), read for full scans only: the fd walk spends no
    /// xattr call on them.
    other_kinds: HashSet<u64>,
    /// Tables cut at [`MAX_TABLE_BYTES`]: sockets past the cut are not listed.
    truncated: Vec<String>,
}

impl NetTables {
    pub fn new(namespace: String) -> Self {
        NetTables {
            namespace,
            ..Default::default()
        }
    }

    /// Adds one entry; a repeated inode keeps the first listing, except that a ping
    /// socket listed under both families remembers the other for `resolve`.
    pub fn insert(&mut self, entry: TableEntry) {
        match self.entries.get(&entry.inode) {
            None => {
                self.entries.insert(entry.inode, entry);
            }
            Some(first) if first.is_ping() && entry.is_ping() && first.family != entry.family => {
                self.ping_alternates.insert(entry.inode, entry);
            }
            Some(_) => {}
        }
    }

    /// Parses a whole table file into this set.
    pub fn add_table(&mut self, kind: TableKind, text: &str) {
        each_table_entry(kind, text.as_bytes(), |entry| self.insert(entry));
    }

    /// The entry of a socket inode. `protoname` is asked only for a ping socket
    /// listed under both families.
    pub fn resolve(
        &self,
        inode: u64,
        protoname: impl FnOnce() -> Option<SockProtoName>,
    ) -> Option<TableEntry> {
        let first = *self.entries.get(&inode)?;
        let Some(other) = self.ping_alternates.get(&inode) else {
            return Some(first);
        };
        let wanted_family = match protoname() {
            Some(SockProtoName::Ping6) => FAMILY_INET6,
            Some(SockProtoName::Ping) => FAMILY_INET,
            _ => return Some(first),
        };
        Some(if other.family == wanted_family {
            *other
        } else {
            first
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds the inodes of a `net/unix` listing.
    pub fn add_unix_table(&mut self, text: &str) {
        self.other_kinds
            .extend(text.lines().skip(1).filter_map(parse_unix_inode));
    }

    /// True for a ping socket listed under both families (its xattr decides).
    pub fn has_alternate(&self, inode: u64) -> bool {
        self.ping_alternates.contains_key(&inode)
    }

    /// True for a socket known to be of a kind the scan does not want.
    pub fn is_other_kind(&self, inode: u64) -> bool {
        self.other_kinds.contains(&inode)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads the wanted tables of the namespace `dir`'s process lives in, and the
    /// inodes alone of the `unwanted` ones (and of `net/unix` when `with_unix`). A
    /// table the kernel lacks (no IPv6, no UDP-Lite) is skipped; an unwanted one
    /// that cannot be read costs only the xattr calls it would have saved.
    fn read(
        dir: &ProcDir,
        namespace: u64,
        kinds: &[TableKind],
        unwanted: &[TableKind],
        with_unix: bool,
    ) -> Result<NetTables, HostError> {
        let mut tables = NetTables::new(namespace.to_string());
        if with_unix {
            match dir.read(c"net/unix", MAX_TABLE_BYTES) {
                Ok(data) => tables.add_unix_table(&String::from_utf8_lossy(&data)),
                Err(e) if procfs::is_vanished(&e) => {}
                Err(e) => return Err(procfs::process_error(dir.pid(), &e)),
            }
        }
        // Netlink sees the calling thread's namespace only: use it for that one,
        // through one socket for all its dumps (opened at the first dumpable table).
        let mut dumper: Option<Option<netlink::Dumper>> = None;
        let usable_dumper = |dumper: &mut Option<Option<netlink::Dumper>>| {
            dumper
                .get_or_insert_with(|| {
                    if netlink::own_net_namespace().ok() != Some(namespace) {
                        return None;
                    }
                    netlink::Dumper::open()
                        .inspect_err(|e| log::debug!("no sock_diag socket, reading /proc: {e}"))
                        .ok()
                })
                .is_some()
        };
        // Both TCP tables in one dump: one walk of the kernel's TCP hash
        // instead of one per family (most of a `pid =` lookup's time).
        let mut dumped_together: Vec<(TableKind, bool)> = Vec::new();
        for (set, wanted) in [(kinds, true), (unwanted, false)] {
            let both = set.contains(&TableKind::Tcp) && set.contains(&TableKind::Tcp6);
            if !both || !usable_dumper(&mut dumper) {
                continue;
            }
            let Some(Some(tcp_dumper)) = dumper.as_mut() else {
                continue;
            };
            match tcp_dumper.dump_tcp_both_families() {
                Ok(entries) if !wanted => {
                    tables.other_kinds.extend(entries.iter().map(|e| e.inode));
                }
                Ok(entries) => {
                    for entry in entries {
                        tables.insert(entry);
                    }
                }
                Err(e) => {
                    log::debug!("one TCP dump of both families failed, one by family: {e}");
                    continue;
                }
            }
            dumped_together.extend([(TableKind::Tcp, wanted), (TableKind::Tcp6, wanted)]);
        }
        let all = kinds.iter().map(|&k| (k, true));
        for (kind, wanted) in all.chain(unwanted.iter().map(|&k| (k, false))) {
            if dumped_together.contains(&(kind, wanted)) {
                continue;
            }
            let usable = netlink::dumpable(kind).then(|| usable_dumper(&mut dumper));
            if let (Some(true), Some(Some(dumper))) = (usable, dumper.as_mut()) {
                match dumper.dump(kind) {
                    Ok(entries) if !wanted => {
                        tables.other_kinds.extend(entries.iter().map(|e| e.inode));
                        continue;
                    }
                    Ok(entries) => {
                        for entry in entries {
                            tables.insert(entry);
                        }
                        continue;
                    }
                    Err(e) => log::debug!("sock_diag failed, reading /proc {kind:?}: {e}"),
                }
            }
            match dir.read(kind.file(), MAX_TABLE_BYTES + 1) {
                Ok(data) if !wanted => {
                    let (data, _) = whole_lines_within(&data, MAX_TABLE_BYTES);
                    each_table_entry(kind, data, |e| {
                        tables.other_kinds.insert(e.inode);
                    });
                }
                Err(_) if !wanted => continue,
                Ok(data) => {
                    let (data, cut) = whole_lines_within(&data, MAX_TABLE_BYTES);
                    if cut {
                        tables.truncated.push(format!(
                            "/proc/{}/{} (network namespace {namespace}) is over {} MiB: \
                             only its first {} MiB of sockets were read",
                            dir.pid(),
                            kind.file().to_string_lossy(),
                            MAX_TABLE_BYTES >> 20,
                            MAX_TABLE_BYTES >> 20
                        ));
                    }
                    tables.add_table(kind, &String::from_utf8_lossy(data))
                }
                Err(e) if procfs::is_vanished(&e) => continue,
                Err(e) => return Err(procfs::process_error(dir.pid(), &e)),
            }
        }
        // A process that exited mid-read gives empty tables: make sure it is alive.
        match dir.net_namespace() {
            Ok(now) if now == namespace => Ok(tables),
            Ok(_) => Err(HostError::Other(format!(
                "process {} changed network namespace during the scan",
                dir.pid()
            ))),
            Err(e) => Err(procfs::process_error(dir.pid(), &e)),
        }
    }
}

/// Hands each entry of a `/proc/net` table's text (its header line skipped)
/// to `each`; malformed lines are skipped.
fn each_table_entry(kind: TableKind, data: &[u8], mut each: impl FnMut(TableEntry)) {
    for line in String::from_utf8_lossy(data).lines().skip(1) {
        if let Some(entry) = parse_line(kind, line) {
            each(entry);
        }
    }
}

/// The whole lines of `data` within `limit` bytes, and whether anything was cut.
pub fn whole_lines_within(data: &[u8], limit: usize) -> (&[u8], bool) {
    if data.len() <= limit {
        return (data, false);
    }
    let head = data.get(..limit).unwrap_or(data);
    let end = head.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    (head.get(..end).unwrap_or_default(), true)
}

/// `getxattr(path, "system.sockprotoname")` of one fd of a process, through the held
/// `/proc/<pid>/fd` directory (`/proc/self/fd/<dirfd>/<n>`) so pid reuse cannot
/// redirect it.
fn sockprotoname(fd_dir: RawFd, fd_name: &CStr) -> Option<SockProtoName> {
    let path = format!("/proc/self/fd/{fd_dir}/{}", fd_name.to_string_lossy());
    let path = std::ffi::CString::new(path).ok()?;
    let mut value = [0u8; 32];
    // SAFETY: path and the attribute name are NUL-terminated; value is valid for its length.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"system.sockprotoname".as_ptr(),
            value.as_mut_ptr().cast::<libc::c_void>(),
            value.len(),
        )
    };
    if n < 0 {
        return None;
    }
    Some(parse_sockprotoname(value.get(..n as usize)?))
}

/// What one worker found.
#[derive(Default)]
struct Partial {
    sockets: Vec<SocketInfo>,
    skipped: usize,
    errors: Vec<String>,
    executables: HashMap<Pid, String>,
    environments: HashMap<Pid, ScannedEnvironment>,
    /// Bytes of the variables in `environments`, in all and by the holder's
    /// real uid (see `MAX_KEPT_ENVIRONMENT_BYTES`).
    environment_bytes: usize,
    environment_bytes_by_user: HashMap<i64, usize>,
    /// Processes that live on but whose fds could not all be read (a thread
    /// gone mid-read): the answer says so (bounded like `errors`).
    unsure: Vec<String>,
}

impl Partial {
    fn note(&mut self, error: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(error);
        }
    }

    fn skip(&mut self, error: &HostError) {
        self.skipped += 1;
        if !matches!(error, HostError::Vanished(_)) {
            self.note(error.to_string());
        }
    }

    /// What the observation of `found`, the sockets of the process behind `dir`,
    /// reads next, read here on the worker through the directory that named
    /// them (so it belongs to the process that held them, and the process is
    /// opened once): its executable, and with `environments`, when it holds a
    /// TCP connection (the SOCKS check reads every client's), its environment.
    fn read_holder(&mut self, dir: &ProcDir, found: &[SocketInfo], environments: bool) {
        let pid = dir.pid();
        if let Ok((path, _)) = dir.executable() {
            self.executables.insert(pid, path);
        }
        if !environments || !found.iter().any(is_tcp_connection) {
            return;
        }
        let variables = match super::environment_variables_of(dir, &SOCKS_ENVIRONMENT_VARIABLES) {
            Ok(variables) => {
                let bytes: usize = variables.iter().map(String::len).sum();
                if bytes == 0 {
                    Some(variables)
                } else {
                    // The real uid: a process can make itself non-dumpable (its
                    // /proc directory then root's), not another user.
                    let user = dir
                        .read(c"status", procfs::MAX_SMALL_BYTES)
                        .ok()
                        .and_then(|s| procfs::parse_status_uids(&String::from_utf8_lossy(&s)))
                        .map_or(-1, |(real, _)| real);
                    let spent = self.environment_bytes_by_user.entry(user).or_default();
                    if *spent + bytes <= MAX_KEPT_ENVIRONMENT_BYTES_PER_USER
                        && self.environment_bytes + bytes <= MAX_KEPT_ENVIRONMENT_BYTES
                    {
                        *spent += bytes;
                        self.environment_bytes += bytes;
                        Some(variables)
                    } else {
                        self.note(format!(
                            "the proxy variables of process {pid} ({bytes} bytes) are past the \
                             scan's budget for kept ones (uid {user}): judged as unread"
                        ));
                        None
                    }
                }
            }
            // Gone, or not ours to read: left to the SOCKS check, as before.
            Err(HostError::Vanished(_) | HostError::PermissionDenied(_)) => return,
            // Cut or unreadable: unknown, never clean.
            Err(_) => None,
        };
        self.environments
            .insert(pid, ScannedEnvironment { variables });
    }
}

/// A TCP socket with a peer, not a listener: what the SOCKS check judges as a
/// client.
fn is_tcp_connection(socket: &SocketInfo) -> bool {
    socket.protocol == IPPROTO_TCP
        && socket.socket_type == SocketType::Stream
        && socket.tcp_state != "LISTEN"
        && socket.remote_port != 0
}

/// One process's fd walk: what it found and how much of its user's budget it took.
struct FdWalk<'s, 'q> {
    scan: &'s Scan<'q>,
    budget_uid: Option<u32>,
    /// fd entries this process may still walk; refilled from its user's budget.
    granted: usize,
    cut: bool,
    failure: Option<HostError>,
    found: Vec<SocketInfo>,
}

impl FdWalk<'_, '_> {
    /// Walks one fd table: the process's (`dir` is `/proc/<pid>`) or a thread's
    /// own (`/proc/<pid>/task/<tid>`, resolved in that thread's namespace).
    fn table(&mut self, dir: &ProcDir) -> std::io::Result<()> {
        let pid = dir.pid();
        let mut tables: Option<Arc<NetTables>> = None;
        let mut link = [0u8; 64];
        let deadline = crate::deadline::Deadline::current();
        dir.for_each_fd(|fd_dir, fd, name| {
            if self.failure.is_some() || self.cut || deadline.expired() {
                return;
            }
            if let Some(uid) = self.budget_uid {
                if self.granted == 0 {
                    self.granted = self.scan.take_fds(uid, FD_BUDGET_CHUNK);
                }
                if self.granted == 0 {
                    self.cut = true;
                    return;
                }
                self.granted -= 1;
            }
            let Ok(n) = procfs::read_link_into(fd_dir, name, &mut link) else {
                return; // closed since listed, or not a short link: not a socket
            };
            let Some(inode) =
                procfs::parse_bracketed_inode(link.get(..n).unwrap_or_default(), b"socket:[")
            else {
                return;
            };
            if tables.is_none() {
                match self.scan.process_tables(dir) {
                    Ok(t) => tables = Some(t),
                    Err(e) => {
                        self.failure = Some(e);
                        return;
                    }
                }
            }
            let Some(net) = tables.as_ref() else { return };
            let entry = self
                .scan
                .entry_of(net, inode, || sockprotoname(fd_dir, name));
            if let Some((entry, found_in)) = entry {
                let info = entry.to_socket_info(pid, fd, &found_in.namespace);
                if self.scan.protocols.wants(&info) {
                    self.found.push(info);
                }
            }
        })
    }
}

/// One socket scan: the query, and each namespace's tables read at most once.
pub struct Scan<'q> {
    protocols: &'q ProtocolSet,
    kinds: Vec<TableKind>,
    /// Sockets in no table are named by xattr only when ping, raw, UDP or UDP-Lite
    /// sockets are wanted (the kinds that can be missing from a table: unbound).
    name_unlisted: bool,
    /// Full scans meet many UNIX sockets: one `net/unix` read per namespace is
    /// cheaper than an xattr call for each of them.
    read_unix: bool,
    /// Tables read for their inodes only, for the same reason: TCP when a full
    /// scan names unlisted sockets but does not want TCP (every TCP fd would
    /// otherwise cost an xattr call).
    unwanted: Vec<TableKind>,
    tables: Mutex<HashMap<u64, Arc<NetTables>>>,
    /// Per uid: fd entries left to walk, and processes not walked (whole) for
    /// want of them.
    fd_budgets: Mutex<HashMap<u32, FdBudget>>,
    /// The scanner's own namespace's tables, once looked for (`own_tables`).
    own: std::sync::OnceLock<Option<Arc<NetTables>>>,
    /// Every process (not a given pid list).
    full: bool,
    /// The socket fds the fd iterator saw, by process: only these are read (each
    /// re-checked through the process's own directory); `None`: walk every fd.
    candidates: Option<HashMap<Pid, Vec<SocketFd>>>,
    /// Processes walked whatever the candidates say (see `walking`).
    walk: HashSet<Pid>,
    /// Whether TCP clients' holders have their environment read (see `scan`).
    environments: bool,
}

/// One user's share of a scan's fd walk.
struct FdBudget {
    left: usize,
    cut: usize,
}

impl<'q> Scan<'q> {
    pub fn new(protocols: &'q ProtocolSet, full: bool) -> Self {
        let name_unlisted = protocols.icmp || protocols.raw || protocols.udp || protocols.udplite;
        Scan {
            protocols,
            kinds: tables_for(protocols),
            name_unlisted,
            read_unix: name_unlisted && full,
            unwanted: if name_unlisted && full && !protocols.tcp {
                vec![TableKind::Tcp, TableKind::Tcp6]
            } else {
                Vec::new()
            },
            tables: Mutex::new(HashMap::new()),
            fd_budgets: Mutex::new(HashMap::new()),
            own: std::sync::OnceLock::new(),
            full,
            candidates: None,
            walk: HashSet::new(),
            environments: false,
        }
    }

    /// Reads the environment of each TCP client's holder too.
    pub fn reading_environments(mut self, environments: bool) -> Self {
        self.environments = environments;
        self
    }

    /// Walks these processes' fds although the scan has iterator records (their
    /// own pass was cut).
    pub fn walking(mut self, pids: Vec<Pid>) -> Self {
        self.walk = pids.into_iter().collect();
        self
    }

    /// Reads only these iterator records instead of walking each process's fds.
    pub fn with_candidates(mut self, records: Vec<SocketFd>) -> Self {
        let mut by_process: HashMap<Pid, Vec<SocketFd>> = HashMap::new();
        for record in records {
            if let Ok(pid) = Pid::try_from(record.tgid) {
                by_process.entry(pid).or_default().push(record);
            }
        }
        self.candidates = Some(by_process);
        self
    }

    /// The processes the iterator saw holding sockets and those to walk, in pid
    /// order.
    fn candidate_pids(&self) -> Option<Vec<Pid>> {
        let mut pids: Vec<Pid> = self.candidates.as_ref()?.keys().copied().collect();
        pids.extend(self.walk.iter().copied());
        pids.sort_unstable();
        pids.dedup();
        Some(pids)
    }

    /// Whose budget a process's fds come out of: the owner of its `/proc`
    /// directory, or for a root-owned one (root's, or any non-dumpable process)
    /// its real uid. `None`: root's, not bounded.
    fn budget_uid(dir: &ProcDir) -> Result<Option<u32>, HostError> {
        let pid = dir.pid();
        let owner = dir
            .owner_uid()
            .map_err(|e| procfs::process_error(pid, &e))?;
        if owner != 0 {
            return Ok(Some(owner));
        }
        let status = dir
            .read(c"status", procfs::MAX_SMALL_BYTES)
            .map_err(|e| procfs::process_error(pid, &e))?;
        let (real, _) =
            procfs::parse_status_uids(&String::from_utf8_lossy(&status)).ok_or_else(|| {
                HostError::Malformed {
                    what: format!("status of process {pid}"),
                    why: "no Uid line".into(),
                }
            })?;
        Ok(u32::try_from(real).ok().filter(|&uid| uid != 0))
    }

    /// Takes up to `want` fd entries from `uid`'s budget; 0 once it is used up.
    fn take_fds(&self, uid: u32, want: usize) -> usize {
        let mut budgets = self
            .fd_budgets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let budget = budgets.entry(uid).or_insert(FdBudget {
            left: FD_BUDGET_PER_UID,
            cut: 0,
        });
        let granted = want.min(budget.left);
        budget.left -= granted;
        granted
    }

    /// Gives back fd entries a process did not use, or notes it was cut short.
    fn settle_fds(&self, uid: u32, unused: usize, cut: bool) {
        let mut budgets = self
            .fd_budgets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(budget) = budgets.get_mut(&uid) {
            budget.left += unused;
            budget.cut += usize::from(cut);
        }
    }

    /// The tables of the namespace `dir`'s process is in.
    fn process_tables(&self, dir: &ProcDir) -> Result<Arc<NetTables>, HostError> {
        let namespace = dir
            .net_namespace()
            .map_err(|e| procfs::process_error(dir.pid(), &e))?;
        self.tables_of(dir, namespace)
    }

    /// The namespace's tables, read through `dir` the first time it is seen.
    fn tables_of(&self, dir: &ProcDir, namespace: u64) -> Result<Arc<NetTables>, HostError> {
        // Held while reading so two workers never read the same namespace twice.
        let mut cache = self
            .tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = cache.get(&namespace) {
            return Ok(found.clone());
        }
        let read = Arc::new(NetTables::read(
            dir,
            namespace,
            &self.kinds,
            &self.unwanted,
            self.read_unix,
        )?);
        cache.insert(namespace, read.clone());
        Ok(read)
    }

    /// `/proc/<pid>` and whose fd budget it spends; a process that cannot be
    /// opened is counted as skipped in `out`.
    fn open_process(pid: Pid, out: &mut Partial) -> Option<(ProcDir, Option<u32>)> {
        let opened = ProcDir::open(pid).and_then(|dir| Ok((Self::budget_uid(&dir)?, dir)));
        match opened {
            Ok((uid, dir)) => Some((dir, uid)),
            Err(e) => {
                out.skip(&e);
                None
            }
        }
    }

    /// The table entry of a socket inode, and the tables it was found in: the
    /// holder's namespace's, else the scanner's own (a socket stays in the
    /// namespace it was made in, so a process that moved on by `unshare -n` or
    /// `setns` holds sockets its current namespace does not list).
    fn listed_entry(
        &self,
        net: &Arc<NetTables>,
        inode: u64,
        protoname: impl Fn() -> Option<SockProtoName>,
    ) -> Option<(TableEntry, Arc<NetTables>)> {
        if let Some(entry) = net.resolve(inode, &protoname) {
            return Some((entry, net.clone()));
        }
        let own = self
            .own_tables()
            .filter(|own| own.namespace != net.namespace)?;
        let entry = own.resolve(inode, &protoname)?;
        Some((entry, own))
    }

    /// `listed_entry`, else for a socket in no table the kind `protoname` (the
    /// fd's xattr) names, when such kinds are wanted.
    fn entry_of(
        &self,
        net: &Arc<NetTables>,
        inode: u64,
        protoname: impl Fn() -> Option<SockProtoName>,
    ) -> Option<(TableEntry, Arc<NetTables>)> {
        self.listed_entry(net, inode, &protoname).or_else(|| {
            if !self.name_unlisted || net.is_other_kind(inode) {
                return None;
            }
            let entry = protoname()?.unlisted_entry(inode)?;
            Some((entry, net.clone()))
        })
    }

    /// The scanner's own namespace's tables (read once per scan, as any other).
    fn own_tables(&self) -> Option<Arc<NetTables>> {
        self.own
            .get_or_init(|| {
                let namespace = netlink::own_net_namespace().ok()?;
                let dir = ProcDir::open(Pid::try_from(std::process::id()).ok()?).ok()?;
                self.tables_of(&dir, namespace).ok()
            })
            .clone()
    }

    /// Walks one process's fds, and those of any thread with an fd table of its
    /// own; its sockets are appended to `out`.
    fn scan_process(&self, pid: Pid, out: &mut Partial) {
        if let Some(candidates) = self
            .candidates
            .as_ref()
            .filter(|_| !self.walk.contains(&pid))
        {
            let listed = candidates.get(&pid).map(Vec::as_slice).unwrap_or_default();
            // A record without facts (no `struct sock` behind the file, or no
            // namespace read) is resolved through the tables as before.
            let (with_facts, without): (Vec<SocketFd>, Vec<SocketFd>) = listed
                .iter()
                .partition(|r| r.facts.is_some_and(|f| f.net != 0));
            if !with_facts.is_empty() {
                self.scan_facts(pid, &with_facts, out);
            }
            if !without.is_empty() {
                self.scan_candidates(pid, &without, out);
            }
            if listed.is_empty() {
                // A given pid the passes saw no socket of: gone is counted, as
                // the walk counts it.
                if let Err(e) = ProcDir::open(pid) {
                    out.skip(&e);
                }
            }
            return;
        }
        let Some((dir, budget_uid)) = Self::open_process(pid, out) else {
            return;
        };
        let mut walk = FdWalk {
            scan: self,
            budget_uid,
            granted: 0,
            cut: false,
            failure: None,
            found: Vec::new(),
        };
        let walked = walk.table(&dir);
        // The task the fds were listed through (the leader, or for an exited
        // leader one of its threads) may have begun to exit meanwhile and ended
        // the listing early, or no thread was found alive to list through
        // (threads that keep replacing each other): said, not silent, while the
        // process has threads left (a lone leader that exits takes its sockets).
        if walked.is_ok() && dir.has_threads_besides_leader() && dir.reader_began_exiting() {
            out.skipped += 1;
            out.unsure.push(format!(
                "process {pid}: the thread its fds were read through exited meanwhile, or \
                 none was found alive: its sockets may be missing"
            ));
        }
        if walked.is_ok() {
            // A thread's table that cannot be walked leaves the process's other
            // sockets standing; the process counts as not walked whole. One whose
            // thread began to exit may have been listed short, without an error.
            let mut thread_exited = false;
            let threads = dir
                .threads_with_own_fd_table()
                .and_then(|(threads, too_many)| {
                    walk.cut |= too_many;
                    threads.iter().try_for_each(|thread| {
                        walk.table(thread)?;
                        thread_exited |= thread.reader_began_exiting();
                        Ok(())
                    })
                });
            let cut_short = match threads {
                Ok(()) => thread_exited,
                Err(e) if procfs::is_vanished(&e) => true,
                Err(e) => {
                    out.skipped += 1;
                    out.note(format!("threads of process {pid}: {e}"));
                    false
                }
            };
            if cut_short && dir.lives_on() {
                // That thread's table (or its successor's in a relay of
                // short-lived threads) was not read whole.
                out.skipped += 1;
                out.unsure.push(format!(
                    "process {pid}: a thread with an fd table of its own exited while \
                     it was read: its sockets may be missing"
                ));
            }
        }
        let FdWalk {
            granted,
            cut,
            failure,
            mut found,
            ..
        } = walk;
        if let Some(uid) = budget_uid {
            self.settle_fds(uid, granted, cut);
        }
        if cut {
            // What it was seen holding is kept; the scan reports the cut.
            out.skipped += 1;
        }
        if let Some(e) = failure {
            return out.skip(&e);
        }
        if let Err(e) = walked {
            // Gone mid-read while the process lives on (an exited leader's table
            // read through a thread that exited): not read whole, and said so.
            if procfs::is_vanished(&e) && dir.lives_on() {
                out.unsure.push(format!(
                    "process {pid}: the thread its fds were read through exited: its \
                     sockets may be missing"
                ));
            }
            return out.skip(&procfs::process_error(pid, &e));
        }
        if !found.is_empty() {
            // A table shared by the leader and a thread (an exited leader's, or
            // one copied by unshare) lists the same fd twice.
            let mut seen = HashSet::new();
            found.retain(|s| seen.insert((s.fd, s.socket)));
            out.read_holder(&dir, &found, self.environments);
        }
        out.sockets.append(&mut found);
    }

    /// The sockets of one process from the iterator's records: each is attributed
    /// only if its link, read now through the held `/proc/<pid>` directory, still
    /// names the same socket (the pid may have been reused since the iterator ran;
    /// a new holder of the very same socket holds it indeed). A thread with an fd
    /// table of its own is read at `task/<tid>/fd/<n>`.
    fn scan_candidates(&self, pid: Pid, listed: &[SocketFd], out: &mut Partial) {
        let Some((dir, budget_uid)) = Self::open_process(pid, out) else {
            return;
        };
        let net = match self.process_tables(&dir) {
            Ok(net) => net,
            Err(e) => return out.skip(&e),
        };
        // The leader's table first. The same socket at the same fd is listed again
        // by a thread whose table is a copy (unshare copies it) and, once the leader
        // has exited, by every thread sharing the table: at most
        // [`COPIES_TRIED`] of them are read (one that reads back is the row).
        let mut listed = listed.to_vec();
        listed.sort_unstable_by_key(|r| (r.fd, r.inode, r.tid != r.tgid, r.tid));
        let mut copies = 0;
        let mut previous = None;
        listed.retain(|r| {
            if previous != Some((r.fd, r.inode)) {
                previous = Some((r.fd, r.inode));
                copies = 0;
            }
            copies += 1;
            copies <= COPIES_TRIED
        });
        // A thread with a table of its own may be in a network namespace of its
        // own too: its sockets resolve in that one (read through task/<tid>).
        let mut thread_tables: HashMap<u32, Option<Arc<NetTables>>> = HashMap::new();
        let mut too_many_threads = false;
        for record in listed.iter().filter(|r| r.tid != r.tgid) {
            if thread_tables.len() >= MAX_THREAD_TABLES && !thread_tables.contains_key(&record.tid)
            {
                too_many_threads = true;
                continue;
            }
            thread_tables.entry(record.tid).or_insert_with(|| {
                let thread = dir.thread(Pid::try_from(record.tid).ok()?).ok()?;
                self.process_tables(&thread).ok()
            });
        }
        let tables_of = |record: &SocketFd| -> Option<Arc<NetTables>> {
            if record.tid == record.tgid {
                return Some(net.clone());
            }
            thread_tables.get(&record.tid).cloned().flatten()
        };
        // Only a socket that could become a row is read again: one listed in a
        // wanted kind, or one in no table when such sockets are named by xattr
        // (not a UNIX socket, nor TCP when TCP is not wanted).
        listed.retain(|r| {
            let Some(net) = tables_of(r) else {
                return false; // the thread is gone, or past the bound
            };
            let found = self.listed_entry(&net, r.inode, || None);
            match found {
                Some((first, net)) => {
                    net.has_alternate(r.inode)
                        || self.protocols.wants(&first.to_socket_info(pid, 0, ""))
                }
                None => self.name_unlisted && !net.is_other_kind(r.inode),
            }
        });
        let mut cut = too_many_threads;
        if let Some(uid) = budget_uid {
            let granted = self.take_fds(uid, listed.len());
            if granted < listed.len() {
                listed.truncate(granted);
                cut = true;
            }
            self.settle_fds(uid, 0, cut);
        }
        let mut found: Vec<SocketInfo> = Vec::new();
        let mut attributed: HashSet<(u32, u64)> = HashSet::new();
        let mut link = [0u8; 64];
        let deadline = crate::deadline::Deadline::current();
        for record in &listed {
            if deadline.expired() {
                break;
            }
            if attributed.contains(&(record.fd, record.inode)) {
                continue;
            }
            let Some(name) = record_link(record) else {
                continue;
            };
            if !names_socket(&dir, &name, record.inode, &mut link) {
                // Closed, the task is gone, or the fd holds something else now
                // (pid or fd reuse): nothing to attribute.
                continue;
            }
            let inode = record.inode;
            let Some(net) = tables_of(record) else {
                continue;
            };
            let entry = self.entry_of(&net, inode, || sockprotoname(dir.leader_fd(), &name));
            attributed.insert((record.fd, inode));
            if let Some((entry, found_in)) = entry {
                let info = entry.to_socket_info(pid, i64::from(record.fd), &found_in.namespace);
                if self.protocols.wants(&info) {
                    found.push(info);
                }
            }
        }
        if cut {
            out.skipped += 1;
        }
        if !found.is_empty() {
            out.read_holder(&dir, &found, self.environments);
        }
        out.sockets.append(&mut found);
    }

    /// The sockets of one process from records carrying the kernel's facts: no
    /// table is read. They are attributed only to the process the iterator saw
    /// (the pid may have been reused since): it must have started when its
    /// records' leader did (the leader's `stat`, one read). Only when that cannot
    /// be told must each fd link still name its socket (at `task/<tid>/fd/<n>`
    /// for a thread's own table, at most [`COPIES_TRIED`] listings of one fd):
    /// threads that hand a table on and exit would leave no link to read. Rows
    /// come out of the holder's real uid's budget ([`FD_BUDGET_PER_UID`]), as
    /// the walk's fds do.
    fn scan_facts(&self, pid: Pid, listed: &[SocketFd], out: &mut Partial) {
        let dir = match ProcDir::open(pid) {
            Ok(dir) => dir,
            Err(e) => return out.skip(&e),
        };
        // One group per (fd, socket): the leader's listing first, then threads'.
        let mut listed = listed.to_vec();
        listed.sort_unstable_by_key(|r| (r.fd, r.inode, r.tid != r.tgid, r.tid));
        let mut groups: Vec<Vec<SocketFd>> = Vec::new();
        for record in listed {
            match groups.last_mut() {
                Some(group)
                    if group
                        .first()
                        .is_some_and(|g| (g.fd, g.inode) == (record.fd, record.inode)) =>
                {
                    if group.len() < COPIES_TRIED {
                        group.push(record);
                    }
                }
                _ => groups.push(vec![record]),
            }
        }
        // Each user's share, as the walk's: a user who dups one socket into
        // hundreds of thousands of fds gets no more rows (nor memory) than there.
        let uid = groups
            .first()
            .and_then(|g| g.first())
            .map(|r| r.uid)
            .filter(|&uid| uid != 0);
        if let Some(uid) = uid {
            let granted = self.take_fds(uid, groups.len());
            let cut = granted < groups.len();
            groups.truncate(granted);
            self.settle_fds(uid, 0, cut);
            if cut {
                out.skipped += 1;
            }
        }
        let same_process = Self::started_as_seen(&dir, &groups);
        let deadline = crate::deadline::Deadline::current();
        let mut link = [0u8; 64];
        let mut found: Vec<SocketInfo> = Vec::new();
        let mut namespace: Option<(u32, String)> = None;
        for group in &groups {
            if deadline.expired() {
                break;
            }
            let Some(first) = group.first() else { continue };
            let still_held = same_process
                || group.iter().any(|record| {
                    record_link(record)
                        .is_some_and(|name| names_socket(&dir, &name, record.inode, &mut link))
                });
            if !still_held {
                continue; // closed, or the fd or the pid was reused: not this one's
            }
            let Some(facts) = first.facts else { continue };
            let Some(entry) = facts_entry(first.inode, &facts) else {
                continue;
            };
            // One namespace's text per process (a process's sockets mostly share it).
            if namespace.as_ref().is_none_or(|(net, _)| *net != facts.net) {
                namespace = Some((facts.net, facts.net.to_string()));
            }
            let net = namespace
                .as_ref()
                .map(|(_, text)| text.as_str())
                .unwrap_or_default();
            let info = entry.to_socket_info(pid, i64::from(first.fd), net);
            if self.protocols.wants(&info) {
                found.push(info);
            }
        }
        if !found.is_empty() {
            out.read_holder(&dir, &found, self.environments);
        }
        out.sockets.append(&mut found);
    }

    /// Whether the process `dir` opened started when the leader the records name
    /// did (`stat` field 22 against the program's `start_boottime`, in clock
    /// ticks). False whenever it cannot be told: records that disagree or lack a
    /// start, an unreadable `stat`, a scanner in another time namespace.
    fn started_as_seen(dir: &ProcDir, groups: &[Vec<SocketFd>]) -> bool {
        let mut starts = groups.iter().flatten().map(|r| r.leader_start);
        let Some(start) = starts.next() else {
            return false;
        };
        if start == 0 || starts.any(|s| s != start) {
            return false;
        }
        let Ok(per_second) = u64::try_from(procfs::clock_ticks()) else {
            return false;
        };
        let tick_ns = 1_000_000_000 / per_second.max(1);
        // The leader's own: a zombie leader keeps its start, and a live thread's
        // (what `ProcDir::read` would fall back to) never matches.
        let Ok(stat) = dir.read_leader(c"stat", procfs::MAX_SMALL_BYTES) else {
            return false;
        };
        procfs::parse_stat(&String::from_utf8_lossy(&stat))
            .is_some_and(|stat| stat.start_ticks == start / tick_ns)
    }

    /// Walks the pids `next` hands out until none is left or the deadline passes.
    fn walk_shared(
        &self,
        pids: &[Pid],
        next: &AtomicUsize,
        deadline: &crate::deadline::Deadline,
        out: &mut Partial,
    ) {
        while !deadline.expired() {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&pid) = pids.get(i) else { break };
            self.scan_process(pid, out);
        }
    }

    /// Scans the given pids (every process when `None`): on the calling thread
    /// for the first [`WALK_ALONE`], then with [`SCAN_THREADS`] in all.
    pub fn run(&self, pids: &[Pid]) -> SocketScan {
        let mut total = Partial::default();
        // Workers inherit the caller's deadline and stop taking pids once it passes.
        let deadline = crate::deadline::Deadline::current();
        let next = AtomicUsize::new(0);
        let alone = std::time::Instant::now();
        while alone.elapsed() < WALK_ALONE && !deadline.expired() {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&pid) = pids.get(i) else { break };
            self.scan_process(pid, &mut total);
        }
        if next.load(Ordering::Relaxed) < pids.len() && !deadline.expired() {
            // The rest shared with workers, each taking the next pid.
            let parts: Vec<Partial> = std::thread::scope(|scope| {
                let workers: Vec<_> = (1..SCAN_THREADS)
                    .map(|_| {
                        scope.spawn(|| {
                            let _deadline = deadline.enter();
                            let mut part = Partial::default();
                            self.walk_shared(pids, &next, &deadline, &mut part);
                            part
                        })
                    })
                    .collect();
                let mut own = Partial::default();
                self.walk_shared(pids, &next, &deadline, &mut own);
                let mut parts: Vec<Partial> = workers
                    .into_iter()
                    .map(|w| {
                        w.join().unwrap_or_else(|_| Partial {
                            errors: vec!["socket scan worker panicked".into()],
                            ..Default::default()
                        })
                    })
                    .collect();
                parts.push(own);
                parts
            });
            for mut part in parts {
                total.sockets.append(&mut part.sockets);
                total.skipped += part.skipped;
                total.executables.extend(part.executables);
                total.environments.extend(part.environments);
                total.unsure.extend(part.unsure);
                for e in part.errors {
                    total.note(e);
                }
            }
        }
        total.unsure.truncate(MAX_ERRORS);
        let mut incomplete: Vec<String> = std::mem::take(&mut total.unsure);
        incomplete.extend(
            self.tables
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .values()
                .flat_map(|t| t.truncated.iter().cloned())
                .collect::<Vec<_>>(),
        );
        let mut cut: Vec<(u32, usize)> = self
            .fd_budgets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|(_, budget)| budget.cut > 0)
            .map(|(&uid, budget)| (uid, budget.cut))
            .collect();
        cut.sort_unstable();
        for (uid, processes) in cut {
            incomplete.push(format!(
                "uid {uid} used up its budget of {FD_BUDGET_PER_UID} fd entries per scan: \
                 {processes} of its processes not walked (whole)"
            ));
        }
        if deadline.expired() {
            incomplete.push("deadline passed: the socket scan stopped early".into());
        }
        total.sockets.sort_by_key(|s| (s.pid, s.fd));
        SocketScan {
            sockets: total.sockets,
            skipped_processes: total.skipped,
            errors: total.errors,
            executables: total.executables,
            environments: total.environments,
            incomplete,
            namespace_tcp: self.namespace_tcp(),
            socks_libraries: HashMap::new(),
        }
    }

    /// The whole TCP tables this scan of given pids read, for the SOCKS check of
    /// its clients (a second read would find the same sockets).
    fn namespace_tcp(&self) -> HashMap<String, Vec<SocketInfo>> {
        if self.full || !self.protocols.tcp {
            return HashMap::new();
        }
        let tables = self
            .tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tables
            .values()
            .filter(|t| t.truncated.is_empty())
            .map(|t| {
                let tcp = t
                    .entries
                    .values()
                    .filter(|e| e.protocol == IPPROTO_TCP && e.socket_type == SocketType::Stream)
                    .map(|e| e.to_socket_info(0, -1, &t.namespace))
                    .collect();
                (t.namespace.clone(), tcp)
            })
            .collect()
    }
}

/// Every TCP socket of `pid`'s network namespace from its tables (sock_diag for
/// the scanner's own namespace), owners not looked up; `None` when a table cannot
/// be read whole.
pub fn namespace_tcp_sockets(pid: Pid) -> Option<Vec<SocketInfo>> {
    let dir = ProcDir::open(pid).ok()?;
    let namespace = dir.net_namespace().ok()?;
    let tables = NetTables::read(
        &dir,
        namespace,
        &[TableKind::Tcp, TableKind::Tcp6],
        &[],
        false,
    )
    .ok()?;
    if !tables.truncated.is_empty() {
        return None;
    }
    Some(
        tables
            .entries
            .values()
            .map(|entry| entry.to_socket_info(0, -1, &tables.namespace))
            .collect(),
    )
}

/// Runs a socket query against the live host. Its socket fds come from the fd
/// iterator when `use_iterator` and the iterator is exact here (one pass over
/// every task, or over each given process's tasks), else from a `/proc` walk.
/// With `environments`, the environment of each TCP client's holder is read
/// as well (`SocketScan::environments`), for the SOCKS check.
pub fn scan(
    query: &SocketQuery,
    use_iterator: bool,
    environments: bool,
    library_pass: LibraryPassUse,
) -> SocketScan {
    if query.protocols.is_empty() {
        return SocketScan::default();
    }
    // A full scan run by root lists its namespace's datagram sockets before and
    // after, to notice one whose holder it missed (`unseen_sockets`).
    let before = (query.pids.is_none() && running_as_root())
        .then(|| census(&query.protocols, None))
        .flatten();
    let mut result = scan_holders(query, use_iterator, environments, library_pass);
    // Past the deadline the result says already that the scan stopped early.
    if let Some(before) = before.filter(|_| !crate::deadline::Deadline::current().expired()) {
        let after = |missed| {
            census(&query.protocols, Some(missed)).unwrap_or_else(|| Err("no table to list".into()))
        };
        unseen_sockets::check(before, after, &mut result);
    }
    if let Some(ledger) = super::send_ledger::running() {
        attribute_senders(ledger, query, &mut result);
    }
    result
}

/// Gives the sockets users sent on lately that the scan did not find held by
/// their senders to the processes that sent on them (`unseen_sockets`); a
/// scan of given pids, to those of them.
fn attribute_senders(
    ledger: &super::send_ledger::SendLedger,
    query: &SocketQuery,
    result: &mut SocketScan,
) {
    let read = ledger.read().map_err(|e| e.to_string());
    let row = |sending: &super::send_ledger::Sending, pid: Pid| {
        let facts = fd_iterator::SocketFacts {
            net: sending.net,
            family: sending.family,
            socket_type: sending.socket_type,
            protocol: sending.protocol,
            state: 0,
            local: sending.local,
            local_port: sending.local_port,
            remote: sending.remote,
            remote_port: sending.remote_port,
        };
        let mut row =
            facts_entry(sending.socket, &facts)?.to_socket_info(pid, -1, &sending.net.to_string());
        row.tcp_state = unseen_sockets::SENT_NOT_HELD.to_owned();
        Some(row)
    };
    let mut live = LiveHost {
        read: HashMap::new(),
        lineages: HashMap::new(),
        ledger,
    };
    let constrained = query.pids.as_deref();
    if let Some(note) = unseen_sockets::attribute_senders(
        read,
        &query.protocols,
        constrained,
        result,
        &mut live,
        row,
    ) {
        if result.errors.len() < MAX_ERRORS {
            result.errors.push(note);
        }
    }
}

/// The host's processes as the send ledger's attribution asks for them, each
/// read once per scan.
struct LiveHost<'a> {
    read: HashMap<Pid, Option<unseen_sockets::Runner>>,
    /// Lineages read from the kernel map, once per pid per scan (a walk per
    /// send would otherwise read the same forebears for each of thousands).
    lineages: HashMap<Pid, Option<super::send_ledger::Lineage>>,
    ledger: &'a super::send_ledger::SendLedger,
}

impl unseen_sockets::LiveProcesses for LiveHost<'_> {
    fn runner(&mut self, pid: Pid) -> Option<unseen_sockets::Runner> {
        *self.read.entry(pid).or_insert_with(|| {
            let dir = ProcDir::open(pid).ok()?;
            let exe = dir.executable_file_id().ok()?;
            let status = dir.read(c"status", 64 * 1024).ok()?;
            let (real, _) = procfs::parse_status_uids(&String::from_utf8_lossy(&status))?;
            let stat = dir.read(c"stat", 64 * 1024).ok()?;
            let stat = procfs::parse_stat(&String::from_utf8_lossy(&stat))?;
            Some(unseen_sockets::Runner {
                uid: u32::try_from(real).ok()?,
                exe,
                start: stat.start_ticks.saturating_mul(tick_ns()),
            })
        })
    }

    fn image(&mut self, pid: Pid) -> Option<(u64, u64)> {
        if let Some(known) = self.read.get(&pid) {
            return known.map(|r| r.exe);
        }
        ProcDir::open(pid).ok()?.executable_file_id().ok()
    }

    fn pids(&mut self) -> Option<Vec<Pid>> {
        procfs::list_pids().ok()
    }

    fn out_of_time(&self) -> bool {
        crate::deadline::Deadline::current().expired()
    }

    fn tick_ns(&self) -> u64 {
        tick_ns()
    }

    fn forkers(&mut self, pid: Pid) -> Option<super::send_ledger::Lineage> {
        let ledger = self.ledger;
        self.lineages
            .entry(pid)
            .or_insert_with(|| ledger.lineage(u32::try_from(pid).ok()?))
            .clone()
    }
}

/// ns per clock tick, as the kernel rounds a start time into `/proc/<pid>/stat`.
fn tick_ns() -> u64 {
    1_000_000_000 / u64::try_from(procfs::clock_ticks()).unwrap_or(100).max(1)
}

/// The census of the scanner's own network namespace for `protocols` (see
/// `unseen_sockets`), of the inodes `only` when given; `None` when the set has
/// nothing but TCP.
pub(super) fn census(
    protocols: &ProtocolSet,
    only: Option<HashSet<u64>>,
) -> Option<Result<unseen_sockets::Census, String>> {
    let kinds = unseen_sockets::kinds(protocols);
    if kinds.is_empty() {
        return None;
    }
    Some(read_census(protocols, &kinds, only))
}

/// Reads the census: each entry counted as it is parsed, so only the users'
/// sockets are held (a table a user fills with sockets would cost a census
/// as much as a scan's own table read holds, and twice over).
fn read_census(
    protocols: &ProtocolSet,
    kinds: &[TableKind],
    only: Option<HashSet<u64>>,
) -> Result<unseen_sockets::Census, String> {
    let own = Pid::try_from(std::process::id()).map_err(|e| e.to_string())?;
    let dir = ProcDir::open(own).map_err(|e| e.to_string())?;
    let namespace = dir.net_namespace().map_err(|e| e.to_string())?;
    let mut census = unseen_sockets::Census::new(namespace, only);
    // This thread's netlink socket sees this very namespace.
    let mut dumper = netlink::Dumper::open()
        .inspect_err(|e| log::debug!("no sock_diag socket, reading /proc: {e}"))
        .ok();
    for &kind in kinds {
        if let Some(dumper) = dumper.as_mut().filter(|_| netlink::dumpable(kind)) {
            match dumper.dump_each(kind, &mut |entry| census.add(entry, protocols)) {
                Ok(()) => continue,
                Err(e) => log::debug!("sock_diag failed, reading /proc {kind:?}: {e}"),
            }
        }
        let data = match dir.read(kind.file(), MAX_TABLE_BYTES + 1) {
            Ok(data) => data,
            // A table the kernel lacks (no IPv6, no UDP-Lite).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", kind.file().to_string_lossy())),
        };
        let (data, cut) = whole_lines_within(&data, MAX_TABLE_BYTES);
        if cut {
            return Err(format!(
                "{} is over {} MiB",
                kind.file().to_string_lossy(),
                MAX_TABLE_BYTES >> 20
            ));
        }
        each_table_entry(kind, data, |entry| census.add(entry, protocols));
    }
    Ok(census)
}

/// Whether this process runs as root: only then can a scan see every holder.
fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// [`scan`]'s sockets, found through the processes holding them.
fn scan_holders(
    query: &SocketQuery,
    use_iterator: bool,
    environments: bool,
    library_pass: LibraryPassUse,
) -> SocketScan {
    // Given pids in the caller's order (the watch rotates it so that no process
    // is always last under the deadline), each once.
    let given = query.pids.as_ref().map(|list| {
        let mut seen = std::collections::HashSet::new();
        let mut list = list.clone();
        list.retain(|pid| seen.insert(*pid));
        list
    });
    if use_iterator {
        if let Some(scan) = scan_with_iterator(
            &query.protocols,
            given.as_deref(),
            environments,
            &KERNEL_COUNTERS,
            library_pass,
        ) {
            return scan;
        }
    }
    let pids = match given {
        Some(list) => list,
        None => match procfs::list_pids() {
            Ok(list) => list,
            Err(e) => {
                return SocketScan {
                    errors: vec![format!("cannot list /proc: {e}")],
                    ..Default::default()
                }
            }
        },
    };
    Scan::new(&query.protocols, query.pids.is_none())
        .reading_environments(environments)
        .run(&pids)
}

/// A scan over the fd iterator's records: of every task, or of the given
/// processes' tasks (one pass each for up to [`MAX_PID_PASSES`] of them, else one
/// pass over every task kept to theirs). `None` when the iterator is not usable
/// here (for given pids: not made yet), or a pass failed or was cut at its byte
/// bound (walk `/proc`).
fn scan_with_iterator(
    protocols: &ProtocolSet,
    pids: Option<&[Pid]>,
    environments: bool,
    counters: &AllocationCounters,
    library_pass: LibraryPassUse,
) -> Option<SocketScan> {
    let iterator = match pids {
        // Loading the program (~2.5 ms: BTF, verifier) costs a one-shot `pid =`
        // lookup more than the walk: only a made one is used (the extension makes
        // it at start, `platform::prepare_for_serving`).
        Some(_) => fd_iterator::if_made()?,
        None => fd_iterator::shared()
            .inspect_err(|why| log::debug!("no fd iterator, walking /proc: {why}"))
            .ok()?,
    };
    let deadline = crate::deadline::Deadline::current();
    // The pass gets a share of the time: a user can make it long (thousands of
    // threads of an exited leader, each listing one huge fd table), and the
    // walk that follows a cut bounds each user's fds by its budget.
    let pass_deadline = share_of(deadline);
    let passes = match pids {
        Some(pids) if pids.len() <= MAX_PID_PASSES => pid_passes(iterator, pids, &deadline)?,
        _ => {
            let (pass, through_threads) =
                whole_pass(iterator, pass_deadline, deadline, pids, counters)?;
            match (pass.cut, pids) {
                (Some(why), _) if deadline.expired() => {
                    return Some(SocketScan {
                        incomplete: vec![format!("{why}: the socket scan stopped early")],
                        ..Default::default()
                    });
                }
                // One pass over every task is held up (a user's thousands of
                // threads listing one huge fd table): each process gets a pass
                // of its own instead, and only one whose own pass is held up
                // too is walked (under its user's budget).
                (Some(why), _) => {
                    log::warn!("{why}; one pass per process instead");
                    let all = match pids {
                        Some(pids) => pids.to_vec(),
                        None => procfs::list_pids().ok()?,
                    };
                    let mut passes = pid_passes(iterator, &all, &deadline)?;
                    if passes.late > 0 {
                        passes.unsure.push(format!(
                            "deadline passed before {} of {} processes had a pass of their \
                             own ({why}): their sockets are unknown",
                            passes.late,
                            all.len()
                        ));
                    }
                    passes
                }
                (None, pids) => {
                    let mut records = pass.records;
                    if let Some(pids) = pids {
                        let wanted: HashSet<Pid> = pids.iter().copied().collect();
                        records
                            .retain(|r| Pid::try_from(r.tgid).is_ok_and(|p| wanted.contains(&p)));
                    }
                    read_through_threads_again(iterator, records, &through_threads, &deadline)?
                }
            }
        }
    };
    // A full scan's SOCKS check asks each TCP client's mappings: one kernel
    // pass may answer for all of them (`pid =` scans walk their few).
    let leader_starts = (library_pass != LibraryPassUse::Never && environments && pids.is_none())
        .then(|| leader_starts(&passes.records));
    let scan = Scan::new(protocols, pids.is_none())
        .reading_environments(environments)
        .with_candidates(passes.records)
        .walking(passes.walk);
    let order = match pids {
        // The caller's order; one holding no socket costs a check that it exists.
        Some(pids) => pids.to_vec(),
        None => scan.candidate_pids().unwrap_or_default(),
    };
    let mut result = scan.run(&order);
    result.incomplete.extend(passes.unsure);
    let wanted = |holders: usize| match library_pass {
        LibraryPassUse::Never => false,
        LibraryPassUse::WhenItPays => pays_for_a_library_pass(holders),
        LibraryPassUse::Always => holders > 0,
    };
    if let Some(starts) = leader_starts.filter(|_| wanted(result.environments.len())) {
        result.socks_libraries = socks_libraries(iterator, &starts, &result, deadline);
    }
    Some(result)
}

/// Whether a full scan asks the kernel's library pass (`library_pass`) which
/// TCP clients map a SOCKS library, instead of the judge walking each one's
/// mappings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LibraryPassUse {
    /// The judge walks (the extension remembers each image's mappings).
    Never,
    /// When it costs less than the walks (`pays_for_a_library_pass`).
    WhenItPays,
    /// Whenever a TCP client holds a connection (tests of the pass).
    Always,
}

/// TCP clients below which walking each one's mappings costs less than the
/// library pass's fixed cost (its program's load, ~1 ms, and a link).
const MIN_HOLDERS_FOR_LIBRARY_PASS: usize = 64;

/// Whether one library pass over every process costs less than walking the
/// mappings of `holders` TCP clients: it walks every process's address space
/// (~20 µs each), a walk only a client's code mappings (~55 µs). So when the
/// clients are many, and at least half as many as the host's tasks (threads
/// counted: an overestimate of the processes walked).
fn pays_for_a_library_pass(holders: usize) -> bool {
    holders >= MIN_HOLDERS_FOR_LIBRARY_PASS
        && procfs::tasks_now().is_some_and(|tasks| (holders as u64).saturating_mul(2) >= tasks)
}

/// A quarter of what is left before `deadline` (at most `MAX_ITERATOR_TIME`):
/// a pass's share, so that what follows a cut pass still has time.
fn share_of(deadline: crate::deadline::Deadline) -> crate::deadline::Deadline {
    let limit = deadline
        .remaining()
        .map_or(MAX_ITERATOR_TIME, |left| (left / 4).min(MAX_ITERATOR_TIME));
    deadline.min(crate::deadline::Deadline::after(limit))
}

/// Each process's leader start as the records give it (0 when they disagree).
fn leader_starts(records: &[SocketFd]) -> HashMap<Pid, u64> {
    let mut starts: HashMap<Pid, u64> = HashMap::new();
    for record in records {
        let Ok(pid) = Pid::try_from(record.tgid) else {
            continue;
        };
        starts
            .entry(pid)
            .and_modify(|start| {
                if *start != record.leader_start {
                    *start = 0;
                }
            })
            .or_insert(record.leader_start);
    }
    starts
}

/// Whether each TCP connection holder of `scan` maps a SOCKS library, from one
/// pass of the library program: only for a holder the pass walked whole, under
/// the leader start its socket records gave (not a later process under the
/// same pid). The others are left out, for the judge to walk.
fn socks_libraries(
    iterator: &fd_iterator::FdIterator,
    starts: &HashMap<Pid, u64>,
    scan: &SocketScan,
    deadline: crate::deadline::Deadline,
) -> HashMap<Pid, bool> {
    // A user can make the pass long (processes of 65,530 mappings each): it
    // gets a share of the time, and the clients past a cut are walked.
    let pass = match super::library_pass::pass(iterator, share_of(deadline)) {
        Some(Ok(pass)) => pass,
        Some(Err(why)) => {
            log::debug!("library pass failed, walking each holder's mappings: {why}");
            return HashMap::new();
        }
        None => return HashMap::new(),
    };
    if let Some(why) = &pass.cut {
        log::debug!("{why}: the holders past it are walked");
    }
    scan.environments
        .keys()
        .filter_map(|&pid| {
            let start = starts.get(&pid).copied().filter(|&start| start != 0)?;
            let walk = pass.processes.get(&u32::try_from(pid).ok()?)?;
            if walk.leader_start != start {
                return None;
            }
            Some((pid, walk.socks_library?))
        })
        .collect()
}

/// Passes over every task made before one during which pid allocation did not
/// come round is taken as whole.
const WHOLE_PASSES: usize = 2;

/// One pass over every task, made again when pid allocation came round during
/// it: the pass goes in tid order, so a thread made meanwhile below its
/// position was not visited, and a process whose leader exited (its fds are
/// listed only through its threads) could then be missing with no record to
/// say so (a user whose threads keep replacing each other makes pids come round
/// every second where `pid_max` is 32768). When every pass came round, the pass
/// is said cut, and each process gets a pass of its own, which follows a
/// process's own thread list (see `scan_with_iterator`). The counters can be
/// moved without a task being made (a clone that fails after its pid was
/// given: red team), so the processes (of `among`, when given) whose leader
/// had exited when the pass ended, or with a thread whose fd table is its own,
/// are listed as well, for passes of their own (`.1`); a listing the scan's
/// deadline stops leaves the pass cut. Counters
/// that cannot be read leave the pass cut at once (a second pass could be told
/// no better).
fn whole_pass(
    iterator: &fd_iterator::FdIterator,
    pass_deadline: crate::deadline::Deadline,
    deadline: crate::deadline::Deadline,
    among: Option<&[Pid]>,
    counters: &AllocationCounters,
) -> Option<(fd_iterator::SocketFds, Vec<Pid>)> {
    for pass_number in 1..=WHOLE_PASSES {
        let before = (counters.before)();
        let mut pass = iterator
            .socket_fds(MAX_ITERATOR_BYTES, pass_deadline)
            .inspect_err(failed_pass)
            .ok()?;
        let after = (counters.after)();
        if pass.cut.is_some() {
            return Some((pass, Vec::new()));
        }
        let (Some(before), Some(after)) = (before, after) else {
            pass.cut = Some(
                "pid allocation unknown (/proc/loadavg or /proc/stat unreadable): the pass \
                 over every task cannot be told whole"
                    .into(),
            );
            return Some((pass, Vec::new()));
        };
        if !before.came_round_since(&after) {
            return match procfs::processes_read_through_threads(among, deadline) {
                Ok(Some(pids)) => Some((pass, pids)),
                Ok(None) => {
                    pass.cut = Some(
                        "deadline passed while listing the processes read through threads".into(),
                    );
                    Some((pass, Vec::new()))
                }
                Err(e) => {
                    pass.cut = Some(format!(
                        "/proc: {e}: processes read through threads unknown"
                    ));
                    Some((pass, Vec::new()))
                }
            };
        }
        if pass_number == WHOLE_PASSES || pass_deadline.expired() {
            pass.cut = Some(format!(
                "pid allocation came round during {pass_number} passes over every task"
            ));
            return Some((pass, Vec::new()));
        }
    }
    None
}

/// Where pid allocation stood before a whole pass and after it: the kernel's
/// counters, or in a test what it makes of counters it cannot read.
struct AllocationCounters {
    before: fn() -> Option<procfs::PidAllocation>,
    after: fn() -> Option<procfs::PidAllocation>,
}

const KERNEL_COUNTERS: AllocationCounters = AllocationCounters {
    before: procfs::PidAllocation::now,
    after: procfs::PidAllocation::now_after,
};

/// What per-process passes gave: records, the processes to walk instead, and
/// why the answer may lack sockets although nothing was cut.
#[derive(Default)]
struct PidPasses {
    records: Vec<SocketFd>,
    walk: Vec<Pid>,
    unsure: Vec<String>,
    /// Processes the deadline passed before (in `walk`, which stops at it too).
    late: usize,
}

/// The records of one pass over every task, with each process whose fds it read
/// through a thread other than the leader (an exited leader's table is listed
/// by each of its threads; a thread may have a table of its own) given a pass
/// of its own: such a thread may exit in the middle of its listing, and the
/// kernel then ends that listing without a word, so sockets past that point
/// would be missing from a pass that says nothing. So is each process in
/// `through_threads` (`procfs::processes_read_through_threads`), which the
/// pass may have missed whole. The process's own
/// pass compares its threads before and after (`pid_passes`).
fn read_through_threads_again(
    iterator: &fd_iterator::FdIterator,
    mut records: Vec<SocketFd>,
    through_threads: &[Pid],
    deadline: &crate::deadline::Deadline,
) -> Option<PidPasses> {
    let again: Vec<Pid> = records
        .iter()
        .filter(|r| r.tid != r.tgid)
        .filter_map(|r| Pid::try_from(r.tgid).ok())
        .chain(through_threads.iter().copied())
        .collect::<std::collections::BTreeSet<Pid>>()
        .into_iter()
        .collect();
    if again.is_empty() {
        return Some(PidPasses {
            records,
            ..PidPasses::default()
        });
    }
    records.retain(|r| Pid::try_from(r.tgid).is_ok_and(|p| again.binary_search(&p).is_err()));
    let mut passes = pid_passes(iterator, &again, deadline)?;
    passes.records.append(&mut records);
    if passes.late > 0 {
        // A user can make thousands of such processes: the answer names them.
        passes.unsure.push(format!(
            "deadline passed before {} of {} processes whose leader exited or that were \
             read through a thread had a pass of their own: their sockets are unknown",
            passes.late,
            again.len()
        ));
    }
    Some(passes)
}

/// One pass per process (a link each): their records, and the processes to walk
/// instead: those whose own pass was cut (at its share of the time or at the
/// byte bound), could not be told whole (its threads changed meanwhile; the
/// answer says so, as the walk can miss the same sockets), or not made before
/// the deadline. `None` when a pass fails.
fn pid_passes(
    iterator: &fd_iterator::FdIterator,
    pids: &[Pid],
    deadline: &crate::deadline::Deadline,
) -> Option<PidPasses> {
    let mut records = Vec::new();
    let mut walk = Vec::new();
    let mut unsure = Vec::new();
    let mut late = 0;
    let mut bytes = 0;
    for &pid in pids {
        let Ok(tgid) = u32::try_from(pid) else {
            continue; // no such process
        };
        if deadline.expired() {
            walk.push(pid); // the walk notes the deadline
            late += 1;
            continue;
        }
        let share = deadline
            .remaining()
            .map_or(MAX_PID_PASS_TIME, |left| (left / 8).min(MAX_PID_PASS_TIME));
        let pass = iterator
            .socket_fds_of(
                tgid,
                MAX_ITERATOR_BYTES.saturating_sub(bytes),
                deadline.min(crate::deadline::Deadline::after(share)),
            )
            .inspect_err(failed_pass)
            .ok()?;
        if let Some(why) = pass.cut {
            log::warn!("process {pid}: {why}; walking it");
            walk.push(pid);
            continue;
        }
        if let Some(why) = pass.unsure {
            unsure.push(why);
            walk.push(pid);
            continue;
        }
        bytes += pass.records.len() * fd_iterator::RECORD_BYTES;
        records.extend(pass.records);
    }
    Some(PidPasses {
        records,
        walk,
        unsure,
        late,
    })
}

fn failed_pass(e: &fd_iterator::FdIteratorError) {
    log::warn!("fd iterator failed, walking /proc: {e}");
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP_HEADER: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops";

    #[test]
    fn ipv4_udp_lines_are_little_endian_hex() {
        let line = "  123: 0100007F:0035 0800A8C0:1F90 01 00000000:00000000 00:00000000 00000000  1001        0 12345 2 0000000000000000 0";
        let e = parse_line(TableKind::Udp, line).unwrap();
        assert_eq!(e.uid, 1001);
        assert_eq!(e.local, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(e.local_port, 53);
        assert_eq!(e.remote, "192.168.0.8".parse::<IpAddr>().unwrap());
        assert_eq!(e.remote_port, 8080);
        assert_eq!((e.inode, e.protocol, e.family), (12345, 17, 2));
        assert_eq!((e.socket_type, e.tcp_state), (SocketType::Dgram, ""));
        assert_eq!(parse_line(TableKind::Udp, UDP_HEADER), None);
    }

    #[test]
    fn ipv6_words_are_each_in_host_order() {
        // ::1 port 5353; fe80::1:2 prints as words 000080FE 00000000 02000100?
        let line = "  5: 00000000000000000000000001000000:14E9 0000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 777 2 0000000000000000 0";
        // the remote has 31 hex digits: malformed, so the line is rejected
        assert_eq!(parse_line(TableKind::Udp6, line), None);
        let line = "  5: 00000000000000000000000001000000:14E9 000080FE00000000020000000A000000:0035 07 00000000:00000000 00:00000000 00000000  1000        0 777 2 0000000000000000 0";
        let e = parse_line(TableKind::Udp6, line).unwrap();
        assert_eq!(e.local.to_string(), "::1");
        assert_eq!(e.local_port, 5353);
        assert_eq!(e.remote.to_string(), "fe80::2:0:a");
        assert_eq!(e.remote_port, 53);
        assert_eq!(e.family, 10);
        let word_check = parse_address("B80D0120000000000000000001000000", true).unwrap();
        assert_eq!(word_check.to_string(), "2001:db8::1");
    }

    #[test]
    fn v4_mapped_addresses_are_unmapped() {
        // ::ffff:127.0.0.1 -> words 00000000 00000000 FFFF0000 0100007F
        let line = "  9: 0000000000000000FFFF00000100007F:1F40 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0";
        let e = parse_line(TableKind::Udp6, line).unwrap();
        assert_eq!(e.local.to_string(), "127.0.0.1");
        assert_eq!(e.remote.to_string(), "::");
        assert_eq!(e.family, 10, "the socket is still AF_INET6");
    }

    #[test]
    fn raw_sockets_carry_the_protocol_in_the_port_field() {
        let icmp = "   1: 00000000:0001 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 9001 2 0000000000000000 0";
        let e = parse_line(TableKind::Raw, icmp).unwrap();
        assert_eq!(
            (e.protocol, e.local_port, e.socket_type),
            (1, 0, SocketType::Raw)
        );
        let any = "   2: 00000000:00FF 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 9002 2 0000000000000000 0";
        assert_eq!(parse_line(TableKind::Raw, any).unwrap().protocol, 255);
        let v6 = "  58: 00000000000000000000000000000000:003A 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 9003 2 0000000000000000 0";
        let e = parse_line(TableKind::Raw6, v6).unwrap();
        assert_eq!((e.protocol, e.family, e.local_port), (58, 10, 0));
    }

    #[test]
    fn tcp_states_are_named() {
        let listen = "   0: 00000000:0438 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0";
        let e = parse_line(TableKind::Tcp, listen).unwrap();
        assert_eq!((e.tcp_state, e.local_port, e.protocol), ("LISTEN", 1080, 6));
        assert_eq!(e.socket_type, SocketType::Stream);
        assert_eq!(tcp_state_name(1), "ESTABLISHED");
        assert_eq!(tcp_state_name(6), "TIME_WAIT");
        assert_eq!(tcp_state_name(0x0B), "CLOSING");
        assert_eq!(tcp_state_name(0x63), "UNKNOWN");
    }

    #[test]
    fn ping_sockets_listed_in_both_tables_are_deduplicated() {
        let v4 = "  10: 0100007F:0000 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 555 2 0000000000000000 0";
        let v6_garbage = "  10: 0000000000000000DEADBEEF00000000:0000 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 555 2 0000000000000000 0";
        let mut net = NetTables::new("4026531840".into());
        net.add_table(TableKind::Icmp, &format!("{UDP_HEADER}\n{v4}\n"));
        net.add_table(TableKind::Icmp6, &format!("{UDP_HEADER}\n{v6_garbage}\n"));
        assert_eq!(net.len(), 1);
        let chosen = net.resolve(555, || Some(SockProtoName::Ping)).unwrap();
        assert_eq!((chosen.family, chosen.protocol), (2, 1));
        assert_eq!(chosen.local.to_string(), "127.0.0.1");
        let chosen = net.resolve(555, || Some(SockProtoName::Ping6)).unwrap();
        assert_eq!((chosen.family, chosen.protocol), (10, 58));
        // No xattr: the first (IPv4) listing wins.
        assert_eq!(net.resolve(555, || None).unwrap().family, 2);
        // A socket listed once never asks for its name.
        let mut asked = false;
        net.add_table(
            TableKind::Udp,
            &format!("{UDP_HEADER}\n  1: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 556 2 0000000000000000 0\n"),
        );
        assert_eq!(
            net.resolve(556, || {
                asked = true;
                None
            })
            .unwrap()
            .protocol,
            17
        );
        assert!(!asked);
        assert_eq!(net.resolve(1, || None), None);
    }

    #[test]
    fn oversized_tables_keep_whole_lines_and_say_they_were_cut() {
        assert_eq!(whole_lines_within(b"a\nb\n", 4), (&b"a\nb\n"[..], false));
        assert_eq!(whole_lines_within(b"a\nbc\nd", 5), (&b"a\nbc\n"[..], true));
        assert_eq!(whole_lines_within(b"abcdef", 3), (&b""[..], true));
    }

    #[test]
    fn unix_table_inodes() {
        let text = "Num       RefCount Protocol Flags    Type St Inode Path\n\
0000000000000000: 00000002 00000000 00010000 0001 01 23456 /run/systemd/notify\n\
0000000000000000: 00000003 00000000 00000000 0001 03 23457\n";
        let mut net = NetTables::new("1".into());
        net.add_unix_table(text);
        assert!(net.is_other_kind(23456) && net.is_other_kind(23457));
        assert!(!net.is_other_kind(1));
        assert_eq!(
            parse_unix_inode("Num RefCount Protocol Flags Type St Inode Path"),
            None
        );
    }

    #[test]
    fn unwanted_tables_give_inodes_only() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        // SAFETY: st is plain data filled by fstat on an open fd.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: the fd is open and st is valid for writes.
        assert_eq!(unsafe { libc::fstat(listener.as_raw_fd(), &mut st) }, 0);
        let dir = ProcDir::open(std::process::id() as Pid).expect("own /proc dir");
        let namespace = dir.net_namespace().expect("netns");
        let udp = [TableKind::Udp, TableKind::Udp6];
        let tcp = [TableKind::Tcp, TableKind::Tcp6];
        let tables = NetTables::read(&dir, namespace, &udp, &tcp, false).expect("tables");
        assert!(tables.is_other_kind(st.st_ino), "the listener is known TCP");
        assert_eq!(tables.resolve(st.st_ino, || None), None, "and not an entry");
        let tables = NetTables::read(&dir, namespace, &udp, &[], false).expect("tables");
        assert!(!tables.is_other_kind(st.st_ino));
    }

    fn inode_of(fd: &impl std::os::fd::AsRawFd) -> u64 {
        // SAFETY: st is plain data filled by fstat on an open fd.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: the fd is open and st is valid for writes.
        assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }, 0);
        st.st_ino
    }

    /// Iterator records are candidates: one whose fd no longer holds its socket
    /// (the pid or the fd was reused after the iterator ran) is not attributed.
    /// The records are made here (a real pid-reuse race is impractical to force);
    /// the process, its fds and sockets are real.
    #[test]
    fn iterator_records_are_rechecked_before_attribution() {
        use std::os::fd::AsRawFd;
        let held = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        // Another socket: what an attacker's record would claim the fd holds.
        let other = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let pid = std::process::id();
        let fd = held.as_raw_fd() as u32;
        let record = |tid: u32, fd: u32, inode: u64| SocketFd {
            tgid: pid,
            tid,
            fd,
            inode,
            leader_start: 0,
            uid: 0,
            facts: None,
        };
        let protocols = ProtocolSet::ALL;
        let run = |records: Vec<SocketFd>| {
            let scan = Scan::new(&protocols, true).with_candidates(records);
            let pids = scan.candidate_pids().unwrap_or_default();
            scan.run(&pids).sockets
        };
        let found = run(vec![record(pid, fd, inode_of(&held))]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].fd, found[0].socket),
            (i64::from(fd), inode_of(&held))
        );
        // fd holds another socket now: nothing.
        assert!(run(vec![record(pid, fd, inode_of(&other))]).is_empty());
        // A thread that does not exist, a closed fd: nothing.
        assert!(run(vec![record(u32::MAX - 1, fd, inode_of(&held))]).is_empty());
        drop(other);
        assert!(run(vec![record(pid, 999_999, inode_of(&held))]).is_empty());
        // The same socket listed by the leader and a thread's copied table: one row.
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        assert_ne!(tid, pid, "tests run on threads other than the main one");
        let by_thread = run(vec![record(tid, fd, inode_of(&held))]);
        assert_eq!(
            by_thread.len(),
            1,
            "read at task/<tid>/fd/<n>: {by_thread:?}"
        );
        let twice = run(vec![
            record(pid, fd, inode_of(&held)),
            record(tid, fd, inode_of(&held)),
        ]);
        assert_eq!(twice.len(), 1, "{twice:?}");
        // Copies listed by threads (an exited leader's table): at most
        // COPIES_TRIED are read, the lowest tids first. Tasks 1-3 are no threads of
        // ours: with the leader's own listing the row stands, without it the
        // real thread's fourth copy is not read.
        let copies = |leader: bool| {
            let mut records: Vec<SocketFd> =
                (1..=3).map(|t| record(t, fd, inode_of(&held))).collect();
            records.push(record(tid, fd, inode_of(&held)));
            if leader {
                records.push(record(pid, fd, inode_of(&held)));
            }
            run(records)
        };
        assert_eq!(copies(true).len(), 1);
        assert!(copies(false).is_empty());
        // A process the records do not name is never opened or reported.
        assert!(run(Vec::new()).is_empty());
    }

    /// Records with the kernel's facts need no table: their rows are the facts.
    /// They are attributed only to the process the iterator saw: by its leader's
    /// start time, else (no start, another start) by re-reading each link.
    #[test]
    fn records_with_facts_are_attributed_to_the_process_the_iterator_saw() {
        use std::os::fd::AsRawFd;
        let pid = std::process::id();
        let sockets: Vec<std::net::UdpSocket> = (0..5)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("udp"))
            .collect();
        let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
        let ticks = procfs::parse_stat(&stat).expect("parsed").start_ticks;
        let tick_ns = 1_000_000_000 / procfs::clock_ticks() as u64;
        let started = ticks * tick_ns + tick_ns / 2;
        let facts = |port: u16| fd_iterator::SocketFacts {
            net: 4026531840,
            family: 2,
            socket_type: 2,
            protocol: 17,
            state: 7,
            local: IpAddr::V4(Ipv4Addr::LOCALHOST),
            local_port: port,
            remote: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            remote_port: 0,
        };
        let record = |fd: u32, inode: u64, leader_start: u64| SocketFd {
            tgid: pid,
            tid: pid,
            fd,
            inode,
            leader_start,
            uid: 0,
            facts: Some(facts(4242)),
        };
        let protocols = ProtocolSet::ALL;
        let run = |records: Vec<SocketFd>| {
            let scan = Scan::new(&protocols, true).with_candidates(records);
            let pids = scan.candidate_pids().unwrap_or_default();
            scan.run(&pids).sockets
        };
        let held: Vec<(u32, u64)> = sockets
            .iter()
            .map(|s| (s.as_raw_fd() as u32, inode_of(s)))
            .collect();
        // No start read: the link is read again. The row is the facts.
        let (fd, inode) = held[0];
        let found = run(vec![record(fd, inode, 0)]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (
                found[0].fd,
                found[0].socket,
                found[0].local_port,
                found[0].net_namespace.as_str()
            ),
            (i64::from(fd), inode, 4242, "4026531840")
        );
        // The fd now holds another socket (the pid or the fd was reused): nothing.
        assert!(run(vec![record(fd, held[1].1, 0)]).is_empty());
        // The leader's start: `stat` decides and no link is read, so a record
        // whose fd is closed by now still stands (this very process held it).
        let five = |start: u64| {
            let mut records: Vec<SocketFd> = held
                .iter()
                .map(|&(fd, inode)| record(fd, inode, start))
                .collect();
            records[4].fd = 999_999;
            run(records)
        };
        assert_eq!(five(started).len(), 5);
        assert_eq!(run(vec![record(fd, held[1].1, started)]).len(), 1);
        // Another start (a process that took the pid): each link decides, and the
        // closed one is not attributed.
        assert_eq!(five(started + 10 * tick_ns).len(), 4);
        assert!(run(vec![record(fd, held[1].1, started + 10 * tick_ns)]).is_empty());
        assert_eq!(five(0).len(), 4, "no start read: links decide");
        // A socket type no table lists is no row.
        let mut seqpacket = record(fd, inode, 0);
        seqpacket.facts = Some(fd_iterator::SocketFacts {
            socket_type: 5,
            ..facts(1)
        });
        assert!(run(vec![seqpacket]).is_empty());
    }

    #[test]
    fn facts_entries_read_like_table_lines() {
        let facts = |socket_type: u16, protocol: u16, state: u8| fd_iterator::SocketFacts {
            net: 1,
            family: 10,
            socket_type,
            protocol,
            state,
            local: "::".parse().expect("v6"),
            local_port: 58,
            remote: "192.0.2.9".parse().expect("v4"),
            remote_port: 53,
        };
        let tcp = facts_entry(7, &facts(1, 6, 0x0A)).expect("tcp");
        assert_eq!(
            (tcp.tcp_state, tcp.local_port, tcp.remote_port),
            ("LISTEN", 58, 53)
        );
        assert_eq!(tcp.family, FAMILY_INET6);
        let raw = facts_entry(7, &facts(3, 1, 7)).expect("raw");
        assert_eq!(
            (
                raw.socket_type,
                raw.protocol,
                raw.local_port,
                raw.remote_port,
                raw.tcp_state
            ),
            (SocketType::Raw, 1, 0, 0, "")
        );
        let udp = facts_entry(7, &facts(2, 17, 1)).expect("udp");
        assert_eq!((udp.socket_type, udp.tcp_state), (SocketType::Dgram, ""));
        // TCP in CLOSE is in no table (the walk never lists it); a closed UDP
        // socket (state 7 too) is a row, as the walk's xattr names it.
        assert!(facts_entry(7, &facts(1, 6, 7)).is_none());
        assert!(facts_entry(7, &facts(1, 262, 7)).is_none());
        assert!(facts_entry(7, &facts(2, 17, 7)).is_some());
        // An MPTCP stream is TCP, with its state; SCTP streams are not TCP; no
        // family but IPv4/IPv6.
        let mptcp = facts_entry(7, &facts(1, 262, 1)).expect("stream");
        assert_eq!(
            (mptcp.protocol, mptcp.socket_type, mptcp.tcp_state),
            (IPPROTO_TCP, SocketType::Stream, "ESTABLISHED")
        );
        assert_eq!((mptcp.local_port, mptcp.remote_port), (58, 53));
        assert!(ProtocolSet::ALL.wants(&mptcp.to_socket_info(1, 3, "1")));
        let sctp = facts_entry(7, &facts(1, 132, 1)).expect("stream");
        assert_eq!(sctp.tcp_state, "");
        assert!(!ProtocolSet::ALL.wants(&sctp.to_socket_info(1, 3, "1")));
        assert!(facts_entry(
            7,
            &fd_iterator::SocketFacts {
                family: 1,
                ..facts(1, 0, 1)
            }
        )
        .is_none());
    }

    #[test]
    fn sockprotoname_fallback_entries() {
        assert_eq!(parse_sockprotoname(b"PING\0"), SockProtoName::Ping);
        assert_eq!(parse_sockprotoname(b"PINGv6\0"), SockProtoName::Ping6);
        assert_eq!(parse_sockprotoname(b"RAWv6\0"), SockProtoName::Raw6);
        assert_eq!(parse_sockprotoname(b"UNIX\0"), SockProtoName::Other);
        let e = SockProtoName::Ping.unlisted_entry(7).unwrap();
        let info = e.to_socket_info(10, 4, "1");
        assert_eq!(
            (
                info.protocol,
                info.family,
                info.socket_type,
                info.local_address.as_str(),
                info.local_port
            ),
            (1, 2, SocketType::Dgram, "0.0.0.0", 0)
        );
        let e = SockProtoName::Ping6.unlisted_entry(8).unwrap();
        assert_eq!((e.protocol, e.local.to_string()), (58, "::".to_string()));
        assert_eq!(SockProtoName::Other.unlisted_entry(9), None);
        for (name, family, protocol) in [
            (&b"UDP\0"[..], 2, 17),
            (b"UDPv6\0", 10, 17),
            (b"UDP-Lite\0", 2, 136),
            (b"UDPLITEv6\0", 10, 136),
        ] {
            let e = parse_sockprotoname(name).unlisted_entry(9).unwrap();
            let info = e.to_socket_info(10, 4, "1");
            assert_eq!(
                (
                    info.family,
                    info.protocol,
                    info.socket_type,
                    info.remote_port
                ),
                (family, protocol, SocketType::Dgram, 0),
                "{name:?}"
            );
        }
        assert_eq!(parse_sockprotoname(b"TCP\0"), SockProtoName::Other);
    }

    #[test]
    fn only_needed_tables_are_read() {
        let icmp = tables_for(&ProtocolSet {
            icmp: true,
            ..ProtocolSet::NONE
        });
        assert_eq!(
            icmp,
            [
                TableKind::Icmp,
                TableKind::Icmp6,
                TableKind::Raw,
                TableKind::Raw6
            ]
        );
        let udp = tables_for(&ProtocolSet {
            udp: true,
            ..ProtocolSet::NONE
        });
        assert_eq!(
            udp,
            [
                TableKind::Udp,
                TableKind::Udp6,
                TableKind::Raw,
                TableKind::Raw6
            ]
        );
        let raw = tables_for(&ProtocolSet {
            raw: true,
            ..ProtocolSet::NONE
        });
        assert_eq!(raw, [TableKind::Raw, TableKind::Raw6]);
        assert_eq!(tables_for(&ProtocolSet::ALL).len(), 10);
        assert!(tables_for(&ProtocolSet::NONE).is_empty());
    }

    /// Pid allocation counters that cannot be read (as a `/proc/stat` past
    /// its cap would leave them) never let a pass over every task be taken as
    /// whole: the pass comes back cut, saying why, without a second one, and
    /// the full scan then gives each process a pass of its own, which still
    /// finds our socket.
    #[test]
    fn unreadable_pid_allocation_counters_never_make_a_pass_whole() {
        let iterator = match fd_iterator::shared() {
            Ok(iterator) => iterator,
            Err(why) => {
                eprintln!("skipped: no fd iterator here: {why}");
                return;
            }
        };
        let unreadable = AllocationCounters {
            before: || None,
            after: || None,
        };
        let unreadable_after = AllocationCounters {
            before: procfs::PidAllocation::now,
            after: || None,
        };
        let deadline = crate::deadline::Deadline::after(std::time::Duration::from_secs(60));
        for counters in [&unreadable, &unreadable_after] {
            let whole_before = fd_iterator::passes_on_this_thread();
            let (pass, through_threads) =
                whole_pass(iterator, deadline, deadline, None, counters).expect("the pass runs");
            assert!(
                pass.cut
                    .as_deref()
                    .is_some_and(|why| why.contains("pid allocation unknown")),
                "{:?}",
                pass.cut
            );
            assert!(through_threads.is_empty());
            assert_eq!(fd_iterator::passes_on_this_thread(), whole_before + 1);
        }
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = i32::from(socket.local_addr().expect("bound").port());
        let own = Pid::try_from(std::process::id()).expect("pid");
        let pid_passes = fd_iterator::pid_passes_on_this_thread();
        let scan = {
            let _deadline = deadline.enter();
            scan_with_iterator(
                &ProtocolSet::ALL,
                None,
                false,
                &unreadable,
                LibraryPassUse::Never,
            )
            .expect("an iterator scan")
        };
        let own_passes = fd_iterator::pid_passes_on_this_thread() - pid_passes;
        assert!(own_passes > 1, "{own_passes} passes of their own");
        assert!(
            scan.sockets
                .iter()
                .any(|s| s.pid == own && s.protocol == 17 && s.local_port == port),
            "our socket"
        );
    }
}
