//! `nonstandard_protocol_sockets`: one row per (process, socket) using ICMP, UDP,
//! raw IP or SOCKS.

use super::{bigint, indexed, integer, text, Column, QueryContext, Row, TableDef, TableError};
use crate::classify;
use crate::model::{Pid, ProtocolSet, SocketQuery};
use crate::platform::Host;
use crate::socks::{self, SocksConfig};
use std::collections::HashMap;
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
        let query = socket_query(ctx);
        if query.protocols.is_empty() || query.pids.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let mut scan = self.host.sockets(&query);
        if scan.skipped_processes > 0 {
            log::debug!("socket scan skipped {} processes", scan.skipped_processes);
        }
        let socks_reasons = if query.protocols.tcp {
            // A client's proxy may belong to a process outside a `pid =` scan.
            let whole_host = || {
                self.host
                    .sockets(&SocketQuery {
                        pids: None,
                        protocols: ProtocolSet {
                            tcp: true,
                            ..ProtocolSet::NONE
                        },
                    })
                    .sockets
            };
            let whole_host: Option<&dyn Fn() -> Vec<crate::model::SocketInfo>> =
                if query.pids.is_some() {
                    Some(&whole_host)
                } else {
                    None
                };
            socks::socks_reasons(self.host.as_ref(), &self.socks, &scan.sockets, whole_host)
        } else {
            HashMap::new()
        };
        let mut paths: HashMap<Pid, String> = std::mem::take(&mut scan.executables);
        let mut rows = Vec::with_capacity(scan.sockets.len());
        for socket in &scan.sockets {
            let reasons = socks_reasons
                .get(&socks::socket_key(socket))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let Some(class) = classify::classify(socket, reasons) else {
                continue;
            };
            let path = paths
                .entry(socket.pid)
                .or_insert_with(|| self.host.executable_path(socket.pid).unwrap_or_default())
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
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ProcessInfo, SocketInfo, SocketType};
    use crate::platform::FakeHost;

    fn tcp(pid: Pid, fd: i64, local: (&str, i32), remote: (&str, i32), state: &str) -> SocketInfo {
        SocketInfo {
            pid,
            fd,
            socket: 1000 + fd as u64,
            family: 2,
            protocol: 6,
            socket_type: SocketType::Stream,
            local_address: local.0.into(),
            local_port: local.1,
            remote_address: remote.0.into(),
            remote_port: remote.1,
            tcp_state: state.into(),
            net_namespace: "ns".into(),
        }
    }

    fn fake() -> Arc<FakeHost> {
        let process = |pid: Pid, path: &str| ProcessInfo {
            pid,
            path: path.into(),
            argv: vec![path.into()],
            net_namespace: "ns".into(),
            ..Default::default()
        };
        Arc::new(FakeHost {
            processes: vec![
                process(1, "/usr/bin/microsocks"),
                process(2, "/usr/bin/curl"),
            ],
            sockets: vec![
                tcp(1, 3, ("127.0.0.1", 40000), ("0.0.0.0", 0), "LISTEN"),
                tcp(
                    2,
                    3,
                    ("127.0.0.1", 50000),
                    ("127.0.0.1", 40000),
                    "ESTABLISHED",
                ),
                tcp(
                    2,
                    4,
                    ("127.0.0.1", 50001),
                    ("93.184.216.34", 443),
                    "ESTABLISHED",
                ),
            ],
            ..Default::default()
        })
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
