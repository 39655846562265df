//! `nonstandard_protocol_sockets`: one row per (process, socket) using ICMP, UDP,
//! raw IP or SOCKS.

use super::{bigint, indexed, integer, text, Column, QueryContext, Row, TableDef, TableError};
use crate::classify;
use crate::model::{Pid, ProtocolSet, SocketQuery};
use crate::observe::{self, ObservedSocket};
use crate::platform::Host;
use crate::socks::SocksConfig;
use std::sync::Arc;

pub const NAME: &str = "nonstandard_protocol_sockets";

pub static COLUMNS: &[Column] = &[
    indexed(integer("pid", "Owning process id (INDEX: `pid =` reads only that process's fds)")),
    integer("fd", "File descriptor number in the owner"),
    bigint("socket", "Kernel socket id (inode on Linux)"),
    integer("family", "2 (IPv4) or 10 (IPv6), as osquery reports"),
    integer("protocol", "IP protocol number: 1, 58, 17, 136, 255, 0…; 6 for SOCKS over TCP"),
    text("protocol_name", "icmp, icmpv6, udp, udplite (from the IP protocol, whatever the socket type), raw (other protocols on raw sockets), socks"),
    text("socket_type", "dgram, raw or stream"),
    text("local_address", "Local address"),
    integer("local_port", "Local port (0 for raw sockets)"),
    text("remote_address", "Remote address (unspecified when not connected)"),
    integer("remote_port", "Remote port"),
    text("state", "TCP state, or bound / connected / unbound for datagram and raw sockets"),
    text("remote_scope", "loopback, private, link_local, multicast, public or unspecified"),
    text("reason", "Why the row is here, comma list: icmp_socket, udp_socket, raw_socket, socks_*"),
    text("path", "Owner's executable path"),
    text("net_namespace", "Linux network namespace inode (empty on macOS)"),
];

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

impl TableDef for NonstandardProtocolSockets {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "One row per (process, socket) speaking ICMP, UDP, UDP-Lite, raw IP, or SOCKS over TCP — including the ICMP and raw sockets osquery's process_open_sockets cannot label."
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let host = self.host.as_ref();
        let mut observed = observe::observe_sockets(host, &self.socks, &socket_query(ctx));
        let mut rows = Vec::with_capacity(observed.sockets.len());
        for ObservedSocket { socket, class } in &observed.sockets {
            let path = observed
                .executables
                .entry(socket.pid)
                .or_insert_with(|| host.executable_path(socket.pid).unwrap_or_default())
                .clone();
            rows.push(vec![
                socket.pid.into(),
                socket.fd.into(),
                socket.socket.into(),
                socket.family.into(),
                socket.protocol.into(),
                class.protocol_name.into(),
                socket.socket_type.as_str().into(),
                socket.local_address.as_str().into(),
                socket.local_port.into(),
                socket.remote_address.as_str().into(),
                socket.remote_port.into(),
                class.state.clone().into(),
                class.remote_scope.into(),
                class.reason().into(),
                path.into(),
                socket.net_namespace.as_str().into(),
            ]);
        }
        if observed.incomplete.is_empty() {
            Ok(rows)
        } else {
            Err(TableError::Partial {
                rows,
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

    fn reasons(rows: &[Row]) -> Vec<(i64, String)> {
        let fd = COLUMNS.iter().position(|c| c.name == "fd").unwrap();
        let reason = COLUMNS.iter().position(|c| c.name == "reason").unwrap();
        rows.iter()
            .map(|r| match (&r[fd], &r[reason]) {
                (crate::tables::Value::Int(fd), crate::tables::Value::Text(reason)) => {
                    (*fd, reason.clone())
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn tcp_sockets_are_rows_only_with_socks_evidence() {
        let host = fake();
        let table = NonstandardProtocolSockets::new(host.clone());
        let all = table.generate(&QueryContext::new()).unwrap();
        assert_eq!(
            reasons(&all),
            [
                (3, "socks_server".to_string()),
                (3, "socks_local_proxy".to_string())
            ]
        );
        // `pid =` on the client still finds the proxy owned by another process.
        let client = table
            .generate(&QueryContext::new().with_equals("pid", "2"))
            .unwrap();
        assert_eq!(reasons(&client), [(3, "socks_local_proxy".to_string())]);
        // Datagram-only queries never scan TCP.
        host.socket_queries.lock().unwrap().clear();
        let udp = table
            .generate(&QueryContext::new().with_equals("protocol_name", "udp"))
            .unwrap();
        assert!(udp.is_empty());
        let queries = host.socket_queries.lock().unwrap();
        assert!(queries.iter().all(|q| !q.protocols.tcp), "{queries:?}");
    }
}
