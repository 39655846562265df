//! The vocabulary of the Linux socket tables, shared by the `/proc/<pid>/net/*`
//! reader (`sockets`) and the sock_diag reader (`netlink`): which tables exist,
//! what each holds, one parsed entry, TCP state names.

use crate::model::{
    Pid, ProtocolSet, SocketInfo, SocketType, FAMILY_INET, FAMILY_INET6, IPPROTO_ICMP,
    IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE,
};
use std::ffi::CStr;
use std::net::IpAddr;

/// One `/proc/<pid>/net/<name>` socket table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableKind {
    Tcp,
    Tcp6,
    Udp,
    Udp6,
    UdpLite,
    UdpLite6,
    Raw,
    Raw6,
    Icmp,
    Icmp6,
}

impl TableKind {
    pub fn file(self) -> &'static CStr {
        match self {
            TableKind::Tcp => c"net/tcp",
            TableKind::Tcp6 => c"net/tcp6",
            TableKind::Udp => c"net/udp",
            TableKind::Udp6 => c"net/udp6",
            TableKind::UdpLite => c"net/udplite",
            TableKind::UdpLite6 => c"net/udplite6",
            TableKind::Raw => c"net/raw",
            TableKind::Raw6 => c"net/raw6",
            TableKind::Icmp => c"net/icmp",
            TableKind::Icmp6 => c"net/icmp6",
        }
    }

    pub fn is_ipv6(self) -> bool {
        matches!(
            self,
            TableKind::Tcp6
                | TableKind::Udp6
                | TableKind::UdpLite6
                | TableKind::Raw6
                | TableKind::Icmp6
        )
    }

    pub fn family(self) -> i32 {
        if self.is_ipv6() {
            FAMILY_INET6
        } else {
            FAMILY_INET
        }
    }

    /// The IP protocol of every socket in the table; `None` for raw tables, whose
    /// protocol is in the local "port" field.
    pub fn protocol(self) -> Option<i32> {
        match self {
            TableKind::Tcp | TableKind::Tcp6 => Some(IPPROTO_TCP),
            TableKind::Udp | TableKind::Udp6 => Some(IPPROTO_UDP),
            TableKind::UdpLite | TableKind::UdpLite6 => Some(IPPROTO_UDPLITE),
            TableKind::Icmp => Some(IPPROTO_ICMP),
            TableKind::Icmp6 => Some(IPPROTO_ICMPV6),
            TableKind::Raw | TableKind::Raw6 => None,
        }
    }

    pub fn socket_type(self) -> SocketType {
        match self {
            TableKind::Tcp | TableKind::Tcp6 => SocketType::Stream,
            TableKind::Raw | TableKind::Raw6 => SocketType::Raw,
            _ => SocketType::Dgram,
        }
    }
}

/// The tables a protocol set needs, in reading order (icmp before icmp6 so the
/// first-seen duplicate of a ping socket is the IPv4 one). Raw tables are needed by
/// every datagram protocol because a raw socket may carry any of them.
pub fn tables_for(set: &ProtocolSet) -> Vec<TableKind> {
    let mut kinds = Vec::new();
    if set.icmp {
        kinds.extend([TableKind::Icmp, TableKind::Icmp6]);
    }
    if set.udp {
        kinds.extend([TableKind::Udp, TableKind::Udp6]);
    }
    if set.udplite {
        kinds.extend([TableKind::UdpLite, TableKind::UdpLite6]);
    }
    if set.icmp || set.udp || set.udplite || set.raw {
        kinds.extend([TableKind::Raw, TableKind::Raw6]);
    }
    if set.tcp {
        kinds.extend([TableKind::Tcp, TableKind::Tcp6]);
    }
    kinds
}

/// One parsed table line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEntry {
    pub inode: u64,
    pub family: i32,
    pub protocol: i32,
    pub socket_type: SocketType,
    pub local: IpAddr,
    pub local_port: i32,
    pub remote: IpAddr,
    pub remote_port: i32,
    /// TCP state name; empty for other protocols.
    pub tcp_state: &'static str,
    /// The socket's owner (`sk_uid`: who made it) as its table gives it;
    /// [`UNKNOWN_UID`] where no table was read.
    pub uid: u32,
}

/// A [`TableEntry::uid`] that no table gave.
pub const UNKNOWN_UID: u32 = u32::MAX;

impl TableEntry {
    pub(super) fn is_ping(&self) -> bool {
        self.socket_type == SocketType::Dgram
            && (self.protocol == IPPROTO_ICMP || self.protocol == IPPROTO_ICMPV6)
    }

    /// The row for one holder of this socket.
    pub fn to_socket_info(&self, pid: Pid, fd: i64, net_namespace: &str) -> SocketInfo {
        SocketInfo {
            pid,
            fd,
            socket: self.inode,
            family: self.family,
            protocol: self.protocol,
            socket_type: self.socket_type,
            local_address: address_text(self.local),
            local_port: self.local_port,
            remote_address: address_text(self.remote),
            remote_port: self.remote_port,
            tcp_state: self.tcp_state.to_owned(),
            net_namespace: net_namespace.to_owned(),
        }
    }
}

/// An address as `Display` writes it; IPv4 without the formatting machinery
/// (two per socket row: a TCP-heavy host's full scan formats tens of thousands).
pub fn address_text(address: IpAddr) -> String {
    let IpAddr::V4(v4) = address else {
        return address.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// TCP state names as `ss`/osquery print them (include/net/tcp_states.h).
pub fn tcp_state_name(code: u8) -> &'static str {
    match code {
        0x01 => "ESTABLISHED",
        0x02 => "SYN_SENT",
        0x03 => "SYN_RECV",
        0x04 => "FIN_WAIT1",
        0x05 => "FIN_WAIT2",
        0x06 => "TIME_WAIT",
        0x07 => "CLOSE",
        0x08 => "CLOSE_WAIT",
        0x09 => "LAST_ACK",
        0x0A => "LISTEN",
        0x0B => "CLOSING",
        0x0C => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_text_is_what_display_writes() {
        for octet in 0..=255u8 {
            for address in [
                [octet, 0, 10, 100],
                [255, octet, 9, 99],
                [1, 2, octet, 250],
                [0, 0, 0, octet],
            ] {
                let v4 = IpAddr::from(address);
                assert_eq!(address_text(v4), v4.to_string());
            }
        }
        for v6 in [
            "::1",
            "fe80::1",
            "2001:db8::ff00:42:8329",
            "::ffff:10.0.0.1",
        ] {
            let v6: IpAddr = v6.parse().expect("address");
            assert_eq!(address_text(v6), v6.to_string());
        }
    }
}
