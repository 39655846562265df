//! Socket -> `protocol_name`, `state`, `remote_scope` and `reason`. Pure and
//! portable: both backends hand over plain `SocketInfo`s.

use crate::model::{
    ProtocolSet, SocketInfo, SocketType, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_UDP, IPPROTO_UDPLITE,
};
use std::net::IpAddr;

/// Every `protocol_name` the socket table can produce.
pub const PROTOCOL_NAMES: [&str; 6] = ["icmp", "icmpv6", "udp", "udplite", "raw", "socks"];

/// Name from the IP protocol, whatever the socket type; `raw` for any other
/// protocol on a raw socket; `None` for plain TCP (only SOCKS evidence makes a
/// TCP socket a row).
pub fn protocol_name(protocol: i32, socket_type: SocketType) -> Option<&'static str> {
    match protocol {
        IPPROTO_ICMP => Some("icmp"),
        IPPROTO_ICMPV6 => Some("icmpv6"),
        IPPROTO_UDP => Some("udp"),
        IPPROTO_UDPLITE => Some("udplite"),
        _ if socket_type == SocketType::Raw => Some("raw"),
        _ => None,
    }
}

/// Which socket kinds a set of `protocol_name` values needs scanned. Unknown names
/// need nothing (they can match no row).
pub fn protocols_for_names(names: &[String]) -> ProtocolSet {
    let mut set = ProtocolSet::NONE;
    for name in names {
        match name.as_str() {
            "icmp" | "icmpv6" => set.icmp = true,
            "udp" => set.udp = true,
            "udplite" => set.udplite = true,
            "raw" => set.raw = true,
            "socks" => set.tcp = true,
            _ => {}
        }
    }
    set
}

/// Where an address points.
pub fn remote_scope(address: &str) -> &'static str {
    let Ok(ip) = address.parse::<IpAddr>() else {
        return "unspecified";
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_unspecified() {
                "unspecified"
            } else if v4.is_loopback() {
                "loopback"
            } else if v4.is_multicast() {
                "multicast"
            } else if v4.is_link_local() || v4.is_broadcast() {
                // Limited broadcast never leaves the link.
                "link_local"
            } else if v4.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) {
                // RFC 1918 and carrier-grade NAT (RFC 6598).
                "private"
            } else {
                "public"
            }
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            if v6.is_unspecified() {
                "unspecified"
            } else if v6.is_loopback() {
                "loopback"
            } else if v6.is_multicast() {
                "multicast"
            } else if seg[0] & 0xffc0 == 0xfe80 {
                "link_local"
            } else if seg[0] & 0xfe00 == 0xfc00 {
                "private"
            } else {
                "public"
            }
        }
    }
}

fn is_unspecified(address: &str) -> bool {
    address.is_empty() || remote_scope(address) == "unspecified"
}

/// `bound` / `connected` / `unbound` for datagram and raw sockets; the TCP state
/// for stream sockets.
pub fn state(socket: &SocketInfo) -> String {
    // A stream's TCP state; a datagram socket's state when the backend says it
    // (`sent_not_held`: sent on by a process found not holding it).
    if socket.socket_type == SocketType::Stream || !socket.tcp_state.is_empty() {
        return socket.tcp_state.clone();
    }
    if !is_unspecified(&socket.remote_address) || socket.remote_port != 0 {
        "connected".into()
    } else if !is_unspecified(&socket.local_address) || socket.local_port != 0 {
        "bound".into()
    } else {
        "unbound".into()
    }
}

/// Why a socket is a row, as the `reason` column lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    pub protocol_name: &'static str,
    pub state: String,
    pub remote_scope: &'static str,
    /// In a fixed order: protocol reason first, then `raw_socket`, then SOCKS reasons.
    pub reasons: Vec<&'static str>,
}

impl Classification {
    pub fn reason(&self) -> String {
        self.reasons.join(",")
    }
}

/// Classifies one socket. `socks_reasons` is what the SOCKS classifier found for it
/// (empty when none): with any, the row is `socks`, whatever the transport.
/// Returns `None` for sockets that are not AN1256's business (plain TCP).
pub fn classify(socket: &SocketInfo, socks_reasons: &[&'static str]) -> Option<Classification> {
    let mut reasons = Vec::new();
    let name = if socks_reasons.is_empty() {
        let name = protocol_name(socket.protocol, socket.socket_type)?;
        match name {
            "icmp" | "icmpv6" => reasons.push("icmp_socket"),
            "udp" | "udplite" => reasons.push("udp_socket"),
            _ => {}
        }
        if socket.socket_type == SocketType::Raw {
            reasons.push("raw_socket");
        }
        name
    } else {
        reasons.extend_from_slice(socks_reasons);
        "socks"
    };
    Some(Classification {
        protocol_name: name,
        state: state(socket),
        remote_scope: remote_scope(&socket.remote_address),
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(protocol: i32, ty: SocketType, local: (&str, i32), remote: (&str, i32)) -> SocketInfo {
        SocketInfo {
            pid: 1,
            fd: 3,
            socket: 99,
            family: 2,
            protocol,
            socket_type: ty,
            local_address: local.0.into(),
            local_port: local.1,
            remote_address: remote.0.into(),
            remote_port: remote.1,
            tcp_state: String::new(),
            net_namespace: String::new(),
        }
    }

    #[test]
    fn protocol_names_follow_the_ip_protocol() {
        assert_eq!(protocol_name(1, SocketType::Dgram), Some("icmp"));
        assert_eq!(protocol_name(1, SocketType::Raw), Some("icmp"));
        assert_eq!(protocol_name(58, SocketType::Dgram), Some("icmpv6"));
        assert_eq!(protocol_name(17, SocketType::Dgram), Some("udp"));
        assert_eq!(protocol_name(17, SocketType::Raw), Some("udp"));
        assert_eq!(protocol_name(136, SocketType::Dgram), Some("udplite"));
        assert_eq!(protocol_name(255, SocketType::Raw), Some("raw"));
        assert_eq!(protocol_name(0, SocketType::Raw), Some("raw"));
        assert_eq!(protocol_name(6, SocketType::Stream), None);
    }

    #[test]
    fn reasons_and_states() {
        let raw_icmp = sock(1, SocketType::Raw, ("0.0.0.0", 0), ("0.0.0.0", 0));
        let c = classify(&raw_icmp, &[]).unwrap();
        assert_eq!(
            (c.protocol_name, c.reason().as_str()),
            ("icmp", "icmp_socket,raw_socket")
        );
        assert_eq!(c.state, "unbound");
        assert_eq!(c.remote_scope, "unspecified");

        let udp = sock(17, SocketType::Dgram, ("0.0.0.0", 5353), ("0.0.0.0", 0));
        let c = classify(&udp, &[]).unwrap();
        assert_eq!(
            (c.reason().as_str(), c.state.as_str()),
            ("udp_socket", "bound")
        );

        let connected = sock(17, SocketType::Dgram, ("10.0.0.2", 40000), ("8.8.8.8", 53));
        let c = classify(&connected, &[]).unwrap();
        assert_eq!((c.state.as_str(), c.remote_scope), ("connected", "public"));

        let raw = sock(255, SocketType::Raw, ("0.0.0.0", 0), ("0.0.0.0", 0));
        assert_eq!(classify(&raw, &[]).unwrap().reason(), "raw_socket");

        let mut tcp = sock(
            6,
            SocketType::Stream,
            ("127.0.0.1", 5000),
            ("127.0.0.1", 1080),
        );
        tcp.tcp_state = "ESTABLISHED".into();
        assert_eq!(classify(&tcp, &[]), None);
        let c = classify(&tcp, &["socks_port"]).unwrap();
        assert_eq!(
            (c.protocol_name, c.state.as_str()),
            ("socks", "ESTABLISHED")
        );
        assert_eq!(c.reason(), "socks_port");
    }

    #[test]
    fn scopes() {
        for (addr, scope) in [
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.20.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("fd00::1", "private"),
            ("169.254.1.1", "link_local"),
            ("fe80::1", "link_local"),
            ("255.255.255.255", "link_local"),
            ("224.0.0.251", "multicast"),
            ("ff02::fb", "multicast"),
            ("8.8.8.8", "public"),
            ("2001:4860::8888", "public"),
            ("::ffff:8.8.8.8", "public"),
            ("::ffff:127.0.0.1", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("", "unspecified"),
            ("garbage", "unspecified"),
        ] {
            assert_eq!(remote_scope(addr), scope, "{addr}");
        }
    }

    #[test]
    fn protocol_filters() {
        let set = protocols_for_names(&["icmp".into()]);
        let raw_icmp = sock(1, SocketType::Raw, ("0.0.0.0", 0), ("0.0.0.0", 0));
        let raw_255 = sock(255, SocketType::Raw, ("0.0.0.0", 0), ("0.0.0.0", 0));
        let udp = sock(17, SocketType::Dgram, ("0.0.0.0", 1), ("0.0.0.0", 0));
        assert!(set.wants(&raw_icmp));
        assert!(!set.wants(&raw_255));
        assert!(!set.wants(&udp));
        let raw = protocols_for_names(&["raw".into()]);
        assert!(raw.wants(&raw_icmp) && raw.wants(&raw_255));
        assert!(protocols_for_names(&["nonsense".into()]).is_empty());
        assert!(protocols_for_names(&["socks".into()]).tcp);
    }
}
