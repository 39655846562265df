//! `nonstandard_protocol_sockets`: one row per (process, socket) using ICMP, UDP,
//! raw IP or SOCKS.

use super::{int, Column, Example, QueryContext, Table, TableError, TypedRow};
use crate::judge::classify;
use crate::judge::socks::SocksConfig;
use crate::model::{Pid, ProtocolSet, SocketQuery};
use crate::observe::{self, ObservedSocket};
use crate::platform::Host;
use std::sync::Arc;

pub const NAME: &str = "nonstandard_protocol_sockets";

super::table_row! {
    /// One row of `nonstandard_protocol_sockets`.
    pub struct SocketRow, cells SocketCells {
        pid: INTEGER [index] = "Owning process id (INDEX: `pid =` reads only that process's fds)",
        fd: INTEGER = "File descriptor number in the owner; -1 for a summary row, or for a socket the process sent on without holding it when scanned (state `sent_not_held`)",
        socket: BIGINT = "Kernel socket id (inode on Linux)",
        family: INTEGER = "2 (IPv4) or 10 (IPv6), as osquery reports",
        protocol: INTEGER = "IP protocol number: 1, 58, 17, 136, 255, 0…; 6 for SOCKS over TCP",
        protocol_name: TEXT = "icmp, icmpv6, udp, udplite (from the IP protocol, whatever the socket type), raw (other protocols on raw sockets), socks",
        socket_type: TEXT = "dgram, raw or stream",
        local_address: TEXT = "Local address",
        local_port: INTEGER = "Local port (0 for raw sockets)",
        remote_address: TEXT = "Remote address (unspecified when not connected)",
        remote_port: INTEGER = "Remote port",
        state: TEXT = "TCP state, or bound / connected / unbound for datagram and raw sockets; `sent_not_held` (Linux extension): a user's socket this process (or one of the image that sent) sent on in the last 120 s that the scan found held by another process or by none (handed to a trusted process, its holder forked away, or closed since)",
        remote_scope: TEXT = "loopback, private, link_local, multicast, public or unspecified",
        reason: TEXT = "Why the row is here, comma list: icmp_socket, udp_socket, raw_socket, socks_*",
        path: TEXT = "Executable path of the process holding the socket (unlike osquery's process_open_sockets.path, which is a unix socket's path)",
        net_namespace: TEXT = "Linux network namespace inode (empty on macOS)",
    }
}

pub const COLUMNS: &[Column] = <SocketRow as TypedRow>::COLUMNS;

pub struct NonstandardProtocolSockets {
    host: Arc<dyn Host>,
    socks: SocksConfig,
}

impl NonstandardProtocolSockets {
    /// The table with the default SOCKS settings (default port list, no probe).
    pub fn new(host: Arc<dyn Host>) -> Self {
        Self::with_socks_config(host, SocksConfig::default())
    }

    /// The table with explicit SOCKS settings (port list, handshake probe).
    pub fn with_socks_config(host: Arc<dyn Host>, socks: SocksConfig) -> Self {
        NonstandardProtocolSockets { host, socks }
    }
}

/// The socket scan a query context asks for: `pid =` limits processes,
/// `protocol_name =` limits the socket tables read.
pub fn socket_query(ctx: &QueryContext) -> SocketQuery {
    let pids = ctx.equal_integers("pid").map(|list| {
        list.into_iter()
            .filter_map(|p| Pid::try_from(p).ok())
            .collect()
    });
    let protocols = match ctx.equal_texts("protocol_name") {
        Some(names) => classify::protocols_for_names(&names),
        // Every kind, TCP included: the SOCKS classifier turns TCP sockets with
        // SOCKS evidence into rows.
        None => ProtocolSet::ALL,
    };
    SocketQuery { pids, protocols }
}

impl Table for NonstandardProtocolSockets {
    type Row = SocketRow;
    const NAME: &'static str = NAME;
    const DESCRIPTION: &'static str =
        "One row per (process, socket) speaking ICMP, UDP, UDP-Lite, raw IP, or SOCKS over TCP — including the ICMP and raw sockets osquery's process_open_sockets cannot label.";
    const EXAMPLES: &'static [Example] = &[
        Example {
            title: "Untrusted owners of ICMP, UDP, raw or SOCKS sockets",
            sql: "SELECT s.pid, c.subject_path, c.trust, s.protocol_name, s.remote_address, s.remote_port, s.reason FROM nonstandard_protocol_sockets s JOIN process_code_signature c ON c.pid = s.pid WHERE c.subject_trusted = 0;",
        },
        Example {
            title: "ICMP and raw sockets, which process_open_sockets cannot label",
            sql: "SELECT pid, path, protocol_name, socket_type, local_address, remote_address FROM nonstandard_protocol_sockets WHERE protocol_name IN ('icmp', 'icmpv6', 'raw');",
        },
    ];

    fn rows(&self, ctx: &QueryContext) -> Result<Vec<SocketRow>, TableError> {
        let host = self.host.as_ref();
        let mut observed = observe::observe_sockets(host, &self.socks, &socket_query(ctx));
        let mut rows = Vec::with_capacity(observed.sockets.len());
        for ObservedSocket { socket, class } in &observed.sockets {
            let path = observed
                .executables
                .entry(socket.pid)
                .or_insert_with(|| host.executable_path(socket.pid).unwrap_or_default())
                .clone();
            rows.push(SocketRow {
                pid: socket.pid.into(),
                fd: socket.fd,
                socket: int(socket.socket),
                family: socket.family.into(),
                protocol: socket.protocol.into(),
                protocol_name: class.protocol_name.into(),
                socket_type: socket.socket_type.as_str().into(),
                local_address: socket.local_address.clone(),
                local_port: socket.local_port.into(),
                remote_address: socket.remote_address.clone(),
                remote_port: socket.remote_port.into(),
                state: class.state.clone(),
                remote_scope: class.remote_scope.into(),
                reason: class.reason(),
                path,
                net_namespace: socket.net_namespace.clone(),
            });
        }
        if observed.incomplete.is_empty() {
            Ok(rows)
        } else {
            Err(TableError::Partial {
                rows: rows.into_iter().map(TypedRow::into_row).collect(),
                reason: observed.incomplete.join("; "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::FakeHost;

    fn fake() -> Arc<FakeHost> {
        Arc::new(crate::observe::tests::proxied_client())
    }

    fn reasons(rows: &[SocketRow]) -> Vec<(i64, String)> {
        rows.iter().map(|r| (r.fd, r.reason.clone())).collect()
    }

    #[test]
    fn tcp_sockets_are_rows_only_with_socks_evidence() {
        let host = fake();
        let table = NonstandardProtocolSockets::new(host.clone());
        let all = table.rows(&QueryContext::new()).unwrap();
        assert_eq!(
            reasons(&all),
            [
                (3, "socks_server".to_string()),
                (3, "socks_local_proxy".to_string())
            ]
        );
        // `pid =` on the client still finds the proxy owned by another process.
        let client = table
            .rows(&QueryContext::new().with_equals("pid", "2"))
            .unwrap();
        assert_eq!(reasons(&client), [(3, "socks_local_proxy".to_string())]);
        // Datagram-only queries never scan TCP.
        host.socket_queries.lock().unwrap().clear();
        let udp = table
            .rows(&QueryContext::new().with_equals("protocol_name", "udp"))
            .unwrap();
        assert!(udp.is_empty());
        let queries = host.socket_queries.lock().unwrap();
        assert!(queries.iter().all(|q| !q.protocols.tcp), "{queries:?}");
    }
}
