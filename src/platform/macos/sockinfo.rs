//! libproc socket info -> [`crate::model::SocketInfo`]. Pure and portable: the
//! syscall side copies the fields it read from `socket_fdinfo` into a plain
//! [`RawInetSocket`] and this module interprets them, so the layout rules are
//! unit-tested on Linux.
//!
//! Rules (xnu `proc_info.h`, `socket_info.c`): only the union member named by
//! `soi_kind` is valid; the kernel uses kind TCP only for live TCP sockets, every
//! other inet socket (UDP, ICMP, raw) is kind IN. The protocol comes from
//! `soi_protocol` and the type from `soi_type` (never "not TCP means UDP"). Ports
//! are network-order `u16`s stored in a `c_int`; IPv4 vs IPv6 comes from
//! `insi_vflag`, not `soi_family`; Darwin's AF_INET6 is 30, reported as 10.

use crate::model::{Pid, SocketInfo, SocketType, FAMILY_INET, FAMILY_INET6};
use std::net::{Ipv4Addr, Ipv6Addr};

pub const SOCKINFO_IN: i32 = 1;
pub const SOCKINFO_TCP: i32 = 2;
pub const INI_IPV4: u8 = 0x1;
pub const INI_IPV6: u8 = 0x2;
pub const DARWIN_AF_INET: i32 = 2;
pub const DARWIN_AF_INET6: i32 = 30;
pub const DARWIN_SOCK_STREAM: i32 = 1;
pub const DARWIN_SOCK_DGRAM: i32 = 2;
pub const DARWIN_SOCK_RAW: i32 = 3;

/// The fields of one `socket_fdinfo` that matter, copied out of the C unions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawInetSocket {
    pub fd: i32,
    /// `soi_so`: the kernel socket address, a stable id while it lives.
    pub socket_id: u64,
    pub soi_kind: i32,
    pub soi_type: i32,
    pub soi_protocol: i32,
    pub soi_family: i32,
    pub insi_vflag: u8,
    /// `insi_lport` / `insi_fport` as the kernel stored them (network order u16).
    pub local_port: i32,
    pub foreign_port: i32,
    /// The 16 bytes of `insi_laddr` / `insi_faddr`: an `in6_addr`, or for IPv4 12
    /// bytes of padding followed by the `in_addr`.
    pub local_addr: [u8; 16],
    pub foreign_addr: [u8; 16],
    /// `tcpsi_state` (kind TCP only).
    pub tcp_state: i32,
}

/// A port from the network-order `u16` the kernel put in a `c_int` (assigned by
/// value, so the low 16 bits hold the network-order bytes on any endianness).
pub fn port(raw: i32) -> i32 {
    i32::from(u16::from_be(raw as u16))
}

/// TCP state names (xnu `tcp_fsm.h` numbering), spelled as on Linux so both
/// platforms report the same strings.
pub fn tcp_state_name(state: i32) -> &'static str {
    match state {
        0 => "CLOSED",
        1 => "LISTEN",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "ESTABLISHED",
        5 => "CLOSE_WAIT",
        6 => "FIN_WAIT1",
        7 => "CLOSING",
        8 => "LAST_ACK",
        9 => "FIN_WAIT2",
        10 => "TIME_WAIT",
        _ => "UNKNOWN",
    }
}

/// An IPv6 address as the kernel holds it, without the interface index xnu embeds
/// in bytes 2-3 of link-local unicast (`fe80::/10`) and interface- and link-local
/// multicast (`ff01::/16`, `ff02::/16`) addresses (`in6_clearscope`, as netstat does):
/// `fe80:4::1` is `fe80::1`.
pub fn clear_embedded_scope(mut bytes: [u8; 16]) -> [u8; 16] {
    let link_local_unicast = bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80;
    let scoped_multicast = bytes[0] == 0xff && (bytes[1] == 0x01 || bytes[1] == 0x02);
    if link_local_unicast || scoped_multicast {
        bytes[2] = 0;
        bytes[3] = 0;
    }
    bytes
}

fn address(bytes: &[u8; 16], v6: bool) -> String {
    if v6 {
        let ip = Ipv6Addr::from(clear_embedded_scope(*bytes));
        match ip.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => ip.to_string(),
        }
    } else {
        let mut v4 = [0u8; 4];
        v4.copy_from_slice(&bytes[12..]);
        Ipv4Addr::from(v4).to_string()
    }
}

/// The row for one inet socket; `None` for anything that is not an IPv4/IPv6
/// stream, datagram or raw socket (Unix sockets, kernel control, …).
pub fn to_socket_info(pid: Pid, raw: &RawInetSocket) -> Option<SocketInfo> {
    if raw.soi_kind != SOCKINFO_IN && raw.soi_kind != SOCKINFO_TCP {
        return None;
    }
    if raw.soi_family != DARWIN_AF_INET && raw.soi_family != DARWIN_AF_INET6 {
        return None;
    }
    let socket_type = match raw.soi_type {
        DARWIN_SOCK_STREAM => SocketType::Stream,
        DARWIN_SOCK_DGRAM => SocketType::Dgram,
        DARWIN_SOCK_RAW => SocketType::Raw,
        _ => return None,
    };
    let v6 = if raw.insi_vflag & INI_IPV6 != 0 {
        true
    } else if raw.insi_vflag & INI_IPV4 != 0 {
        false
    } else {
        raw.soi_family == DARWIN_AF_INET6
    };
    let protocol = if socket_type == SocketType::Stream && raw.soi_protocol == 0 {
        crate::model::IPPROTO_TCP
    } else {
        raw.soi_protocol
    };
    Some(SocketInfo {
        pid,
        fd: i64::from(raw.fd),
        socket: raw.socket_id,
        family: if v6 { FAMILY_INET6 } else { FAMILY_INET },
        protocol,
        socket_type,
        local_address: address(&raw.local_addr, v6),
        local_port: port(raw.local_port),
        remote_address: address(&raw.foreign_addr, v6),
        remote_port: port(raw.foreign_port),
        tcp_state: if raw.soi_kind == SOCKINFO_TCP {
            tcp_state_name(raw.tcp_state).to_string()
        } else {
            String::new()
        },
        net_namespace: String::new(),
    })
}

/// Entries `proc_pidinfo(PROC_PIDLISTFDS)` wrote, from its return value and the
/// errno after it (cleared before the call). libproc's `proc_pidinfo` returns 0 both
/// for a process with no open fd and for a failure, which sets errno: zero fds is an
/// empty list, not an error.
pub fn listed_fds(ret: i32, errno: i32, entry_size: usize, capacity: usize) -> Result<usize, i32> {
    match ret {
        r if r < 0 => Err(if errno == 0 { ESRCH } else { errno }),
        0 if errno != 0 => Err(errno),
        r => Ok((usize::try_from(r).unwrap_or(0) / entry_size.max(1)).min(capacity)),
    }
}

/// Why a per-fd or per-process read failed, from the errno inside libproc's error
/// message (`return code = 0, errno = 3, message = '…'`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFailure {
    /// EPERM/EACCES: another user's process and we are not root.
    Permission,
    /// ESRCH: the process exited.
    Vanished,
    /// EBADF: the fd was closed between listing and reading.
    Closed,
    Other,
}

pub const EPERM: i32 = 1;
pub const ESRCH: i32 = 3;
pub const EBADF: i32 = 9;
pub const EACCES: i32 = 13;

pub fn read_failure(errno: Option<i32>) -> ReadFailure {
    match errno {
        Some(EPERM | EACCES) => ReadFailure::Permission,
        Some(ESRCH) => ReadFailure::Vanished,
        Some(EBADF) => ReadFailure::Closed,
        _ => ReadFailure::Other,
    }
}

/// The errno libproc put in its error string, if any.
pub fn errno_in_message(message: &str) -> Option<i32> {
    let rest = message.split("errno = ").nth(1)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProtocolSet;

    /// Network-order port as the kernel stores it, seen as a native c_int.
    fn net_port(p: u16) -> i32 {
        i32::from(p.to_be())
    }

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[12..].copy_from_slice(&a);
        b
    }

    fn v6(a: &str) -> [u8; 16] {
        a.parse::<Ipv6Addr>().unwrap().octets()
    }

    fn inet(kind: i32, ty: i32, proto: i32, family: i32, vflag: u8) -> RawInetSocket {
        RawInetSocket {
            fd: 5,
            socket_id: 0xffff_ff80_1234_5678,
            soi_kind: kind,
            soi_type: ty,
            soi_protocol: proto,
            soi_family: family,
            insi_vflag: vflag,
            ..Default::default()
        }
    }

    #[test]
    fn ports_are_byte_swapped() {
        assert_eq!(port(net_port(53)), 53);
        assert_eq!(port(net_port(1080)), 1080);
        assert_eq!(port(net_port(65535)), 65535);
        assert_eq!(port(0), 0);
        // On a little-endian host port 80 is stored as 0x5000.
        if cfg!(target_endian = "little") {
            assert_eq!(port(0x5000), 80);
        }
    }

    #[test]
    fn unprivileged_ping_is_icmp_dgram_not_udp() {
        let mut raw = inet(SOCKINFO_IN, DARWIN_SOCK_DGRAM, 1, DARWIN_AF_INET, INI_IPV4);
        raw.foreign_addr = v4([127, 0, 0, 1]);
        let s = to_socket_info(42, &raw).unwrap();
        assert_eq!(
            (s.protocol, s.socket_type, s.family),
            (1, SocketType::Dgram, 2)
        );
        assert_eq!(s.remote_address, "127.0.0.1");
        assert_eq!(s.local_address, "0.0.0.0");
        assert_eq!((s.pid, s.fd, s.socket), (42, 5, 0xffff_ff80_1234_5678));
        assert!(s.tcp_state.is_empty());
        assert_eq!(
            crate::judge::classify::protocol_name(s.protocol, s.socket_type),
            Some("icmp")
        );
        let mut only_udp = ProtocolSet::NONE;
        only_udp.udp = true;
        assert!(!only_udp.wants(&s));
    }

    #[test]
    fn raw_sockets_keep_their_protocol() {
        let s = to_socket_info(
            1,
            &inet(SOCKINFO_IN, DARWIN_SOCK_RAW, 1, DARWIN_AF_INET, INI_IPV4),
        )
        .unwrap();
        assert_eq!((s.protocol, s.socket_type), (1, SocketType::Raw));
        let s = to_socket_info(
            1,
            &inet(SOCKINFO_IN, DARWIN_SOCK_RAW, 255, DARWIN_AF_INET, INI_IPV4),
        )
        .unwrap();
        assert_eq!(
            crate::judge::classify::protocol_name(s.protocol, s.socket_type),
            Some("raw")
        );
        let s = to_socket_info(
            1,
            &inet(SOCKINFO_IN, DARWIN_SOCK_RAW, 0, DARWIN_AF_INET, INI_IPV4),
        )
        .unwrap();
        assert_eq!((s.protocol, s.socket_type), (0, SocketType::Raw));
        // SOCK_RAW with IPPROTO_UDP or TCP: no raw handler of its own, so xnu attaches
        // the wildcard raw protosw and reports protocol 0. The row stays `raw`.
        assert_eq!(
            crate::judge::classify::protocol_name(s.protocol, s.socket_type),
            Some("raw")
        );
        let s = to_socket_info(
            1,
            &inet(SOCKINFO_IN, DARWIN_SOCK_RAW, 58, DARWIN_AF_INET6, INI_IPV6),
        )
        .unwrap();
        assert_eq!((s.protocol, s.family), (58, 10));
    }

    #[test]
    fn udp_v4_with_ports_and_addresses() {
        let mut raw = inet(SOCKINFO_IN, DARWIN_SOCK_DGRAM, 17, DARWIN_AF_INET, INI_IPV4);
        raw.local_addr = v4([192, 168, 1, 20]);
        raw.local_port = net_port(5353);
        raw.foreign_addr = v4([8, 8, 8, 8]);
        raw.foreign_port = net_port(53);
        let s = to_socket_info(7, &raw).unwrap();
        assert_eq!(
            (s.local_address.as_str(), s.local_port),
            ("192.168.1.20", 5353)
        );
        assert_eq!((s.remote_address.as_str(), s.remote_port), ("8.8.8.8", 53));
        assert_eq!(s.protocol, 17);
        assert_eq!(crate::judge::classify::state(&s), "connected");
    }

    #[test]
    fn embedded_scope_ids_are_cleared_from_scoped_ipv6_addresses() {
        for (kernel, shown) in [
            ("fe80:4::1", "fe80::1"),
            ("fe80:e::aede:48ff:fe00:1122", "fe80::aede:48ff:fe00:1122"),
            ("febf:4::1", "febf::1"),
            ("ff02:4::fb", "ff02::fb"),
            ("ff01:1::1", "ff01::1"),
            // Not scoped: untouched.
            ("ff05:4::2", "ff05:4::2"),
            ("fec0:4::1", "fec0:4::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            let mut raw = inet(
                SOCKINFO_IN,
                DARWIN_SOCK_DGRAM,
                17,
                DARWIN_AF_INET6,
                INI_IPV6,
            );
            raw.local_addr = v6(kernel);
            raw.foreign_addr = v6(kernel);
            let s = to_socket_info(1, &raw).unwrap();
            assert_eq!(
                (s.local_address.as_str(), s.remote_address.as_str()),
                (shown, shown)
            );
        }
    }

    #[test]
    fn zero_fds_is_an_empty_list_not_an_error() {
        let entry = 8;
        assert_eq!(listed_fds(0, 0, entry, 64), Ok(0));
        assert_eq!(listed_fds(0, ESRCH, entry, 64), Err(ESRCH));
        assert_eq!(listed_fds(0, EPERM, entry, 64), Err(EPERM));
        assert_eq!(listed_fds(-1, 0, entry, 64), Err(ESRCH));
        assert_eq!(listed_fds(24, 0, entry, 64), Ok(3));
        assert_eq!(listed_fds(8 * 100, 0, entry, 64), Ok(64));
    }

    #[test]
    fn v6_family_30_is_reported_as_10_and_mapped_addresses_unmapped() {
        let mut raw = inet(
            SOCKINFO_IN,
            DARWIN_SOCK_DGRAM,
            17,
            DARWIN_AF_INET6,
            INI_IPV6,
        );
        raw.local_addr = v6("fe80::1");
        raw.foreign_addr = v6("::ffff:10.0.0.9");
        raw.foreign_port = net_port(9999);
        let s = to_socket_info(1, &raw).unwrap();
        assert_eq!(s.family, 10);
        assert_eq!(s.local_address, "fe80::1");
        assert_eq!(s.remote_address, "10.0.0.9");
        assert_eq!(s.remote_port, 9999);
        // A v6 socket the kernel flags as IPv4 (connected to a v4 peer) reads the v4 member.
        let mut raw = inet(
            SOCKINFO_IN,
            DARWIN_SOCK_DGRAM,
            17,
            DARWIN_AF_INET6,
            INI_IPV4,
        );
        raw.foreign_addr = v4([1, 2, 3, 4]);
        let s = to_socket_info(1, &raw).unwrap();
        assert_eq!((s.family, s.remote_address.as_str()), (2, "1.2.3.4"));
        // Dual-stack unbound: both flags, v6 wins.
        let s = to_socket_info(
            1,
            &inet(
                SOCKINFO_IN,
                DARWIN_SOCK_DGRAM,
                17,
                DARWIN_AF_INET6,
                INI_IPV4 | INI_IPV6,
            ),
        )
        .unwrap();
        assert_eq!((s.family, s.local_address.as_str()), (10, "::"));
        // No flag: fall back to soi_family.
        let s = to_socket_info(
            1,
            &inet(SOCKINFO_IN, DARWIN_SOCK_DGRAM, 17, DARWIN_AF_INET6, 0),
        )
        .unwrap();
        assert_eq!(s.family, 10);
    }

    #[test]
    fn tcp_is_kept_with_its_state() {
        let mut raw = inet(
            SOCKINFO_TCP,
            DARWIN_SOCK_STREAM,
            6,
            DARWIN_AF_INET,
            INI_IPV4,
        );
        raw.tcp_state = 4;
        raw.foreign_addr = v4([127, 0, 0, 1]);
        raw.foreign_port = net_port(1080);
        let s = to_socket_info(1, &raw).unwrap();
        assert_eq!((s.protocol, s.socket_type), (6, SocketType::Stream));
        assert_eq!(s.tcp_state, "ESTABLISHED");
        assert_eq!(s.remote_port, 1080);
        raw.tcp_state = 1;
        assert_eq!(to_socket_info(1, &raw).unwrap().tcp_state, "LISTEN");
        raw.tcp_state = 99;
        assert_eq!(to_socket_info(1, &raw).unwrap().tcp_state, "UNKNOWN");
        // A closed TCP socket degrades to kind IN: no state, protocol kept.
        let s = to_socket_info(
            1,
            &inet(SOCKINFO_IN, DARWIN_SOCK_STREAM, 6, DARWIN_AF_INET, INI_IPV4),
        )
        .unwrap();
        assert_eq!((s.protocol, s.tcp_state.as_str()), (6, ""));
    }

    #[test]
    fn non_inet_sockets_are_skipped() {
        assert_eq!(
            to_socket_info(1, &inet(3, DARWIN_SOCK_STREAM, 0, 1, 0)),
            None,
            "unix"
        );
        assert_eq!(
            to_socket_info(1, &inet(6, DARWIN_SOCK_DGRAM, 2, 32, 0)),
            None,
            "kern ctl"
        );
        assert_eq!(
            to_socket_info(1, &inet(SOCKINFO_IN, 5, 132, DARWIN_AF_INET, INI_IPV4)),
            None,
            "seqpacket"
        );
        assert_eq!(
            to_socket_info(1, &inet(SOCKINFO_IN, DARWIN_SOCK_DGRAM, 17, 17, INI_IPV4)),
            None,
            "route family"
        );
    }

    #[test]
    fn libproc_errors_are_classified() {
        let m = "return code = 0, errno = 3, message = 'No such process'";
        assert_eq!(errno_in_message(m), Some(3));
        assert_eq!(read_failure(errno_in_message(m)), ReadFailure::Vanished);
        assert_eq!(
            read_failure(errno_in_message(
                "return code = 0, errno = 1, message = 'x'"
            )),
            ReadFailure::Permission
        );
        assert_eq!(
            read_failure(errno_in_message(
                "return code = -1, errno = 9, message = 'x'"
            )),
            ReadFailure::Closed
        );
        assert_eq!(
            read_failure(errno_in_message("garbage")),
            ReadFailure::Other
        );
        assert_eq!(errno_in_message("errno = "), None);
    }
}
