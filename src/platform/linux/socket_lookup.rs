//! The inet sockets of one given process, paid per socket it holds rather than per
//! socket of its network namespace (a `pid =` lookup). Each socket fd is taken
//! into this process with `pidfd_getfd` (checked to be the very inode its
//! `fd/<n>` link named) to learn its family, type, protocol and local port; then
//! sock_diag is asked only for sockets on those local ports (an
//! `INET_DIAG_REQ_BYTECODE` filter: the kernel fills no message for the others),
//! and the ping/raw tables are read only when the process holds such a socket.
//! The rows are the very table entries the whole-namespace path would give.
//!
//! An unbound (port 0) UDP, UDP-Lite or ping socket is in no table: it is named
//! by its kind, as the full path names it from its xattr. Any other doubt gives
//! `None` and the caller takes the full path for the process: a bound socket the
//! filtered dump or table does not list (another namespace's, raced), an unbound
//! TCP socket, a thread with an fd table of its own, a namespace
//! sock_diag cannot see from here, no `pidfd_getfd` (pre-5.6, ptrace refused), or
//! more fds or sockets than a lookup is for.

use super::netlink;
use super::procfs::{self, ProcDir};
use super::socket_tables::{TableEntry, TableKind};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// fds of one process walked at most: past that the whole-namespace path (and its
/// per-user fd budget) is the right one.
const MAX_FDS: usize = 4096;
/// Socket fds of one process looked up one by one at most.
const MAX_SOCKETS: usize = netlink::MAX_FILTER_PORTS;

/// One socket fd of the process and what identifies it in the tables.
#[derive(Clone, Copy, Debug)]
struct HeldSocket {
    fd: i64,
    inode: u64,
    kind: TableKind,
    local_port: u16,
    /// A TCP connection to loopback or to its own local address: the SOCKS check
    /// then reads the namespace's whole TCP table (`TextTables::whole_tcp`).
    talks_to_this_host: bool,
}

/// The sockets of one table, by inode.
pub type EntriesByInode = HashMap<u64, TableEntry>;

/// How the caller reads what sock_diag does not give: a whole `/proc` table of
/// the process's namespace by inode (`None`: unreadable or cut), and the entry
/// the full path names an unbound socket of a kind by.
pub struct TextTables<'a> {
    pub read: &'a dyn Fn(&ProcDir, TableKind) -> Option<EntriesByInode>,
    pub unbound: &'a dyn Fn(TableKind, u64) -> Option<TableEntry>,
    /// Every TCP socket of the namespace (`dir`'s, the `u64`), kept by the caller
    /// for the SOCKS check: read instead of a filtered dump when that check will
    /// want it anyway (so the kernel walks the TCP hash once, not twice).
    pub whole_tcp: &'a dyn Fn(&ProcDir, u64) -> Option<EntriesByInode>,
}

/// The process's sockets of the `kinds` tables as `(fd, entry)`, and its network
/// namespace; `None`: look it up through the whole namespace's tables.
pub fn sockets_of(
    dir: &ProcDir,
    kinds: &[TableKind],
    text: &TextTables,
) -> Option<(u64, Vec<(i64, TableEntry)>)> {
    let namespace = dir.net_namespace().ok()?;
    // sock_diag answers for the calling thread's namespace only.
    if netlink::own_net_namespace().ok()? != namespace {
        return None;
    }
    let (threads, too_many) = dir.threads_with_own_fd_table().ok()?;
    if too_many || !threads.is_empty() {
        return None;
    }
    let listed = socket_fds(dir)?;
    if listed.is_empty() {
        LOOKUPS.with(|n| n.set(n.get() + 1));
        return Some((namespace, Vec::new()));
    }
    let held = identify(dir.pid(), &listed)?;
    let mut rows = Vec::with_capacity(held.len());
    let mut by_kind: HashMap<TableKind, Vec<HeldSocket>> = HashMap::new();
    for socket in held.into_iter().filter(|s| kinds.contains(&s.kind)) {
        by_kind.entry(socket.kind).or_default().push(socket);
    }
    let is_tcp = |kind: TableKind| matches!(kind, TableKind::Tcp | TableKind::Tcp6);
    let needs_whole_tcp = by_kind
        .iter()
        .any(|(kind, sockets)| is_tcp(*kind) && sockets.iter().any(|s| s.talks_to_this_host));
    let whole_tcp = if needs_whole_tcp {
        Some((text.whole_tcp)(dir, namespace)?)
    } else {
        None
    };
    let mut dumper = None;
    for (kind, sockets) in by_kind {
        // Unbound (port 0) UDP, UDP-Lite and ping sockets are in no table: named
        // as the full path names them (by kind, addresses unspecified).
        let (unbound, sockets): (Vec<HeldSocket>, Vec<HeldSocket>) =
            sockets.into_iter().partition(|s| {
                s.local_port == 0 && s.kind != TableKind::Raw && s.kind != TableKind::Raw6
            });
        for socket in unbound {
            rows.push((socket.fd, (text.unbound)(socket.kind, socket.inode)?));
        }
        if sockets.is_empty() {
            continue;
        }
        let read: EntriesByInode;
        let entries = if let Some(whole) = whole_tcp.as_ref().filter(|_| is_tcp(kind)) {
            whole
        } else if netlink::dumpable(kind) {
            let mut ports: Vec<u16> = sockets.iter().map(|s| s.local_port).collect();
            ports.sort_unstable();
            ports.dedup();
            if dumper.is_none() {
                dumper = Some(netlink::Dumper::open().ok()?);
            }
            let entries = dumper.as_mut()?.dump_local_ports(kind, &ports).ok()?;
            read = entries.into_iter().map(|e| (e.inode, e)).collect();
            &read
        } else {
            read = (text.read)(dir, kind)?;
            &read
        };
        for socket in sockets {
            rows.push((socket.fd, *entries.get(&socket.inode)?));
        }
    }
    // A process that exited or moved mid-lookup: let the full path decide.
    if dir.net_namespace().ok()? != namespace {
        return None;
    }
    rows.sort_unstable_by_key(|(fd, _)| *fd);
    LOOKUPS.with(|n| n.set(n.get() + 1));
    Some((namespace, rows))
}

/// `(fd, inode)` of every socket fd of the process, `None` past [`MAX_FDS`] fds
/// or [`MAX_SOCKETS`] sockets, or when the fd directory cannot be read.
fn socket_fds(dir: &ProcDir) -> Option<Vec<(i64, u64)>> {
    let mut fds = 0usize;
    let mut sockets = Vec::new();
    let mut over = false;
    let mut link = [0u8; 64];
    dir.for_each_fd(|fd_dir, fd, name| {
        fds += 1;
        if over || fds > MAX_FDS {
            over = true;
            return;
        }
        let Ok(n) = procfs::read_link_into(fd_dir, name, &mut link) else {
            return; // closed since listed
        };
        if let Some(inode) =
            procfs::parse_bracketed_inode(link.get(..n).unwrap_or_default(), b"socket:[")
        {
            sockets.push((fd, inode));
            over |= sockets.len() > MAX_SOCKETS;
        }
    })
    .ok()?;
    (!over).then_some(sockets)
}

/// Takes each socket into this process to read what the tables key it by.
/// Sockets of other families (UNIX, netlink…) are left out: no table lists them.
fn identify(pid: crate::model::Pid, listed: &[(i64, u64)]) -> Option<Vec<HeldSocket>> {
    // SAFETY: plain pidfd_open(2); the result is checked before use.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let pidfd = owned(rc)?;
    let mut held = Vec::with_capacity(listed.len());
    for &(fd, inode) in listed {
        let target = i32::try_from(fd).ok()?;
        // SAFETY: pidfd_getfd(2) on our pidfd; the new fd is owned below.
        let rc = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
        let socket = owned(rc)?;
        // SAFETY: an all-zero stat is valid for fstat to overwrite.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: the fd is open and st is a valid out-pointer.
        if unsafe { libc::fstat(socket.as_raw_fd(), &mut st) } != 0
            || st.st_mode & libc::S_IFMT != libc::S_IFSOCK
            || st.st_ino != inode
        {
            return None; // the fd now holds something else (pid or fd reuse)
        }
        let domain = int_option(&socket, libc::SO_DOMAIN)?;
        if domain != libc::AF_INET && domain != libc::AF_INET6 {
            continue;
        }
        let ipv6 = domain == libc::AF_INET6;
        let socket_type = int_option(&socket, libc::SO_TYPE)?;
        let protocol = int_option(&socket, libc::SO_PROTOCOL)?;
        let kind = match (socket_type, protocol, ipv6) {
            (libc::SOCK_STREAM, libc::IPPROTO_TCP, false) => TableKind::Tcp,
            (libc::SOCK_STREAM, libc::IPPROTO_TCP, true) => TableKind::Tcp6,
            (libc::SOCK_DGRAM, libc::IPPROTO_UDP, false) => TableKind::Udp,
            (libc::SOCK_DGRAM, libc::IPPROTO_UDP, true) => TableKind::Udp6,
            (libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE, false) => TableKind::UdpLite,
            (libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE, true) => TableKind::UdpLite6,
            (libc::SOCK_DGRAM, libc::IPPROTO_ICMP, false) => TableKind::Icmp,
            (libc::SOCK_DGRAM, libc::IPPROTO_ICMPV6, true) => TableKind::Icmp6,
            (libc::SOCK_RAW, _, false) => TableKind::Raw,
            (libc::SOCK_RAW, _, true) => TableKind::Raw6,
            _ => return None, // SCTP, MPTCP…: the full path knows what to make of it
        };
        let (local, local_port) = endpoint(&socket, libc::getsockname)?;
        // As the SOCKS check tells a client that may reach another process's
        // listener: connected, to loopback or to its own local address.
        let talks_to_this_host = matches!(kind, TableKind::Tcp | TableKind::Tcp6)
            && endpoint(&socket, libc::getpeername)
                .is_some_and(|(peer, port)| port != 0 && (peer.is_loopback() || peer == local));
        held.push(HeldSocket {
            fd,
            inode,
            kind,
            local_port,
            talks_to_this_host,
        });
    }
    Some(held)
}

fn owned(rc: libc::c_long) -> Option<OwnedFd> {
    let fd = i32::try_from(rc).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn int_option(socket: &OwnedFd, name: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid out-pointers of the stated size.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&raw mut value).cast::<libc::c_void>(),
            &mut len,
        )
    };
    (rc == 0 && len as usize == std::mem::size_of::<libc::c_int>()).then_some(value)
}

/// The address and port `name` (`getsockname` or `getpeername`) gives, a
/// v4-mapped IPv6 address as IPv4; `None` when it fails (unconnected).
fn endpoint(
    socket: &OwnedFd,
    name: unsafe extern "C" fn(
        libc::c_int,
        *mut libc::sockaddr,
        *mut libc::socklen_t,
    ) -> libc::c_int,
) -> Option<(IpAddr, u16)> {
    // SAFETY: an all-zero sockaddr_storage is a valid value to overwrite.
    let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: address and len are valid out-pointers of the stated size.
    let rc = unsafe {
        name(
            socket.as_raw_fd(),
            (&raw mut address).cast::<libc::sockaddr>(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    let len = len as usize;
    match i32::from(address.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a sockaddr_in (family and length checked).
            let v4 = unsafe { *(&raw const address).cast::<libc::sockaddr_in>() };
            Some((
                IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))),
                u16::from_be(v4.sin_port),
            ))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the kernel wrote a sockaddr_in6 (family and length checked).
            let v6 = unsafe { *(&raw const address).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
            Some((ip, u16::from_be(v6.sin6_port)))
        }
        _ => None,
    }
}

thread_local! {
    static LOOKUPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Processes this thread answered for through their own fds: lets tests tell
/// which path a query took.
pub fn lookups_on_this_thread() -> u64 {
    LOOKUPS.with(std::cell::Cell::get)
}
